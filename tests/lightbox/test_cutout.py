"""The cut-out against ground truth (the labelled mask set), its routing, and the model path on tiny
models built here (a transformers checkpoint with remote code, an ONNX graph)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from lightbox.accelerator import DeviceUnavailable
from lightbox.errors import ItemError
from lightbox.imaging.cutout import NO_BACKDROP, cut_out, cut_out_many
from lightbox.imaging.decode import decode_image
from lightbox.imaging.segmentation import (
    OnnxSegmenter,
    SegmentationError,
    SegmentationLoadError,
    TransformersSegmenter,
    get_segmenter,
    prepare_segmentation,
    resolve_runtime,
    segmenter_for,
)
from lightbox.specs import load_brand_spec
from lightbox.specs.models import Cutout, SegmentationModel
from lightbox.testing.cutout_set import PLAIN, SCENES, build_cases, score
from lightbox.testing.tiny_segmentation import tiny_birefnet, tiny_onnx

# Measured exceptions, each named with why; anything else must meet the bar (and these must not regress).
# ACM-CDL-018: the white candle's top edge is the paper's colour over a few px; the outline completed there
#   along the gap's chord dips ~1 px into it (4 px of 106,000; 35 when it was completed by dilations).
LOST_ALLOWED = {"ACM-CDL-018": 10}
# IoU is dominated by the 1-px edge band on a 5 px wire (hanger); the scissors keep a patch of floor
# shadow between their loops. Both lose no product pixel.
IOU_FLOOR = {"thin-hanger-brown": 0.75, "holes-scissors-red": 0.93}


@pytest.fixture(scope="session")
def mask_set():
    return build_cases()


@pytest.fixture(scope="session")
def plain_results(mask_set):
    out = {}
    for c in mask_set:
        if c.cls in PLAIN and c.cls != "transparent":
            try:
                out[c.name] = (c, cut_out(decode_image(c.data, max_pixels=10**8), Cutout()))
            except ItemError as e:
                out[c.name] = (c, e)
    return out


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("seg-models")
    return {"transformers": str(tiny_birefnet(root / "tiny-birefnet")), "onnx": str(tiny_onnx(root / "tiny-seg.onnx")),
            "onnx-batch1": str(tiny_onnx(root / "tiny-seg-b1.onnx", dynamic_batch=False))}


def _case(mask_set, name):
    return next(c for c in mask_set if c.name == name)


@pytest.mark.slow
def test_the_mask_set_is_large_and_hard(mask_set):
    assert len(mask_set) >= 60
    classes = {c.cls for c in mask_set}
    assert set(PLAIN) | set(SCENES) <= classes
    for cls in classes:
        assert sum(c.cls == cls for c in mask_set) >= 3, cls
    assert all(c.truth.any() and not c.truth.all() for c in mask_set)


@pytest.mark.slow
def test_plain_photos_are_cut_exactly_or_routed(plain_results):
    """The issue's bar: on a plain backdrop the cut loses no true product pixel outside a 2 px edge band
    and reaches IoU 0.98 - or it says it is unsure (model or review)."""
    problems, confident = [], 0
    for name, (case, cut) in plain_results.items():
        assert not isinstance(cut, ItemError), f"{name}: a plain-backdrop photo was refused: {cut}"
        if not cut.confident:
            assert cut.reason and "outline" in cut.reason or "pieces" in cut.reason or "sides" in cut.reason, cut.reason
            continue
        confident += 1
        s = score(cut.rgba[..., 3], case.truth)
        if s["lost_px"] > LOST_ALLOWED.get(name, 0):
            problems.append(f"{name}: lost {s['lost_px']} product px")
        if s["iou"] < IOU_FLOOR.get(name, 0.98):
            problems.append(f"{name}: IoU {s['iou']:.4f}")
    assert not problems, problems
    assert confident >= 40  # routing is for the hard cases, not a way out


@pytest.mark.slow
def test_example_catalog_cuts_hold(plain_results):
    """Every example product is cut with confidence, the white candle whole, no specks at the shadow line."""
    for name, (case, cut) in plain_results.items():
        if not name.startswith("ACM-"):
            continue
        assert cut.confident, (name, cut.reason)
        s = score(cut.rgba[..., 3], case.truth)
        assert s["iou"] >= 0.99, (name, s)
        # specks: pieces of kept backdrop more than 2 px outside the product, larger than a few pixels
        added = (cut.rgba[..., 3] >= 128) & ~ndimage.binary_dilation(case.truth, iterations=3)
        labels, n = ndimage.label(added)
        biggest = int(np.bincount(labels.ravel())[1:].max()) if n else 0
        assert biggest <= 40, (name, biggest)  # measured max 32 px: 1-px slivers of the anti-aliased edge


@pytest.mark.slow
def test_white_on_white_that_cannot_be_separated_is_routed_not_published(plain_results):
    routed = [n for n, (c, cut) in plain_results.items() if c.cls == "white-on-white" and not cut.confident]
    assert len(routed) >= 4
    for name in routed:
        assert "no edge" in plain_results[name][1].reason or "no contrast" in plain_results[name][1].reason


@pytest.mark.slow
def test_enclosed_backdrop_is_cleared(plain_results):
    """A mug handle's hole shows no paper: every true hole pixel is transparent."""
    for name in ("holes-mug-blue", "holes-mug-pink", "holes-ring-copper", "ACM-MUG-001", "ACM-MUG-002"):
        case, cut = plain_results[name]
        holes = ndimage.binary_fill_holes(case.truth) & ~ndimage.binary_dilation(case.truth, iterations=3)
        assert holes.sum() > 100, name
        a = cut.rgba[..., 3][holes]
        # at most a few faint pixels (measured: the ring 4 of 43,279; ACM-MUG-002 7 of 26,738 at most 46, in
        # the sharpening halo of the handle's inner rim, which the reduced cut's full-size edge keeps faint)
        assert (a > 16).sum() <= 8 and a.max() <= 64, name


