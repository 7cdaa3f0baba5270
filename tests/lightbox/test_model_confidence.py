"""The model cut of the default install: the bundled U2-Netp, the confidence of every model cut, its edge, and
routing - on maps and photos the tests make, and on real photographs with human-made masks where a set is
present (``../shared/realmasks`` or ``$LIGHTBOX_PHOTO_SET``; skipped with the reason where it is not)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lightbox.errors import ItemError
from lightbox.imaging.cutout import cut_out
from lightbox.imaging.cutout.confidence import model_confidence, solid_parts, undecided_share
from lightbox.imaging.cutout.edge import refine_edge
from lightbox.imaging.cutout.model import from_model
from lightbox.imaging.decode import decode_image
from lightbox.imaging.segmentation import Prediction, bundled_path, get_segmenter
from lightbox.specs.models import Cutout
from lightbox.testing.cutout_set import build_cases
from lightbox.testing.photo_set import judge, read_set, set_dir

U2NETP_SHA256 = "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"


def _disc(n: int = 320, r: float = 80, cx: float = 160, cy: float = 160, blur: float = 1.0) -> np.ndarray:
    yy, xx = np.mgrid[0:n, 0:n]
    m = (np.hypot(xx - cx, yy - cy) <= r).astype(np.float32)
    return np.clip(ndimage.gaussian_filter(m, blur), 0, 1)


@pytest.fixture(scope="module")
def cases():
    return {c.name: c for c in build_cases()}


@pytest.mark.slow
def test_the_default_install_carries_its_model(cases):
    path = Path(bundled_path("u2netp"))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == U2NETP_SHA256
    assert (path.parent / "LICENSE-u2netp").is_file() and "Apache" in (path.parent / "README.md").read_text()
    assert Cutout().model.path == "bundled:u2netp"
    seg = get_segmenter(Cutout().model)
    assert seg.input_size == 320
    photo = np.asarray(decode_image(cases["room-mug-teal"].data, max_pixels=10**8))
    pred = seg.predict([photo])[0]
    assert pred.soft.shape == photo.shape[:2] and pred.low.shape == (320, 320)
    assert 0.0 <= pred.soft.min() and pred.soft.max() <= 1.0


def _skirted() -> np.ndarray:
    m = _disc()
    yy, xx = np.mgrid[0:320, 0:320]
    r = np.hypot(xx - 160, yy - 160)
    m[(r > 84) & (r < 96)] = 0.4
    return m


def test_a_decided_map_is_confident_and_an_undecided_one_is_not():
    clean = model_confidence(_disc(), frame_sides=0)
    assert clean.score == 1.0 and clean.why is None
    # the same disc with a wide undecided skirt (the model half-sure of a region around it)
    skirt = _skirted()
    unsure = model_confidence(skirt, frame_sides=0)
    assert undecided_share(skirt) > 0.1 and unsure.score == 0.0
    # a faint region away from the product counts too: it may be a part the model lost (a lamp's pole)
    far = _disc(cx=110)
    far[20:60, 260:300] = 0.4
    assert undecided_share(far) > 0.05 and model_confidence(far, frame_sides=0).score < Cutout().min_confidence
    # an undecided region inside the mask counts as well (a part the model was not sure of)
    inside = _disc()
    inside[150:170, 150:170] = 0.7  # 2 % of the mask's area
    assert 0.0 < model_confidence(inside, frame_sides=0).score < Cutout().min_confidence


def test_two_objects_a_speck_a_scene_rectangle_are_unsure_whatever_the_score():
    two = np.maximum(_disc(r=50, cx=90), _disc(r=50, cx=230))
    assert solid_parts(two) == 2
    c = model_confidence(two, frame_sides=0)
    assert c.score == 0.0 and "2 separate objects" in c.why
    assert "almost nothing" in model_confidence(_disc(r=5), frame_sides=0).why
    assert "background" in model_confidence(np.ones((320, 320), np.float32), frame_sides=0).why
    assert "2 sides" in model_confidence(_disc(), frame_sides=2).why
    # one object and a small one beside it (a product and its cap): one product
    assert solid_parts(np.maximum(_disc(r=80), _disc(r=15, cx=270))) == 1


def _dark_product_on_white(n: int = 1280) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:n, 0:n]
    truth = np.hypot(xx - n / 2, yy - n / 2) <= n * 0.3
    aa = np.clip(n * 0.3 + 0.5 - np.hypot(xx - n / 2, yy - n / 2), 0, 1)  # an anti-aliased rim, as a camera makes
    rgb = (np.array([245, 245, 245]) * (1 - aa[..., None]) + np.array([40, 60, 90]) * aa[..., None]).astype(np.uint8)
    return rgb, truth


def test_the_edge_keeps_the_models_outline_and_leaves_no_pale_rim():
    """A dark product on white, cut from a coarse (320 px) map as a model gives: the outline stays where the
    model put it, opaque pixels are the source's own, and on a dark page the mixed edge pixels carry the
    product's colour, not the white backdrop's (no pale rim)."""
    rgb, truth = _dark_product_on_white()
    low = np.asarray(Image.fromarray(truth.astype(np.float32)).resize((320, 320), Image.Resampling.BILINEAR))
    low = np.clip(ndimage.gaussian_filter(low, 1.2), 0, 1)
    soft = np.asarray(Image.fromarray(low).resize(truth.shape[::-1], Image.Resampling.BILINEAR))
    alpha, colour = refine_edge(rgb, soft, low)
    assert np.array_equal((alpha >= 128), soft >= 0.5)  # the model's outline, unmoved
    opaque = alpha == 255
    assert np.array_equal(colour[opaque], rgb[opaque])
    mixed = (alpha > 0) & (alpha < 255)
    assert mixed.sum() > 1000
    # composite on black: a pale rim would be brighter than the product itself
    on_black = colour[mixed].astype(np.float32) * (alpha[mixed, None] / 255.0)
    product_lum = rgb[opaque].astype(np.float32).mean()
    assert on_black.mean(axis=1).max() <= product_lum + 8
    naive = rgb[mixed].astype(np.float32) * (alpha[mixed, None] / 255.0)  # what the bare model call shows
    assert naive.mean(axis=1).max() > product_lum + 20  # measured +26: the test sees a rim where there is one


def test_a_faint_region_away_from_the_product_stays_transparent():
    """The model half-saw a second object (probability 0.4) away from the product: the bare call shows it as
    a 40 % haze; the cut leaves it out."""
    rgb, _ = _dark_product_on_white(640)
    low = _disc()
    low[20:60, 260:300] = 0.4
    soft = np.asarray(Image.fromarray(low).resize((640, 640), Image.Resampling.BILINEAR))
    alpha, _ = refine_edge(rgb, soft, low)
    assert alpha[60:100, 540:580].max() == 0
    assert alpha[300:340, 300:340].min() == 255


def test_an_unsure_model_cut_is_kept_with_its_reason_not_confident():
    rgb, truth = _dark_product_on_white(640)
    skirt = _skirted()
    soft = np.asarray(Image.fromarray(skirt).resize((640, 640), Image.Resampling.BILINEAR))
    cut = from_model(rgb, Prediction(soft=soft, low=skirt), Cutout(), "no plain backdrop (test)")
    assert cut.method == "model" and not cut.confident
    assert "unsure" in cut.reason and "undecided" in cut.reason
    assert cut.diagnostics["cutout_confidence"] < Cutout().min_confidence
    sure = from_model(rgb, Prediction(soft=np.asarray(Image.fromarray(_disc()).resize((640, 640))), low=_disc()), Cutout(), "test")
    assert sure.confident and sure.diagnostics["cutout_confidence"] == 1.0


@pytest.mark.slow
def test_auto_with_the_bundled_model_routes_and_reports_a_confidence(cases):
    params = Cutout()
    seg = get_segmenter(params.model)
    studio = cut_out(decode_image(cases["ACM-MUG-001"].data, max_pixels=10**8), params, seg)
    assert studio.method == "backdrop" and studio.confident
    room = cut_out(decode_image(cases["room-mug-teal"].data, max_pixels=10**8), params, seg)
    assert room.method == "model" and room.reason.startswith("no plain backdrop")
    assert 0.0 <= room.diagnostics["cutout_confidence"] <= 1.0
    assert room.confident == (room.diagnostics["cutout_confidence"] >= params.min_confidence and "unsure" not in room.reason)
    with pytest.raises(ItemError, match="no plain backdrop"):
        cut_out(decode_image(cases["room-mug-teal"].data, max_pixels=10**8), Cutout(model=None))


REAL = set_dir()
needs_set = pytest.mark.skipif(REAL is None, reason="no set of real photographs with masks (../shared/realmasks or $LIGHTBOX_PHOTO_SET)")


@pytest.fixture(scope="module")
def real_cuts():
    photos = read_set(REAL)
    seg = get_segmenter(Cutout().model)
    out = []
    for p in photos:
        im = decode_image(p.path.read_bytes(), max_pixels=10**8)
        try:
            cut = cut_out(im, Cutout(), seg)
            out.append((p, cut, judge(cut.rgba[..., 3], p)))
        except ItemError:
            out.append((p, None, {"right": False, "iou": 0.0}))
    return out


@pytest.mark.slow
@needs_set
def test_on_real_photographs_an_unsure_cut_is_never_published_and_right_ones_mostly_are(real_cuts):
    """Measured on the development set (docs/cutout.md, "Model cuts"). Per class: the wrong cuts published
    (false passes) stay at what was measured when the threshold was set, and the recall of right cuts stays
    at or above it. A change that publishes one more wrong cut, or loses right ones, fails here."""
    for cls, max_false, min_recall in (("plain", 0, 0.75), ("scene", 0, 0.4)):
        rows = [(p, c, j) for p, c, j in real_cuts if p.cls == cls]
        published = [(p, j) for p, c, j in rows if c is not None and c.confident]
        wrong = [p.name for p, j in published if not j["right"]]
        right = [(p, c) for p, c, j in rows if j["right"]]
        recall = sum(c.confident for _, c in right) / max(len(right), 1)
        assert len(wrong) <= max_false, (cls, wrong)
        assert recall >= min_recall, (cls, recall, len(right))


@pytest.mark.slow
@needs_set
def test_on_real_photographs_every_cut_says_how_sure_it_is(real_cuts):
    for p, cut, _ in real_cuts:
        if cut is None or cut.method != "model":
            continue
        d = cut.diagnostics
        assert 0.0 <= d["cutout_confidence"] <= 1.0, p.name
        if not cut.confident:
            assert "unsure" in cut.reason, (p.name, cut.reason)
