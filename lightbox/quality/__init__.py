"""Quality stage: measure each rendered output and gate it by its channel's rules."""

from __future__ import annotations

import logging

from lightbox.quality.checks import check_output, evaluate, fidelity, measure
from lightbox.records import Output
from lightbox.specs.models import BrandSpec, ChannelPreset, resolve_look
from lightbox.storage import Store

log = logging.getLogger(__name__)

__all__ = ["check_chunk", "check_output", "evaluate", "fidelity", "measure"]


MAIN_HELD = "[fail] main-image: the product's main image on this channel is not published this run (it failed); its other photos wait for it"


def hold_without_main(outputs: list[Output]) -> list[Output]:
    """Additional photos of a product whose main image failed on the same channel (the gate, or its render) go
    to review with it, never live alone: a product page must not get its other photos without its main one.
    A main image that is unchanged (live already) holds nothing back. A product's photos are in one chunk."""
    failed_main = {(o.sku, o.channel, o.variant) for o in outputs
                   if o.photo == 1 and (o.state == "failed" or o.qc == "failed")}
    out = []
    for o in outputs:
        if o.photo > 1 and o.state == "checked" and o.qc != "failed" and (o.sku, o.channel, o.variant) in failed_main:
            o = o.to("checked", qc="failed", qc_reasons=[*o.qc_reasons, MAIN_HELD])
        out.append(o)
    return out


def check_chunk(outputs: list[Output], spec: BrandSpec, channels: list[ChannelPreset], store: Store) -> list[Output]:
    """Gate every rendered output of a chunk (each becomes ``checked``, its verdict in ``qc``); unchanged and
    failed outputs pass through untouched."""
    by_name = {ch.name: ch for ch in channels}
    checked = []
    for o in outputs:
        if o.state != "rendered":
            checked.append(o)
            continue
        look = resolve_look(spec, o.category, by_name[o.channel])
        if not o.ai_generated:  # AI looks that fell back to the studio engine are measured as studio
            look = look.model_copy(update={"engine": "studio", "generation": None})
        mark = store.tally()
        data = store.read(store.key_of(o.staged_uri or ""))  # a rendered output is staged
        checked.append(check_output(o, data, look).charged(store.waited_since(mark)))
    checked = hold_without_main(checked)
    n_fail = sum(o.qc == "failed" for o in checked)
    if n_fail:
        log.warning("%d of %d outputs failed quality checks", n_fail, len(checked))
    return checked
