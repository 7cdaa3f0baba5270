"""The AI engine: new backgrounds and scenes with diffusers, the product itself never repainted.

Background mode (products with a photo), per (product, channel, variant):
1. the studio cut-out is placed on a working canvas (channel aspect, longer side = ``resolution``);
2. an inpainting pipeline repaints everything but the product, from the template's prompt filled
   with the product's attributes, with one seeded generator per item;
3. the scene is resampled to the channel's size and the product's own pixels are composited back at
   full resolution (plus the brand's contact shadow), exactly as the studio engine places them.

Text-to-image mode (no photo, when the spec enables it): the scene is generated from the prompt alone.

Pipelines are loaded once per process and reused (``load_pipeline`` is cached); device and dtype are
chosen automatically unless the spec says otherwise. Items are batched; an accelerator out-of-memory
splits the batch in half and retries down to one item before it fails. A NaN or all-black result is
an item failure, never published.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from lightbox.accelerator import Runtime, is_oom, pick_runtime
from lightbox.accelerator import where as model_location
from lightbox.engines.jobs import Rendered, RenderJob
from lightbox.errors import LightboxError
from lightbox.imaging.compose import layout, paste_window, render, resample_product
from lightbox.quiet import route_library_logs
from lightbox.specs.models import Diffusion

log = logging.getLogger(__name__)


class ModelLoadError(LightboxError):
    """The diffusion model named by the spec cannot be loaded; the message says where Lightbox looked."""


def resolve_runtime(cfg: Diffusion) -> Runtime:
    return pick_runtime(cfg.device, cfg.dtype, field="diffusion", require_accelerator=cfg.require == "accelerator")


_LOAD_LOCK = threading.Lock()


@lru_cache(maxsize=4)
def load_pipeline(model: str, revision: str | None, kind: str, device: str, dtype: str,
                  scheduler: str | None, attention_slicing: bool, vae_tiling: bool, cpu_offload: bool,
                  lora_path: str | None, lora_scale: float) -> Any:
    """Load a diffusers pipeline once per process (the arguments are the cache key)."""
    import diffusers
    import torch
    import transformers

    diffusers.utils.logging.disable_progress_bar()  # loading bars are noise in a pipeline's logs
    transformers.utils.logging.disable_progress_bar()
    route_library_logs()
    auto = diffusers.AutoPipelineForInpainting if kind == "inpaint" else diffusers.AutoPipelineForText2Image
    where = model_location(model)
    try:
        pipe = auto.from_pretrained(
            model, revision=revision, dtype=getattr(torch, dtype),
            local_files_only=os.path.isdir(model) or os.environ.get("HF_HUB_OFFLINE") == "1",
            safety_checker=None, requires_safety_checker=False,
        )
    except Exception as e:  # any loader failure becomes one actionable message
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"cannot load diffusion model {model!r}@{revision or 'default'} ({kind}) from {where}: {first}") from e
    if scheduler:
        cls = getattr(diffusers, scheduler, None)
        if cls is None or not hasattr(cls, "from_config"):
            raise ModelLoadError(f"diffusion.scheduler {scheduler!r} is not a diffusers scheduler class")
        pipe.scheduler = cls.from_config(pipe.scheduler.config)
    if lora_path:
        try:
            pipe.load_lora_weights(lora_path)
            pipe.fuse_lora(lora_scale=lora_scale)
        except Exception as e:
            raise ModelLoadError(f"cannot load LoRA weights from {lora_path}: {e}") from e
    if attention_slicing:
        pipe.enable_attention_slicing()
    if vae_tiling and hasattr(pipe, "vae"):
        pipe.vae.enable_tiling()
    if cpu_offload and device == "cuda":
        pipe.enable_model_cpu_offload()
    else:
        pipe = pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    log.info("loaded %s pipeline %s from %s on %s/%s", kind, type(pipe).__name__, where, device, dtype)
    return pipe


def get_pipeline(cfg: Diffusion, kind: str, rt: Runtime) -> Any:
    model = cfg.model if kind == "inpaint" else (cfg.text_to_image_model or cfg.model)
    with _LOAD_LOCK:  # one load per process even when chunks start together
        return load_pipeline(
            model, cfg.revision, kind, rt.device, rt.dtype, cfg.scheduler, cfg.attention_slicing,
            cfg.vae_tiling, cfg.cpu_offload, cfg.lora.path if cfg.lora else None, cfg.lora.scale if cfg.lora else 0.0,
        )


def working_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    scale = resolution / max(width, height)
    return max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8)


def bad_output(arr: np.ndarray) -> str | None:
    if not np.isfinite(arr).all():
        return "model output contains NaN or infinite values"
    if float(arr.max()) < 0.02:
        return "model output is all black"
    return None


class DiffusersEngine:
    """Renders jobs whose look carries a ``generation``; ``pipelines`` may be handed in (tests, benches)."""

    name = "diffusers"

    def __init__(self, cfg: Diffusion, pipelines: dict[str, Any] | None = None, runtime: Runtime | None = None):
        import diffusers

        route_library_logs()
        self.cfg = cfg
        self.version = f"1.0+diffusers-{diffusers.__version__}"
        self.runtime = runtime or resolve_runtime(cfg)
        self._pipelines = dict(pipelines or {})

    def pipeline(self, kind: str) -> Any:
        if kind not in self._pipelines:
            self._pipelines[kind] = get_pipeline(self.cfg, kind, self.runtime)
        return self._pipelines[kind]

    def scheduler_name(self) -> str:
        return type(self.pipeline("inpaint").scheduler).__name__

    # -- one batch ---------------------------------------------------------------------------------
    def _inputs(self, job: RenderJob) -> tuple[Image.Image, Image.Image, tuple[int, int]]:
        ch = job.look.channel
        ww, wh = working_size(ch.width, ch.height, self.cfg.resolution)
        p, _ = layout(job.cut, job.look, frame=(ww, wh), anchor=job.anchor)
        rows, cols, prows, pcols = paste_window((ww, wh), p)
        small = resample_product(job.cut.product, (p.width, p.height))[prows, pcols]
        canvas = np.full((wh, ww, 3), 127, np.uint8)
        region = canvas[rows, cols]
        a = small[..., 3:4].astype(np.float32) / 255.0
        region[:] = np.rint(small[..., :3] * a + region * (1 - a)).astype(np.uint8)
        keep = np.zeros((wh, ww), bool)
        keep[rows, cols] = small[..., 3] > 0
        keep = ndimage.binary_dilation(keep, iterations=1)
        mask = np.where(keep, 0, 255).astype(np.uint8)  # white = repaint
        return Image.fromarray(canvas, "RGB"), Image.fromarray(mask, "L"), (ww, wh)

    def _call(self, jobs: list[RenderJob]) -> np.ndarray:
        import torch

        ch = jobs[0].look.channel
        ww, wh = working_size(ch.width, ch.height, self.cfg.resolution)
        generators = [torch.Generator(device="cpu").manual_seed(j.seed) for j in jobs]
        common = dict(
            prompt=[j.prompt for j in jobs], negative_prompt=[j.negative_prompt or "" for j in jobs],
            height=wh, width=ww, num_inference_steps=self.cfg.steps, guidance_scale=self.cfg.guidance,
            generator=generators, output_type="np",
        )
        if jobs[0].cut is None:
            return self.pipeline("text2img")(**common).images
        images, masks = zip(*[self._inputs(j)[:2] for j in jobs], strict=True)
        return self.pipeline("inpaint")(image=list(images), mask_image=list(masks), strength=self.cfg.strength, **common).images

    def _generate(self, jobs: list[RenderJob]) -> list[np.ndarray | str]:
        """Images (H x W x 3 float 0..1) or an error string per job; OOM halves the batch."""
        try:
            out = self._call(jobs)
            return [out[i] for i in range(len(jobs))]
        except Exception as e:
            if not is_oom(e):
                raise
            self._empty_cache()
            if len(jobs) == 1:
                return [f"accelerator out of memory at batch size 1 ({self.runtime.device})"]
            half = len(jobs) // 2
            log.warning("out of memory at batch size %d; retrying as %d + %d", len(jobs), half, len(jobs) - half)
            return self._generate(jobs[:half]) + self._generate(jobs[half:])

    def _empty_cache(self) -> None:
        import torch

        if self.runtime.device == "cuda":
            torch.cuda.empty_cache()

    def _finish(self, job: RenderJob, arr: np.ndarray) -> tuple[Image.Image, dict[str, Any]]:
        """Scene at the channel's size with the product's own pixels composited back, and the fill
        known from the placement (the scene has no plain background to measure it against)."""
        ch = job.look.channel
        scene = Image.fromarray(np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8), "RGB")
        if scene.size != (ch.width, ch.height):
            scene = scene.resize((ch.width, ch.height), Image.Resampling.LANCZOS)
        if job.cut is None:
            return scene, {}
        image, p = render(job.cut, job.look, background=np.asarray(scene), anchor=job.anchor)
        fill = {"fill_longest": max(p.width / ch.width, p.height / ch.height),
                "fill_area": p.width * p.height / (ch.width * ch.height), "fill_source": "placement"}
        return image, fill

    def record(self, job: RenderJob) -> dict[str, Any]:
        return {
            "mode": "text-to-image" if job.cut is None else "background-inpainting",
            "model": (self.cfg.text_to_image_model or self.cfg.model) if job.cut is None else self.cfg.model,
            "revision": self.cfg.revision,
            "scheduler": type(self.pipeline("text2img" if job.cut is None else "inpaint").scheduler).__name__,
            "steps": self.cfg.steps, "guidance": self.cfg.guidance,
            "strength": None if job.cut is None else self.cfg.strength,
            "resolution": self.cfg.resolution, "seed": job.seed, "variant": job.variant,
            "prompt": job.prompt, "negative_prompt": job.negative_prompt or "",
            "lora": self.cfg.lora.model_dump() if self.cfg.lora else None,
            "device": self.runtime.device, "dtype": self.runtime.dtype,
        }

    def render(self, jobs: list[RenderJob]) -> list[Rendered]:
        """Batch by (mode, channel size); keeps the jobs' order in the result."""
        results: list[Rendered | None] = [None] * len(jobs)
        groups: dict[tuple, list[int]] = {}
        for i, j in enumerate(jobs):
            groups.setdefault((j.cut is None, j.look.channel.width, j.look.channel.height), []).append(i)
        bs = self.cfg.batch_size
        for idxs in groups.values():
            for start in range(0, len(idxs), bs):
                batch = [jobs[i] for i in idxs[start : start + bs]]
                for i, job, arr in zip(idxs[start : start + bs], batch, self._generate(batch), strict=True):
                    if isinstance(arr, str):
                        results[i] = Rendered(error=arr)
                        continue
                    problem = bad_output(arr)
                    if problem:
                        results[i] = Rendered(error=f"{problem} (seed {job.seed}); not published")
                        continue
                    image, metrics = self._finish(job, arr)
                    results[i] = Rendered(image=image, generation=self.record(job), metrics=metrics)
        return [r for r in results if r is not None]
