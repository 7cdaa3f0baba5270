"""Measure an encoded output and gate it by its channel's rules (rules are data: presets/channels.yaml).

Metrics are measured on the bytes that would be published, not on the in-memory image:
- width, height, longest_side, format, mode, has_alpha, file_bytes;
- border_purity: share of pixels in the outer border strip (0.5 % of the short side, >= 2 px) exactly
  equal to the channel's forced background colour (only for channels that force one);
- fill_longest: product bounding box / frame, by the longer ratio of the two sides; fill_area: bbox
  area / frame area. The product is every pixel that differs from the expected background by more
  than 4 levels; rows at the bottom that hold only hue-neutral darkening (the contact shadow) are
  trimmed, so the shadow does not count as product.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any

import numpy as np
from PIL import Image

from lightbox.imaging.compose import background_rows
from lightbox.records import Output
from lightbox.specs.models import Look

PRODUCT_DELTA = 4.0


def measure(data: bytes, look: Look) -> dict[str, Any]:
    im = Image.open(io.BytesIO(data))
    im.load()
    ch = look.channel
    w, h = im.size
    m: dict[str, Any] = {
        "width": w,
        "height": h,
        "longest_side": max(w, h),
        "format": im.format,
        "mode": im.mode,
        "has_alpha": im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info,
        "file_bytes": len(data),
    }
    if look.generation is not None:
        return m  # an AI scene has no plain background: fill comes from the placement (see check_output)
    if look.background == "transparent":
        alpha = np.asarray(im.getchannel("A")) if m["has_alpha"] else np.full((h, w), 255, np.uint8)
        fg = alpha > 0
    else:
        rgb = np.asarray(im.convert("RGB"))
        if (w, h) == (ch.width, ch.height):
            expected = background_rows(look).astype(np.int16)  # H x 1 x 3
        else:
            expected = np.median(rgb[[0, -1]].reshape(-1, 3), axis=0).astype(np.int16)[None, None, :]
        fg = np.zeros((h, w), dtype=bool)
        for k in range(3):  # per plane: far faster than reducing over the colour axis
            fg |= np.abs(rgb[..., k].astype(np.int16) - expected[..., k]) > PRODUCT_DELTA
        rows = np.flatnonzero(fg.any(axis=1))
        if rows.size:
            _trim_shadow_rows(fg, rgb, expected, rows, look)
        if isinstance(ch.background, tuple):
            strip = max(2, round(0.005 * min(w, h)))
            border = np.ones((h, w), dtype=bool)
            border[strip:-strip, strip:-strip] = False
            m["border_purity"] = float((rgb[border] == np.array(ch.background, np.uint8)).all(axis=1).mean())
    if fg.any():
        rows = np.flatnonzero(fg.any(axis=1))
        cols = np.flatnonzero(fg.any(axis=0))
        bw, bh = cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1
        m["fill_longest"] = float(max(bw / w, bh / h))
        m["fill_area"] = float(bw * bh / (w * h))
    else:
        m["fill_longest"] = 0.0
        m["fill_area"] = 0.0
    return m


def _trim_shadow_rows(fg: np.ndarray, rgb: np.ndarray, expected: np.ndarray, rows: np.ndarray, look: Look) -> None:
    """Clear the bottom rows of ``fg`` that hold only hue-neutral darkening of the background (the
    contact shadow). Works upwards in blocks and stops at the first row with a solid product pixel."""
    depth = (look.shadow.opacity if look.shadow.enabled else 0.0) + 0.02
    bottom = int(rows[-1]) + 1
    top_limit = int(rows[0])
    step = 64
    while bottom > top_limit:
        start = max(top_limit, bottom - step)
        block = rgb[start:bottom].astype(np.float32)
        exp = np.broadcast_to(expected[start:bottom] if expected.shape[0] > 1 else expected, block.shape).astype(np.float32)
        ratio = block / np.maximum(exp, 1.0)
        rmin = np.minimum(np.minimum(ratio[..., 0], ratio[..., 1]), ratio[..., 2])
        rmax = np.maximum(np.maximum(ratio[..., 0], ratio[..., 1]), ratio[..., 2])
        shadow_like = (rmax <= 1.002) & (rmin >= 1.0 - depth) & (rmax - rmin <= 0.03)
        solid_rows = np.flatnonzero((fg[start:bottom] & ~shadow_like).any(axis=1))
        if solid_rows.size:
            fg[start + int(solid_rows[-1]) + 1 :] = False
            return
        bottom = start
    fg[top_limit:] = False


def evaluate(metrics: dict[str, Any], look: Look) -> tuple[str, list[str]]:
    """('passed' | 'warned' | 'failed', reasons). A metric a rule names but nobody measured fails."""
    reasons: list[str] = []
    worst = "passed"
    for rule in look.channel.rules:
        if rule.metric not in metrics:
            reasons.append(f"{rule.metric}: not measured for this channel")
            worst = "failed"
            continue
        if not rule.check(metrics[rule.metric]):
            reasons.append(f"[{rule.severity}] {rule.describe(metrics[rule.metric])}")
            if rule.severity == "fail":
                worst = "failed"
            elif worst == "passed":
                worst = "warned"
    return worst, reasons


def check_output(output: Output, data: bytes, look: Look) -> Output:
    metrics = {**output.metrics, **measure(data, look)}  # measured values win over recorded ones
    status, reasons = evaluate(metrics, look)
    if output.sha256 and output.sha256 != hashlib.sha256(data).hexdigest():
        status, reasons = "failed", [*reasons, "staged bytes differ from what generate wrote"]
    return output.model_copy(update={"qc": status, "qc_reasons": reasons, "metrics": metrics})