@pytest.mark.slow
def test_opaque_pixels_are_the_sources(plain_results, mask_set):
    case, cut = plain_results["ACM-BTL-003"]
    src = np.asarray(decode_image(case.data, max_pixels=10**8))
    opaque = cut.rgba[..., 3] == 255
    assert np.array_equal(cut.rgba[..., :3][opaque], src[opaque])


def test_scenes_are_refused_without_a_model(mask_set):
    for case in mask_set:
        if case.cls in SCENES:
            with pytest.raises(ItemError, match="no plain backdrop in the source photo, and no segmentation model this run"):
                cut_out(decode_image(case.data, max_pixels=10**8), Cutout())


def test_backdrop_method_refuses_a_scene_and_alpha_method_an_opaque_photo(mask_set):
    room = decode_image(_case(mask_set, "room-mug-teal").data, max_pixels=10**8)
    with pytest.raises(ItemError, match="no plain backdrop in the source photo, and cutout.method is 'backdrop'"):
        cut_out(room, Cutout(method="backdrop"))
    with pytest.raises(ItemError, match=NO_BACKDROP):
        cut_out(room, Cutout(model=None))
    with pytest.raises(ItemError, match="no transparency"):
        cut_out(room, Cutout(method="alpha"))


def test_transparent_sources_use_their_alpha(mask_set):
    for case in mask_set:
        if case.cls == "transparent":
            cut = cut_out(decode_image(case.data, max_pixels=10**8), Cutout())
            assert cut.method == "alpha" and cut.confident
            assert score(cut.rgba[..., 3], case.truth)["iou"] == 1.0


# --- the model path ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["transformers", "onnx"])
def test_model_loads_and_masks_at_the_photo_size(models, fmt):
    cfg = SegmentationModel(path=models[fmt])
    seg = get_segmenter(cfg)
    assert isinstance(seg, TransformersSegmenter if fmt == "transformers" else OnnxSegmenter)
    assert seg.input_size == 128  # from the config / the graph's input shape
    assert get_segmenter(cfg) is seg  # loaded once per process
    photos = [np.full((90, 140, 3), 200, np.uint8), np.full((300, 120, 3), 30, np.uint8)]
    preds = seg.predict(photos)
    assert [p.soft.shape for p in preds] == [(90, 140), (300, 120)]
    assert all(p.low.shape == (128, 128) for p in preds)  # the model's own map, which the confidence reads
    assert all(m.dtype == np.float32 and 0.0 <= m.min() and m.max() <= 1.0 for p in preds for m in (p.soft, p.low))


