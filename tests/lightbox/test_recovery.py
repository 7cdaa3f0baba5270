"""Pieces of crash and outage recovery (issue 14) that hold now: outputs are byte-identical across
processes, no SKU can take the name of a brand's own file, and storage connection errors are transient
wherever they are wrapped."""

from __future__ import annotations

import io
import subprocess
import sys

import pandas as pd
import pytest

from lightbox.catalog.ingest import normalise
from lightbox.catalog.validate import validate_catalog
from lightbox.errors import StorageError
from lightbox.specs import load_brand_spec
from lightbox.retry import is_transient
from tests.conftest import ACME, REPO
from tests.support.helpers import make_catalog

RENDER = """
import hashlib, sys
from pathlib import Path
from lightbox.pipeline import run_plain
run_plain(sys.argv[1], sys.argv[2], sys.argv[3], run_id="p")
for p in sorted(Path(sys.argv[3]).rglob("*.jpg")):
    if "/_" not in str(p):
        print(p.relative_to(sys.argv[3]), hashlib.sha256(p.read_bytes()).hexdigest())
"""


@pytest.mark.slow
def test_the_same_render_in_two_processes_is_byte_identical(tmp_path):
    """The embedded sRGB profile used to carry the time its process started: identical pixels, different
    bytes in every process, so a resume rewrote everything already live."""
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    runs = []
    for name in ("a", "b"):
        r = subprocess.run([sys.executable, "-c", RENDER, str(catalog), ACME, str(tmp_path / name)], cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append(r.stdout)
    assert runs[0] == runs[1] and runs[0].count("\n") == 3


def test_the_embedded_profile_is_pinned():
    from lightbox.imaging.decode import SRGB_ICC

    from PIL import ImageCms

    assert SRGB_ICC[24:36] == bytes.fromhex("07ea00010001000000000000")  # 2026-01-01, not the process's start
    assert int.from_bytes(SRGB_ICC[:4], "big") == len(SRGB_ICC)  # still a well-formed profile
    assert "srgb" in ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(SRGB_ICC))).lower()


@pytest.mark.parametrize("sku", ["manifest.json", "Latest-Run.json", "consistency.json"])
def test_no_sku_can_take_the_name_of_a_brand_file(sku):
    row = {"sku": sku, "title": "Mug", "category": "kitchen", "image": "/x/a.jpg", "color": "red", "material": "stoneware"}
    result = validate_catalog(normalise(pd.DataFrame([row], dtype=str), "/x/c.csv"), load_brand_spec(ACME))
    (q,) = result.quarantined
    assert "is the name of one of the brand's own files" in q.reason


def _wrapped(exc: BaseException) -> StorageError:
    try:
        try:
            raise exc
        except BaseException as inner:
            raise StorageError("s3://bucket/acme/X/amazon_main.jpg: cannot write") from inner
    except StorageError as outer:
        return outer


def test_storage_connection_errors_are_transient_wherever_wrapped():
    from aiohttp import ClientConnectionError
    from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

    for exc in (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), ConnectionClosedError(endpoint_url="http://x"),
                ReadTimeoutError(endpoint_url="http://x"), ClientConnectionError("reset")):
        assert is_transient(exc) and is_transient(_wrapped(exc)), exc
    assert not is_transient(_wrapped(PermissionError("403")))
    assert not is_transient(StorageError("no such bucket"))


