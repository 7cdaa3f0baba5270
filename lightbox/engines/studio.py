"""The CPU studio engine: the cut-out on the brand background with a contact shadow, framed per channel."""

from __future__ import annotations

from lightbox.engines.jobs import Rendered, RenderJob
from lightbox.imaging.compose import render


class StudioEngine:
    name = "studio"
    version = "1.2"  # 1.2: the outline resized bilinear (no Lanczos ringing: a bright line at a hard edge)
    # 1.1: the contact shadow sits under the base, not the whole width (handles, spouts)
    # (additional photos framed at their main photo's scale: a new input, the anchor, in their fingerprint)

    def render(self, jobs: list[RenderJob]) -> list[Rendered]:
        out = []
        for job in jobs:
            if job.cut is None:
                out.append(Rendered(error=f"no source photo: channel {job.look.channel.name} needs one"))
            else:
                out.append(Rendered(image=render(job.cut, job.look, anchor=job.anchor)[0]))
        return out
