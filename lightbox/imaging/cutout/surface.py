"""The plain-backdrop test and the fitted backdrop surface (step 1 of the backdrop method)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lightbox.errors import ItemError
from lightbox.specs.models import Cutout as CutoutParams


@dataclass(frozen=True)
class BackdropTest:
    plain: bool
    why: str
    ring: int
    noise: float  # robust spread of the ring's fit residuals, levels
    fit: float  # share of ring samples the fitted backdrop explains
    coef: np.ndarray  # 6 x 3 quadratic surface coefficients
    chroma: np.ndarray = field(default_factory=lambda: np.full(3, 1 / 3))  # the paper's colour, r/(r+g+b)...
    chroma_noise: float = 0.0  # robust spread of the ring's chromaticity


def _ring_width(h: int, w: int) -> int:
    return max(3, round(0.015 * min(h, w)))


def assess_backdrop(rgb: np.ndarray, params: CutoutParams) -> BackdropTest:
    """Is the photo's border a plain studio backdrop? Fit a smooth surface to a ring along the border and
    measure how much of the ring it explains and how noisy the rest is. Wood, fabric, rooms and skies
    fail: their border is neither smooth nor one surface."""
    h, w, _ = rgb.shape
    ring = _ring_width(h, w)
    coef, resid, keep = _fit_ring(rgb, ring)
    fit = float(keep.mean())
    kept = resid[keep]
    noise = float(1.4826 * np.median(kept)) if kept.size else float("inf")
    ys, xs = _ring_samples(h, w, ring)
    px = rgb[ys, xs][keep].astype(np.float64)
    chroma_px = px / np.maximum(px.sum(axis=1, keepdims=True), 1.0)
    chroma = np.median(chroma_px, axis=0) if len(px) else np.full(3, 1 / 3)
    chroma_noise = float(1.4826 * np.median(np.abs(chroma_px - chroma).max(axis=1))) if len(px) else 0.0
    if fit < params.min_backdrop_fit:
        why = f"the fitted backdrop explains {fit:.0%} of the border, under {params.min_backdrop_fit:.0%}"
        return BackdropTest(False, why, ring, noise, fit, coef, chroma, chroma_noise)
    if noise > params.max_backdrop_noise:
        why = f"the border varies by {noise:.1f} levels around a smooth backdrop, over {params.max_backdrop_noise:g}"
        return BackdropTest(False, why, ring, noise, fit, coef, chroma, chroma_noise)
    return BackdropTest(True, f"plain backdrop (border fit {fit:.0%}, noise {noise:.1f})", ring, noise, fit, coef, chroma, chroma_noise)


def _ring_samples(h: int, w: int, ring: int) -> tuple[np.ndarray, np.ndarray]:
    stride = max(1, int(np.sqrt(2 * ring * (h + w) / 6000)))
    yy, xx = np.mgrid[0:h:stride, 0:w:stride]
    in_ring = (yy < ring) | (yy >= h - ring) | (xx < ring) | (xx >= w - ring)
    return yy[in_ring], xx[in_ring]


def _design(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(u), u, v, u * u, v * v, u * v], axis=1)


def _fit_ring(rgb: np.ndarray, ring: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(coefficients, |residual| max over RGB per ring sample, inlier mask) of a quadratic surface fit."""
    h, w, _ = rgb.shape
    ys, xs = _ring_samples(h, w, ring)
    samples = rgb[ys, xs].astype(np.float64)
    u = xs / max(w - 1, 1) * 2 - 1
    v = ys / max(h - 1, 1) * 2 - 1
    design = _design(u, v)
    keep = np.ones(len(samples), dtype=bool)
    coef = np.zeros((6, 3))
    resid = np.zeros(len(samples))
    for _ in range(3):  # fit, drop outliers (a product touching the border), refit
        if keep.sum() < 12:
            break
        coef, *_ = np.linalg.lstsq(design[keep], samples[keep], rcond=None)
        resid = np.abs(design @ coef - samples).max(axis=1)
        mad = np.median(resid[keep]) + 1e-6
        keep = resid < max(6.0 * mad, 8.0)
    return coef, resid, keep


def backdrop_model(rgb: np.ndarray, ring: int, coef: np.ndarray | None = None,
                   window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The fitted backdrop as an H x W x 3 float32 image (quadratic surface per channel); with ``window``
    (y0, y1, x0, x1) only that part of it, with the same values as the whole image has there."""
    h, w, _ = rgb.shape
    if coef is None:
        coef, _, keep = _fit_ring(rgb, ring)
        if keep.sum() < 12:
            raise ItemError("cannot find a plain studio backdrop along the image border")
    y0, y1, x0, x1 = window or (0, h, 0, w)
    U = (np.arange(x0, x1, dtype=np.float32) / max(w - 1, 1) * 2 - 1)[None, :]
    V = (np.arange(y0, y1, dtype=np.float32) / max(h - 1, 1) * 2 - 1)[:, None]
    c = coef.astype(np.float32)
    model = np.empty((y1 - y0, x1 - x0, 3), dtype=np.float32)
    for k in range(3):
        model[..., k] = _quadratic(c[:, k], U, V)
    return model


def backdrop_blocks(shape: tuple[int, int], coef: np.ndarray, factor: int,
                    window: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """The fitted backdrop's means over ``factor`` x ``factor`` blocks (as :func:`_reduce` takes them) of an
    H x W photo, from the surface's own moments: no full-size model is built. ``window``: (y0, y1, x0, x1)
    in blocks, only those."""
    h, w = shape
    y0, y1, x0, x1 = window or (0, h // factor, 0, w // factor)
    su, sv = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    U = ((np.arange(x0, x1) * factor + (factor - 1) / 2.0) * su - 1.0)[None, :]  # block centres
    V = ((np.arange(y0, y1) * factor + (factor - 1) / 2.0) * sv - 1.0)[:, None]
    var_u, var_v = (factor * factor - 1) / 12.0 * su * su, (factor * factor - 1) / 12.0 * sv * sv
    out = np.empty((y1 - y0, x1 - x0, 3), np.float32)
    for k in range(3):
        c = coef[:, k]
        out[..., k] = c[0] + c[1] * U + c[2] * V + c[3] * (U * U + var_u) + c[4] * (V * V + var_v) + c[5] * U * V
    return out


def _surface_at(coef: np.ndarray, ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    """The fitted backdrop (n x 3 float32) at the pixels (ys, xs) of an H x W photo, as :func:`backdrop_model`."""
    U = (xs.astype(np.float32) / max(w - 1, 1) * 2 - 1)[:, None]
    V = (ys.astype(np.float32) / max(h - 1, 1) * 2 - 1)[:, None]
    return _quadratic(coef.astype(np.float32), U, V)


def _quadratic(c: np.ndarray, U: np.ndarray, V: np.ndarray) -> np.ndarray:
    """The backdrop's quadratic surface with coefficients ``c`` (6, or 6 x channels) at coordinates U, V
    (-1..1 across the photo); one evaluation order for every caller, so their values agree to the bit."""
    return c[0] + c[1] * U + c[2] * V + c[3] * U * U + c[4] * V * V + c[5] * U * V
