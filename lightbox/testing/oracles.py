"""Reference implementations the tests compare production code with, and readers only tests need. Nothing in the
pipeline imports this module."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
from PIL import Image

from lightbox.imaging.compose import background_image
from lightbox.quality.consistency import NEAR_DUPLICATE_SHARE, TOLERANCES, _score
from lightbox.specs.models import Look


def consistency(entries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The catalog consistency score by a pass over every manifest entry (the run state keeps sums instead)."""
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for e in entries.values():
        if e.get("metrics"):
            by_channel.setdefault(e["channel"], []).append(e)
    channels: dict[str, Any] = {}
    for ch, rows in sorted(by_channel.items()):
        parts: dict[str, Any] = {}
        groups: dict[str, list[list[float]]] = {}
        for r in rows:
            if "border_mean" in r["metrics"]:
                groups.setdefault(r.get("category", ""), []).append(r["metrics"]["border_mean"])
        spreads = [(float(np.std(np.array(g, dtype=float), axis=0).max()), len(g)) for g in groups.values() if len(g) >= 2]
        if spreads:
            spread = sum(s * n for s, n in spreads) / sum(n for _, n in spreads)
            parts["background"] = {"spread": round(spread, 3), "score": _score(spread, TOLERANCES["background"])}
        fill = [r["metrics"]["fill_longest"] for r in rows if "fill_longest" in r["metrics"] and r.get("role", "main") == "main"]
        if len(fill) >= 2:
            spread = float(np.std(fill))
            parts["fill"] = {"spread": round(spread, 4), "score": _score(spread, TOLERANCES["fill"])}
        exp = [r["metrics"]["clipped"] for r in rows if "clipped" in r["metrics"]]
        if len(exp) >= 2:
            spread = float(np.std(exp))
            parts["exposure"] = {"spread": round(spread, 4), "score": _score(spread, TOLERANCES["exposure"])}
        score = round(float(np.mean([p["score"] for p in parts.values()])), 4) if parts else None
        channels[ch] = {"images": len(rows), "score": score, "parts": parts}
    scored = [c["score"] for c in channels.values() if c["score"] is not None]
    return {
        "score": round(float(np.mean(scored)), 4) if scored else None,
        "channels": channels,
        "near_duplicates": near_duplicates(by_channel),
        "tolerances": TOLERANCES,
    }


def near_duplicates(by_channel: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Pairs of different SKUs' images on one channel within the near-duplicate limit, by comparing every pair."""
    pairs = []
    for ch, rows in sorted(by_channel.items()):
        rows = [r for r in rows if r["metrics"].get("phash")]
        if len(rows) < 2:
            continue
        width = max(len(r["metrics"]["phash"]) for r in rows) * 4
        bits = np.array([[c == "1" for c in bin(int(r["metrics"]["phash"], 16))[2:].zfill(width)] for r in rows])
        limit = int(NEAR_DUPLICATE_SHARE * width)
        for i in range(len(rows) - 1):
            dist = (bits[i + 1 :] != bits[i]).sum(axis=1)
            for j in np.flatnonzero(dist <= limit):
                other = rows[i + 1 + int(j)]
                if other["sku"] != rows[i]["sku"]:
                    pairs.append({"channel": ch, "a": rows[i]["sku"], "b": other["sku"], "bits": int(dist[j])})
    return pairs


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def background_canvas(look: Look) -> np.ndarray:
    """A new H x W x 3 canvas of the look's background."""
    return np.array(background_image(look))


def digital_source_type(data: bytes) -> str | None:
    """Read the IPTC DigitalSourceType back from an encoded image's XMP, if any."""
    with Image.open(io.BytesIO(data)) as im:
        xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp") or b""
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
    m = re.search(r"DigitalSourceType>([^<]+)<", text)
    return m.group(1) if m else None
