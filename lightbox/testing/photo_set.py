"""A set of real photographs with human-made masks, in the layout of ``../shared/realmasks``: a folder with
``INDEX.csv`` (columns file, mask, backdrop plain|scene, object; others ignored) and the files it names.

Used to measure (``bench/bench_cutout.py --set DIR``) and by tests that skip where no set is present. The
photos are never copied anywhere: they are read where they are.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from lightbox.testing.cutout_set import score

RIGHT_IOU = 0.9  # a cut is right with IoU >= this ...
RIGHT_LOST = 0.01  # ... and at most this share of the product lost outside a 2 px band
DEFAULT_SET = Path(__file__).resolve().parents[3] / "shared" / "realmasks"  # next to the checkout, where it exists


class SetRow(BaseModel):
    file: str = Field(min_length=1)
    mask: str = Field(min_length=1)
    backdrop: Literal["plain", "scene"]
    object: str = ""


@dataclass(frozen=True)
class SetPhoto:
    path: Path
    mask_path: Path
    cls: str  # plain | scene
    name: str  # source folder / object
    source: str  # the first folder of the file's path (dis5k, coco_mval, ...)
    unknown_band: bool  # 128 in the mask = unknown (GrabCut), left out of the score

    def truth(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(true product mask, the pixels that count or None for all)."""
        m = np.asarray(Image.open(self.mask_path).convert("L"))
        return m >= 128, (m != 128) if self.unknown_band else None


def set_dir() -> Path | None:
    """``$LIGHTBOX_PHOTO_SET``, else ``../shared/realmasks`` beside the checkout; None when neither has an INDEX.csv."""
    env = os.environ.get("LIGHTBOX_PHOTO_SET")
    for d in ([Path(env)] if env else []) + [DEFAULT_SET]:
        if (d / "INDEX.csv").is_file():
            return d
    return None


def read_set(root: Path, unknown_band: tuple[str, ...] = ("grabcut",)) -> list[SetPhoto]:
    """Every row of ``root/INDEX.csv``, validated; a row naming a missing file raises, naming the row."""
    photos = []
    with open(root / "INDEX.csv", newline="") as f:
        for i, raw in enumerate(csv.DictReader(f), start=2):
            try:
                row = SetRow.model_validate({k: raw.get(k) for k in ("file", "mask", "backdrop", "object")})
            except ValueError as e:
                raise ValueError(f"{root / 'INDEX.csv'} line {i}: {e}") from None
            path, mask = root / row.file, root / row.mask
            for what, p in (("file", path), ("mask", mask)):
                if not p.is_file():
                    raise FileNotFoundError(f"{root / 'INDEX.csv'} line {i}: {what} {p} does not exist")
            source = Path(row.file).parts[0]
            photos.append(SetPhoto(path=path, mask_path=mask, cls=row.backdrop, name=f"{source}/{row.object or path.stem}",
                                   source=source, unknown_band=source in unknown_band))
    return photos


def judge(alpha: np.ndarray, photo: SetPhoto) -> dict[str, float | bool]:
    """The cut's score against the photo's mask, and whether it is right."""
    truth, valid = photo.truth()
    s = score(alpha, truth, valid=valid)
    return s | {"right": bool(s["iou"] >= RIGHT_IOU and s["lost"] <= RIGHT_LOST)}
