"""Generate stage: render every (photo, channel, variant) of every product in a chunk into the run's staging area.

A work item is one photo of a product (its position: 1 = the main image); it renders for every channel whose
gallery takes that many photos. Per photo: read the source once, fingerprint each output (product fields used, source content
hash, effective look, engine, variant, seed), skip outputs whose fingerprint matches the run state and
whose object still exists, cut the product out once (a photo shared by several products - variants - is cut
once per chunk), and hand the rest to the engines as jobs - the
studio engine for plain backgrounds, the diffusers engine (batched across the chunk) for AI looks.
Then encode (AI outputs get the IPTC label) and stage. A product that cannot be rendered (missing,
corrupt, refused image; a template attribute it lacks) becomes failed outputs with a one-line reason;
the chunk goes on. Transient storage errors propagate so the task's retry policy can act.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from lightbox.engines import Engine, Rendered, RenderJob
from lightbox.errors import ItemError, first_line
from lightbox.fetch import SourceFetcher
from lightbox.imaging.compose import encode, interior_after_resample, layout, resample_product, resampled_image
from lightbox.imaging.cutout import CUTOUT_VERSION, CutOut, cut_out_many, erode_cross
from lightbox.imaging.decode import decode_image
from lightbox.imaging.segmentation import segmenter_for
from lightbox.quality.checks import decode_output, fidelity, measure
from lightbox.layout import BrandLayout, output_name
from lightbox.state import live_matches
from lightbox.retry import is_transient
from lightbox.records import Chunk, Output, Product, RunContext, WorkItem, role_of, seed_for
from lightbox.specs.models import BrandSpec, ChannelPreset, Look, resolve_look, template_fields
from lightbox.storage import Store

log = logging.getLogger(__name__)


def output_key(spec: BrandSpec, sku: str, channel: ChannelPreset, variant: int = 0, photo: int = 1) -> str:
    return BrandLayout(spec.name).live(sku, output_name(channel.name, variant, photo), channel.extension)


def staging_key(spec: BrandSpec, run_id: str, sku: str, channel: ChannelPreset, variant: int = 0, photo: int = 1) -> str:
    return BrandLayout(spec.name).staged(run_id, sku, output_name(channel.name, variant, photo), channel.extension)


def engine_id(look: Look, engines: dict[str, Engine]) -> str:
    """The engine and the cut-out that made an output: a change to either renders its outputs again."""
    e = engines[look.engine]
    return f"{e.name}/{e.version}+cutout/{CUTOUT_VERSION}"


def fingerprint(product: Product, source_sha256: str, look: Look, spec: BrandSpec, engine: str, variant: int = 0, seed: int = 0,
                photo: int = 1, main_sha256: str = "") -> str:
    """Everything an output depends on; equal fingerprints mean byte-identical outputs (and the same gallery
    position and role: a photo moved to another position is rendered and gated again). An additional photo
    from the main photo's shoot also depends on the main photo's bytes (it is framed at its scale)."""
    used = sorted(spec.fields_used(product.category) | {"category"})
    payload = {
        "fields": {name: product.field(name) for name in used},
        "source": source_sha256,
        "look": look.digest(),
        "engine": engine,
    }
    if look.generation is not None:  # seeds and variants only change AI outputs
        payload |= {"variant": variant, "seed": seed}
    if photo != 1:  # main images keep the fingerprints they had before galleries
        payload |= {"photo": photo, "role": role_of(photo), "main": main_sha256}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def fill_template(text: str, product: Product) -> str:
    values = {}
    for name in template_fields(text):
        value = product.field(name)
        if value is None:
            raise ItemError(f"template {text!r} needs attribute {name!r}, which product {product.sku} lacks")
        values[name] = value
    return text.format(**values)


@dataclass
class _Pending:
    """One product's outputs to render, with what they need."""

    item: WorkItem
    looks: dict[str, Look]
    cut: CutOut | None
    alt_text: str
    failed: Callable[[str], list[Output]]  # every pending output of the product, failed with a reason
    timings: dict[str, float]
    prompts: dict[str, str] = field(default_factory=dict)  # channel -> filled prompt (AI looks)
    image: Image.Image | None = None  # decoded source, until it is cut out
    source_sha: str = ""
    anchor: tuple[int, int] | None = None  # the product's box in its main photo, when this is another photo of that shoot
    cut_index: int = -1  # which of the chunk's distinct photos this one's cut is
    shared_cut: bool = False  # the cut was made for another product's identical photo
    todo: list[tuple[ChannelPreset, int, str]] = field(default_factory=list)  # channel, variant, fingerprint


