"""The output layout: every key a brand's run reads or writes under the output root, in one place.

```
<root>/_lightbox/state.sqlite                  the run state (default; lightbox/state.py)
<root>/_lightbox/settings.json                 the root's own settings: its public base URL (lightbox export)
<root>/<brand>/<SKU>/<output>.<ext>            live images; <output> is spelled by output_name():
                                               <channel>[-<photo>][-v<variant>], e.g. amazon_main.jpg
                                               (the main photo), amazon_main-2.jpg (the second photo)
<root>/<brand>/manifest.parquet, .jsonl        exports of the run state
<root>/<brand>/manifest.json                   a v1 manifest (imported on first use, then kept aside as
<root>/<brand>/_lightbox/manifest.v1.json       this)
<root>/<brand>/latest-run.json                 pointer to the last run's summary
<root>/<brand>/consistency.json                latest catalog consistency
<root>/<brand>/_lock/<generation>.json         the brand lock's leases
<root>/<brand>/_runs/<run>/...                 a run's files (lightbox/run.py): catalog/valid.parquet, validated.json, summary.json,
<root>/<brand>/_runs/<run>/staging/...          quarantine.csv, review.html, changes.jsonl; staged outputs
<root>/<brand>/_review/<run>/<SKU>/<file>      outputs that failed the gate
<root>/<brand>/_review/<run>/records.jsonl     their records (reasons, cut-out, confidence, placement)
```

Brand names are slugs and SKUs are filename-safe and never start with ``_`` (validated), so a SKU folder
never collides with the brand's own ``_`` folders or files.
"""

from __future__ import annotations

from dataclasses import dataclass

STATE_DIR = "_lightbox"  # under the root: the default run state; under a brand: files kept aside
ROOT_SETTINGS = f"{STATE_DIR}/settings.json"  # under the root: what the root keeps about itself


def output_name(channel: str, variant: int = 0, photo: int = 1) -> str:
    """An output's name within its SKU folder: ``shopify_square`` for the main photo's first variant,
    ``shopify_square-2`` for the product's second photo, ``shopify_square-v2`` for the main photo's second
    variant (AI looks), ``shopify_square-2-v2`` for both. Channel names are identifiers (no ``-``)."""
    name = channel if photo == 1 else f"{channel}-{photo}"
    return name if variant == 0 else f"{name}-v{variant + 1}"


@dataclass(frozen=True)
class BrandLayout:
    brand: str

    # live outputs
    def live(self, sku: str, output: str, extension: str) -> str:
        return f"{self.brand}/{sku}/{output}.{extension}"

    # a run's own files
    @property
    def runs(self) -> str:
        return f"{self.brand}/_runs"

    def run(self, run_id: str, name: str = "") -> str:
        return f"{self.runs}/{run_id}/{name}".rstrip("/")

    def staging(self, run_id: str) -> str:
        return self.run(run_id, "staging")

    def staged(self, run_id: str, sku: str, output: str, extension: str) -> str:
        return f"{self.staging(run_id)}/{sku}/{output}.{extension}"

    def review(self, run_id: str, sku: str, filename: str) -> str:
        return f"{self.brand}/_review/{run_id}/{sku}/{filename}"

    def review_records(self, run_id: str) -> str:
        """One JSON record per output this run sent to review (as the manifest records a live one)."""
        return f"{self.brand}/_review/{run_id}/records.jsonl"

    def changes(self, run_id: str) -> str:
        return self.run(run_id, "changes.jsonl")

    # the brand's state and pointers
    @property
    def lock(self) -> str:
        return f"{self.brand}/_lock"

    @property
    def exports(self) -> tuple[str, str]:
        """(Parquet, JSON Lines) exports of the run state."""
        return f"{self.brand}/manifest.parquet", f"{self.brand}/manifest.jsonl"

    @property
    def v1_manifest(self) -> str:
        return f"{self.brand}/manifest.json"

    @property
    def v1_kept(self) -> str:
        return f"{self.brand}/{STATE_DIR}/manifest.v1.json"

    @property
    def latest_run(self) -> str:
        return f"{self.brand}/latest-run.json"

    @property
    def consistency(self) -> str:
        return f"{self.brand}/consistency.json"
