"""Test images with known ground truth: a product of known shape on an uneven studio backdrop."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

PRODUCT_RGB = (40, 90, 160)


def product_mask(w: int, h: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """Boolean mask of a rounded-rectangle product (hard edges, so tests can erode it exactly)."""
    box = box or (w // 4, h // 5, 3 * w // 4, 4 * h // 5)
    m = Image.new("L", (w, h), 0)
    ImageDraw.Draw(m).rounded_rectangle(box, radius=min(w, h) // 20, fill=255)
    return np.asarray(m) > 127


def studio_photo(w: int = 600, h: int = 800, seed: int = 0, box=None) -> tuple[Image.Image, np.ndarray]:
    """(RGB photo, product mask): a textured product on an off-white backdrop with a light fall-off."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    light = 1.03 - 0.10 * np.hypot(xx / w - 0.3, yy / h) ** 1.5
    bg = np.array([236, 233, 227], np.float32) * light[..., None] + rng.normal(0, 1.2, (h, w, 3))
    mask = product_mask(w, h, box)
    texture = np.array(PRODUCT_RGB, np.float32) * (0.7 + 0.3 * np.sin(xx / 9.0))[..., None]
    texture += rng.normal(0, 6, (h, w, 3))
    img = np.where(mask[..., None], texture, bg)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB"), mask


def to_bytes(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()
