"""Make the example catalogs: realistic synthetic studio photos and a catalog CSV per brand.

    python examples/make_examples.py [OUT_DIR]      (default: examples/; writes acme-home/ and trailhead-outdoor/)

Deterministic (seeded): the same script gives the same files. Photos are 1200-3000 px, products of
varied shapes and colours on an off-white backdrop with uneven light, sensor noise and a faint floor
shadow; a few are transparent PNGs and a few JPEGs are stored rotated with an EXIF orientation tag.
Each product's true mask (alpha 0..255, upright as displayed) is written to ``masks/<sku>.png``: the
ground truth the cut-out is measured against (``bench/bench_cutout.py``).
The catalog also carries two hero products (skipped: traditional photography) and two invalid rows
(quarantined with a reason), as a real export would. ``trailhead-outdoor/`` is the second brand's catalog
(bags, bottles, footwear, accessories; ``brand_specs/trailhead-outdoor.yaml``, with a transparent PNG channel).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lightbox.testing.photos import HEROES, PRODUCTS, TRAILHEAD_PRODUCTS, product_photo

def _save_photo(im: Image.Image, img_dir: Path, sku: str, kind: str) -> str:
    """The photo as a catalog exports it: a PNG, a JPEG, or a JPEG stored rotated with an EXIF orientation tag."""
    if kind == "png":
        name = f"{sku.lower()}.png"
        im.save(img_dir / name, "PNG", optimize=False)
    elif kind == "exif":
        name = f"{sku.lower()}.jpg"
        exif = Image.Exif()
        exif[0x0112] = 6  # stored rotated; viewers rotate 90 degrees clockwise to display
        im.transpose(Image.Transpose.ROTATE_90).save(img_dir / name, "JPEG", quality=90, exif=exif)
    else:
        name = f"{sku.lower()}.jpg"
        im.save(img_dir / name, "JPEG", quality=90)
    return name


def _write_catalog(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def trailhead(out_dir: Path) -> Path:
    """The second brand's catalog: 8 products in the four categories of its spec, 2 of them transparent PNGs."""
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (sku, title, category, shape, colour, material, size, dims, kind) in enumerate(TRAILHEAD_PRODUCTS):
        im, _ = product_photo(shape, colour, dims, np.random.default_rng(2000 + i), transparent=(kind == "png"))
        name = _save_photo(im, img_dir, sku, kind)
        rows.append({"sku": sku, "title": title, "category": category, "image": f"images/{name}", "color": colour,
                     "material": material, "size": size, "priority": "0", "hero": "false"})
    return _write_catalog(out_dir / "catalog.csv", rows)


def main(out_dir: Path) -> Path:
    img_dir = out_dir / "images"
    mask_dir = out_dir / "masks"
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (sku, title, category, shape, colour, material, size, kind) in enumerate(PRODUCTS):
        rng = np.random.default_rng(1000 + i)
        im, alpha = product_photo(shape, colour, size, rng, transparent=(kind == "png"))
        Image.fromarray(alpha, "L").save(mask_dir / f"{sku.lower()}.png", "PNG", optimize=False)
        name = _save_photo(im, img_dir, sku, kind)
        rows.append({"sku": sku, "title": title, "category": category, "image": f"images/{name}",
                     "color": colour, "material": material, "size": "", "priority": str(1 if i < 6 else 0), "hero": "false"})
    for sku, title, category, colour, material in HEROES:
        rows.append({"sku": sku, "title": title, "category": category, "image": "", "color": colour,
                     "material": material, "size": "", "priority": "5", "hero": "true"})
    # Two rows as real exports carry them: a SKU with a path in it, and a missing colour the templates need.
    rows.append({"sku": "ACM/../MUG-099", "title": "Travel Mug", "category": "kitchen", "image": "images/acm-mug-001.jpg",
                 "color": "black", "material": "steel", "size": "", "priority": "0", "hero": "false"})
    rows.append({"sku": "ACM-VAS-098", "title": "Mini Vase", "category": "decor", "image": "images/acm-vas-019.jpg",
                 "color": "", "material": "glass", "size": "", "priority": "0", "hero": "false"})
    return _write_catalog(out_dir / "catalog.csv", rows)


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
    for written, n in ((main(root / "acme-home"), len(PRODUCTS)), (trailhead(root / "trailhead-outdoor"), len(TRAILHEAD_PRODUCTS))):
        sys.stdout.write(f"wrote {written} and {n} photos under {written.parent / 'images'}\n")
