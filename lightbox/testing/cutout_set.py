"""The labelled mask set: product photos with their true masks, hard the way real photos are.

    python -m lightbox.testing.cutout_set OUT_DIR     # writes photos, masks/ and labels.json, to look at

Each case is a photo as a real file (JPEG, PNG, EXIF-rotated JPEG) and the true product mask, upright
as displayed. Classes:

| class | what makes it hard | cut-out expected |
|---|---|---|
| studio | the example catalog's photos (uneven paper light, faint floor shadow) | backdrop |
| exif | studio photos stored rotated with an EXIF orientation tag | backdrop |
| transparent | PNGs with their own alpha | alpha |
| white-on-white | white, ivory and cream products on near-white paper | backdrop, or routed |
| glossy | specular highlights clipped to 255, brighter than the paper | backdrop, or routed |
| glass | see-through bodies: the paper shows through, tinted | backdrop, or routed |
| thin | wicks, straps, stems a few pixels wide | backdrop, or routed |
| holes | handles, rings, loops: paper seen through the product | backdrop, or routed |
| floor-shadow | deep cast shadows touching the product | backdrop, or routed |
| textured | products on wood, fabric and stone | model, or refused |
| room | products on a table in a room (wall, floor, window, furniture) | model, or refused |
| outdoor | products outdoors (sky, grass, trees, sun) | model, or refused |

"Routed" means the backdrop method said it was unsure and the product went to the model or was
refused: never published with parts missing. Deterministic: case ``i`` uses ``default_rng(5000 + i)``.
"""

from __future__ import annotations

import io
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from lightbox.testing.photos import COLORS, PRODUCTS, floor_shadow, product_body, shape_mask

PLAIN = ("studio", "exif", "transparent", "white-on-white", "glossy", "glass", "thin", "holes", "floor-shadow")
SCENES = ("textured", "room", "outdoor")


@dataclass(frozen=True)
class MaskCase:
    name: str
    cls: str
    data: bytes  # the photo as a file
    truth: np.ndarray  # H x W bool, upright: alpha >= 128 of the true product layer

    @property
    def plain(self) -> bool:
        return self.cls in PLAIN


