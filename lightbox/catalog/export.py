"""Deliver results back to the shop: a platform's own bulk-import file pointing at the published images.

``lightbox export BRAND --out ROOT --format shopify|woocommerce|google-merchant`` reads what is live for the
brand (the run state: one entry per published photo and channel) and writes, for one channel, each
product's gallery in order - its main image, then its additional photos - as public URLs:

- public URL = the base URL the output root is served at (``--base-url``, else ``$LIGHTBOX_PUBLIC_BASE_URL``,
  else the one saved for the output root with ``--remember``: :class:`RootSettings`) + the object's key under
  the root, percent-encoded; an output root on a web server needs no base URL;
- a product whose main image is not live (it failed the gate, or was never rendered) is left out and
  named on the side: exporting its additional photos would make one of them the main image;
- gaps close up: photos 1, 2 and 4 live become positions 1, 2, 3.

The writers live with the readers of each platform (:mod:`lightbox.catalog.formats`), and each file
reads back through them to the same products and images.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from lightbox.catalog.formats import Listing
from lightbox.catalog.formats.merchant import export_tsv
from lightbox.catalog.formats.shopify import export_csv as shopify_csv
from lightbox.catalog.formats.woocommerce import export_csv as woocommerce_csv
from lightbox.errors import LightboxError
from lightbox.layout import ROOT_SETTINGS
from lightbox.storage import Store

FORMATS: dict[str, Callable[[list[Listing]], str]] = {
    "shopify": shopify_csv, "woocommerce": woocommerce_csv, "google-merchant": export_tsv}
# the channel each format takes by default, when the brand renders it
DEFAULT_CHANNEL = {"shopify": "shopify_square", "google-merchant": "google_merchant"}
BASE_URL_ENV = "LIGHTBOX_PUBLIC_BASE_URL"


class ExportError(LightboxError):
    """The export cannot be made as asked (no public URL, an unknown channel, nothing live)."""


def _is_base_url(url: str) -> bool:
    return url.startswith(("https://", "http://")) and len(url) > len("https://") and not any(c.isspace() for c in url)


def check_base_url(url: str, where: str = "--base-url") -> str:
    if not _is_base_url(url):
        raise ExportError(f"{where}: must be an https:// or http:// URL, got {url[:80]!r}")
    return url


class RootSettings(BaseModel):
    """What an output root keeps about itself (``<root>/_lightbox/settings.json``): the public URL it is served
    at, so every export from it - and every operator - uses the same one."""

    model_config = ConfigDict(extra="forbid")

    public_base_url: str | None = Field(None, description="the URL the output root is served at (a CDN)")

    @field_validator("public_base_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not _is_base_url(v):
            raise ValueError(f"must be an https:// or http:// URL, got {v[:80]!r}")
        return v

    @classmethod
    def load(cls, store: Store) -> RootSettings:
        try:
            return cls.model_validate_json(store.read(ROOT_SETTINGS))
        except FileNotFoundError:
            return cls()
        except (ValidationError, ValueError) as e:
            raise ExportError(f"{store.uri(ROOT_SETTINGS)}: not an output root's settings ({_first_error(e)}); "
                              "save them again with lightbox export ... --base-url URL --remember") from None

    def save(self, store: Store) -> str:
        store.write_atomic(ROOT_SETTINGS, json.dumps(self.model_dump(), indent=1).encode())
        return store.uri(ROOT_SETTINGS)


def _first_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        err = e.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}"
    return type(e).__name__


def public_base_url(given: str | None, store: Store) -> str | None:
    """The base URL an export uses: ``given`` (--base-url), else ``$LIGHTBOX_PUBLIC_BASE_URL``, else the output
    root's saved one, else None (the images' own URIs)."""
    if given:
        return check_base_url(given)
    if env := os.environ.get(BASE_URL_ENV):
        return check_base_url(env, BASE_URL_ENV)
    return RootSettings.load(store).public_base_url


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
    """The channel's live galleries, one :class:`Listing` per SKU (in SKU order), and the SKUs left out: those
    whose main image is not live on the channel, and those live on other channels only."""
    photos: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        if e.get("channel") == channel and int(e.get("variant") or 0) == 0 and e.get("uri"):
            photos.setdefault(e["sku"], []).append(e)
    out: list[Listing] = []
    elsewhere = sorted({e["sku"] for e in entries if e.get("sku")} - set(photos))
    left_out = [f"{sku}: no live {channel} image (it failed the gate, or the channel was not rendered for it); "
                f"live on {', '.join(sorted({e['channel'] for e in entries if e.get('sku') == sku}))}" for sku in elsewhere]
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
                      f"public URL: give --base-url (the URL the output root is served at, e.g. your CDN; add "
                      f"--remember to keep it for this output root) or set {BASE_URL_ENV}")


def export(entries: list[dict[str, Any]], fmt: str, channel: str, key_of: Callable[[str], str],
           base_url: str | None = None) -> Export:
    """The import file of ``fmt`` for the ``channel`` images among the brand's live ``entries``; ``base_url`` as
    :func:`public_base_url` resolved it (None: the images' own URIs, which must then be public URLs)."""
    if fmt not in FORMATS:
        raise ExportError(f"--format: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    if base_url is not None:
        check_base_url(base_url)
    items, left_out = listings(entries, channel, key_of, base_url)
    if not items:
        raise ExportError(f"nothing to export: no live {channel} images" + (f" ({len(left_out)} products left out: "
                                                                           f"{left_out[0]})" if left_out else ""))
    return Export(text=FORMATS[fmt](items), products=len(items), images=sum(len(i.images) for i in items),
                  left_out=left_out)
