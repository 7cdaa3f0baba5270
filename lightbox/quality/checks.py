"""Measure an encoded output and gate it by its channel's rules (rules are data: presets/rules/*.yaml).

Metrics are measured on the bytes that would be published, not on the in-memory image - decoded once, in
the generate stage right after encoding (:func:`check_output` keeps them when the staged bytes hash the
same, else measures again):

| metric | what |
|---|---|
| width, height, longest_side, shortest_side, aspect, megapixels | size and shape (aspect = width / height) |
| format, mode, has_alpha, file_bytes | container and colour mode as encoded |
| luma_std | spread of luminance; ~0 for a blank image |
| border_purity | share of the outer border strip (0.5 % of the short side, >= 2 px) exactly at the channel's forced colour |
| border_match | share of that strip within 3 levels of the expected background (any solid/gradient background) |
| fill_longest | product bounding box / frame by the longer ratio of the two sides |
| fill_area | product bounding box area / frame area |
| product_present | the product covers at least 1 % of the frame |
| touches_frame | the product reaches the border strip |
| background_detail | share of pixels away from the product (its placed box + 2 % margin; the contact-shadow zone below it excluded) that differ from the expected background by > 10 levels: text, borders, watermarks |
| sharpness | variance of the Laplacian of the product region's luminance |
| clipped_highlights, clipped_shadows | share of product pixels at >= 254 on all channels / <= 1 on all channels |
| phash | difference hash of the product region, 16 x 16 bits per colour plane (hex): near-duplicates across the catalog |
| border_mean | mean colour of the border strip (catalog consistency of backgrounds) |
| clipped | clipped_highlights + clipped_shadows (catalog consistency of exposure) |

Recorded by the generate stage, because they need the cut-out: ``fidelity`` (mean absolute difference,
in levels, between the product's own resampled pixels and the encoded output's product region, over
opaque product pixels), ``fidelity_source`` (the same against the *source photo* resampled alike, on the
output pixels whose resize window lies in the cut's opaque interior - where the cut kept the source's
colours there, the resampled cut is the resampled source byte for byte (``generate.source_interior``);
a cut that repainted product pixels is compared with the source resampled on its own and shows here),
``upscale`` (resampling factor of the product),
``cutout_method`` / ``cutout_reason`` and the cut's diagnostics (``lightbox.imaging.cutout.diagnose``:
``cutout_confident``, ``cutout_edge_contrast``, ``cutout_borders``, ``cutout_raggedness``,
``cutout_share``, ``cutout_holes``, ...). Rules with ``when: cut`` apply only to outputs cut from a photo.

The product is found as the pixels differing from the expected background by more than 4 levels;
rows at the bottom that hold only hue-neutral darkening (the contact shadow) are trimmed. AI scenes
have no plain background: their product box comes from the placement (``fill_source: placement``).
"""

from __future__ import annotations

import hashlib
import io
import math
from typing import Any

import numpy as np
from PIL import Image, ImageChops

from lightbox.imaging.compose import background_image, background_rows
from lightbox.records import Output
from lightbox.specs.models import Look

PRODUCT_DELTA = 4
DETAIL_DELTA = 10


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if not rows.size:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _strip_boxes(w: int, h: int, s: int) -> list[tuple[int, int, int, int]]:
    """The outer border strip of width ``s`` as four boxes (x0, y0, x1, y1): top, bottom, left, right."""
    return [(0, 0, w, s), (0, h - s, w, h), (0, s, s, h - s), (w - s, s, w, h - s)]


def _strip_pixels(a: np.ndarray | Image.Image, s: int) -> np.ndarray:
    """The outer border strip of width ``s`` as a flat array of pixels: slices of an array, crops of an
    image (no copy of the whole image)."""
    if isinstance(a, Image.Image):
        parts = [np.asarray(a.crop(box)) for box in _strip_boxes(a.width, a.height, s)]
    else:
        parts = [a[y0:y1, x0:x1] for x0, y0, x1, y1 in _strip_boxes(a.shape[1], a.shape[0], s)]
    return np.concatenate([p.reshape(-1, *p.shape[2:]) for p in parts])


