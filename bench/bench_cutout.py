"""The cut-out against ground truth, per method and class: a set of real photographs with human-made masks
(``--set DIR``, the layout of ``../shared/realmasks``: INDEX.csv with file, mask, backdrop, object), or the
synthetic labelled set (lightbox.testing.cutout_set) when no set is given.

    python bench/bench_cutout.py --set ../shared/realmasks          # real photos: auto, model, bare model call
    python bench/bench_cutout.py --set DIR --per-photo               # and one line per photo
    python bench/bench_cutout.py --set DIR --perturb                 # each photo mirrored, scaled, recompressed, cropped
    python bench/bench_cutout.py                                      # the synthetic set: backdrop and auto

Real set, per class (plain, scene) and method:

- **coverage**: share of photos published (cut and confident);
- **precision**: share of published cuts that are right (IoU >= 0.9 and <= 1 % of the product lost outside a
  2 px band);
- **mean IoU** of all cuts (confident or not);
- **recall**: share of the right cuts that were published; **false passes**: wrong cuts published;
- **CPU ms** per photo (mean), and for the model path its ratio to the bare model call (one inference, the
  mask resized to the photo, the alpha applied: what rembg does), measured side by side photo by photo.

Methods: ``auto`` (the default install: alpha, backdrop where sure, else the bundled U2-Netp with its
confidence), ``model`` (the model forced on every photo), ``bare`` (the bare model call; every cut counted as
published, so its precision is the model's own). ``LIGHTBOX_SEGMENTATION_MODEL`` names another model (a
local directory or .onnx file) instead of the bundled one.

Synthetic set: photos; how many the method cut with confidence, routed (unsure) and refused; over the
confident cuts: mean and worst IoU, boundary F at 2 px, the worst share of product lost, the largest speck
kept, CPU ms per megapixel.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lightbox.errors import ItemError  # noqa: E402 - after the path set-up above
from lightbox.imaging.cutout import cut_out  # noqa: E402
from lightbox.imaging.decode import decode_image  # noqa: E402
from lightbox.specs.models import Cutout, SegmentationModel  # noqa: E402
from lightbox.testing.cutout_set import build_cases, score  # noqa: E402
from lightbox.testing.photo_set import judge, read_set  # noqa: E402


def _speck(alpha: np.ndarray, truth: np.ndarray) -> int:
    added = (alpha >= 128) & ~ndimage.binary_dilation(truth, iterations=3)
    labels, n = ndimage.label(added)
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def run(method: str, cases, segmenter=None, model_cfg: SegmentationModel | None = None) -> dict[str, list[dict]]:
    params = {"backdrop": Cutout(method="backdrop"), "auto": Cutout(model=None), "default": Cutout(),
              "model": Cutout(method="model", model=model_cfg) if model_cfg else None}[method]
    rows: dict[str, list[dict]] = {}
    for case in cases:
        im = decode_image(case.data, max_pixels=10**8)
        t = time.process_time()
        try:
            cut = cut_out(im, params, segmenter)
            outcome = "cut" if cut.confident else "routed"
        except ItemError:
            cut, outcome = None, "refused"
        ms = (time.process_time() - t) * 1000
        row = {"outcome": outcome, "ms_per_mp": ms / (im.width * im.height / 1e6), "cut_by": cut.method if cut else "-"}
        if cut is not None and outcome == "cut":
            row |= score(cut.rgba[..., 3], case.truth) | {"speck": _speck(cut.rgba[..., 3], case.truth)}
        rows.setdefault(case.cls, []).append(row)
    return rows


def report(method: str, rows: dict[str, list[dict]]) -> None:
    print(f"\n{method}")
    head = f"{'class':<15}{'n':>3}{'cut':>5}{'rout':>5}{'ref':>5}{'IoU mean':>10}{'IoU min':>9}{'BF@2':>7}{'lost max':>10}{'lost px':>9}{'speck px':>9}{'ms/MP':>8}"
    print(head)
    total = {"n": 0, "cut": 0, "routed": 0, "refused": 0}
    for cls, rs in rows.items():
        cut = [r for r in rs if r["outcome"] == "cut"]
        counts = {k: sum(r["outcome"] == k for r in rs) for k in ("cut", "routed", "refused")}
        for k in counts:
            total[k] += counts[k]
        total["n"] += len(rs)
        ms = float(np.median([r["ms_per_mp"] for r in rs]))
        if cut:
            print(f"{cls:<15}{len(rs):>3}{counts['cut']:>5}{counts['routed']:>5}{counts['refused']:>5}"
                  f"{np.mean([r['iou'] for r in cut]):>10.4f}{min(r['iou'] for r in cut):>9.4f}{np.mean([r['bf'] for r in cut]):>7.3f}"
                  f"{max(r['lost'] for r in cut):>10.5f}{max(r['lost_px'] for r in cut):>9d}{max(r['speck'] for r in cut):>9d}{ms:>8.0f}")
        else:
            print(f"{cls:<15}{len(rs):>3}{counts['cut']:>5}{counts['routed']:>5}{counts['refused']:>5}{'-':>10}{'-':>9}{'-':>7}{'-':>10}{'-':>9}{'-':>9}{ms:>8.0f}")
    print(f"{'all':<15}{total['n']:>3}{total['cut']:>5}{total['routed']:>5}{total['refused']:>5}")


def _model_cfg() -> SegmentationModel:
    path = os.environ.get("LIGHTBOX_SEGMENTATION_MODEL")
    return SegmentationModel(path=path, revision=os.environ.get("LIGHTBOX_SEGMENTATION_REVISION")) if path else Cutout().model


def bare_call(seg, rgb: np.ndarray) -> np.ndarray:
    """What rembg does: one inference, the mask resized to the photo, the alpha applied. Returns the alpha."""
    from PIL import Image

    pred = seg.predict([rgb])[0]
    alpha = np.rint(np.clip(pred.soft, 0.0, 1.0) * 255).astype(np.uint8)
    im = Image.fromarray(rgb)
    im.putalpha(Image.fromarray(alpha))
    return np.asarray(im)[..., 3]


def run_set(root: Path, per_photo: bool) -> None:
    from lightbox.imaging.segmentation import get_segmenter

    photos = read_set(root)
    cfg = _model_cfg()
    seg = get_segmenter(cfg)
    methods = {"auto": Cutout(model=cfg), "model": Cutout(method="model", model=cfg)}
    seg.predict([np.zeros((64, 64, 3), np.uint8)])  # warm the session up outside the timings
    rows: list[dict] = []
    for p in photos:
        im = decode_image(p.path.read_bytes(), max_pixels=10**8)  # once: the bare call and both methods read it
        rgb = np.asarray(im.convert("RGB"))
        t = time.process_time()
        alpha = bare_call(seg, rgb)
        bare_ms = (time.process_time() - t) * 1000
        rows.append({"photo": p, "method": "bare", "ms": bare_ms, "published": True, "why": "-"} | judge(alpha, p))
        for name, params in methods.items():
            t = time.process_time()
            try:
                cut = cut_out(im, params, seg)
            except ItemError as e:
                cut, why = None, str(e)
            ms = (time.process_time() - t) * 1000
            row = {"photo": p, "method": name, "ms": ms, "bare_ms": bare_ms}
            if cut is None:
                row |= {"published": False, "iou": 0.0, "lost": 1.0, "right": False, "why": why, "by": "-", "conf": 0.0}
            else:
                row |= judge(cut.rgba[..., 3], p) | {"published": cut.confident, "why": cut.reason, "by": cut.method,
                                                     "conf": cut.diagnostics.get("cutout_confidence", 1.0)}
            rows.append(row)
    load = os.getloadavg()
    print(f"cut-out bench on {root} ({len(photos)} photos): model {seg.name} on {seg.runtime.device}; "
          f"{platform.machine()}, {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("right = IoU >= 0.9 and <= 1 % of the product lost outside a 2 px band; published = cut and confident\n")
    head = (f"{'method':<7}{'class':<7}{'n':>4}{'right':>6}{'publ':>6}{'coverage':>9}{'precision':>10}{'recall':>8}"
            f"{'false':>7}{'IoU':>7}{'CPU ms':>8}{'x bare':>8}")
    print(head)
    for method in ("auto", "model", "bare"):
        for cls in ("plain", "scene", "all"):
            rs = [r for r in rows if r["method"] == method and (cls == "all" or r["photo"].cls == cls)]
            if not rs:
                continue
            pub = [r for r in rs if r["published"]]
            right = [r for r in rs if r["right"]]
            wrong_pub = sum(not r["right"] for r in pub)
            ms = float(np.mean([r["ms"] for r in rs]))
            ratio = ms / float(np.mean([r["bare_ms"] for r in rs])) if method != "bare" else 1.0
            precision = f"{sum(r['right'] for r in pub) / len(pub):.2f}" if pub else "-"
            recall = f"{sum(r['published'] for r in right) / len(right):.2f}" if right else "-"
            print(f"{method:<7}{cls:<7}{len(rs):>4}{len(right):>6}{len(pub):>6}{len(pub) / len(rs):>9.2f}{precision:>10}{recall:>8}"
                  f"{wrong_pub:>7}{np.mean([r['iou'] for r in rs]):>7.3f}{ms:>8.0f}{ratio:>8.2f}")
    print("\nper source (auto): " + ", ".join(
        f"{src} {sum(r['published'] for r in rs)}/{len(rs)} published, {sum(r['published'] and not r['right'] for r in rs)} wrong"
        for src in sorted({r["photo"].source for r in rows})
        for rs in [[r for r in rows if r["method"] == "auto" and r["photo"].source == src]]))
    if per_photo:
        print(f"\n{'photo':<40}{'class':<7}{'by':<9}{'IoU':>6}{'lost':>7}{'right':>6}{'conf':>6}{'publ':>5}  why")
        for r in rows:
            if r["method"] == "auto":
                print(f"{r['photo'].name[:39]:<40}{r['photo'].cls:<7}{r['by']:<9}{r['iou']:>6.2f}{r['lost']:>7.3f}{int(r['right']):>6}"
                      f"{r['conf']:>6.2f}{int(r['published']):>5}  {r['why'][:120]}")


def _perturbations():
    """Photo changes a seller's copy of a photo may have (mirrored, smaller, recompressed, cropped tighter), each
    with the same change applied to the mask: the confidence should not flip a wrong cut to published."""
    import io

    from PIL import Image

    def resize(im: Image.Image, f: float, resample) -> Image.Image:
        return im.resize((max(1, round(im.width * f)), max(1, round(im.height * f))), resample)

    def crop(im: Image.Image, f: float = 0.04) -> Image.Image:
        dx, dy = round(im.width * f), round(im.height * f)
        return im.crop((dx, dy, im.width - dx, im.height - dy))

    def jpeg(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=70)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    near = Image.Resampling.NEAREST
    return {
        "flip": (lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), lambda m: m.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "scale 0.7": (lambda im: resize(im, 0.7, Image.Resampling.LANCZOS), lambda m: resize(m, 0.7, near)),
        "jpeg q70": (jpeg, lambda m: m),
        "crop 4%": (crop, crop),
    }


def run_perturbed(root: Path) -> None:
    """``--perturb``: the auto method on every photo of the set as it is and under each perturbation."""
    from PIL import Image

    from lightbox.imaging.segmentation import get_segmenter
    from lightbox.testing.cutout_set import score
    from lightbox.testing.photo_set import RIGHT_IOU, RIGHT_LOST

    photos = read_set(root)
    cfg = _model_cfg()
    seg = get_segmenter(cfg)
    params = Cutout(model=cfg)
    changes = {"as is": (lambda im: im, lambda m: m), **_perturbations()}
    rows = []
    for p in photos:
        im0 = decode_image(p.path.read_bytes(), max_pixels=10**8).convert("RGB")
        mask0 = Image.open(p.mask_path).convert("L")
        for name, (photo_fn, mask_fn) in changes.items():
            im, m = photo_fn(im0), np.asarray(mask_fn(mask0))
            truth, valid = m >= 128, (m != 128) if p.unknown_band else None
            try:
                cut = cut_out(im, params, seg)
                sc = score(cut.rgba[..., 3], truth, valid=valid)
                published, conf = cut.confident, cut.diagnostics.get("cutout_confidence", 1.0)
            except ItemError:
                sc, published, conf = {"iou": 0.0, "lost": 1.0}, False, 0.0
            right = sc["iou"] >= RIGHT_IOU and sc["lost"] <= RIGHT_LOST
            rows.append({"photo": p, "change": name, "published": published, "right": right, "iou": sc["iou"], "lost": sc["lost"],
                         "conf": conf})
    load = os.getloadavg()
    print(f"cut-out under perturbations, {root} ({len(photos)} photos), auto with {seg.name}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    print(f"{'change':<11}{'class':<7}{'n':>4}{'right':>6}{'publ':>6}{'recall':>8}{'wrong publ':>11}")
    for name in changes:
        for cls in ("plain", "scene"):
            rs = [r for r in rows if r["change"] == name and r["photo"].cls == cls]
            right = [r for r in rs if r["right"]]
            recall = f"{sum(r['published'] for r in right) / len(right):.2f}" if right else "-"
            print(f"{name:<11}{cls:<7}{len(rs):>4}{len(right):>6}{sum(r['published'] for r in rs):>6}{recall:>8}"
                  f"{sum(r['published'] and not r['right'] for r in rs):>11}")
    wrong = [r for r in rows if r["published"] and not r["right"]]
    for r in wrong:
        print(f"wrong published: {r['photo'].name} ({r['change']}): IoU {r['iou']:.3f}, lost {r['lost']:.3f}, confidence {r['conf']:.2f}")
    flips = {r["photo"].name for r in rows if r["right"] and r["published"]} & {r["photo"].name for r in rows if r["right"] and not r["published"]}
    print(f"photos whose right cut is published under some changes and not others: {len(flips)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", type=Path, help="a folder with INDEX.csv (file, mask, backdrop, object) and the photos and masks it names")
    ap.add_argument("--per-photo", action="store_true", help="print one line per photo (the auto method)")
    ap.add_argument("--perturb", action="store_true", help="with --set: the auto method on each photo as it is, "
                    "mirrored, scaled to 0.7, recompressed (JPEG 70) and cropped 4 %%, each judged against its mask")
    args = ap.parse_args()
    if args.set and args.perturb:
        run_perturbed(args.set)
        return
    if args.set:
        run_set(args.set, args.per_photo)
        return
    cases = build_cases()
    load = os.getloadavg()
    print(f"cut-out bench: {len(cases)} photos, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; CPU ms per megapixel (median per class)")
    report("backdrop (forced; photos failing the plain-backdrop test are refused)", run("backdrop", cases))
    report("auto (no model: alpha, backdrop, or refused / routed to review)", run("auto", cases))
    from lightbox.imaging.segmentation import get_segmenter

    report("auto with the bundled U2-Netp (the default install; rout = unsure, to review)", run("default", cases, get_segmenter(Cutout().model)))
    path = os.environ.get("LIGHTBOX_SEGMENTATION_MODEL")
    if path:
        cfg = SegmentationModel(path=path, revision=os.environ.get("LIGHTBOX_SEGMENTATION_REVISION"))
        seg = get_segmenter(cfg)
        report(f"model ({seg.name} on {seg.runtime.device}/{seg.runtime.dtype}, input {seg.input_size} px)", run("model", cases, seg, cfg))
    else:
        print("\nmodel: not measured (set LIGHTBOX_SEGMENTATION_MODEL to a local BiRefNet directory or .onnx file)")


if __name__ == "__main__":
    main()
