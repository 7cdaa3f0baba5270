"""Shared fixtures: an isolated Prefect home, one Prefect test harness per session (started only when a
flow test needs it), a real S3 endpoint on loopback (moto in server mode), and image factories."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 in server mode on 127.0.0.1: s3fs talks to it over real HTTP, as to AWS."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
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
def s3_bucket(s3_server):
    """A fresh bucket per test (moto reset before each), and s3fs's instance cache cleared."""
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