def dhash(pixels: np.ndarray | Image.Image, size: int = 16) -> str:
    """Difference hash: size x size bits per plane (a grey image: one plane; RGB: three, so colour
    variants of one shape do not collide), as hex."""
    im = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels.astype(np.uint8, copy=False))
    small = np.asarray(im.resize((size + 1, size), Image.Resampling.BILINEAR),
                       np.int16)  # all planes in one resize: per plane the same values as a resize of that plane
    planes = [small] if small.ndim == 2 else [small[..., k] for k in range(small.shape[2])]
    bits = [(p[:, 1:] > p[:, :-1]).ravel() for p in planes]
    flat = np.concatenate(bits)
    return f"{int(''.join('1' if b else '0' for b in flat), 2):0{len(flat) // 4}x}"


def decode_output(data: bytes) -> Image.Image:
    """The encoded output decoded (once: the generate stage measures and checks fidelity on it)."""
    im = Image.open(io.BytesIO(data))
    im.load()
    return im


def measure(data: bytes, look: Look, product_box: tuple[int, int, int, int] | None = None,
            image: Image.Image | None = None) -> dict[str, Any]:
    """Metrics of an encoded output. ``product_box`` (x0, y0, x1, y1): where the product was placed,
    used for AI scenes, which have no plain background to find the product against. ``image``: ``data``
    already decoded by :func:`decode_output` (not decoded again)."""
    im = image if image is not None else decode_output(data)
    ch = look.channel
    w, h = im.size
    m: dict[str, Any] = {
        "width": w, "height": h, "longest_side": max(w, h), "shortest_side": min(w, h),
        "aspect": round(w / h, 4), "megapixels": round(w * h / 1e6, 3),
        "format": im.format, "mode": im.mode,
        "has_alpha": im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info,
        "file_bytes": len(data),
    }
    rgb_im = im if im.mode == "RGB" else im.convert("RGB")  # convert() to the same mode would copy
    luma_im = rgb_im.convert("L")  # ITU-R 601 luma, computed in C
    luma = np.asarray(luma_im)
    m["luma_std"] = round(_std_of_histogram(luma_im.histogram()), 3)
    strip = max(2, round(0.005 * min(w, h)))

    if look.generation is not None:
        box = product_box
        fg = None
    elif look.background == "transparent":
        alpha = np.asarray(im.getchannel("A")) if m["has_alpha"] else np.full((h, w), 255, np.uint8)
        fg = alpha > 0
        box = _box_of(fg)
        # the background is "nothing": anything visible away from the product (text, a border, a watermark) is detail
        m["background_detail"] = _background_detail(alpha, product_box or box, strip)
    else:
        if (w, h) == (ch.width, ch.height):
            expected = background_rows(look).astype(np.int16)  # H x 1 x 3
            expected_im = background_image(look)
        else:
            ends = np.concatenate([_pixels(rgb_im, (0, 0, w, 1)), _pixels(rgb_im, (0, h - 1, w, h))])
            expected = np.median(ends.reshape(-1, 3), axis=0).astype(np.int16)[None, None, :]
            expected_im = Image.new("RGB", (w, h), tuple(int(v) for v in expected[0, 0]))
        diff = background_difference(rgb_im, expected_im)
        fg = diff > PRODUCT_DELTA
        rows = np.flatnonzero(fg.any(axis=1))
        if rows.size:
            _trim_shadow_rows(fg, rgb_im, expected, rows, look)
        box = _box_of(fg)
        edge_px = _strip_pixels(rgb_im, strip)
        if isinstance(ch.background, tuple):
            m["border_purity"] = float((edge_px == np.array(ch.background, np.uint8)).all(axis=1).mean())
        m["border_match"] = float((_strip_pixels(diff, strip) <= 3).mean())
        m["border_mean"] = [round(float(v), 2) for v in edge_px.mean(axis=0)]
        m["background_detail"] = _background_detail(diff, product_box or box, strip)

    if box is not None:
        x0, y0, x1, y1 = box
        bw, bh = x1 - x0, y1 - y0
        if "fill_longest" not in m and look.generation is None:
            m["fill_longest"] = float(max(bw / w, bh / h))
            m["fill_area"] = float(bw * bh / (w * h))
        m["product_present"] = bw * bh >= 0.01 * w * h
        m["touches_frame"] = _touches_border(fg, box, strip, (h, w))
        m["sharpness"] = laplacian_variance(luma[y0:y1, x0:x1]) if bw * bh > 9 else 0.0
        box_im = rgb_im.crop(box)
        sel = None if fg is None else Image.fromarray(fg[y0:y1, x0:x1])  # mode "1": the product's pixels
        r, g, b = box_im.split()
        lo = ImageChops.darker(ImageChops.darker(r, g), b).histogram(sel)  # the darkest of R, G, B, counted
        hi = ImageChops.lighter(ImageChops.lighter(r, g), b).histogram(sel)
        n_sel = sum(lo)
        m["clipped_highlights"] = round(float((lo[254] + lo[255]) / n_sel), 4) if n_sel else 0.0
        m["clipped_shadows"] = round(float((hi[0] + hi[1]) / n_sel), 4) if n_sel else 0.0
        m["clipped"] = round(m["clipped_highlights"] + m["clipped_shadows"], 4)
        m["phash"] = dhash(box_im)
    else:
        if look.generation is None:
            m["fill_longest"] = 0.0
            m["fill_area"] = 0.0
        m["product_present"] = False
        m["touches_frame"] = False
        m["sharpness"] = 0.0
        m["clipped_highlights"] = 0.0
        m["clipped_shadows"] = 0.0
        m["phash"] = dhash(rgb_im)
    return m


