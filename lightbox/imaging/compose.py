"""Place a cut-out product on a channel's canvas: background, contact shadow, framing, encoding.

Product pixels are only resampled (premultiplied Lanczos) and composited with their own alpha: where
the product is opaque, the output pixel *is* the resampled product pixel.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from lightbox.imaging.cutout import CutOut
from lightbox.imaging.decode import SRGB_ICC
from lightbox.specs.models import ChannelPreset, GradientBackground, Look, SolidBackground


@dataclass(frozen=True)
class Placement:
    x: int
    y: int
    width: int
    height: int
    scale: float


def place(bbox_size: tuple[int, int], look: Look, frame: tuple[int, int] | None = None,
          anchor: tuple[int, int] | None = None) -> Placement:
    """Where the product goes: longest side at ``fill`` of the frame, centred or standing on a floor line.

    ``frame`` defaults to the channel's size; the AI engine passes its smaller working size. ``anchor``: the
    box (source pixels) of the product in its main photo, for another photo of the same shoot: the product is
    shown at no larger a scale than there, so a product's angles keep one scale where they fit the frame.
    """
    fw, fh = frame or (look.channel.width, look.channel.height)
    bw, bh = bbox_size
    scale = look.fill * min(fw / bw, fh / bh)
    if anchor is not None:  # never below a fill the channel's rules require of every photo
        least = look.channel.fill_bounds("additional")[0] * min(fw / bw, fh / bh)
        scale = max(min(scale, look.fill * min(fw / anchor[0], fh / anchor[1])), least)
    w, h = max(1, round(bw * scale)), max(1, round(bh * scale))
    x = (fw - w) // 2
    if look.placement == "bottom":
        y = fh - h - round((1 - look.fill) / 2 * fh)
    else:
        y = (fh - h) // 2
    return Placement(x=x, y=y, width=w, height=h, scale=scale)


def layout(cut: CutOut, look: Look, frame: tuple[int, int] | None = None,
           anchor: tuple[int, int] | None = None) -> tuple[Placement, Placement]:
    """(where the cropped cut-out goes, where its solid part goes): the solid part (alpha >= 128) is
    framed at the look's fill (``anchor``: see :func:`place`); faint edge pixels around it come along at the
    same scale."""
    x0, y0, x1, y1 = cut.bbox
    sx0, sy0, sx1, sy1 = cut.solid_bbox
    solid = place((sx1 - sx0, sy1 - sy0), look, frame, anchor)
    s = solid.scale
    w, h = max(1, round((x1 - x0) * s)), max(1, round((y1 - y0) * s))
    if (x0, y0, x1, y1) == (sx0, sy0, sx1, sy1):
        return solid, solid
    crop = Placement(x=solid.x - round((sx0 - x0) * s), y=solid.y - round((sy0 - y0) * s), width=w, height=h, scale=s)
    return crop, solid


def paste_window(canvas_size: tuple[int, int], p: Placement) -> tuple[slice, slice, slice, slice]:
    """(canvas rows, canvas cols, product rows, product cols) of the part of ``p`` inside the canvas."""
    cw, ch = canvas_size
    cx0, cy0 = max(p.x, 0), max(p.y, 0)
    cx1, cy1 = min(p.x + p.width, cw), min(p.y + p.height, ch)
    return (slice(cy0, cy1), slice(cx0, cx1), slice(cy0 - p.y, cy1 - p.y), slice(cx0 - p.x, cx1 - p.x))


def resampled_image(cut: CutOut, size: tuple[int, int]) -> Image.Image:
    """:func:`resample_image` of the cut-out (RGBA), memoised on it: render pastes it and the fidelity
    check compares against it, with no array copy between."""
    key = ("image", size)
    if key not in cut.cache:
        product = cut.product
        if (product.shape[1], product.shape[0]) == size:
            cut.cache[key] = Image.fromarray(np.ascontiguousarray(product), "RGBA")
        else:
            if "premultiplied" not in cut.cache:  # the product converted once for all its sizes
                cut.cache["premultiplied"] = Image.fromarray(np.ascontiguousarray(product), "RGBA").convert("RGBa")
            cut.cache[key] = _resize_premultiplied(cut.cache["premultiplied"], product, size)
    return cut.cache[key]


def resample_image(rgba: np.ndarray | Image.Image, size: tuple[int, int]) -> Image.Image:
    """Premultiplied Lanczos resize (no colour fringes from transparent pixels) of an RGBA array or image,
    as an RGBA image; identity at scale 1."""
    im = rgba if isinstance(rgba, Image.Image) else Image.fromarray(np.ascontiguousarray(rgba), "RGBA")
    if im.size == size:
        return im
    return _resize_premultiplied(im.convert("RGBa"), im, size)


def _resize_premultiplied(premultiplied: Image.Image, rgba: np.ndarray | Image.Image, size: tuple[int, int]) -> Image.Image:
    """Lanczos of ``premultiplied`` (``rgba`` premultiplied, as an array or an image); when enlarging, the pixels along the product's
    outline bilinear instead (:func:`_bilinear_outline`). Enlarged, Lanczos rings at a hard edge: the alpha
    overshoots past 255 and is clipped, so the unpremultiplied colour overshoots - a bright line inside a light
    product's edge (the white candle's base: 247 beside 231; a flat 231 edge rang to 255) - and it leaves ghost
    pixels a row outside. Reduced, it rings far less (+4 to +8 levels, ghosts under alpha 20): left as it is.
    The product's interior is Lanczos, byte for byte, either way."""
    out = premultiplied.resize(size, Image.Resampling.LANCZOS).convert("RGBA")
    if size[0] <= premultiplied.width and size[1] <= premultiplied.height:
        return out
    return _bilinear_outline(out, rgba if isinstance(rgba, np.ndarray) else np.asarray(rgba.convert("RGBA")), size)


