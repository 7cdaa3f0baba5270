"""AI generation benchmark: the diffusers engine on a chunk against a bare diffusers loop over the
same prompts, seeds, init images and masks, at several batch sizes, side by side in one process.

    python bench/bench_generation.py [--model DIR] [--jobs 16] [--steps 8] [--resolution 128] [--batches 1,4,8]

Without --model it builds the tiny random test pipeline (lightbox.testing.tiny_diffusion), so it runs
offline on a CPU; its absolute speed says nothing about real models, the ratio says how much the
engine adds around the model. "engine, generate" is the engine's batched model calls (input
preparation included); "engine, full" adds compositing the product back at the channel's full size
(2048 x 2048) - CPU work a GPU deployment does beside the model. Peak memory: CUDA's peak allocation
on a GPU, else the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--batches", default="1,4,8")
    args = ap.parse_args()

    import numpy as np
    import torch

    from lightbox.engines.diffusion import DiffusersEngine, working_size
    from lightbox.engines.jobs import RenderJob
    from lightbox.generate import fill_template
    from lightbox.imaging.cutout import cut_out
    from lightbox.records import Product
    from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
    from lightbox.specs.models import Diffusion
    from lightbox.testing.tiny_diffusion import build

    model = args.model or str(build(Path(tempfile.mkdtemp(prefix="lightbox-bench-model-")) / "tiny-sd-inpaint"))
    sys.path.insert(0, str(REPO / "examples"))
    from make_examples import product_photo

    base_spec = load_brand_spec(str(REPO / "brand_specs" / "acme-home-ai.yaml"))
    channel = load_channel_presets()["shopify_square"]
    rng = np.random.default_rng(0)
    cuts, products = [], []
    for i in range(args.jobs):
        photo = product_photo(["mug", "bottle", "vase", "lamp"][i % 4], "teal", (800, 1000), rng, transparent=False)
        cuts.append(cut_out(photo, base_spec.cutout))
        products.append(Product(row=i + 1, sku=f"B-{i}", title="Mug", category="kitchen",
                                attributes={"color": "teal", "material": "stoneware"}))

    def engine_for(bs: int) -> tuple[DiffusersEngine, list[RenderJob]]:
        cfg = Diffusion(model=model, steps=args.steps, resolution=args.resolution, batch_size=bs, guidance=6.0)
        spec = base_spec.model_copy(update={"diffusion": cfg})
        look = resolve_look(spec, "kitchen", channel)
        jobs = [RenderJob(product=p, look=look, variant=0, seed=1000 + i, cut=c, prompt=fill_template(look.generation.prompt, p),
                          negative_prompt="text, watermark") for i, (p, c) in enumerate(zip(products, cuts, strict=True))]
        return DiffusersEngine(cfg), jobs

    engine, jobs = engine_for(1)
    rt = engine.runtime
    pipe = engine.pipeline("inpaint")
    inputs = [engine._inputs(j)[:2] for j in jobs]  # the same init images and masks for the bare loop
    ww, wh = working_size(channel.width, channel.height, args.resolution)
    engine.render(jobs[:1])  # warm-up: first call pays one-off costs on both sides

    def peak() -> str:
        if rt.device == "cuda":
            return f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB (CUDA)"
        return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (RSS)"

    def bare(bs: int) -> float:
        t = time.perf_counter()
        for s in range(0, len(jobs), bs):
            batch = jobs[s : s + bs]
            pipe(prompt=[j.prompt for j in batch], negative_prompt=[j.negative_prompt for j in batch],
                 image=[inputs[s + k][0] for k in range(len(batch))], mask_image=[inputs[s + k][1] for k in range(len(batch))],
                 height=wh, width=ww, num_inference_steps=args.steps, guidance_scale=6.0, strength=1.0,
                 generator=[torch.Generator("cpu").manual_seed(j.seed) for j in batch], output_type="np")
        return time.perf_counter() - t

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; device {rt.device}/{rt.dtype}; torch {torch.__version__}")
    print(f"model: {'tiny random test pipeline' if not args.model else model}; {args.jobs} jobs, {args.steps} steps, "
          f"{ww}x{wh} working size, channel {channel.name} {channel.width}x{channel.height}")
    print(f"{'batch':>5} | {'bare img/s':>10} | {'engine gen img/s':>16} | {'ratio gen':>9} | {'engine full img/s':>17} | {'ratio full':>10} | peak memory")
    for bs in [int(b) for b in args.batches.split(",")]:
        engine, jobs_b = engine_for(bs)
        engine._pipelines["inpaint"] = pipe
        t_bare = bare(bs)
        t = time.perf_counter()
        for s in range(0, len(jobs_b), bs):
            engine._generate(jobs_b[s : s + bs])
        t_gen = time.perf_counter() - t
        t = time.perf_counter()
        results = engine.render(jobs_b)
        t_full = time.perf_counter() - t
        assert all(r.error is None for r in results)
        n = len(jobs_b)
        print(f"{bs:>5} | {n / t_bare:>10.2f} | {n / t_gen:>16.2f} | {t_bare / t_gen:>9.2f} | {n / t_full:>17.2f} | "
              f"{t_bare / t_full:>10.2f} | {peak()}")


if __name__ == "__main__":
    main()
