"""The ``backdrop`` method: separation from a plain studio backdrop. Steps as numbered in docs/cutout.md
("The backdrop method"):

1. plain-backdrop test and the fitted surface (:func:`~lightbox.imaging.cutout.surface.assess_backdrop`);
2. colour apart from brightness, 3. edges are walls (both in :func:`_backdrop_full`, its comments name
   them; per pixel for the reduced cut's edge in :func:`_measure_pixels`);
4. outline completion over gaps (:func:`_backdrop_full`, :func:`_sealed_flood`, ``OUTLINE_GAPS``);
5. holes, 6. the edge band (:func:`_finish_backdrop`, :func:`_soft_edge`, :func:`_mix`); opaque product
   pixels keep the source's values exactly;
7. the work window (:func:`_work_window`, ``WINDOW_BLOCK``, ``WINDOW_MARGIN``);
8. the reduced cut with its edge placed at full size (:func:`_coarse_to_fine`, :func:`_refine`,
   ``COARSE_SIDE``, ``BAND_CELLS``);
9. sure or not (:func:`_unsure`): an unsure cut goes to the model, or to review without one.

Tuning constants: :mod:`lightbox.imaging.cutout.settings`; the brand's own (thresholds, ``shadow_depth``,
``feather``, ``holes``...): the spec's ``cutout`` block.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import ndimage

from lightbox.errors import ItemError
from lightbox.specs.models import Cutout as CutoutParams
from lightbox.imaging.cutout.diagnostics import _bbox, _shift, diagnose
from lightbox.imaging.cutout.result import CutOut
from lightbox.imaging.cutout.settings import (
    BAND_CELLS,
    COARSE_SIDE,
    OUTLINE_GAPS,
    SHADOW_WALL_GAP,
    WINDOW_BLOCK,
    WINDOW_MARGIN,
)
from lightbox.imaging.cutout.morphology import _nearest_inside, dilate_cross, erode_cross
from lightbox.imaging.cutout.rim import clear_rim
from lightbox.imaging.cutout.surface import BackdropTest, _surface_at, assess_backdrop, backdrop_blocks, backdrop_model

log = logging.getLogger(__name__)


def cut_backdrop(rgb: np.ndarray, params: CutoutParams, test: BackdropTest | None = None) -> CutOut:
    """The backdrop cut: on a large photo cut at a reduced size and the edge placed at full size
    (:func:`_coarse_to_fine`); on a small one, or when the reduced cut is unsure, at full size."""
    test = test or assess_backdrop(rgb, params)
    f = _coarse_factor(*rgb.shape[:2])
    cut = _coarse_to_fine(rgb, params, test, f) if f > 1 else None
    if cut is None:
        cut = _backdrop_full(rgb, params, test)
    rgba = cut.rgba if cut.rgba.flags.writeable else cut.rgba.copy()
    cleared = clear_rim(rgba, test.coef, _threshold(params, max(test.noise, 0.5)))  # last step: no paper rim
    cut.diagnostics["cutout_rim_cleared"] = cleared
    if not cleared or not (rgba[..., 3] > 0).any():
        return cut
    solid = rgba[..., 3] >= 128
    bbox = _bbox(rgba[..., 3] > 0)
    return dataclasses.replace(cut, rgba=rgba, bbox=bbox, solid_bbox=_bbox(solid) if solid.any() else bbox, cache={})


def _threshold(params: CutoutParams, sigma: float) -> float:
    """Distance to the fitted backdrop (levels) under which a pixel may be backdrop."""
    return float(min(params.threshold, max(params.min_threshold, params.noise_factor * sigma)))


def _backdrop_full(rgb: np.ndarray, params: CutoutParams, test: BackdropTest, reduced: bool = False) -> CutOut:
    """The cut made on every pixel of ``rgb`` (steps 1-7). ``reduced``: ``rgb`` is a reduced photo, whose
    pixels at the outline mix product and paper (their edge is placed at full size afterwards)."""
    h, w, _ = rgb.shape
    sigma = max(test.noise, 0.5)  # per-pixel noise (levels) of the backdrop around its fit
    t = _threshold(params, sigma)
    # Everything below runs in the window that holds all that is not plain backdrop (the product, its
    # shadow, specks), with a margin wider than any filter or morphology reaches: outside it the flood
    # from the frame border would only cross plain backdrop. A product framed in its photo leaves most
    # of the frame out of the window.
    win = _work_window(rgb, test, sigma, t)
    y0, y1, x0, x1 = win
    full = win == (0, h, 0, w)
    model = backdrop_model(rgb, test.ring, test.coef, window=win)
    planes = [rgb[y0:y1, x0:x1, k].astype(np.float32) for k in range(3)]  # per plane: fast, contiguous
    mplanes = [np.ascontiguousarray(model[..., k]) for k in range(3)]
    smooth = [ndimage.uniform_filter(p, size=3) for p in planes]  # sensor noise is not an edge
    dist = np.abs(smooth[0] - mplanes[0])
    for k in (1, 2):
        np.maximum(dist, np.abs(smooth[k] - mplanes[k]), out=dist)

    # Colour is tested apart from brightness: the paper has one chromaticity (r, g, b over their sum)
    # wherever light or a floor shadow makes it brighter or darker. A white product on paper of a
    # slightly different white differs there even where its brightness matches (5x5 means: a fifth of
    # a pixel's noise). Tolerance: the border's own chromaticity spread, at least 0.0025.
    model_sum = mplanes[0] + mplanes[1] + mplanes[2]
    same_colour, shadow_dark = _paper_colour([ndimage.uniform_filter(p, size=5) for p in planes],
                                             model_sum, test, sigma, params.shadow_depth)
    shadow_like = same_colour & shadow_dark
    del shadow_dark, mplanes

    # Edges: a sharp step well above the backdrop's noise. Shadows and light fall-off are smooth ramps:
    # their gradient is the same measured over 3 px or over 9 px; a step's is three times larger over 3.
    grad = _gradient(smooth)
    ring = test.ring
    if full:
        ring_grad = np.concatenate([grad[:ring].ravel(), grad[-ring:].ravel(), grad[:, :ring].ravel(), grad[:, -ring:].ravel()])
    else:
        ring_grad = _ring_gradient(rgb, ring)
    floor = _edge_floor(sigma, ring_grad)
    wall = grad > floor
    if wall.any():  # the 9 px gradient is needed only there: over their box and the 5 px it reaches
        bx0, by0, bx1, by1 = _bbox(wall)
        cy0, cx0, cy1, cx1 = max(by0 - 5, 0), max(bx0 - 5, 0), min(by1 + 5, wall.shape[0]), min(bx1 + 5, wall.shape[1])
        coarse = _gradient([ndimage.uniform_filter(p[cy0:cy1, cx0:cx1], size=9) for p in planes])
        wall[cy0:cy1, cx0:cx1] &= grad[cy0:cy1, cx0:cx1] > 1.8 * coarse
        del coarse
    del grad
    # and a step has height: the 3x3 means within 2 px on either side differ by more than noise could
    wall[wall] = window_range(smooth, wall, 5) > _step_height(sigma)
    # an edge is a line: isolated specks of "edge" are noise (JPEG blocks in a shadow)
    wl, wn = ndimage.label(wall, structure=np.ones((3, 3)))
    if wn:
        wsizes = np.bincount(wl.ravel())
        wsizes[0] = 0
        wall = (wsizes >= 12)[wl]
    raw_wall = wall
    wall = ndimage.binary_dilation(raw_wall)
    del planes

    # a shadow is smooth: right beside a sharp step (a dark print line's end, a see-through part's rim)
    # the 5x5 means mix product colours into something shadow-like, which is not backdrop
    backdrop_like = ((dist <= t) & same_colour) | shadow_like
    passable = ((dist <= t) & same_colour) | (shadow_like & ~ndimage.binary_dilation(raw_wall, iterations=SHADOW_WALL_GAP))
    near = passable & ~wall
    labels, _ = ndimage.label(near)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    border = border[border > 0]
    flood = np.isin(labels, border)
    bg = flood.copy()
    # a wall is a few pixels wide: its pixels that are near the backdrop on the backdrop's side belong to it,
    # and so does a floor shadow right beside the step, judged pixel by pixel (3x3 means: the 5x5 ones mix
    # the product in there) - a white candle standing in its shadow keeps no strip of it. Not on a reduced
    # photo: there a pixel at the outline is a mean of product and paper, which can look like shadow.
    beside = passable
    if not reduced:
        px_same, px_dark = _paper_colour(smooth, model_sum, test, sigma, params.shadow_depth)
        beside = passable | (px_same & px_dark)
        del px_same, px_dark
    del model_sum
    for _ in range(2):  # (never across the step itself: a light label reaching the outline stays whole)
        bg |= ndimage.binary_dilation(bg) & beside & ~raw_wall
    fg = ~bg
    frame = _Frame(rgb, win, model, test.coef)
    first = _finish_backdrop(frame, fg, bg, near, dist, t, sigma, raw_wall, backdrop_like, params, test.why)
    if first.confident:
        return first
    # Where the product's colour crosses the backdrop's, its outline vanishes for a few pixels and the
    # flood runs in along the product's own shading. Flood again where a disk of radius ``gap`` fits: it
    # cannot pass a gap narrower than twice that, so the gap is sealed along its chord (no notch), and the
    # backdrop in a concave corner, which the disks do not reach, is given back to the first flood (no tent).
    for gap in OUTLINE_GAPS:
        found = _sealed_flood(near, flood, gap)
        if found is None:
            continue
        sealed, sealed_in = found  # the backdrop; the product the first flood ran into (it looks like the paper)
        for _ in range(2):
            sealed |= ndimage.binary_dilation(sealed) & beside & ~raw_wall
        try:
            second = _finish_backdrop(frame, ~sealed, sealed, near, dist, t, sigma, raw_wall, backdrop_like & ~sealed_in,
                                      params,
                                      f"{test.why}; outline completed over gaps up to {2 * gap} px", pockets=False)
        except ItemError:
            continue
        if second.confident:
            return second
    return first


def _coarse_factor(h: int, w: int) -> int:
    """By how much the backdrop cut reduces a photo before cutting it (1: not at all). The reduced photo
    keeps a short side of at least 600 px: thin parts (a 5 px wire at 800 px) need the full size; by 3 for
    every photo from 1200 px, a mug handle's hole kept a pixel of its rim's halo at alpha 79."""
    return max(1, min(3, min(h, w) // COARSE_SIDE))


def _coarse_to_fine(rgb: np.ndarray, params: CutoutParams, test: BackdropTest, f: int) -> CutOut | None:
    """Cut the photo reduced ``f`` times (box means), then place the edge at full size (:func:`_refine`).
    None when the reduced photo's border is not a plain backdrop or its cut is refused or unsure: the
    caller then cuts at full size, so routing and refusals are decided at full size."""
    small = np.asarray(Image.fromarray(rgb).reduce(f))
    stest = assess_backdrop(small, params)
    if not stest.plain:
        return None
    try:
        coarse = _backdrop_full(small, params, stest, reduced=True)
    except ItemError:
        return None
    if not coarse.confident or coarse.completed:  # unsure, or sure only once its outline was completed: a hard case
        return None
    try:
        return _refine(rgb, coarse, f, test, params)
    except ItemError:
        return None


def _refine(rgb: np.ndarray, coarse: CutOut, f: int, test: BackdropTest, params: CutoutParams) -> CutOut:
    """The full-size cut from a cut of the photo reduced ``f`` times.

    The reduced cut decides what is product: its outline, holes and specks, and whether it is sure; the
    gate's measures (:func:`diagnose`) are taken again on the cut made. At full size only the pixels within
    two cells of its outline are measured (:func:`_measure_pixels`: the full cut's backdrop distance and
    colour tests, and steps), and there:
    pixels that look like the backdrop, reached from the reduced cut's backdrop without crossing a step,
    are backdrop - in a halo's colour fringe beside a step too -; the rest of the outline's cells is
    product; pieces cut off from the product that are specks are dropped. The soft edge (:func:`_mix`) is
    then made on that outline as the full cut makes it. Pixels inside are the source's, untouched."""
    h, w, _ = rgb.shape
    sigma = max(test.noise, 0.5)
    t = _threshold(params, sigma)
    reach = BAND_CELLS + 1
    bx0, by0, bx1, by1 = _bbox(coarse.mask)  # the reduced cut's product box, with the band's reach
    hc, wc = coarse.mask.shape
    cy0, cx0, cy1, cx1 = max(by0 - reach, 0), max(bx0 - reach, 0), min(by1 + reach, hc), min(bx1 + reach, wc)
    fg_c = coarse.mask[cy0:cy1, cx0:cx1]
    inner_c = fg_c & ~erode_cross(fg_c, border=True)
    outer_c = dilate_cross(fg_c) & ~fg_c
    near_c = ndimage.binary_dilation(inner_c | outer_c, structure=np.ones((3, 3), bool), iterations=BAND_CELLS)
    x0, y0, x1, y1 = cx0 * f, cy0 * f, min(cx1 * f, w), min(cy1 * f, h)

    def up(m: np.ndarray) -> np.ndarray:
        return m.repeat(f, axis=0).repeat(f, axis=1)[: y1 - y0, : x1 - x0]

    fg0, band, outer_cells = up(fg_c), up(near_c), up(outer_c)
    by, bx = np.nonzero(band)
    floor = _edge_floor(sigma, _ring_gradient(rgb, test.ring))
    m = _measure_pixels(rgb, by + y0, bx + x0, test, sigma, t, params.shadow_depth, floor)
    like = np.zeros(band.shape, bool)
    like[by, bx] = m["backdrop_like"]
    fringe_like = np.zeros(band.shape, bool)
    fringe_like[by, bx] = m["fringe"]
    step = np.zeros(band.shape, bool)
    step[by, bx] = m["step"]
    dist = np.full(band.shape, np.float32(np.inf))
    dist[by, bx] = m["dist"]
    wall = np.zeros(band.shape, bool)
    wall[by, bx] = m["wall"]
    # backdrop: reached from the reduced cut's backdrop through backdrop-like pixels, never across a step;
    # first off the edges' walls, then onto them (a halo within a wall is backdrop) but not past them: a
    # soft edge has no pixel-sized step, and behind its wall a product a shade darker than the paper, in
    # its hue, looks like floor shadow (photos enlarged 2x: 366 and 664 product pixels lost without this)
    open_ = like & ~step
    seeds = ~fg0 & ~outer_cells  # the reduced cut's backdrop a cell or more from its outline (a hole's too)
    bg = _reach(open_ & wall, _reach(open_ & ~wall, seeds))
    near_step = step  # within 3 px of a step, as the full cut's dilated Sobel walls reach
    for _ in range(3):
        near_step = dilate_cross(near_step)
    # beside a step, a sharpening halo's colour fringe is not paper-coloured: as the full cut lets its
    # backdrop grow into a wall's backdrop side, the backdrop takes such pixels (never a step itself)
    fringe = near_step & ~step & fringe_like
    for _ in range(2):
        bg |= dilate_cross(bg) & fringe
    fg = (fg0 | outer_cells) & ~bg
    # a piece cut off from the product by the refined edge is noise (JPEG ringing beside a dark edge), as
    # the full cut drops specks: kept only when it reaches the product's inside or is no speck
    parts, _ = ndimage.label(fg)
    keep = np.bincount(parts.ravel()) >= max(16, int(params.min_object_share * h * w))
    keep[parts[fg0 & ~band]] = True
    keep[0] = False
    fg = keep[parts]
    if not fg.any():
        raise ItemError("no product found after edge refinement")
    alpha8, (my, mx, colours) = _soft_edge_sparse(rgb, (y0, y1, x0, x1), fg, dist, like, near_step, t,
                                                   params.feather, test.coef, ~(near_step & fringe_like))
    if not (alpha8 > 0).any():
        raise ItemError("no product found after edge refinement")
    sub = rgb[y0:y1, x0:x1].copy()
    sub[my - y0, mx - x0] = colours
    rgba = _assemble(rgb, (y0, y1, x0, x1), sub, alpha8)
    bbox = _shift(_bbox(alpha8 > 0), x0, y0)
    solid = _shift(_bbox(alpha8 >= 128), x0, y0) if (alpha8 >= 128).any() else bbox
    # the gate's measures of the cut are taken on the cut made (as the full cut's are); how it was made
    # (pieces, holes cleared, outline on edges) and the verdict are the reduced cut's
    diag = diagnose(rgb, rgba[..., 3], sigma, (test.coef, t))
    made = ("cutout_holes_cleared", "cutout_parts", "cutout_outline_on_edge", "cutout_confident")
    diag.update({k: coarse.diagnostics[k] for k in made if k in coarse.diagnostics})
    return CutOut(rgba=rgba, bbox=bbox, solid_bbox=solid, method="backdrop",
                  reason=f"{coarse.reason}; cut at 1/{f} size, edge placed at full size", diagnostics=diag, source=rgb)


