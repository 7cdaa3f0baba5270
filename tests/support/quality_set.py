"""A labelled set of good and bad outputs for the quality gate, made from scratch.

    python -m tests.support.quality_set OUT_DIR     # writes the images and labels.json, to look at

Good outputs are real renders of several products on every channel. Bad outputs are the mistakes the
gate must catch, each labelled with the rule that must catch it: a blank image, an all-background
output (failed cut-out), a product touching the frame edge, off-white or grey backgrounds on
white-only channels, CMYK and alpha JPEG/PNG mix-ups, an upscaled thumbnail, text / border /
watermark overlays, a repainted product, wrong sizes and fills - and failed cut-outs, whatever method
made them: a torn scene rectangle, a clean rectangle of scene from a model, a white product with parts
missing, half a product, a mug handle's hole kept grey on a white channel, a patch of floor shadow kept
at the shadow line. Hard but correct cuts (white on white completed, glossy, deep shadows, holes, a
model's cut on a room, wood and grass) are labelled good: the gate must not reject them.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lightbox.generate import construction_metrics
from lightbox.imaging.compose import encode, render
from lightbox.testing.oracles import background_canvas
from lightbox.imaging.cutout import CutOut, cut_out
from lightbox.quality.checks import check_output
from lightbox.records import Output
from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
from lightbox.specs.models import Look, SolidBackground
from tests.support.images import studio_photo

REPO = Path(__file__).resolve().parents[2]
CHANNELS = ["amazon_main", "walmart_main", "shopify_square", "google_merchant", "ebay_listing", "etsy_listing"]


@dataclass
class Case:
    name: str
    channel: str
    data: bytes
    metrics: dict
    look: Look
    expect: str | None  # None: good; else the id of the rule that must fail it

    def judge(self) -> Output:
        out = Output(sku=self.name, row=1, category="kitchen", channel=self.channel, state="rendered", metrics=self.metrics)
        return check_output(out, self.data, self.look)


def _spec():
    return load_brand_spec(str(REPO / "brand_specs" / "acme-home.yaml"))


def _look(channel: str, **update) -> Look:
    look = resolve_look(_spec(), "kitchen", load_channel_presets()[channel])
    return look.model_copy(update=update) if update else look


def _products() -> list[CutOut]:
    spec = _spec()
    shapes = [((600, 800), (150, 160, 450, 640), 0), ((900, 600), (120, 150, 780, 450), 1),
              ((700, 700), (200, 100, 500, 600), 2), ((500, 900), (180, 120, 320, 800), 3)]
    return [cut_out(studio_photo(w, h, seed=seed, box=box)[0], spec.cutout) for (w, h), box, seed in shapes]


def _encode_jpeg(im: Image.Image, mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    im.convert(mode).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _make(name: str, cut: CutOut, look: Look, expect: str | None, edit: Callable[[Image.Image], Image.Image] | None = None,
          encoder: Callable[[Image.Image], bytes] | None = None, judge_look: Look | None = None) -> Case:
    im, _ = render(cut, look)
    if edit is not None:
        im = edit(im)
    data = encoder(im) if encoder else encode(im, look.channel)
    return Case(name, look.channel.name, data, construction_metrics(cut, look, data), judge_look or look, expect)


def _text(im: Image.Image, xy, size: int, fill, text="SALE -50%") -> Image.Image:
    im = im.convert("RGBA")
    layer = Image.new("RGBA", im.size, (0, 0, 0, 0))
    ImageDraw.Draw(layer).text(xy, text, fill=fill, font=ImageFont.load_default(size=size))
    return Image.alpha_composite(im, layer).convert("RGB")


def _border(im: Image.Image, width: int = 24, colour=(90, 90, 90)) -> Image.Image:
    im = im.copy()
    ImageDraw.Draw(im).rectangle([0, 0, im.width - 1, im.height - 1], outline=colour, width=width)
    return im


def _recolour(im: Image.Image) -> Image.Image:
    arr = np.asarray(im).copy()
    arr = arr[..., [2, 0, 1]]  # channels swapped: a template mistake that repaints the product
    return Image.fromarray(arr)


def _repainted(cut: CutOut) -> CutOut:
    """The cut-out with a band of its opaque product pixels recoloured: a cut that repaints the product
    (rendered and encoded faithfully to itself, so only the comparison with the source photo sees it)."""
    rgba = cut.rgba.copy()
    x0, y0, x1, y1 = cut.bbox
    band = rgba[y0 + (y1 - y0) // 3 : y0 + (y1 - y0) // 2, x0:x1]
    opaque = band[..., 3] == 255
    band[..., :3][opaque] = 255 - band[..., :3][opaque]
    return dataclasses.replace(cut, rgba=rgba, cache={})


def build_cases() -> list[Case]:
    products = _products()
    cases = [
        _make(f"good-{i}-{ch}", cut, _look(ch), None)
        for i, cut in enumerate(products) for ch in CHANNELS
    ]
    p = products[0]
    spec = _spec()
    blank_white = Image.new("RGB", (2000, 2000), (255, 255, 255))
    thumb = cut_out(studio_photo(60, 80, seed=7, box=(15, 16, 45, 64))[0], spec.cutout)
    off_white = _look("amazon_main", background=SolidBackground(color=(250, 250, 250)))
    grey = _look("walmart_main", background=SolidBackground(color=(236, 236, 236)))
    ch_small = load_channel_presets()["ebay_listing"].model_copy(update={"width": 400, "height": 400})
    etsy_narrow = load_channel_presets()["etsy_listing"].model_copy(update={"width": 500, "height": 375})
    walmart_wide = load_channel_presets()["walmart_main"].model_copy(update={"width": 2000, "height": 1500})
    amazon_small = load_channel_presets()["amazon_main"].model_copy(update={"width": 1200, "height": 1200})
    bg_only = cut_out(studio_photo(600, 800, seed=9)[0], spec.cutout)
    bg_only_look = _look("shopify_square")
    cases += [
        Case("blank-white-amazon", "amazon_main", encode(blank_white, _look("amazon_main").channel), {}, _look("amazon_main"), "blank-image"),
        Case("blank-brand-shopify", "shopify_square", encode(Image.new("RGB", (2048, 2048), (244, 240, 233)), _look("shopify_square").channel),
             {}, _look("shopify_square"), "blank-image"),
        _make("all-background-shopify", bg_only, bg_only_look, "product-present",
              edit=lambda im: Image.fromarray(background_canvas(bg_only_look))),
        _make("touching-edge-amazon", p, _look("amazon_main", fill=1.0), "product-inside-frame"),
        _make("touching-edge-shopify", products[1], _look("shopify_square", fill=1.0), "product-inside-frame"),
        _make("off-white-amazon", p, off_white, "amazon-pure-white", judge_look=_look("amazon_main")),
        _make("grey-walmart", products[2], grey, "walmart-white", judge_look=_look("walmart_main")),
        _make("cmyk-jpeg-amazon", p, _look("amazon_main"), "amazon-colour-mode", encoder=lambda im: _encode_jpeg(im, "CMYK")),
        _make("png-alpha-amazon", p, _look("amazon_main"), "amazon-no-alpha",
              encoder=lambda im: _png(im.convert("RGBA"))),
        _make("upscaled-thumbnail-amazon", thumb, _look("amazon_main"), "upscale-limit"),
        _make("upscaled-thumbnail-google", thumb, _look("google_merchant"), "upscale-limit"),
        _make("text-overlay-amazon", p, _look("amazon_main"), "no-overlays", edit=lambda im: _text(im, (60, 60), 90, (200, 0, 0, 255))),
        _make("text-overlay-google", products[3], _look("google_merchant"), "no-overlays", edit=lambda im: _text(im, (40, 1450), 70, (20, 20, 20, 255))),
        _make("border-shopify", products[1], _look("shopify_square"), "no-overlays", edit=_border),
        _make("border-amazon", products[2], _look("amazon_main"), "amazon-pure-white", edit=_border),
        _make("watermark-shopify", p, _look("shopify_square"), "no-overlays",
              edit=lambda im: _text(im, (150, 1700), 160, (0, 0, 0, 70), "(c) ACME STOCK")),
        _make("repainted-product-google", p, _look("google_merchant"), "product-fidelity", edit=_recolour),
        _make("repainted-by-the-cut-shopify", _repainted(products[2]), _look("shopify_square"), "product-fidelity-source"),
        _make("small-product-amazon", p, _look("amazon_main", fill=0.5), "amazon-fill"),
        _make("too-large-product-google", products[1], _look("google_merchant", fill=0.96), "google-fill-max"),
        _make("too-small-ebay", p, _look("ebay_listing").model_copy(update={"channel": ch_small}), "ebay-min-size"),
        _make("too-narrow-etsy", p, _look("etsy_listing").model_copy(update={"channel": etsy_narrow}), "etsy-min-width"),
        _make("not-square-walmart", p, _look("walmart_main").model_copy(update={"channel": walmart_wide}), "walmart-square"),
        _make("no-zoom-amazon", p, _look("amazon_main").model_copy(update={"channel": amazon_small}), "amazon-zoom-size"),
        _make("tiff-shopify", p, _look("shopify_square"), "shopify-format", encoder=lambda im: _tiff(im)),
    ]
    return cases + cutout_cases()


def cutout_cases() -> list[Case]:
    """Cut-outs from the labelled mask set (lightbox.testing.cutout_set), good and failed."""
    from lightbox.imaging.cutout import backdrop as C
    from lightbox.imaging.cutout.model import from_model
    from lightbox.imaging.segmentation import Prediction
    from lightbox.imaging.decode import decode_image
    from lightbox.specs.models import Cutout
    from lightbox.testing.cutout_set import build_cases as mask_cases

    masks = {c.name: c for c in mask_cases()}
    params = Cutout()

    def rgb(name: str) -> np.ndarray:
        return np.asarray(decode_image(masks[name].data, max_pixels=10**8))

    def auto(name: str, **kw) -> CutOut:
        return cut_out(Image.fromarray(rgb(name)), Cutout(**kw))

    def model_cut(name: str, soft: np.ndarray) -> CutOut:  # what a segmentation model returning ``soft`` gives
        low = np.asarray(Image.fromarray(soft.astype(np.float32)).resize((320, 320), Image.Resampling.BILINEAR))
        return from_model(rgb(name), Prediction(soft=soft.astype(np.float32), low=low), params, "test: a model's mask")

    cases = []
    for name in ("ACM-CDL-018", "ACM-MUG-001", "ACM-BTL-004", "holes-mug-blue", "glossy-kettle-navy", "shadow-jar-orange", "thin-lamp-black"):
        cut = auto(name)
        cases += [_make(f"cut-good-{name}-{ch}", cut, _look(ch), None) for ch in ("amazon_main", "shopify_square")]
    for name in ("room-vase-blue", "textured-jar-pink", "outdoor-box-yellow"):  # a good model's cut on a scene
        cases.append(_make(f"cut-good-model-{name}", model_cut(name, masks[name].truth), _look("google_merchant"), None))

    room = rgb("room-mug-teal")
    torn = C.cut_backdrop(room, params, C.assess_backdrop(room, params))  # the old studio cut forced onto a room photo
    truth = masks["room-mug-teal"].truth
    ys, xs = np.nonzero(truth)
    rect = np.zeros(truth.shape, np.float32)
    rect[ys.min() - 60 : ys.max() + 40, xs.min() - 80 : xs.max() + 80] = 1.0
    half = masks["textured-jar-pink"].truth.copy()
    hy = np.nonzero(half.any(axis=1))[0]
    half[: (hy[0] + hy[-1]) // 2] = False
    good = auto("ACM-MUG-001")
    tr = masks["ACM-MUG-001"].truth
    ys, xs = np.nonzero(tr)
    specked = good.rgba.copy()
    specked[ys.max() : ys.max() + 25, xs.min() + 40 : xs.min() + 240, 3] = 255  # floor shadow kept under the base
    speck = C.CutOut(rgba=specked, bbox=C._bbox(specked[..., 3] > 0), solid_bbox=C._bbox(specked[..., 3] >= 128),
                     method="backdrop", reason="test", source=good.source,
                     diagnostics={**C.diagnose(good.source, specked[..., 3], 1.0), "cutout_confident": True})
    cases += [
        _make("cut-torn-scene-amazon", torn, _look("amazon_main"), "cutout-frame-sides"),
        _make("cut-scene-rectangle-shopify", model_cut("room-mug-teal", rect), _look("shopify_square"), "cutout-edge-contrast"),
        _make("cut-missing-parts-amazon", auto("white-candle"), _look("amazon_main"), "cutout-confident"),
        _make("cut-missing-parts-shopify", auto("white-jar"), _look("shopify_square"), "cutout-confident"),
        _make("cut-half-product-google", model_cut("textured-jar-pink", half), _look("google_merchant"), "cutout-edge-contrast"),
        _make("cut-grey-hole-amazon", auto("holes-mug-blue", holes="keep"), _look("amazon_main"), "white-holes"),
        _make("cut-shadow-speck-amazon", speck, _look("amazon_main"), "cutout-edge-contrast"),
    ]
    return cases


def _png(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _tiff(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "TIFF", compression="tiff_deflate")
    return buf.getvalue()


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = []
    for c in build_cases():
        ext = Image.open(io.BytesIO(c.data)).format.lower()
        (out_dir / f"{c.name}.{ext}").write_bytes(c.data)
        judged = c.judge()
        labels.append({"file": f"{c.name}.{ext}", "channel": c.channel, "expect": c.expect, "qc": judged.qc, "reasons": judged.qc_reasons})
    (out_dir / "labels.json").write_text(json.dumps(labels, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "quality-set"))
