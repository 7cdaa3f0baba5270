"""The job API's tests share one fixture: the work pools and queues of ``lightbox ops setup`` and an on-demand
deployment of catalog-run on the Prefect test harness."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def deployment():
    """The work pools and queues of `lightbox ops setup`, and an `on-demand` deployment of catalog-run on
    the harness server (no worker here: runs stay scheduled)."""
    from prefect.client.orchestration import get_client

    from deployments.apply import setup

    from prefect.blocks.core import Block

    try:
        Block.load("custom-webhook/lightbox-ops")
        had_block = True
    except ValueError:
        had_block = False
    lines = setup(str(REPO / "deployments"))  # idempotent: each API test module sets up again
    assert any(line.startswith("queue lightbox-process/urgent:") and line.endswith("priority 1") for line in lines)
    if not had_block:
        assert any(line.startswith("automation lightbox-run-failed: skipped") for line in lines)  # no block yet

    async def make():
        async with get_client() as client:
            flow_id = await client.create_flow_from_name("catalog-run")
            return await client.create_deployment(flow_id=flow_id, name=f"on-demand-{uuid.uuid4().hex[:6]}",
                                                  entrypoint="flows/catalog_run.py:catalog_run",
                                                  work_pool_name="lightbox-process", work_queue_name="default")

    dep_id = asyncio.run(make())
    return dep_id