def _file(im: Image.Image, fmt: str = "JPEG", exif_rotated: bool = False) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        im.save(buf, "PNG")
    elif exif_rotated:
        exif = Image.Exif()
        exif[0x0112] = 6  # stored rotated; viewers rotate 90 degrees clockwise to display
        im.transpose(Image.Transpose.ROTATE_90).save(buf, "JPEG", quality=90, exif=exif)
    else:
        im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _smooth_noise(w: int, h: int, rng: np.random.Generator, cell: int) -> np.ndarray:
    """Value noise in 0..1: random values on a coarse grid, bicubic up to w x h."""
    gw, gh = max(2, w // cell + 2), max(2, h // cell + 2)
    small = Image.fromarray((rng.random((gh, gw)) * 255).astype(np.uint8), "L")
    big = small.resize((gw * cell, gh * cell), Image.Resampling.BICUBIC).crop((0, 0, w, h))
    return np.asarray(big, np.float32) / 255.0


def paper(w: int, h: int, rng: np.random.Generator, base=(238, 235, 229), tint: float = 6.0, falloff: float = 0.16,
          noise: float = 1.6) -> np.ndarray:
    """Studio paper (as the example backdrop) of a chosen base colour."""
    b = np.array(base, np.float32) + rng.uniform(-tint, tint, 3)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    lx, ly = rng.uniform(0.2, 0.8) * w, rng.uniform(-0.2, 0.3) * h
    r = np.hypot(xx - lx, yy - ly) / math.hypot(w, h)
    light = 1.04 - falloff * r**1.5 - 0.03 * (yy / h)
    return np.minimum(b[None, None, :] * light[..., None], 252.0) + rng.normal(0, noise, (h, w, 3))


def wood(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    warp = _smooth_noise(w, h, rng, 60) * 25
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    grain = 0.5 + 0.5 * np.sin((yy + warp) / rng.uniform(5, 9)) * (0.6 + 0.4 * _smooth_noise(w, h, rng, 15))
    base = np.array([150, 100, 60], np.float32) * rng.uniform(0.8, 1.2)
    return base * (0.7 + 0.45 * grain[..., None]) + rng.normal(0, 3, (h, w, 3))


def fabric(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weave = 0.5 + 0.25 * np.sin(xx / 1.7) * np.sin(yy / 1.7) + 0.25 * _smooth_noise(w, h, rng, 8)
    base = np.array(rng.uniform(90, 220, 3), np.float32)
    return base * (0.75 + 0.4 * weave[..., None]) + rng.normal(0, 4, (h, w, 3))


def stone(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    veins = np.abs(np.sin(_smooth_noise(w, h, rng, 80) * 12 + _smooth_noise(w, h, rng, 30) * 4))
    base = np.array([225, 222, 218], np.float32)
    return base * (0.78 + 0.22 * veins[..., None]) + rng.normal(0, 2.5, (h, w, 3))


def room(w: int, h: int, rng: np.random.Generator, floor_y: int) -> np.ndarray:
    """A wall with a window and a picture, a table top from ``floor_y`` down, a sofa at one side."""
    img = np.empty((h, w, 3), np.float32)
    yy = np.arange(h, dtype=np.float32)[:, None, None]
    wall = np.array(rng.uniform(170, 235, 3), np.float32)
    img[:] = wall * (0.85 + 0.2 * (1 - yy / h))
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    wx = int(rng.uniform(0.05, 0.55) * w)
    d.rectangle([wx, int(0.06 * h), wx + int(0.3 * w), int(0.45 * h)], fill=(245, 248, 252), outline=(90, 80, 70), width=max(4, w // 120))
    px = int(rng.uniform(0.55, 0.8) * w)
    d.rectangle([px, int(0.12 * h), px + int(0.15 * w), int(0.3 * h)], fill=tuple(int(v) for v in rng.integers(30, 200, 3)),
                outline=(40, 30, 20), width=max(3, w // 200))
    d.rounded_rectangle([int(0.7 * w), int(0.45 * h), int(1.1 * w), floor_y + h // 20], radius=w // 30,
                        fill=tuple(int(v) for v in rng.integers(40, 160, 3)))
    img = np.asarray(im, np.float32).copy()
    img[floor_y:] = wood(w, h - floor_y, rng)
    img[floor_y : floor_y + max(3, h // 150)] *= 0.6  # the table's front edge
    return img + rng.normal(0, 2, img.shape)


def outdoor(w: int, h: int, rng: np.random.Generator, ground_y: int) -> np.ndarray:
    yy = np.arange(h, dtype=np.float32)[:, None, None] / h
    sky = np.array([120, 170, 235], np.float32) * (1 - 0.4 * yy) + np.array([230, 235, 240], np.float32) * 0.4 * yy
    img = np.broadcast_to(sky, (h, w, 3)).copy()
    im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 7))):  # trees
        cx, r = rng.uniform(0, w), rng.uniform(0.08, 0.2) * w
        d.ellipse([cx - r, ground_y - 2.2 * r, cx + r, ground_y - 0.2 * r], fill=tuple(int(v) for v in rng.integers([20, 70, 20], [60, 130, 60])))
        d.rectangle([cx - r / 8, ground_y - 0.5 * r, cx + r / 8, ground_y], fill=(80, 60, 40))
    img = np.asarray(im.filter(ImageFilter.GaussianBlur(2)), np.float32).copy()
    grass = np.array([70, 130, 50], np.float32) * (0.7 + 0.6 * _smooth_noise(w, h - ground_y, rng, 4)[..., None])
    img[ground_y:] = grass
    sun = np.exp(-((np.arange(w)[None, :] - rng.uniform(0, w)) ** 2 + (np.arange(h)[:, None] - 0.1 * h) ** 2) / (0.02 * w * h))
    return img + 60 * sun[..., None] + rng.normal(0, 2.5, img.shape)


def extra_mask(shape: str, w: int, h: int) -> Image.Image:
    """Shapes the example catalog lacks (4x supersampled, reduced for anti-aliased edges): thin parts and holes."""
    s = 4
    W, H = w * s, h * s
    m = Image.new("L", (W, H), 0)
    d = ImageDraw.Draw(m)
    cx, cy = W // 2, H // 2
    u = min(W, H)
    if shape == "bag":  # a tote with a thin strap: a hole under the strap
        d.rounded_rectangle([cx - u // 4, cy - u // 10, cx + u // 4, cy + u // 3], radius=u // 40, fill=255)
        d.arc([cx - u // 6, cy - u // 3, cx + u // 6, cy + u // 20], 180, 360, fill=255, width=s * 4)
    elif shape == "ring":  # a donut: one large hole
        d.ellipse([cx - u // 3, cy - u // 3, cx + u // 3, cy + u // 3], fill=255)
        d.ellipse([cx - u // 6, cy - u // 6, cx + u // 6, cy + u // 6], fill=0)
    elif shape == "scissors":  # two finger loops and blades
        for dx in (-u // 8, u // 8):
            d.ellipse([cx + dx - u // 10, cy + u // 10, cx + dx + u // 10, cy + u // 3], fill=255)
            d.ellipse([cx + dx - u // 17, cy + u // 7, cx + dx + u // 17, cy + u // 3 - u // 25], fill=0)
        d.polygon([(cx - u // 14, cy + u // 9), (cx - u // 40, cy - u // 3), (cx + u // 40, cy - u // 3), (cx + u // 14, cy + u // 9)], fill=255)
    elif shape == "spoon":  # a bowl and a thin handle
        d.ellipse([cx - u // 9, cy - u // 3, cx + u // 9, cy - u // 12], fill=255)
        d.rectangle([cx - s * 3, cy - u // 12, cx + s * 3, cy + u // 3], fill=255)
    elif shape == "hanger":  # thin hook and bar: a large hole
        d.line([(cx - u // 3, cy + u // 6), (cx, cy - u // 10), (cx + u // 3, cy + u // 6), (cx - u // 3, cy + u // 6)], fill=255, width=s * 5)
        d.arc([cx - u // 14, cy - u // 4, cx + u // 14, cy - u // 10], 180, 450, fill=255, width=s * 4)
    elif shape == "basket":  # a bowl with a handle arc over it
        d.chord([cx - u // 3, cy - u // 6, cx + u // 3, cy + u // 3], 0, 180, fill=255)
        d.arc([cx - u // 4, cy - u // 3, cx + u // 4, cy + u // 6], 180, 360, fill=255, width=s * 10)
    else:
        raise ValueError(shape)
    return m.resize((w, h), Image.Resampling.BOX)


def _mask_and_box(shape: str, w: int, h: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    try:
        m, box = shape_mask(shape, w, h)
    except ValueError:
        m = extra_mask(shape, w, h)
        box = m.getbbox()
    return np.asarray(m), box


def _compose(body: np.ndarray, alpha: np.ndarray, bg: np.ndarray, opacity: float = 1.0) -> Image.Image:
    a = alpha.astype(np.float32)[..., None] / 255.0 * opacity
    out = body * a + bg * (1 - a)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), "RGB")


def _shadow(box, size, strength: float, offset: float = 0.0, spread: float = 1.0) -> np.ndarray:
    return floor_shadow(box, size, strength, offset, spread)[..., None]


def _studio_case(rng: np.random.Generator, shape: str, colour, size, base=(238, 235, 229), specular: float = 0.6,
                 shadow: float = 0.07, offset: float = 0.0, opacity: float = 1.0, tint: float = 6.0) -> tuple[Image.Image, np.ndarray]:
    w, h = size
    alpha, box = _mask_and_box(shape, w, h)
    rgb = np.array(COLORS[colour] if isinstance(colour, str) else colour, np.float32)
    body = product_body(shape, rgb, box, size, rng, specular=specular)
    bg = paper(w, h, rng, base=base, tint=tint) * _shadow(box, size, shadow, offset)
    if opacity < 1.0:  # glass: the paper shows through, tinted by the glass; the rim is opaque
        rim = alpha.astype(np.float32) - np.asarray(Image.fromarray(alpha).filter(ImageFilter.MinFilter(2 * max(2, w // 150) + 1)), np.float32)
        tinted = bg * (rgb / 255.0)[None, None, :] * 0.9 + 10
        see = np.where((rim > 0)[..., None], body, tinted * 0.7 + body * 0.3)
        a = alpha.astype(np.float32)[..., None] / 255.0
        return Image.fromarray(np.clip(np.rint(see * a + bg * (1 - a)), 0, 255).astype(np.uint8), "RGB"), alpha
    return _compose(body, alpha, bg), alpha


def _scene_case(rng: np.random.Generator, kind: str, shape: str, colour: str, size) -> tuple[Image.Image, np.ndarray]:
    w, h = size
    alpha, box = _mask_and_box(shape, w, h)
    body = product_body(shape, np.array(COLORS[colour], np.float32), box, size, rng)
    if kind == "textured":
        bg = [wood, fabric, stone][int(rng.integers(0, 3))](w, h, rng)
    elif kind == "room":
        bg = room(w, h, rng, floor_y=int(box[3] - 0.04 * h))
    else:
        bg = outdoor(w, h, rng, ground_y=int(box[3] - 0.06 * h))
    bg = bg * _shadow(box, size, 0.25, offset=0.2)
    return _compose(body, alpha, bg), alpha


def build_cases(root: Path | None = None) -> list[MaskCase]:
    """Every case of the set. ``root``: the repository (for the example catalog's photos and masks)."""
    root = root or Path(__file__).resolve().parents[2]
    examples = root / "examples" / "acme-home"
    cases: list[MaskCase] = []
    for sku, _title, _cat, _shape, _colour, _material, _size, kind in PRODUCTS:
        stem = sku.lower()
        path = examples / "images" / f"{stem}.{'png' if kind == 'png' else 'jpg'}"
        truth = np.asarray(Image.open(examples / "masks" / f"{stem}.png")) >= 128
        cls = {"png": "transparent", "exif": "exif"}.get(kind, "studio")
        cases.append(MaskCase(sku, cls, path.read_bytes(), truth))

    i = 0

    def rng() -> np.random.Generator:
        nonlocal i
        i += 1
        return np.random.default_rng(5000 + i)

    def size(r: np.random.Generator) -> tuple[int, int]:
        return int(r.integers(8, 13)) * 80, int(r.integers(8, 13)) * 80

    def add(name: str, cls: str, made: tuple[Image.Image, np.ndarray], **kw) -> None:
        im, alpha = made
        cases.append(MaskCase(name, cls, _file(im, **kw), alpha >= 128))

    whites = [(246, 245, 242), (240, 236, 226), (250, 248, 240), (236, 236, 238)]
    for k, shape in enumerate(["candle", "mug", "plate", "bottle", "box", "bowl", "vase", "jar"]):
        r = rng()
        add(f"white-{shape}", "white-on-white", _studio_case(r, shape, whites[k % 4], size(r), base=(244, 243, 240), tint=3),
            exif_rotated=(k == 3))
    for k, (shape, colour) in enumerate([("bottle", "black"), ("kettle", "navy"), ("mug", "red"), ("jar", "grey"), ("vase", "blue"),
                                         ("tumbler", "green")]):
        r = rng()
        add(f"glossy-{shape}-{colour}", "glossy", _studio_case(r, shape, colour, size(r), specular=1.1 + 0.1 * k))
    for shape, colour in [("bottle", "green"), ("tumbler", "teal"), ("vase", "blue"), ("jar", "grey")]:
        r = rng()
        add(f"glass-{shape}-{colour}", "glass", _studio_case(r, shape, colour, size(r), opacity=0.5))
    for shape, colour in [("candle", "red"), ("candle", "navy"), ("spoon", "grey"), ("hanger", "brown"), ("bag", "teal"), ("lamp", "black")]:
        r = rng()
        add(f"thin-{shape}-{colour}", "thin", _studio_case(r, shape, colour, size(r)))
    for shape, colour in [("mug", "blue"), ("mug", "pink"), ("ring", "copper"), ("scissors", "red"), ("basket", "natural"), ("bag", "purple")]:
        r = rng()
        add(f"holes-{shape}-{colour}", "holes", _studio_case(r, shape, colour, size(r)))
    for k, (shape, colour) in enumerate([("vase", "brown"), ("bottle", "green"), ("mug", "yellow"), ("lamp", "pink"), ("box", "teal"),
                                         ("jar", "orange")]):
        r = rng()
        add(f"shadow-{shape}-{colour}", "floor-shadow", _studio_case(r, shape, colour, size(r), shadow=0.2 + 0.04 * k, offset=0.15 * (k % 3)))
    for kind in SCENES:
        for shape, colour in [("mug", "teal"), ("bottle", "red"), ("vase", "blue"), ("box", "yellow"), ("lamp", "grey"), ("jar", "pink")]:
            r = rng()
            add(f"{kind}-{shape}-{colour}", kind, _scene_case(r, kind, shape, colour, size(r)))
    return cases


def main(out_dir: Path) -> None:
    (out_dir / "masks").mkdir(parents=True, exist_ok=True)
    labels = []
    for c in build_cases():
        ext = Image.open(io.BytesIO(c.data)).format.lower().replace("jpeg", "jpg")
        (out_dir / f"{c.name}.{ext}").write_bytes(c.data)
        Image.fromarray(c.truth.astype(np.uint8) * 255).save(out_dir / "masks" / f"{c.name}.png")
        labels.append({"file": f"{c.name}.{ext}", "class": c.cls, "plain": c.plain})
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "mask-set"))


def score(alpha: np.ndarray, truth: np.ndarray, band: int = 2, valid: np.ndarray | None = None) -> dict[str, float]:
    """Against ground truth: IoU of alpha >= 128; boundary F-measure at ``band`` px; the share of true
    product pixels lost (alpha < 128) outside a ``band`` px edge band; backdrop pixels kept outside it.
    ``valid``: the pixels that count (a mask's "unknown" band left out), default all."""
    from scipy import ndimage

    pred = alpha >= 128
    if valid is not None:
        pred, truth = pred & valid, truth & valid
    inter = float((pred & truth).sum())
    union = float((pred | truth).sum())
    iou = inter / union if union else 1.0

    def edge(m: np.ndarray) -> np.ndarray:
        return m & ~ndimage.binary_erosion(m, border_value=1)

    pe, te = edge(pred), edge(truth)
    near_t = ndimage.distance_transform_edt(~te) <= band
    near_p = ndimage.distance_transform_edt(~pe) <= band
    precision = float((pe & near_t).sum() / max(pe.sum(), 1))
    recall = float((te & near_p).sum() / max(te.sum(), 1))
    bf = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    core = ndimage.binary_erosion(truth, iterations=band, border_value=1)
    outside = ~ndimage.binary_dilation(truth, iterations=band)
    return {
        "iou": iou,
        "bf": bf,
        "lost": float((core & ~pred).sum() / max(truth.sum(), 1)),
        "lost_px": int((core & ~pred).sum()),
        "added_px": int((outside & pred).sum()),
    }
