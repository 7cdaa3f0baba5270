"""The ``model`` method: a segmentation model's prediction made into a cut, with a confidence.

1. the model's probability at the photo's size (one inference, :mod:`lightbox.imaging.segmentation`);
2. its confidence from the model's own map (:mod:`.confidence`);
3. the edge band refined and its colour recovered (:mod:`.edge`); opaque pixels are the source's own;
4. the cut's diagnostics (:mod:`.diagnostics`); on a plain backdrop, holes the colour of the backdrop are
   measured, so a white-only channel never shows a hole in the paper's grey.

An unsure cut (confidence under ``cutout.min_confidence``, or a reason such as two objects) is kept with
``cutout_confident`` false and the reason: the gate sends it to review, never live.
"""

from __future__ import annotations

import numpy as np

from lightbox.errors import ItemError
from lightbox.imaging.cutout.confidence import model_confidence
from lightbox.imaging.cutout.diagnostics import _bbox, diagnose
from lightbox.imaging.cutout.edge import refine_edge
from lightbox.imaging.cutout.result import CutOut
from lightbox.imaging.cutout.surface import BackdropTest, assess_backdrop
from lightbox.imaging.segmentation import Prediction
from lightbox.specs.models import Cutout as CutoutParams


def from_model(rgb: np.ndarray, pred: Prediction, params: CutoutParams, reason: str, test: BackdropTest | None = None) -> CutOut:
    """A :class:`~lightbox.imaging.segmentation.Prediction` (``soft`` at the photo's size, ``low`` the model's
    own map) -> a cut with its confidence."""
    soft, low = pred.soft, pred.low
    h, w, _ = rgb.shape
    if soft.shape != (h, w):
        raise ItemError(f"segmentation mask is {soft.shape[1]}x{soft.shape[0]}, photo is {w}x{h}")
    share = float((soft >= 0.5).mean())
    if share < 0.0005:
        raise ItemError(f"no product found by the segmentation model (its mask covers {share:.2%} of the photo)")
    if params.matting == "none":
        alpha8, rgb_out = np.rint(np.clip(soft, 0, 1) * 255).astype(np.uint8), rgb.copy()
    else:
        alpha8, rgb_out = refine_edge(rgb, soft, low)
    if not (alpha8 > 0).any():
        raise ItemError("no product found by the segmentation model after edge refinement")
    test = test or assess_backdrop(rgb, params)  # routing ran it already unless the method was forced
    backdrop = None
    if test.plain:  # a studio photo cut by the model: its holes can be checked against the paper
        backdrop = (test.coef, float(max(params.min_threshold, params.noise_factor * test.noise)))
    diag = diagnose(rgb, alpha8, test.noise if test.plain else None, backdrop)
    conf = model_confidence(low, diag["cutout_borders"])
    diag |= conf.signals
    diag["cutout_confidence"] = conf.score
    confident = conf.why is None and conf.score >= params.min_confidence
    diag["cutout_confident"] = confident
    if not confident:
        why = conf.why or (f"{diag['cutout_model_undecided']:.0%} of the mask's area is undecided away from its outline "
                           f"(confidence {conf.score:.2f} < {params.min_confidence:.2f}): the wrong object or part of one?")
        reason = f"{reason}; unsure: {why}"
    bbox = _bbox(alpha8 > 0)
    solid_box = _bbox(alpha8 >= 128) if (alpha8 >= 128).any() else bbox
    return CutOut(rgba=np.dstack([rgb_out, alpha8]), bbox=bbox, solid_bbox=solid_box, method="model", reason=reason,
                  diagnostics=diag, source=rgb)
