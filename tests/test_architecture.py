"""The core never imports prefect: every lightbox module imports in a process without it."""

import pkgutil
import subprocess
import sys
from pathlib import Path

import lightbox

REPO = Path(__file__).resolve().parents[1]


def test_core_does_not_import_prefect():
    modules = [m.name for m in pkgutil.walk_packages(lightbox.__path__, "lightbox.")]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"lightbox imports prefect: {r.stdout}"
    assert len(modules) > 10


def test_the_layering_contracts_hold():
    """``lint-imports`` (import-linter, contracts in pyproject.toml): the core imports no tasks, flows, API or Prefect;
    tasks no flows; the API and deployments no flows; no import cycle in the core - deferred imports included."""
    exe = Path(sys.executable).with_name("lint-imports")
    r = subprocess.run([str(exe), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_every_noqa_names_a_rule_ruff_checks():
    """A ``noqa`` for a rule that is not enabled silences nothing and reads as if it did (issue 27: 51 of 86 did)."""
    import re
    import tomllib

    from tests.conftest import REPO

    select = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["ruff"]["lint"]["select"]
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    bad = []
    for name in files:
        for n, line in enumerate((REPO / name).read_text().splitlines(), start=1):
            m = re.search(r"# noqa: ([A-Z0-9, ]+)", line)
            if m:
                codes = [c.strip() for c in m.group(1).split(",") if c.strip()]
                # a prefix selects the codes that continue it with digits (B selects B017, not BLE001)
                bad += [f"{name}:{n}: {c}" for c in codes if not any(re.fullmatch(rf"{p}\d*", c) for p in select)]
    assert bad == []


def test_every_environment_variable_the_code_reads_is_in_the_table():
    """docs/environment.md lists every LIGHTBOX_* variable read in the code (a new one must be documented)."""
    import re

    found: set[str] = set()
    for folder in ("lightbox", "flows", "tasks", "api", "deployments", "tests"):
        for path in (REPO / folder).rglob("*.py"):
            found |= set(re.findall(r"LIGHTBOX_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
    found |= set(re.findall(r"LIGHTBOX_[A-Z0-9_]*[A-Z0-9]", (REPO / "prefect.yaml").read_text(encoding="utf-8")))
    table = (REPO / "docs" / "environment.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"`(LIGHTBOX_[A-Z0-9_]*[A-Z0-9])`", table)) | {"LIGHTBOX_API"}  # the settings' prefix
    assert found - listed == set(), "add them to docs/environment.md"
