"""The catalog run's stages in their order, written once:

    validate -> plan -> generate -> quality-check -> publish   (per chunk)
             -> collect -> retire -> report

How each stage runs is the caller's, through :class:`Stages`:

- ``lightbox/pipeline.py`` (:func:`lightbox.pipeline.run_plain`): in this process, chunk after chunk (lazily:
  a chunk is generated, checked and published before the next one is generated);
- ``flows/catalog_run.py``: as Prefect tasks mapped over the chunks (futures from stage to stage);
- ``lightbox/preflight.py`` (:func:`lightbox.preflight.unchanged_run`): fingerprints only, for a run with
  nothing to render - its generate stops the composition (:class:`WouldRender`) at the first output that would
  render, and nothing is checked or published.

So the three agree on what a run is: a refused catalog stops before planning, the plan is recorded in the
:class:`~lightbox.run.Run`, and every chunk's outputs pass the gate before anything is published.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, TypeVar

from lightbox.plan import Plan
from lightbox.records import Chunk, Output
from lightbox.run import Run

H = TypeVar("H")  # what a mapped stage hands the next: a chunk's outputs, or a future of them
R = TypeVar("R", covariant=True)  # what a run ends with: a summary, a Prefect state, None


class WouldRender(Exception):
    """Raised by a stage that only checks (the unchanged-run shortcut) when the run has work to do after all."""


class Stages(Protocol[H, R]):
    def validate(self, run: Run) -> tuple[Run, str | None]:
        """Read and validate the catalog (or take what the caller already checked): the run with its counts
        noted (:meth:`Run.validated`), and why the catalog is refused as a whole, else None."""
        ...

    def stop(self, run: Run, reason: str) -> R:
        """End a run whose catalog is refused: nothing is planned or rendered."""
        ...

    def plan(self, run: Run) -> Plan: ...

    def generate(self, chunks: list[Chunk]) -> Iterable[H]: ...

    def check(self, generated: Iterable[H]) -> Iterable[H]: ...

    def publish(self, checked: Iterable[H]) -> Iterable[H]: ...

    def collect(self, chunks: list[Chunk], generated: Iterable[H], checked: Iterable[H], published: Iterable[H]) -> list[Output]:
        """Every output of the run once published (a chunk that failed after its retries: its outputs failed)."""
        ...

    def retire(self, run: Run, plan: Plan) -> Run:
        """Take down the photos the catalog dropped (``plan.retire``); the run with what was retired noted."""
        ...

    def report(self, run: Run, plan: Plan, outputs: list[Output]) -> R: ...


def compose(run: Run, stages: Stages[Any, R]) -> R:
    """Run the stages in their order (see the module's docstring)."""
    run, refused = stages.validate(run)
    if refused:
        return stages.stop(run, refused)
    plan = stages.plan(run)
    run = run.planned(plan)
    generated = stages.generate(plan.chunks)
    checked = stages.check(generated)
    published = stages.publish(checked)
    outputs = stages.collect(plan.chunks, generated, checked, published)
    run = stages.retire(run, plan)
    return stages.report(run, plan, outputs)
