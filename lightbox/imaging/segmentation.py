"""Learned segmentation for the cut-out: BiRefNet-family checkpoints through transformers, and ONNX
exports (BiRefNet, IS-Net, U2-Net) through onnxruntime.

- **transformers**: ``AutoModelForImageSegmentation.from_pretrained(path, trust_remote_code=True)``,
  the path BiRefNet's checkpoints take (their modeling code ships with the weights and is registered
  through ``auto_map``). Remote code is trusted only for what the spec names: a local directory, or a
  Hub id pinned to a ``revision`` - an unpinned Hub id is refused.
- **onnx**: an ``.onnx`` file; input size from the graph's input shape when it is static.

Both: the photo is resized to the model's square input (``input_size``, else the model's own, else
1024 px as BiRefNet), normalised (ImageNet mean/std unless the spec says otherwise), run in batches of
``batch_size`` (an out-of-memory halves the batch down to 1 before the photo fails), and the mask -
the model's last output, through a sigmoid when it gives logits - is resampled back to the photo's
size as a soft mask 0..1. Models are loaded once per process and reused across chunks.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lightbox.accelerator import DeviceUnavailable, Runtime, is_oom, pick_runtime, where
from lightbox.extras import MissingExtra, require_ai
from lightbox.errors import LightboxError
from lightbox.specs.models import BrandSpec, SegmentationModel

log = logging.getLogger(__name__)

DEFAULT_INPUT = 1024  # BiRefNet's training size
BUNDLED_PREFIX = "bundled:"
BUNDLED = {"u2netp": "u2netp.onnx"}  # name -> file in lightbox/models (provenance and licence: lightbox/models/README.md)


def bundled_path(name: str) -> str:
    """The file of a model shipped inside the package (``bundled:u2netp``), as a local path."""
    if name not in BUNDLED:
        raise SegmentationLoadError(f"cutout.model.path 'bundled:{name}' names no bundled model (bundled: {', '.join(sorted(BUNDLED))})")
    return str(Path(__file__).resolve().parents[1] / "models" / BUNDLED[name])


def model_file(cfg: SegmentationModel) -> str:
    """Where the model's weights are: the spec's path, or the package's own file for ``bundled:NAME``."""
    return bundled_path(cfg.path[len(BUNDLED_PREFIX):]) if cfg.path.startswith(BUNDLED_PREFIX) else cfg.path


@dataclass(frozen=True)
class Prediction:
    """One photo's mask from the model: ``soft`` at the photo's size (H x W float32, 0..1), and ``low``, the
    model's own square map (input size, 0..1) that the confidence reads (a measure of the model's own
    output, resolution-independent)."""

    soft: np.ndarray
    low: np.ndarray


class SegmentationLoadError(LightboxError):
    """The segmentation model named by the spec cannot be loaded; the message says where Lightbox looked."""


class SegmentationError(LightboxError):
    """A batch could not be segmented (out of memory at batch 1, a broken output)."""


def model_format(cfg: SegmentationModel) -> str:
    if cfg.format != "auto":
        return cfg.format
    return "onnx" if cfg.path.startswith(BUNDLED_PREFIX) or cfg.path.lower().endswith(".onnx") else "transformers"