@pytest.mark.parametrize("fmt", ["transformers", "onnx", "onnx-batch1"])
def test_a_batch_equals_its_singles(models, mask_set, fmt):
    cfg = SegmentationModel(path=models[fmt], batch_size=3)
    seg = get_segmenter(cfg)
    photos = [np.asarray(decode_image(_case(mask_set, n).data, max_pixels=10**8))
              for n in ("textured-jar-pink", "room-mug-teal", "outdoor-box-yellow", "ACM-MUG-001")]
    batched = seg.predict(photos)
    singles = [seg.predict([p])[0] for p in photos]
    for b, s in zip(batched, singles, strict=True):
        np.testing.assert_allclose(b.soft, s.soft, atol=1e-5)
        np.testing.assert_allclose(b.low, s.low, atol=1e-5)


def test_transformers_and_onnx_exports_agree(models, mask_set):
    photo = np.asarray(decode_image(_case(mask_set, "textured-jar-pink").data, max_pixels=10**8))
    a = get_segmenter(SegmentationModel(path=models["transformers"])).predict([photo])[0]
    b = get_segmenter(SegmentationModel(path=models["onnx"])).predict([photo])[0]
    np.testing.assert_allclose(a.soft, b.soft, atol=1e-4)
    np.testing.assert_allclose(a.low, b.low, atol=1e-4)


def test_auto_routes_a_scene_to_the_model_and_keeps_its_pixels(models, mask_set):
    case = _case(mask_set, "textured-jar-pink")
    im = decode_image(case.data, max_pixels=10**8)
    params = Cutout(model=SegmentationModel(path=models["onnx"]))
    cut = cut_out(im, params, get_segmenter(params.model))
    assert cut.method == "model" and cut.reason.startswith("no plain backdrop")
    assert score(cut.rgba[..., 3], case.truth)["iou"] >= 0.9  # the tiny model finds a pink jar on grey stone
    src = np.asarray(im)
    opaque = cut.rgba[..., 3] == 255
    assert opaque.sum() > 1000 and np.array_equal(cut.rgba[..., :3][opaque], src[opaque])
    band = (cut.rgba[..., 3] > 0) & (cut.rgba[..., 3] < 255)
    assert band.sum() > 100  # the edge band across the outline is mixed


def test_studio_photos_stay_on_the_backdrop_method_when_a_model_is_configured(models, mask_set):
    params = Cutout(model=SegmentationModel(path=models["onnx"]))
    cut = cut_out(decode_image(_case(mask_set, "ACM-MUG-001").data, max_pixels=10**8), params, get_segmenter(params.model))
    assert cut.method == "backdrop" and cut.reason.startswith("plain backdrop")


def test_unsure_backdrop_cut_goes_to_the_model(models, mask_set):
    params = Cutout(model=SegmentationModel(path=models["onnx"]))
    cut = cut_out(decode_image(_case(mask_set, "white-box").data, max_pixels=10**8), params, get_segmenter(params.model))
    assert cut.method == "model" and cut.reason.startswith("backdrop cut unsure")


def test_chunk_batches_model_photos_and_refuses_per_photo(models, mask_set):
    names = ["room-mug-teal", "ACM-MUG-001", "outdoor-lamp-grey", "textured-jar-pink"]
    images = [decode_image(_case(mask_set, n).data, max_pixels=10**8) for n in names]
    with_model = Cutout(model=SegmentationModel(path=models["onnx"], batch_size=2))
    calls = []
    seg = get_segmenter(with_model.model)
    original = seg._run

    def counting(batch):
        calls.append(len(batch))
        return original(batch)

    seg._run = counting
    try:
        res = cut_out_many(images, [with_model, Cutout(), with_model, with_model], lambda p: seg if p.model else None)
    finally:
        seg._run = original
    assert [r.method for r in res] == ["model", "backdrop", "model", "model"]
    assert calls == [2, 1]  # three model photos in batches of two
    refused = cut_out_many(images, [Cutout()] * 4)
    assert [isinstance(r, ItemError) for r in refused] == [True, False, True, True]


class _Oom(OnnxSegmenter):
    def __init__(self, base: OnnxSegmenter, fail_at_one: bool = False):
        self.__dict__.update(base.__dict__)
        self.sizes: list[int] = []
        self.fail_at_one = fail_at_one

    def _run(self, batch):
        self.sizes.append(len(batch))
        if len(batch) > 1 or self.fail_at_one:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super()._run(batch)


