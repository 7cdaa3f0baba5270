"""Synthetic product photos with known ground truth: the example catalog's products and studio backdrop.

Shared by ``examples/make_examples.py`` (the bundled catalog) and :mod:`lightbox.testing.cutout_set`
(the labelled mask set). Every function is deterministic for a given ``numpy`` generator.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

COLORS = {
    "red": (196, 48, 43), "orange": (226, 121, 36), "yellow": (232, 190, 52), "green": (62, 128, 72),
    "teal": (32, 128, 128), "blue": (44, 92, 170), "navy": (30, 42, 84), "purple": (112, 62, 140),
    "pink": (222, 128, 160), "brown": (120, 78, 46), "black": (34, 34, 36), "grey": (128, 130, 134),
    "copper": (184, 110, 70), "natural": (206, 176, 132), "white": (246, 245, 242),
}

def backdrop(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Off-white paper sweep: warm tint, light falling off from one side and towards the corners."""
    base = np.array([238, 235, 229], dtype=np.float32) + rng.uniform(-6, 6, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = rng.uniform(0.2, 0.8) * w, rng.uniform(-0.2, 0.3) * h
    r = np.hypot(xx - lx, yy - ly) / math.hypot(w, h)
    light = 1.04 - 0.16 * r**1.5 - 0.03 * (yy / h)
    img = base[None, None, :] * light[..., None]
    img += rng.normal(0, 1.6, img.shape)
    return img


def shape_mask(shape: str, w: int, h: int) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Mask of the product silhouette (4x supersampled, then reduced for anti-aliased edges)."""
    s = 4
    W, H = w * s, h * s
    m = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(m)
    cx = W // 2
    pw = int(min(W, H * 0.9) * 0.42)  # product body width
    top, bottom = int(H * 0.16), int(H * 0.84)
    if shape == "mug":
        bw = pw
        d.rounded_rectangle([cx - bw // 2, top + H // 8, cx + bw // 2, bottom], radius=bw // 10, fill=255)
        t = bw // 9
        d.ellipse([cx + bw // 2 - t, top + H // 5, cx + bw // 2 + bw // 3, bottom - H // 6], fill=255)
        d.ellipse([cx + bw // 2, top + H // 5 + t, cx + bw // 2 + bw // 3 - t, bottom - H // 6 - t], fill=0)
    elif shape in ("bottle", "jar", "tumbler", "candle"):
        bw = {"bottle": pw * 0.55, "jar": pw * 0.8, "tumbler": pw * 0.6, "candle": pw * 0.45}[shape]
        bw = int(bw)
        body_top = {"bottle": top + (bottom - top) // 3, "jar": top + H // 10, "tumbler": top, "candle": top}[shape]
        d.rounded_rectangle([cx - bw // 2, body_top, cx + bw // 2, bottom], radius=bw // 8, fill=255)
        if shape == "bottle":
            nw = bw // 3
            d.polygon([(cx - bw // 2, body_top + bw // 4), (cx - nw // 2, body_top - H // 12),
                       (cx + nw // 2, body_top - H // 12), (cx + bw // 2, body_top + bw // 4)], fill=255)
            d.rectangle([cx - nw // 2, top + H // 20, cx + nw // 2, body_top - H // 12 + 2], fill=255)
            d.rounded_rectangle([cx - nw // 2 - s * 4, top, cx + nw // 2 + s * 4, top + H // 16], radius=s * 6, fill=255)
        if shape == "jar":
            d.rounded_rectangle([cx - bw // 2 - s * 6, top, cx + bw // 2 + s * 6, top + H // 10 + s * 4], radius=s * 10, fill=255)
        if shape == "tumbler":
            d.polygon([(cx - bw // 2 - bw // 8, top), (cx + bw // 2 + bw // 8, top), (cx + bw // 2, bottom),
                       (cx - bw // 2, bottom)], fill=255)
        if shape == "candle":
            d.rectangle([cx - s * 2, top - H // 14, cx + s * 2, top], fill=255)
    elif shape == "kettle":
        bw = int(pw * 1.1)
        d.ellipse([cx - bw // 2, top + H // 6, cx + bw // 2, bottom + H // 12], fill=255)
        d.rectangle([cx - bw // 2, (bottom + top) // 2, cx + bw // 2, bottom], fill=255)
        d.polygon([(cx + bw // 2 - bw // 10, bottom - H // 5), (cx + bw, top + H // 10),
                   (cx + bw + s * 8, top + H // 10 + s * 10), (cx + bw // 2, bottom - H // 10)], fill=255)
        d.arc([cx - bw // 2 - bw // 4, top, cx - bw // 8, bottom - H // 8], 100, 260, fill=255, width=bw // 10)
        d.rounded_rectangle([cx - bw // 8, top + H // 8, cx + bw // 8, top + H // 5], radius=s * 8, fill=255)
    elif shape == "box":
        bw, bh = int(W * 0.5), int(H * 0.42)
        x0, y0 = cx - bw // 2, H // 2 - bh // 3
        dx, dy = bw // 5, bh // 4
        d.rectangle([x0, y0, x0 + bw, y0 + bh], fill=255)
        d.polygon([(x0, y0), (x0 + dx, y0 - dy), (x0 + bw + dx, y0 - dy), (x0 + bw, y0)], fill=255)
        d.polygon([(x0 + bw, y0), (x0 + bw + dx, y0 - dy), (x0 + bw + dx, y0 + bh - dy), (x0 + bw, y0 + bh)], fill=255)
    elif shape == "bowl":
        bw = int(W * 0.64)
        d.chord([cx - bw // 2, H // 2 - H // 3, cx + bw // 2, H // 2 + H // 4], 0, 180, fill=255)
        d.ellipse([cx - bw // 2, H // 2 - H // 12 - s * 20, cx + bw // 2, H // 2 + s * 20], fill=255)
        d.rectangle([cx - bw // 6, H // 2 + H // 5, cx + bw // 6, H // 2 + H // 4 + s * 6], fill=255)
    elif shape == "plate":
        r = int(min(W, H) * 0.34)
        d.ellipse([cx - r, H // 2 - int(r * 0.75), cx + r, H // 2 + int(r * 0.75)], fill=255)
    elif shape == "lamp":
        sw = int(pw * 1.1)
        d.polygon([(cx - sw // 3, top), (cx + sw // 3, top), (cx + sw // 2, top + H // 4), (cx - sw // 2, top + H // 4)], fill=255)
        d.rectangle([cx - s * 6, top + H // 4, cx + s * 6, bottom - H // 20], fill=255)
        d.ellipse([cx - sw // 3, bottom - H // 12, cx + sw // 3, bottom], fill=255)
    elif shape == "vase":
        pts = []
        for i in range(41):
            t = i / 40
            y = top + t * (bottom - top)
            r = pw * (0.18 + 0.32 * math.sin(math.pi * (0.15 + 0.8 * t)) ** 2) if t > 0.12 else pw * 0.16
            pts.append((y, r))
        poly = [(cx - r, y) for y, r in pts] + [(cx + r, y) for y, r in reversed(pts)]
        d.polygon(poly, fill=255)
    elif shape == "boot":  # side view: shaft, foot to the right, a thicker sole
        sw = int(pw * 0.62)
        x0 = cx - int(pw * 0.75)
        d.rounded_rectangle([x0, top + H // 12, x0 + sw, bottom], radius=sw // 6, fill=255)
        d.rounded_rectangle([x0, bottom - H // 4, x0 + int(pw * 1.5), bottom], radius=H // 10, fill=255)
        d.rectangle([x0 - s * 4, bottom - H // 28, x0 + int(pw * 1.5) + s * 2, bottom], fill=255)
    elif shape == "bag":  # a daypack: rounded body, a top handle loop
        bw = int(pw * 1.05)
        d.rounded_rectangle([cx - bw // 2, top + H // 7, cx + bw // 2, bottom], radius=bw // 4, fill=255)
        d.arc([cx - bw // 6, top, cx + bw // 6, top + H // 4], 180, 360, fill=255, width=max(s * 6, bw // 16))
    else:
        raise ValueError(shape)
    m = m.resize((w, h), Image.Resampling.BOX)
    bbox = m.getbbox()
    return m, bbox


def product_body(shape: str, base: np.ndarray, bbox: tuple[int, int, int, int], size: tuple[int, int], rng: np.random.Generator,
                 specular: float = 0.6) -> np.ndarray:
    """H x W x 3 float32 colour of a product lit like a cylinder (darker sides, a specular stripe at 30 %),
    with a printed light label band on bottles, jars, tumblers, boxes and candles and a dark wick on candles."""
    w, h = size
    x0, y0, x1, y1 = bbox
    xx = (np.arange(w, dtype=np.float32) - x0) / max(x1 - x0, 1)
    shade = 0.62 + 0.45 * np.clip(np.sin(np.clip(xx, 0, 1) * math.pi), 0, 1) ** 0.7
    spec = 0.5 * np.exp(-(((xx - 0.3) / 0.05) ** 2))
    yy = (np.arange(h, dtype=np.float32) - y0) / max(y1 - y0, 1)
    vshade = 1.0 - 0.12 * np.clip(yy, 0, 1)
    body = base[None, None, :] * shade[None, :, None] * vshade[:, None, None]
    body = body + 255 * spec[None, :, None] * specular
    body += rng.normal(0, 1.2, body.shape)
    if shape in ("bottle", "jar", "tumbler", "box", "candle"):
        ly0, ly1 = int(y0 + 0.55 * (y1 - y0)), int(y0 + 0.75 * (y1 - y0))
        body[ly0:ly1, :, :] = body[ly0:ly1, :, :] * 0.25 + np.array([244, 240, 228]) * 0.75
        body[ly0 + (ly1 - ly0) // 3 : ly0 + (ly1 - ly0) // 3 + max(2, h // 200), :, :] = 40
    if shape == "candle":  # a wick is dark, whatever the wax colour
        wick_rows = slice(max(0, y0), int(y0 + 0.085 * (y1 - y0)))
        body[wick_rows, :, :] = np.array([38, 30, 26], np.float32)
    return body


def floor_shadow(bbox: tuple[int, int, int, int], size: tuple[int, int], strength: float = 0.07, offset: float = 0.0,
                 spread: float = 1.0) -> np.ndarray:
    """H x W multiplier (1 - strength x blurred ellipse) for a shadow on the floor under the product;
    ``offset`` shifts it sideways (a light from the side), in product widths."""
    w, h = size
    x0, y0, x1, y1 = bbox
    dx = int(offset * (x1 - x0))
    sh = Image.new("L", (w, h), 0)
    ImageDraw.Draw(sh).ellipse([x0 + dx, y1 - int(spread * (y1 - y0)) // 30, x1 + dx, y1 + int(spread * (y1 - y0)) // 25], fill=255)
    sh = np.asarray(sh.filter(ImageFilter.GaussianBlur(max(4, int(spread * w) // 80))), dtype=np.float32) / 255.0
    return 1.0 - strength * sh


def product_photo(shape: str, colour: str, size: tuple[int, int], rng: np.random.Generator, transparent: bool) -> tuple[Image.Image, np.ndarray]:
    """(photo, true alpha 0..255 of the product): RGBA when ``transparent``, else on a studio backdrop."""
    w, h = size
    mask, bbox = shape_mask(shape, w, h)
    body = np.clip(product_body(shape, np.array(COLORS[colour], dtype=np.float32), bbox, size, rng), 0, 255).astype(np.uint8)
    alpha = np.asarray(mask)
    if transparent:
        body[alpha == 0] = 0  # as exporters write it: no colour under fully transparent pixels
        return Image.fromarray(np.dstack([body, alpha]), "RGBA"), alpha
    bg = backdrop(w, h, rng)
    bg *= floor_shadow(bbox, size)[..., None]  # faint floor shadow under the product
    a = alpha.astype(np.float32)[..., None] / 255.0
    out = body.astype(np.float32) * a + bg * (1 - a)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB"), alpha


# sku, title, category, shape, colour, material, size (w, h), kind
PRODUCTS = [
    ("ACM-MUG-001", "Stoneware Mug", "kitchen", "mug", "teal", "stoneware", (1600, 1600), "jpeg"),
    ("ACM-MUG-002", "Espresso Cup", "kitchen", "mug", "red", "porcelain", (1200, 1400), "jpeg"),
    ("ACM-BTL-003", "Olive Oil Bottle", "kitchen", "bottle", "green", "glass", (1500, 2400), "jpeg"),
    ("ACM-BTL-004", "Cold Brew Bottle", "kitchen", "bottle", "navy", "glass", (1800, 3000), "exif"),
    ("ACM-JAR-005", "Spice Jar", "kitchen", "jar", "copper", "tin", (1400, 1400), "jpeg"),
    ("ACM-KTL-006", "Pour-over Kettle", "kitchen", "kettle", "black", "steel", (2200, 1800), "jpeg"),
    ("ACM-BOX-007", "Tea Gift Box", "kitchen", "box", "purple", "cardboard", (2000, 1600), "png"),
    ("ACM-CAN-008", "Storage Canister", "kitchen", "jar", "yellow", "enamel", (1600, 2000), "jpeg"),
    ("ACM-BWL-009", "Serving Bowl", "tableware", "bowl", "blue", "ceramic", (2400, 1600), "jpeg"),
    ("ACM-BWL-010", "Salad Bowl", "tableware", "bowl", "natural", "acacia", (2000, 1300), "exif"),
    ("ACM-PLT-011", "Dinner Plate", "tableware", "plate", "grey", "stoneware", (2000, 2000), "jpeg"),
    ("ACM-PLT-012", "Side Plate", "tableware", "plate", "pink", "porcelain", (1500, 1500), "jpeg"),
    ("ACM-CUP-013", "Tumbler", "tableware", "tumbler", "orange", "glass", (1300, 1800), "png"),
    ("ACM-PCH-014", "Water Pitcher", "tableware", "bottle", "teal", "glass", (1600, 2600), "jpeg"),
    ("ACM-LMP-015", "Table Lamp", "lighting", "lamp", "natural", "linen", (1800, 2600), "jpeg"),
    ("ACM-LMP-016", "Desk Lamp", "lighting", "lamp", "black", "steel", (1600, 2200), "exif"),
    ("ACM-LMP-017", "Bedside Lamp", "lighting", "lamp", "pink", "ceramic", (1400, 2000), "jpeg"),
    ("ACM-CDL-018", "Pillar Candle", "lighting", "candle", "white", "soy wax", (1200, 1800), "jpeg"),
    ("ACM-VAS-019", "Bud Vase", "decor", "vase", "green", "glass", (1400, 2400), "jpeg"),
    ("ACM-VAS-020", "Floor Vase", "decor", "vase", "brown", "terracotta", (1800, 3000), "jpeg"),
    ("ACM-BSK-021", "Storage Basket", "decor", "bowl", "natural", "seagrass", (2600, 1800), "png"),
    ("ACM-BOX-022", "Keepsake Box", "decor", "box", "navy", "walnut", (2200, 1700), "jpeg"),
    ("ACM-CDL-023", "Taper Candle Set", "decor", "candle", "red", "beeswax", (1200, 2000), "jpeg"),
    ("ACM-JAR-024", "Cookie Jar", "kitchen", "jar", "blue", "glass", (1800, 1800), "jpeg"),
]
# the second brand's example (examples/trailhead-outdoor): bags, bottles, footwear, accessories; size is the
# shoe size its footwear alt text names
TRAILHEAD_PRODUCTS = [
    ("TRL-BTL-001", "Insulated Bottle", "bottles", "bottle", "teal", "steel", "", (1400, 2200), "jpeg"),
    ("TRL-BTL-002", "Trail Flask", "bottles", "tumbler", "orange", "steel", "", (1300, 1800), "png"),
    ("TRL-BAG-003", "Daypack 20L", "bags", "bag", "green", "ripstop nylon", "", (1800, 2000), "jpeg"),
    ("TRL-BAG-004", "Summit Pack 35L", "bags", "bag", "navy", "cordura", "", (1600, 2000), "exif"),
    ("TRL-BOT-005", "Ridge Hiking Boot", "footwear", "boot", "brown", "leather", "42", (2000, 1600), "jpeg"),
    ("TRL-BOT-006", "Scree Trail Runner", "footwear", "boot", "blue", "mesh", "40", (2000, 1500), "png"),
    ("TRL-ACC-007", "Camp Mug", "accessories", "mug", "black", "enamel", "", (1900, 1900), "jpeg"),
    ("TRL-ACC-008", "Bear Canister", "accessories", "jar", "yellow", "polycarbonate", "", (1500, 1700), "jpeg"),
]
HEROES = [
    ("ACM-HERO-001", "Signature Dutch Oven", "kitchen", "red", "cast iron"),
    ("ACM-HERO-002", "Heritage Chef Knife", "kitchen", "black", "carbon steel"),
]
