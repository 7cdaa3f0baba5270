"""Commerce exports in, one product record out.

Each adapter reads a platform's export as it is (every value as text) and returns :class:`Adapted`:
records in the normalised layout of :mod:`lightbox.catalog.ingest`, plus :class:`Note` lines for what
it did not turn into a product (skipped by design, or invalid) and for data-quality problems it saw
(warnings). Nothing is fixed silently: a value the adapter changes (HTML stripped from a description)
is reported; a value it cannot trust (a barcode a spreadsheet turned into 3.65275E+11) is reported.

Layouts, detected from the header (or chosen with ``--layout``):

- ``lightbox``: the native CSV/JSONL/Parquet (sku, title, category, image, attributes...);
- ``shopify``: Shopify's product CSV, classic header (Handle, Variant SKU, Image Src...) or the 2024+
  one (URL handle, SKU, Product image URL...);
- ``woocommerce``: WooCommerce's built-in product CSV exporter;
- ``google-merchant``: a Google Merchant Center feed, TSV or RSS 2.0/Atom XML with the ``g:`` namespace.
"""
from __future__ import annotations

import pandas as pd

from lightbox.catalog.formats.common import (
    LAYOUTS,
    Adapted,
    Listing,
    Note,
    NoteKind,
    Record,
    attr_name,
    category_leaf,
    cell,
    detect_layout,
    looks_scientific,
    strip_html,
    text_warnings,
)
from lightbox.catalog.formats.merchant import adapt_merchant
from lightbox.catalog.formats.shopify import adapt_shopify
from lightbox.catalog.formats.woocommerce import adapt_woocommerce
from lightbox.errors import CatalogError

__all__ = ["LAYOUTS", "Adapted", "Listing", "Note", "NoteKind", "Record", "adapt", "attr_name", "category_leaf", "cell",
           "detect_layout", "looks_scientific", "strip_html", "text_warnings"]


def adapt(layout: str, raw: pd.DataFrame, uri: str) -> Adapted:
    """Dispatch to the layout's adapter (``lightbox`` frames are not adapted here)."""
    adapters = {"shopify": adapt_shopify, "woocommerce": adapt_woocommerce, "google-merchant": adapt_merchant}
    if layout not in adapters:
        raise CatalogError(f"{uri}: layout {layout!r} has no adapter (known: {', '.join(LAYOUTS)})")
    return adapters[layout](raw, uri)
