"""Cut-out and composition: the product is never altered, only resampled and framed."""

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lightbox.errors import ItemError
from lightbox.testing.oracles import background_canvas
from lightbox.imaging.compose import (
    base_span,
    encode,
    layout,
    paste_window,
    place,
    render,
    resample_product,
    shadow_mask,
)
from lightbox.imaging.cutout import cut_out
from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
from lightbox.specs.models import ChannelPreset, Cutout, SolidBackground
from tests.conftest import ACME, TRAILHEAD
from tests.support.images import studio_photo

PARAMS = Cutout()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_studio_cutout_recovers_the_product_mask(seed):
    im, truth = studio_photo(600, 800, seed=seed)
    cut = cut_out(im, PARAMS)
    alpha = cut.rgba[..., 3]
    assert cut.method == "backdrop" and cut.confident
    # interior fully opaque, backdrop fully transparent, disagreement only in the edge band
    # (feather = 2 px each side, plus 1 px of the 3x3 noise filter)
    inner = ndimage.binary_erosion(truth, iterations=3)
    outer = ndimage.binary_dilation(truth, iterations=3)
    assert (alpha[inner] == 255).all()
    assert (alpha[~outer] == 0).all()
    # opaque pixels keep the source's values; only partially transparent edge pixels are decontaminated
    opaque = alpha == 255
    assert np.array_equal(cut.rgba[..., :3][opaque], np.asarray(im)[opaque])
    ys, xs = np.nonzero(truth)
    x0, y0, x1, y1 = cut.bbox
    assert abs(x0 - xs.min()) <= 3 and abs(x1 - xs.max() - 1) <= 3 and abs(y0 - ys.min()) <= 3 and abs(y1 - ys.max() - 1) <= 3


def test_transparent_png_uses_its_own_alpha():
    im, truth = studio_photo(300, 300)
    rgba = im.convert("RGBA")
    rgba.putalpha(Image.fromarray((truth * 255).astype(np.uint8)))
    cut = cut_out(rgba, PARAMS)
    assert cut.method == "alpha" and np.array_equal(cut.rgba[..., 3] > 0, truth)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Image.new("RGB", (300, 300), (235, 233, 228)), "no product found"),
        (lambda: Image.new("RGBA", (300, 300), (0, 0, 0, 0)), "no visible pixels"),
    ],
)
def test_cutout_failures_are_item_errors(make, message):
    with pytest.raises(ItemError, match=message):
        cut_out(make(), PARAMS)


def _png_channel(**kw) -> ChannelPreset:
    base = dict(name="t", title="t", width=1000, height=1000, format="png", background="#FFFFFF", fill=0.85, shadow=True)
    return ChannelPreset(**{**base, **kw})


def test_product_pixels_identical_to_resampled_cutout():
    """Where the product is opaque, every output pixel equals the resampled cut-out pixel."""
    spec = load_brand_spec(ACME)
    im, truth = studio_photo(600, 800)
    cut = cut_out(im, spec.cutout)
    for channel in (load_channel_presets()["shopify_square"], _png_channel()):
        look = resolve_look(spec, "kitchen", channel)
        out, _ = render(cut, look)
        p, _ = layout(cut, look)
        expected = resample_product(cut.product, (p.width, p.height))
        region = np.asarray(out)[p.y : p.y + p.height, p.x : p.x + p.width]
        opaque = expected[..., 3] == 255
        assert opaque.mean() > 0.5
        assert np.array_equal(region[opaque], expected[..., :3][opaque])


def test_at_scale_one_the_product_is_bit_identical_to_the_source():
    spec = load_brand_spec(ACME)
    im, truth = studio_photo(400, 400, box=(100, 60, 300, 340))
    cut = cut_out(im, spec.cutout)
    sx0, sy0, sx1, sy1 = cut.solid_bbox
    side = 2 * max(sx1 - sx0, sy1 - sy0)
    # fill 0.5 on a canvas twice the product's longest side: scale exactly 1
    look = resolve_look(spec, "kitchen", _png_channel(width=side, height=side, fill=0.5))
    out, _ = render(cut, look)
    p, _ = layout(cut, look)
    assert p.scale == 1.0
    bw, bh = cut.product.shape[1], cut.product.shape[0]
    assert (p.width, p.height) == (bw, bh)
    region = np.asarray(out)[p.y : p.y + bh, p.x : p.x + bw]
    opaque = cut.product[..., 3] == 255
    src = np.asarray(im)[cut.bbox[1] : cut.bbox[3], cut.bbox[0] : cut.bbox[2]]
    assert opaque.mean() > 0.5 and np.array_equal(region[opaque], src[opaque])


