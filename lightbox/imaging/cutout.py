"""Cut the product out of its source photo: take a transparent PNG's alpha, or separate it from a
plain studio backdrop with uneven light.

The result keeps the source's RGB pixels untouched and only adds an alpha channel, so later stages
can promise that the product itself is never altered (only resampled).

Studio method, in steps:
1. sample a ring along the frame border and fit a smooth backdrop model per channel (a quadratic
   surface, refit once without outliers) - this absorbs vignetting and a light fall-off;
2. distance of every pixel to the backdrop model (max over R, G, B);
3. backdrop = pixels within an adaptive threshold (``noise_factor`` x the ring's noise, between
   ``min_threshold`` and ``threshold``), or darkened without a change of hue (a floor shadow up to
   ``shadow_depth``), that are connected to the frame border - so a white label inside a product
   stays product;
4. drop specks smaller than ``min_object_share`` of the frame (dust), keep everything else;
5. soft alpha in a thin band at the edge from the same distance (anti-aliasing, no halo).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from lightbox.errors import ItemError
from lightbox.specs.models import Cutout as CutoutParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutOut:
    rgba: np.ndarray  # H x W x 4 uint8: the source RGB untouched, plus the product mask as alpha
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of alpha > 0
    method: str  # "alpha" (transparent source) or "studio" (backdrop separation)
    edge_confidence: float  # share of the mask edge with strong contrast to the backdrop, 0..1
    touches_edge: bool  # the product runs into the source frame (cropped product?)

    @property
    def product(self) -> np.ndarray:
        x0, y0, x1, y1 = self.bbox
        return self.rgba[y0:y1, x0:x1]


def cut_out(im: Image.Image, params: CutoutParams) -> CutOut:
    if im.mode == "RGBA":
        arr = np.asarray(im)
        alpha = arr[..., 3]
        if (alpha < 250).mean() > 0.01:
            return _from_alpha(arr)
        im = im.convert("RGB")
    if im.mode != "RGB":
        raise ValueError(f"cut_out expects an RGB or RGBA image, got mode {im.mode!r}")
    return _studio(np.asarray(im), params)


def _from_alpha(arr: np.ndarray) -> CutOut:
    alpha = arr[..., 3]
    if not (alpha > 0).any():
        raise ItemError("transparent image has no visible pixels")
    bbox = _bbox(alpha > 0)
    h, w = alpha.shape
    touches = bbox[0] == 0 or bbox[1] == 0 or bbox[2] == w or bbox[3] == h
    return CutOut(rgba=np.ascontiguousarray(arr), bbox=bbox, method="alpha", edge_confidence=1.0, touches_edge=touches)


def backdrop_model(rgb: np.ndarray, ring: int) -> np.ndarray:
    """Fit a quadratic surface per channel to the border ring; returns H x W x 3 float32."""
    h, w, _ = rgb.shape
    stride = max(1, int(np.sqrt(2 * ring * (h + w) / 6000)))
    yy, xx = np.mgrid[0:h:stride, 0:w:stride]
    in_ring = (yy < ring) | (yy >= h - ring) | (xx < ring) | (xx >= w - ring)
    ys, xs = yy[in_ring], xx[in_ring]
    samples = rgb[ys, xs].astype(np.float64)
    u = xs / max(w - 1, 1) * 2 - 1
    v = ys / max(h - 1, 1) * 2 - 1
    design = np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=1)
    keep = np.ones(len(samples), dtype=bool)
    for _ in range(2):  # fit, drop outliers (a product touching the border), refit
        coef, *_ = np.linalg.lstsq(design[keep], samples[keep], rcond=None)
        resid = np.abs(design @ coef - samples).max(axis=1)
        mad = np.median(resid[keep]) + 1e-6
        keep = resid < max(6.0 * mad, 8.0)
        if keep.sum() < 12:
            raise ItemError("cannot find a plain studio backdrop along the image border")
    U = (np.arange(w, dtype=np.float32) / max(w - 1, 1) * 2 - 1)[None, :]
    V = (np.arange(h, dtype=np.float32) / max(h - 1, 1) * 2 - 1)[:, None]
    c = coef.astype(np.float32)
    model = np.empty((h, w, 3), dtype=np.float32)
    for k in range(3):
        model[..., k] = c[0, k] + c[1, k] * U + c[2, k] * V + c[3, k] * U * U + c[4, k] * V * V + c[5, k] * U * V
    return model


def _studio(rgb: np.ndarray, params: CutoutParams) -> CutOut:
    h, w, _ = rgb.shape
    ring = max(3, round(0.015 * min(h, w)))
    model = backdrop_model(rgb, ring)
    planes = [rgb[..., k].astype(np.float32) for k in range(3)]  # per plane: fast, contiguous
    dist = np.abs(planes[0] - model[..., 0])
    for k in (1, 2):
        np.maximum(dist, np.abs(planes[k] - model[..., k]), out=dist)
    dist = ndimage.uniform_filter(dist, size=3)  # sensor noise is not an edge
    # A floor shadow darkens the backdrop without changing its hue: equal ratios on R, G and B.
    ratios = [planes[k] / np.maximum(model[..., k], 1.0) for k in range(3)]
    rmin = np.minimum(np.minimum(ratios[0], ratios[1]), ratios[2])
    rmax = np.maximum(np.maximum(ratios[0], ratios[1]), ratios[2])
    shadow_like = (rmin >= 1.0 - params.shadow_depth) & (rmax <= 1.0) & (rmax - rmin <= 0.025)
    shadow_like = ndimage.uniform_filter(shadow_like.astype(np.float32), size=3) > 0.5
    del planes, ratios, rmin, rmax

    # Threshold: the spec's value is the ceiling; a clean, evenly fitted backdrop allows a tighter one
    # (white products on white paper need it). Noise = robust spread of the ring's residuals.
    ring_mask = np.zeros((h, w), dtype=bool)
    ring_mask[:ring] = ring_mask[-ring:] = True
    ring_mask[:, :ring] = ring_mask[:, -ring:] = True
    ring_dist = dist[ring_mask]
    noise = float(np.median(ring_dist) + 1.4826 * np.median(np.abs(ring_dist - np.median(ring_dist))))
    t = float(min(params.threshold, max(params.min_threshold, params.noise_factor * noise)))
    near = (dist <= t) | shadow_like
    labels, _ = ndimage.label(near)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    fg = ~np.isin(labels, border)

    labels, n = ndimage.label(fg)
    if n == 0:
        raise ItemError("no product found: the image is plain backdrop")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    min_size = max(16, int(params.min_object_share * h * w))
    keep = sizes >= min_size
    if not keep.any():
        raise ItemError(f"no product found: largest object is {int(sizes.max())} px, under {min_size} px")
    fg = keep[labels]
    share = float(fg.mean())
    if share > 0.97:
        raise ItemError(f"cannot separate product from backdrop: foreground covers {share:.0%} of the frame")

    # Soft edge: a band of `feather` px on each side of the mask edge gets alpha from the distance.
    band = max(1, int(np.ceil(params.feather)))
    inner = ndimage.binary_erosion(fg, iterations=band, border_value=0)
    outer = ndimage.binary_dilation(fg, iterations=band)
    alpha = np.zeros((h, w), dtype=np.float32)
    edge = outer & ~inner
    alpha[edge] = np.clip((dist[edge] - 0.5 * t) / t, 0.0, 1.0)
    alpha[inner] = 1.0
    alpha8 = np.rint(alpha * 255).astype(np.uint8)
    if not (alpha8 > 0).any():
        raise ItemError("no product found after edge refinement")

    boundary = fg & ~ndimage.binary_erosion(fg, border_value=0)
    confidence = float((dist[boundary] >= 2 * t).mean()) if boundary.any() else 0.0
    rgba = np.dstack([rgb, alpha8])
    bbox = _bbox(alpha8 > 0)
    touches = bool(fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())
    log.debug("studio cut-out: %.1f%% of frame, threshold %.1f, edge confidence %.2f", 100 * share, t, confidence)
    return CutOut(rgba=rgba, bbox=bbox, method="studio", edge_confidence=confidence, touches_edge=touches)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
