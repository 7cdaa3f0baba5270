"""A new user's first hour, through the ``lightbox`` command.

- ``lightbox init`` on Shopify's, WooCommerce's and Google's apparel sample exports (written by
  tests/support/exports.py in each platform's documented shape, images over HTTP) writes a spec under which
  ``lightbox run`` publishes every product that has an image;
- the same exports against a spec that lacks their categories: refused before any server starts, with
  quarantine.csv (status column) and one grouped reason line;
- every failure class as a subprocess: its exit code, exactly one ``lightbox: error:`` line, no
  traceback; for everything checkable before the run, no Prefect server (no database in PREFECT_HOME);
- an unchanged rerun says so without starting a flow run; a failed run leaves no empty output folder.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flows.cli import main
from tests.support import exports
from tests.conftest import ACME, REPO
from tests.support.http_server import ImageServer
from tests.support.images import studio_photo, to_bytes
from tests.support.helpers import add_thumbnail, animated_gif, make_catalog

pytestmark = pytest.mark.slow

SAMPLES = {
    # writer, SKUs with an image (published), SKUs without one (quarantined)
    "shopify": (lambda d, img: exports.write_shopify_apparel(d / "products_export.csv", img),
                {"OCEAN-BLUE-S-XS", "OCEAN-BLUE-S-S", "OCEAN-BLUE-S-M", "CLASSIC-VARS-S", "CLASSIC-VARS-M", "YELLOW-WOOL--M",
                 "YELLOW-WOOL--L", "FLORAL-WHITE-S", "STRIPED-SILK-S", "STRIPED-SILK-M", "CLASSIC-LEAT-M", "CLASSIC-LEAT-L",
                 "BLACK-LEATHE-DEFAULTTITLE"}, {"CHEQUERED-RE-M"}),
    "woocommerce": (lambda d, img: exports.write_woocommerce_apparel(d / "wc-product-export.csv", img),
                    {"woo-vneck-tee-blue", "woo-vneck-tee-green", "woo-vneck-tee-red", "woo-hoodie-with-logo",
                     "woo-hoodie-with-zipper", "woo-beanie", "woo-belt", "woo-cap", "woo-sunglasses", "woo-album"}, set()),
    "google": (lambda d, img: exports.write_gmc_apparel(d / "feed.tsv", img),
               {"TS1-WHI-S", "TS1-WHI-M", "TS1-BLA-S", "TS1-BLA-M", "DR1-BLU-S", "DR1-BLU-M", "SN1-WHI-40"}, {"SN1-WHI-42"}),
}


@pytest.fixture(scope="module")
def apparel_images():
    with ImageServer() as server:
        for i, name in enumerate(exports.APPAREL_IMAGE_NAMES):
            server.add(f"/files/{name}", body=to_bytes(studio_photo(900, 1100, seed=40 + i)[0], "JPEG", quality=90))
        yield server


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "fetch-policy.yaml"
    path.write_text("schemes: [https, http]\nallow_hosts: ['127.0.0.1']\nallow_networks: ['127.0.0.1/32']\n"
                    f"cache_dir: {tmp_path / 'cache'}\n")
    return str(path)


def _cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=240,
                          env=env)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    """The single ``lightbox: error:`` line; no traceback, no Prefect log lines anywhere."""
    both = r.stdout + r.stderr
    assert "Traceback" not in both and "| ERROR" not in both and "prefect.flow_runs" not in both, both
    errors = [line for line in r.stderr.splitlines() if line.startswith("lightbox: error: ")]
    assert len(errors) == 1, r.stderr
    return errors[0]


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("platform", list(SAMPLES))
def test_init_then_run_publishes_every_product_with_an_image(platform, tmp_path, apparel_images, capsys):
    write, with_image, without = SAMPLES[platform]
    catalog = write(tmp_path, lambda name: apparel_images.url(f"/files/{name}"))
    specs = tmp_path / "specs"
    assert main(["init", str(catalog), "--brand", f"my-{platform}", "--dir", str(specs)]) == 0
    said = capsys.readouterr().out
    spec = specs / f"my-{platform}.yaml"
    assert f"wrote {spec}" in said and "DECIDE" in spec.read_text() and "fallback_template: other" in spec.read_text()
    assert main(["init", str(catalog), "--brand", f"my-{platform}", "--dir", str(specs)]) == 2  # never overwrites silently

    out = tmp_path / "out"
    code = main(["run", str(catalog), "--brand", str(spec), "--out", str(out), "--fetch-policy", _policy(tmp_path), "--chunk-size", "4"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    brand = out / f"my-{platform}"
    for channel in ("amazon_main", "shopify_square", "google_merchant"):
        assert {p.parent.name for p in brand.glob(f"*/{channel}.jpg")} == with_image
    run_dir = brand / "_runs" / json.loads((brand / "latest-run.json").read_text())["run_id"]
    with open(run_dir / "quarantine.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["sku"] for r in rows if r["status"] == "invalid"} == without
    assert {r["status"] for r in rows} <= {"invalid", "skipped", "warning"}
    assert f"{len(with_image) * 3} published" in printed and "failed: 0 to render, 0 quality" in printed


@pytest.mark.parametrize("platform", list(SAMPLES))
def test_a_spec_without_their_categories_refuses_before_any_server(platform, tmp_path):
    write, with_image, without = SAMPLES[platform]
    catalog = write(tmp_path, lambda name: f"https://cdn.example.com/{name}")
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    r = _cli("run", str(catalog), "--brand", ACME, "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 2
    line = _one_error_line(r)
    rows = len(with_image) + len(without)
    assert f"{rows} of {rows} catalog rows are invalid (100%)" in line and "quarantine report: " in line
    grouped = [x for x in r.stdout.splitlines() if "is not in the brand spec" in x]
    assert len(grouped) == 1 and grouped[0].startswith(f"invalid: {rows} rows: category '…' is not in the brand spec"), r.stdout
    quarantine = Path(line.rsplit("quarantine report: ", 1)[1])
    with open(quarantine) as f:
        listed = list(csv.DictReader(f))
    assert list(listed[0]) == ["row", "sku", "status", "column", "reason"]
    assert sum(q["status"] == "invalid" for q in listed) == rows
    assert json.loads((quarantine.parent / "summary.json").read_text())["stopped"].startswith(f"{rows} of {rows}")
    assert not (home / "prefect.db").exists()  # no Prefect server was started


def _bad_catalogs(tmp_path: Path) -> dict[str, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = {"unknown-layout.csv": "id,name\n1,x\n", "empty.csv": "", "header-only.csv": "sku,title,category,image\n",
             "broken.jsonl": '{"sku": "A"\n'}
    out = {}
    for name, text in files.items():
        path = tmp_path / name
        path.write_text(text)
        out[name] = path
    return out


def test_every_failure_before_the_run_is_one_line_exit_2_and_starts_no_server(tmp_path):
    home = tmp_path / "prefect-home"
    env = {**os.environ, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    bad = _bad_catalogs(tmp_path / "catalogs")
    comma = tmp_path / "comma.yaml"
    comma.write_text(Path(ACME).read_text().replace("opacity: 0.30,", "opacity: 0,30,"))
    channel = tmp_path / "channel.yaml"
    channel.write_text(Path(ACME).read_text().replace("channels: [amazon_main,", "channels: [amazn_main,"))
    example = str(REPO / "examples" / "acme-home" / "catalog.csv")
    cases = [
        (["run", example, "--brand", "brand_specs/nope.yaml"], "brand_specs/nope.yaml: file not found"),
        (["run", example, "--brand", str(comma)], "shadow: unexpected key 30 - a decimal comma?"),
        (["run", example, "--brand", str(channel)], "channels.0: unknown channel 'amazn_main'"),
        (["run", "nope.csv"], "nope.csv: file not found"),
        (["run", "examples/acme-home/catalog.xlsx"], "unknown catalog format"),
        (["run", str(bad["unknown-layout.csv"])], "unknown column layout: missing 'sku', 'title', 'category', 'image'"),
        (["run", str(bad["empty.csv"])], "the catalog is empty"),
        (["run", str(bad["header-only.csv"])], "the catalog has a header but no rows"),
        (["run", str(bad["broken.jsonl"])], "invalid JSON on line 1"),
        (["run", example, "--out", "/proc/lightbox"], "/proc/lightbox: output is not writable"),
        (["run", example, "--chunk-size", "0"], "--chunk-size must be >= 1, got 0"),
        (["validate", str(bad["unknown-layout.csv"])], "unknown column layout"),
        (["init", "nope.csv"], "nope.csv: file not found"),
        (["api-key", "revoke", "nobody", "--file", str(tmp_path / "keys.json")], "no key named 'nobody'"),
        (["run", example, "--fetch-policy", str(channel)], "channel.yaml: name: unknown key (known: "),
        (["run", example, "--webhooks", str(tmp_path / "hooks.yaml")], "hooks.yaml: file not found"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        r = _cli(*args, *(["--out", str(out)] if args[0] == "run" and "--out" not in args else []), env=env)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert message in _one_error_line(r), (args, r.stderr)
        assert not out.exists(), args  # nothing left behind, not even an empty folder
    assert not (home / "prefect.db").exists()


def test_an_unreachable_server_is_one_line_and_exit_1(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path / "prefect-home")}
    r = _cli("run", str(REPO / "examples" / "acme-home" / "catalog.csv"), "--out", str(tmp_path / "out"), env=env)
    assert r.returncode == 1
    assert "cannot reach the Prefect API at http://127.0.0.1:9/api (is the server running?" in _one_error_line(r)
    assert not (tmp_path / "out").exists()


@pytest.fixture
def harness_env(prefect_harness, tmp_path):
    """A subprocess environment pointed at the session's Prefect server (no server start per command)."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "prefect-home")}