def effective_look(spec: BrandSpec, category: str, channel: ChannelPreset, ctx: RunContext, photo: int = 1) -> Look:
    """The look one photo renders with: the resolved look, with studio in place of an AI scene when the AI
    engine falls back this run, or for an additional photo unless the spec asks for scenes on every photo
    (``gallery.ai: all``)."""
    look = resolve_look(spec, category, channel)
    if look.generation is not None and (ctx.ai_fallback or (photo > 1 and spec.gallery.ai == "main")):
        return look.model_copy(update={"engine": "studio", "generation": None})
    return look


def _variants(look: Look) -> int:
    return look.generation.diffusion.variants if look.generation is not None else 1


def photo_channels(spec: BrandSpec, channels: list[ChannelPreset], photo: int) -> list[ChannelPreset]:
    """The channels whose gallery takes the product's ``photo``-th photo."""
    return [ch for ch in channels if spec.gallery_size(ch) >= photo]


def shot_size(data: bytes) -> tuple[int, int] | None:
    """A photo's (width, height) as it is shown (EXIF rotation applied), from its header alone; None when
    the header cannot be read."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            turned = im.getexif().get(0x0112) in (5, 6, 7, 8)
    except (OSError, ValueError, SyntaxError):
        return None
    return (h, w) if turned else (w, h)


def main_sha(product: Product, sources: SourceFetcher, memo: dict[str, tuple[str, tuple[int, int] | None]],
             data: bytes | None) -> str:
    """What an additional photo (bytes ``data``) takes from its product's main photo: the main photo's sha256
    when both come from one shoot (the same pixel size: it is then framed at the main photo's scale), else
    nothing. The main photo is read once per chunk."""
    if not product.images or data is None:
        return ""
    uri = product.images[0]
    if uri not in memo:
        main, problem = _read_source(product, sources, 1)
        memo[uri] = ("", None) if problem or main is None else (hashlib.sha256(main).hexdigest(), shot_size(main))
    sha, size = memo[uri]
    return sha if size is not None and size == shot_size(data) else ""


def prepare_item(
    item: WorkItem, spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, store: Store, engines: dict[str, Engine],
    sources: SourceFetcher, shas: dict[str, tuple[str, tuple[int, int] | None]] | None = None,
) -> tuple[list[Output], _Pending | None]:
    """Read, fingerprint, skip what is unchanged, decode and cut out once. No rendering yet. ``shas``: the
    chunk's memo of main photos' hashes."""
    product = item.product
    channels = photo_channels(spec, channels, item.photo)
    looks = {ch.name: effective_look(spec, product.category, ch, ctx, item.photo) for ch in channels}

    def failed(reason: str) -> list[Output]:
        return _failed_outputs(product, spec, channels, looks, reason, item.photo)

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    data, problem = _read_source(product, sources, item.photo)
    if problem:
        return failed(problem), None
    if data is not None:
        timings["read_ms"] = (time.perf_counter() - t0) * 1000
    source_sha = hashlib.sha256(data).hexdigest() if data is not None else "no-photo"

    try:
        alt_text = fill_template(spec.template_for(product.category).alt_text, product)
        prompts = {n: fill_template(lk.generation.prompt, product) for n, lk in looks.items() if lk.generation}
    except ItemError as e:
        return failed(str(e)), None

    pending = _Pending(item=item, looks=looks, cut=None, alt_text=alt_text, failed=failed, timings=timings, prompts=prompts,
                       source_sha=source_sha)
    shas = {} if shas is None else shas
    if item.photo == 1 and data is not None and product.images:  # read once: the product's other photos reuse it
        shas[product.images[0]] = (source_sha, shot_size(data))
    main = main_sha(product, sources, shas, data) if item.photo > 1 else ""
    outputs = _sort_unchanged(item, spec, channels, looks, engines, store, source_sha, alt_text, pending.todo, main)
    if not pending.todo:
        return outputs, None

    if data is not None:
        try:
            t = time.perf_counter()
            pending.image = decode_image(data, max_pixels=spec.max_source_pixels)
            timings["decode_ms"] = (time.perf_counter() - t) * 1000
        except ItemError as e:
            return outputs + _failed_todo(pending, str(e)), None
    return outputs, pending


def _read_source(product: Product, sources: SourceFetcher, photo: int = 1) -> tuple[bytes | None, str | None]:
    """The product's ``photo``-th photo (None when it has none), or the one-line reason it cannot be read."""
    if len(product.images) < photo:
        return None, None
    source = product.images[photo - 1]
    try:
        return sources.read(source), None
    except FileNotFoundError:
        return None, f"source image not found: {source}"
    except ItemError as e:  # refused by the fetch policy, too large, not an image, timed out...
        return None, f"source image not fetched: {e}"
    except PermissionError as e:
        return None, f"source image not readable: {e}"
    except OSError as e:
        return None, f"source image not readable: {source}: {e}"


def _sort_unchanged(item: WorkItem, spec: BrandSpec, channels: list[ChannelPreset], looks: dict[str, Look], engines: dict[str, Engine],
                    store: Store, source_sha: str, alt_text: str, todo: list[tuple[ChannelPreset, int, str]],
                    main: str = "") -> list[Output]:
    """Outputs whose fingerprint matches the run state and whose live object is the one it records are unchanged;
    the rest are appended to ``todo`` (channel, variant, fingerprint)."""
    product = item.product
    outputs: list[Output] = []
    for ch in channels:
        look = looks[ch.name]
        for v in range(_variants(look)):
            seed = seed_for(product.sku, v, spec.version)
            fp = fingerprint(product, source_sha, look, spec, engine_id(look, engines), v, seed, item.photo, main)
            key = output_key(spec, product.sku, ch, v, item.photo)
            name = output_name(ch.name, v, item.photo)
            if item.previous.get(name) == fp and live_matches(store, key, item.recorded.get(name)):
                outputs.append(Output(**_identity(product, ch.name, v, item.photo), state="unchanged", fingerprint=fp,
                                      uri=store.uri(key), seed=seed, engine=look.engine,
                                      alt_text=alt_text, ai_generated=look.generation is not None))
            else:
                todo.append((ch, v, fp))
    return outputs


def all_unchanged(items: list[WorkItem], spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, store: Store,
                  engines: dict[str, Engine], sources: SourceFetcher) -> list[Output] | None:
    """Every output of ``items`` as unchanged, or None as soon as one would be rendered (or would fail:
    an unreadable photo, a missing attribute). Reads each source (cached fetches revalidate), renders nothing."""
    outputs: list[Output] = []
    shas: dict[str, tuple[str, tuple[int, int] | None]] = {}
    for item in items:
        product = item.product
        photo_chs = photo_channels(spec, channels, item.photo)
        looks = {ch.name: effective_look(spec, product.category, ch, ctx, item.photo) for ch in photo_chs}
        data, problem = _read_source(product, sources, item.photo)
        if problem:
            return None
        try:
            alt_text = fill_template(spec.template_for(product.category).alt_text, product)
        except ItemError:
            return None
        todo: list[tuple[ChannelPreset, int, str]] = []
        source_sha = hashlib.sha256(data).hexdigest() if data is not None else "no-photo"
        if item.photo == 1 and data is not None and product.images:
            shas[product.images[0]] = (source_sha, shot_size(data))
        main = main_sha(product, sources, shas, data) if item.photo > 1 else ""
        outputs += _sort_unchanged(item, spec, photo_chs, looks, engines, store, source_sha, alt_text, todo, main)
        if todo:
            return None
    return outputs


def _failed_todo(pending: _Pending, reason: str) -> list[Output]:
    """The product's outputs still to render, failed with ``reason`` (unchanged ones stay unchanged)."""
    todo = {(ch.name, v) for ch, v, _ in pending.todo}
    return [o for o in pending.failed(reason) if (o.channel, o.variant) in todo]


def cut_chunk(pendings: list[_Pending], spec: BrandSpec, ctx: RunContext) -> list[Output]:
    """Cut out every pending photo, the model's photos batched; a photo several products share (the same
    bytes, cut with the same settings) is cut once and its cut handed to each. Returns the failed outputs
    of photos that were refused (and drops those from further work)."""
    with_image = [p for p in pendings if p.image is not None]
    if not with_image:
        return []
    first: dict[tuple[str, str], int] = {}  # (source sha256, cut-out settings) -> index of the photo cut
    unique: list[_Pending] = []
    for p in with_image:
        params = spec.cutout_for(p.item.product.category)
        key = (p.source_sha, json.dumps(params.identity(), sort_keys=True))
        if key not in first:
            first[key] = len(unique)
            unique.append(p)
        p.cut_index = first[key]
    t = time.perf_counter()
    params = [spec.cutout_for(p.item.product.category) for p in unique]
    results = cut_out_many([p.image for p in unique], params, segmenter_for(ctx.cutout_fallback))
    per_ms = (time.perf_counter() - t) * 1000 / len(unique)
    refused: list[Output] = []
    for p in with_image:
        res = results[p.cut_index]
        p.shared_cut = unique[p.cut_index] is not p
        p.image = None  # pixels go with the cut from here on
        p.timings["cutout_ms"] = 0.0 if p.shared_cut else per_ms
        if isinstance(res, ItemError):
            refused.extend(_failed_todo(p, f"cut-out refused: {res}"))
            p.todo = []
        else:
            p.cut = res
    return refused


def generate_chunk(
    chunk: Chunk, spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, store: Store, engines: dict[str, Engine],
    sources: SourceFetcher | None = None,
) -> list[Output]:
    outputs: list[Output] = []
    jobs: list[tuple[RenderJob, _Pending, ChannelPreset, str]] = []
    sources = sources or SourceFetcher(ctx.fetch, run_id=ctx.run_id)
    sources.prefetch(list(dict.fromkeys(item.product.images[item.photo - 1] for item in chunk.items
                                        if len(item.product.images) >= item.photo)))
    pendings: list[_Pending] = []
    shas: dict[str, tuple[str, tuple[int, int] | None]] = {}
    for item in chunk.items:
        try:
            done, pending = prepare_item(item, spec, channels, ctx, store, engines, sources, shas)
        except Exception as e:  # one product's unexpected error fails that product alone (transient ones are retried)
            if is_transient(e):
                raise
            done, pending = failed_item(item, spec, channels, ctx, _one_line("reading the photo", e)), None
        outputs.extend(done)
        if pending is not None:
            pendings.append(pending)
    mains = _main_photos(chunk, pendings, spec, sources)  # cut too where only other photos of a product render
    outputs.extend(cut_chunk(pendings + mains, spec, ctx))
    _anchor(pendings + mains)
    for pending in pendings:
        item = pending.item
        tpl = spec.template_for(item.product.category)
        for ch, v, fp in pending.todo:
            look = pending.looks[ch.name]
            job = RenderJob(
                product=item.product, look=look, variant=v, seed=seed_for(item.product.sku, v, spec.version),
                cut=pending.cut, prompt=pending.prompts.get(ch.name),
                negative_prompt=tpl.negative_prompt if look.generation else None, anchor=pending.anchor,
            )
            jobs.append((job, pending, ch, fp))

    by_engine: dict[str, list[int]] = {}
    left: dict[int, int] = {}  # jobs still to stage per pending photo
    for i, (job, pending, *_rest) in enumerate(jobs):
        by_engine.setdefault(job.look.engine, []).append(i)
        left[id(pending)] = left.get(id(pending), 0) + 1
    slots: list[tuple[RenderJob, _Pending, ChannelPreset, str] | None] = list(jobs)
    del jobs
    for engine_name, idxs in by_engine.items():
        engine = engines[engine_name]
        # the AI engine batches across the chunk; the studio engine renders one photo's jobs at a time, staged at
        # once, so a chunk never holds every render of every photo in memory together
        batches = [idxs] if engine_name != "studio" else _per_photo(idxs, slots)
        for batch in batches:
            t = time.perf_counter()
            results = render_isolated(engine, [slots[i][0] for i in batch])
            per_job_ms = (time.perf_counter() - t) * 1000 / max(1, len(batch))
            for i, res in zip(batch, results, strict=True):
                job, pending, ch, fp = slots[i]
                outputs.append(_stage(job, pending, ch, fp, res, engine, per_job_ms, spec, ctx, store))
                slots[i] = None
                left[id(pending)] -= 1
                if not left[id(pending)]:  # every output of this photo is staged: its pixels are not needed again
                    pending.image = pending.cut = None
    n_failed = sum(o.state == "failed" for o in outputs)
    log.info("chunk %d: %d outputs, %d failed; sources: %s", chunk.index, len(outputs), n_failed, sources.stats.as_dict())
    return outputs


def _per_photo(idxs: list[int], slots: list) -> list[list[int]]:
    """``idxs`` grouped by the photo (pending) their jobs render, in order."""
    groups: dict[int, list[int]] = {}
    for i in idxs:
        groups.setdefault(id(slots[i][1]), []).append(i)
    return list(groups.values())


def _main_photos(chunk: Chunk, pendings: list[_Pending], spec: BrandSpec, sources: SourceFetcher) -> list[_Pending]:
    """The main photos to cut only to frame their products' other photos by (their own outputs unchanged):
    one per product with another photo to render and no main photo rendering. Nothing renders from them;
    one that cannot be read or decoded leaves its product's photos framed each by itself."""
    rendering = {p.item.product.sku for p in pendings if p.image is not None and p.item.photo == 1}
    wanted = {p.item.product.sku for p in pendings if p.image is not None and p.item.photo > 1} - rendering
    out = []
    for item in chunk.items:
        if item.photo != 1 or item.product.sku not in wanted:
            continue
        data, problem = _read_source(item.product, sources, 1)
        if problem or data is None:
            continue
        try:
            image = decode_image(data, max_pixels=spec.max_source_pixels)
        except ItemError:
            continue
        out.append(_Pending(item=item, looks={}, cut=None, alt_text="", failed=lambda _reason: [], timings={},
                            image=image, source_sha=hashlib.sha256(data).hexdigest()))
    return out


def _anchor(pendings: list[_Pending]) -> None:
    """Frame each additional photo by its product's main photo when both come from one shoot (the same
    pixel size): the main photo's solid box is the anchor of :func:`lightbox.imaging.compose.place`."""
    mains = {p.item.product.sku: p.cut for p in pendings if p.item.photo == 1 and p.cut is not None}
    for p in pendings:
        main = mains.get(p.item.product.sku)
        if p.item.photo > 1 and p.cut is not None and main is not None and main.rgba.shape[:2] == p.cut.rgba.shape[:2]:
            x0, y0, x1, y1 = main.solid_bbox
            p.anchor = (x1 - x0, y1 - y0)


def _one_line(what: str, e: BaseException) -> str:
    """An unexpected error as a one-line reason for one item (its traceback goes to the log)."""
    log.error("%s failed on one item", what, exc_info=e)
    return f"{what} failed: {first_line(e)}"


def _identity(product: Product, channel: str, variant: int, photo: int) -> dict:
    """What names an output and the product page it belongs to."""
    source = product.images[photo - 1] if len(product.images) >= photo else ""
    return dict(sku=product.sku, row=product.row, category=product.category, channel=channel, variant=variant, photo=photo,
                source=source, title=product.title, handle=product.attributes.get("handle", ""))


def _failed_outputs(product: Product, spec: BrandSpec, channels: list[ChannelPreset], looks: dict[str, Look], reason: str,
                    photo: int = 1) -> list[Output]:
    """Every output of the product's ``photo`` (each channel, each variant), failed with ``reason``."""
    return [
        Output(**_identity(product, ch.name, v, photo), state="failed", seed=seed_for(product.sku, v, spec.version),
               engine=looks[ch.name].engine, error=reason)
        for ch in channels for v in range(_variants(looks[ch.name]))
    ]


def failed_item(item: WorkItem, spec: BrandSpec, channels: list[ChannelPreset], ctx: RunContext, reason: str) -> list[Output]:
    """Every output of one work item (one photo of a product), failed with ``reason``."""
    channels = photo_channels(spec, channels, item.photo)
    looks = {ch.name: effective_look(spec, item.product.category, ch, ctx, item.photo) for ch in channels}
    return _failed_outputs(item.product, spec, channels, looks, reason, item.photo)


def render_isolated(engine: Engine, jobs: list[RenderJob]) -> list[Rendered]:
    """``engine.render(jobs)``, with one job's unexpected error failing that job alone: a batch that raises
    is rendered again one job at a time, and a job that raises alone gets ``Rendered(error=...)``.
    Transient errors (a device or storage outage) propagate, so the task's retry policy can act."""
    try:
        return engine.render(jobs)
    except Exception as e:  # sorted just below: transient ones propagate, the rest fail one job each
        if is_transient(e):
            raise
        if len(jobs) == 1:
            return [Rendered(error=_one_line(f"rendering with {engine.name}", e))]
        log.warning("%s: a batch of %d jobs failed (%s); rendering them one at a time", engine.name, len(jobs), type(e).__name__)
    return [r for job in jobs for r in render_isolated(engine, [job])]


def construction_metrics(cut: CutOut, look: Look, blob: bytes | Image.Image, anchor: tuple[int, int] | None = None) -> dict:
    """What QC cannot measure without the cut-out: where the product went, how much it was enlarged,
    which method cut it and why, the cut's own diagnostics (``cutout_*``), and how faithful the encoded
    product region is to the product: to the cut-out (``fidelity``) and to the source photo itself
    (``fidelity_source``: opaque product pixels against the source resampled the same way)."""
    crop, solid = layout(cut, look, anchor=anchor)
    reference = resampled_image(cut, (crop.width, crop.height))
    m = {
        "product_box": [solid.x, solid.y, solid.x + solid.width, solid.y + solid.height],
        # the source photo's rectangle (source pixels, after EXIF rotation) that was placed, and the output's
        # rectangle it fills (the same rectangle, scaled): an overlay of the cut on its source, or a check of
        # the output against a mask of the source
        "placement": {"source_box": list(cut.bbox), "source_size": [int(cut.rgba.shape[1]), int(cut.rgba.shape[0])],
                      "box": [crop.x, crop.y, crop.x + crop.width, crop.y + crop.height],
                      **({"main_box": list(anchor)} if anchor else {})},
        "upscale": round(solid.scale, 4),
        "cutout_method": cut.method,
        "cutout_reason": cut.reason,
        **cut.diagnostics,
    }
    size = (crop.width, crop.height)
    if cut.source is None:  # a transparent source: the cut-out is the source
        m["fidelity"] = m["fidelity_source"] = fidelity(blob, reference, crop.x, crop.y)
    elif (interior := source_interior(cut, size)) is not None:
        m["fidelity"], m["fidelity_source"] = fidelity(blob, reference, crop.x, crop.y, interior=interior)
    else:
        m["fidelity"], m["fidelity_source"] = fidelity(blob, reference, crop.x, crop.y, source_reference(cut, size))
    return m


def _opaque_interior(cut: CutOut) -> tuple[np.ndarray, bool]:
    """(the cut's opaque pixels over its box, eroded by one so edge mixing does not count; whether the cut
    kept the source's colour on every one of them), once per cut."""
    if "opaque interior" not in cut.cache:
        x0, y0, x1, y1 = cut.bbox
        rgba, src = cut.rgba[y0:y1, x0:x1], cut.source[y0:y1, x0:x1]
        inside = erode_cross(rgba[..., 3] == 255, border=True)
        changed = rgba[..., 0] != src[..., 0]
        for k in (1, 2):
            changed |= rgba[..., k] != src[..., k]
        kept = not (changed & inside).any()
        cut.cache["opaque interior"] = (inside, kept)
    return cut.cache["opaque interior"]


def source_interior(cut: CutOut, size: tuple[int, int]) -> np.ndarray | None:
    """Where the product resampled to ``size`` is, pixel for pixel, the source photo's own pixels resampled
    alike: the pixels whose whole Lanczos window lies in the cut's opaque interior, when the cut kept the
    source's colour there (a resize reads nothing else, so both resize to the same bytes). None when the
    cut changed an opaque pixel: then the source is resampled itself (:func:`source_reference`)."""
    inside, kept = _opaque_interior(cut)
    if not kept:
        return None
    key = ("interior", size)
    if key not in cut.cache:
        cut.cache[key] = interior_after_resample(inside, size)
    return cut.cache[key]


def source_reference(cut: CutOut, size: tuple[int, int]) -> np.ndarray | None:
    """The source photo's own pixels over the cut's box, resampled to ``size`` with the product's filter,
    with the cut's opaque pixels (eroded by one, so edge mixing does not count) as alpha 255."""
    if cut.source is None:
        return None
    key = ("source", size)
    if key not in cut.cache:
        x0, y0, x1, y1 = cut.bbox
        src = cut.source[y0:y1, x0:x1]
        alpha = np.where(_opaque_interior(cut)[0], 255, 0).astype(np.uint8)
        if (src.shape[1], src.shape[0]) == size:
            cut.cache[key] = np.dstack([src, alpha])
        else:  # the RGBA image made by Pillow straight from the planes: no interleaved copy in NumPy
            im = Image.fromarray(src, "RGB")
            im.putalpha(Image.fromarray(alpha, "L"))
            cut.cache[key] = resample_product(im, size)
    return cut.cache[key]


def _stage(job, pending: _Pending, ch: ChannelPreset, fp: str, res, engine: Engine, render_ms: float,
           spec: BrandSpec, ctx: RunContext, store: Store) -> Output:
    product, photo = job.product, pending.item.photo
    base = dict(**_identity(product, ch.name, job.variant, photo), seed=job.seed, engine=engine.name,
                engine_version=engine.version, alt_text=pending.alt_text)
    if res.error or res.image is None:
        return Output(**base, state="failed", fingerprint=fp, error=res.error or "engine returned no image")
    ai = res.generation is not None
    try:
        t = time.perf_counter()
        blob = encode(res.image, ch, ai_generated=ai)
        enc_ms = (time.perf_counter() - t) * 1000
        metrics = dict(res.metrics)
        t = time.perf_counter()
        decoded = decode_output(blob)  # once: the cut's fidelity and every quality metric are measured on it
        if job.cut is not None:
            metrics.update(construction_metrics(job.cut, job.look, decoded, job.anchor))
            if pending.shared_cut:
                metrics["cutout_shared"] = True  # the cut of another product's identical photo, made once
        box = metrics.get("product_box")
        metrics.update(measure(blob, job.look, product_box=tuple(box) if box else None, image=decoded))
    except Exception as e:  # one output that cannot be encoded or measured fails alone, never unmeasured
        if is_transient(e):
            raise
        return Output(**base, state="failed", fingerprint=fp, error=_one_line("encoding and measuring the output", e))
    sha = hashlib.sha256(blob).hexdigest()
    metrics["measured_sha256"] = sha  # the gate checks the staged bytes against it and keeps these metrics
    measure_ms = (time.perf_counter() - t) * 1000
    skey = staging_key(spec, ctx.run_id, product.sku, ch, job.variant, photo)
    mark = store.tally()
    store.write_atomic(skey, blob)
    timings = {**{k: round(v, 1) for k, v in pending.timings.items()}, "render_ms": round(render_ms, 1), "encode_ms": round(enc_ms, 1),
               "measure_ms": round(measure_ms, 1)}
    return Output(
        **base, state="rendered", fingerprint=fp, staged_uri=store.uri(skey),
        uri=store.uri(output_key(spec, product.sku, ch, job.variant, photo)), sha256=sha,
        bytes=len(blob), width=res.image.width, height=res.image.height, timings_ms=timings,
        ai_generated=ai, generation=res.generation, metrics=metrics, **store.waited_since(mark),
    )
