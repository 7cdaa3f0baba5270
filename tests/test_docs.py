"""Every command block of the README and docs/ marked ``<!-- runnable -->`` runs as written, in a fresh folder that
holds what a user's folder would: the repository's examples and brand specs, and ``products_export.csv``, a Shopify
product export (written by tests/support/exports.py) with its photos. A block is a shell script run with ``bash -eu``:
every line must succeed. Identical blocks (the README repeats some docs) run once.

The install commands and the service block are not marked: CI runs the first as its own command, and
tests/e2e/test_readme_service.py pastes the second line by line."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import exports
from tests.conftest import REPO
from tests.support.images import studio_photo, to_bytes

MARK = "<!-- runnable -->"
_BLOCK = re.compile(re.escape(MARK) + r"\s*\n```bash\n(.*?)\n```", re.S)
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def runnable_blocks() -> dict[str, str]:
    """Distinct marked blocks, keyed by where each first appears (``README.md:42``)."""
    found: dict[str, str] = {}
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for m in _BLOCK.finditer(text):
            if m.group(1) not in found.values():
                found[f"{doc.relative_to(REPO)}:{text[:m.start()].count(chr(10)) + 1}"] = m.group(1)
    return found


BLOCKS = runnable_blocks()


def test_the_first_hour_commands_are_marked_runnable():
    """The README's own-catalog block and its AI-scenes block are under this test (a marker removed by mistake
    would otherwise take them out silently)."""
    texts = "\n".join(BLOCKS.values())
    assert "lightbox init products_export.csv" in texts and "lightbox export my-shop" in texts
    assert "python -m lightbox.testing.tiny_diffusion models" in texts
    assert sum(MARK in d.read_text(encoding="utf-8") for d in DOCS) >= 2


def _user_folder(root: Path) -> Path:
    root.mkdir()
    os.symlink(REPO / "examples", root / "examples")
    shutil.copytree(REPO / "brand_specs", root / "brand_specs")  # lightbox init writes a spec here
    shutil.copy(REPO / "constraints.txt", root / "constraints.txt")
    photos = root / "photos"
    photos.mkdir()
    for i, name in enumerate(exports.IMAGE_NAMES):
        (photos / name).write_bytes(to_bytes(studio_photo(800, 1000, seed=i)[0], "JPEG", quality=90))
    exports.write_shopify(root / "products_export.csv", lambda name: f"photos/{name}")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("where", list(BLOCKS))
def test_a_runnable_block_runs_as_written(where, tmp_path):
    folder = _user_folder(tmp_path / "user")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LIGHTBOX_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", "HOME": str(tmp_path / "home"),
            "PREFECT_HOME": str(tmp_path / "prefect"), "PYTHONPATH": str(REPO)}
    r = subprocess.run(["bash", "-eu", "-c", BLOCKS[where]], cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"{where} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