def test_out_of_memory_halves_the_batch_then_fails_the_item(models, mask_set):
    base = get_segmenter(SegmentationModel(path=models["onnx"], batch_size=4))
    seg = _Oom(base)
    photos = [np.full((64, 64, 3), v, np.uint8) for v in (10, 90, 170)]
    assert len(seg.predict(photos)) == 3
    assert seg.sizes[:3] == [3, 2, 1]  # 4 -> 2 -> 1, then one at a time
    failing = _Oom(base, fail_at_one=True)
    with pytest.raises(SegmentationError, match="out of memory"):
        failing.predict(photos)
    room = decode_image(_case(mask_set, "room-mug-teal").data, max_pixels=10**8)
    res = cut_out_many([room], [Cutout(model=base.cfg)], lambda p: failing)
    assert isinstance(res[0], ItemError) and "segmentation model failed" in str(res[0])


def test_an_empty_mask_is_refused_with_the_reason(models, mask_set, tmp_path):
    dead = SegmentationModel(path=str(tiny_onnx(tmp_path / "dead.onnx", bias=-60.0)))
    room = decode_image(_case(mask_set, "room-mug-teal").data, max_pixels=10**8)
    with pytest.raises(ItemError, match="no product found by the segmentation model"):
        cut_out(room, Cutout(model=dead), get_segmenter(dead))


def test_device_and_dtype(models):
    assert resolve_runtime(SegmentationModel(path=models["onnx"])) .device == "cpu"
    assert resolve_runtime(SegmentationModel(path=models["onnx"])).dtype == "float32"
    assert resolve_runtime(SegmentationModel(path=models["onnx"], dtype="bfloat16")).dtype == "bfloat16"
    with pytest.raises(DeviceUnavailable, match="cutout.model.device is 'cuda'"):
        resolve_runtime(SegmentationModel(path=models["onnx"], device="cuda"))


def test_a_model_that_cannot_load_fails_at_start_or_falls_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = load_brand_spec("brand_specs/acme-home.yaml")
    missing = str(tmp_path / "no-such-model")
    broken = spec.model_copy(update={"cutout": Cutout(model=SegmentationModel(path=missing))})
    with pytest.raises(SegmentationLoadError, match=f"cannot load segmentation model '{missing}'.*looked|{missing}"):
        prepare_segmentation(broken)
    fallback = spec.model_copy(update={"cutout": Cutout(model=SegmentationModel(path=missing, fallback="backdrop"))})
    reason = prepare_segmentation(fallback)
    assert reason and missing in reason and "cutout.model.fallback: backdrop" in reason
    assert segmenter_for(reason)(fallback.cutout) is None  # this run cuts without it
    (tmp_path / "junk.onnx").write_bytes(b"not a graph")
    with pytest.raises(SegmentationLoadError, match="junk.onnx"):
        get_segmenter(SegmentationModel(path=str(tmp_path / "junk.onnx")))


def test_an_unpinned_hub_id_is_not_trusted():
    with pytest.raises(SegmentationLoadError, match="needs a pinned revision"):
        get_segmenter(SegmentationModel(path="someone/birefnet-like"))


def test_spec_validation_names_the_field():
    with pytest.raises(ValueError, match="method 'model' needs cutout.model"):
        Cutout(method="model", model=None)


@pytest.mark.segmentation_weights
@pytest.mark.skipif(not os.environ.get("LIGHTBOX_SEGMENTATION_MODEL"), reason="LIGHTBOX_SEGMENTATION_MODEL names no model")
def test_real_model_on_the_scenes(mask_set):
    cfg = SegmentationModel(path=os.environ["LIGHTBOX_SEGMENTATION_MODEL"], revision=os.environ.get("LIGHTBOX_SEGMENTATION_REVISION"))
    seg = get_segmenter(cfg)
    for case in mask_set:
        if case.cls in SCENES:
            cut = cut_out(decode_image(case.data, max_pixels=10**8), Cutout(model=cfg), seg)
            assert cut.method == "model"
            assert score(cut.rgba[..., 3], case.truth)["iou"] >= 0.9, case.name