def test_amazon_render_is_pure_white_at_the_border_and_fills_the_frame():
    spec = load_brand_spec(ACME)
    amazon = load_channel_presets()["amazon_main"]
    im, _ = studio_photo(600, 800)
    out, p = render(cut_out(im, spec.cutout), resolve_look(spec, "kitchen", amazon))
    arr = np.asarray(out)
    assert out.size == (2000, 2000) and out.mode == "RGB"
    border = np.concatenate([arr[:10].reshape(-1, 3), arr[-10:].reshape(-1, 3), arr[:, :10].reshape(-1, 3), arr[:, -10:].reshape(-1, 3)])
    assert (border == 255).all()
    assert max(p.width, p.height) == round(0.88 * 2000)


def test_faint_wisps_do_not_count_for_framing_but_are_kept():
    """A 1-px, low-alpha wick above a candle: framing uses the solid body, the wick still shows."""
    spec = load_brand_spec(ACME)
    rgba = np.zeros((400, 300, 4), np.uint8)
    rgba[150:350, 100:200] = (200, 40, 40, 255)
    rgba[50:150, 149] = (20, 20, 20, 90)
    cut = cut_out(Image.fromarray(rgba, "RGBA"), spec.cutout)
    assert cut.bbox == (100, 50, 200, 350) and cut.solid_bbox == (100, 150, 200, 350)
    look = resolve_look(spec, "kitchen", _png_channel(fill=0.8))
    out, solid = render(cut, look)
    assert solid.height == 800  # the body fills 80 %, not body + wick
    arr = np.asarray(out)
    assert (arr[solid.y - 50 : solid.y - 10].min(axis=(0, 2)) < 200).any()  # the wick is still drawn


def test_shadow_darkens_only_below_the_product():
    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "kitchen", _png_channel(background="#FFFFFF"))
    im, _ = studio_photo(600, 800)
    out, p = render(cut_out(im, spec.cutout), look)
    arr = np.asarray(out).astype(int)
    below = arr[p.y + p.height : p.y + p.height + 20, p.x + p.width // 2]
    above = arr[max(0, p.y - 20) : p.y, p.x + p.width // 2]
    assert below.min() < 250 and (above == 255).all()
    no_shadow = look.model_copy(update={"shadow": look.shadow.model_copy(update={"enabled": False})})
    cut = cut_out(im, spec.cutout)
    plain = np.asarray(render(cut, no_shadow)[0]).astype(int)
    crop, _ = layout(cut, no_shadow)
    assert (plain[crop.y + crop.height :] == 255).all()  # below the product's edge band: untouched background


def test_placement_bottom_stands_the_product_on_a_floor_line():
    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "decor", load_channel_presets()["shopify_square"])
    assert look.placement == "bottom"
    p = place((1000, 400), look)  # a wide product
    assert p.y + p.height == 2048 - round((1 - look.fill) / 2 * 2048)
    centred = place((1000, 400), look.model_copy(update={"placement": "center"}))
    assert centred.y < p.y


def test_transparent_channel_keeps_alpha():
    spec = load_brand_spec(TRAILHEAD)
    look = resolve_look(spec, "bags", load_channel_presets()["web_transparent"])
    im, _ = studio_photo(300, 400)
    out, _ = render(cut_out(im, spec.cutout), look)
    assert out.mode == "RGBA" and out.getpixel((0, 0))[3] == 0


def test_encoding_is_deterministic():
    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "kitchen", load_channel_presets()["amazon_main"])
    im, _ = studio_photo(300, 400)
    a = encode(render(cut_out(im, spec.cutout), look)[0], look.channel)
    b = encode(render(cut_out(im, spec.cutout), look)[0], look.channel)
    assert a == b and a[:2] == b"\xff\xd8"


