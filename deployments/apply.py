"""Create what the deployments need on a Prefect server, idempotently (``lightbox ops setup``):

- work pool ``lightbox-process`` (process worker, ``process-base-job-template.json``) with its queues by
  priority: ``urgent`` (1, job API "urgent" and catalog updates), ``default`` (5, on-demand),
  ``nightly`` (10, the nightly run); a worker takes urgent work first;
- work pool ``lightbox-gpu`` (Kubernetes, ``gpu-kubernetes-base-job-template.json``) for AI specs;
- the global concurrency limit ``gpu`` (slots = ``LIGHTBOX_GPU_SLOTS``, default 1);
- the automations in ``automations.yaml`` (``lightbox ops automations`` applies only these).

Then ``lightbox ops deploy`` checks the variables prefect.yaml reads and runs ``prefect deploy --all``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

PROCESS_POOL = "lightbox-process"
GPU_POOL = "lightbox-gpu"
QUEUES = {"urgent": 1, "default": 5, "nightly": 10}  # lower number = taken first
DEPLOY_VARIABLES = ("LIGHTBOX_REPO", "LIGHTBOX_OUT", "LIGHTBOX_BRAND_SPEC", "LIGHTBOX_NIGHTLY_CATALOG")


OPS_BLOCK = "lightbox-ops"  # the notification block the automations in automations.yaml notify


def ensure_ops_block(url: str | None) -> str | None:
    """With ``url``: create (or point at ``url``) the custom-webhook notification block ``lightbox-ops``
    (Slack, Teams, Mattermost or any receiver taking JSON ``{"subject", "text"}``). Returns a line, or
    None when no URL was given. The URL is never echoed (webhook URLs carry their secret)."""
    if not url:
        return None
    from urllib.parse import urlsplit

    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("--notify-url: expected an http(s) URL")
    CustomWebhookNotificationBlock(name=OPS_BLOCK, url=url, json_data={"subject": "{{subject}}", "text": "{{body}}"}).save(
        OPS_BLOCK, overwrite=True)
    return f"notification block custom-webhook/{OPS_BLOCK}: saved (posts to {parts.scheme}://{parts.hostname})"


def setup(directory: str = "deployments", notify_url: str | None = None) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate, WorkPoolUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    from tasks._policy import ensure_concurrency_limit

    d = Path(directory)
    lines = []
    with get_client(sync_client=True) as client:
        for name, kind, template in ((PROCESS_POOL, "process", "process-base-job-template.json"),
                                     (GPU_POOL, "kubernetes", "gpu-kubernetes-base-job-template.json")):
            base = json.loads((d / template).read_text())
            try:
                client.create_work_pool(WorkPoolCreate(name=name, type=kind, base_job_template=base))
                lines.append(f"work pool {name} ({kind}): created")
            except ObjectAlreadyExists:
                client.update_work_pool(name, WorkPoolUpdate(base_job_template=base))
                lines.append(f"work pool {name} ({kind}): template updated")
        # priorities from the lowest up, so no two queues ever hold the same priority
        for queue, priority in sorted(QUEUES.items(), key=lambda kv: -kv[1]):
            try:
                existing = client.read_work_queue_by_name(queue, work_pool_name=PROCESS_POOL)
                if existing.priority != priority:
                    client.update_work_queue(existing.id, priority=priority)
                lines.append(f"queue {PROCESS_POOL}/{queue}: priority {priority}")
            except ObjectNotFound:
                client.create_work_queue(name=queue, priority=priority, work_pool_name=PROCESS_POOL)
                lines.append(f"queue {PROCESS_POOL}/{queue}: created, priority {priority}")
    slots = int(os.environ.get("LIGHTBOX_GPU_SLOTS", "1"))
    ensure_concurrency_limit("gpu", slots)
    lines.append(f"concurrency limit gpu: {slots} slot(s) (kept if it existed)")
    block = ensure_ops_block(notify_url)
    if block:
        lines.append(block)
    return lines + apply_automations(directory)


def load_automations(directory: str = "deployments") -> list[dict]:
    doc = yaml.safe_load((Path(directory) / "automations.yaml").read_text()) or {}
    return list(doc.get("automations") or [])


def apply_automations(directory: str = "deployments") -> list[str]:
    """Create or replace each automation by name; skip (and say so) those whose notification block is missing."""
    from prefect.client.orchestration import get_client
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

    lines = []
    with get_client(sync_client=True) as client:
        blocks = {b.name: b.id for b in client.read_block_documents()}
        for spec in load_automations(directory):
            block_id = blocks.get(spec["notify"])
            if block_id is None:
                lines.append(f"automation {spec['name']}: skipped - notification block {spec['notify']!r} does not exist "
                             "(lightbox ops setup --notify-url URL creates it; or create any notification block of that "
                             "name in the UI)")
                continue
            automation = AutomationCore(
                name=spec["name"], description=spec.get("description", ""), enabled=True,
                trigger=EventTrigger.model_validate(spec["trigger"]),
                actions=[SendNotification(block_document_id=block_id, subject=spec["subject"], body=spec["body"])],
            )
            for old in client.read_automations_by_name(spec["name"]):
                client.delete_automation(old.id)
            client.create_automation(automation)
            lines.append(f"automation {spec['name']}: applied (notifies {spec['notify']})")
    return lines


def deploy(repo: str = ".") -> list[str]:
    missing = [v for v in DEPLOY_VARIABLES if not os.environ.get(v)]
    if missing:
        raise RuntimeError(f"set {', '.join(missing)} before deploying (prefect.yaml reads them)")
    from lightbox.storage import parse_output_root

    parse_output_root(os.environ["LIGHTBOX_OUT"], "LIGHTBOX_OUT")  # every deployment's output root: checked here
    r = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=repo,
                       capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()
        raise RuntimeError(f"prefect deploy failed: {tail[-1] if tail else 'no output'}")
    return deployed_lines()


def deployed_lines(flow: str = "catalog-run") -> list[str]:
    """One line per deployment of ``flow`` as the server has it: name, id, queue, schedule or trigger."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        deployments = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])))
    lines = []
    for d in sorted(deployments, key=lambda d: d.name):
        when = ", ".join(f"cron {s.schedule.cron}" for s in d.schedules if getattr(s.schedule, "cron", None)) or "on demand / triggers"
        lines.append(f"deployment {flow}/{d.name}: id {d.id}, pool {d.work_pool_name}, queue {d.work_queue_name}, {when}")
    return lines
