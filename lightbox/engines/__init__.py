"""Generation engines. An engine turns one decoded source photo into one image per channel look."""

from __future__ import annotations

from typing import Protocol

from PIL import Image

from lightbox.records import Product
from lightbox.specs.models import Look


class Engine(Protocol):
    name: str
    version: str

    def render_product(self, source: Image.Image, looks: dict[str, Look], product: Product, seed: int) -> dict[str, Image.Image]:
        """One image per channel in ``looks``. Raises ItemError for a product it cannot render."""
        ...


def get_engine(name: str) -> Engine:
    if name == "studio":
        from lightbox.engines.studio import StudioEngine

        return StudioEngine()
    raise ValueError(f"unknown engine {name!r} (available: studio)")