@pytest.mark.slow
def test_exported_masks_are_readable(mask_set, tmp_path):
    """The example generator writes the truth it draws: masks match the photos' sizes."""
    from lightbox.testing.cutout_set import main

    main(tmp_path)
    labels = (tmp_path / "labels.json").read_text()
    assert "white-on-white" in labels and "room" in labels
    photo = Image.open(tmp_path / "holes-mug-blue.jpg")
    mask = Image.open(tmp_path / "masks" / "holes-mug-blue.png")
    assert photo.size == mask.size


def _edited(case, edit) -> Image.Image:
    rgb = np.asarray(decode_image(case.data, max_pixels=10**8)).astype(np.float32).copy()
    edit(rgb)
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


@pytest.mark.slow
def test_the_work_window_changes_nothing(mask_set, monkeypatch):
    """The backdrop cut runs in a window around what is not plain backdrop: the same bytes, diagnostics and
    verdict as over the whole photo - on framed products, thin parts, holes, shadows, white on white, and
    on things far from the product a cut keeps or refuses: a faint crease in the paper, a dust speck, a
    second object, a product cropped by the frame. (At full size: the reduced cut runs the same code.)"""
    import lightbox.imaging.cutout.backdrop as C

    monkeypatch.setattr(C, "_coarse_factor", lambda h, w: 1)
    names = ["ACM-MUG-001", "ACM-CDL-018", "ACM-LMP-015", "thin-hanger-brown", "holes-scissors-red",
             "shadow-lamp-pink", "white-mug", "glass-vase-blue"]
    photos = [(n, decode_image(_case(mask_set, n).data, max_pixels=10**8)) for n in names]
    base = _case(mask_set, "ACM-JAR-005")

    def crease(rgb):  # a 1-px paper crease 9 levels darker, across the top of the frame
        rgb[60, 20:-20] -= 9

    def short_crease(rgb):  # the same, 300 px long, 100 px above the jar: the window must grow to hold it
        rgb[120, 500:800] -= 9

    def speck(rgb):  # dust, and a second small object far from the product
        rgb[30:36, 40:46] -= 60
        rgb[-120:-60, -160:-100] = (40, 90, 160)

    def cropped(rgb):  # the product pushed against the frame's left edge
        rgb[:] = np.roll(rgb, -int(0.3 * rgb.shape[1]), axis=1)

    photos += [(f"{base.name}+{e.__name__}", _edited(base, e)) for e in (crease, short_crease, speck, cropped)]
    windowed, whole = {}, {}
    windows = []
    real = C._work_window

    def spy(rgb, *a):
        win = real(rgb, *a)
        windows.append(win)
        return win

    for store in (windowed, whole):
        if store is whole:
            monkeypatch.setattr(C, "_work_window", lambda rgb, *a: (0, rgb.shape[0], 0, rgb.shape[1]))
        else:
            monkeypatch.setattr(C, "_work_window", spy)
        for name, im in photos:
            if store is windowed and name.endswith("short_crease"):
                n_before = len(windows)
            try:
                store[name] = cut_out(im, Cutout(method="backdrop"))
            except ItemError as e:
                store[name] = str(e)
            if store is windowed and name.endswith("short_crease"):
                y0, y1, x0, x1 = windows[n_before]
                assert y0 < 120 < y1 and x0 < 500 and 800 < x1, windows[n_before]  # the crease is in the window
    for name, _ in photos:
        a, b = windowed[name], whole[name]
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, name
            continue
        assert np.array_equal(a.rgba, b.rgba), name
        assert (a.bbox, a.solid_bbox, a.reason, a.diagnostics) == (b.bbox, b.solid_bbox, b.reason, b.diagnostics), name
    shares = [(y1 - y0) * (x1 - x0) / (im.height * im.width) for (y0, y1, x0, x1), (_, im) in zip(windows, photos, strict=True)]
    assert sum(s < 0.6 for s in shares) >= 6, shares  # the window is live, not the whole photo every time


