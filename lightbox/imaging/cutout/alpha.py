"""The ``alpha`` method: a transparent source's own alpha."""

from __future__ import annotations

import numpy as np

from lightbox.errors import ItemError
from lightbox.imaging.cutout.diagnostics import _bbox, diagnose
from lightbox.imaging.cutout.result import CutOut


def from_alpha(arr: np.ndarray) -> CutOut:
    alpha = arr[..., 3]
    if not (alpha > 0).any():
        raise ItemError("transparent image has no visible pixels")
    bbox = _bbox(alpha > 0)
    solid = _bbox(alpha >= 128) if (alpha >= 128).any() else bbox
    diag = diagnose(None, alpha, None)
    diag["cutout_confident"] = True  # the photo's own alpha: nothing was guessed
    return CutOut(rgba=np.ascontiguousarray(arr), bbox=bbox, solid_bbox=solid, method="alpha",
                  reason="the photo is transparent", diagnostics=diag, source=None)
