"""Helpers shared by test modules: a small catalog of studio photos, a thumbnail that fails the upscale limit,
a free loopback port. One copy each (they were spelled in four and imported from a test module)."""

from __future__ import annotations

import socket
from pathlib import Path

import pandas as pd

from tests.support.images import studio_photo, to_bytes


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_catalog(root: Path, bad: dict[str, bytes] | None = None, n_good: int = 3) -> Path:
    """A small catalog: n good studio photos plus the given bad image files (sku -> bytes)."""
    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n_good):
        im, _ = studio_photo(800, 1000, seed=i)
        (img / f"good-{i}.jpg").write_bytes(to_bytes(im, "JPEG", quality=92))
        rows.append((f"GOOD-{i}", f"img/good-{i}.jpg"))
    for sku, data in (bad or {}).items():
        if sku == "HTTP":
            rows.append((sku, "http://images.example.com/p.jpg"))
            continue
        if data is not None:
            (img / f"{sku}.bin").write_bytes(data)
        rows.append((sku, f"img/{sku}.bin"))
    frame = pd.DataFrame(
        [{"sku": s, "title": "Mug", "category": "kitchen", "image": p, "color": "red", "material": "stoneware"} for s, p in rows]
    )
    path = root / "catalog.csv"
    frame.to_csv(path, index=False)
    return path


def add_thumbnail(catalog: Path, sku: str = "THUMB-1") -> None:
    """Append a product whose photo is a 120x160 thumbnail: it renders, then fails the upscale limit."""
    small, _ = studio_photo(120, 160, seed=3, box=(30, 32, 90, 128))
    (catalog.parent / "img" / "thumb.jpg").write_bytes(to_bytes(small, "JPEG"))
    with catalog.open("a") as f:
        f.write(f"{sku},Mug,kitchen,img/thumb.jpg,red,stoneware\n")


EXAMPLE_IMAGES = Path(__file__).resolve().parents[2] / "examples" / "acme-home" / "images"
# three products with three photos each (the example's photos); the two mugs are variants of one product and
# share every photo, so each of those is fetched and cut once
GALLERY = {
    "GAL-MUG-TEAL": ("Mug", ["acm-mug-001.jpg", "acm-mug-002.jpg", "acm-cup-013.png"]),
    "GAL-MUG-RED": ("Mug", ["acm-mug-001.jpg", "acm-mug-002.jpg", "acm-cup-013.png"]),
    "GAL-JAR": ("Jar", ["acm-jar-005.jpg", "acm-jar-024.jpg", "acm-box-022.jpg"]),
}


def make_gallery_catalog(root: Path, drop: dict[str, str] | None = None) -> Path:
    """A Lightbox-layout catalog of :data:`GALLERY` (images joined by ``|``, the main photo first), photos
    copied under ``root/img``; ``drop``: SKU -> a photo file left out of that product's list."""
    img = root / "img"
    img.mkdir(parents=True, exist_ok=True)
    rows = []
    for sku, (title, files) in GALLERY.items():
        for f in files:
            if not (img / f).exists():
                (img / f).write_bytes((EXAMPLE_IMAGES / f).read_bytes())
        kept = [f for f in files if f != (drop or {}).get(sku)]
        rows.append({"sku": sku, "title": title, "category": "kitchen", "images": "|".join(f"img/{f}" for f in kept),
                     "color": "teal", "material": "stoneware"})
    path = root / "catalog.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def animated_gif() -> bytes:
    """A photo the run cannot use although its header and end read fine (validate lets it through): an
    animated GIF, refused when decoded ("animated image with 2 frames")."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    frames = [Image.new("RGB", (200, 240), c) for c in ((200, 40, 40), (40, 40, 200))]
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100)
    return buf.getvalue()
