"""The README's picture: one example photo and what Lightbox made of it, side by side.

    python examples/make_picture.py [--sku TRL-BOT-005] [--out docs/images/example.jpg]

Renders the product from ``examples/trailhead-outdoor/catalog.csv`` with its brand spec (plain loop, into a
temporary folder) and lays out: the source photo, Amazon main, Shopify square, and the transparent PNG over
a checkerboard (so its transparency shows). Run it again after a change to what a render looks like.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TILE = 360
LABELS = ["source photo", "amazon_main.jpg", "shopify_square.jpg", "web_transparent.png"]


def checkerboard(size: int, cell: int = 18) -> Image.Image:
    board = Image.new("RGB", (size, size), (236, 236, 236))
    draw = ImageDraw.Draw(board)
    for y in range(0, size, cell):
        for x in range((y // cell) % 2 * cell, size, 2 * cell):
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(200, 200, 200))
    return board


def fit(im: Image.Image) -> Image.Image:
    im = im.copy()
    im.thumbnail((TILE, TILE), Image.Resampling.LANCZOS)
    return im


def main() -> None:
    from lightbox.pipeline import run_plain

    ap = argparse.ArgumentParser()
    ap.add_argument("--sku", default="TRL-BOT-005")
    ap.add_argument("--out", default=str(REPO / "docs" / "images" / "example.jpg"))
    args = ap.parse_args()
    folder = REPO / "examples" / "trailhead-outdoor"
    with open(folder / "catalog.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["sku"] == args.sku)
    with tempfile.TemporaryDirectory() as tmp:
        catalog = Path(tmp) / "one.csv"
        with open(catalog, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            w.writeheader()
            w.writerow({**row, "image": str(folder / row["image"])})
        run_plain(str(catalog), str(REPO / "brand_specs" / "trailhead-outdoor.yaml"), tmp + "/out")
        made = Path(tmp) / "out" / "trailhead-outdoor" / args.sku
        source = Image.open(folder / row["image"]).convert("RGBA")
        tiles = [source, *(Image.open(made / name) for name in LABELS[1:])]
        sheet = Image.new("RGB", (4 * TILE + 5 * 12, TILE + 48), (255, 255, 255))
        draw = ImageDraw.Draw(sheet)
        for i, (im, label) in enumerate(zip(tiles, LABELS, strict=True)):
            x = 12 + i * (TILE + 12)
            small = fit(im.convert("RGBA"))
            base = checkerboard(TILE) if label.endswith(".png") else Image.new("RGB", (TILE, TILE), (255, 255, 255))
            base.paste(small, ((TILE - small.width) // 2, (TILE - small.height) // 2), small)
            sheet.paste(base, (x, 12))
            draw.rectangle([x - 1, 11, x + TILE, 12 + TILE], outline=(170, 170, 170))  # the frame's edge
            draw.text((x, TILE + 20), label, fill=(40, 40, 40))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, quality=85, optimize=True)
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
