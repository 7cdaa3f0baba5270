"""Device and dtype choice, out-of-memory detection and model locations, shared by every model Lightbox
loads (diffusion pipelines, segmentation models). Imports torch only when asked."""

from __future__ import annotations

import os
from dataclasses import dataclass

from lightbox.errors import LightboxError


class DeviceUnavailable(LightboxError):
    """No device meets the spec's ``device`` / ``require``."""


@dataclass(frozen=True)
class Runtime:
    device: str
    dtype: str  # "float16" | "bfloat16" | "float32"


def pick_runtime(device: str, dtype: str, *, field: str, require_accelerator: bool = False) -> Runtime:
    """``auto`` device: CUDA > MPS > CPU; ``auto`` dtype: bf16 (or fp16) on CUDA, fp16 on MPS, fp32 on CPU.
    ``field`` names the spec section in errors (``diffusion``, ``cutout.model``). Without torch (the studio install:
    ONNX models only) CUDA is what onnxruntime offers, and there is no MPS."""
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        cuda = torch.cuda.is_available()
        mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    else:
        import onnxruntime

        cuda, mps = "CUDAExecutionProvider" in onnxruntime.get_available_providers(), False
    if device == "auto":
        device = "cuda" if cuda else "mps" if mps else "cpu"
    elif (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise DeviceUnavailable(f"{field}.device is {device!r} but no {device} device is available")
    if require_accelerator and device == "cpu":
        raise DeviceUnavailable(f"{field}.require is 'accelerator' but only a CPU is available")
    if dtype == "auto":
        if device == "cuda":
            dtype = "bfloat16" if torch is not None and torch.cuda.is_bf16_supported() else "float16"
        elif device == "mps":
            dtype = "float16"
        else:
            dtype = "float32"
    return Runtime(device=device, dtype=dtype)


def is_oom(exc: BaseException) -> bool:
    """An accelerator (or host) out-of-memory error, from torch or onnxruntime."""
    try:
        import torch

        oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
        if oom is not None and isinstance(exc, oom):
            return True
    except ImportError:  # the studio install has no torch: onnxruntime's errors are read by their text
        pass
    text = str(exc).lower()
    return "out of memory" in text or "failed to allocate memory" in text


def where(model: str) -> str:
    """Where a model reference is looked for, for error messages."""
    if os.path.exists(model):
        kind = "local directory" if os.path.isdir(model) else "local file"
        return f"{kind} {os.path.abspath(model)}"
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
    )
    return f"Hugging Face Hub id (cache {cache}; HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE', '0')})"
