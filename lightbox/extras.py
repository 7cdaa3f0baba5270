"""Optional parts of the install. ``pip install lightbox`` is the studio install: catalogs, the studio engine, the
bundled cut-out model (ONNX), quality checks, publishing, the Prefect pipeline. The ``ai`` extra adds torch,
diffusers and transformers, which AI looks (diffusion scenes) and transformers segmentation checkpoints (BiRefNet)
need. A spec that needs a part the install lacks is refused at start with one line naming the extra."""

from __future__ import annotations

import importlib.util

from lightbox.errors import LightboxError

AI = ("torch", "diffusers", "transformers")
INSTALL_AI = "pip install -c constraints.txt -e '.[ai]' in the Lightbox checkout"


class MissingExtra(LightboxError):
    """A feature the spec asks for needs packages this install does not have."""


def missing(modules: tuple[str, ...] = AI) -> list[str]:
    """Which of ``modules`` cannot be imported here (looked up without importing them)."""
    absent = []
    for m in modules:
        try:
            found = importlib.util.find_spec(m) is not None
        except ImportError:  # a finder that refuses the name outright
            found = False
        if not found:
            absent.append(m)
    return absent


def require_ai(feature: str, modules: tuple[str, ...] = AI) -> None:
    """Raise :class:`MissingExtra` naming ``feature`` and the ``ai`` extra when any of ``modules`` is missing."""
    absent = missing(modules)
    if absent:
        raise MissingExtra(f"{feature} needs the 'ai' extra ({', '.join(absent)} not installed): {INSTALL_AI}")
