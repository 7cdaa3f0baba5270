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

from lightbox.imaging.compose import background_canvas
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
    if look.background == "transparent":
        alpha = np.asarray(im.getchannel("A")) if m["has_alpha"] else np.full((h, w), 255, np.uint8)
        fg = alpha > 0
    else:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
        if (w, h) == (ch.width, ch.height):
            expected = background_canvas(look)
        else:
            expected = np.broadcast_to(np.median(rgb[[0, -1]].reshape(-1, 3), axis=0), rgb.shape)
        diff = np.abs(rgb - expected).max(axis=2)
        fg = diff > PRODUCT_DELTA
        # The contact shadow is a hue-neutral darkening of the background under the product: trim rows
        # at the bottom of the box that hold nothing else (a white product keeps its shaded edges).
        ratio = rgb / np.maximum(expected, 1.0)
        rmin, rmax = ratio.min(axis=2), ratio.max(axis=2)
        depth = (look.shadow.opacity if look.shadow.enabled else 0.0) + 0.02
        shadow_like = (rmax <= 1.002) & (rmin >= 1.0 - depth) & (rmax - rmin <= 0.03)
        solid = fg & ~shadow_like
        rows = np.flatnonzero(fg.any(axis=1))
        if rows.size:
            last_solid = np.flatnonzero(solid.any(axis=1))
            if last_solid.size:
                fg[last_solid[-1] + 1 :] = False
        if isinstance(ch.background, tuple):
            strip = max(2, round(0.005 * min(w, h)))
            border = np.ones((h, w), dtype=bool)
            border[strip:-strip, strip:-strip] = False
            m["border_purity"] = float((rgb[border] == np.array(ch.background, np.float32)).all(axis=1).mean())
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
    metrics = measure(data, look)
    status, reasons = evaluate(metrics, look)
    if output.sha256 and output.sha256 != hashlib.sha256(data).hexdigest():
        status, reasons = "failed", [*reasons, "staged bytes differ from what generate wrote"]
    return output.model_copy(update={"qc": status, "qc_reasons": reasons, "metrics": metrics})
