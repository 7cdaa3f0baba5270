"""The studio path against the bare-Pillow floor, in CPU time per output image, stage by stage.

    python bench/bench_floor.py                  # the bundled example catalog (24 products, 72 images)
    python bench/bench_floor.py --products 200   # 200 generated products (1200-1600 px studio photos)

**Studio**: the real path - ``generate_chunk`` then ``check_chunk`` over a local output root, as a run calls
them - with CPU timers wrapped around its stages (``decode_image``, ``cut_out_many``, the studio engine's
``render``, ``encode``, the one decode of the encoded bytes ``decode_output``, the cut's fidelity and diagnostics
``construction_metrics``, the quality metrics ``measure`` and the gate's ``check_output``); "other" is the
rest (reading, fingerprints, hashing, staging writes).

**Floor**: the same products and channels with the fewest Pillow calls that make the same picture - decode
the source once, crop it and put the cut's alpha on it, one Lanczos resize per channel, one paste onto a
background of the channel's colour, one JPEG encode at the channel's settings (quality, 4:4:4, the sRGB
profile). The floor is given the cut-out's mask for free: it has no cut-out, no shadow, no quality gate.

Both sides run in this process, one after the other, on the same decoded bytes, single-threaded; CPU time
is ``time.process_time``. Prints CPU-ms per output image per stage, the totals and studio / floor, with the
machine and its load average.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from PIL import Image  # noqa: E402 - after the path set-up above

import lightbox.engines.studio as studio  # noqa: E402
import lightbox.generate as generate  # noqa: E402
import lightbox.quality as quality  # noqa: E402
from lightbox.catalog.ingest import read_catalog, to_products  # noqa: E402
from lightbox.catalog.validate import validate_catalog  # noqa: E402
from lightbox.engines import build_engines  # noqa: E402
from lightbox.fetch_policy import FetchPolicy  # noqa: E402
from lightbox.imaging.compose import layout  # noqa: E402
from lightbox.imaging.decode import SRGB_ICC  # noqa: E402
from lightbox.plan import plan_run  # noqa: E402
from lightbox.records import RunContext  # noqa: E402
from lightbox.specs import load_brand_spec, spec_channels  # noqa: E402
from lightbox.specs.models import resolve_look  # noqa: E402
from lightbox.storage import Store  # noqa: E402

STAGES = ("decode", "cut-out", "compose", "encode", "quality: decode", "quality: fidelity", "quality: measure",
          "quality: gate", "other")


class Timers:
    """CPU time per stage, by wrapping module functions (restored by :meth:`restore`)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = defaultdict(float)
        self._saved: list[tuple[object, str, object]] = []
        self.cuts: list[object] = []

    def wrap(self, module: object, name: str, stage: str, keep_cuts: bool = False) -> None:
        fn = getattr(module, name, None)
        if fn is None:  # an older tree without this stage (the bench also times earlier commits)
            return

        def timed(*args, **kwargs):
            t = time.process_time()
            try:
                result = fn(*args, **kwargs)
            finally:
                self.cpu[stage] += time.process_time() - t
            if keep_cuts:
                self.cuts.extend(result)
            return result

        self._saved.append((module, name, fn))
        setattr(module, name, timed)

    def restore(self) -> None:
        for module, name, fn in reversed(self._saved):
            setattr(module, name, fn)


def studio_side(catalog: str, spec, chunk_size: int) -> tuple[int, dict[str, float], list, list]:
    channels = spec_channels(spec)
    out = tempfile.mkdtemp(prefix="lightbox-floor-")
    store = Store(out)
    plan = plan_run(to_products(validate_catalog(read_catalog(catalog), spec).valid), spec, {}, chunk_size)
    ctx = RunContext(run_id="floor", brand_uri="bench", out_uri=out, fetch=FetchPolicy().for_catalog(catalog))
    engines = build_engines(spec, None)
    timers = Timers()
    timers.wrap(generate, "decode_image", "decode")
    timers.wrap(generate, "cut_out_many", "cut-out", keep_cuts=True)
    timers.wrap(studio, "render", "compose")
    timers.wrap(generate, "encode", "encode")
    timers.wrap(generate, "decode_output", "quality: decode")
    timers.wrap(generate, "construction_metrics", "quality: fidelity")
    timers.wrap(generate, "measure", "quality: measure")
    timers.wrap(quality, "check_output", "quality: gate")
    outputs = []
    try:
        t = time.process_time()
        for chunk in plan.chunks:
            outputs += quality.check_chunk(generate.generate_chunk(chunk, spec, channels, ctx, store, engines), spec, channels, store)
        total = time.process_time() - t
    finally:
        timers.restore()
    rendered = [o for o in outputs if o.made]
    timers.cpu["other"] = total - sum(timers.cpu[s] for s in STAGES if s != "other")
    products = [item.product for chunk in plan.chunks for item in chunk.items]
    return len(rendered), dict(timers.cpu), products, timers.cuts


