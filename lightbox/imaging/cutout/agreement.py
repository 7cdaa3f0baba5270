"""A model's cut checked against the backdrop cut it replaced.

On a plain backdrop whose cut was unsure (part of the outline has no contrast with the paper), the model cuts
instead. The model's own confidence reads its map, not the photo: a thin part it never saw at its 320 px input
(a candle's wick, a lamp's pull cord) is missing from a cut it is sure of. The backdrop cut, unsure as it is about
where a white product meets white paper, is not unsure about a dark wick standing on the paper. So where it keeps
a part solid that the model's cut leaves out - beyond a band of ``BAND`` px around the model's product, at least
``MIN_PX`` pixels and ``MIN_EXTENT`` px long - the model's cut is not trusted: it goes to review with the part named.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from lightbox.imaging.cutout.morphology import dilate_cross
from lightbox.imaging.cutout.result import CutOut

BAND = 3  # px around the model's product where the two outlines may differ (edges, matting)
MIN_PX = 40  # a part smaller than this is an edge's noise
MIN_EXTENT = 12  # ... or shorter than this (px, its bounding box's longer side)


def dropped_part(model: CutOut, backdrop: CutOut) -> tuple[int, tuple[int, int, int, int]] | None:
    """(pixels, box x0, y0, x1, y1) of the largest part the backdrop cut keeps solid and the model's cut leaves out,
    when it is large enough to be product (see the module); else None."""
    if model.rgba.shape[:2] != backdrop.rgba.shape[:2]:
        return None
    kept = model.rgba[..., 3] >= 128
    if not kept.any():
        return None
    x0, y0, x1, y1 = backdrop.bbox
    pad = BAND + 1
    ys, xs = slice(max(y0 - pad, 0), y1 + pad), slice(max(x0 - pad, 0), x1 + pad)
    near = kept[ys, xs]
    for _ in range(BAND):
        near = dilate_cross(near)
    lost = (backdrop.rgba[ys, xs, 3] == 255) & ~near
    if lost.sum() < MIN_PX:
        return None
    labels, n = ndimage.label(lost, structure=np.ones((3, 3), bool))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    best = None
    for i, box in enumerate(ndimage.find_objects(labels), start=1):
        extent = max(box[0].stop - box[0].start, box[1].stop - box[1].start)
        if sizes[i - 1] >= MIN_PX and extent >= MIN_EXTENT and (best is None or sizes[i - 1] > best[0]):
            best = (int(sizes[i - 1]), (box[1].start + xs.start, box[0].start + ys.start, box[1].stop + xs.start, box[0].stop + ys.start))
    return best


def checked_against_backdrop(model: CutOut, backdrop: CutOut) -> CutOut:
    """``model`` as it is, or - when the backdrop cut keeps a part it drops - marked unsure with the part named
    (``cutout_dropped_px`` in its diagnostics): it goes to review, never live."""
    part = dropped_part(model, backdrop)
    diagnostics = {**model.diagnostics, "cutout_dropped_px": part[0] if part else 0}
    if part is None or not model.confident:
        return dataclasses.replace(model, diagnostics=diagnostics)
    n, (x0, y0, x1, y1) = part
    return dataclasses.replace(model, diagnostics={**diagnostics, "cutout_confident": False}, reason=(
        f"{model.reason}; unsure: the backdrop cut keeps a part the model's cut leaves out ({n} px at x {x0}-{x1}, "
        f"y {y0}-{y1}): a thin part lost?"))
