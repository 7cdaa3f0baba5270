"""The core never imports prefect: every lightbox module imports in a process without it."""

import pkgutil
import subprocess
import sys

import lightbox


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
