"""The operator's decision on flagged outputs, taken in the Prefect UI while the run is paused.

Enabled per brand spec (``quality.review_pause``). After every chunk is published and before the
manifest is committed, a run with outputs in review pauses with a form (:class:`ReviewDecision`):
approve all, reject all, or approve these SKUs. Approved outputs are published from the review prefix;
the rest stay there. With no decision within ``timeout_s`` the run goes on and nothing flagged is
published. The run holds its brand's slot while paused: other runs of the brand wait for the decision.
"""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from lightbox.records import Output, RunContext
from lightbox.specs import BrandSpec
from tasks.report import artifact_key
from tasks.stages import approve_reviewed


class ReviewDecision(RunInput):
    decision: Literal["approve_all", "reject_all", "approve_skus"] = "reject_all"
    skus: list[str] = []


def approved_skus(decision: ReviewDecision, flagged: set[str]) -> list[str]:
    if decision.decision == "approve_all":
        return sorted(flagged)
    if decision.decision == "approve_skus":
        return sorted(flagged & set(decision.skus))
    return []


def operator_review(outputs: list[Output], spec: BrandSpec, ctx: RunContext) -> list[Output]:
    """Pause for a decision when the spec asks for one and something is in review; apply it."""
    flagged = {o.sku for o in outputs if o.state == "review"}
    if not spec.quality.review_pause.enabled or not flagged:
        return outputs
    logger = get_run_logger()
    timeout = spec.quality.review_pause.timeout_s
    rows = "\n".join(f"| {o.sku} | {o.name} | {'; '.join(o.qc_reasons)} | `{o.uri}` |"
                     for o in outputs if o.state == "review")
    create_markdown_artifact(
        key=artifact_key(spec.name, "review-decision"),
        markdown=(f"# {len(flagged)} SKUs flagged in run `{ctx.run_id}`\n\nResume the run with a decision: "
                  "`approve_all`, `reject_all`, or `approve_skus` with `skus`. "
                  f"Without one within {timeout} s, flagged outputs stay unpublished.\n\n"
                  f"| sku | output | reasons | review copy |\n|---|---|---|---|\n{rows}\n"),
        description="Flagged outputs waiting for an operator",
    )
    logger.warning("pausing for an operator decision on %d flagged SKUs (timeout %d s)", len(flagged), timeout)
    try:
        decision = pause_flow_run(wait_for_input=ReviewDecision, timeout=timeout, poll_interval=min(10, max(1, timeout // 10)),
                                  key=f"review-{ctx.run_id.lower()}")
    except FlowPauseTimeout:
        _resume_self()
        logger.warning("no decision within %d s: flagged outputs stay in review, unpublished", timeout)
        return outputs
    approved = approved_skus(decision, flagged)
    if decision.decision == "approve_skus" and set(decision.skus) - flagged:
        logger.warning("approved SKUs that were not flagged (ignored): %s", ", ".join(sorted(set(decision.skus) - flagged)))
    logger.info("operator decision %s: approving %d of %d flagged SKUs", decision.decision, len(approved), len(flagged))
    return approve_reviewed(outputs, approved, spec, ctx) if approved else outputs


def _resume_self() -> None:
    """After a pause timeout the server still says Paused; the run goes on, so it says Running again."""
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context
    from prefect.states import Running

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(get_run_context().flow_run.id, Running(), force=True)