@pytest.mark.slow
def test_the_work_window_sees_the_photos_last_partial_blocks(mask_set, monkeypatch):
    """A mark in the last rows (columns) that do not fill a whole 8 x 8 block is still found: the window
    grows to reach it, and the cut equals the whole photo's."""
    import lightbox.imaging.cutout.backdrop as C

    base = np.asarray(decode_image(_case(mask_set, "ACM-JAR-005").data, max_pixels=10**8))[:1397, :1395]
    params = Cutout(method="backdrop")
    real = C._work_window
    for where in ("bottom", "right"):
        rgb = base.copy()
        if where == "bottom":
            rgb[1394:, 600:660] = (30, 30, 30)  # in the 5 rows past the last whole block row
        else:
            rgb[600:660, 1392:] = (30, 30, 30)  # in the 3 columns past the last whole block column
        test = C.assess_backdrop(rgb, params)
        y0, y1, x0, x1 = real(rgb, test, max(test.noise, 0.5), 26.0)
        assert (y1 - y0) * (x1 - x0) < 0.6 * rgb.shape[0] * rgb.shape[1], where  # a window, not the fallback
        assert (y1 == 1397) if where == "bottom" else (x1 == 1395), (where, (y0, y1, x0, x1))
        monkeypatch.setattr(C, "_work_window", real)
        windowed = cut_out(Image.fromarray(rgb), params)
        monkeypatch.setattr(C, "_work_window", lambda rgb, *a: (0, rgb.shape[0], 0, rgb.shape[1]))
        whole = cut_out(Image.fromarray(rgb), params)
        assert np.array_equal(windowed.rgba, whole.rgba) and windowed.diagnostics == whole.diagnostics, where


# The reduced cut below the size it is used at (these photos are 640-1040 px, so cut from 320-520 px):
# measured IoU 0.868 (the 5 px wire) and 0.962 (the scissors' floor shadow between the loops; the full cut
# 0.81 and 0.951); lost pixels: the teal box's floor shadow takes 26 px of its base, the grey jar 2 px.
# Above 1200 px, where it is used, the example photos hold the full bars (IoU >= 0.99, no pixel lost).
REDUCED_IOU = {"thin-hanger-brown": 0.85, "holes-scissors-red": 0.95}
REDUCED_LOST = {"shadow-box-teal": 30, "glossy-jar-grey": 4}


@pytest.mark.slow
def test_the_reduced_cut_decides_as_the_full_cut(mask_set, monkeypatch):
    """Cut at half size and refined at full size, every hard plain-backdrop photo gets the full cut's verdict
    (sure, unsure, refused), and the sure cuts keep their product: no lost pixel, IoU at the bar."""
    import lightbox.imaging.cutout.backdrop as C

    cases = [c for c in mask_set if c.cls in PLAIN and c.cls != "transparent" and not c.name.startswith("ACM-")]
    assert len(cases) >= 30
    full, reduced = {}, {}
    for store, factor in ((full, 1), (reduced, 2)):
        monkeypatch.setattr(C, "_coarse_factor", lambda h, w, f=factor: f)
        for c in cases:
            try:
                store[c.name] = cut_out(decode_image(c.data, max_pixels=10**8), Cutout())
            except ItemError as e:
                store[c.name] = str(e)
    problems, refined = [], 0
    for c in cases:
        a, b = full[c.name], reduced[c.name]
        if isinstance(a, str) or isinstance(b, str):
            assert a == b, c.name
            continue
        assert a.confident == b.confident, (c.name, a.reason, b.reason)
        if not b.confident:
            continue
        refined += "1/2 size" in b.reason
        s = score(b.rgba[..., 3], c.truth)
        if s["lost_px"] > REDUCED_LOST.get(c.name, 0):
            problems.append(f"{c.name}: lost {s['lost_px']} px")
        if s["iou"] < REDUCED_IOU.get(c.name, 0.98):
            problems.append(f"{c.name}: IoU {s['iou']:.4f}")
    assert not problems, problems
    assert refined >= 25  # the sure ones took the reduced path (only completed outlines go back to full size)


@pytest.mark.slow
def test_large_example_photos_take_the_reduced_cut(plain_results):
    """At 1200 px and more the backdrop cut runs reduced (1/2 to 1/3) with the edge placed at full size;
    an outline that had to be completed (the white candle) is cut at full size."""
    reasons = {n: cut.reason for n, (case, cut) in plain_results.items() if n.startswith("ACM-")}
    reduced = [n for n, r in reasons.items() if "size, edge placed at full size" in r]
    assert len(reduced) >= 18, reasons
    assert "ACM-CDL-018" not in reduced