def test_failures_during_the_run_are_named_by_cause(tmp_path, harness_env):
    # a photo the run cannot use is a render failure (exit 1), not a quality alarm (an animated GIF: its header
    # and end read fine, so validate lets it through; one that is not an image at all is invalid at validation)
    catalog = make_catalog(tmp_path / "missing", {"BROKEN": animated_gif()}, n_good=1)
    r = _cli("run", str(catalog), "--out", str(tmp_path / "out1"), "--chunk-size", "1", env=harness_env)
    assert r.returncode == 1, r.stdout + r.stderr
    line = _one_error_line(r)
    assert ("3 outputs could not be rendered (50%, over the spec's quality.max_failed_share of 10%); first: BROKEN: "
            "animated image with 2 frames") in line
    assert "quality alarm" not in r.stdout + r.stderr
    assert "failed: 3 to render, 0 quality" in r.stdout and "failed BROKEN (3 outputs, render): animated image with 2 frames" in r.stdout

    # a thumbnail renders but fails the upscale limit: a quality alarm (exit 3), review gallery named
    catalog = make_catalog(tmp_path / "thumb", n_good=2)
    add_thumbnail(catalog)
    r = _cli("run", str(catalog), "--out", str(tmp_path / "out2"), "--chunk-size", "2", env=harness_env)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "quality alarm: 33% of the run's outputs failed quality checks (limit 10%)" in _one_error_line(r)
    assert "failed: 0 to render, 3 quality" in r.stdout and "review.html" in r.stdout.splitlines()[-1]


