"""The studio install (``pip install lightbox``, no ``ai`` extra) renders and cuts with the bundled ONNX model
without torch, diffusers or transformers; a spec that needs them is refused with one line naming the extra, or
falls back to the studio engine when its ``diffusion.fallback`` says so.

The install without the extra is stood in for by a process in which those packages cannot be imported (a finder
refuses them before any other is asked): the same ModuleNotFoundError a studio install raises."""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ACME, REPO

WITHOUT_AI = textwrap.dedent("""
    import sys

    class _StudioInstall:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "diffusers", "transformers", "accelerate"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, _StudioInstall())
""")


def _without_ai(code: str, cwd, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", WITHOUT_AI + textwrap.dedent(code), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_the_studio_install_renders_and_cuts_with_the_bundled_model_without_torch(tmp_path):
    r = _without_ai("""
        import sys
        import numpy as np
        from lightbox.imaging.segmentation import get_segmenter
        from lightbox.pipeline import run_plain
        from lightbox.specs.models import SegmentationModel
        from tests.support.helpers import make_catalog

        s = run_plain(str(make_catalog(__import__("pathlib").Path(sys.argv[1]), n_good=2)), sys.argv[2], sys.argv[1] + "/out")
        print("published", s.published, "failed", s.failed)
        seg = get_segmenter(SegmentationModel(path="bundled:u2netp"))
        rgb = np.full((96, 96, 3), 240, np.uint8)
        rgb[24:72, 30:66] = (180, 40, 40)
        (pred,) = seg.predict([rgb])
        inside, outside = float(pred.soft[30:66, 36:60].mean()), float(pred.soft[:12].mean())
        print("model", seg.name, "mask", pred.soft.shape, "inside above outside", inside > outside)
        print("loaded", sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules))
    """, REPO, str(tmp_path), ACME)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "published 6 failed 0" in r.stdout
    assert "model onnx:bundled:u2netp@local mask (96, 96) inside above outside True" in r.stdout
    assert "loaded []" in r.stdout  # nothing imported torch, diffusers or transformers


@pytest.mark.slow
def test_a_spec_that_needs_the_ai_extra_is_refused_in_one_line_or_falls_back(tmp_path):
    ai = (REPO / "brand_specs" / "acme-home-ai.yaml").read_text()
    strict = tmp_path / "strict.yaml"
    strict.write_text(ai.replace("fallback: studio", "fallback: fail"))
    r = _without_ai("""
        import sys
        from flows.cli import main
        sys.exit(main(["validate", "examples/acme-home/catalog.csv", "--brand", sys.argv[1]]))
    """, REPO, str(strict))
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0] == ("lightbox: error: diffusion (the spec's AI looks) needs the 'ai' extra (torch, diffusers, transformers "
                        "not installed): pip install -c constraints.txt -e '.[ai]' in the Lightbox checkout")
    r = _without_ai("""
        import sys
        from lightbox.engines import prepare_ai
        from lightbox.specs import load_brand_spec
        print(prepare_ai(load_brand_spec(sys.argv[1])))
    """, REPO, "brand_specs/acme-home-ai.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("-e '.[ai]' in the Lightbox checkout; rendering with the studio engine (diffusion.fallback: studio)")


def test_a_transformers_cut_out_model_needs_the_extra_and_an_onnx_one_does_not(tmp_path):
    r = _without_ai("""
        from lightbox.extras import MissingExtra
        from lightbox.imaging.segmentation import get_segmenter
        from lightbox.specs.models import SegmentationModel

        try:
            get_segmenter(SegmentationModel(path="/models/birefnet"))
        except MissingExtra as e:
            print(e)
    """, REPO)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == ("cutout.model '/models/birefnet' (a transformers checkpoint) needs the 'ai' extra (torch, "
                                "transformers not installed): pip install -c constraints.txt -e '.[ai]' in the Lightbox checkout")
