"""Deliver results back to the shop: a platform's own bulk-import file pointing at the published images.

``lightbox export BRAND --out ROOT --format shopify|woocommerce|google-merchant`` reads what is live for the
brand (the run state: one entry per published photo and channel) and writes, for one channel, each
product's gallery in order - its main image, then its additional photos - as public URLs:

- public URL = the base URL the output root is served at (``--base-url``, else ``$LIGHTBOX_PUBLIC_BASE_URL``)
  + the object's key under the root, percent-encoded; an output root on a web server needs no base URL;
- a product whose main image is not live (it failed the gate, or was never rendered) is left out and
  named on the side: exporting its additional photos would make one of them the main image;
- gaps close up: photos 1, 2 and 4 live become positions 1, 2, 3.

The writers live with the readers of each platform (:mod:`lightbox.catalog.formats`), and each file
reads back through them to the same products and images.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from lightbox.catalog.formats import Listing
from lightbox.catalog.formats.merchant import export_tsv
from lightbox.catalog.formats.shopify import export_csv as shopify_csv
from lightbox.catalog.formats.woocommerce import export_csv as woocommerce_csv
from lightbox.errors import LightboxError

FORMATS: dict[str, Callable[[list[Listing]], str]] = {
    "shopify": shopify_csv, "woocommerce": woocommerce_csv, "google-merchant": export_tsv}
# the channel each format takes by default, when the brand renders it
DEFAULT_CHANNEL = {"shopify": "shopify_square", "google-merchant": "google_merchant"}
BASE_URL_ENV = "LIGHTBOX_PUBLIC_BASE_URL"


class ExportError(LightboxError):
    """The export cannot be made as asked (no public URL, an unknown channel, nothing live)."""


@dataclass
class Export:
    text: str
    products: int
    images: int
    left_out: list[str]  # one line per product not exported, with the reason


def default_channel(fmt: str, channels: list[str]) -> str:
    """The channel a format exports when none is named: the format's own, else the only one rendered."""
    own = DEFAULT_CHANNEL.get(fmt)
    if own in channels:
        return own
    if len(channels) == 1:
        return channels[0]
    raise ExportError(f"--channel: which channel's images go into the {fmt} file? "
                      f"the brand renders {', '.join(sorted(channels))}")


def public_url(key: str, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(key, safe='/')}"


def listings(entries: list[dict[str, Any]], channel: str, key_of: Callable[[str], str], base_url: str | None) -> tuple[list[Listing], list[str]]:
    """The channel's live galleries, one :class:`Listing` per SKU (in SKU order), and the SKUs left out."""
    photos: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if e.get("channel") == channel and int(e.get("variant") or 0) == 0 and e.get("uri"):
            photos.setdefault(e["sku"], []).append(e)
    out: list[Listing] = []
    left_out: list[str] = []
    for sku in sorted(photos):
        gallery = sorted(photos[sku], key=lambda e: int(e.get("photo") or 1))
        if int(gallery[0].get("photo") or 1) != 1:
            left_out.append(f"{sku}: its main image is not live (failed the gate or not rendered); its "
                            f"{len(gallery)} additional photos are not exported alone")
            continue
        images = [(_url(e["uri"], key_of, base_url), e.get("alt_text") or "") for e in gallery]
        first = gallery[0]
        out.append(Listing(sku=sku, title=first.get("title") or "", handle=first.get("handle") or "", images=images,
                           main_source=first.get("source") or "", row=int(first.get("row") or 0)))
    return out, left_out


def _url(uri: str, key_of: Callable[[str], str], base_url: str | None) -> str:
    if base_url:
        return public_url(key_of(uri), base_url)
    if uri.startswith(("https://", "http://")):
        return uri
    raise ExportError(f"the images are at {uri.split('://', 1)[0] + '://' if '://' in uri else 'a local path'}, not a "
                      f"public URL: give --base-url (the URL the output root is served at, e.g. your CDN) or "
                      f"set {BASE_URL_ENV}")


def export(entries: list[dict[str, Any]], fmt: str, channel: str, key_of: Callable[[str], str],
           base_url: str | None = None) -> Export:
    """The import file of ``fmt`` for the ``channel`` images among the brand's live ``entries``."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    base_url = base_url or os.environ.get(BASE_URL_ENV) or None
    if base_url is not None and not base_url.startswith(("https://", "http://")):
        raise ExportError(f"--base-url: must start with https:// or http://, got {base_url[:80]!r}")
    items, left_out = listings(entries, channel, key_of, base_url)
    if not items:
        raise ExportError(f"nothing to export: no live {channel} images" + (f" ({len(left_out)} products without a live "
                                                                           "main image)" if left_out else ""))
    return Export(text=FORMATS[fmt](items), products=len(items), images=sum(len(i.images) for i in items),
                  left_out=left_out)
