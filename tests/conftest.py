"""Shared fixtures: an isolated Prefect home, one Prefect test harness per session (started only when a
flow test needs it), a real S3 endpoint on loopback (moto in server mode), and image factories."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from tests.support.helpers import free_port

_HOME = tempfile.mkdtemp(prefix="lightbox-prefect-home-")
os.environ.setdefault("PREFECT_HOME", _HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.pop("PREFECT_API_URL", None)
os.environ["LIGHTBOX_HOME"] = tempfile.mkdtemp(prefix="lightbox-home-")  # keys, spooled journals: never the user's

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_CATALOG = REPO / "examples" / "acme-home" / "catalog.csv"
ACME = str(REPO / "brand_specs" / "acme-home.yaml")
TRAILHEAD = str(REPO / "brand_specs" / "trailhead-outdoor.yaml")


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode on 127.0.0.1: s3fs talks to it over real HTTP, as to AWS."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    old = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "LIGHTBOX_S3_ENDPOINT_URL")}
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        LIGHTBOX_S3_ENDPOINT_URL=endpoint,
    )
    try:
        yield endpoint
    finally:
        server.stop()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_server, tmp_path_factory, monkeypatch):
    """A fresh bucket per test (moto reset before each), s3fs's instance cache cleared, and a fresh
    LIGHTBOX_HOME (an S3 root's run state lives there: the bucket's name is the same in every test)."""
    monkeypatch.setenv("LIGHTBOX_HOME", str(tmp_path_factory.mktemp("lightbox-home")))
    import boto3
    import requests
    import s3fs

    requests.post(f"{s3_server}/moto-api/reset", timeout=10)
    s3fs.S3FileSystem.clear_instance_cache()
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket="lightbox-test")
    yield "lightbox-test"
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """Tiny random diffusers pipelines (inpainting, text-to-image), saved with save_pretrained."""
    from lightbox.testing.tiny_diffusion import build_all

    return build_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def ai_spec_path(tiny_models, tmp_path_factory):
    """brand_specs/acme-home-ai.yaml pointed at the tiny pipelines."""
    inpaint, txt2img = tiny_models
    text = (REPO / "brand_specs" / "acme-home-ai.yaml").read_text()
    text = text.replace("models/tiny-sd-inpaint", str(inpaint)).replace("models/tiny-sd", str(txt2img))
    path = tmp_path_factory.mktemp("specs") / "acme-ai.yaml"
    path.write_text(text)
    return path


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    """An output Store on local disk, then on S3 (moto's server): storage tests run against both."""
    from lightbox.storage import Store

    if request.param == "local":
        return Store(str(tmp_path / "out"))
    return Store(f"s3://{request.getfixturevalue('s3_bucket')}/out")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for the Prefect server of the end-to-end test, as production runs it:
    ``$LIGHTBOX_TEST_PG_URL`` (``postgresql+asyncpg://user:password@host:port``) when set; else, as root, the
    machine's Debian cluster (``pg_ctlcluster``), started here and stopped at the end, with a test role;
    else None (the test falls back to SQLite, the zero-setup default)."""
    import shutil
    import subprocess
    import time

    if os.environ.get("LIGHTBOX_TEST_PG_URL"):
        yield os.environ["LIGHTBOX_TEST_PG_URL"].rstrip("/")
        return
    if not shutil.which("pg_lsclusters") or os.geteuid() != 0:
        yield None
        return
    clusters = [line.split() for line in subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True,
                                                          check=True).stdout.splitlines() if line.strip()]
    if not clusters:
        yield None
        return
    version, name, port, status = clusters[0][:4]
    started = status != "online"
    if started:
        subprocess.run(["pg_ctlcluster", version, name, "start"], check=True, capture_output=True, timeout=60)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", port], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL {version}/{name} did not accept connections on port {port} in 30 s")
            time.sleep(0.3)
        role = ("DO $$ BEGIN CREATE ROLE lightbox_test LOGIN CREATEDB PASSWORD 'lightbox_test'; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$;")
        subprocess.run(["runuser", "-u", "postgres", "--", "psql", "-p", port, "-q", "-c", role], check=True,
                       capture_output=True, timeout=30)
        yield f"postgresql+asyncpg://lightbox_test:lightbox_test@127.0.0.1:{port}"
    finally:
        if started:
            subprocess.run(["pg_ctlcluster", version, name, "stop"], capture_output=True, timeout=60)


def fresh_database(server_url: str, name: str) -> str:
    """Create (or re-create) database ``name`` on ``server_url``; returns its URL."""
    import asyncio

    import asyncpg

    async def create() -> None:
        dsn = server_url.replace("postgresql+asyncpg://", "postgresql://") + "/postgres"
        conn = await asyncpg.connect(dsn, timeout=15)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return f"{server_url}/{name}"


def pytest_collection_modifyitems(items):
    """End-to-end tests are slow tests too: the fast lane (``-m "not slow"``) leaves them out."""
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
