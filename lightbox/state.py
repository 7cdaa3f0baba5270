"""Run state: what is live per brand, in a table engine (SQLite by default, PostgreSQL when shared).

One row per published image (``sku/output-name``) with what later runs need - sha256, size, ETag,
input fingerprint, QC status, the summary metrics of the catalog checks, the run that wrote it - and the
whole manifest entry as JSON. Each publish chunk commits its rows in one transaction the moment it is
published, so a crash loses only the chunks in flight, and a one-SKU update reads and writes that SKU's
rows, never the catalog. Catalog checks are kept incrementally beside the rows:

- ``lightbox_stats``: per brand, channel and category, the count, sum and sum of squares of each metric
  the consistency score takes a spread of (a changed row subtracts its old contribution, adds its new);
- ``lightbox_phash_bands`` / ``lightbox_near_duplicates``: each image's 768-bit perceptual hash cut in 16
  bands of 48 bits. Two hashes within 15 bits (2 %) agree exactly on at least one band (pigeonhole), so a
  changed image is compared only with the images sharing one of its bands, and the pairs found are kept.

Where the table lives: ``$LIGHTBOX_STATE_URL`` (any SQLAlchemy URL; ``postgresql+psycopg://...`` for many
machines or workers), else an SQLite file inside a local output root (``<root>/_lightbox/state.sqlite``,
so the state travels with the outputs), else, for an object-store root, an SQLite file under
``$LIGHTBOX_HOME/state/`` - that one is this machine's only, and another machine starts from the root's last
manifest export (what it finds live with the same bytes is recorded, not written again).

On first use for a brand the table imports the brand's previous state from its storage: the v1
``<brand>/manifest.json`` (kept as ``<brand>/_lightbox/manifest.v1.json``) or the last export.
Consumers get exports - ``<brand>/manifest.parquet`` and ``<brand>/manifest.jsonl`` - written by full
catalog runs and by ``lightbox manifest export``; a SKU-scoped run writes its changed rows to
``<brand>/_runs/<run>/changes.jsonl`` instead of rewriting exports of the whole catalog.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import threading
from collections import defaultdict
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lightbox.config import lightbox_home
from lightbox.errors import LightboxError
from lightbox.layout import STATE_DIR, BrandLayout
from lightbox.quality.consistency import TOLERANCES, score_from_stats
from lightbox.records import Output, Recorded
from lightbox.storage import Store

log = logging.getLogger(__name__)

MANIFEST_VERSION = 2
# kept per image for catalog-level checks (consistency, near-duplicates) across runs
SUMMARY_METRICS = ("fill_longest", "border_mean", "clipped", "phash", "sharpness", "fidelity", "upscale")
BANDS = 16  # phash bands: 768 bits / 16 = 48 bits; a near-duplicate (<= 15 bits apart) shares at least one
NEAR_DUPLICATE_SHARE = 0.02

meta = sa.MetaData()
entries_t = sa.Table(
    "lightbox_entries", meta,
    sa.Column("root", sa.String(1024), primary_key=True),
    sa.Column("brand", sa.String(128), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),  # sku/output-name
    sa.Column("sku", sa.String(256), nullable=False),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("category", sa.String(256), nullable=False),
    sa.Column("qc", sa.String(16), nullable=False),
    sa.Column("run_id", sa.String(128), nullable=False),
    sa.Column("uri", sa.Text),
    sa.Column("sha256", sa.String(64)),
    sa.Column("bytes", sa.BigInteger),
    sa.Column("etag", sa.String(128)),
    sa.Column("fingerprint", sa.String(128)),
    sa.Column("phash", sa.String(256)),
    sa.Column("published_at", sa.String(32)),
    sa.Column("doc", sa.Text, nullable=False),  # the whole manifest entry (JSON)
    sa.Column("eid", sa.BigInteger, nullable=False),  # _id(root, brand, name): what the phash bands point at
    sa.Index("ix_lightbox_entries_sku", "root", "brand", "sku"),
    sa.Index("ix_lightbox_entries_eid", "eid"),
    sa.Index("ix_lightbox_entries_run", "root", "brand", "run_id"),
)
brands_t = sa.Table(
    "lightbox_brands", meta,
    sa.Column("root", sa.String(1024), primary_key=True),
    sa.Column("brand", sa.String(128), primary_key=True),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("imported_from", sa.Text),
    sa.Column("imported", sa.Integer, nullable=False, default=0),
)
STAT_FIELDS = ("fill", "clip", "r", "g", "b")
stats_t = sa.Table(
    "lightbox_stats", meta,
    sa.Column("root", sa.String(1024), primary_key=True),
    sa.Column("brand", sa.String(128), primary_key=True),
    sa.Column("channel", sa.String(128), primary_key=True),
    sa.Column("category", sa.String(256), primary_key=True),
    sa.Column("images", sa.BigInteger, nullable=False, default=0),
    *[sa.Column(f"{f}_{p}", sa.Float if p != "n" else sa.BigInteger, nullable=False, default=0)
      for f in STAT_FIELDS for p in ("n", "s", "ss")],
)
bands_t = sa.Table(  # compact: 6.4 M rows for 400,000 images; the table is its own index on SQLite
    "lightbox_phash_bands", meta,
    sa.Column("scope", sa.BigInteger, primary_key=True, autoincrement=False),  # hash of (root, brand, channel)
    sa.Column("key", sa.BigInteger, primary_key=True, autoincrement=False),  # band number << 48 | band value
    sa.Column("eid", sa.BigInteger, primary_key=True, autoincrement=False),  # the entry's id (hash of its name)
    sqlite_with_rowid=False,
)
pairs_t = sa.Table(
    "lightbox_near_duplicates", meta,
    sa.Column("root", sa.String(1024), primary_key=True),
    sa.Column("brand", sa.String(128), primary_key=True),
    sa.Column("a_name", sa.String(512), primary_key=True),
    sa.Column("b_name", sa.String(512), primary_key=True),
    sa.Column("channel", sa.String(128), nullable=False),
    sa.Column("a", sa.String(256), nullable=False),
    sa.Column("b", sa.String(256), nullable=False),
    sa.Column("bits", sa.Integer, nullable=False),
    sa.Index("ix_lightbox_pairs_b", "root", "brand", "b_name"),
)


class StateError(RuntimeError):
    """The state table cannot be reached or written (the chunk fails and is retried; nothing is dropped)."""


class StateDamaged(LightboxError):
    """The run state's SQLite file is not a database any more (overwritten, truncated): retrying cannot help."""


