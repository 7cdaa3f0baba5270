"""The cut-out against ground truth: the labelled mask set (lightbox.testing.cutout_set), per method and class.

    python bench/bench_cutout.py                     # backdrop and auto; the model too when one is named
    LIGHTBOX_SEGMENTATION_MODEL=/models/birefnet python bench/bench_cutout.py

Per method and class it prints: photos; how many the method cut with confidence, how many it routed
(unsure: to the model or review) and refused; over the confident cuts: mean and worst IoU (alpha >= 128),
mean boundary F-measure at 2 px, the worst share of true product pixels lost outside a 2 px edge band
(and their count), the largest speck of backdrop kept more than 3 px outside the product; and CPU ms per
megapixel of the photo. Methods:

- ``backdrop``: the backdrop method forced on every photo that passes the plain-backdrop test (photos that
  fail it are counted as refused, as the method refuses them);
- ``auto``: the default routing with no model: alpha, backdrop, or refused;
- ``model``: ``LIGHTBOX_SEGMENTATION_MODEL`` (a local directory or .onnx file) on every photo, when set.
"""

from __future__ import annotations

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


def _speck(alpha: np.ndarray, truth: np.ndarray) -> int:
    added = (alpha >= 128) & ~ndimage.binary_dilation(truth, iterations=3)
    labels, n = ndimage.label(added)
    return int(np.bincount(labels.ravel())[1:].max()) if n else 0


def run(method: str, cases, segmenter=None, model_cfg: SegmentationModel | None = None) -> dict[str, list[dict]]:
    params = {"backdrop": Cutout(method="backdrop"), "auto": Cutout(), "model": Cutout(method="model", model=model_cfg)
              if model_cfg else None}[method]
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


def main() -> None:
    cases = build_cases()
    load = os.getloadavg()
    print(f"cut-out bench: {len(cases)} photos, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; CPU ms per megapixel (median per class)")
    report("backdrop (forced; photos failing the plain-backdrop test are refused)", run("backdrop", cases))
    report("auto (no model: alpha, backdrop, or refused / routed to review)", run("auto", cases))
    path = os.environ.get("LIGHTBOX_SEGMENTATION_MODEL")
    if path:
        from lightbox.imaging.segmentation import get_segmenter

        cfg = SegmentationModel(path=path, revision=os.environ.get("LIGHTBOX_SEGMENTATION_REVISION"))
        seg = get_segmenter(cfg)
        report(f"model ({seg.name} on {seg.runtime.device}/{seg.runtime.dtype}, input {seg.input_size} px)", run("model", cases, seg, cfg))
    else:
        print("\nmodel: not measured (set LIGHTBOX_SEGMENTATION_MODEL to a local BiRefNet directory or .onnx file)")


if __name__ == "__main__":
    main()
