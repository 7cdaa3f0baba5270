"""Generation engines. An engine renders a list of jobs (product x channel x variant) into images.

- ``studio`` (CPU, no model): cut-out on the brand background with a contact shadow.
- ``diffusers``: AI backgrounds and scenes (lightbox.engines.diffusion), product pixels composited back.
"""

from __future__ import annotations

from typing import Protocol

from lightbox.engines.jobs import Rendered, RenderJob


class Engine(Protocol):
    name: str
    version: str

    def render(self, jobs: list[RenderJob]) -> list[Rendered]:
        """One result per job, in order; a job that cannot be rendered gets ``Rendered(error=...)``."""
        ...


__all__ = ["Engine", "RenderJob", "Rendered"]


def uses_ai(spec) -> bool:  # BrandSpec (kept import-light)
    return spec.diffusion is not None and any((spec.templates[t].engine or spec.engine) == "diffusers" for t in spec.template_names())


def build_engines(spec, ai_fallback: str | None) -> dict[str, Engine]:
    """The engines a run needs: studio always; diffusers when the spec uses it and it did not fall back."""
    from lightbox.engines.studio import StudioEngine

    engines: dict[str, Engine] = {"studio": StudioEngine()}
    if uses_ai(spec) and not ai_fallback:
        from lightbox.engines.diffusion import DiffusersEngine

        engines["diffusers"] = DiffusersEngine(spec.diffusion)
    return engines


def prepare_ai(spec) -> str | None:
    """Load the AI engine's pipelines up front (so a bad model fails the run at start, naming the model
    and where it looked). Returns None when ready, or the reason AI looks fall back to the studio
    engine this run, per the spec's ``diffusion.fallback``; raises when the fallback is 'fail'."""
    if not uses_ai(spec):
        return None
    from lightbox.accelerator import DeviceUnavailable
    from lightbox.extras import MissingExtra, require_ai

    cfg = spec.diffusion
    try:
        require_ai("diffusion (the spec's AI looks)")
        from lightbox.engines.diffusion import ModelLoadError, get_pipeline, resolve_runtime
    except MissingExtra as e:
        if cfg.fallback == "fail":
            raise
        return f"{e}; rendering with the studio engine (diffusion.fallback: studio)"
    try:
        rt = resolve_runtime(cfg)
        get_pipeline(cfg, "inpaint", rt)
        if cfg.text_to_image:
            get_pipeline(cfg, "text2img", rt)
    except (ModelLoadError, DeviceUnavailable) as e:
        if cfg.fallback == "fail":
            raise
        return f"{e}; rendering with the studio engine (diffusion.fallback: studio)"
    return None