def test_an_unchanged_rerun_starts_no_flow_run_and_says_so(tmp_path, harness_env):
    catalog = make_catalog(tmp_path / "cat", n_good=2)
    args = ["run", str(catalog), "--out", str(tmp_path / "out"), "--brand", ACME]
    first = _cli(*args, env=harness_env)
    assert first.returncode == 0, first.stderr
    again = _cli(*args, env=harness_env)
    assert again.returncode == 0, again.stderr
    assert "0 generated, 6 unchanged, 0 published" in again.stdout
    assert "nothing to render: every output is unchanged" in again.stdout and "no flow run started" in again.stdout
    summary = json.loads((tmp_path / "out" / "acme-home" / "latest-run.json").read_text())
    written = json.loads(Path(summary["summary"]).read_text())
    assert written["unchanged"] == 6 and written["flow_run_id"] is None  # written by the command: no flow run

    # one changed photo: the flow runs again and rewrites only that product's outputs
    from tests.support.images import studio_photo as photo

    (catalog.parent / "img" / "good-1.jpg").write_bytes(to_bytes(photo(800, 1000, seed=77)[0], "JPEG", quality=92))
    changed = _cli(*args, env=harness_env)
    assert changed.returncode == 0 and "3 generated, 3 unchanged, 3 published" in changed.stdout, changed.stdout