class _Base:
    cfg: SegmentationModel
    input_size: int
    runtime: Runtime

    @property
    def name(self) -> str:
        return f"{model_format(self.cfg)}:{self.cfg.path}@{self.cfg.revision or 'local'}"

    def _prepare(self, rgbs: list[np.ndarray]) -> np.ndarray:
        s = self.input_size
        mean = np.array(self.cfg.mean, np.float32)[:, None, None]
        std = np.array(self.cfg.std, np.float32)[:, None, None]
        batch = [(np.asarray(Image.fromarray(a).resize((s, s), Image.Resampling.BILINEAR), np.float32) / 255.0).transpose(2, 0, 1)
                 for a in rgbs]
        return (np.stack(batch) - mean) / std

    def _finish(self, raw: np.ndarray, shapes: list[tuple[int, int]]) -> list[Prediction]:
        raw = np.asarray(raw, np.float32)
        if raw.ndim == 4:
            raw = raw[:, 0]
        if raw.ndim != 3 or raw.shape[0] != len(shapes):
            raise SegmentationError(f"model {self.name} returned shape {raw.shape}, expected (batch, [1,] H, W)")
        if not np.isfinite(raw).all():
            raise SegmentationError(f"model {self.name} returned NaN or infinite values")
        out = []
        for m, (h, w) in zip(raw, shapes, strict=True):
            # decided per image, so a photo's mask does not depend on what it was batched with
            if self.cfg.output == "logits" or (self.cfg.output == "auto" and (m.min() < 0.0 or m.max() > 1.0)):
                m = 1.0 / (1.0 + np.exp(-np.clip(m, -60, 60)))
            m = np.clip(m, 0.0, 1.0).astype(np.float32)
            soft = np.asarray(Image.fromarray(m).resize((w, h), Image.Resampling.BILINEAR), np.float32)
            out.append(Prediction(soft=soft, low=m))
        return out

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def predict(self, rgbs: list[np.ndarray]) -> list[Prediction]:
        """Each photo's :class:`Prediction`, in order. Batched; OOM halves the batch."""
        out: list[Prediction] = []
        size = self.cfg.batch_size
        i = 0
        while i < len(rgbs):
            part = rgbs[i : i + size]
            try:
                raw = self._run(self._prepare(part))
            except Exception as e:  # OOM is told apart from the rest just below
                if is_oom(e) and size > 1:
                    size = max(1, size // 2)
                    log.warning("segmentation out of memory; batch size now %d", size)
                    self._free()
                    continue
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SegmentationError(f"model {self.name}: {first}") from e
            out.extend(self._finish(raw, [a.shape[:2] for a in part]))
            i += len(part)
        return out

    def _free(self) -> None:
        pass


class TransformersSegmenter(_Base):
    def __init__(self, cfg: SegmentationModel, runtime: Runtime):
        import torch
        from transformers import AutoModelForImageSegmentation

        from lightbox.quiet import route_library_logs

        route_library_logs()

        self.cfg, self.runtime = cfg, runtime
        local = os.path.isdir(cfg.path)
        if not local and cfg.revision is None:
            raise SegmentationLoadError(
                f"cutout.model.path {cfg.path!r} is not a local directory; a Hub id needs a pinned revision "
                "(its modeling code runs with trust_remote_code, so only the revision the spec names is trusted)")
        try:
            model = AutoModelForImageSegmentation.from_pretrained(
                cfg.path, revision=cfg.revision, trust_remote_code=True,
                local_files_only=local or os.environ.get("HF_HUB_OFFLINE") == "1",
            )
        except Exception as e:  # any loader failure becomes one actionable message
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SegmentationLoadError(f"cannot load segmentation model {cfg.path!r}@{cfg.revision or 'local'} from {where(cfg.path)}: {first}") from e
        self.dtype = getattr(torch, runtime.dtype)
        self.model = model.to(device=runtime.device, dtype=self.dtype).eval()
        conf = getattr(model, "config", None)
        self.input_size = int(cfg.input_size or getattr(conf, "image_size", None) or getattr(conf, "input_size", None) or DEFAULT_INPUT)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(device=self.runtime.device, dtype=self.dtype)
            y = self.model(x)
        if isinstance(y, (list, tuple)):  # BiRefNet: one prediction per decoder stage, the last is final
            y = y[-1]
        elif hasattr(y, "logits"):
            y = y.logits
        return y.float().cpu().numpy()

    def _free(self) -> None:
        import torch

        if self.runtime.device == "cuda":
            torch.cuda.empty_cache()


class OnnxSegmenter(_Base):
    def __init__(self, cfg: SegmentationModel, runtime: Runtime):
        import onnxruntime as ort

        self.cfg, self.runtime = cfg, runtime
        path = model_file(cfg)
        if not Path(path).is_file():
            raise SegmentationLoadError(f"cannot load segmentation model {cfg.path!r}: no such ONNX file {os.path.abspath(path)}")
        providers = ["CPUExecutionProvider"]
        if runtime.device == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(path, providers=providers)
        except Exception as e:  # any loader failure becomes one actionable message
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SegmentationLoadError(f"cannot load segmentation model {cfg.path!r} ({where(path)}): {first}") from e
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_type = np.float16 if "float16" in inp.type else np.float32
        static = [d for d in inp.shape[2:] if isinstance(d, int)]
        fixed = static[0] if len(static) == 2 and static[0] == static[1] else None
        if cfg.input_size and fixed and cfg.input_size != fixed:
            raise SegmentationLoadError(f"cutout.model.input_size is {cfg.input_size} but {cfg.path!r} takes {fixed} x {fixed}")
        self.input_size = int(cfg.input_size or fixed or DEFAULT_INPUT)
        batch_dim = inp.shape[0]
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None
        self.used_providers = self.session.get_providers()

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch == 1 and len(batch) > 1:  # exported for one image at a time
            return np.concatenate([self._run(batch[i : i + 1]) for i in range(len(batch))])
        return self.session.run(None, {self.input_name: batch.astype(self.input_type)})[0]


_CACHE: dict[str, _Base] = {}
_LOCK = threading.Lock()


def resolve_runtime(cfg: SegmentationModel) -> Runtime:
    return pick_runtime(cfg.device, cfg.dtype, field="cutout.model")


def get_segmenter(cfg: SegmentationModel) -> _Base:
    """The loaded model for ``cfg``, once per process (worker), reused across chunks and runs."""
    key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    with _LOCK:
        if key not in _CACHE:
            if model_format(cfg) == "transformers":  # an ONNX model needs onnxruntime only
                require_ai(f"cutout.model {cfg.path!r} (a transformers checkpoint)", ("torch", "transformers"))
            rt = resolve_runtime(cfg)
            cls = OnnxSegmenter if model_format(cfg) == "onnx" else TransformersSegmenter
            _CACHE[key] = cls(cfg, rt)
            log.info("segmentation model %s loaded on %s/%s (input %d px)", _CACHE[key].name, rt.device, rt.dtype, _CACHE[key].input_size)
        return _CACHE[key]


def prepare_segmentation(spec: BrandSpec) -> str | None:
    """Load the spec's segmentation models up front, so one that cannot load fails the run at start
    naming the model and where it looked. Returns None when ready (or none is used), or - when the model's
    ``fallback`` is 'backdrop' - the reason this run cuts without it."""
    for cfg in spec.segmentation_models():
        try:
            get_segmenter(cfg)
        except (SegmentationLoadError, DeviceUnavailable, MissingExtra) as e:
            if cfg.fallback == "fail":
                raise
            return f"{e}; cutting with the backdrop method, refusing photos without a plain backdrop (cutout.model.fallback: backdrop)"
    return None


def segmenter_for(fallback: str | None) -> Any:
    """The ``segmenter_for`` callable the cut-out router takes: the cached model, or None this run."""

    def pick(params: Any) -> _Base | None:
        if fallback or params.model is None:
            return None
        return get_segmenter(params.model)

    return pick
