"""Make the example catalog: realistic synthetic studio photos and a catalog CSV.

    python examples/make_examples.py [OUT_DIR]      (default: examples/acme-home)

Deterministic (seeded): the same script gives the same files. Photos are 1200-3000 px, products of
varied shapes and colours on an off-white backdrop with uneven light, sensor noise and a faint floor
shadow; a few are transparent PNGs and a few JPEGs are stored rotated with an EXIF orientation tag.
Each product's true mask (alpha 0..255, upright as displayed) is written to ``masks/<sku>.png``: the
ground truth the cut-out is measured against (``bench/bench_cutout.py``).
The catalog also carries two hero products (skipped: traditional photography) and two invalid rows
(quarantined with a reason), as a real export would.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lightbox.testing.photos import HEROES, PRODUCTS, product_photo

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
    catalog = out_dir / "catalog.csv"
    with catalog.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return catalog


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "acme-home"
    written = main(target)
    sys.stdout.write(f"wrote {written} and {len(PRODUCTS)} photos under {written.parent / 'images'}\n")
