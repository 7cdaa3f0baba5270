"""Catalog consistency: how alike the live catalog's images are, as one score with its parts.

Computed over the manifest after a run (every live image, not only this run's), per channel:

| part | spread measured | a score of 0 at |
|---|---|---|
| background | std of the border's mean colour (max over R, G, B), within each category (templates may give a category its own background on purpose) | 8 levels |
| fill | std of fill_longest of main images (an additional photo keeps its main photo's scale on purpose) | 0.05 (5 % of the frame) |
| exposure | std of the share of product pixels clipped to white or black | 0.05 |

Background and exposure count every photo of a product (its photos must match each other as products do).
part score = 1 - min(1, spread / tolerance); channel score = mean of its parts; catalog score = mean
over channels. 1.0 = every image framed, lit and backed alike. Near-duplicates: images of different
SKUs on the same channel whose perceptual hashes (768 bits) differ in at most 2 % of their bits (a re-used photo differs in a handful).

The run state keeps the sums (:func:`score_from_stats`); ``lightbox.testing.oracles.consistency`` computes the same
score by a pass over every entry, the reference the tests compare it with.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TOLERANCES = {"background": 8.0, "fill": 0.05, "exposure": 0.05}
NEAR_DUPLICATE_SHARE = 0.02


def _score(spread: float, tol: float) -> float:
    return round(1.0 - min(1.0, spread / tol), 4)


def spread(n: float, s: float, ss: float) -> float:
    """Population standard deviation from count, sum and sum of squares."""
    if n <= 0:
        return 0.0
    mean = s / n
    return math.sqrt(max(0.0, ss / n - mean * mean))


def score_from_stats(stats: list[dict[str, Any]]) -> dict[str, Any]:
    """The same score from kept sums (``lightbox_stats`` rows: per channel and category, the count, sum and
    sum of squares of each metric) instead of a pass over every image: what the run state keeps up to date."""
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for row in stats:
        by_channel.setdefault(row["channel"], []).append(row)
    channels: dict[str, Any] = {}
    for ch, rows in sorted(by_channel.items()):
        parts: dict[str, Any] = {}
        spreads = [(max(spread(r["r_n"], r[f"{c}_s"], r[f"{c}_ss"]) for c in "rgb"), r["r_n"]) for r in rows if r["r_n"] >= 2]
        if spreads:
            s = sum(v * n for v, n in spreads) / sum(n for _, n in spreads)
            parts["background"] = {"spread": round(s, 3), "score": _score(s, TOLERANCES["background"])}
        for part, f in (("fill", "fill"), ("exposure", "clip")):
            n = sum(r[f"{f}_n"] for r in rows)
            if n >= 2:
                s = spread(n, sum(r[f"{f}_s"] for r in rows), sum(r[f"{f}_ss"] for r in rows))
                parts[part] = {"spread": round(s, 4), "score": _score(s, TOLERANCES[part])}
        images = sum(r["images"] for r in rows)
        if images <= 0:
            continue
        score = round(float(np.mean([p["score"] for p in parts.values()])), 4) if parts else None
        channels[ch] = {"images": images, "score": score, "parts": parts}
    scored = [c["score"] for c in channels.values() if c["score"] is not None]
    return {"score": round(float(np.mean(scored)), 4) if scored else None, "channels": channels}
