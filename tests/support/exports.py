"""Platform exports written by the tests (never copied from anywhere), in each format and dialect,
with the problems real exports carry: variant rows without SKUs, barcodes a spreadsheet turned into
3.65275E+11, HTML descriptions, archived products, gift cards, grouped and virtual products.

Every writer takes ``img(name) -> URL`` so images can be served by the test's HTTP server."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import escape

ImageUrl = Callable[[str], str]

SHOPIFY_CLASSIC = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
    "Option1 Name", "Option1 Value", "Option2 Name", "Option2 Value", "Option3 Name", "Option3 Value",
    "Variant SKU", "Variant Grams", "Variant Inventory Tracker", "Variant Inventory Qty", "Variant Inventory Policy",
    "Variant Fulfillment Service", "Variant Price", "Variant Compare At Price", "Variant Requires Shipping",
    "Variant Taxable", "Variant Barcode", "Image Src", "Image Position", "Image Alt Text", "Gift Card",
    "SEO Title", "SEO Description", "Material (product.metafields.shopify.material)", "Variant Image",
    "Variant Weight Unit", "Variant Tax Code", "Cost per item", "Status",
]
SHOPIFY_2024 = [
    "Title", "URL handle", "Description", "Vendor", "Product category", "Type", "Tags", "Published on online store",
    "Status", "SKU", "Barcode", "Option1 name", "Option1 value", "Option2 name", "Option2 value", "Option3 name",
    "Option3 value", "Price", "Compare-at price", "Cost per item", "Charge tax", "Tax code", "Inventory tracker",
    "Inventory quantity", "Continue selling when out of stock", "Weight value (grams)", "Weight unit for display",
    "Requires shipping", "Fulfillment service", "Product image URL", "Image position", "Image alt text",
    "Variant image URL", "Gift card", "SEO title", "SEO description", "Material (product.metafields.shopify.material)",
]
_CLASSIC_TO_2024 = {
    "Handle": "URL handle", "Body (HTML)": "Description", "Product Category": "Product category",
    "Variant SKU": "SKU", "Variant Barcode": "Barcode", "Option1 Name": "Option1 name", "Option1 Value": "Option1 value",
    "Option2 Name": "Option2 name", "Option2 Value": "Option2 value", "Variant Price": "Price", "Image Src": "Product image URL",
    "Image Position": "Image position", "Image Alt Text": "Image alt text", "Variant Image": "Variant image URL",
    "Gift Card": "Gift card", "Published": "Published on online store",
}


def _csv(path: Path, header: list[str], rows: list[dict[str, str]], delimiter: str = ",") -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=header, delimiter=delimiter, lineterminator="\n", extrasaction="raise")
    w.writeheader()
    for r in rows:
        w.writerow({k: r.get(k, "") for k in header})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def shopify_rows(img: ImageUrl) -> list[dict[str, str]]:
    """Classic-header rows. Data rows (1-based): 1-3 mug (3 colour variants, 2 product images on rows
    1-2, navy has its own image), 4 apron (single default variant), 5-6 bowl (a variant without a SKU,
    a barcode in scientific notation), 7 archived lamp, 8 gift card."""
    return [
        {"Handle": "stoneware-mug", "Title": "Stoneware Mug", "Body (HTML)": "<p>Hand-glazed <strong>stoneware</strong>.</p>",
         "Vendor": "Acme", "Product Category": "Home & Garden > Kitchen & Dining > Drinkware", "Type": "Kitchen",
         "Tags": "mug, stoneware", "Published": "true", "Option1 Name": "Color", "Option1 Value": "red",
         "Variant SKU": "MUG-RED", "Variant Price": "18.00", "Variant Barcode": "0036000291452",
         "Image Src": img("mug-red.jpg"), "Image Position": "1", "Image Alt Text": "Red mug", "Gift Card": "false",
         "Status": "active", "Material (product.metafields.shopify.material)": "stoneware"},
        {"Handle": "stoneware-mug", "Option1 Value": "white", "Variant SKU": "MUG-WHT", "Variant Price": "18.00",
         "Image Src": img("mug-white.jpg"), "Image Position": "2"},
        {"Handle": "stoneware-mug", "Option1 Value": "navy", "Variant SKU": "MUG-NVY", "Variant Price": "18.00",
         "Variant Image": img("mug-navy.jpg")},
        {"Handle": "linen-apron", "Title": "Linen Apron", "Body (HTML)": "Washed linen.", "Vendor": "Acme",
         "Type": "kitchen", "Option1 Name": "Color", "Option1 Value": "natural", "Variant SKU": "APRON-1",
         "Image Src": img("apron.jpg"), "Image Position": "1", "Gift Card": "false", "Status": "draft",
         "Tags": "linen", "Material (product.metafields.shopify.material)": "linen"},
        {"Handle": "serving-bowl", "Title": "Serving Bowl", "Vendor": "Acme", "Type": "Tableware",
         "Option1 Name": "Color", "Option1 Value": "white", "Option2 Name": "Material", "Option2 Value": "stoneware",
         "Variant SKU": "BOWL-WHT", "Variant Barcode": "3.65275E+11",
         "Image Src": img("bowl.jpg"), "Image Position": "1", "Gift Card": "false", "Status": "active"},
        {"Handle": "serving-bowl", "Option1 Value": "black", "Option2 Value": "stoneware", "Variant SKU": ""},
        {"Handle": "brass-lamp", "Title": "Brass Lamp", "Type": "Lighting", "Option1 Name": "Title",
         "Option1 Value": "Default Title", "Variant SKU": "LAMP-OLD", "Image Src": img("lamp.jpg"),
         "Gift Card": "false", "Status": "archived"},
        {"Handle": "gift-card", "Title": "Gift Card", "Type": "Gift", "Option1 Name": "Denomination",
         "Option1 Value": "$25", "Variant SKU": "GIFT-25", "Gift Card": "true", "Status": "active"},
    ]


def write_shopify(path: Path, img: ImageUrl, dialect: str = "classic") -> Path:
    rows = shopify_rows(img)
    if dialect == "classic":
        return _csv(path, SHOPIFY_CLASSIC, rows)
    return _csv(path, SHOPIFY_2024, [{_CLASSIC_TO_2024.get(k, k): v for k, v in r.items()} for r in rows])


WOO_HEADER = [
    "ID", "Type", "SKU", "GTIN, UPC, EAN, or ISBN", "Name", "Published", "Is featured?", "Visibility in catalog",
    "Short description", "Description", "Tax status", "In stock?", "Stock", "Regular price", "Categories", "Tags",
    "Images", "Parent", "Grouped products", "External URL", "Button text", "Position",
    "Attribute 1 name", "Attribute 1 value(s)", "Attribute 1 visible", "Attribute 1 global",
    "Attribute 2 name", "Attribute 2 value(s)", "Attribute 2 visible", "Attribute 2 global",
]


def woo_rows(img: ImageUrl) -> list[dict[str, str]]:
    """Rows (1-based): 1 simple vase, 2 variable candle, 3-4 its variations (red with its own image, white
    inheriting), 5 grouped set, 6 virtual gift voucher, 7 external lamp, 8 variation without SKU,
    9 variation whose parent is missing, 10 simple kettle with a mangled GTIN."""
    return [
        {"ID": "101", "Type": "simple", "SKU": "VASE-1", "Name": "Glass Vase", "Published": "1",
         "Short description": "<p>Mouth-blown glass</p>", "Categories": "Home > Decor, Sale", "Tags": "vase",
         "Images": f"{img('vase.jpg')}, {img('vase-side.jpg')}", "Attribute 1 name": "Color",
         "Attribute 1 value(s)": "clear", "Attribute 1 visible": "1", "Attribute 1 global": "1"},
        {"ID": "102", "Type": "variable", "SKU": "CANDLE", "Name": "Soy Candle", "Published": "1",
         "Categories": "Home > Decor", "Images": img("candle.jpg"), "Attribute 1 name": "Color",
         "Attribute 1 value(s)": "red, white", "Attribute 1 visible": "1", "Attribute 1 global": "1",
         "Attribute 2 name": "Material", "Attribute 2 value(s)": "soy wax", "Attribute 2 visible": "1"},
        {"ID": "103", "Type": "variation", "SKU": "CANDLE-RED", "Name": "Soy Candle - red", "Parent": "id:102",
         "Images": img("candle-red.jpg"), "Attribute 1 name": "Color", "Attribute 1 value(s)": "red"},
        {"ID": "104", "Type": "variation", "SKU": "CANDLE-WHT", "Name": "Soy Candle - white", "Parent": "CANDLE",
         "Images": "", "Attribute 1 name": "Color", "Attribute 1 value(s)": "white"},
        {"ID": "105", "Type": "grouped", "SKU": "TABLE-SET", "Name": "Table Set", "Grouped products": "VASE-1, CANDLE",
         "Categories": "Home > Decor"},
        {"ID": "106", "Type": "simple, virtual", "SKU": "VOUCHER", "Name": "Gift Voucher", "Categories": "Gifts"},
        {"ID": "107", "Type": "external", "SKU": "LAMP-EXT", "Name": "Partner Lamp", "Categories": "Home > Lighting",
         "Images": img("lamp.jpg"), "External URL": "https://partner.example.com/lamp", "Attribute 1 name": "Color",
         "Attribute 1 value(s)": "black", "Attribute 2 name": "Material", "Attribute 2 value(s)": "brass"},
        {"ID": "108", "Type": "variation", "SKU": "", "Name": "Soy Candle - black", "Parent": "id:102",
         "Attribute 1 name": "Color", "Attribute 1 value(s)": "black"},
        {"ID": "109", "Type": "variation", "SKU": "ORPHAN-1", "Name": "Orphan", "Parent": "id:999"},
        {"ID": "110", "Type": "simple", "SKU": "KETTLE-1", "GTIN, UPC, EAN, or ISBN": "4.00638E+12", "Name": "Kettle",
         "Categories": "Home > Kitchen", "Images": img("kettle.jpg"), "Attribute 1 name": "Color",
         "Attribute 1 value(s)": "copper", "Attribute 2 name": "Material", "Attribute 2 value(s)": "stainless steel"},
    ]


def write_woocommerce(path: Path, img: ImageUrl) -> Path:
    return _csv(path, WOO_HEADER, woo_rows(img))


GMC_FIELDS = ["id", "title", "description", "link", "image_link", "additional_image_link", "lifestyle_image_link",
              "brand", "color", "material", "product_type", "google_product_category", "item_group_id", "gtin",
              "availability", "price", "condition"]


def gmc_items(img: ImageUrl) -> list[dict[str, str]]:
    """Items (1-based): 1-2 two colours of one item group, 3 a product with HTML in its description and a
    mangled GTIN, 4 an item without an id."""
    return [
        {"id": "TEAPOT-BLK", "title": "Cast Iron Teapot", "description": "Cast iron teapot, enamel lined.",
         "link": "https://shop.example.com/teapot", "image_link": img("teapot-black.jpg"),
         "additional_image_link": img("teapot-side.jpg"), "lifestyle_image_link": img("teapot-scene.jpg"),
         "brand": "Acme", "color": "black", "material": "cast iron", "product_type": "Home > Kitchen",
         "google_product_category": "Home & Garden > Kitchen & Dining", "item_group_id": "TEAPOT", "availability": "in_stock",
         "price": "45.00 USD", "condition": "new"},
        {"id": "TEAPOT-RED", "title": "Cast Iron Teapot", "description": "Cast iron teapot, enamel lined.",
         "image_link": img("teapot-red.jpg"), "brand": "Acme", "color": "red", "material": "cast iron",
         "product_type": "Home > Kitchen", "item_group_id": "TEAPOT", "availability": "in_stock",
         "price": "45.00 USD"},
        {"id": "BOARD-1", "title": "Oak Cutting Board", "description": "<b>Solid</b> oak &amp; oil finish",
         "image_link": img("board.jpg"), "brand": "Acme", "color": "natural", "material": "oak",
         "product_type": "Home > Kitchen", "gtin": "8.71234E+12", "availability": "in_stock", "price": "30.00 USD"},
        {"id": "", "title": "Nameless", "image_link": img("board.jpg"), "product_type": "Home > Kitchen"},
    ]


def write_gmc_tsv(path: Path, img: ImageUrl) -> Path:
    items = gmc_items(img)
    for it in items:
        it["additional_image_link"] = it.get("additional_image_link", "")
    return _csv(path, GMC_FIELDS, items, delimiter="\t")


def write_gmc_xml(path: Path, img: ImageUrl) -> Path:
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">', "<channel>",
           "<title>Acme feed</title>", "<link>https://shop.example.com</link>", "<description>Acme</description>"]
    for it in gmc_items(img):
        out.append("<item>")
        for k, v in it.items():
            if not v:
                continue
            tag = k if k in ("title", "link", "description") else f"g:{k}"
            for value in v.split(",") if k == "additional_image_link" else [v]:
                out.append(f"<{tag}>{escape(value)}</{tag}>")
        out.append("<g:shipping><g:country>US</g:country><g:price>5.00 USD</g:price></g:shipping>")
        out.append("</item>")
    out += ["</channel>", "</rss>"]
    path.write_text("\n".join(out), encoding="utf-8")
    return path


# every image any export names, so a test server can serve them all
IMAGE_NAMES = sorted({
    "mug-red.jpg", "mug-white.jpg", "mug-navy.jpg", "apron.jpg", "bowl.jpg", "lamp.jpg",
    "vase.jpg", "vase-side.jpg", "candle.jpg", "candle-red.jpg", "kettle.jpg",
    "teapot-black.jpg", "teapot-side.jpg", "teapot-scene.jpg", "teapot-red.jpg", "board.jpg",
})


# ---- apparel samples, in the shape of each platform's own sample export (a new user's first catalog) ----

def shopify_apparel_rows(img: ImageUrl) -> list[dict[str, str]]:
    """Shopify's sample store shape: 8 apparel products, size (and colour) variants with SKUs, product
    types Shirts / Tops / Sweaters / Jackets / Bags, one product without any image (it cannot render)."""
    products = [
        ("ocean-blue-shirt", "Ocean Blue Shirt", "Shirts", [("Size", ["xs", "s", "m"])], "blue", "cotton"),
        ("classic-varsity-top", "Classic Varsity Top", "Tops", [("Size", ["s", "m"])], "white", "cotton"),
        ("yellow-wool-jumper", "Yellow Wool Jumper", "Sweaters", [("Size", ["m", "l"])], "yellow", "wool"),
        ("floral-white-top", "Floral White Top", "Tops", [("Size", ["s"])], "white", "viscose"),
        ("striped-silk-blouse", "Striped Silk Blouse", "Tops", [("Size", ["s", "m"])], "red", "silk"),
        ("classic-leather-jacket", "Classic Leather Jacket", "Jackets", [("Size", ["m", "l"])], "brown", "leather"),
        ("black-leather-bag", "Black Leather Bag", "Bags", [("Title", ["Default Title"])], "black", "leather"),
        ("chequered-red-shirt", "Chequered Red Shirt", "Shirts", [("Size", ["m"])], "red", "cotton"),
    ]
    rows: list[dict[str, str]] = []
    for handle, title, ptype, options, color, material in products:
        (opt_name, values), = options
        for v, value in enumerate(values):
            row = {"Handle": handle, "Option1 Value": value, "Variant SKU": f"{handle.upper()[:12]}-{value.upper().replace(' ', '')}",
                   "Variant Price": "49.00", "Variant Inventory Policy": "deny", "Variant Fulfillment Service": "manual",
                   "Variant Requires Shipping": "true", "Variant Taxable": "true", "Variant Weight Unit": "kg"}
            if v == 0:
                row.update({"Title": title, "Body (HTML)": f"<p>{title}, made of {material}.</p>", "Vendor": "Company 123",
                            "Product Category": "Apparel & Accessories > Clothing", "Type": ptype, "Tags": "women",
                            "Published": "true", "Option1 Name": opt_name, "Gift Card": "false", "Status": "active",
                            "Material (product.metafields.shopify.material)": material})
                if handle != "chequered-red-shirt":  # a product with no image at all
                    row.update({"Image Src": img(f"{handle}.jpg"), "Image Position": "1", "Image Alt Text": title})
            row["Color (product.metafields.shopify.color-pattern)"] = color
            rows.append(row)
    return rows


SHOPIFY_APPAREL_HEADER = [*SHOPIFY_CLASSIC, "Color (product.metafields.shopify.color-pattern)"]


def write_shopify_apparel(path: Path, img: ImageUrl) -> Path:
    return _csv(path, SHOPIFY_APPAREL_HEADER, shopify_apparel_rows(img))


def woo_apparel_rows(img: ImageUrl) -> list[dict[str, str]]:
    """WooCommerce's sample_products.csv shape: a variable V-neck with colour variations, simple hoodies,
    accessories, a virtual album (skipped), a grouped logo collection (skipped)."""
    rows = [
        {"ID": "1", "Type": "variable", "SKU": "woo-vneck-tee", "Name": "V-Neck T-Shirt", "Published": "1",
         "Categories": "Clothing > Tshirts", "Images": img("vneck.jpg"), "Attribute 1 name": "Color",
         "Attribute 1 value(s)": "Blue, Green, Red", "Attribute 1 visible": "1", "Attribute 1 global": "1"},
    ]
    for i, color in enumerate(["Blue", "Green", "Red"], start=2):
        rows.append({"ID": str(i), "Type": "variation", "SKU": f"woo-vneck-tee-{color.lower()}",
                     "Name": f"V-Neck T-Shirt - {color}", "Parent": "id:1", "Images": img(f"vneck-{color.lower()}.jpg"),
                     "Attribute 1 name": "Color", "Attribute 1 value(s)": color})
    for i, (sku, name, cat, color) in enumerate([
        ("woo-hoodie-with-logo", "Hoodie with Logo", "Clothing > Hoodies", "Blue"),
        ("woo-hoodie-with-zipper", "Hoodie with Zipper", "Clothing > Hoodies", "Grey"),
        ("woo-beanie", "Beanie", "Clothing > Accessories", "Red"),
        ("woo-belt", "Belt", "Clothing > Accessories", "Brown"),
        ("woo-cap", "Cap", "Clothing > Accessories", "Yellow"),
        ("woo-sunglasses", "Sunglasses", "Clothing > Accessories", "Black"),
    ], start=5):
        rows.append({"ID": str(i), "Type": "simple", "SKU": sku, "Name": name, "Published": "1", "Categories": cat,
                     "Short description": "<p>This is a simple product.</p>", "Images": img(f"{sku}.jpg"),
                     "Attribute 1 name": "Color", "Attribute 1 value(s)": color, "Attribute 1 visible": "1"})
    rows += [
        {"ID": "11", "Type": "simple, downloadable, virtual", "SKU": "woo-album", "Name": "Album", "Categories": "Music",
         "Images": img("album.jpg")},
        {"ID": "12", "Type": "grouped", "SKU": "logo-collection", "Name": "Logo Collection", "Categories": "Clothing",
         "Grouped products": "woo-hoodie-with-logo, woo-beanie", "Images": img("logo-collection.jpg")},
    ]
    return rows


def write_woocommerce_apparel(path: Path, img: ImageUrl) -> Path:
    return _csv(path, WOO_HEADER, woo_apparel_rows(img))


GMC_APPAREL_FIELDS = ["id", "title", "description", "link", "image_link", "availability", "price", "brand", "gtin",
                      "condition", "google_product_category", "product_type", "item_group_id", "color", "size", "gender",
                      "age_group", "material"]


def gmc_apparel_items(img: ImageUrl) -> list[dict[str, str]]:
    """Google's apparel feed shape: item groups of colour x size, product_type paths, one item whose
    image_link is missing (not renderable)."""
    items = []
    for group, title, ptype, colors, sizes, material in [
        ("TS1", "Organic Cotton T-Shirt", "Apparel & Accessories > Clothing > Shirts & Tops", ["white", "black"], ["S", "M"], "cotton"),
        ("DR1", "Linen Summer Dress", "Apparel & Accessories > Clothing > Dresses", ["blue"], ["S", "M"], "linen"),
        ("SN1", "Canvas Sneakers", "Apparel & Accessories > Shoes", ["white"], ["40", "42"], "canvas"),
    ]:
        for color in colors:
            for size in sizes:
                items.append({"id": f"{group}-{color[:3].upper()}-{size}", "title": f"{title} - {color}, {size}",
                              "description": f"{title} in {color}.", "link": f"https://shop.example.com/{group}",
                              "image_link": img(f"{group}-{color}.jpg"), "availability": "in_stock", "price": "29.00 USD",
                              "brand": "Example", "condition": "new", "google_product_category": ptype,
                              "product_type": ptype, "item_group_id": group, "color": color, "size": size,
                              "gender": "unisex", "age_group": "adult", "material": material})
    items[-1]["image_link"] = ""  # the last sneaker has no image
    return items


def write_gmc_apparel(path: Path, img: ImageUrl) -> Path:
    return _csv(path, GMC_APPAREL_FIELDS, gmc_apparel_items(img), delimiter="\t")


APPAREL_IMAGE_NAMES = sorted(
    {f"{h}.jpg" for h in ("ocean-blue-shirt", "classic-varsity-top", "yellow-wool-jumper", "floral-white-top",
                          "striped-silk-blouse", "classic-leather-jacket", "black-leather-bag")}
    | {"vneck.jpg", "vneck-blue.jpg", "vneck-green.jpg", "vneck-red.jpg", "album.jpg", "logo-collection.jpg"}
    | {f"{s}.jpg" for s in ("woo-hoodie-with-logo", "woo-hoodie-with-zipper", "woo-beanie", "woo-belt", "woo-cap", "woo-sunglasses")}
    | {"TS1-white.jpg", "TS1-black.jpg", "DR1-blue.jpg", "SN1-white.jpg"}
)
