"""The ``lightbox`` command: early errors exit 2 with one line, before any server starts; a full
run (under the session harness) prints the summary and exits 0; a failed run exits 1."""

import re
import subprocess
import sys

import pytest

from flows.cli import main
from tests.conftest import ACME, REPO
from tests.support.helpers import make_catalog


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "examples/acme-home/catalog.csv", "--brand", "brand_specs/nope.yaml"], "brand_specs/nope.yaml: file not found"),
        (["run", "nope.csv"], "nope.csv: file not found"),
        (["run", "examples/acme-home/catalog.xlsx"], "unknown catalog format"),
        (["run", "examples/acme-home/catalog.csv", "--out", "/proc/lightbox"], "/proc/lightbox: output is not writable"),
        (["run", "examples/acme-home/catalog.csv", "--chunk-size", "0"], "--chunk-size must be >= 1, got 0"),
    ],
)
def test_early_errors_are_one_line_and_exit_2(args, message):
    r = _cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightbox: error: ") and message in lines[0]


@pytest.mark.usefixtures("prefect_harness")
def test_full_run_prints_summary(tmp_path, capsys):
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    assert main(["run", str(catalog), "--brand", ACME, "--out", str(tmp_path / "out"), "--chunk-size", "1"]) == 0
    out = capsys.readouterr().out
    assert "acme-home: 2 rows, 0 quarantined, 0 skipped, 6 generated, 0 unchanged, 6 published" in out
    assert "failed: 0 to render, 0 quality" in out
    assert "manifest: " in out
    review = next(line for line in out.splitlines() if line.startswith("review: "))  # images, said as such
    assert re.match(r"review: 6 images live \([0-6] with warnings\), 0 to review: \S+review.html$", review), review


    capsys.readouterr()
    # what is live, from the run state: filtered listings and the consumers' export
    assert main(["manifest", "acme-home", "--out", str(tmp_path / "out"), "--sku", "GOOD-1"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[-1] == "3 entries" and all(line.startswith("GOOD-1 ") for line in listed[1:-1])
    assert main(["manifest", "acme-home", "--out", str(tmp_path / "out"), "--channel", "amazon_main", "--format", "jsonl"]) == 0
    import json

    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(r["sku"] for r in rows) == ["GOOD-0", "GOOD-1"] and {r["channel"] for r in rows} == {"amazon_main"}
    assert main(["manifest", "acme-home", "--out", str(tmp_path / "out"), "--qc", "failed"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "0 entries"
    (tmp_path / "out" / "acme-home" / "manifest.parquet").unlink()
    assert main(["manifest", "acme-home", "--out", str(tmp_path / "out"), "--export"]) == 0
    assert (tmp_path / "out" / "acme-home" / "manifest.parquet").exists()
    assert main(["manifest", "nobody", "--out", str(tmp_path / "out")]) == 2
    assert "no run state" in capsys.readouterr().err


@pytest.mark.usefixtures("prefect_harness")
def test_the_flow_takes_the_catalog_as_the_command_line_checked_it(tmp_path, monkeypatch, capsys):
    """``lightbox run`` reads and validates the catalog before the flow (to refuse early, or to end a run with nothing
    to render); the flow takes that result (its run id, valid rows and counts) instead of reading and validating the
    catalog a second time."""
    import json

    import tasks.stages
    from lightbox import preflight

    calls = {"read": 0, "validate": 0}

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    for module, read, validate in ((preflight, "read_catalog", "validate_catalog"), (tasks.stages, "read_catalog", "_validate")):
        monkeypatch.setattr(module, read, counted("read", getattr(module, read)))
        monkeypatch.setattr(module, validate, counted("validate", getattr(module, validate)))
    catalog = make_catalog(tmp_path / "cat", bad={"MISSING": None}, n_good=3)  # one row's photo does not exist
    out = tmp_path / "out"
    assert main(["run", str(catalog), "--brand", ACME, "--out", str(out), "--chunk-size", "2"]) == 0
    assert calls == {"read": 1, "validate": 1}
    assert "4 rows, 1 quarantined" in capsys.readouterr().out
    latest = json.loads((out / "acme-home" / "latest-run.json").read_text())
    folder = out / "acme-home" / "_runs" / latest["run_id"]
    summary = json.loads((folder / "summary.json").read_text())
    assert (summary["ingested"], summary["invalid"], summary["published"]) == (4, 1, 9)
    assert [q["sku"] for q in summary["quarantine"]] == ["MISSING"]
    assert (folder / "validated.json").exists() and (folder / "valid.parquet").exists()
    assert not (folder / "catalog.parquet").exists()  # the flow's ingest did not run


@pytest.mark.slow
def test_validate_and_run_check_photos_and_models_as_the_run_does(tmp_path):
    """Issue 25, item 5: a local photo that does not exist and a segmentation model that cannot load are found by
    ``validate`` (exit 2) and by ``run`` before any server starts (one line, exit 2, nothing written)."""
    import yaml

    catalog = make_catalog(tmp_path / "cat", n_good=3)
    with open(catalog, "a") as f:
        f.write("GHOST-1,Mug,kitchen,img/ghost.jpg,red,stoneware\n")
    r = _cli("validate", str(catalog), "--brand", ACME)
    assert r.returncode == 0, r.stderr  # 1 of 4 rows is under the spec's invalid share
    assert f"invalid: 1 row: photo file not found: '{tmp_path / 'cat' / 'img' / 'ghost.jpg'}'" in r.stdout
    spec = yaml.safe_load(open(ACME))
    spec["cutout"]["model"] = {"path": str(tmp_path / "no-model.onnx")}
    bad = tmp_path / "bad-model.yaml"
    bad.write_text(yaml.safe_dump(spec))
    message = f"cannot load segmentation model '{tmp_path / 'no-model.onnx'}': no such ONNX file {tmp_path / 'no-model.onnx'}"
    for args in (["validate", str(catalog), "--brand", str(bad)], ["run", str(catalog), "--brand", str(bad), "--out", str(tmp_path / "out")]):
        r = _cli(*args)
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"lightbox: error: {message}"], r.stderr
    assert not (tmp_path / "out").exists()


def test_the_run_line_says_when_ai_looks_fell_back_to_the_studio_engine(tmp_path, capsys):
    """A spec whose AI look cannot run here (no ai extra, a model that cannot load) and whose fallback is studio
    renders with the studio engine: the terminal says so, not only summary.json."""
    from flows.cli import _print_summary
    from lightbox.run import Run
    from lightbox.storage import Store

    run = Run(run_id="r", brand="acme-home", spec_version=1, catalog="c.csv", out_uri=str(tmp_path), started=0.0,
              engine="studio (AI fallback: diffusion needs the 'ai' extra; rendering with the studio engine)")
    _print_summary(run.summary([], Store(str(tmp_path)), clock=lambda: 1.0))
    assert "engine: studio (AI fallback: diffusion needs the 'ai' extra; rendering with the studio engine)\n" in capsys.readouterr().out
    _print_summary(run.noted(engine="studio").summary([], Store(str(tmp_path)), clock=lambda: 1.0))
    assert "engine:" not in capsys.readouterr().out