def _sealed_flood(near: np.ndarray, flooded: np.ndarray, gap: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Where the first flood (``flooded``, through ``near`` from the border) ran into the product through gaps
    narrower than ``2 * gap`` in its outline: (the backdrop, the product it ran into), or None when it did not.

    A disk of radius ``gap`` moved from the border through ``near`` cannot pass such a gap: what the first flood
    reached and those disks do not is either a corner of the backdrop (small) or the product behind a gap. The
    backdrop's shape is drawn with disks three times larger (those that fit where the small ones go), whose
    edge dips at most ~1 px into a gap (the small ones' ~3 px); what they leave that the small ones reach
    too is backdrop again unless it lies against the product behind a gap."""
    room = ndimage.distance_transform_edt(near)
    labels, _ = ndimage.label(room > gap)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    centres = np.isin(labels, edge[edge > 0])
    if not centres.any():
        return None
    reached = ndimage.distance_transform_edt(~centres) <= gap
    big = centres & (room > 3 * gap)
    drawn = ndimage.distance_transform_edt(~big) <= 3 * gap if big.any() else reached
    pieces, n = ndimage.label(flooded & ~drawn)
    if n == 0:
        return None
    behind = np.bincount(pieces[~reached].ravel(), minlength=n + 1)  # what no small disk reaches, per piece
    behind[0] = 0
    inside = behind > gap * gap * 4  # a corner leaves under ~gap^2 px to the small disks; a gap leads into the product
    if not inside.any():
        return None
    sealed_in = inside[pieces]
    return flooded & ~sealed_in, sealed_in


def _reach(through: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """``seeds`` and the pixels of ``through`` connected to them (4-connected)."""
    labels, _ = ndimage.label(through | seeds)
    reached = np.zeros(labels.max() + 1, bool)
    reached[labels[seeds]] = True
    reached[0] = False
    return reached[labels]


def _measure_pixels(rgb: np.ndarray, ys: np.ndarray, xs: np.ndarray, test: BackdropTest, sigma: float, t: float,
                    depth: float, floor: float) -> dict[str, np.ndarray]:
    """At the pixels (ys, xs) only: ``dist``, the pixel's distance to the fitted backdrop (max over R, G, B);
    ``backdrop_like``: near the backdrop - the pixel or its 3x3 mean (the full cut's test: a halo of sensor
    noise or sharpening beside an edge) within ``t`` - or a floor shadow down to ``depth``, with the paper's
    colour on the 3x3 mean; ``fringe``: two of R, G, B within ``t`` (a halo's colour fringe); ``step``: the
    pixel differs from a 4-neighbour by more than an edge's least height (:func:`_step_height`) and so do
    their 3x3 means by more than the full cut's edge ``floor`` allows (its Sobel floor over 8: a step's
    Sobel response is 8/3 of its height, a neighbour's mean moves by 1/3 of it) - an edge, not a noisy
    pixel; ``wall``: the full cut's wall test on the pixel - the Sobel gradient of the 3x3 means above the
    ``floor`` and those means spanning more than a step's height around it - which a soft edge meets
    where no neighbour differs by a step. The photo's edges are mirrored as scipy's filters mirror them."""
    h, w, _ = rgb.shape
    n = len(ys)
    off = np.arange(-2, 3)
    ry = _mirror(ys[:, None] + off, h)[:, :, None]
    rx = _mirror(xs[:, None] + off, w)[:, None, :]
    B = _surface_at(test.coef, ys, xs, h, w)
    dist, mdist = np.zeros(n, np.float32), np.zeros(n, np.float32)
    means, devs = [], []
    sides = ((1, 2), (3, 2), (2, 1), (2, 3))  # the 4-neighbours in the 5 x 5 window
    jump_px = [np.zeros(n, np.int16) for _ in sides]
    jump_mean = [np.zeros(n, np.int16) for _ in sides]
    sobel, sums = np.zeros(n, np.float32), []
    for k in range(3):  # per plane, in integers: 3x3 sums are exact
        win = rgb[..., k][ry, rx].astype(np.int16)  # n x 5 x 5
        rows3 = win[:, :-2] + win[:, 1:-1] + win[:, 2:]
        s3 = rows3[:, :, :-2] + rows3[:, :, 1:-1] + rows3[:, :, 2:]  # n x 3 x 3: 3x3 sums around the pixel
        px, centre = win[:, 2, 2], s3[:, 1, 1]
        mean = centre / np.float32(9)
        dev = np.abs(px - B[:, k])
        np.maximum(dist, dev, out=dist)
        np.maximum(mdist, np.abs(mean - B[:, k]), out=mdist)
        means.append(mean)
        devs.append(dev)
        sums.append(s3)
        dx, dy = s3[:, :, 2] - s3[:, :, 0], s3[:, 2, :] - s3[:, 0, :]  # Sobel of the 3x3 means (x 9)
        gx = dx[:, 0] + 2 * dx[:, 1] + dx[:, 2]
        gy = dy[:, 0] + 2 * dy[:, 1] + dy[:, 2]
        np.maximum(sobel, np.hypot(gx.astype(np.float32), gy.astype(np.float32)), out=sobel)
        for i, (r, c) in enumerate(sides):
            np.maximum(jump_px[i], np.abs(win[:, r, c] - px), out=jump_px[i])
            np.maximum(jump_mean[i], np.abs(s3[:, r - 1, c - 1] - centre), out=jump_mean[i])
    near = (dist <= t) | (mdist <= t)
    same, shadow = _paper_colour(means, B[:, 0] + B[:, 1] + B[:, 2], test, sigma, depth)
    height, mean_floor = _step_height(sigma), 9.0 * floor / 8.0  # (3x3 sums: 9 x the means' floor)
    step = np.zeros(n, bool)
    for jp, jm in zip(jump_px, jump_mean, strict=True):  # the pixel against each 4-neighbour, in pixels and in means
        step |= (jp > height) & (jm > mean_floor)
    wall = sobel > 9.0 * floor
    at = np.flatnonzero(wall)  # there, the span of the 3x3 means around the pixel (a step's height)
    span = np.zeros(len(at), np.int16)
    for s3 in sums:
        nine = s3[at].reshape(-1, 9)
        np.maximum(span, nine.max(axis=1) - nine.min(axis=1), out=span)
    wall[at] = span > 9.0 * height
    median_dev = devs[0] + devs[1] + devs[2] - np.maximum(np.maximum(devs[0], devs[1]), devs[2]) \
        - np.minimum(np.minimum(devs[0], devs[1]), devs[2])
    fringe = median_dev <= t  # two of R, G, B near the paper
    return {"dist": dist, "backdrop_like": same & (near | shadow), "step": step, "fringe": fringe, "wall": wall}


def _mirror(idx: np.ndarray, n: int) -> np.ndarray:
    """Indices past either end of 0..n-1 mirrored (scipy's 'reflect': -1 -> 0, n -> n-1)."""
    idx = np.where(idx < 0, -idx - 1, idx)
    return np.where(idx >= n, 2 * n - idx - 1, idx)


def _soft_edge_sparse(rgb: np.ndarray, box: tuple[int, int, int, int], fg: np.ndarray, dist: np.ndarray, like: np.ndarray,
                      edges: np.ndarray, t: float, feather: float, coef: np.ndarray, colour_from: np.ndarray
                      ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """:func:`_soft_edge` over the box (y0, y1, x0, x1) of the photo, from measures given on it (``dist``,
    ``like``, ``edges``: valid at least on the band it mixes): (the box's alpha, (rows, cols, colours) of
    the mixed pixels, in photo coordinates). The product colour F of an edge pixel is its nearest inside
    pixel among ``colour_from`` (not a halo's paper-like fringe kept inside the outline)."""
    y0, y1, x0, x1 = box
    h, w, _ = rgb.shape
    band = max(1, int(np.ceil(feather)))
    inner, outer = fg, fg
    for _ in range(band):
        inner, outer = erode_cross(inner, border=False), dilate_cross(outer)
    ey, ex = np.nonzero(outer & ~inner)
    none = (ey[:0] + y0, ex[:0] + x0, np.zeros((0, 3), np.uint8))
    alpha8 = np.zeros(fg.shape, np.uint8)
    alpha8[inner] = 255
    if not inner.any():
        alpha8[ey, ex] = np.rint(np.clip((dist[ey, ex] - 0.5 * t) / t, 0.0, 1.0) * 255).astype(np.uint8)
        return alpha8, none
    iy, ix, found = _nearest_inside(inner & colour_from, ey, ex)
    Y, X = ey + y0, ex + x0
    obs = rgb[Y, X].astype(np.float32)
    F = rgb[iy + y0, ix + x0].astype(np.float32)
    F[~found] = obs[~found]  # a thin part: its own colour
    B = _surface_at(coef, Y, X, h, w)
    a8, mixed, est = _mix(obs, B, F, dist[ey, ex], fg[ey, ex], like[ey, ex], edges[ey, ex], t)
    alpha8[ey, ex] = a8
    return alpha8, (Y[mixed], X[mixed], est)


def _paper_colour(means: list[np.ndarray], model_sum: np.ndarray, test: BackdropTest, sigma: float,
                  depth: float) -> tuple[np.ndarray, np.ndarray]:
    """(the paper's colour, a floor shadow's darkening) of pixels whose R, G, B means are ``means``, against
    the fitted backdrop (``model_sum``: R + G + B of the surface there): the chromaticity within the
    border's own spread (at least 0.0025) plus the noise's share; the brightness between ``1 - depth`` of the
    paper's and the paper's plus noise."""
    total = np.maximum(means[0] + means[1] + means[2], 1.0)
    tol_c = max(0.0025, 1.2 * test.chroma_noise) + 3.0 * sigma / total
    cdist = np.abs(means[0] / total - float(test.chroma[0]))
    for k in (1, 2):
        np.maximum(cdist, np.abs(means[k] / total - float(test.chroma[k])), out=cdist)
    darkening = total / np.maximum(model_sum, 1.0)
    return cdist <= tol_c, (darkening >= 1.0 - depth) & (darkening <= 1.0 + 3.0 * sigma / total)


def _step_height(sigma: float) -> float:
    """The least height (levels) of a step the cut takes for an edge."""
    return max(8.0 * sigma, 6.0)


def _edge_floor(sigma: float, ring_grad: np.ndarray) -> float:
    """The Sobel gradient above which a pixel may be an edge: over the noise's and over the border ring's own
    strongest gradients (a textured or JPEG-blocky paper raises it)."""
    return max(max(8.0 * sigma, 4.0) * 4.0 / 3.0, 2.0 * float(np.percentile(ring_grad, 99.9)))


def _gradient(planes: list[np.ndarray]) -> np.ndarray:
    """Largest over the planes of the Sobel gradient's magnitude."""
    grad = np.zeros(planes[0].shape, np.float32)
    for p in planes:
        np.maximum(grad, np.hypot(ndimage.sobel(p, axis=1), ndimage.sobel(p, axis=0)), out=grad)
    return grad


def _ring_gradient(rgb: np.ndarray, ring: int) -> np.ndarray:
    """The gradient of :func:`_gradient` over 3x3 means on the frame's border ring (its four strips, in the
    order the whole image's would give them), computed on strips 4 px deeper than the ring, so the values
    are the whole image's."""
    h, w, _ = rgb.shape
    d = ring + 4

    def strip(part: np.ndarray) -> np.ndarray:
        return _gradient([ndimage.uniform_filter(part[..., k].astype(np.float32), size=3) for k in range(3)])

    top, bottom = strip(rgb[:d])[:ring], strip(rgb[h - d:])[-ring:]
    left, right = strip(rgb[:, :d])[:, :ring], strip(rgb[:, w - d:])[:, -ring:]
    return np.concatenate([top.ravel(), bottom.ravel(), left.ravel(), right.ravel()])


def _work_window(rgb: np.ndarray, test: BackdropTest, sigma: float, t: float) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the part of the photo that is not plain backdrop, plus ``WINDOW_MARGIN``.

    Made on 8 x 8 blocks: a block is plain when its mean is within half the threshold of the fitted
    backdrop, its pixels span less than the least step an edge has, and it differs from its neighbours
    by less than half that step - anything a cut could keep (a product, a shadow, a speck, an edge) makes
    its blocks not plain. Falls back to the whole photo when the window would cover most of it."""
    h, w, _ = rgb.shape
    f = WINDOW_BLOCK
    if h < 8 * f or w < 8 * f:
        return 0, h, 0, w
    mean, spread = _block_stats(rgb, f)  # blocks over the whole photo (the last row/column padded)
    dist = np.abs(mean - backdrop_blocks((h, w), test.coef, f, (0, mean.shape[0], 0, mean.shape[1]))).max(axis=2)
    step = _step_height(sigma)
    busy = (dist > 0.5 * t) | (spread > step)
    jump = np.abs(np.diff(mean, axis=0)).max(axis=2) > 0.5 * step
    busy[1:] |= jump
    busy[:-1] |= jump
    jump = np.abs(np.diff(mean, axis=1)).max(axis=2) > 0.5 * step
    busy[:, 1:] |= jump
    busy[:, :-1] |= jump
    rows, cols = np.flatnonzero(busy.any(axis=1)), np.flatnonzero(busy.any(axis=0))
    if rows.size == 0:
        return 0, h, 0, w  # nothing on the backdrop: the cut itself says so
    y0, y1 = max(0, rows[0] * f - WINDOW_MARGIN), min(h, (rows[-1] + 1) * f + WINDOW_MARGIN)
    x0, x1 = max(0, cols[0] * f - WINDOW_MARGIN), min(w, (cols[-1] + 1) * f + WINDOW_MARGIN)
    if (y1 - y0) * (x1 - x0) > 0.6 * h * w:
        return 0, h, 0, w
    return int(y0), int(y1), int(x0), int(x1)


def _block_stats(rgb: np.ndarray, f: int) -> tuple[np.ndarray, np.ndarray]:
    """(mean per channel, largest per-channel max - min) over f x f blocks covering the whole photo: a
    last partial row or column of blocks is completed by repeating the photo's last row or column (which
    adds no spread and keeps the mean within the real pixels' range)."""
    h, w, _ = rgb.shape
    h2, w2 = h // f * f, w // f * f
    parts = [[rgb[:h2, :w2]]]
    if w2 < w:
        parts[0].append(np.pad(rgb[:h2, w2:], ((0, 0), (0, f - (w - w2)), (0, 0)), mode="edge"))
    if h2 < h:
        bottom = np.pad(rgb[h2:], ((0, f - (h - h2)), (0, 0), (0, 0)), mode="edge")
        parts.append([bottom[:, :w2]] + ([np.pad(bottom[:, w2:], ((0, 0), (0, f - (w - w2)), (0, 0)), mode="edge")]
                                          if w2 < w else []))
    means, spreads = [], []
    for row in parts:
        means.append([_block_sum(p, f).astype(np.float32) / np.float32(f * f) for p in row])
        spreads.append([(_block_extreme(p, f, np.maximum).astype(np.int16) - _block_extreme(p, f, np.minimum)).max(axis=2)
                        for p in row])
    return (np.concatenate([np.concatenate(r, axis=1) for r in means], axis=0),
            np.concatenate([np.concatenate(r, axis=1) for r in spreads], axis=0))


def _block_reduce(arr: np.ndarray, f: int, op: np.ufunc, dtype: type | None = None) -> np.ndarray:
    """``op`` (np.add, np.maximum, np.minimum) over f x f blocks, accumulated in ``dtype`` (default: the
    array's), by strided slices - a reduction over strided axes is many times slower."""
    h2, w2 = arr.shape[0] // f * f, arr.shape[1] // f * f
    cols = arr[:h2, 0:w2:f].astype(dtype or arr.dtype)
    for dx in range(1, f):
        op(cols, arr[:h2, dx:w2:f], out=cols)
    out = cols[0:h2:f].copy()
    for dy in range(1, f):
        op(out, cols[dy:h2:f], out=out)
    return out


def _block_sum(arr: np.ndarray, f: int) -> np.ndarray:
    """Sums over f x f blocks of a uint8 image (uint16: exact up to 16 x 16 blocks)."""
    return _block_reduce(arr, f, np.add, np.uint16)


def _block_extreme(arr: np.ndarray, f: int, op: np.ufunc) -> np.ndarray:
    """np.maximum or np.minimum over f x f blocks."""
    return _block_reduce(arr, f, op)


@dataclass(frozen=True)
class _Frame:
    """The photo, the work window (y0, y1, x0, x1) the backdrop cut ran in, and the fitted backdrop there."""

    rgb: np.ndarray
    window: tuple[int, int, int, int]
    model: np.ndarray  # the window's part of the fitted backdrop
    coef: np.ndarray

    @property
    def sub(self) -> np.ndarray:
        y0, y1, x0, x1 = self.window
        return self.rgb[y0:y1, x0:x1]

    @property
    def area(self) -> int:
        return self.rgb.shape[0] * self.rgb.shape[1]


def window_range(planes: list[np.ndarray], where: np.ndarray, size: int) -> np.ndarray:
    """At the pixels of ``where`` (row-major order): the largest over ``planes`` of max - min in the
    size x size window around the pixel, edges mirrored - exactly ``maximum_filter - minimum_filter``
    (scipy's 'reflect' mode), computed only where asked (edge candidates are a few % of a photo)."""
    ys, xs = np.nonzero(where)
    r = size // 2
    out = np.zeros(ys.size, np.float32)
    for plane in planes:
        win = sliding_window_view(np.pad(plane, r, mode="symmetric"), (size, size))[ys, xs]
        np.maximum(out, win.max(axis=(1, 2)) - win.min(axis=(1, 2)), out=out)
    return out


def label_medians(values: np.ndarray, labels: np.ndarray, n: int) -> np.ndarray:
    """Median of ``values`` per label 1..n - exactly ``ndimage.median(values, labels, 1..n)`` (the mean of
    the two middle values, in the values' dtype), with one sort instead of scipy's per-call selection."""
    inside = labels > 0
    v, lab = values[inside], labels[inside]
    order = np.lexsort((v, lab))
    v, lab = v[order], lab[order]
    counts = np.bincount(lab, minlength=n + 1)[1:]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    present = counts > 0
    out = np.zeros(n, values.dtype)
    lo, hi = (starts + (counts - 1) // 2)[present], (starts + counts // 2)[present]
    out[present] = (v[lo] + v[hi]) / 2.0
    return out


def _finish_backdrop(frame: _Frame, fg: np.ndarray, bg: np.ndarray, near: np.ndarray, dist: np.ndarray, t: float,
                     sigma: float, raw_wall: np.ndarray, backdrop_like: np.ndarray,
                     params: CutoutParams, why: str, pockets: bool = True) -> CutOut:
    """Holes, specks, soft edge and diagnostics of a backdrop mask ``fg`` (``bg``: the backdrop reached), all
    over the work window of ``frame``; shares and sizes are of the whole photo.
    ``pockets``: clear small backdrop-coloured pockets beside the backdrop (not where an outline was completed)."""
    area = frame.area
    fg = fg.copy()
    holes_cleared = 0.0
    enclosed = near & fg
    if params.holes != "keep" and enclosed.any():
        hl, hn = ndimage.label(enclosed)
        hsizes = np.bincount(hl.ravel())
        hsizes[0] = 0
        big = hsizes >= max(16, int(params.min_hole_share * area))
        # pockets sealed off by two close edges (under a lid's overhang) are backdrop of any size
        if pockets:
            pocket_ids = np.unique(hl[ndimage.binary_dilation(bg, iterations=4) & enclosed])
            big[pocket_ids[pocket_ids > 0]] |= hsizes[pocket_ids[pocket_ids > 0]] >= 4
        medians = np.zeros(hn + 1)
        medians[1:] = label_medians(dist, hl, hn)
        # paper seen through a hole matches the fitted backdrop closely; a white product that is merely
        # near it (a white candle, a label) does not - keep those, unless the spec says clear them all
        clear = big if params.holes == "backdrop" else big & (medians <= 0.5 * t)
        clear[0] = False
        if clear.any():
            hole = clear[hl]
            hole = ndimage.binary_dilation(hole, iterations=2) & fg & (dist <= 2 * t)  # the wall around it
            fg &= ~hole
            holes_cleared = float(hole.sum())

    labels, n = ndimage.label(fg)
    if n == 0:
        raise ItemError("no product found: the image is plain backdrop")
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    min_size = max(16, int(params.min_object_share * area))
    keep = sizes >= min_size
    if not keep.any():
        raise ItemError(f"no product found: largest object is {int(sizes.max())} px, under {min_size} px")
    fg = keep[labels]
    share = float(fg.sum()) / area
    if share > 0.97:
        raise ItemError(f"cannot separate product from backdrop: foreground covers {share:.0%} of the frame")

    sub_alpha, sub_rgb = _soft_edge(frame.sub, frame.model, dist, fg, t, params.feather, backdrop_like,
                                    ndimage.binary_dilation(raw_wall))
    if not (sub_alpha > 0).any():
        raise ItemError("no product found after edge refinement")
    y0, y1, x0, x1 = frame.window
    rgba = _assemble(frame.rgb, frame.window, sub_rgb, sub_alpha)
    alpha8 = rgba[..., 3]
    diag = diagnose(frame.rgb, alpha8, sigma, (frame.coef, t))
    diag["cutout_holes_cleared"] = round(holes_cleared / max(1.0, float(fg.sum()) + holes_cleared), 4)
    parts = np.bincount(ndimage.label(fg)[0].ravel())[1:]
    diag["cutout_parts"] = int((parts >= 0.05 * parts.max()).sum())
    # an outline drawn where the photo has no sharp step is a guess (a leak into a product the colour of
    # the backdrop): the share of the outline that lies on an edge
    outline = fg & ~ndimage.binary_erosion(fg, border_value=1)
    on_edge = ndimage.binary_dilation(raw_wall, iterations=3)
    diag["cutout_outline_on_edge"] = round(float(on_edge[outline].mean()), 4) if outline.any() else 0.0
    unsure = _unsure(diag, params)
    diag["cutout_confident"] = unsure is None
    reason = why if unsure is None else unsure
    log.debug("backdrop cut-out: %.1f%% of frame, threshold %.1f, %s", 100 * share, t, diag)
    bbox = _shift(_bbox(sub_alpha > 0), x0, y0)
    solid = _shift(_bbox(sub_alpha >= 128), x0, y0) if (sub_alpha >= 128).any() else bbox
    return CutOut(rgba=rgba, bbox=bbox, solid_bbox=solid, method="backdrop", reason=reason, diagnostics=diag,
                  source=frame.rgb, mask=_place(fg, frame), completed=not pockets)


def _assemble(rgb: np.ndarray, window: tuple[int, int, int, int], sub_rgb: np.ndarray, sub_alpha: np.ndarray) -> np.ndarray:
    """The cut's H x W x 4 array (read-only): the photo, with ``sub_rgb`` and ``sub_alpha`` over the window
    (y0, y1, x0, x1) and alpha 0 outside it - interleaved by Pillow, in one pass."""
    y0, y1, x0, x1 = window
    im = Image.fromarray(rgb, "RGB")  # Pillow's own copy: the photo is not written
    if sub_rgb.shape[:2] != rgb.shape[:2]:
        im.paste(Image.fromarray(np.ascontiguousarray(sub_rgb), "RGB"), (x0, y0))
        alpha = np.zeros(rgb.shape[:2], np.uint8)
        alpha[y0:y1, x0:x1] = sub_alpha
    else:
        im = Image.fromarray(np.ascontiguousarray(sub_rgb), "RGB")
        alpha = sub_alpha
    im.putalpha(Image.fromarray(np.ascontiguousarray(alpha), "L"))
    return np.asarray(im)


def _place(sub: np.ndarray, frame: _Frame) -> np.ndarray:
    """A mask over the work window of ``frame`` placed in the whole photo."""
    if sub.shape == frame.rgb.shape[:2]:
        return sub
    y0, y1, x0, x1 = frame.window
    out = np.zeros(frame.rgb.shape[:2], bool)
    out[y0:y1, x0:x1] = sub
    return out


def _unsure(diag: dict[str, Any], params: CutoutParams) -> str | None:
    """Why a backdrop cut cannot be trusted, or None."""
    if diag["cutout_edge_contrast"] < params.min_edge_contrast:
        return (f"{1 - diag['cutout_edge_contrast']:.0%} of the outline has no contrast with the backdrop "
                "(a product the colour of its backdrop?)")
    if diag.get("cutout_outline_on_edge", 1.0) < params.min_edge_contrast:
        return (f"{1 - diag['cutout_outline_on_edge']:.0%} of the outline runs where the photo has no edge "
                "(a product the colour of its backdrop?)")
    if diag["cutout_borders"] > 1:
        return f"the cut runs into {diag['cutout_borders']} sides of the photo"
    if diag.get("cutout_parts", 1) > 1:
        return (f"the cut falls into {diag['cutout_parts']} separate pieces (a second object in the photo, or a part "
                "the colour of the backdrop cut away)")
    return None


def _soft_edge(rgb: np.ndarray, model: np.ndarray, dist: np.ndarray, fg: np.ndarray, t: float, feather: float,
               backdrop_like: np.ndarray | None = None, edges: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Alpha and colour for the band of ``feather`` px on each side of the mask edge.

    Each band pixel is modelled as obs = a*F + (1-a)*B, with B the fitted backdrop and F the nearest
    fully inside product pixel: a is the projection of obs-B on F-B, and the pixel's colour becomes
    F_est = (obs - (1-a)*B) / a, so a new background shows no studio-paper fringe. Where the product's
    colour is too close to the backdrop for that (white on white), a comes from the distance alone.
    Pixels inside the band's inner edge are the source's, untouched; band pixels outside the mask that
    look like the backdrop (``backdrop_like``: near it, or its shadow) stay transparent, and band pixels
    inside the mask away from any step (``edges``) stay opaque: only a step is mixed.
    """
    h, w = fg.shape
    band = max(1, int(np.ceil(feather)))
    inner = ndimage.binary_erosion(fg, iterations=band, border_value=0)
    outer = ndimage.binary_dilation(fg, iterations=band)
    alpha = np.zeros((h, w), dtype=np.float32)
    alpha[inner] = 1.0
    rgb_out = rgb.copy()
    if not inner.any():
        edge = outer
        alpha[edge] = np.clip((dist[edge] - 0.5 * t) / t, 0.0, 1.0)
        return np.rint(alpha * 255).astype(np.uint8), rgb_out
    bx0, by0, bx1, by1 = _bbox(outer)  # work in the product's box only: the transform is not cheap
    y0, x0 = max(by0 - band - 1, 0), max(bx0 - band - 1, 0)
    y1, x1 = min(by1 + band + 1, h), min(bx1 + band + 1, w)
    sub_inner = inner[y0:y1, x0:x1]
    edge = outer[y0:y1, x0:x1] & ~sub_inner
    _, (iy, ix) = ndimage.distance_transform_edt(~sub_inner, return_indices=True)
    ey, ex = np.nonzero(edge)
    obs = rgb[y0:y1, x0:x1][ey, ex].astype(np.float32)
    B = model[y0:y1, x0:x1][ey, ex]
    F = rgb[y0:y1, x0:x1][iy[ey, ex], ix[ey, ex]].astype(np.float32)
    d = dist[y0:y1, x0:x1][ey, ex]
    infg = fg[y0:y1, x0:x1][ey, ex]
    like = backdrop_like[y0:y1, x0:x1][ey, ex] if backdrop_like is not None else np.zeros_like(infg)
    on_step = edges[y0:y1, x0:x1][ey, ex] if edges is not None else None
    a8, mixed, est = _mix(obs, B, F, d, infg, like, on_step, t)
    alpha8 = np.zeros((h, w), np.uint8)
    alpha8[inner] = 255
    alpha8[y0 + ey, x0 + ex] = a8
    colour = rgb_out[y0:y1, x0:x1]
    colour[ey[mixed], ex[mixed]] = est
    return alpha8, rgb_out


def _mix(obs: np.ndarray, B: np.ndarray, F: np.ndarray, d: np.ndarray, infg: np.ndarray, like: np.ndarray,
         on_step: np.ndarray | None, t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Alpha (uint8) of edge pixels observed as ``obs`` (n x 3) between the backdrop ``B`` and the nearest
    inside product colour ``F``, with their distance to the backdrop ``d``, whether they are inside the
    outline ``infg``, look like the backdrop ``like`` and lie on a step ``on_step``; and, for the mixed
    ones (0 < alpha < 255, the boolean ``mixed``), their recovered product colour (uint8, m x 3)."""
    fb = F - B
    norm = (fb * fb).sum(axis=1)
    a = np.clip(((obs - B) * fb).sum(axis=1) / np.maximum(norm, 1e-6), 0.0, 1.0)
    weak = norm < (3 * t) ** 2  # product colour too close to the backdrop to project on
    # there the colour says nothing: inside the outline it is product (a light label reaching the
    # silhouette is not nibbled) unless it looks like the backdrop; elsewhere the distance decides
    sure = weak & infg & ~like
    a[sure] = 1.0
    a[weak & like] = 0.0
    rest = weak & ~infg & ~like
    a[rest] = np.clip((d[rest] - 0.5 * t) / t, 0.0, 1.0)
    if on_step is not None:  # inside the outline, away from a step, nothing is mixed: product (unless it is backdrop)
        a[infg & ~on_step & ~like] = 1.0
    a[~infg & like] = 0.0  # a floor shadow projects onto a dark product: it is not product
    a[a < 0.02] = 0.0  # sensor noise projected on F-B, not product
    a8 = np.rint(a * 255)
    mixed = (a8 > 0) & (a8 < 255)
    am = a8[mixed][:, None] / 255.0
    est = (obs[mixed] - (1.0 - am) * B[mixed]) / am
    # the division amplifies noise where a is small: lean on the nearest inside colour there
    trust = np.clip((am - 0.1) / 0.4, 0.0, 1.0)
    est = trust * est + (1.0 - trust) * F[mixed]
    alpha8 = np.rint(a.astype(np.float32) * 255).astype(np.uint8)  # the alpha as a float32 image rounds it
    return alpha8, mixed, np.clip(np.rint(est), 0, 255).astype(np.uint8)