def test_solid_brand_background_is_exact():
    spec = load_brand_spec(TRAILHEAD)
    look = resolve_look(spec, "bags", load_channel_presets()["shopify_square"])
    assert look.background == SolidBackground(color=(0xE9, 0xEC, 0xEF))
    im, _ = studio_photo(300, 400)
    out, _ = render(cut_out(im, spec.cutout), look)
    assert out.getpixel((5, 5)) == (0xE9, 0xEC, 0xEF)


def test_edge_pixels_lose_the_backdrop_tint():
    """Anti-aliased edges mix product and paper; after the cut-out they carry the product's colour."""
    im, truth = studio_photo(600, 800)
    soft = ndimage.gaussian_filter(truth.astype(np.float32), 1.5)[..., None]
    paper = np.asarray(studio_photo(600, 800, box=(0, 0, 1, 1))[0], np.float32)  # backdrop only
    blended = Image.fromarray(np.rint(np.asarray(im, np.float32) * soft + paper * (1 - soft)).astype(np.uint8))
    cut = cut_out(blended, Cutout(feather=2.0))
    a = cut.rgba[..., 3]
    mixed = (a > 0) & (a < 255)
    assert mixed.sum() > 500
    raw = np.asarray(blended)[mixed].astype(float).mean()
    clean = cut.rgba[..., :3][mixed].astype(float).mean()
    assert clean < raw - 20  # towards the blue product, away from paper-white


def test_holes_option_keep_or_clear_enclosed_backdrop():
    im, _ = studio_photo(600, 600, box=(100, 100, 500, 500))
    paper = np.asarray(studio_photo(600, 600, box=(0, 0, 1, 1))[0])
    arr = np.asarray(im).copy()
    arr[250:350, 250:350] = paper[250:350, 250:350]  # a window through the product onto the paper
    holed = Image.fromarray(arr)
    kept = cut_out(holed, Cutout(holes="keep"))
    cleared = cut_out(holed, Cutout())  # auto: paper seen through the product matches the backdrop
    assert cut_out(holed, Cutout(holes="backdrop")).rgba[290:310, 290:310, 3].max() == 0
    assert (kept.rgba[290:310, 290:310, 3] == 255).all()
    assert (cleared.rgba[290:310, 290:310, 3] == 0).all()
    assert (cleared.rgba[150:200, 150:200, 3] == 255).all()


def _numpy_blend(cut, look, canvas: np.ndarray) -> np.ndarray:
    """The composite written out in NumPy (float32 blend, rounded): what Pillow's paste must equal."""
    p, solid = layout(cut, look)
    prod = resample_product(cut.product, (p.width, p.height))
    rows, cols, prows, pcols = paste_window((look.channel.width, look.channel.height), p)
    prod = prod[prows, pcols]
    shade = shadow_mask(look, solid, base_span(cut, solid))
    if shade is not None:
        mask, (sx, sy) = shade
        area = canvas[sy : sy + mask.shape[0], sx : sx + mask.shape[1]]
        area[:] = np.rint(area * (1.0 - mask[..., None]))
    region = canvas[rows, cols]
    alpha = prod[..., 3]
    np.copyto(region, prod[..., :3], where=(alpha == 255)[..., None])
    edge = (alpha > 0) & (alpha < 255)
    a = alpha[edge].astype(np.float32)[:, None] / 255.0
    region[edge] = np.rint(prod[..., :3][edge] * a + region[edge] * (1.0 - a)).astype(np.uint8)
    return canvas


@pytest.mark.slow
@pytest.mark.parametrize("channel", ["amazon_main", "shopify_square", "google_merchant"])
def test_pillow_composite_equals_the_numpy_blend(channel):
    """Renders are composited by Pillow; they equal the NumPy blend to the byte - on every alpha value
    0..255, every colour, gradients with a shadow, a product reaching past the frame, and on a given
    background (an AI scene) as on the look's own."""
    spec = load_brand_spec(ACME)
    rng = np.random.default_rng(7)
    rgba = rng.integers(0, 256, (700, 500, 4), dtype=np.uint8)  # every alpha, random colours
    rgba[..., 3][rng.random((700, 500)) < 0.5] = 255
    rgba[:, :3, 3] = 255  # a solid column at the left edge, so the box is the whole array
    cut = cut_out(Image.fromarray(rgba, "RGBA"), spec.cutout)
    for category in ("kitchen", "lighting", "decor"):  # gradients, centre and bottom placement, shadows
        for fill in (None, 1.3):  # 1.3: the product runs past the frame
            ch = load_channel_presets()[channel]
            look = resolve_look(spec, category, ch if fill is None else ch.model_copy(update={"fill": fill}))
            own, _ = render(cut, look)
            assert np.array_equal(np.asarray(own), _numpy_blend(cut, look, background_canvas(look))), (category, fill)
            scene = rng.integers(0, 256, (ch.height, ch.width, 3), dtype=np.uint8)
            given, _ = render(cut, look, background=scene)
            assert np.array_equal(np.asarray(given), _numpy_blend(cut, look, scene.copy())), (category, fill)


