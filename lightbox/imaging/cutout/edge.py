"""The model cut's edge: a crisp alpha on the model's own outline, and the colour of the mixed edge pixels.

A segmentation model's map is coarse (U²-Netp: 320 px): brought up to the photo's size it is an outline
blurred over several pixels. Everything the model is sure of becomes 0 or 255 - opaque product pixels keep
the source's values exactly - and only the thin band across the outline is mixed:

1. **alpha**: the probability steepened around 0.5 by the photo's scale over the model's (``gain``), within one
   model pixel of the model's outline, so the transition is about two photo pixels wide wherever the photo
   is, the 0.5 outline stays exactly where the model put it, and a faint region away from the outline (an
   object the model half-saw) stays transparent (a guided filter snapping the alpha to the photo's edges was measured and lost more
   product on thin parts: docs/cutout.md);
2. **colour**: for the mixed pixels (0 < alpha < 255), the foreground colour by blur fusion (Forte and Pitie,
   "Approximate Fast Foreground Colour Estimation", ICIP 2021): local means of the sure product and the sure
   background colour, F and B, then F + a (I - a F - (1 - a) B). The old background does not stay at the edge
   as a pale (or dark) rim on a new one. The local means are taken over blocks of one model pixel at the
   photo's scale (Pillow's box reduction), so the cost is a pass over the band's box, not a filter per plane.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from lightbox.imaging.cutout.settings import MODEL_CUT, ModelCutSettings


def _block_means(photo: Image.Image, weight: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """Means of the ``photo`` pixels where ``weight`` (bool) holds, over f x f blocks and each block's 3 x 3
    neighbourhood (Pillow's box reduction), and the share of such pixels there (0: none near)."""
    mask = Image.fromarray(weight.view(np.uint8) * np.uint8(255), "L")
    masked = Image.new("RGB", photo.size)
    masked.paste(photo, (0, 0), mask)
    m = np.asarray(masked.reduce(f), np.float32)
    w = np.asarray(mask.reduce(f), np.float32) / 255.0

    def near(a: np.ndarray) -> np.ndarray:  # sum over each block's 3 x 3 neighbourhood
        p = np.pad(a, ((1, 1), (1, 1)) + ((0, 0),) * (a.ndim - 2))
        return sum(p[dy : dy + a.shape[0], dx : dx + a.shape[1]] for dy in range(3) for dx in range(3))

    wn = near(w)
    return near(m) / np.maximum(wn, 1e-6)[..., None], wn


def foreground(rgb: np.ndarray, alpha: np.ndarray, ys: np.ndarray, xs: np.ndarray, f: int) -> np.ndarray:
    """Blur-fusion foreground colour (n x 3 float, 0..255) of the pixels ``ys, xs`` of ``rgb`` (uint8) with
    ``alpha`` (uint8)."""
    photo = Image.fromarray(rgb, "RGB")
    F, wf = _block_means(photo, alpha == 255, f)
    B, wb = _block_means(photo, alpha == 0, f)
    by, bx = ys // f, xs // f
    obs = rgb[ys, xs].astype(np.float32)
    Fp = np.where((wf[by, bx] > 0)[:, None], F[by, bx], obs)  # no sure product pixel near (a thin part): its own colour
    Bp = np.where((wb[by, bx] > 0)[:, None], B[by, bx], obs)
    a = alpha[ys, xs][:, None].astype(np.float32) / 255.0
    return np.clip(Fp + a * (obs - a * Fp - (1.0 - a) * Bp), 0.0, 255.0)


def refine_edge(rgb: np.ndarray, soft: np.ndarray, low: np.ndarray, s: ModelCutSettings = MODEL_CUT) -> tuple[np.ndarray, np.ndarray]:
    """(alpha uint8, RGB uint8) from the photo, the model's probability at the photo's size (``soft``) and its
    own map (``low``, the model's input size): the scale of the model's blur follows from the two sizes."""
    h, w = soft.shape
    scale = max(h, w) / max(low.shape)  # photo pixels per model pixel
    gain = max(2.0, scale)
    alpha8 = (soft >= 0.5).view(np.uint8) * np.uint8(255)
    rgb_out = rgb.copy()
    # the ramp (soft - 0.5) * gain + 0.5 is strictly between edge_sure and 1 - edge_sure only on this band, and
    # only within one model pixel of the model's outline: a faint region of the map away from the product
    # (another object the model half-saw) stays transparent, not a haze
    solid = low >= 0.5
    outline = ndimage.binary_dilation(solid ^ ndimage.binary_erosion(solid, border_value=1), structure=np.ones((3, 3), bool))
    near = np.asarray(Image.fromarray(outline.view(np.uint8) * np.uint8(255), "L").resize((w, h), Image.Resampling.NEAREST)) > 0
    reach = (0.5 - s.edge_sure) / gain
    ys, xs = np.nonzero((soft > 0.5 - reach) & (soft < 0.5 + reach) & near)
    if ys.size == 0:
        return alpha8, rgb_out
    a = np.clip((soft[ys, xs] - 0.5) * gain + 0.5, 0.0, 1.0)
    alpha8[ys, xs] = np.rint(a * 255).astype(np.uint8)
    keep = (alpha8[ys, xs] > 0) & (alpha8[ys, xs] < 255)
    ys, xs = ys[keep], xs[keep]
    if ys.size == 0:
        return alpha8, rgb_out
    f = max(2, round(scale))
    y0, y1 = max(0, ys.min() - 2 * f), min(h, ys.max() + 2 * f + 1)
    x0, x1 = max(0, xs.min() - 2 * f), min(w, xs.max() + 2 * f + 1)
    est = foreground(rgb[y0:y1, x0:x1], alpha8[y0:y1, x0:x1], ys - y0, xs - x0, f)
    rgb_out[ys, xs] = np.rint(est).astype(np.uint8)
    return alpha8, rgb_out
