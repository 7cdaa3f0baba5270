"""Routing: which method cuts each photo of a chunk, the model's photos batched, one photo's failure its own."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from lightbox.errors import ItemError, first_line
from lightbox.specs.models import Cutout as CutoutParams
from lightbox.imaging.cutout.alpha import from_alpha
from lightbox.imaging.cutout.backdrop import cut_backdrop
from lightbox.imaging.cutout.agreement import checked_against_backdrop
from lightbox.imaging.cutout.model import from_model
from lightbox.imaging.cutout.result import CutOut
from lightbox.imaging.cutout.settings import NO_BACKDROP
from lightbox.imaging.cutout.surface import BackdropTest, assess_backdrop
from lightbox.imaging.segmentation import Prediction, SegmentationError

log = logging.getLogger(__name__)


@dataclass
class _Planned:
    """A photo on its way to a cut: either done, waiting for the model, or refused."""

    rgb: np.ndarray | None = None
    cut: CutOut | None = None
    reason: str = ""
    error: ItemError | None = None
    fallback: CutOut | None = None  # an unsure backdrop cut, used when the model is not there
    test: BackdropTest | None = None  # the plain-backdrop test, when routing already ran it


def plan_cut(im: Image.Image, params: CutoutParams, has_model: bool) -> _Planned:
    """Decide the method for one photo; cuts it now unless the model is needed."""
    if im.mode == "RGBA":
        arr = np.asarray(im)
        if (arr[..., 3] < 250).mean() > 0.01:
            if params.method in ("auto", "alpha"):
                return _Planned(cut=from_alpha(arr))
            im = im.convert("RGB")  # backdrop/model asked for explicitly: the alpha is ignored
        else:
            im = im.convert("RGB")
    if im.mode != "RGB":
        raise ValueError(f"cut_out expects an RGB or RGBA image, got mode {im.mode!r}")
    rgb = np.asarray(im)
    if params.method == "alpha":
        return _Planned(error=ItemError("cutout.method is 'alpha' but the photo has no transparency"))
    if params.method == "model":
        if not has_model:
            return _Planned(error=ItemError("cutout.method is 'model' but the segmentation model is not available this run"))
        return _Planned(rgb=rgb, reason="cutout.method is 'model'")
    test = assess_backdrop(rgb, params)
    if not test.plain:
        if params.method == "auto" and has_model:
            return _Planned(rgb=rgb, reason=f"no plain backdrop ({test.why})", test=test)
        if params.method == "backdrop":
            return _Planned(error=ItemError(f"no plain backdrop in the source photo, and cutout.method is 'backdrop' ({test.why})"))
        return _Planned(error=ItemError(f"{NO_BACKDROP} ({test.why})"))
    try:
        cut = cut_backdrop(rgb, params, test)
    except ItemError as e:
        if params.method == "auto" and has_model:
            return _Planned(rgb=rgb, reason=f"backdrop cut failed ({e})", test=test)
        return _Planned(error=e)
    if cut.confident or params.method == "backdrop":
        return _Planned(cut=cut)
    if has_model:
        return _Planned(rgb=rgb, reason=f"backdrop cut unsure ({cut.reason})", fallback=cut, test=test)
    return _Planned(cut=cut)


def cut_out_many(images: list[Image.Image], params: list[CutoutParams],
                 segmenter_for: Callable[[CutoutParams], Any | None] = lambda p: None) -> list[CutOut | ItemError]:
    """Cut a chunk's photos: route each, batch the model's photos per segmenter, refine its masks.
    Returns a cut or the ItemError that refused it, per photo, in order."""
    segs = [segmenter_for(p) if p.method in ("auto", "model") and p.model is not None else None for p in params]
    plans = [_isolated(lambda im=im, p=p, s=s: plan_cut(im, p, s is not None), "routing")
             for im, p, s in zip(images, params, segs, strict=True)]
    results: list[CutOut | ItemError | None] = [
        pl if isinstance(pl, ItemError) else pl.cut if pl.cut is not None else pl.error for pl in plans]
    waiting = [i for i, pl in enumerate(plans) if isinstance(pl, _Planned) and pl.cut is None and pl.error is None]
    by_seg: dict[int, list[int]] = {}
    for i in waiting:
        by_seg.setdefault(id(segs[i]), []).append(i)
    for idxs in by_seg.values():
        seg = segs[idxs[0]]
        for i, pred in zip(idxs, _predict_isolated(seg, [plans[i].rgb for i in idxs]), strict=True):
            if isinstance(pred, SegmentationError):
                results[i] = plans[i].fallback or ItemError(f"segmentation model failed: {pred}")
                continue
            results[i] = _isolated(lambda i=i, pred=pred: _model_cut(plans[i], pred, params[i]), "the model's cut")
    return results  # type: ignore[return-value]


def _model_cut(plan: _Planned, pred: Prediction, params: CutoutParams) -> CutOut:
    """The model's cut, checked against the unsure backdrop cut it replaces, when there is one."""
    cut = from_model(plan.rgb, pred, params, plan.reason, plan.test)
    return checked_against_backdrop(cut, plan.fallback) if plan.fallback is not None else cut


def _isolated(step: Callable[[], Any], what: str) -> Any:
    """``step()``, or the ItemError that fails this one photo: a refusal as it is, and any other error in
    one photo's routing or cut (a bug, an image no step expected) as a one-line reason, logged with its
    traceback. A photo's failure never reaches the rest of its chunk."""
    try:
        return step()
    except ItemError as e:
        return e
    except Exception as e:  # one photo's unexpected error fails that photo alone; its traceback is logged
        log.exception("cut-out: %s failed on one photo", what)
        return ItemError(f"cut-out failed in {what}: {first_line(e)}")


def _predict_isolated(seg: Any, rgbs: list[np.ndarray]) -> list[Prediction | SegmentationError]:
    """The model's predictions for a batch; when the batch fails, each photo again alone, so only the photo
    that breaks the model fails (as a SegmentationError in its place)."""
    try:
        return list(seg.predict(rgbs))
    except SegmentationError as e:
        if len(rgbs) == 1:
            return [e]
        log.warning("segmentation batch of %d failed (%s); segmenting its photos one at a time", len(rgbs), e)
    out: list[Prediction | SegmentationError] = []
    for rgb in rgbs:
        try:
            out.extend(seg.predict([rgb]))
        except SegmentationError as e:
            out.append(e)
    return out


def cut_out(im: Image.Image, params: CutoutParams, segmenter: Any | None = None) -> CutOut:
    """One photo (see :func:`cut_out_many`); raises the ItemError that refused it."""
    res = cut_out_many([im], [params], lambda p: segmenter)[0]
    if isinstance(res, ItemError):
        raise res
    return res