@pytest.mark.parametrize("fill", [0.86, 1.3])
def test_a_transparent_render_is_the_resampled_product_on_nothing(fill):
    """On a transparent channel the output is the resampled product, alpha and all, on transparent
    pixels - also where it runs past the frame (fill 1.3)."""
    spec = load_brand_spec(ACME)
    im, _ = studio_photo(600, 800, seed=4)
    cut = cut_out(im, spec.cutout)
    look = resolve_look(spec, "kitchen", _png_channel(background="transparent").model_copy(update={"fill": fill}))
    out, _ = render(cut, look)
    p, _ = layout(cut, look)
    rows, cols, prows, pcols = paste_window((look.channel.width, look.channel.height), p)
    want = np.zeros((look.channel.height, look.channel.width, 4), np.uint8)
    want[rows, cols] = resample_product(cut.product, (p.width, p.height))[prows, pcols]
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), want)


@pytest.mark.parametrize("photo", ["drawn", "acm-mug-002.jpg", "acm-lmp-016.jpg"])
def test_fidelity_to_the_source_is_measured_against_the_source_resampled(photo):
    """``fidelity_source`` is taken where the resampled cut-out is provably the source resampled (windows
    inside the cut's untouched interior): there it equals the difference to the source photo resampled
    on its own, over the same pixels - for every channel size, on a drawn photo and two example JPEGs."""
    from lightbox.generate import construction_metrics, source_interior, source_reference
    from lightbox.imaging.compose import resampled_image
    from lightbox.imaging.decode import decode_image
    from lightbox.quality.checks import _mad, decode_output
    from tests.conftest import REPO

    spec = load_brand_spec(ACME)
    if photo == "drawn":
        im = studio_photo(900, 700, seed=3)[0]
    else:
        im = decode_image((REPO / "examples" / "acme-home" / "images" / photo).read_bytes(), max_pixels=10**8)
    cut = cut_out(im, spec.cutout)
    for name in ("amazon_main", "shopify_square", "google_merchant"):
        look = resolve_look(spec, "kitchen", load_channel_presets()[name])
        out, _ = render(cut, look)
        data = encode(out, look.channel)
        m = construction_metrics(cut, look, data)
        p, _ = layout(cut, look)
        size = (p.width, p.height)
        inside = source_interior(cut, size)
        opaque = np.asarray(resampled_image(cut, size))[..., 3] == 255
        assert inside is not None and inside.sum() > 0.85 * opaque.sum(), (name, inside.sum() / opaque.sum())
        first, on_source = _mad(decode_output(data).convert("RGB"), source_reference(cut, size), p.x, p.y, inside)
        assert m["fidelity_source"] == on_source, name
        assert m["fidelity"] == _mad(decode_output(data).convert("RGB"), np.asarray(resampled_image(cut, size)), p.x, p.y)[0], name


def test_one_job_that_breaks_the_engine_fails_alone():
    """An engine that raises on one job of a batch: that job fails with a one-line reason, the rest render."""
    from lightbox.engines.studio import StudioEngine
    from lightbox.generate import render_isolated

    class Breaks(StudioEngine):
        def render(self, jobs):
            if any(j.variant == 1 for j in jobs):
                raise ValueError("cannot broadcast (3,) into (4,)\nsecond line")
            return super().render(jobs)

    from lightbox.engines import RenderJob
    from lightbox.records import Product

    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "kitchen", load_channel_presets()["shopify_square"])
    cut = cut_out(studio_photo(300, 400)[0], spec.cutout)
    product = Product(sku="A-1", row=1, title="Mug", category="kitchen", images=[])
    jobs = [RenderJob(product=product, look=look, variant=v, seed=0, cut=cut) for v in (0, 1, 2)]
    res = render_isolated(Breaks(), jobs)
    assert [r.error is None for r in res] == [True, False, True]
    assert res[1].error == "rendering with studio failed: ValueError: cannot broadcast (3,) into (4,)"


