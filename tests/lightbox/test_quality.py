import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from lightbox.imaging.compose import encode, render
from lightbox.imaging.cutout import cut_out
from lightbox.quality.checks import evaluate, measure
from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
from tests.conftest import ACME
from tests.images import studio_photo


@pytest.fixture(scope="module")
def amazon_look():
    return resolve_look(load_brand_spec(ACME), "kitchen", load_channel_presets()["amazon_main"])


@pytest.fixture(scope="module")
def good_amazon(amazon_look):
    im, _ = studio_photo(600, 800)
    return encode(render(cut_out(im, load_brand_spec(ACME).cutout), amazon_look)[0], amazon_look.channel)


def test_a_good_amazon_image_passes_every_rule(good_amazon, amazon_look):
    m = measure(good_amazon, amazon_look)
    assert m["format"] == "JPEG" and m["mode"] == "RGB" and m["longest_side"] == 2000
    assert m["border_purity"] == 1.0
    assert m["fill_longest"] == pytest.approx(0.88, abs=0.01)  # the contact shadow is not counted
    assert evaluate(m, amazon_look) == ("passed", [])


def _jpeg(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=92, subsampling=0)
    return buf.getvalue()


def test_off_white_background_fails_border_purity(amazon_look):
    arr = np.full((2000, 2000, 3), 250, np.uint8)
    arr[150:1850, 500:1500] = (30, 60, 120)
    status, reasons = evaluate(measure(_jpeg(arr), amazon_look), amazon_look)
    assert status == "failed" and any(r.startswith("[fail] border_purity") for r in reasons)


def test_small_product_fails_fill(amazon_look):
    arr = np.full((2000, 2000, 3), 255, np.uint8)
    arr[800:1200, 900:1100] = (30, 60, 120)
    status, reasons = evaluate(measure(_jpeg(arr), amazon_look), amazon_look)
    assert status == "failed" and any("fill_longest 0.2" in r and ">= 0.85" in r for r in reasons)


def test_small_png_fails_size_and_format(amazon_look):
    im = Image.new("RGBA", (800, 800), (255, 255, 255, 255))
    ImageDraw.Draw(im).rectangle([50, 50, 750, 750], fill=(10, 10, 10, 255))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    status, reasons = evaluate(measure(buf.getvalue(), amazon_look), amazon_look)
    text = " ".join(reasons)
    assert status == "failed" and "format 'PNG'" in text and "mode 'RGBA'" in text and "longest_side 800" in text