def state_url(store: Store, url: str | None = None) -> tuple[str, str]:
    """(SQLAlchemy URL, root key) of the state of ``store``'s root. The root key is empty for the SQLite
    file inside a local root (the folder can move), else the root's URI (a shared database holds many)."""
    url = url or os.environ.get("LIGHTBOX_STATE_URL") or None
    root = store.uri("").rstrip("/")
    if url:
        return url, root
    if store.local:
        path = Path(root) / STATE_DIR / "state.sqlite"
        return f"sqlite:///{path}", ""
    path = lightbox_home() / "state" / f"{hashlib.sha256(root.encode()).hexdigest()[:16]}.sqlite"
    return f"sqlite:///{path}", root


def state_exists(store: Store, url: str | None = None) -> bool:
    """Whether there is a run state to read, without creating one (an SQLite file is created on open)."""
    url, _ = state_url(store, url)
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        return bool(path) and (path == ":memory:" or Path(path).exists())
    return True


_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _engine(url: str) -> Engine:
    """A server database: one engine (connection pool) per URL per process, tables created on first use.
    An SQLite file: a fresh engine without a pool each time (opening one is cheap, and a file removed or
    replaced under a long-lived process is then never written through a stale handle)."""
    if url.startswith("sqlite"):
        path = sa.engine.make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _connect(dbapi_conn, _record) -> None:  # DB-API connection
            dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        @sa.event.listens_for(engine, "begin")
        def _begin(conn) -> None:  # Connection
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # writers queue at BEGIN: no deadlocked lock upgrades
        return _create_tables(engine, url)
    with _engines_lock:
        if url not in _engines:
            _engines[url] = _create_tables(sa.create_engine(url, pool_pre_ping=True), url)
        return _engines[url]