def _background_detail(diff: np.ndarray, placed: tuple[int, int, int, int] | None, strip: int) -> float:
    """Share of the pixels away from the product that differ from the background by more than
    ``DETAIL_DELTA``: away = all but the placed box with a 2 % margin and the contact shadow's zone below
    it; the border strip is always away. Counted over the whole frame less the part near the product."""
    h, w = diff.shape
    hits, count = int(np.count_nonzero(diff > DETAIL_DELTA)), h * w
    if placed is not None:
        mx, my = round(0.02 * w), round(0.02 * h)
        x0, y0, x1, y1 = placed
        ny0, nx0 = max(0, y0 - my), max(0, x0 - mx)
        ny1, nx1 = min(h, max(y1 + my, y1 + round(0.15 * (y1 - y0)) + my)), min(w, x1 + mx)
        if ny1 > ny0 and nx1 > nx0:
            near = np.zeros((ny1 - ny0, nx1 - nx0), bool)
            near[max(0, y0 - my) - ny0 : y1 + my - ny0, :] = True  # the placed box with its margin
            near[max(0, y1 - ny0) : y1 + round(0.15 * (y1 - y0)) + my - ny0, max(0, x0 - nx0) : max(0, x1 - nx0)] = True  # the shadow
            rows, cols = np.arange(ny0, ny1), np.arange(nx0, nx1)
            near[(rows < strip) | (rows >= h - strip)] = False  # a border is never part of the product or its shadow
            near[:, (cols < strip) | (cols >= w - strip)] = False
            count -= int(np.count_nonzero(near))
            hits -= int(np.count_nonzero(near & (diff[ny0:ny1, nx0:nx1] > DETAIL_DELTA)))
    return float(hits / count) if count else 0.0


def _touches_border(fg: np.ndarray | None, box: tuple[int, int, int, int], strip: int, shape: tuple[int, int]) -> bool:
    """Whether the product (``fg`` within ``box``; the whole box without ``fg``) reaches the border strip."""
    h, w = shape
    x0, y0, x1, y1 = box
    if fg is None:
        return x1 > x0 and y1 > y0 and (x0 < strip or y0 < strip or x1 > w - strip or y1 > h - strip)
    return bool(fg[y0 : min(y1, strip), x0:x1].any() or fg[max(y0, h - strip) : y1, x0:x1].any()
                or fg[y0:y1, x0 : min(x1, strip)].any() or fg[y0:y1, max(x0, w - strip) : x1].any())


