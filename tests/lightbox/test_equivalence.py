"""The fast paths of the studio path against the plain computations they replace: equal, not close."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lightbox.imaging.cutout.backdrop import _block_extreme, _block_sum
from lightbox.imaging.cutout.morphology import dilate_cross, erode_cross
from lightbox.imaging.cutout.diagnostics import _reduce
from lightbox.imaging.cutout.surface import backdrop_blocks, backdrop_model
from lightbox.quality.checks import _mad, _std_of_histogram, dhash


@pytest.fixture(params=[0, 1, 2])
def rng(request):
    return np.random.default_rng(request.param)


def test_block_reductions_equal_reshape_reductions(rng):
    img = rng.integers(0, 256, (203, 157, 3), dtype=np.uint8)  # sizes that are not multiples of the block
    for f in (2, 3, 8):
        blocks = img[: 203 // f * f, : 157 // f * f].reshape(203 // f, f, 157 // f, f, 3)
        assert np.array_equal(_block_sum(img, f), blocks.sum(axis=(1, 3)))
        assert np.array_equal(_block_extreme(img, f, np.maximum), blocks.max(axis=(1, 3)))
        assert np.array_equal(_block_extreme(img, f, np.minimum), blocks.min(axis=(1, 3)))


def test_backdrop_blocks_are_the_block_means_of_the_model(rng):
    coef = rng.normal(0, 20, (6, 3))
    coef[0] += 200
    rgb = np.zeros((301, 245, 3), np.uint8)
    model = backdrop_model(rgb, 5, coef)
    for f in (1, 2, 3):
        np.testing.assert_allclose(backdrop_blocks((301, 245), coef, f), _reduce(model, f), atol=2e-3)
        win = backdrop_blocks((301, 245), coef, f, (3, 40, 5, 60))
        np.testing.assert_array_equal(win, backdrop_blocks((301, 245), coef, f)[3:40, 5:60])
    np.testing.assert_array_equal(backdrop_model(rgb, 5, coef, window=(10, 90, 20, 200)), model[10:90, 20:200])


def test_cross_erosion_and_dilation_are_scipys(rng):
    for p in (0.1, 0.5, 0.9, 0.99):
        mask = rng.random((120, 97)) < p
        for border in (True, False):
            assert np.array_equal(erode_cross(mask, border), ndimage.binary_erosion(mask, border_value=int(border)))
        assert np.array_equal(dilate_cross(mask), ndimage.binary_dilation(mask))


def test_mirrored_indices_are_scipys_reflect():
    from lightbox.imaging.cutout.backdrop import _mirror

    idx = np.arange(-3, 13)
    plane = np.arange(10.0)
    padded = np.pad(plane, 3, mode="symmetric")  # scipy's 'reflect' is NumPy's 'symmetric'
    assert np.array_equal(plane[_mirror(idx, 10)], padded)


def test_std_of_histogram_is_the_standard_deviation(rng):
    luma = rng.integers(0, 256, (300, 200), dtype=np.uint8)
    luma[:100] = 255  # a skewed histogram
    hist = np.bincount(luma.ravel(), minlength=256).tolist()
    assert _std_of_histogram(hist) == pytest.approx(float(luma.std(dtype=np.float64)), rel=1e-12)
    assert _std_of_histogram([0] * 256) == 0.0


def test_mad_is_the_mean_absolute_difference_over_opaque_pixels(rng):
    out = rng.integers(0, 256, (200, 180, 3), dtype=np.uint8)
    ref = rng.integers(0, 256, (90, 120, 4), dtype=np.uint8)
    ref[..., 3][rng.random((90, 120)) < 0.6] = 255
    for x, y in ((10, 20), (-30, -5), (100, 150), (170, 190), (500, 500)):
        oy0, ox0, oy1, ox1 = max(y, 0), max(x, 0), min(y + 90, 200), min(x + 120, 180)
        r = ref[oy0 - y : oy1 - y, ox0 - x : ox1 - x]
        opaque = r[..., 3] == 255 if oy1 > oy0 and ox1 > ox0 else np.zeros((0, 0), bool)
        want = 0.0
        if opaque.any():
            d = np.abs(out[oy0:oy1, ox0:ox1].astype(np.int64) - r[..., :3])[opaque]
            want = round(float(d.sum()) / (3 * int(opaque.sum())), 3)
        assert _mad(Image.fromarray(out), ref, x, y)[0] == want, (x, y)
        within = rng.random((90, 120)) < 0.5
        part = opaque & within[oy0 - y : oy1 - y, ox0 - x : ox1 - x] if opaque.size else opaque
        want_within = 0.0
        if part.any():
            d = np.abs(out[oy0:oy1, ox0:ox1].astype(np.int64) - r[..., :3])[part]
            want_within = round(float(d.sum()) / (3 * int(part.sum())), 3)
        assert _mad(Image.fromarray(out), ref, x, y, within) == (want, want_within), (x, y)


def test_dhash_of_rgb_is_the_hash_of_each_plane(rng):
    px = rng.integers(0, 256, (140, 170, 3), dtype=np.uint8)
    planes = "".join(f"{int(dhash(px[..., k]), 16):0256b}" for k in range(3))
    assert f"{int(dhash(px), 16):0768b}" == planes


def test_block_stats_cover_partial_blocks(rng):
    from lightbox.imaging.cutout.backdrop import _block_stats

    img = rng.integers(0, 256, (203, 157, 3), dtype=np.uint8)
    mean, spread = _block_stats(img, 8)
    assert mean.shape == (26, 20, 3) and spread.shape == (26, 20)
    for by, bx in ((25, 19), (25, 3), (4, 19), (7, 7)):
        block = img[by * 8 : by * 8 + 8, bx * 8 : bx * 8 + 8].astype(np.int16)
        assert spread[by, bx] == (block.max(axis=(0, 1)) - block.min(axis=(0, 1))).max()
        assert (block.min(axis=(0, 1)) <= mean[by, bx]).all() and (mean[by, bx] <= block.max(axis=(0, 1))).all()


def test_a_resize_reads_nothing_outside_the_window_interior(rng):
    """Two RGBA images that agree on a mask resize (premultiplied Lanczos, up and down, one axis kept)
    to the same bytes on every pixel ``interior_after_resample`` names; and it names every pixel farther
    inside than the window reaches (3 input pixels, in output pixels, and one for rounding)."""
    from lightbox.imaging.compose import interior_after_resample, resample_product

    for scale in (0.31, 0.5, 0.77, 1.0, 1.6, 2.4):
        h, w = (int(v) for v in rng.integers(60, 300, 2))
        yy, xx = np.mgrid[:h, :w]
        solid = ((yy - h / 2) / (0.42 * h)) ** 2 + ((xx - w / 2) / (0.42 * w)) ** 2 < 1
        for mask in (solid, solid & (rng.random((h, w)) > 0.0005)):  # whole, and with a few holes
            a = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
            a[..., 3][mask] = 255
            b = a.copy()
            b[~mask] = rng.integers(0, 256, (int((~mask).sum()), 4), dtype=np.uint8)
            for size in ((max(1, round(w * scale)), max(1, round(h * scale))), (w, max(1, round(h * scale)))):
                inside = interior_after_resample(mask, size)
                same = (resample_product(a, size) == resample_product(b, size)).all(axis=2)
                assert inside.shape == same.shape and same[inside].all(), (scale, size)
                if mask is solid:
                    reach = int(np.ceil(3 * max(1.0, size[0] / w, size[1] / h))) + 1
                    deep = ndimage.binary_erosion(np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST)),
                                                  structure=np.ones((3, 3), bool), iterations=reach)
                    assert deep.any() and inside[deep].all(), (scale, size)


def test_background_detail_and_frame_contact_equal_the_full_frame_masks(rng):
    """Counted near the product only, the background detail share and the frame contact equal the
    full-frame boolean masks they replace (the border strip always away; the box, its margin and the
    contact shadow's zone not)."""
    from lightbox.quality.checks import DETAIL_DELTA, _background_detail, _touches_border

    for t in range(400):
        h, w = (int(v) for v in rng.integers(20, 120, 2))
        strip = int(rng.integers(2, 5))
        diff = (rng.random((h, w)) < 0.05).astype(np.uint8) * 50
        x0, y0 = int(rng.integers(0, w - 1)), int(rng.integers(0, h - 1))
        box = (x0, y0, int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1)))
        placed = box if t % 7 else None
        border = np.ones((h, w), bool)
        border[strip:-strip, strip:-strip] = False
        away = np.ones((h, w), bool)
        if placed is not None:
            mx, my = round(0.02 * w), round(0.02 * h)
            bx0, by0, bx1, by1 = placed
            away[max(0, by0 - my) : by1 + my, max(0, bx0 - mx) : bx1 + mx] = False
            away[by1 : by1 + round(0.15 * (by1 - by0)) + my, bx0:bx1] = False
        away[border] = True
        assert _background_detail(diff, placed, strip) == float((diff[away] > DETAIL_DELTA).mean()), t
        fg = rng.random((h, w)) < 0.02
        for mask in (fg, None):
            touch = np.zeros((h, w), bool)
            touch[box[1] : box[3], box[0] : box[2]] = True if mask is None else mask[box[1] : box[3], box[0] : box[2]]
            assert _touches_border(mask, box, strip, (h, w)) == bool((touch & border).any()), t