def _create_tables(engine: Engine, url: str) -> Engine:
    """Create missing tables in one transaction that writers of the same database take in turn (workers
    starting at once on a fresh database would otherwise race on CREATE TABLE)."""
    try:
        with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (the listener above)
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7420115)")  # released at commit
            meta.create_all(conn)
    except sa.exc.DatabaseError as e:
        text = str(getattr(e, "orig", e)).lower()
        if engine.dialect.name == "sqlite" and ("not a database" in text or "malformed" in text):
            path = engine.url.database or url
            raise StateDamaged(
                f"run state {path} is damaged ({text.splitlines()[0][:80]}): move it aside (mv {path} {path}.damaged); the next "
                "run rebuilds it from the brand's manifest export beside the images and re-hashes what is live") from e
        raise StateError(f"run state {_safe(url)}: cannot create its tables ({type(e).__name__})") from e
    except sa.exc.SQLAlchemyError as e:
        raise StateError(f"run state {_safe(url)}: cannot create its tables ({type(e).__name__})") from e
    return engine


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(unparseable URL)"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def entry_for(o: Output, run_id: str, now: str) -> dict[str, Any]:
    return {
        "sku": o.sku,
        "channel": o.channel,
        "category": o.category,
        "variant": o.variant,
        "row": o.row,
        "photo": o.photo,
        "role": o.role,
        "source": o.source,
        "title": o.title,
        "handle": o.handle,
        "uri": o.uri,
        "sha256": o.sha256,
        "etag": o.etag,
        "bytes": o.bytes,
        "width": o.width,
        "height": o.height,
        "fingerprint": o.fingerprint,
        "qc": o.qc,
        "qc_reasons": o.qc_reasons,
        "engine": o.engine,
        "engine_version": o.engine_version,
        "seed": o.seed,
        "alt_text": o.alt_text,
        "metrics": {k: o.metrics[k] for k in SUMMARY_METRICS if k in o.metrics},
        "ai_generated": o.ai_generated,
        "generation": o.generation,
        "cutout": {"method": o.metrics["cutout_method"], "reason": o.metrics.get("cutout_reason", ""),
                   "confidence": o.metrics.get("cutout_confidence")}
        if "cutout_method" in o.metrics else None,
        "placement": o.metrics.get("placement"),
        "timings_ms": o.timings_ms,
        "run_id": run_id,
        "published_at": now,
    }


def _stat_values(entry: dict[str, Any]) -> dict[str, float]:
    """What an image adds to the consistency sums: background and exposure of every photo (a product's
    photos must match each other as its products do), fill of main images only (an additional photo is
    framed at its main photo's scale on purpose)."""
    m = entry.get("metrics") or {}
    vals: dict[str, float] = {}
    if isinstance(m.get("fill_longest"), (int, float)) and entry.get("role", "main") == "main":
        vals["fill"] = float(m["fill_longest"])
    if isinstance(m.get("clipped"), (int, float)):
        vals["clip"] = float(m["clipped"])
    bm = m.get("border_mean")
    if isinstance(bm, list) and len(bm) == 3:
        vals.update(r=float(bm[0]), g=float(bm[1]), b=float(bm[2]))
    return vals


def _bits(phash: str | None) -> int | None:
    try:
        return int(phash, 16) if phash else None
    except ValueError:
        return None


def _bands(phash: str) -> list[int]:
    """The hash's 16 bands as keys ``band << 48 | value`` (768 bits; shorter hashes are zero-padded)."""
    v = int(phash, 16)
    return [(i << 48) | ((v >> (48 * i)) & ((1 << 48) - 1)) for i in range(BANDS)]


def _id(*parts: str) -> int:
    """A stable 63-bit id of a name (fits a signed BIGINT everywhere)."""
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big") >> 1


def _near_limit(phash: str) -> int:
    return int(NEAR_DUPLICATE_SHARE * max(len(phash), 1) * 4)


