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
5. soft alpha in a thin band at the edge from the same distance (anti-aliasing), and the colour of
   those mixed edge pixels recovered from the backdrop model (no studio-paper fringe on a new
   background). Opaque product pixels keep the source's values exactly.

``holes: backdrop`` also clears enclosed regions (a mug handle's hole) larger than ``min_hole_share``
of the frame whose median distance to the backdrop is within half the threshold; the default ``keep``
never removes an enclosed region, because a white label inside a product can look like paper.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from lightbox.errors import ItemError
from lightbox.specs.models import Cutout as CutoutParams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CutOut:
    rgba: np.ndarray  # H x W x 4 uint8: source RGB (opaque pixels untouched, edge pixels decontaminated) + alpha
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of alpha > 0: what is cropped and kept
    solid_bbox: tuple[int, int, int, int]  # of alpha >= 128: what is framed (faint wisps do not count)
    method: str  # "alpha" (transparent source) or "studio" (backdrop separation)
    edge_confidence: float  # share of the mask edge with strong contrast to the backdrop, 0..1
    touches_edge: bool  # the product runs into the source frame (cropped product?)
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # resampled sizes (compose.resampled)

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
    solid = _bbox(alpha >= 128) if (alpha >= 128).any() else bbox
    return CutOut(rgba=np.ascontiguousarray(arr), bbox=bbox, solid_bbox=solid, method="alpha", edge_confidence=1.0, touches_edge=touches)


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
    if params.holes == "backdrop":
        # enclosed backdrop (a mug handle's hole) is backdrop too, when large enough to matter
        enclosed = near & fg
        hl, hn = ndimage.label(enclosed)
        if hn:
            hsizes = np.bincount(hl.ravel())
            hsizes[0] = 0
            big = hsizes >= max(16, int(params.min_hole_share * h * w))
            # paper seen through a hole matches the fitted backdrop closely; a white product that is
            # merely near it (a white candle, a label) does not - keep those
            medians = np.zeros(hn + 1)
            medians[1:] = ndimage.median(dist, hl, index=np.arange(1, hn + 1))
            clear = big & (medians <= 0.5 * t)
            fg &= ~clear[hl]

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

    alpha8, rgb_out = _soft_edge(rgb, model, dist, fg, t, params.feather)
    if not (alpha8 > 0).any():
        raise ItemError("no product found after edge refinement")

    boundary = fg & ~ndimage.binary_erosion(fg, border_value=0)
    confidence = float((dist[boundary] >= 2 * t).mean()) if boundary.any() else 0.0
    rgba = np.dstack([rgb_out, alpha8])
    bbox = _bbox(alpha8 > 0)
    touches = bool(fg[0].any() or fg[-1].any() or fg[:, 0].any() or fg[:, -1].any())
    log.debug("studio cut-out: %.1f%% of frame, threshold %.1f, edge confidence %.2f", 100 * share, t, confidence)
    solid = _bbox(alpha8 >= 128) if (alpha8 >= 128).any() else bbox
    return CutOut(rgba=rgba, bbox=bbox, solid_bbox=solid, method="studio", edge_confidence=confidence, touches_edge=touches)


def _soft_edge(rgb: np.ndarray, model: np.ndarray, dist: np.ndarray, fg: np.ndarray, t: float, feather: float) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and colour for the band of ``feather`` px on each side of the mask edge.

    Each band pixel is modelled as I = a*F + (1-a)*B, with B the fitted backdrop and F the nearest
    fully inside product pixel: a is the projection of I-B on F-B, and the pixel's colour becomes
    F_est = (I - (1-a)*B) / a, so a new background shows no studio-paper fringe. Where the product's
    colour is too close to the backdrop for that (white on white), a comes from the distance alone.
    Pixels inside the band's inner edge are the source's, untouched.
    """
    h, w = fg.shape
    band = max(1, int(np.ceil(feather)))
    inner = ndimage.binary_erosion(fg, iterations=band, border_value=0)
    outer = ndimage.binary_dilation(fg, iterations=band)
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[inner] = 1.0
    rgb_out = rgb.copy()
    if not inner.any():
        edge = outer
        alpha[edge] = np.clip((dist[edge] - 0.5 * t) / t, 0.0, 1.0)
        return np.rint(alpha * 255).astype(np.uint8), rgb_out
    bx0, by0, bx1, by1 = _bbox(outer)  # work in the product's box only: the transform is not cheap
    y0, x0 = max(by0 - band - 1, 0), max(bx0 - band - 1, 0)
    y1, x1 = min(by1 + band + 1, h), min(bx1 + band + 1, w)
    sub_inner = inner[y0:y1, x0:x1]
    edge = outer[y0:y1, x0:x1] & ~sub_inner
    _, (iy, ix) = ndimage.distance_transform_edt(~sub_inner, return_indices=True)
    ey, ex = np.nonzero(edge)
    I = rgb[y0:y1, x0:x1][ey, ex].astype(np.float32)
    B = model[y0:y1, x0:x1][ey, ex]
    F = rgb[y0:y1, x0:x1][iy[ey, ex], ix[ey, ex]].astype(np.float32)
    fb = F - B
    norm = (fb * fb).sum(axis=1)
    a = np.clip(((I - B) * fb).sum(axis=1) / np.maximum(norm, 1e-6), 0.0, 1.0)
    weak = norm < (3 * t) ** 2  # product colour too close to the backdrop to project on
    d = dist[y0:y1, x0:x1][ey, ex]
    a[weak] = np.clip((d[weak] - 0.5 * t) / t, 0.0, 1.0)
    a[a < 0.02] = 0.0  # sensor noise projected on F-B, not product
    alpha[y0 + ey, x0 + ex] = a
    a8 = np.rint(a * 255)
    mixed = (a8 > 0) & (a8 < 255)
    am = a8[mixed][:, None] / 255.0
    est = (I[mixed] - (1.0 - am) * B[mixed]) / am
    # the division amplifies noise where a is small: lean on the nearest inside colour there
    trust = np.clip((am - 0.1) / 0.4, 0.0, 1.0)
    est = trust * est + (1.0 - trust) * F[mixed]
    colour = rgb_out[y0:y1, x0:x1]
    colour[ey[mixed], ex[mixed]] = np.clip(np.rint(est), 0, 255).astype(np.uint8)
    return np.rint(alpha * 255).astype(np.uint8), rgb_out


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