def test_a_transparent_output_is_measured_and_gated_by_the_rules_that_apply_to_it():
    """web_transparent used to fail every PNG ('no-overlays: background_detail not measured'): the background
    of a transparent output is nothing, so anything visible away from the product is detail."""
    from PIL import ImageDraw

    from lightbox.generate import construction_metrics
    from lightbox.quality.checks import decode_output, evaluate, measure

    spec = load_brand_spec(TRAILHEAD)
    look = resolve_look(spec, "bags", load_channel_presets()["web_transparent"])
    cut = cut_out(studio_photo(600, 800)[0], spec.cutout)
    out, _ = render(cut, look)

    def judged(image):
        blob = encode(image, look.channel)
        m = construction_metrics(cut, look, decode_output(blob))
        m |= measure(blob, look, product_box=tuple(m["product_box"]), image=decode_output(blob))
        return m, evaluate(m, look)

    m, (verdict, reasons, _) = judged(out)
    assert m["background_detail"] == 0.0
    assert verdict != "failed", reasons
    marked = out.copy()
    ImageDraw.Draw(marked).rectangle((20, 1500, 400, 1580), fill=(40, 40, 40, 255))  # a caption bar at the bottom
    m, (verdict, reasons, failed) = judged(marked)
    assert m["background_detail"] > 0.0002 and verdict == "failed" and "no-overlays" in failed


def _example(name: str) -> Image.Image:
    from lightbox.imaging.decode import decode_image
    from tests.conftest import REPO

    return decode_image((REPO / "examples" / "acme-home" / "images" / name).read_bytes(), max_pixels=10**8)


def test_a_transparent_png_shows_no_pale_rim_on_a_dark_page():
    """Issue 25, item 9: the red mug's transparent PNG over a dark page showed pale specks and a dotted light rim
    (2,371 edge pixels of the 1600 px PNG brighter than the product beside them: the paper kept opaque along the
    outline; 103 once the rim step cleared it; 57 since the rim step recovers the colour of a pixel it keeps at
    half cover with the cover the colour shows - the dotted pink outline in the handle's hole -; what is left:
    single pixels beside the specular stripe and the paper in the two corners where the handle meets the body)."""
    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "kitchen", load_channel_presets()["web_transparent"])
    out, _ = render(cut_out(_example("acm-mug-002.jpg"), look.cutout), look)
    rgba = np.asarray(out)
    a, lum = rgba[..., 3].astype(np.float32), rgba[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    inner = (a == 255) & ~ndimage.binary_dilation(a < 255, iterations=2)
    _, (iy, ix) = ndimage.distance_transform_edt(~inner, return_indices=True)
    on_dark = lum * a / 255.0  # over black
    pale = (a > 0) & ~inner & (on_dark > lum[iy, ix] + 40)
    assert int(pale.sum()) <= 80, f"{int(pale.sum())} pale rim pixels"


def test_the_contact_shadow_sits_under_the_base_not_under_a_handle():
    """Issue 25, item 9: the shadow was centred under the product's whole width, the mug's handle included."""
    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "kitchen", load_channel_presets()["amazon_main"])
    cut = cut_out(_example("acm-mug-001.jpg"), look.cutout)
    out, solid = render(cut, look)
    bx0, bx1 = base_span(cut, solid)
    assert bx1 - bx0 < 0.8 * solid.width  # the handle is not part of what the mug stands on
    below = 255.0 - np.asarray(out.convert("L"), np.float32)[solid.y + solid.height : solid.y + solid.height + 40]
    cols = below.sum(axis=0)
    centre = float((cols * np.arange(cols.size)).sum() / cols.sum())
    assert abs(centre - (bx0 + bx1) / 2) < 0.03 * solid.width, (centre, bx0, bx1, solid)
    handle = int(bx1 + 0.1 * solid.width), solid.x + solid.width  # columns only the handle spans
    assert cols[handle[0] : handle[1]].max() < 0.25 * cols.max()