class RunState:
    """The run state of one output root. Cheap to construct (a server database's engine is pooled per
    process; an SQLite file is opened per use); pass it to whoever records or reads what is live."""

    def __init__(self, url: str, root: str = "") -> None:
        self.url, self.root = url, root
        self.engine = _engine(url)

    @classmethod
    def of(cls, store: Store, url: str | None = None) -> RunState:
        return cls(*state_url(store, url))

    def describe(self) -> str:
        return _safe(self.url)

    def _begin(self) -> AbstractContextManager[Connection]:
        return self.engine.begin()

    def _key(self, table: sa.Table, brand: str) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.root == self.root, table.c.brand == brand)

    # -- first use ---------------------------------------------------------------------------------
    def ensure_brand(self, store: Store, brand: str) -> int:
        """Create the brand's state on first use, importing what its storage holds: the v1 manifest
        (moved aside once imported) or the last export. Returns the entries imported."""
        if self.knows(brand):
            return 0
        docs, source = _previous_state(store, brand)
        with self._begin() as conn:
            if conn.execute(sa.select(brands_t.c.brand).where(self._key(brands_t, brand))).first():
                return 0  # another process did it first
            conn.execute(brands_t.insert().values(root=self.root, brand=brand, created_at=_now(), imported_from=source,
                                                  imported=len(docs)))
            self._upsert(conn, brand, docs)
        if source == BrandLayout(brand).v1_manifest:
            store.write_atomic(BrandLayout(brand).v1_kept, store.read(source))
            store.delete(source)
        if docs:
            log.info("%s: run state imported %d entries from %s", brand, len(docs), store.uri(source or ""))
        return len(docs)

    # -- reads ------------------------------------------------------------------------------------
    def knows(self, brand: str) -> bool:
        """Whether the brand's state exists here (else the next run under the lock imports it)."""
        with self.engine.connect() as conn:
            return conn.execute(sa.select(brands_t.c.brand).where(self._key(brands_t, brand))).first() is not None

    def entries(self, brand: str, skus: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        """Manifest entries of the brand keyed ``sku/output-name``: all of them, or those of ``skus``."""
        q = sa.select(entries_t.c.name, entries_t.c.doc).where(self._key(entries_t, brand))
        out: dict[str, dict[str, Any]] = {}
        with self.engine.connect() as conn:
            if skus is None:
                rows = conn.execute(q).all()
            else:
                wanted, rows = sorted(set(skus)), []
                for i in range(0, len(wanted), 500):
                    rows.extend(conn.execute(q.where(entries_t.c.sku.in_(wanted[i:i + 500]))).all())
        for name, doc in rows:
            out[name] = json.loads(doc)
        return out

    def count(self, brand: str) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(entries_t).where(self._key(entries_t, brand))).scalar_one()

    def query(self, brand: str, *, sku: str | None = None, channel: str | None = None, qc: str | None = None,
              run: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        q = sa.select(entries_t.c.doc).where(self._key(entries_t, brand)).order_by(entries_t.c.name)
        for col, value in (("sku", sku), ("channel", channel), ("qc", qc), ("run_id", run)):
            if value is not None:
                q = q.where(entries_t.c[col] == value)
        if limit is not None:
            q = q.limit(limit)
        with self.engine.connect() as conn:
            return [json.loads(d) for (d,) in conn.execute(q)]

    # -- writes -----------------------------------------------------------------------------------
    def record(self, brand: str, outputs: Iterable[Output], run_id: str) -> int:
        """Commit the rows of the outputs a chunk made live (or re-rendered to the same bytes), in one
        transaction with the catalog-check indexes. Idempotent: committing the same outputs again changes
        nothing. Raises :class:`StateError` when the table cannot be written."""
        now = _now()
        docs = {f"{o.sku}/{o.name}": entry_for(o, run_id, now) for o in outputs if o.live}  # written, or rendered to the same bytes
        if not docs:
            return 0
        try:
            with self._begin() as conn:
                self._upsert(conn, brand, docs)
        except sa.exc.SQLAlchemyError as e:
            raise StateError(f"run state {self.describe()}: could not record {len(docs)} outputs of {brand} "
                             f"({type(e).__name__})") from e
        return len(docs)

    def _upsert(self, conn: Connection, brand: str, docs: dict[str, dict[str, Any]]) -> None:
        if not docs:
            return
        names = sorted(docs)
        old: dict[str, dict[str, Any]] = {}
        for i in range(0, len(names), 500):
            q = sa.select(entries_t.c.name, entries_t.c.doc).where(self._key(entries_t, brand), entries_t.c.name.in_(names[i:i + 500]))
            old.update((n, json.loads(d)) for n, d in conn.execute(q))
        rows = [{"root": self.root, "brand": brand, "name": n, "sku": d["sku"], "channel": d["channel"],
                 "category": d.get("category") or "", "qc": d.get("qc") or "not_run", "run_id": d.get("run_id") or "",
                 "uri": d.get("uri"), "sha256": d.get("sha256"), "bytes": d.get("bytes"), "etag": d.get("etag"),
                 "fingerprint": d.get("fingerprint"), "phash": (d.get("metrics") or {}).get("phash"),
                 "published_at": d.get("published_at"), "doc": json.dumps(d, sort_keys=True),
                 "eid": _id(self.root, brand, n)} for n, d in docs.items()]
        pk = ("root", "brand", "name")
        self._merge(conn, entries_t, rows, pk)
        self._update_stats(conn, brand, old, docs)
        self._update_pairs(conn, brand, old, docs)

    def _merge(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]], pk: tuple[str, ...],
               add: tuple[str, ...] = ()) -> None:
        """Insert or update rows; columns in ``add`` are incremented by the row's value instead of set."""
        if not rows:
            return
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        for i in range(0, len(rows), 500):
            stmt = insert(table).values(rows[i:i + 500])
            cols = {c: (table.c[c] + stmt.excluded[c]) if c in add else stmt.excluded[c]
                    for c in rows[0] if c not in pk}
            conn.execute(stmt.on_conflict_do_update(index_elements=list(pk), set_=cols))

    def remove(self, brand: str, names: Iterable[str]) -> list[dict[str, Any]]:
        """Delete the rows ``names`` (``sku/output-name``) with their share of the catalog checks, in one
        transaction; returns the entries removed (names not in the table are skipped)."""
        wanted = sorted(set(names))
        if not wanted:
            return []
        try:
            with self._begin() as conn:
                old: dict[str, dict[str, Any]] = {}
                for i in range(0, len(wanted), 500):
                    part = wanted[i:i + 500]
                    q = sa.select(entries_t.c.name, entries_t.c.doc).where(self._key(entries_t, brand), entries_t.c.name.in_(part))
                    old.update((n, json.loads(d)) for n, d in conn.execute(q))
                    conn.execute(entries_t.delete().where(self._key(entries_t, brand), entries_t.c.name.in_(part)))
                self._update_stats(conn, brand, old, {}, gone=old)
                self._forget_pairs(conn, brand, old, list(old))
        except sa.exc.SQLAlchemyError as e:
            raise StateError(f"run state {self.describe()}: could not remove {len(wanted)} entries of {brand} "
                             f"({type(e).__name__})") from e
        return [{"key": n, **d} for n, d in sorted(old.items())]

    def _update_stats(self, conn: Connection, brand: str, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]],
                      gone: dict[str, dict[str, Any]] | None = None) -> None:
        delta: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))

        def add(doc: dict[str, Any], sign: int) -> None:
            d = delta[(doc["channel"], doc.get("category") or "")]
            vals = _stat_values(doc)
            if doc.get("metrics"):
                d["images"] += sign
            for f, v in vals.items():
                d[f"{f}_n"] += sign
                d[f"{f}_s"] += sign * v
                d[f"{f}_ss"] += sign * v * v

        for name, doc in new.items():
            if name in old:
                add(old[name], -1)
            add(doc, +1)
        for doc in (gone or {}).values():
            add(doc, -1)
        cols = ["images", *[f"{f}_{p}" for f in STAT_FIELDS for p in ("n", "s", "ss")]]
        rows = [{"root": self.root, "brand": brand, "channel": ch, "category": cat,
                 **{c: (int(d.get(c, 0)) if c == "images" or c.endswith("_n") else d.get(c, 0.0)) for c in cols}}
                for (ch, cat), d in sorted(delta.items()) if any(d.values())]
        self._merge(conn, stats_t, rows, ("root", "brand", "channel", "category"), add=tuple(cols))

    def _update_pairs(self, conn: Connection, brand: str, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> None:
        def phash_of(doc: dict[str, Any] | None) -> str | None:
            h = ((doc or {}).get("metrics") or {}).get("phash")
            return h if _bits(h) is not None else None

        changed = [n for n, d in new.items() if phash_of(old.get(n)) != phash_of(d) or old.get(n, {}).get("channel") != d["channel"]]
        if not changed:
            return
        self._forget_pairs(conn, brand, old, changed)
        band_rows: list[dict[str, Any]] = []
        pair_rows: list[dict[str, Any]] = []
        batch: dict[tuple[int, int], list[str]] = defaultdict(list)  # this commit's bands (not in the table yet)
        populated: dict[int, bool] = {}
        for name in changed:
            doc = new[name]
            phash = phash_of(doc)
            if phash is None:
                continue
            bits, ch, keys = int(phash, 16), doc["channel"], _bands(phash)
            scope = _id(self.root, brand, ch)
            if scope not in populated:  # a first import into an empty index skips the lookups
                populated[scope] = conn.execute(sa.select(bands_t.c.eid).where(bands_t.c.scope == scope).limit(1)).first() is not None
            candidates: dict[str, tuple[str, str]] = {}
            if populated[scope]:  # the live images of the channel sharing a band: 16 seeks in the band index
                eids = sa.select(bands_t.c.eid).where(bands_t.c.scope == scope, bands_t.c.key.in_(keys)).distinct()
                q = sa.select(entries_t.c.name, entries_t.c.sku, entries_t.c.phash).where(entries_t.c.eid.in_(eids))
                candidates.update((n, (sku, h)) for n, sku, h in conn.execute(q))
            for k in keys:
                for n in batch.get((scope, k), ()):
                    candidates[n] = (new[n]["sku"], new[n]["metrics"]["phash"])
            for other, (sku, other_hash) in candidates.items():
                ob = _bits(other_hash)
                if ob is None or sku == doc["sku"] or other == name:
                    continue
                dist = (bits ^ ob).bit_count()
                if dist <= _near_limit(phash):
                    (a, sa_), (b, sb) = sorted(((name, doc["sku"]), (other, sku)))
                    pair_rows.append({"root": self.root, "brand": brand, "a_name": a, "b_name": b, "channel": ch,
                                      "a": sa_, "b": sb, "bits": dist})
            eid = _id(self.root, brand, name)
            for k in keys:
                batch[(scope, k)].append(name)
                band_rows.append({"scope": scope, "key": k, "eid": eid})
        for i in range(0, len(band_rows), 5000):
            conn.execute(bands_t.insert(), band_rows[i:i + 5000])
        if pair_rows:
            conn.execute(pairs_t.insert(), pair_rows)

    def _forget_pairs(self, conn: Connection, brand: str, old: dict[str, dict[str, Any]], names: list[str]) -> None:
        """Drop the phash bands and near-duplicate pairs of the images ``names`` as ``old`` recorded them."""
        for n in names:
            h = ((old.get(n) or {}).get("metrics") or {}).get("phash")
            if _bits(h) is not None:
                scope = _id(self.root, brand, old[n]["channel"])
                conn.execute(bands_t.delete().where(bands_t.c.scope == scope, bands_t.c.key.in_(_bands(h)),
                                                    bands_t.c.eid == _id(self.root, brand, n)))
        for i in range(0, len(names), 500):
            part = names[i:i + 500]
            conn.execute(pairs_t.delete().where(self._key(pairs_t, brand), pairs_t.c.a_name.in_(part)))
            conn.execute(pairs_t.delete().where(self._key(pairs_t, brand), pairs_t.c.b_name.in_(part)))

    # -- catalog checks ---------------------------------------------------------------------------
    def consistency(self, brand: str) -> dict[str, Any]:
        """The catalog consistency of the live images (see lightbox/quality/consistency.py) from the kept
        sums, and the near-duplicate pairs kept by the band index: no pass over the catalog."""
        with self.engine.connect() as conn:
            stats = [dict(r._mapping) for r in conn.execute(sa.select(stats_t).where(self._key(stats_t, brand)))]
            pairs = [dict(r._mapping) for r in conn.execute(
                sa.select(pairs_t.c.channel, pairs_t.c.a, pairs_t.c.b, pairs_t.c.bits).where(self._key(pairs_t, brand))
                .order_by(pairs_t.c.channel, pairs_t.c.a_name, pairs_t.c.b_name))]
        result = score_from_stats(stats)
        result["near_duplicates"] = pairs
        result["tolerances"] = TOLERANCES
        return result

    # -- exports ----------------------------------------------------------------------------------
    def _export_rows(self, brand: str, run_id: str | None = None) -> list[dict[str, Any]]:
        """Entries as exported (with their ``key``), by key: all of the brand's, or those a run wrote."""
        q = sa.select(entries_t.c.name, entries_t.c.doc).where(self._key(entries_t, brand)).order_by(entries_t.c.name)
        if run_id is not None:
            q = q.where(entries_t.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [{"key": n, **json.loads(d)} for n, d in conn.execute(q)]

    def export(self, store: Store, brand: str) -> str:
        """Write ``manifest.parquet`` and ``manifest.jsonl`` of every live entry; returns the JSON Lines URI."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._export_rows(brand)
        parquet_key, jsonl_key = BrandLayout(brand).exports
        _write_jsonl(store, jsonl_key, rows)
        flat = [{**{k: v for k, v in r.items() if k not in ("metrics", "timings_ms", "cutout", "generation", "qc_reasons")},
                 "qc_reasons": json.dumps(r.get("qc_reasons") or []), "metrics": json.dumps(r.get("metrics") or {}),
                 "timings_ms": json.dumps(r.get("timings_ms") or {}), "cutout": json.dumps(r.get("cutout")),
                 "generation": json.dumps(r.get("generation"))} for r in rows]
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(flat) if flat else pa.table({"sku": pa.array([], pa.string())}), buf)
        store.write_atomic(parquet_key, buf.getvalue())
        return store.uri(jsonl_key)

    def write_changes(self, store: Store, brand: str, run_id: str) -> str:
        """The rows this run recorded, as JSON Lines in its run folder (a SKU-scoped run's export)."""
        key = BrandLayout(brand).changes(run_id)
        _write_jsonl(store, key, self._export_rows(brand, run_id))
        return store.uri(key)


def _write_jsonl(store: Store, key: str, rows: list[dict[str, Any]]) -> None:
    store.write_atomic(key, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows).encode())


def _previous_state(store: Store, brand: str) -> tuple[dict[str, dict[str, Any]], str | None]:
    """What the storage says was live before this state table knew the brand: the v1 manifest or the
    last JSON Lines export."""
    layout = BrandLayout(brand)
    try:
        doc = json.loads(store.read(layout.v1_manifest))
        return dict(doc.get("entries", {})), layout.v1_manifest
    except FileNotFoundError:
        pass
    try:
        body = store.read(layout.exports[1])
    except FileNotFoundError:
        return {}, None
    out = {}
    for line in body.decode().splitlines():
        if line.strip():
            e = json.loads(line)
            out[e.pop("key")] = e
    return out, layout.exports[1]


def live_matches(store: Store, key: str, rec: Recorded | None) -> bool:
    """Whether the live object is the one the state vouches for. Existence alone is not enough: a run
    killed mid-publish leaves objects the state does not describe. Same size (one HEAD), then on local
    disk the same SHA-256 (a read); on an object store the same ETag as recorded just after the write (any
    later write changes it), or, when none was recorded, the same SHA-256 (a GET)."""
    if rec is None:
        return False
    stamp = store.stamp(key)
    if stamp is None or stamp[0] != rec.bytes:
        return False
    if not store.local and rec.etag and stamp[1]:
        return stamp[1] == rec.etag
    return store.sha256(key) == rec.sha256
