"""Decode a source photo into an upright 8-bit sRGB image (RGB or RGBA), or say exactly why not.

Colour management and orientation are the only conversions: EXIF orientation is applied, CMYK and
wide-gamut profiles are converted to sRGB, 16-bit samples are scaled to 8 bits, palette and grey
images are expanded. Animated images, zero-byte, truncated or corrupt files and images over the
pixel limit are refused with an :class:`~lightbox.errors.ItemError`.
"""

from __future__ import annotations

import io
import logging
import warnings

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from lightbox.errors import ItemError

log = logging.getLogger(__name__)

_SRGB = ImageCms.createProfile("sRGB")
# LittleCMS stamps the profile with the time it was made (header bytes 24-35): every process would embed
# different bytes in identical images. Pin the date so outputs are byte-identical across processes and
# machines (the profile ID, bytes 84-99, is left zero: "not computed", as LittleCMS writes it).
_ICC_DATE = slice(24, 36)
_PINNED_DATE = bytes.fromhex("07ea00010001000000000000")  # 2026-01-01 00:00:00


def _pinned(profile: bytes) -> bytes:
    if profile[84:100] != bytes(16):
        raise RuntimeError("the sRGB profile carries a profile ID; pinning its date would need the ID recomputed")
    return profile[:_ICC_DATE.start] + _PINNED_DATE + profile[_ICC_DATE.stop:]


SRGB_ICC: bytes = _pinned(ImageCms.ImageCmsProfile(_SRGB).tobytes())


def decode_image(data: bytes, *, max_pixels: int) -> Image.Image:
    """Bytes of a source photo -> upright sRGB ``RGB`` or ``RGBA`` image, fully loaded."""
    if not data:
        raise ItemError("zero-byte image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ItemError("not a recognised image format") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ItemError(f"image over the pixel limit (decompression bomb guard): {e}") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ItemError(f"truncated or corrupt image data: {e}") from None

    w, h = im.size
    if w * h > max_pixels:
        raise ItemError(f"image is {w}x{h} = {w * h:,} px, over the limit of {max_pixels:,} px")
    frames = getattr(im, "n_frames", 1)
    if frames > 1:
        raise ItemError(f"animated image with {frames} frames; a still product photo is required")
    try:
        im.load()
    except (OSError, SyntaxError, ValueError) as e:
        raise ItemError(f"truncated or corrupt image data ({im.format}): {e}") from None

    icc = im.info.get("icc_profile")
    im = ImageOps.exif_transpose(im)
    im = _to_8bit(im)
    im = _to_srgb(im, icc)
    return im


def _to_8bit(im: Image.Image) -> Image.Image:
    mode = im.mode
    if mode in ("RGB", "RGBA"):
        return im
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        arr8 = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode == "F":
        arr = np.asarray(im, dtype=np.float64)
        arr8 = np.clip(np.rint(arr * 255.0 if arr.max(initial=0) <= 1.0 else arr), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, "L").convert("RGB")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        return im.convert("RGBA" if has_alpha else "RGB")
    if mode in ("LA", "La", "RGBa"):
        return im.convert("RGBA")
    if mode in ("1", "L"):
        return im.convert("RGB")
    if mode == "CMYK":
        return im  # converted with its profile in _to_srgb
    return im.convert("RGB")


def _to_srgb(im: Image.Image, icc: bytes | None) -> Image.Image:
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            desc = (ImageCms.getProfileDescription(src) or "").lower()
        except (OSError, ImageCms.PyCMSError) as e:
            raise ItemError(f"embedded ICC profile is unreadable: {e}") from None
        if im.mode == "CMYK" or "srgb" not in desc:
            alpha = im.getchannel("A") if im.mode == "RGBA" else None
            base = im.convert("RGB") if im.mode == "RGBA" else im
            try:
                out = ImageCms.profileToProfile(
                    base, src, _SRGB, renderingIntent=ImageCms.Intent.PERCEPTUAL, outputMode="RGB"
                )
            except ImageCms.PyCMSError as e:
                raise ItemError(f"cannot convert {im.mode} image with profile {desc!r} to sRGB: {e}") from None
            if alpha is not None:
                out.putalpha(alpha)
            log.debug("converted %s (%s) to sRGB", im.mode, desc)
            return out
    if im.mode == "CMYK":
        # No profile: the naive conversion is the documented fallback (Pillow's inverse of SWOP-less CMYK).
        return im.convert("RGB")
    return im