@pytest.mark.parametrize("channel", ["shopify_square", "web_transparent"])
def test_clipping_hash_and_strips_from_crops_equal_the_array_formulas(rng, channel):
    """measure() counts clipped pixels, hashes the product and reads the border strip from Pillow crops;
    the values equal the array formulas over the whole decoded image."""
    import io

    from lightbox.quality.checks import _box_of, _strip_pixels, measure
    from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
    from tests.conftest import ACME

    look = resolve_look(load_brand_spec(ACME), "kitchen", load_channel_presets()[channel])
    h, w = 300, 260
    rgba = np.zeros((h, w, 4), np.uint8)
    rgba[..., :3] = (244, 240, 233)
    rgba[..., 3] = 0
    body = rng.integers(0, 256, (180, 140, 3), dtype=np.uint8)
    body[:40] = 255  # clipped highlights
    body[-30:, :50] = rng.integers(0, 2, (30, 50, 3), dtype=np.uint8)  # crushed shadows
    rgba[60:240, 60:200, :3], rgba[60:240, 60:200, 3] = body, 255
    buf = io.BytesIO()
    Image.fromarray(rgba if channel == "web_transparent" else rgba[..., :3]).save(buf, "PNG")
    m = measure(buf.getvalue(), look)
    rgb = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    if channel == "web_transparent":
        fg = rgba[..., 3] > 0
    else:
        fg = np.abs(rgb.astype(np.int16) - rgb[0, 0].astype(np.int16)).max(axis=2) > 4
        edge = _strip_pixels(rgb, max(2, round(0.005 * min(w, h))))
        assert m["border_mean"] == [round(float(v), 2) for v in edge.mean(axis=0)]
    x0, y0, x1, y1 = _box_of(fg)
    box, sel = rgb[y0:y1, x0:x1], fg[y0:y1, x0:x1]
    lo, hi = box.min(axis=2), box.max(axis=2)
    assert m["clipped_highlights"] == round(float(((lo >= 254) & sel).sum() / sel.sum()), 4) > 0
    assert m["clipped_shadows"] == round(float(((hi <= 1) & sel).sum() / sel.sum()), 4) > 0
    assert m["phash"] == dhash(box)