def _enlarged(case, factor: int = 2) -> tuple[Image.Image, np.ndarray]:
    """The photo enlarged (Lanczos) and saved as a JPEG again: soft 2-3 px edges at 1280-1920 px, as an
    upscaled or slightly soft product photo has; with its mask enlarged to match."""
    import io

    rgb = decode_image(case.data, max_pixels=10**8).convert("RGB")
    big = rgb.resize((rgb.width * factor, rgb.height * factor), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    truth = Image.fromarray(case.truth.astype(np.uint8) * 255).resize(big.size, Image.Resampling.NEAREST)
    return decode_image(buf.getvalue(), max_pixels=10**8), np.asarray(truth) >= 128


def _recompressed(case, quality: int = 50) -> tuple[Image.Image, np.ndarray]:
    """The photo saved again as a JPEG at ``quality``: a heavily compressed export, blocky soft edges."""
    import io

    buf = io.BytesIO()
    decode_image(case.data, max_pixels=10**8).convert("RGB").save(buf, "JPEG", quality=quality)
    return decode_image(buf.getvalue(), max_pixels=10**8), case.truth


@pytest.mark.parametrize("name, made", [("glossy-jar-grey", _enlarged), ("glass-jar-grey", _enlarged),
                                        ("ACM-PLT-011", _recompressed)])
def test_a_soft_edge_in_the_papers_hue_keeps_the_product(mask_set, name, made):
    """A light-grey jar, a shade darker than the paper in its hue, with soft edges (enlarged 2x), and the
    white plate saved again at JPEG quality 50: behind their edges they look like floor shadow. The reduced
    cut must not flood past the edge's wall into them (before the flood was held at walls: 366, 664 and
    1807 product pixels lost; then 3, 9 and 0; the glass jar 15 since the paper-coloured rim is cleared: its
    outermost ring looks like the paper itself, and a paper-coloured ring is what the rim step removes)."""
    im, truth = made(_case(mask_set, name))
    cut = cut_out(im, Cutout())
    assert cut.confident and "size, edge placed at full size" in cut.reason, cut.reason
    s = score(cut.rgba[..., 3], truth)
    assert s["lost_px"] <= 16 and s["iou"] >= 0.99, s


def test_one_photo_that_breaks_a_step_fails_alone_in_its_chunk(mask_set):
    """Any error while routing or cutting one photo fails that photo alone, with a one-line reason."""
    good = decode_image(_case(mask_set, "ACM-MUG-001").data, max_pixels=10**8)
    clear = Image.new("RGBA", (64, 64), (255, 255, 255, 0))  # transparent, nothing visible
    odd = Image.new("LA", (64, 64))  # a mode no step expects (decode never gives it: a bug upstream)
    res = cut_out_many([clear, good, odd, good], [Cutout()] * 4)
    assert isinstance(res[0], ItemError) and "no visible pixels" in str(res[0])
    assert isinstance(res[2], ItemError) and "cut-out failed in routing: ValueError" in str(res[2])
    assert "\n" not in str(res[2])
    assert [r.method for r in (res[1], res[3])] == ["backdrop", "backdrop"]


class _BreaksOnOnePhoto(OnnxSegmenter):
    """The real tiny ONNX model, except that a batch holding a photo of exactly 65 px wide fails."""

    def __init__(self, base: OnnxSegmenter):
        self.__dict__.update(base.__dict__)
        self.batches: list[int] = []

    def predict(self, rgbs):
        self.batches.append(len(rgbs))
        if any(a.shape[1] == 65 for a in rgbs):
            raise SegmentationError("model returned NaN or infinite values")
        return super().predict(rgbs)


def test_a_photo_that_breaks_the_model_batch_fails_alone(models, mask_set):
    base = get_segmenter(SegmentationModel(path=models["onnx"], batch_size=4))
    seg = _BreaksOnOnePhoto(base)
    room = decode_image(_case(mask_set, "room-mug-teal").data, max_pixels=10**8)
    bad = Image.fromarray(np.full((80, 65, 3), 128, np.uint8))
    p = Cutout(model=base.cfg, method="model")
    res = cut_out_many([room, bad, room], [p] * 3, lambda _: seg)
    assert seg.batches == [3, 1, 1, 1]  # the batch, then each photo alone
    assert isinstance(res[1], ItemError) and "segmentation model failed" in str(res[1])
    assert [r.method for r in (res[0], res[2])] == ["model", "model"]