def floor_side(products: list, cuts: list, spec, catalog: str) -> tuple[int, dict[str, float]]:
    """The bare-Pillow pipeline over the products the studio side cut (same cuts, same placements)."""
    from lightbox.errors import ItemError
    from lightbox.fetch import SourceFetcher

    channels = spec_channels(spec)
    sources = SourceFetcher(FetchPolicy().for_catalog(catalog), run_id="floor")
    cpu: dict[str, float] = defaultdict(float)
    images = 0
    for product, cut in zip([p for p in products if p.images], cuts, strict=True):
        if isinstance(cut, ItemError):
            continue
        data = sources.read(product.images[0])
        x0, y0, x1, y1 = cut.bbox
        alpha = Image.fromarray(cut.rgba[y0:y1, x0:x1, 3])  # given: the floor does no cut-out
        looks = [resolve_look(spec, product.category, ch) for ch in channels]
        places = [layout(cut, look)[0] for look in looks]
        t = time.process_time()
        im = Image.open(io.BytesIO(data))
        im = im.convert("RGB")
        cpu["decode"] += time.process_time() - t
        t = time.process_time()
        product_rgba = im.crop((x0, y0, x1, y1))
        product_rgba.putalpha(alpha)
        cpu["compose"] += time.process_time() - t
        for look, p in zip(looks, places, strict=True):
            ch = look.channel
            colour = tuple(look.background.color) if hasattr(look.background, "color") else (255, 255, 255)
            t = time.process_time()
            small = product_rgba.resize((p.width, p.height), Image.Resampling.LANCZOS)
            canvas = Image.new("RGB", (ch.width, ch.height), colour)
            canvas.paste(small, (p.x, p.y), small)
            t2 = time.process_time()
            canvas.save(io.BytesIO(), "JPEG", quality=ch.quality, subsampling=0, icc_profile=SRGB_ICC)
            cpu["compose"] += t2 - t
            cpu["encode"] += time.process_time() - t2
            images += 1
    return images, dict(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--products", type=int, default=0, help="generated products instead of the example catalog")
    ap.add_argument("--brand", default=str(REPO / "brand_specs" / "acme-home.yaml"))
    ap.add_argument("--chunk-size", type=int, default=8)
    args = ap.parse_args()
    if args.products:
        from bench_flow import make_catalog

        catalog = str(make_catalog(Path(tempfile.mkdtemp(prefix="lightbox-floor-cat-")), args.products))
        what = f"{args.products} generated products"
    else:
        catalog = str(REPO / "examples" / "acme-home" / "catalog.csv")
        what = "the example catalog"
    spec = load_brand_spec(args.brand)
    load = os.getloadavg()
    n_studio, studio_cpu, products, cuts = studio_side(catalog, spec, args.chunk_size)
    n_floor, floor_cpu = floor_side(products, cuts, spec, catalog)
    print(f"{platform.node()} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores), load average "
          f"{load[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end; {what}, spec {spec.name}: "
          f"{n_studio} studio images, {n_floor} floor images")
    print(f"{'CPU-ms per output image':26} {'studio':>9} {'floor':>9}")
    for stage in STAGES:
        s = 1000 * studio_cpu.get(stage, 0.0) / max(n_studio, 1)
        f = 1000 * floor_cpu.get(stage, 0.0) / max(n_floor, 1)
        print(f"{stage:26} {s:9.1f} {f:9.1f}")
    s_total = 1000 * sum(studio_cpu.values()) / max(n_studio, 1)
    f_total = 1000 * sum(floor_cpu.values()) / max(n_floor, 1)
    print(f"{'total':26} {s_total:9.1f} {f_total:9.1f}")
    print(f"studio / floor: {s_total / f_total:.2f}x (CPU time per output image, measured side by side in one run)")


if __name__ == "__main__":
    main()
