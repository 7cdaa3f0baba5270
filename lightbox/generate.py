"""Generate stage: render every channel of every product in a chunk into the run's staging area.

Per product: read the source once, fingerprint each channel's output (product fields used, source
content hash, effective look, engine), skip channels whose fingerprint matches the manifest and whose
object still exists, render the rest, encode, write to staging. A product that cannot be rendered
(missing, corrupt, refused image) becomes failed outputs with a one-line reason; the chunk goes on.
Transient storage errors propagate so the task's retry policy can act.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time

from lightbox.engines import Engine, get_engine
from lightbox.errors import ItemError
from lightbox.imaging.compose import encode
from lightbox.imaging.decode import decode_image
from lightbox.records import Chunk, Output, Product, RunContext, WorkItem
from lightbox.specs.models import BrandSpec, ChannelPreset, Look, resolve_look
from lightbox.storage import Store, read_bytes

log = logging.getLogger(__name__)


def output_key(spec: BrandSpec, sku: str, channel: ChannelPreset) -> str:
    return f"{spec.name}/{sku}/{channel.name}.{channel.extension}"


def staging_key(spec: BrandSpec, run_id: str, sku: str, channel: ChannelPreset) -> str:
    return f"{spec.name}/_runs/{run_id}/staging/{sku}/{channel.name}.{channel.extension}"


def fingerprint(product: Product, source_sha256: str, look: Look, spec: BrandSpec, engine: Engine) -> str:
    """Everything an output depends on; equal fingerprints mean byte-identical outputs."""
    used = sorted(spec.fields_used(product.category) | {"category"})
    payload = {
        "fields": {name: product.field(name) for name in used},
        "source": source_sha256,
        "look": look.digest(),
        "engine": f"{engine.name}/{engine.version}",
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def fill_template(text: str, product: Product) -> str:
    from lightbox.specs.models import template_fields

    values = {}
    for name in template_fields(text):
        value = product.field(name)
        if value is None:
            raise ItemError(f"template {text!r} needs attribute {name!r}, which product {product.sku} lacks")
        values[name] = value
    return text.format(**values)


def generate_item(
    item: WorkItem, spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, store: Store
) -> list[Output]:
    product = item.product
    base = {"sku": product.sku, "row": product.row, "category": product.category, "seed": item.seed}
    looks = {ch.name: resolve_look(spec, product.category, ch) for ch in channels}
    engine = get_engine(next(iter(looks.values())).engine)
    timings: dict[str, float] = {}

    def failed(reason: str, names: list[str]) -> list[Output]:
        return [Output(**base, channel=n, status="failed", engine=engine.name, engine_version=engine.version, error=reason) for n in names]

    t0 = time.perf_counter()
    source = product.images[0]
    try:
        data = read_bytes(source)
    except FileNotFoundError:
        return failed(f"source image not found: {source}", list(looks))
    except PermissionError as e:
        return failed(f"source image not readable: {e}", list(looks))
    timings["read_ms"] = (time.perf_counter() - t0) * 1000
    source_sha = hashlib.sha256(data).hexdigest()

    try:
        alt_text = fill_template(spec.template_for(product.category).alt_text, product)
    except ItemError as e:
        return failed(str(e), list(looks))

    outputs: list[Output] = []
    todo: dict[str, Look] = {}
    fps: dict[str, str] = {}
    for ch in channels:
        fp = fingerprint(product, source_sha, looks[ch.name], spec, engine)
        fps[ch.name] = fp
        key = output_key(spec, product.sku, ch)
        if item.previous.get(ch.name) == fp and store.exists(key):
            outputs.append(
                Output(**base, channel=ch.name, status="unchanged", fingerprint=fp, uri=store.uri(key),
                       engine=engine.name, engine_version=engine.version, alt_text=alt_text)
            )
        else:
            todo[ch.name] = looks[ch.name]
    if not todo:
        return outputs

    try:
        t = time.perf_counter()
        image = decode_image(data, max_pixels=spec.max_source_pixels)
        timings["decode_ms"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        rendered = engine.render_product(image, todo, product, item.seed)
        timings["render_ms"] = (time.perf_counter() - t) * 1000
    except ItemError as e:
        return outputs + failed(str(e), list(todo))

    by_name = {ch.name: ch for ch in channels}
    for name, im in rendered.items():
        ch = by_name[name]
        t = time.perf_counter()
        blob = encode(im, ch)
        enc_ms = (time.perf_counter() - t) * 1000
        skey = staging_key(spec, ctx.run_id, product.sku, ch)
        store.write_atomic(skey, blob)
        outputs.append(
            Output(
                **base, channel=name, status="rendered", fingerprint=fps[name], staged_uri=store.uri(skey),
                uri=store.uri(output_key(spec, product.sku, ch)), sha256=hashlib.sha256(blob).hexdigest(),
                bytes=len(blob), width=im.width, height=im.height, engine=engine.name,
                engine_version=engine.version, alt_text=alt_text,
                timings_ms={**{k: round(v, 1) for k, v in timings.items()}, "encode_ms": round(enc_ms, 1)},
            )
        )
    return outputs


def generate_chunk(chunk: Chunk, spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, store: Store) -> list[Output]:
    outputs: list[Output] = []
    for item in chunk.items:
        outputs.extend(generate_item(item, spec, channels, ctx, store))
    n_failed = sum(o.status == "failed" for o in outputs)
    log.info("chunk %d: %d outputs, %d failed", chunk.index, len(outputs), n_failed)
    return outputs
