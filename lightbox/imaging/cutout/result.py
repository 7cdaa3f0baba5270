"""What a cut is: the cut-out image, its method, why, and what was measured of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class CutOut:
    rgba: np.ndarray  # H x W x 4 uint8: source RGB (opaque pixels untouched, edge pixels decontaminated) + alpha
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive) of alpha > 0: what is cropped and kept
    solid_bbox: tuple[int, int, int, int]  # of alpha >= 128: what is framed (faint wisps do not count)
    method: str  # "alpha", "backdrop" or "model"
    reason: str  # why this method cut it (report and manifest)
    diagnostics: dict[str, Any] = field(default_factory=dict)  # run-time measures the gate reads (cutout_*)
    source: np.ndarray | None = field(default=None, compare=False, repr=False)  # the source RGB, for fidelity
    cache: dict = field(default_factory=dict, compare=False, repr=False)  # resampled sizes (compose.resampled)
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)  # backdrop cuts: the outline the soft edge was made on
    completed: bool = field(default=False, compare=False, repr=False)  # backdrop cuts: the outline was completed over gaps

    @property
    def product(self) -> np.ndarray:
        x0, y0, x1, y1 = self.bbox
        return self.rgba[y0:y1, x0:x1]

    @property
    def touches_edge(self) -> bool:
        return int(self.diagnostics.get("cutout_borders", 0)) > 0

    @property
    def confident(self) -> bool:
        return bool(self.diagnostics.get("cutout_confident", True))
