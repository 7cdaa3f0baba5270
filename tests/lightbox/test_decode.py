"""Every class of bad source image becomes a one-line ItemError; every odd-but-valid one decodes."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from lightbox.errors import ItemError
from lightbox.imaging.decode import decode_image
from tests.support.images import studio_photo, to_bytes

LIMIT = 60_000_000


def test_exif_orientation_is_applied():
    im, _ = studio_photo(300, 400)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    data = to_bytes(im.transpose(Image.Transpose.ROTATE_90), "JPEG", quality=95, exif=exif)
    out = decode_image(data, max_pixels=LIMIT)
    assert out.size == (300, 400)
    diff = np.abs(np.asarray(out, np.int16) - np.asarray(im, np.int16)).mean()
    assert diff < 4  # JPEG loss only: the picture is upright again


@pytest.mark.parametrize(
    "mode, expect",
    [("L", "RGB"), ("LA", "RGBA"), ("P", "RGB"), ("1", "RGB"), ("RGBA", "RGBA"), ("I;16", "RGB")],
)
def test_modes_become_8bit_rgb(mode, expect):
    im, _ = studio_photo(64, 64)
    if mode == "I;16":
        arr = (np.asarray(im.convert("L"), np.uint16) * 257)
        src = Image.fromarray(arr.astype("<u2"))
    else:
        src = im.convert(mode)
    out = decode_image(to_bytes(src, "PNG"), max_pixels=LIMIT)
    assert out.mode == expect
    if mode == "I;16":  # 16-bit scaled, not clipped: 257*v -> v
        assert np.array_equal(np.asarray(out)[..., 0], np.asarray(im.convert("L")))


def test_palette_with_transparency_keeps_alpha():
    im = Image.new("P", (32, 32), 0)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.paste(1, (8, 8, 24, 24))
    data = to_bytes(im, "PNG", transparency=0)
    out = decode_image(data, max_pixels=LIMIT)
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0 and out.getpixel((10, 10)) == (0, 0, 255, 255)


def test_cmyk_jpeg_converts_to_srgb():
    im = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # process red
    out = decode_image(to_bytes(im, "JPEG", quality=95), max_pixels=LIMIT)
    r, g, b = out.getpixel((16, 16))
    assert out.mode == "RGB" and r > 200 and g < 60 and b < 60


def test_wide_gamut_profile_converted_to_srgb():
    lab = ImageCms.createProfile("LAB")  # any non-sRGB profile will do for the code path
    im = Image.new("RGB", (16, 16), (200, 30, 30))
    prof = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert decode_image(to_bytes(im, "PNG", icc_profile=prof), max_pixels=LIMIT).getpixel((1, 1)) == (200, 30, 30)
    del lab


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: b"", "zero-byte image file"),
        (lambda: b"this is not an image at all", "not a recognised image format"),
        (lambda: to_bytes(studio_photo(200, 200)[0], "JPEG")[:600], "truncated or corrupt image data"),
        (lambda: to_bytes(studio_photo(200, 200)[0], "PNG")[:-40], "truncated or corrupt image data"),
    ],
)
def test_unreadable_images(make, message):
    with pytest.raises(ItemError, match=message):
        decode_image(make(), max_pixels=LIMIT)


def test_pixel_limit_refuses_before_decoding():
    im = Image.new("L", (4000, 3000), 200)
    with pytest.raises(ItemError, match=r"4000x3000 = 12,000,000 px, over the limit of 1,000,000"):
        decode_image(to_bytes(im, "PNG"), max_pixels=1_000_000)


def test_decompression_bomb_header_is_refused():
    # A PNG header claiming 30000 x 30000 (900 MP): refused from the header alone.
    im = Image.new("1", (30000, 30000), 0)
    with pytest.raises(ItemError, match="pixel limit|over the limit"):
        decode_image(to_bytes(im, "PNG"), max_pixels=LIMIT)


def test_animated_images_are_refused():
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(ItemError, match="animated image with 3 frames"):
        decode_image(buf.getvalue(), max_pixels=LIMIT)
