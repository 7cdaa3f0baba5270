"""API keys: random tokens shown once, stored as SHA-256 hashes in a JSON file.

A key is 32 random bytes (``lbx_`` + URL-safe base64), so a plain SHA-256 is the right hash: there is
nothing to brute-force that a slow password hash would protect. Comparison is constant-time.
File: ``$LIGHTBOX_API_KEYS_FILE`` (default ``$LIGHTBOX_HOME/api-keys.json``, ``~/.lightbox/api-keys.json``)::

    {"keys": [{"name": "pim", "sha256": "…", "created": "2026-11-24T03:00:00+00:00", "scopes": ["jobs"]}]}

Scopes: ``jobs`` (submit jobs and events; see and cancel the jobs this key submitted) and ``admin``
(also see and cancel every key's jobs). A key is a tenant: without ``admin`` it sees only its own jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


SCOPES = ("jobs", "admin")


def create_key(path: str | Path, name: str, replace: bool = False, scopes: list[str] | None = None) -> str:
    """Append a new key's hash to the file (created 0600 if missing); returns the key, shown once.
    ``replace``: an existing key of that name is revoked in the same write (rotation; its scopes are kept
    unless ``scopes`` is given)."""
    path = Path(path)
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-_." for c in name):
        raise ValueError(f"key name {name!r}: 1-64 letters, digits, '-', '_' or '.'")
    unknown = sorted(set(scopes or []) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {unknown} (known: {', '.join(SCOPES)})")
    doc = _read(path)
    old = next((k for k in doc["keys"] if k["name"] == name), None)
    if old is not None:
        if not replace:
            raise ValueError(f"{path}: a key named {name!r} exists (rotate it: lightbox api-key rotate {name})")
        doc["keys"] = [k for k in doc["keys"] if k["name"] != name]
    elif replace:
        raise ValueError(f"{path}: no key named {name!r} to rotate")
    kept = (old or {}).get("scopes") or ["jobs"]
    key = "lbx_" + secrets.token_urlsafe(32)
    doc["keys"].append({"name": name, "sha256": hash_key(key), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "scopes": sorted(set(scopes or kept) | {"jobs"})})
    _write(path, doc)
    return key


def list_keys(path: str | Path) -> list[dict]:
    """Name and creation time of each key (hashes stay in the file)."""
    return [{"name": k["name"], "created": k.get("created", ""), "scopes": k.get("scopes") or ["jobs"]}
            for k in _read(Path(path))["keys"]]


def revoke_key(path: str | Path, name: str) -> bool:
    path = Path(path)
    doc = _read(path)
    kept = [k for k in doc["keys"] if k["name"] != name]
    if len(kept) == len(doc["keys"]):
        return False
    _write(path, {"keys": kept})
    return True


class KeyStore:
    """Checks presented keys against the file; re-reads it when it changes (keys rotate without restarts)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._mtime: float | None = None
        self._hashes: dict[str, tuple[str, tuple[str, ...]]] = {}  # sha256 -> (name, scopes)

    def _load(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            self._hashes, self._mtime = {}, None
            return
        if mtime != self._mtime:
            self._hashes = {k["sha256"]: (k["name"], tuple(k.get("scopes") or ["jobs"])) for k in _read(self.path)["keys"]}
            self._mtime = mtime

    def identify(self, key: str | None) -> tuple[str, tuple[str, ...]] | None:
        """(name, scopes) of a valid key, else None."""
        if not key:
            return None
        self._load()
        presented = hash_key(key)
        found = None
        for stored, who in self._hashes.items():
            if hmac.compare_digest(stored, presented):
                found = who
        return found

    def check(self, key: str | None) -> str | None:
        """The key's name when valid, else None."""
        who = self.identify(key)
        return who[0] if who else None


def _read(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {"keys": []}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(f"{path}: expected {{\"keys\": [...]}}")
    return doc


def _write(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keys-")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=1)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