def _bilinear_outline(out: Image.Image, rgba: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """``out`` with the pixels whose Lanczos window reads a pixel of ``rgba`` that is not opaque (the complement
    of :func:`interior_after_resample`), where Lanczos leaves anything, replaced by the premultiplied
    bilinear interpolation of ``rgba`` (as Pillow's bilinear enlargement: pixel centres at +0.5, the border
    repeated), computed for those pixels only."""
    opaque = rgba[..., 3] == 255
    if opaque.all():
        return out
    h, w = opaque.shape
    arr = np.array(out)
    band = arr[..., 3] > 0  # where Lanczos left nothing, the bilinear adds at most a faint pixel: left as it is
    band &= ~interior_after_resample(opaque, size)
    oy, ox = np.nonzero(band)
    if not oy.size:
        return out
    ow, oh = size
    y = (oy + 0.5) * (h / oh) - 0.5  # each pixel's centre in source coordinates
    x = (ox + 0.5) * (w / ow) - 0.5
    y0, x0 = np.floor(y), np.floor(x)
    wy, wx = (y - y0).astype(np.float32)[:, None], (x - x0).astype(np.float32)[:, None]
    ya, yb = np.clip(y0, 0, h - 1).astype(np.intp), np.clip(y0 + 1, 0, h - 1).astype(np.intp)
    xa, xb = np.clip(x0, 0, w - 1).astype(np.intp), np.clip(x0 + 1, 0, w - 1).astype(np.intp)

    def tap(yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
        px = rgba[yy, xx].astype(np.float32)
        px[:, :3] *= px[:, 3:] / 255.0
        return px

    pre = (1 - wy) * ((1 - wx) * tap(ya, xa) + wx * tap(ya, xb)) + wy * ((1 - wx) * tap(yb, xa) + wx * tap(yb, xb))
    a = pre[:, 3]
    colour = pre[:, :3] * (255.0 / np.maximum(a, 1e-6))[:, None]
    arr[oy, ox, :3] = np.where(a[:, None] > 0, np.clip(np.rint(colour), 0, 255), 0).astype(np.uint8)
    arr[oy, ox, 3] = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGBA")


def resample_product(rgba: np.ndarray | Image.Image, size: tuple[int, int]) -> np.ndarray:
    """:func:`resample_image` as an H x W x 4 array."""
    if isinstance(rgba, Image.Image):
        if rgba.size == size:
            return np.asarray(rgba)
    elif (rgba.shape[1], rgba.shape[0]) == size:
        return rgba
    return np.asarray(resample_image(rgba, size))


def resample_windows(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(first input pixel, number of input pixels) that each output pixel of a Lanczos resize from
    ``in_size`` to ``out_size`` along one axis reads: Pillow's window (``precompute_coeffs`` in its
    Resample.c, in the same double arithmetic). An axis whose size does not change is not resampled."""
    if in_size == out_size:
        return np.arange(out_size), np.ones(out_size, np.int64)
    scale = in_size / out_size
    support = 3.0 * max(scale, 1.0)  # Lanczos: 3 input pixels, stretched when reducing
    centre = (np.arange(out_size) + 0.5) * scale
    first = np.maximum(np.trunc(centre - support + 0.5), 0).astype(np.int64)  # C's (int) cast truncates
    last = np.minimum(np.trunc(centre + support + 0.5), in_size).astype(np.int64)
    return first, last - first


def interior_after_resample(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The pixels of ``mask`` (H x W bool) resized to ``size`` (w, h) by :func:`resample_product` whose
    whole Lanczos window lies in ``mask``: there a resize reads nothing outside it, so two images that
    agree on ``mask`` resize to the same pixels. Window sums of the pixels outside, by cumulative sums
    (rows first, then columns: the window is a rectangle)."""
    h, w = mask.shape
    ys, ny = resample_windows(h, size[1])
    xs, nx = resample_windows(w, size[0])
    count = np.int16 if max(h, w) < 2**15 else np.int32  # counts of at most h (w) pixels
    outside = np.zeros((h + 1, w), count)
    np.cumsum(~mask, axis=0, dtype=count, out=outside[1:])
    rows_clear = outside[ys + ny] == outside[ys]  # out_h x W: the column's window of rows is inside
    cols = np.zeros((len(ys), w + 1), count)
    np.cumsum(~rows_clear, axis=1, dtype=count, out=cols[:, 1:])
    return cols[:, xs + nx] == cols[:, xs]


def background_rows(look: Look) -> np.ndarray:
    """The background as one colour per row (H x 1 x 3 uint8): solid and vertical gradients vary by row only."""
    ch = look.channel
    bg = look.background
    if isinstance(bg, SolidBackground):
        return np.broadcast_to(np.array(bg.color, dtype=np.uint8), (ch.height, 1, 3))
    if isinstance(bg, GradientBackground):
        t = np.linspace(0.0, 1.0, ch.height, dtype=np.float32)[:, None, None]
        row = np.array(bg.top, dtype=np.float32) * (1 - t) + np.array(bg.bottom, dtype=np.float32) * t
        return np.clip(np.rint(row), 0, 255).astype(np.uint8)
    raise ValueError(f"no canvas for background {bg!r}")


def background_image(look: Look) -> Image.Image:
    """The look's background as an RGB image, built once per background and size: shared, never drawn on."""
    ch = look.channel
    key = (look.background.model_dump_json(), ch.width, ch.height)
    made = _BACKGROUNDS.get(key)
    if made is None:
        made = Image.fromarray(np.broadcast_to(background_rows(look), (ch.height, ch.width, 3)).copy(), "RGB")
        with _BACKGROUND_LOCK:  # chunks render on several threads
            if len(_BACKGROUNDS) >= 8:  # a few looks per brand; a worker serving many brands stays bounded
                _BACKGROUNDS.pop(next(iter(_BACKGROUNDS)))
            _BACKGROUNDS[key] = made
    return made


_BACKGROUNDS: dict[tuple[str, int, int], Image.Image] = {}
_BACKGROUND_LOCK = threading.Lock()


BASE_ROWS = 0.04  # the product's base: its opaque columns in the bottom 4 % of its height (at least 2 rows)
BASE_MIN = 0.35  # a base narrower than this share of the product (a stem, a foot) still casts this wide a shadow


def base_span(cut: CutOut, solid: Placement) -> tuple[float, float] | None:
    """The canvas x-range of what the product stands on: the columns of its bottom rows, not its whole width - a
    mug's handle or a kettle's spout casts no contact shadow under itself. None when the bottom rows are empty."""
    x0, y0, x1, y1 = cut.solid_bbox
    k = max(2, round(BASE_ROWS * (y1 - y0)))
    cols = np.flatnonzero((cut.rgba[max(y0, y1 - k) : y1, x0:x1, 3] >= 128).any(axis=0))
    if cols.size == 0:
        return None
    scale = solid.width / max(x1 - x0, 1)
    return solid.x + cols[0] * scale, solid.x + (cols[-1] + 1) * scale


def shadow_mask(look: Look, p: Placement, base: tuple[float, float] | None = None) -> tuple[np.ndarray, tuple[int, int]] | None:
    """Blurred ellipse under the product's base (``base``: its canvas x-range, :func:`base_span`; the whole width
    when None), 0..opacity, as (local mask, (x0, y0) on the canvas).

    The mask is kept off the outermost border strip, so a forced background stays pure at the edges.
    """
    s = look.shadow
    if not s.enabled or s.opacity == 0:
        return None
    ch = look.channel
    bx0, bx1 = base if base is not None else (p.x, p.x + p.width)
    bw = max(bx1 - bx0, BASE_MIN * p.width)
    ew, eh = s.width * bw, max(2.0, s.height * p.width)
    blur = s.blur * p.width
    cx, cy = (bx0 + bx1) / 2, p.y + p.height - eh * 0.25
    pad = int(3 * blur + 2)
    x0, y0 = int(cx - ew / 2) - pad, int(cy - eh / 2) - pad
    x1, y1 = int(cx + ew / 2) + pad, int(cy + eh / 2) + pad
    local = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(local).ellipse([cx - ew / 2 - x0, cy - eh / 2 - y0, cx + ew / 2 - x0, cy + eh / 2 - y0], fill=255)
    if blur > 0:
        local = local.filter(ImageFilter.GaussianBlur(blur))
    guard = max(2, round(0.01 * min(ch.width, ch.height)))
    lx0, ly0 = max(x0, guard), max(y0, guard)
    lx1, ly1 = min(x1, ch.width - guard), min(y1, ch.height - guard)
    if lx1 <= lx0 or ly1 <= ly0:
        return None
    mask = np.asarray(local, dtype=np.float32)[ly0 - y0 : ly1 - y0, lx0 - x0 : lx1 - x0] * (s.opacity / 255.0)
    return mask, (lx0, ly0)


def render(cut: CutOut, look: Look, background: np.ndarray | None = None,
           anchor: tuple[int, int] | None = None) -> tuple[Image.Image, Placement]:
    """Compose one channel. Returns the image (RGB, or RGBA for a transparent channel) and the solid
    part's placement.

    ``background``: an H x W x 3 uint8 canvas at the channel's size (an AI-generated scene) instead of
    the look's solid or gradient background. ``anchor``: see :func:`place`.
    """
    p, solid = layout(cut, look, anchor=anchor)
    prod = resampled_image(cut, (p.width, p.height))
    ch = look.channel
    rows, cols, prows, pcols = paste_window((ch.width, ch.height), p)
    if (pcols.start, prows.start, pcols.stop, prows.stop) != (0, 0, p.width, p.height):  # partly off the canvas
        prod = prod.crop((pcols.start, prows.start, pcols.stop, prows.stop))
    empty = prows.stop <= prows.start or pcols.stop <= pcols.start
    if look.background == "transparent":
        canvas = Image.new("RGBA", (ch.width, ch.height), (0, 0, 0, 0))
        if not empty:
            canvas.paste(prod, (cols.start, rows.start))  # no mask: RGBA copied as it is
        return canvas, solid

    if background is None:
        canvas = background_image(look).copy()
    elif background.shape != (ch.height, ch.width, 3) or background.dtype != np.uint8:
        raise ValueError(f"background must be {ch.height}x{ch.width}x3 uint8, got {background.shape} {background.dtype}")
    else:
        canvas = Image.fromarray(background, "RGB")  # a copy: the scene passed in is not drawn on
    shade = shadow_mask(look, solid, base_span(cut, solid))
    if shade is not None:
        mask, (sx, sy) = shade
        box = (sx, sy, sx + mask.shape[1], sy + mask.shape[0])
        area = np.asarray(canvas.crop(box))
        canvas.paste(Image.fromarray(np.rint(area * (1.0 - mask[..., None])).astype(np.uint8), "RGB"), box)
    if not empty:
        # opaque product pixels are copied, transparent ones leave the background, edge pixels are
        # (product * a + background * (255 - a)) / 255 rounded exactly (Pillow's paste with the alpha as mask)
        canvas.paste(prod, (cols.start, rows.start), prod)
    return canvas, solid


AI_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def ai_xmp() -> bytes:
    """XMP packet with IPTC DigitalSourceType = trainedAlgorithmicMedia (Google Merchant Center reads it)."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">'
        f"<Iptc4xmpExt:DigitalSourceType>{AI_SOURCE_TYPE}</Iptc4xmpExt:DigitalSourceType>"
        '</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode("utf-8")


def encode(im: Image.Image, channel: ChannelPreset, *, ai_generated: bool = False) -> bytes:
    """Deterministic encoding: same pixels and preset -> same bytes. sRGB profile embedded, no EXIF.

    AI-generated outputs carry the IPTC DigitalSourceType label in XMP; other outputs carry no XMP.
    """
    buf = io.BytesIO()
    extra = {"xmp": ai_xmp()} if ai_generated else {}
    if channel.format == "jpeg":
        (im if im.mode == "RGB" else im.convert("RGB")).save(buf, "JPEG", quality=channel.quality, subsampling=0, icc_profile=SRGB_ICC, **extra)
    elif channel.format == "png":
        info = None
        if ai_generated:
            info = PngImagePlugin.PngInfo()
            info.add_itxt("XML:com.adobe.xmp", ai_xmp().decode("utf-8"))
        im.save(buf, "PNG", compress_level=6, icc_profile=SRGB_ICC, pnginfo=info)
    else:
        im.save(buf, "WEBP", quality=channel.quality, method=4, icc_profile=SRGB_ICC, **extra)
    return buf.getvalue()
