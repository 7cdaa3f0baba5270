"""What an engine is asked to render, and what it gives back (in-process only: these hold pixels)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from lightbox.imaging.cutout import CutOut
from lightbox.records import Product
from lightbox.specs.models import Look


@dataclass
class RenderJob:
    product: Product
    look: Look
    variant: int
    seed: int
    cut: CutOut | None  # None: no photo (text-to-image)
    prompt: str | None = None
    negative_prompt: str | None = None
    anchor: tuple[int, int] | None = None  # the product's box in its main photo (same shoot): no larger a scale than there


@dataclass
class Rendered:
    image: Image.Image | None = None
    error: str | None = None
    generation: dict[str, Any] | None = None  # the AI engine's record for the manifest
    metrics: dict[str, Any] = field(default_factory=dict)  # known by construction (e.g. fill on an AI scene)
