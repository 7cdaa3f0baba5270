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