def background_difference(rgb: Image.Image, expected: Image.Image) -> np.ndarray:
    """Per pixel, the largest of |R - R'|, |G - G'|, |B - B'| against the expected background (uint8),
    computed by Pillow in C."""
    r, g, b = ImageChops.difference(rgb, expected).split()
    return np.asarray(ImageChops.lighter(ImageChops.lighter(r, g), b))


def laplacian_variance(luma: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of ``luma`` (uint8; its edges mirrored, as scipy's
    ``ndimage.laplace`` mirrors them), in integers: exact, rounded once to 3 decimals."""
    p = np.pad(luma, 1, mode="symmetric").astype(np.int16)
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    flat = lap.ravel().astype(np.int64)
    n, s1, s2 = flat.size, int(flat.sum()), int(flat @ flat)
    return round((n * s2 - s1 * s1) / (n * n), 3)


def _std_of_histogram(hist: list[int]) -> float:
    """Standard deviation of the values a 256-bin histogram counts: integer sums, exact, one rounding."""
    n = sum(hist)
    if not n:
        return 0.0
    s1 = sum(i * c for i, c in enumerate(hist))
    s2 = sum(i * i * c for i, c in enumerate(hist))
    return math.sqrt((n * s2 - s1 * s1) / (n * n))


def _pixels(im: Image.Image, box: tuple[int, int, int, int]) -> np.ndarray:
    """The pixels of ``im`` in ``box`` as an array (a crop: no copy of the whole image)."""
    return np.asarray(im.crop(box))


def _trim_shadow_rows(fg: np.ndarray, rgb_im: Image.Image, expected: np.ndarray, rows: np.ndarray, look: Look) -> None:
    """Clear the bottom rows of ``fg`` that hold only hue-neutral darkening of the background (the
    contact shadow). Works upwards in blocks and stops at the first row with a solid product pixel."""
    depth = (look.shadow.opacity if look.shadow.enabled else 0.0) + 0.02
    bottom = int(rows[-1]) + 1
    top_limit = int(rows[0])
    step = 64
    while bottom > top_limit:
        start = max(top_limit, bottom - step)
        block = _pixels(rgb_im, (0, start, rgb_im.width, bottom)).astype(np.float32)
        exp = np.broadcast_to(expected[start:bottom] if expected.shape[0] > 1 else expected, block.shape).astype(np.float32)
        ratio = block / np.maximum(exp, 1.0)
        rmin = np.minimum(np.minimum(ratio[..., 0], ratio[..., 1]), ratio[..., 2])
        rmax = np.maximum(np.maximum(ratio[..., 0], ratio[..., 1]), ratio[..., 2])
        shadow_like = (rmax <= 1.002) & (rmin >= 1.0 - depth) & (rmax - rmin <= 0.03)
        solid_rows = np.flatnonzero((fg[start:bottom] & ~shadow_like).any(axis=1))
        if solid_rows.size:
            fg[start + int(solid_rows[-1]) + 1 :] = False
            return
        bottom = start
    fg[top_limit:] = False


def fidelity(data: bytes | Image.Image, reference: np.ndarray | Image.Image, x: int, y: int, source: np.ndarray | None = None,
             interior: np.ndarray | None = None) -> float | tuple[float, float]:
    """Mean absolute difference (levels) between the opaque pixels of ``reference`` (the resampled
    cut-out, RGBA) and the encoded output at (x, y). 0 = untouched; JPEG alone gives ~1-3.

    ``data``: the encoded bytes, or the image :func:`decode_output` made of them. With ``source`` (the
    source photo's pixels resampled the same way, RGBA) ``(fidelity, fidelity to the source)`` is returned;
    with ``interior`` (bool, the reference's size: where ``reference`` is, byte for byte, the source
    resampled) the second is measured against ``reference`` on its opaque pixels there, from the same
    difference image."""
    im = data if isinstance(data, Image.Image) else decode_output(data)
    out = im if im.mode == "RGB" else im.convert("RGB")
    if interior is not None:
        return _mad(out, reference, x, y, interior)
    first = _mad(out, reference, x, y)[0]
    if source is None:
        return first
    return first, _mad(out, source, x, y)[0]


def _mad(out: Image.Image, reference: np.ndarray | Image.Image, x: int, y: int,
         within: np.ndarray | None = None) -> tuple[float, float]:
    """Sum of |out - reference| over the reference's opaque pixels, by the histogram of Pillow's per-pixel
    difference under the opaque mask (integers, exact), over 3 x their count; second, the same over the
    opaque pixels in ``within`` (bool, the reference's size; 0.0 without it)."""
    w, h = reference.size if isinstance(reference, Image.Image) else (reference.shape[1], reference.shape[0])
    oy0, ox0 = max(y, 0), max(x, 0)
    oy1, ox1 = min(y + h, out.height), min(x + w, out.width)
    if oy1 <= oy0 or ox1 <= ox0:
        return 0.0, 0.0
    if isinstance(reference, Image.Image):
        whole = (oy0 - y, ox0 - x, oy1 - y, ox1 - x) == (0, 0, h, w)
        ref = reference if whole else reference.crop((ox0 - x, oy0 - y, ox1 - x, oy1 - y))
    else:
        ref = Image.fromarray(reference[oy0 - y : oy1 - y, ox0 - x : ox1 - x])
    opaque = ref.getchannel("A").point(_OPAQUE)
    diff = ImageChops.difference(out.crop((ox0, oy0, ox1, oy1)), ref.convert("RGB"))
    if within is None:
        return _hist_mean(diff.histogram(opaque)), 0.0
    part = Image.fromarray(within[oy0 - y : oy1 - y, ox0 - x : ox1 - x]).convert("L")  # 0 / 255
    return _hist_mean(diff.histogram(opaque)), _hist_mean(diff.histogram(ImageChops.darker(opaque, part)))


def _hist_mean(histogram: list[int]) -> float:
    """The mean level of an RGB difference histogram (3 x 256 counts), rounded to 3 decimals."""
    hist = np.asarray(histogram, np.int64).reshape(3, 256)
    count = int(hist[0].sum())
    if not count:
        return 0.0
    return round(float(int((hist * np.arange(256)).sum())) / (3 * count), 3)


_OPAQUE = [0] * 255 + [255]  # alpha 255 -> mask 255, anything else -> 0


def evaluate(metrics: dict[str, Any], look: Look, ai_generated: bool = False, role: str = "main") -> tuple[str, list[str], list[str]]:
    """('passed' | 'warned' | 'failed', reasons, ids of failed rules). A rule that applies to this
    output but whose metric nobody measured fails: a gate that cannot see does not pass. ``role``: a rule
    for main images only (``role: main``) warns on an additional photo."""
    reasons: list[str] = []
    failed_ids: list[str] = []
    worst = "passed"
    from_photo = "cutout_method" in metrics
    for rule in look.channel.rules:
        if not rule.applies(ai_generated, from_photo):
            continue
        if rule.metric not in metrics:
            reasons.append(f"[fail] {rule.id}: {rule.metric} not measured")
            failed_ids.append(rule.id)
            worst = "failed"
            continue
        if not rule.check(metrics[rule.metric]):
            severity = rule.severity_for(role)
            reasons.append(f"[{severity}] {rule.describe(metrics[rule.metric], metrics)}")
            failed_ids.append(rule.id)
            if severity == "fail":
                worst = "failed"
            elif worst == "passed":
                worst = "warned"
    return worst, reasons, failed_ids


def check_output(output: Output, data: bytes, look: Look) -> Output:
    """Gate the staged bytes ``data``. Metrics the generate stage measured on exactly these bytes
    (``measured_sha256`` equal to their hash) stand; otherwise they are measured here."""
    sha = hashlib.sha256(data).hexdigest()
    if output.metrics.get("measured_sha256") == sha:
        measured: dict[str, Any] = {}
    else:
        box = output.metrics.get("product_box")
        measured = measure(data, look, product_box=tuple(box) if box else None)  # type: ignore[arg-type]
    metrics = {**output.metrics, **measured}  # measured values win over recorded ones
    status, reasons, _ = evaluate(metrics, look, output.ai_generated, output.role)
    if output.sha256 and output.sha256 != sha:
        status, reasons = "failed", [*reasons, "[fail] integrity: staged bytes differ from what generate wrote"]
    return output.to("checked", qc=status, qc_reasons=reasons, metrics=metrics)
