"""The small records that flow between pipeline stages (references, never pixels)."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lightbox.fetch_policy import FetchPolicy
from lightbox.layout import output_name


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Product(_Record):
    """One catalog row, normalised. ``images`` are absolute references (path, file://, s3://, https://)."""

    row: int = Field(description="1-based data row in the source catalog")
    sku: str
    title: str
    category: str
    images: list[str] = Field(default_factory=list)
    attributes: dict[str, str] = Field(default_factory=dict)
    priority: int = 0
    hero: bool = False

    def field(self, name: str) -> str | None:
        """A core field or an attribute by name; None when the product lacks it (or it is empty)."""
        if name in ("sku", "title", "category"):
            return getattr(self, name)
        value = self.attributes.get(name)
        return value if value not in (None, "") else None


class QuarantinedRow(_Record):
    """A row that is not rendered (or rendered with a warning): where it is and why."""

    row: int = Field(description="1-based data row in the source file (XML: item number)")
    sku: str
    reason: str
    column: str = Field("", description="the source column(s) the reason is about")
    causes: list[str] = Field(default_factory=list, description="the reasons one by one, when there are several")


class Validated(_Record):
    """The validate stage's result, by reference: the valid rows in the run's folder, the counts and the rows
    left out; ``rejected`` says why the catalog is refused as a whole (too many invalid rows), else None."""

    run_id: str
    valid_uri: str
    ingested: int
    quarantined: list[QuarantinedRow]
    warnings: list[QuarantinedRow]
    skipped: list[QuarantinedRow] = Field(default_factory=list)
    rejected: str | None = None


class Recorded(_Record):
    """What the run state records of a live object: enough to tell that the object is still that one."""

    bytes: int
    sha256: str
    etag: str | None = Field(None, description="the store's ETag just after the write (object stores), else None")

    @classmethod
    def of(cls, entry: dict[str, Any]) -> Recorded | None:
        """What a state entry records of its live object; None when it records no bytes."""
        if not entry.get("bytes") or not entry.get("sha256"):
            return None
        return cls(bytes=int(entry["bytes"]), sha256=entry["sha256"], etag=entry.get("etag"))


Role = Literal["main", "additional"]


def role_of(photo: int) -> Role:
    """A photo's role on a product page: the first is the main image, the rest are additional."""
    return "main" if photo == 1 else "additional"


class WorkItem(_Record):
    """One photo of a product to render, with what the planner knows of its previous outputs."""

    product: Product
    seed: int
    photo: int = Field(1, ge=1, description="the photo's position among the product's images (1 = main)")
    previous: dict[str, str] = Field(default_factory=dict, description="channel -> fingerprint in the run state")
    recorded: dict[str, Recorded] = Field(
        default_factory=dict, description="output name -> what the run state records of its live object")


class Chunk(_Record):
    index: int
    items: list[WorkItem]


class RunContext(_Record):
    """What every chunk task needs to find its inputs and outputs. Small and serialisable."""

    run_id: str
    brand_uri: str
    out_uri: str
    ai_fallback: str | None = Field(None, description="why AI looks render with the studio engine this run")
    cutout_fallback: str | None = Field(None, description="why the segmentation model is not used this run")
    fetch: FetchPolicy = Field(default_factory=FetchPolicy, description="how source images are fetched")
    lock_generation: int | None = Field(None, description="the brand lock lease this run holds: publishes are fenced by it")


State = Literal["failed", "unchanged", "rendered", "checked", "review", "live", "already_live"]
"""Where an output is in its life - its one lifecycle state:

- ``failed``: could not be rendered (``error`` says why); nothing was staged.
- ``unchanged``: not rendered: its fingerprint equals the live output's, which stays.
- ``rendered``: staged under the run's staging prefix, not gated yet.
- ``checked``: gated by its channel's rules; ``qc`` holds the verdict.
- ``review``: copied to the run's review prefix (the verdict failed); never live.
- ``live``: written live this run.
- ``already_live``: rendered to exactly the bytes already live (nothing written).
"""

# The steps an output may take; anything else is a defect and raises (Output.to).
STEPS: dict[str, frozenset[str]] = {
    "rendered": frozenset({"checked"}),
    "checked": frozenset({"checked", "review", "live", "already_live"}),  # checked -> checked: a verdict amended (main held)
    "review": frozenset({"live"}),  # an operator approved it
    "failed": frozenset({"live"}),  # a chunk that failed after its retries had made it live: the run state says so
    "unchanged": frozenset(),
    "live": frozenset(),
    "already_live": frozenset(),
}
MADE = frozenset({"rendered", "checked", "review", "live", "already_live"})
LIVE = frozenset({"live", "already_live"})

Verdict = Literal["passed", "failed", "warned", "not_run"]


class LifecycleError(ValueError):
    """An output asked to take a step its life does not have (a defect, never a user's mistake)."""


class Output(_Record):
    """One (product, photo, channel, variant) result as it moves through generate -> quality -> publish."""

    sku: str
    row: int
    category: str
    channel: str
    variant: int = 0
    photo: int = Field(1, ge=1, description="the source photo's position among the product's images (1 = main)")
    source: str = Field("", description="the source photo's reference as the catalog gives it")
    title: str = ""
    handle: str = Field("", description="the product's handle in its shop (Shopify), when the catalog gives one")
    state: State = Field(description="where the output is in its life (see State)")
    fingerprint: str = ""
    staged_uri: str | None = None
    uri: str | None = None
    sha256: str | None = None
    etag: str | None = Field(None, description="the live object's ETag once written to an object store")
    bytes: int = 0
    width: int = 0
    height: int = 0
    engine: str = ""
    engine_version: str = ""
    seed: int = 0
    alt_text: str = ""
    ai_generated: bool = False
    generation: dict[str, Any] | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    error: str | None = None
    qc: Verdict = Field("not_run", description="the quality gate's verdict (a measurement kept with the output: an "
                        "operator-approved output is live with the verdict failed)")
    qc_reasons: list[str] = Field(default_factory=list)
    metrics: dict[str, Any] = Field(default_factory=dict)
    storage_retries: int = Field(0, description="transient storage failures waited out for this output")
    storage_waited_s: float = Field(0.0, description="seconds spent waiting them out")

    def to(self, state: State, **update: Any) -> Output:
        """This output one step further in its life, with ``update`` applied; a step its life does not have
        (publishing an output that was never gated, say) raises :class:`LifecycleError`."""
        if state not in STEPS[self.state]:
            raise LifecycleError(f"{self.sku}/{self.name}: an output that is {self.state} cannot become {state}")
        return self.model_copy(update={**update, "state": state})

    @property
    def made(self) -> bool:
        """Rendered this run (whatever happened to it next)."""
        return self.state in MADE

    @property
    def live(self) -> bool:
        """Live after this run, from this run's render: written, or rendered to the bytes already live."""
        return self.state in LIVE

    def charged(self, waits: dict[str, float]) -> Output:
        """This output with storage waits added (what :meth:`lightbox.storage.Store.waited_since` returned)."""
        if not waits:
            return self
        return self.model_copy(update={"storage_retries": self.storage_retries + int(waits["storage_retries"]),
                                       "storage_waited_s": round(self.storage_waited_s + waits["storage_waited_s"], 2)})

    @property
    def name(self) -> str:
        """Output name (:func:`lightbox.layout.output_name`): the channel, ``-N`` for photos after the main
        one, ``-vN`` for variants after the first."""
        return output_name(self.channel, self.variant, self.photo)

    @property
    def role(self) -> Role:
        return role_of(self.photo)


def seed_for(sku: str, variant: int, spec_version: int) -> int:
    """One seed per (sku, variant, spec version): stable across runs, machines and Python versions."""
    digest = hashlib.sha256(f"{sku}|{variant}|{spec_version}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF
