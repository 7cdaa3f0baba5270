"""How sure a model's cut is, measured without ground truth on the model's own output.

Signals (:func:`model_confidence`), all from the map the model returned at its input size - one inference,
nothing run twice:

1. **undecided share**: pixels the model left undecided (probability between 0.1 and 0.9) farther from its
   0.5 outline than an edge's width, anywhere in the photo, as a share of the mask's area. A right cut is decided everywhere but
   along its outline; a cut that took the wrong object, half of one, or a scene leaves wide undecided regions
   (the rest of the product, the object beside it, the rigging above a boat). This is the score:
   ``confidence = 1 - undecided_share / 0.1``, clipped to 0..1.
2. **parts**: solid parts (probability >= 0.9, eroded) of comparable size: two objects, not one product.
3. **share**: a mask under 0.3 % of the photo is a speck; over 90 % the background was kept.
4. **frame sides** (measured on the cut, :func:`~lightbox.imaging.cutout.diagnostics.diagnose`): a cut
   running into two or more sides of the photo is a scene rectangle, not a product.

Any of 2-4 makes the cut unsure whatever its score. The threshold (``cutout.min_confidence``, 0.9) was set on
the development set so that no wrong cut passed it there; docs/cutout.md gives the measured recall and the
cuts it still lets through.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lightbox.imaging.cutout.settings import MODEL_CUT, ModelCutSettings


@dataclass(frozen=True)
class ModelConfidence:
    score: float  # 0..1
    signals: dict[str, float]  # what was measured (diagnostics ``cutout_model_*``)
    why: str | None  # the reason the cut is unsure, None when nothing but the score speaks against it


def undecided_share(low: np.ndarray, s: ModelCutSettings = MODEL_CUT) -> float:
    """Undecided pixels away from the 0.5 outline, over the mask's area (signal 1)."""
    solid = low >= 0.5
    area = int(solid.sum())
    if area == 0:
        return float("inf")
    outline = solid ^ ndimage.binary_erosion(solid, border_value=1)
    reach = s.outline_reach * max(low.shape)
    far = ndimage.distance_transform_edt(~outline) > reach if outline.any() else np.ones_like(solid)
    undecided = (low > s.undecided_low) & (low < 1.0 - s.undecided_low)
    # counted anywhere in the photo: a faint region away from the mask may be a part of the product the model
    # lost (a lamp's pole), which the cut leaves out; counting only near the mask published such a cut
    return float((undecided & far).sum() / area)


def solid_parts(low: np.ndarray, s: ModelCutSettings = MODEL_CUT) -> int:
    """Separate solid parts at least ``part_share`` the size of the largest (signal 2)."""
    k = max(1, round(s.part_erosion * max(low.shape)))
    core = ndimage.binary_erosion(low >= 1.0 - s.undecided_low, iterations=k)
    labels, n = ndimage.label(core)
    if n <= 1:
        return n
    sizes = np.bincount(labels.ravel())[1:]
    return int((sizes >= s.part_share * sizes.max()).sum())


def model_confidence(low: np.ndarray, frame_sides: int, s: ModelCutSettings = MODEL_CUT) -> ModelConfidence:
    """The cut's confidence from the model's own map ``low`` (its input size, 0..1) and the frame sides the
    cut runs into."""
    share = float((low >= 0.5).mean())
    und = undecided_share(low, s)
    parts = solid_parts(low, s)
    score = float(np.clip(1.0 - und / s.undecided_scale, 0.0, 1.0)) if np.isfinite(und) else 0.0
    signals = {"cutout_model_undecided": round(min(und, 99.0), 4), "cutout_model_parts": parts,
               "cutout_model_share": round(share, 4)}
    why = None
    if share < s.min_share:
        why = f"the model found almost nothing ({share:.2%} of the photo)"
    elif share > s.max_share:
        why = f"the model kept {share:.0%} of the photo (the background with the product)"
    elif frame_sides > 1:
        why = f"the cut runs into {frame_sides} sides of the photo (a scene, not a product)"
    elif parts > 1:
        why = f"the model found {parts} separate objects of similar size (which one is the product?)"
    if why:
        score = 0.0
    return ModelConfidence(score=round(score, 3), signals=signals, why=why)
