"""What can be known of a cut without ground truth (the gate reads these as ``cutout_*``)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from lightbox.imaging.cutout.settings import WORK_SIDE
from lightbox.imaging.cutout.surface import backdrop_blocks


def _reduce(arr: np.ndarray, factor: int) -> np.ndarray:
    """Means over factor x factor blocks, as float32. Integer images are summed in integers (exact), then
    divided once: the same values as a float32 mean over the blocks, without its slow strided reduction."""
    if factor == 1:
        return arr
    h, w = arr.shape[:2]
    h2, w2 = h // factor * factor, w // factor * factor
    if np.issubdtype(arr.dtype, np.integer) and arr.dtype.itemsize <= 2:
        acc = np.zeros((h2 // factor, w2 // factor, *arr.shape[2:]), np.int32)
        for dy in range(factor):
            for dx in range(factor):
                acc += arr[dy:h2:factor, dx:w2:factor]
        return acc.astype(np.float32) / np.float32(factor * factor)
    a = arr[:h2, :w2].astype(np.float32)
    return a.reshape(h2 // factor, factor, w2 // factor, factor, *arr.shape[2:]).mean(axis=(1, 3))


def diagnose(rgb: np.ndarray | None, alpha8: np.ndarray, sigma: float | None,
             backdrop: tuple[np.ndarray, float] | None = None) -> dict[str, Any]:
    """What the gate can know of a cut without ground truth (measured at most ``WORK_SIDE`` px large):

    - ``cutout_share``: the product's share of the photo (alpha >= 128);
    - ``cutout_borders``: sides of the photo the mask runs along (over 5 % of that side): a product
      cropped by the frame touches one, a scene rectangle two or more;
    - ``cutout_raggedness``: outline length over the length of the same outline smoothed (a torn,
      ragged boundary loses much of its length under smoothing; a clean or thin product does not);
    - ``cutout_edge_contrast``: share of the outline where the photo differs across the edge (2-3 px
      inside against 2-3 px outside) by more than the noise allows: a cut drawn through a plain
      region - a leak into a white product, a scene kept as product - has none;
    - ``cutout_holes``: with a fitted backdrop (``backdrop``: its coefficients, threshold), the share of the
      product inside its outline that matches the backdrop as closely as paper does (backdrop seen
      through a handle, kept as product).
    """
    h, w = alpha8.shape
    factor = max(1, int(np.ceil(max(h, w) / WORK_SIDE)))
    a = _reduce(alpha8, factor) >= 128
    hh, ww = a.shape
    d: dict[str, Any] = {"cutout_share": round(float(a.mean()), 4)}
    sides = [a[0].mean(), a[-1].mean(), a[:, 0].mean(), a[:, -1].mean()]
    d["cutout_borders"] = int(sum(s > 0.05 for s in sides))
    if not a.any():
        d.update(cutout_raggedness=0.0, cutout_edge_contrast=0.0, cutout_holes=0.0)
        return d
    perim = _perimeter(a)
    smooth = ndimage.gaussian_filter(a.astype(np.float32), 2.0) >= 0.5
    d["cutout_raggedness"] = round(perim / max(_perimeter(smooth), 1.0), 3)
    if rgb is None:
        d.update(cutout_edge_contrast=1.0, cutout_holes=0.0)
        return d
    # what follows lies within 3 px of the product's box: it runs on that box and a margin of 6 (the frame's
    # edges, where the box reaches them, are handled as the whole frame's are)
    bx0, by0, bx1, by1 = _bbox(a)
    y0, x0, y1, x1 = max(by0 - 6, 0), max(bx0 - 6, 0), min(by1 + 6, hh), min(bx1 + 6, ww)
    img = ndimage.uniform_filter(_reduce(rgb[y0 * factor : y1 * factor, x0 * factor : x1 * factor], factor), size=(3, 3, 1))
    if sigma is None:  # estimated on the whole frame's border
        sigma = _border_noise(rgb, factor)
    noise = sigma / (3 * factor)  # of 3x3 means of factor^2 means
    a = a[y0:y1, x0:x1]
    boundary = a & ~ndimage.binary_erosion(a, border_value=1)
    inside_ring = ndimage.binary_erosion(a, iterations=2, border_value=1)
    inside_ring &= ~ndimage.binary_erosion(inside_ring, border_value=1)
    if not inside_ring.any():
        inside_ring = a
    outside = ~ndimage.binary_dilation(a, iterations=2)
    outside_ring = outside & ndimage.binary_dilation(~outside)
    if boundary.any() and outside_ring.any():
        # the nearest inside-ring and outside-ring pixel of each boundary pixel
        by, bx = np.nonzero(boundary)
        _, (iy, ix) = ndimage.distance_transform_edt(~inside_ring, return_indices=True)
        _, (oy, ox) = ndimage.distance_transform_edt(~outside_ring, return_indices=True)
        diff = np.abs(img[iy[by, bx], ix[by, bx]] - img[oy[by, bx], ox[by, bx]]).max(axis=1)
        d["cutout_edge_contrast"] = round(float((diff > max(4.0, 6.0 * noise)).mean()), 4)
    else:
        d["cutout_edge_contrast"] = 1.0
    d["cutout_holes"] = 0.0
    if backdrop is not None:
        # enclosed parts of the product that match the fitted backdrop as closely as paper does: backdrop
        # seen through a handle or a loop, kept as product
        coef, t = backdrop
        dist = np.abs(img - backdrop_blocks((h, w), coef, factor, (y0, y1, x0, x1))).max(axis=2)
        hl, hn = ndimage.label(a & (dist <= 0.5 * t))
        if hn:
            sizes = np.bincount(hl.ravel())
            sizes[0] = 0
            sizes[np.unique(hl[boundary | ~ndimage.binary_erosion(a, iterations=2, border_value=1)])] = 0
            big = sizes >= max(9, int(0.0005 * hh * ww))
            if big.any():
                # a hole is seen through a rim: the product around it differs from it (a region of the
                # product that merely shades through the backdrop's colour does not)
                ids = np.flatnonzero(big)
                ring = ndimage.binary_dilation(np.isin(hl, ids), iterations=3) & ~ndimage.binary_dilation(hl > 0, iterations=1) & a
                rl = np.where(ring, ndimage.grey_dilation(hl, size=(9, 9)), 0)
                lum = img.mean(axis=2)
                inside = np.asarray(ndimage.mean(lum, hl, ids))
                around = np.asarray(ndimage.mean(lum, rl, ids))
                big[ids] = np.abs(np.nan_to_num(around, nan=0.0) - inside) > 2 * t
            d["cutout_holes"] = round(float(sizes[big].sum() / a.sum()), 4)
    return d


def _border_noise(rgb: np.ndarray, factor: int) -> float:
    """:func:`_noise_estimate` of the whole photo reduced by ``factor`` and 3 x 3 averaged, computed on its four
    border strips only (6 reduced rows or columns each: the 4 it reads and what their average reaches)."""
    hh, ww = rgb.shape[0] // factor, rgb.shape[1] // factor
    if min(hh, ww) < 12:
        return _noise_estimate(ndimage.uniform_filter(_reduce(rgb, factor), size=(3, 3, 1)))
    f = factor

    def filt(part: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(_reduce(part, f), size=(3, 3, 1))[..., 1]

    top = filt(rgb[: 6 * f, : ww * f])[:4]
    bottom = filt(rgb[(hh - 6) * f : hh * f, : ww * f])[-4:]
    left = filt(rgb[: hh * f, : 6 * f])[:, :4]
    right = filt(rgb[: hh * f, (ww - 6) * f : ww * f])[:, -4:]
    ring = np.concatenate([top.ravel(), bottom.ravel(), left.ravel(), right.ravel()])
    return float(1.4826 * np.median(np.abs(np.diff(ring))))


def _noise_estimate(img: np.ndarray) -> float:
    """Robust noise of an image (levels): median absolute Laplacian-like residual of the border ring."""
    g = img[..., 1]
    ring = np.concatenate([g[:4].ravel(), g[-4:].ravel(), g[:, :4].ravel(), g[:, -4:].ravel()])
    return float(1.4826 * np.median(np.abs(np.diff(ring)))) if ring.size > 1 else 1.0


def _perimeter(mask: np.ndarray) -> float:
    return float((mask & ~ndimage.binary_erosion(mask, border_value=1)).sum())


def _shift(box: tuple[int, int, int, int], dx: int, dy: int) -> tuple[int, int, int, int]:
    return box[0] + dx, box[1] + dy, box[2] + dx, box[3] + dy


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