def test_validate_checks_catalog_and_spec_in_seconds_without_a_server(tmp_path):
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)
    r = _cli("validate", "examples/acme-home/catalog.csv", "--brand", ACME, env=env)
    assert r.returncode == 0, r.stderr
    # the hero rows are counted skipped, as the run counts them (validate said "26 valid, 0 skipped")
    assert "28 rows: 24 valid, 2 invalid, 2 skipped, 2 warnings" in r.stdout
    assert "skipped: 2 rows: hero: traditional photography" in r.stdout
    assert "invalid: 1 row: attribute 'color' is empty, used by template 'decor'" in r.stdout
    assert not (tmp_path / "prefect-home" / "prefect.db").exists()


def test_api_keys_live_under_lightbox_home_and_rotate(tmp_path):
    env = {**os.environ, "LIGHTBOX_HOME": str(tmp_path / "lbx")}
    env.pop("LIGHTBOX_API_KEYS_FILE", None)
    created = _cli("api-key", "create", "me", env=env, cwd=tmp_path)
    key = created.stdout.strip()
    assert created.returncode == 0 and key.startswith("lbx_") and "\n" not in key  # stdout is the key alone: $(...) works
    assert (tmp_path / "lbx" / "api-keys.json").exists() and not (tmp_path / "api-keys.json").exists()
    assert oct((tmp_path / "lbx" / "api-keys.json").stat().st_mode & 0o777) == "0o600"
    again = _cli("api-key", "create", "me", env=env, cwd=tmp_path)
    assert again.returncode == 2 and "rotate it: lightbox api-key rotate me" in _one_error_line(again)
    rotated = _cli("api-key", "rotate", "me", env=env, cwd=tmp_path).stdout.strip()
    from api.keys import KeyStore

    keys = KeyStore(tmp_path / "lbx" / "api-keys.json")
    assert keys.check(rotated) == "me" and keys.check(key) is None
    listed = _cli("api-key", "list", env=env, cwd=tmp_path).stdout
    assert listed.startswith("me\t") and "lbx_" not in listed


@pytest.mark.slow
def test_ctrl_c_stops_the_run_at_once_and_the_same_command_goes_on(tmp_path):
    """A terminal's Ctrl-C (SIGINT to the whole foreground group: the command and its temporary Prefect server).
    It took 2-6 minutes, printed Prefect's connection errors and ended 'Connection refused', exit 1. Now: one
    line, exit 130 within seconds, the brand's lock handed back, no process of the run left; the same command
    again publishes the rest, nothing twice."""
    import signal

    import psutil

    from lightbox.lock import current
    from lightbox.storage import Store

    out = tmp_path / "out"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    env.pop("PREFECT_API_URL", None)  # the temporary server, as a first-hour user has it
    args = [sys.executable, "-m", "flows.cli", "run", str(REPO / "examples" / "acme-home" / "catalog.csv"), "--out", str(out)]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a terminal's job
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob("acme-home/*/amazon_main.jpg")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        assert len(family) >= 2  # the command and its temporary server at least
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.monotonic()
        stdout, stderr = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and took < 20, (proc.returncode, took, stderr[-2000:])
    lines = [line for line in stderr.splitlines() if line.strip() and "%|" not in line]  # the progress bar aside
    assert lines[-1] == "lightbox: error: interrupted; what was published stays published - run the same command again to go on"
    assert "Traceback" not in stderr
    _, gone = psutil.wait_procs(family, timeout=10)
    assert not [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]  # nothing of the run left
    g, lease = current(Store(str(out)), "acme-home")
    assert lease is not None and lease["released"] and lease["released_by"] == "interrupted"  # no wait for its lease

    again = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-2000:]
    first = again.stdout.splitlines()[0]
    generated = int(re.search(r"(\d+) generated", first).group(1))
    unchanged = int(re.search(r"(\d+) unchanged", first).group(1))
    assert generated + unchanged == 72  # every output once: unchanged if recorded before the stop, else rendered
    assert unchanged > 0 or "already live" in first  # what was published before the stop is not written again
    rows = [json.loads(line) for line in (out / "acme-home" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == len({(r["sku"], r["channel"], r["photo"], r["variant"]) for r in rows}) == 72
