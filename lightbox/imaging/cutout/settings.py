"""Tuning constants of the cut-out, named in one place. The brand spec's ``cutout`` fields tune what a brand
may change (thresholds of the backdrop method, ``min_confidence``); these are the method's own, each with the
measurement that set it."""

from __future__ import annotations

from dataclasses import dataclass

# the cut-out's own version, in every output's fingerprint: a change to what it cuts renders outputs again
# 2: no floor shadow kept beside a step at full size; an outline completed along the gap's chord; a rim pixel kept
#    at half cover takes the colour its projection shows (no pale rim)
CUTOUT_VERSION = "2"
NO_BACKDROP = "no plain backdrop in the source photo, and no segmentation model this run to cut it with: set cutout.model"
SHADOW_WALL_GAP = 2  # shadow-like pixels this close to a step are not backdrop (mixed colours)
OUTLINE_GAPS = (3, 6)  # unsure cuts: the outline is completed over gaps up to twice these (px)
WORK_SIDE = 1024  # diagnostics are measured at most this large (resolution-independent measures)

# the backdrop method (backdrop.py; docs/cutout.md, "The backdrop method", steps 7-8)
COARSE_SIDE = 600  # px of a photo's short side per step of the coarse cut's reduction (2 from 1200 px, at most 3)
BAND_CELLS = 2  # cells of the reduced cut on either side of its outline that are measured at full size
NEAR_INSIDE = 8  # px: how far an edge pixel looks for the nearest inside product pixel (a thin part has none)
WINDOW_BLOCK = 8  # px: the plain-backdrop test of the work window is made on blocks this large
WINDOW_MARGIN = 32  # px around what is not plain backdrop: more than any filter or morphology reaches


@dataclass(frozen=True)
class ModelCutSettings:
    """The model method's constants: the confidence (confidence.py) and the edge (edge.py).

    Calibrated on the development set of real photographs with human-made masks (63 photos,
    ``bench/bench_cutout.py --set``; docs/cutout.md "Model cuts"): on U²-Netp's own 320 px map, the
    right cuts (IoU >= 0.9, <= 1 % of the product lost) leave at most 3 % of their area undecided away from
    the outline, most wrong ones 4-400 %.
    """

    undecided_low: float = 0.1  # a model probability in (low, 1 - low) is undecided
    outline_reach: float = 2 / 320  # undecided pixels this close to the 0.5 outline (share of the map's side) are its edge
    undecided_scale: float = 0.1  # confidence = 1 - undecided share / this (0 at 10 % of the mask's area)
    part_share: float = 0.2  # a second solid part this large against the largest: two objects, not one
    part_erosion: float = 4 / 320  # solid parts are counted after an erosion of this share of the map's side
    min_share: float = 0.003  # a mask under this share of the photo is a speck
    max_share: float = 0.9  # over it, the background was kept
    edge_sure: float = 0.02  # alphas within this of 0 or 1 are taken as 0 or 1: only the band across the outline is mixed


MODEL_CUT = ModelCutSettings()