def test_the_white_candles_outline_has_no_notch_tent_or_strip_of_shadow():
    """Issue 25, item 9: the white candle (ACM-CDL-018), whose top is the paper's brightness over a few px, was cut
    with a V notch in its top edge (the outline completed with diamond-shaped dilations, 3-5 px deep), a white
    "tent" of paper at the wick's base (closing filled the corner), and a 3-4 px strip of its floor shadow along
    its base (shadow beside a step was never backdrop), with steps where the completed gaps were. Compared with
    the photo's true mask, column by column, on the cut the transparent PNG is rendered from."""
    from tests.conftest import REPO

    spec = load_brand_spec(ACME)
    look = resolve_look(spec, "lighting", load_channel_presets()["web_transparent"])
    cut = cut_out(_example("acm-cdl-018.jpg"), look.cutout)
    assert cut.confident, cut.reason
    alpha = cut.rgba[..., 3] >= 128
    truth = np.asarray(Image.open(REPO / "examples" / "acme-home" / "masks" / "acm-cdl-018.png")) >= 128
    rows = np.nonzero(truth.sum(axis=1) > 50)[0]  # the body's rows (the wick is a few px wide)
    top = int(rows.min())
    wick = np.nonzero(truth[:top].any(axis=0))[0]
    body = np.nonzero(truth[top + 20])[0]
    cols = np.arange(body.min() + 40, body.max() - 40)  # the flat top and base, off the rounded corners
    cols = cols[(cols < wick.min() - 3) | (cols > wick.max() + 3)]
    def first(m, c):
        return int(np.argmax(m[:, c]))

    def last(m, c):
        return m.shape[0] - 1 - int(np.argmax(m[::-1, c]))

    top_off = np.array([first(alpha, c) - first(truth, c) for c in cols])  # > 0: the cut's edge below the true one
    base_off = np.array([last(alpha, c) - last(truth, c) for c in cols])  # > 0: kept below the true base
    # measured on 133 columns: before, 10 columns of the top 3-7 px off and 102 of the base 3-4 px; now 1 and 2
    assert (top_off >= 3).sum() <= 2, f"top edge: {int((top_off >= 3).sum())} columns notched 3 px or more"
    assert (base_off >= 3).sum() <= 5, f"base: {int((base_off >= 3).sum())} columns keep 3 px or more of shadow"
    around_wick = alpha[top - 15 : top, wick.min() - 15 : wick.max() + 16] & ~truth[top - 15 : top, wick.min() - 15 : wick.max() + 16]
    assert int(around_wick.sum()) <= 3, f"{int(around_wick.sum())} paper pixels kept at the wick's base"  # was 42


def test_a_hard_edge_is_resized_without_a_bright_line_or_ghost_pixels():
    """Issue 25, item 9 (found by a new user once the candle's base kept no strip of shadow): Lanczos rings at a
    hard alpha edge - the alpha overshoots past 255 and is clipped, so the unpremultiplied colour overshoots:
    a bright line along the white candle's base (247 beside 231) and a faint ghost row outside it. Along the
    outline the bilinear resize is used; the interior stays Lanczos."""
    from lightbox.imaging.compose import resample_image

    product = np.zeros((200, 120, 4), np.uint8)
    product[20:180, 20:100] = (231, 229, 226, 255)  # a light product with hard edges on every side
    for scale in (1.3, 2.0, 0.6):
        size = (round(120 * scale), round(200 * scale))
        out = np.asarray(resample_image(product, size)).astype(int)
        seen = out[..., 3] >= 64
        overshoot = 3 if scale > 1 else 8
        assert out[..., 0][seen].max() <= 231 + overshoot, (scale, int(out[..., 0][seen].max()))  # no bright line
        inside = np.zeros(out.shape[:2], bool)
        inside[int(20 * scale) - 2 : int(180 * scale) + 3, int(20 * scale) - 2 : int(100 * scale) + 3] = True
        if scale > 1:
            assert not (out[..., 3][~inside] > 0).any(), scale  # no ghost pixels beyond the edge
        core = slice(int(40 * scale), int(160 * scale)), slice(int(40 * scale), int(80 * scale))
        assert (out[core][..., :3] == (231, 229, 226)).all()  # the interior untouched
