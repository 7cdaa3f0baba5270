"""The CPU studio engine: cut out, place on the brand background with a contact shadow, frame per channel."""

from __future__ import annotations

from PIL import Image

from lightbox.imaging.compose import render
from lightbox.imaging.cutout import cut_out
from lightbox.records import Product
from lightbox.specs.models import Look


class StudioEngine:
    name = "studio"
    version = "1.0"

    def render_product(self, source: Image.Image, looks: dict[str, Look], product: Product, seed: int) -> dict[str, Image.Image]:
        if not looks:
            return {}
        cutout_params = next(iter(looks.values())).cutout
        cut = cut_out(source, cutout_params)  # once per product, shared by every channel
        return {channel: render(cut, look)[0] for channel, look in looks.items()}
