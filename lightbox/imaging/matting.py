"""Edge refinement of a segmentation model's soft mask: closed-form alpha matting in the uncertain band
and foreground colour estimation there (pymatting), so a new background shows no halo of the old one.

Pixels the model is sure of keep the source's values exactly (alpha 255, colour untouched); only the
band around the outline gets a fractional alpha and a recovered colour. Large bands are matted at a
reduced scale (closed-form matting costs grow with the pixel count) and the alpha brought back up.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

SURE = 0.95  # model probabilities at or above: product; at or below 1 - SURE: background
MAX_MATTING_PIXELS = 1_000_000  # closed-form matting is solved at most this large


def trimap(soft: np.ndarray) -> np.ndarray:
    """1 (product), 0 (background), 0.5 (unknown: the model's unsure pixels and a band around its outline)."""
    h, w = soft.shape
    solid = soft >= 0.5
    band = max(2, round(0.004 * min(h, w)))
    edge = solid ^ ndimage.binary_erosion(solid, border_value=1)
    unknown = ((soft > 1 - SURE) & (soft < SURE)) | ndimage.binary_dilation(edge, iterations=band)
    tri = np.where(solid, 1.0, 0.0)
    tri[unknown] = 0.5
    return tri


def refine(rgb: np.ndarray, soft: np.ndarray, matting: str = "closed_form") -> tuple[np.ndarray, np.ndarray]:
    """(alpha uint8, RGB uint8) from the source and the model's soft mask (float 0..1, source size)."""
    soft = np.clip(soft.astype(np.float32), 0.0, 1.0)
    if matting == "none":
        return np.rint(soft * 255).astype(np.uint8), rgb.copy()
    tri = trimap(soft)
    unknown = tri == 0.5
    alpha = tri.astype(np.float64)
    rgb_out = rgb.copy()
    if not unknown.any():
        return np.rint(alpha * 255).astype(np.uint8), rgb_out
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    h, w = soft.shape
    ys, xs = np.nonzero(unknown)
    pad = 8
    y0, y1 = max(0, ys.min() - pad), min(h, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(w, xs.max() + pad + 1)
    img = rgb[y0:y1, x0:x1].astype(np.float64) / 255.0
    sub_tri = tri[y0:y1, x0:x1]
    ch, cw = sub_tri.shape
    scale = min(1.0, float(np.sqrt(MAX_MATTING_PIXELS / (ch * cw))))
    if not ((sub_tri == 0.0).any() and (sub_tri == 1.0).any()):
        # nothing sure on one side to matte against (a mask covering its whole box): keep the model's alpha
        sub_alpha = soft[y0:y1, x0:x1].astype(np.float64)
    elif scale < 1.0:
        sw, sh = max(8, round(cw * scale)), max(8, round(ch * scale))
        small = np.asarray(Image.fromarray(rgb[y0:y1, x0:x1]).resize((sw, sh), Image.Resampling.BILINEAR), np.float64) / 255.0
        small_tri = np.asarray(Image.fromarray(sub_tri.astype(np.float32)).resize((sw, sh), Image.Resampling.NEAREST), np.float64)
        small_alpha = estimate_alpha_cf(small, small_tri)
        sub_alpha = np.asarray(Image.fromarray(small_alpha.astype(np.float32)).resize((cw, ch), Image.Resampling.BILINEAR), np.float64)
    else:
        sub_alpha = estimate_alpha_cf(img, sub_tri)
    sub_alpha = np.clip(sub_alpha, 0.0, 1.0)
    sub_unknown = unknown[y0:y1, x0:x1]
    merged = np.where(sub_unknown, sub_alpha, sub_tri)
    alpha[y0:y1, x0:x1] = merged
    a8 = np.rint(alpha * 255).astype(np.uint8)
    mixed = (a8[y0:y1, x0:x1] > 0) & (a8[y0:y1, x0:x1] < 255)
    if mixed.any():
        fg = estimate_foreground_ml(img, merged)
        colour = rgb_out[y0:y1, x0:x1]
        colour[mixed] = np.clip(np.rint(fg[mixed] * 255), 0, 255).astype(np.uint8)
    return a8, rgb_out
