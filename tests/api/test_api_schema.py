"""A property-based run of the job API over its own OpenAPI schema (schemathesis): generated requests,
valid and not, against every operation, authenticated. No response may be a 5xx, and every response of a
documented status must match its schema. Bounded: a fixed number of examples per operation, no deadline."""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api.app import Settings, create_app
from api.keys import create_key
from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]
KEY: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(deployment, tmp_path_factory):
    from prefect.client.orchestration import get_client

    root = tmp_path_factory.mktemp("schema")
    (root / "feeds").mkdir()
    KEY["value"] = create_key(root / "keys.json", "fuzz")

    async def name():
        async with get_client() as client:
            return f"catalog-run/{(await client.read_deployment(deployment)).name}"

    app = create_app(Settings(keys_file=str(root / "keys.json"), out=str(root / "out"), brands_dir=str(REPO / "brand_specs"),
                              catalog_prefixes=[str(root / "feeds")], deployment=asyncio.run(name()),
                              default_catalog=str(root / "feeds" / "catalog.csv")))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_5xx_and_responses_match_the_schema(api_schema):
    """Each operation in turn (schemathesis' lazy pytest loader does not run under this pytest): 25 examples each."""
    headers = {"Authorization": f"Bearer {KEY['value']}"}
    checked, calls = [], []
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def run(case):
            calls.append(case.call_and_validate(headers=headers, checks=[not_a_server_error, response_schema_conformance,
                                                            content_type_conformance]).status_code)

        run()
        checked.append(operation.label)
    assert {"POST /v1/jobs", "GET /v1/jobs/{job_id}", "POST /v1/jobs/{job_id}/cancel", "POST /v1/catalog-events"} <= set(checked)
    assert len(calls) >= 40 and max(calls) < 500
    print(f"{len(calls)} generated requests, statuses {sorted(set(calls))}")