@pytest.mark.slow
def test_after_an_aborted_update_the_state_tells_the_truth(tmp_path):
    """A run with a changed spec is killed mid-publish: its new bytes are live, the manifest still describes
    the old ones. Resuming with the previous spec must not call those outputs "unchanged" because their
    fingerprint matches and the object exists: every live object ends equal to the manifest's hash."""
    from lightbox.state import RunState
    from lightbox.pipeline import run_plain
    from lightbox.storage import Store

    catalog = make_catalog(tmp_path / "cat", n_good=3)
    out = tmp_path / "out"
    run_plain(str(catalog), ACME, str(out), chunk_size=2, run_id="first")
    other = tmp_path / "other.yaml"  # the aborted update: another look, published but never committed
    other.write_text(open(ACME).read().replace("opacity: 0.30", "opacity: 0.60"))
    run_plain(str(catalog), str(other), str(tmp_path / "aborted"), chunk_size=2, run_id="aborted")
    for p in (tmp_path / "aborted" / "acme-home").glob("GOOD-*/*.jpg"):
        if p.parent.name != "GOOD-2":  # killed before the last product
            target = out / "acme-home" / p.parent.name / p.name
            target.write_bytes(p.read_bytes())
    store = Store(str(out))
    manifest = RunState.of(store).entries("acme-home")
    lying = [k for k, e in manifest.items() if store.sha256(store.key_of(e["uri"])) != e["sha256"]]
    assert len(lying) == 6  # GOOD-0 and GOOD-1, every channel

    resumed = run_plain(str(catalog), ACME, str(out), chunk_size=2, run_id="resume")
    manifest = RunState.of(store).entries("acme-home")
    assert all(store.sha256(store.key_of(e["uri"])) == e["sha256"] for e in manifest.values())
    assert resumed.generated == 6 and resumed.unchanged == 3 and resumed.published == 6


@pytest.mark.slow
def test_what_a_failed_run_made_live_is_recorded_and_not_written_again(tmp_path, monkeypatch):
    """A run that fails after publishing (storage gone past its budget before its export, a kill) has
    already committed every published chunk's rows: the state lists what went live the moment each chunk
    was published, and the next run writes nothing that is already live (a tampered object is replaced)."""
    import lightbox.pipeline as pipeline
    from lightbox.state import RunState
    from lightbox.storage import Store

    catalog = make_catalog(tmp_path / "cat", n_good=3)
    out = tmp_path / "out"

    def storage_gone(*_a, **_k):
        raise StorageError("the manifest export failed: storage unreachable past its retry budget")

    with monkeypatch.context() as m:
        m.setattr(RunState, "export", storage_gone)
        with pytest.raises(StorageError):
            pipeline.run_plain(str(catalog), ACME, str(out), chunk_size=2, run_id="20261125T100000Z-failed00")
    store = Store(str(out))
    recorded = RunState.of(store).entries("acme-home")
    assert len(recorded) == 9 and {e["run_id"] for e in recorded.values()} == {"20261125T100000Z-failed00"}
    (out / "acme-home" / "GOOD-2" / "google_merchant.jpg").write_bytes(b"\xff\xd8 not what the state says")

    again = pipeline.run_plain(str(catalog), ACME, str(out), chunk_size=2, run_id="20261125T110000Z-next0000")
    assert again.unchanged == 8 and again.generated == 1 and again.published == 1
    manifest = RunState.of(store).entries("acme-home")
    assert len(manifest) == 9 and all(store.sha256(store.key_of(e["uri"])) == e["sha256"] for e in manifest.values())


def test_a_damaged_state_file_is_one_line_and_the_next_run_rebuilds_it(tmp_path, monkeypatch, capsys):
    """state.sqlite with its header overwritten: 117 lines of traceback and exit 1 before; now one line naming the
    file and what to do, exit 2, nothing rendered; moved aside, the next run rebuilds the state from the manifest
    export and renders nothing again."""
    from flows import cli
    from lightbox.pipeline import run_plain

    catalog = make_catalog(tmp_path / "cat", n_good=2)
    out = tmp_path / "out"
    first = run_plain(str(catalog), ACME, str(out))
    assert first.published == 6
    state = out / "_lightbox" / "state.sqlite"
    with state.open("r+b") as f:
        f.write(b"X" * 100)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["run", str(catalog), "--brand", ACME, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"run state {state} is damaged" in err and f"mv {state} {state}.damaged" in err
    state.rename(state.with_name("state.sqlite.damaged"))
    again = run_plain(str(catalog), ACME, str(out))
    assert again.generated == 0 and again.unchanged == 6 and again.published == 0
