"""The diffusers engine on a tiny random pipeline built and saved by the test, loaded through the
same code path as a real model (from_pretrained on a save_pretrained directory)."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lightbox.engines.diffusion import DiffusersEngine, ModelLoadError, Runtime, get_pipeline, resolve_runtime
from lightbox.engines.jobs import RenderJob
from lightbox.errors import ItemError
from lightbox.generate import fill_template
from lightbox.imaging.compose import encode, layout, resample_product
from lightbox.testing.oracles import digital_source_type
from lightbox.imaging.cutout import cut_out
from lightbox.state import RunState
from lightbox.pipeline import run_plain
from lightbox.records import Product
from lightbox.specs import load_brand_spec, load_channel_presets, resolve_look
from lightbox.specs.models import Diffusion
from lightbox.storage import Store
from tests.conftest import REPO
from tests.support.images import studio_photo
from tests.support.helpers import make_catalog

CPU = Runtime(device="cpu", dtype="float32")


def _cfg(tiny_models, **kw) -> Diffusion:
    inpaint, txt2img = tiny_models
    base = dict(model=str(inpaint), text_to_image_model=str(txt2img), steps=3, resolution=64, batch_size=4, device="cpu")
    return Diffusion(**{**base, **kw})


def _jobs(spec, n=3, channel="shopify_square", seeds=None):
    look = resolve_look(spec, "kitchen", load_channel_presets()[channel])
    jobs = []
    for i in range(n):
        im, _ = studio_photo(240, 320, seed=i)
        p = Product(row=i + 1, sku=f"AI-{i}", title="Mug", category="kitchen", attributes={"color": "red", "material": "stoneware"})
        jobs.append(RenderJob(product=p, look=look, variant=0, seed=(seeds or [11, 22, 33])[i], cut=cut_out(im, spec.cutout),
                              prompt=fill_template(look.generation.prompt, p), negative_prompt="text"))
    return jobs


@pytest.fixture(scope="module")
def ai_spec(ai_spec_path):
    return load_brand_spec(str(ai_spec_path))


def test_loads_through_the_real_loader(tiny_models):
    cfg = _cfg(tiny_models)
    pipe = get_pipeline(cfg, "inpaint", CPU)
    assert type(pipe).__name__ == "StableDiffusionInpaintPipeline"
    assert get_pipeline(cfg, "inpaint", CPU) is pipe  # loaded once per process, reused
    assert type(get_pipeline(cfg, "text2img", CPU)).__name__ == "StableDiffusionPipeline"


def test_output_sizes_per_channel(tiny_models, ai_spec):
    engine = DiffusersEngine(_cfg(tiny_models), runtime=CPU)
    for channel, size in (("shopify_square", (2048, 2048)), ("google_merchant", (1600, 1600))):
        (res,) = engine.render(_jobs(ai_spec, 1, channel))
        assert res.error is None and res.image.size == size and res.image.mode == "RGB"
        assert res.generation["mode"] == "background-inpainting" and res.generation["scheduler"] == "PNDMScheduler"


def test_same_seed_gives_identical_bytes(tiny_models, ai_spec):
    ch = load_channel_presets()["shopify_square"]
    a = DiffusersEngine(_cfg(tiny_models), runtime=CPU).render(_jobs(ai_spec, 1))[0]
    b = DiffusersEngine(_cfg(tiny_models), runtime=CPU).render(_jobs(ai_spec, 1))[0]
    c = DiffusersEngine(_cfg(tiny_models), runtime=CPU).render(_jobs(ai_spec, 1, seeds=[99]))[0]
    assert encode(a.image, ch, ai_generated=True) == encode(b.image, ch, ai_generated=True)
    assert not np.array_equal(np.asarray(a.image), np.asarray(c.image))


def test_batch_of_n_equals_n_singles(tiny_models, ai_spec):
    jobs = _jobs(ai_spec, 3)
    batched_raw = DiffusersEngine(_cfg(tiny_models, batch_size=3), runtime=CPU)._generate(jobs)
    single_raw = [DiffusersEngine(_cfg(tiny_models, batch_size=1), runtime=CPU)._generate([j])[0] for j in jobs]
    for b, s in zip(batched_raw, single_raw, strict=True):
        # the model's output: equal up to float32 rounding of batched vs single matmuls (~1e-6)
        assert np.abs(b - s).max() < 1e-4
    batched = DiffusersEngine(_cfg(tiny_models, batch_size=3), runtime=CPU).render(jobs)
    single = DiffusersEngine(_cfg(tiny_models, batch_size=1), runtime=CPU).render(jobs)
    for b, s in zip(batched, single, strict=True):
        diff = np.abs(np.asarray(b.image, np.int16) - np.asarray(s.image, np.int16))
        # after 8-bit rounding and a 16x Lanczos upscale, a few pixels on a rounding boundary move
        assert diff.max() <= 3 and (diff > 0).mean() < 0.001


def test_product_region_is_pixel_identical_to_the_studio_cutout(tiny_models, ai_spec):
    job = _jobs(ai_spec, 1)[0]
    res = DiffusersEngine(_cfg(tiny_models), runtime=CPU).render([job])[0]
    p, _ = layout(job.cut, job.look)
    expected = resample_product(job.cut.product, (p.width, p.height))
    region = np.asarray(res.image)[p.y : p.y + p.height, p.x : p.x + p.width]
    opaque = expected[..., 3] == 255
    assert opaque.mean() > 0.5 and np.array_equal(region[opaque], expected[..., :3][opaque])
    assert res.metrics["fill_longest"] == pytest.approx(0.80, abs=0.002)


class _Wrapped:
    """The real tiny pipeline behind a door that fails the way GPUs and bad weights do (no GPU here)."""

    def __init__(self, pipe, oom_above: int | None = None, nan: bool = False):
        self.pipe, self.oom_above, self.nan, self.calls = pipe, oom_above, nan, []
        self.scheduler = pipe.scheduler

    def __call__(self, **kw):
        import torch

        self.calls.append(len(kw["prompt"]))
        if self.oom_above is not None and len(kw["prompt"]) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        out = self.pipe(**kw)
        if self.nan:
            out.images[:] = np.nan
        return out


def test_out_of_memory_halves_the_batch_until_it_fits(tiny_models, ai_spec):
    cfg = _cfg(tiny_models, batch_size=4)
    wrapped = _Wrapped(get_pipeline(cfg, "inpaint", CPU), oom_above=1)
    results = DiffusersEngine(cfg, pipelines={"inpaint": wrapped}, runtime=CPU).render(_jobs(ai_spec, 3))
    assert wrapped.calls == [3, 1, 2, 1, 1] and all(r.error is None for r in results)
    single = DiffusersEngine(_cfg(tiny_models, batch_size=1), runtime=CPU).render(_jobs(ai_spec, 3))
    assert all(np.abs(np.asarray(a.image, np.int16) - np.asarray(b.image, np.int16)).max() <= 3 for a, b in zip(results, single, strict=True))


def test_out_of_memory_at_batch_size_one_fails_the_item(tiny_models, ai_spec):
    cfg = _cfg(tiny_models)
    wrapped = _Wrapped(get_pipeline(cfg, "inpaint", CPU), oom_above=0)
    results = DiffusersEngine(cfg, pipelines={"inpaint": wrapped}, runtime=CPU).render(_jobs(ai_spec, 2))
    assert [r.error for r in results] == ["accelerator out of memory at batch size 1 (cpu)"] * 2


def test_nan_output_is_flagged_not_published(tiny_models, ai_spec):
    cfg = _cfg(tiny_models)
    wrapped = _Wrapped(get_pipeline(cfg, "inpaint", CPU), nan=True)
    (res,) = DiffusersEngine(cfg, pipelines={"inpaint": wrapped}, runtime=CPU).render(_jobs(ai_spec, 1))
    assert res.image is None and "NaN" in res.error and "not published" in res.error


def test_text_to_image_without_a_photo(tiny_models, ai_spec):
    look = resolve_look(ai_spec, "kitchen", load_channel_presets()["google_merchant"])
    job = RenderJob(product=Product(row=1, sku="NOPHOTO", title="Mug", category="kitchen"), look=look, variant=0,
                    seed=5, cut=None, prompt="a red mug")
    (res,) = DiffusersEngine(_cfg(tiny_models), runtime=CPU).render([job])
    assert res.image.size == (1600, 1600) and res.generation["mode"] == "text-to-image"
    assert res.generation["model"].endswith("tiny-sd")


def test_prompt_naming_a_missing_attribute_fails_that_product():
    p = Product(row=7, sku="X-1", title="Mug", category="kitchen", attributes={"color": "red"})
    with pytest.raises(ItemError, match="needs attribute 'material', which product X-1 lacks"):
        fill_template("{title}, {color} {material}", p)


def test_unloadable_model_names_the_model_and_where_it_looked(tmp_path):
    cfg = Diffusion(model=str(tmp_path / "no-such-model"), device="cpu")
    with pytest.raises(ModelLoadError, match=r"no-such-model.*from Hugging Face Hub id \(cache "):
        get_pipeline(cfg, "inpaint", CPU)
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match=rf"from local directory {empty}"):
        get_pipeline(Diffusion(model=str(empty), device="cpu"), "inpaint", CPU)


def test_device_requirement(tiny_models):
    with pytest.raises(Exception, match="only a CPU is available"):
        resolve_runtime(_cfg(tiny_models, device="auto", require="accelerator"))
    assert resolve_runtime(_cfg(tiny_models, device="auto")) == CPU


@pytest.mark.slow
def test_ai_run_end_to_end_labels_ai_outputs_and_records_generation(ai_spec_path, tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = tmp_path / "out"
    s = run_plain(str(catalog), str(ai_spec_path), str(out))
    assert s.published == 6 and s.failed == 0 and s.engine.startswith("diffusers ")
    entries = RunState.of(Store(str(out))).entries("acme-home")
    for _key, e in entries.items():
        data = Path(e["uri"]).read_bytes()
        label = digital_source_type(data)
        if e["channel"] == "amazon_main":  # locked white background: studio render, no AI label
            assert e["engine"] == "studio" and e["generation"] is None and label is None and not e["ai_generated"]
        else:
            g = e["generation"]
            assert e["engine"] == "diffusers" and e["ai_generated"]
            assert label == "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
            assert {"model", "revision", "scheduler", "steps", "guidance", "strength", "seed", "prompt", "negative_prompt"} <= set(g)
            assert g["seed"] == e["seed"] and g["prompt"].startswith("Mug, red stoneware")
    again = run_plain(str(catalog), str(ai_spec_path), str(out))
    assert again.generated == 0 and again.unchanged == 6  # a rerun regenerates nothing


@pytest.mark.slow
def test_rerender_is_bit_identical(ai_spec_path, tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    a = run_plain(str(catalog), str(ai_spec_path), str(tmp_path / "a"))
    b = run_plain(str(catalog), str(ai_spec_path), str(tmp_path / "b"))
    ea, eb = (RunState.of(Store(str(tmp_path / d))).entries("acme-home") for d in ("a", "b"))
    assert a.published == b.published == 3
    assert {k: v["sha256"] for k, v in ea.items()} == {k: v["sha256"] for k, v in eb.items()}


@pytest.mark.slow
def test_variants_are_separate_outputs_with_their_own_seeds(ai_spec_path, tmp_path):
    text = ai_spec_path.read_text().replace("variants: 1", "variants: 2")
    spec = tmp_path / "variants.yaml"
    spec.write_text(text)
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    s = run_plain(str(catalog), str(spec), str(tmp_path / "out"))
    entries = RunState.of(Store(str(tmp_path / "out"))).entries("acme-home")
    assert sorted(entries) == sorted(["GOOD-0/amazon_main", "GOOD-0/shopify_square", "GOOD-0/shopify_square-v2",
                                      "GOOD-0/google_merchant", "GOOD-0/google_merchant-v2"])
    assert entries["GOOD-0/shopify_square"]["seed"] != entries["GOOD-0/shopify_square-v2"]["seed"]
    assert s.published == 5


def test_model_that_cannot_load_falls_back_to_studio_when_the_spec_says_so(ai_spec_path, tmp_path):
    text = ai_spec_path.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("\n  model: ", "\n  model: /nonexistent/", 1))
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    s = run_plain(str(catalog), str(bad), str(tmp_path / "out"))
    assert s.published == 3 and "AI fallback: cannot load diffusion model '/nonexistent/" in s.engine
    entries = RunState.of(Store(str(tmp_path / "out"))).entries("acme-home")
    assert {e["engine"] for e in entries.values()} == {"studio"}
    bad.write_text(bad.read_text().replace("fallback: studio", "fallback: fail"))
    with pytest.raises(ModelLoadError, match="/nonexistent/"):
        run_plain(str(catalog), str(bad), str(tmp_path / "out2"))


@pytest.mark.weights
@pytest.mark.skipif(not os.environ.get("LIGHTBOX_MODEL_DIR"), reason="set LIGHTBOX_MODEL_DIR to a diffusers inpainting model")
def test_real_weights_keep_the_product_and_make_a_scene(tmp_path):
    cfg = Diffusion(model=os.environ["LIGHTBOX_MODEL_DIR"], steps=20, resolution=512, batch_size=1)
    spec = load_brand_spec(str(REPO / "brand_specs" / "acme-home-ai.yaml")).model_copy(update={"diffusion": cfg})
    look = resolve_look(spec, "kitchen", load_channel_presets()["shopify_square"])
    im, _ = studio_photo(600, 800)
    p = Product(row=1, sku="REAL", title="Mug", category="kitchen", attributes={"color": "blue", "material": "stoneware"})
    job = RenderJob(product=p, look=look, variant=0, seed=1, cut=cut_out(im, spec.cutout), prompt=fill_template(look.generation.prompt, p))
    (res,) = DiffusersEngine(cfg).render([job])
    assert res.error is None
    scene = np.asarray(res.image, np.float32)
    assert scene.std() > 10  # a scene, not a flat fill
    buf = io.BytesIO()
    res.image.save(buf, "PNG")
    assert hashlib.sha256(buf.getvalue()).hexdigest()
    assert json.dumps(res.generation)
    assert isinstance(Image.open(io.BytesIO(buf.getvalue())), Image.Image)


@pytest.mark.slow
def test_additional_photos_are_studio_renders_unless_the_spec_asks_for_scenes_on_all(ai_spec_path, tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    text = catalog.read_text().replace("img/good-0.jpg", "img/good-0.jpg|img/good-1.jpg")
    catalog.write_text(text.replace("GOOD-1,", "GOOD-1X,"))  # GOOD-0: two photos; GOOD-1X: one
    out = tmp_path / "out"
    s = run_plain(str(catalog), str(ai_spec_path), str(out))
    entries = RunState.of(Store(str(out))).entries("acme-home")
    assert s.published == 9 and s.failed == 0
    assert entries["GOOD-0/shopify_square"]["ai_generated"] and entries["GOOD-0/shopify_square"]["engine"] == "diffusers"
    second = entries["GOOD-0/shopify_square-2"]
    assert (second["engine"], second["ai_generated"], second["role"]) == ("studio", False, "additional")

    every = tmp_path / "all.yaml"
    every.write_text(ai_spec_path.read_text() + "\ngallery: {ai: all}\n")
    s = run_plain(str(catalog), str(every), str(out))
    assert s.generated == 2  # only the second photo's AI channels change (shopify, google); the main images stand
    entries = RunState.of(Store(str(out))).entries("acme-home")
    assert entries["GOOD-0/shopify_square-2"]["engine"] == "diffusers" and entries["GOOD-0/google_merchant-2"]["ai_generated"]


def test_the_libraries_say_nothing_on_the_terminal(ai_spec_path, tmp_path, capfd):
    """diffusers' and transformers' own stderr handlers printed ten lines on the AI example (torchvision
    notices, CLIP's truncation of long prompts): they go to logging now, shown only with -v."""
    from flows.cli import main

    long_prompt = ai_spec_path.read_text().replace("prompt: \"", "prompt: \"" + "a very detailed scene, " * 40, 1)
    spec = tmp_path / "long.yaml"
    spec.write_text(long_prompt)
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    capfd.readouterr()
    assert main(["validate", str(catalog), "--brand", str(spec)]) == 0
    s = run_plain(str(catalog), str(spec), str(tmp_path / "out"))
    assert s.published == 3
    err = capfd.readouterr().err
    assert "truncated" not in err and "[transformers]" not in err and "torchvision" not in err, err
