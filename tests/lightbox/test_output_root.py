"""Output roots (issue 25, item 13): a local path, ``file://PATH`` or ``s3://BUCKET[/PREFIX]`` and nothing
else. Anything else is refused by one parser (``lightbox.storage.parse_output_root``, also run by every
``Store``): on the command line as one ``lightbox: error:`` line naming the value, exit 2, before anything
is written; in the job API's settings, the flow's ``out`` parameter and ``lightbox ops deploy`` alike.

The command-line tests run with the working directory in ``tmp_path`` and check it stays empty. The value
``""`` used to publish into the filesystem root: it is only tried in-process, with the commands replaced by
a stub that fails the test, so a regression can never write there."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flows import cli
from lightbox.errors import LightboxError, OutputRootError, StorageError
from lightbox.storage import Store, parse_output_root
from tests.conftest import ACME, EXAMPLE_CATALOG, REPO
from tests.support.helpers import free_port

FORMS = "an output root is a local path, file://PATH or s3://BUCKET[/PREFIX]"


@pytest.mark.parametrize(
    "value, parsed",
    [
        ("out", "out"),
        ("./out/", "./out/"),
        ("out-ai/nested", "out-ai/nested"),
        ("/srv/lightbox/out", "/srv/lightbox/out"),
        ("run:2024", "run:2024"),  # a colon inside a local name is still a local name
        ("file:///srv/lightbox/out", "file:///srv/lightbox/out"),
        ("file://out", "file://out"),
        ("FILE:///srv/out", "file:///srv/out"),
        ("s3://acme-images", "s3://acme-images"),
        ("s3://acme-images/", "s3://acme-images/"),
        ("s3://acme-images/live", "s3://acme-images/live"),
        ("s3://acme.images-2/live/2024/", "s3://acme.images-2/live/2024/"),
        ("S3://acme-images/live", "s3://acme-images/live"),
        ("s3://abc/x", "s3://abc/x"),  # 3 characters: the shortest bucket name
        ("s3://" + "b" * 63 + "/x", "s3://" + "b" * 63 + "/x"),  # 63: the longest
    ],
)
def test_accepted_output_roots(value, parsed):
    assert parse_output_root(value) == parsed


@pytest.mark.parametrize(
    "value, why",
    [
        ("", "empty"),
        (" ", "blank"),
        ("\t \n", "blank"),
        ("out\x00x", "contains a NUL byte"),
        ("out\nmore", "contains a control character"),
        ("s3://", "no bucket"),
        ("s3:///live", "no bucket"),
        ("s3://ab/x", "not a valid bucket name"),
        ("s3://" + "b" * 64, "not a valid bucket name"),
        ("s3://Acme-Images/live", "not a valid bucket name"),
        ("s3://acme_images/live", "not a valid bucket name"),
        ("s3://-acme/live", "not a valid bucket name"),
        ("s3://acme-/live", "not a valid bucket name"),
        ("s3://acme..images", "not a valid bucket name"),
        ("s3://192.168.1.10/live", "not a valid bucket name"),
        ("s3://acme images/live", "not a valid bucket name"),
        ("file://", "file:// needs a path"),
        ("file://  ", "file:// needs a path"),
        ("memory://x", "scheme memory:// is not supported"),
        ("memory://", "scheme memory:// is not supported"),
        ("az://container/live", "scheme az:// is not supported"),
        ("abfs://container/live", "scheme abfs:// is not supported"),
        ("gs://bucket/live", "scheme gs:// is not supported"),
        ("gcs://bucket/live", "scheme gcs:// is not supported"),
        ("s3a://bucket/live", "scheme s3a:// is not supported"),
        ("ftp://x", "scheme ftp:// is not supported"),
        ("sftp://host/srv/out", "scheme sftp:// is not supported"),
        ("http://host/out", "scheme http:// is not supported"),
        ("https://host/out", "scheme https:// is not supported"),
        ("foo://x", "scheme foo:// is not supported"),
        ("://x", "not a supported URI"),
        (" s3://acme-images/live", "not a supported URI"),
        ("simplecache::s3://acme-images/live", "not a supported URI"),
        ("out::more", "not a supported URI"),
        ("s3:/acme-images/live", "looks like a mistyped URI"),
        ("s3:", "looks like a mistyped URI"),
        ("memory:/x", "looks like a mistyped URI"),
        ("data:text/plain,x", "looks like a mistyped URI"),
    ],
)
def test_refused_output_roots(value, why):
    with pytest.raises(OutputRootError) as caught:
        parse_output_root(value)
    message = str(caught.value)
    assert message.startswith(f"--out {value!r}: {why}") and message.endswith(FORMS), message
    assert "\n" not in message
    assert isinstance(caught.value, StorageError) and isinstance(caught.value, LightboxError)  # reported like them


@pytest.mark.parametrize(
    "value, shown",
    [
        ("s3://AKIAEXAMPLE:wJalr/Secret@acme-images/live", "'s3://***@acme-images/live'"),
        ("ftp://user:hunter2@host/out", "'ftp://***@host/out'"),
        ("az://container/out?sv=2024&sig=Secret", "'az://container/out?***'"),
        ("https://user:hunter2@host/out?token=Secret", "'https://***@host/out?***'"),
    ],
)
def test_refusals_never_echo_credentials(value, shown):
    with pytest.raises(OutputRootError) as caught:
        parse_output_root(value)
    message = str(caught.value)
    assert message.startswith(f"--out {shown}: ")
    for secret in ("AKIAEXAMPLE", "wJalr", "Secret", "hunter2", "user"):
        assert secret not in message


def test_the_option_is_named_and_a_long_value_is_cut():
    with pytest.raises(OutputRootError, match=r"^LIGHTBOX_OUT 'foo://x': "):
        parse_output_root("foo://x", "LIGHTBOX_OUT")
    with pytest.raises(OutputRootError) as caught:
        parse_output_root("foo://" + "x" * 5000)
    assert len(str(caught.value)) < 400


@pytest.mark.parametrize("value", ["", " ", "s3://", "memory://x", "ftp://x", "foo://x", "file://"])
def test_store_refuses_before_touching_storage(value, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputRootError, match=r"^output root "):
        Store(value)
    assert list(tmp_path.iterdir()) == []


def test_store_keeps_local_and_file_roots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Store("out").root == os.path.join(os.getcwd(), "out")
    assert Store(f"file://{tmp_path}/out").root == str(tmp_path / "out")
    s3 = Store("s3://acme-images/live/")
    assert (s3.local, s3.root_uri, s3.uri("b/k.jpg")) == (False, "s3://acme-images/live", "s3://acme-images/live/b/k.jpg")


# --- the command line -----------------------------------------------------------------------------------
BAD = ["", " ", "s3://", "memory://x", "ftp://x", "foo://x", "az://container/x", "file://"]
COMMANDS = {
    "run": ["run", str(EXAMPLE_CATALOG), "--brand", ACME],
    "unlock": ["unlock", "acme-home"],
    "manifest": ["manifest", "acme-home"],
}


@pytest.mark.parametrize("value", BAD)
@pytest.mark.parametrize("command", list(COMMANDS))
def test_cli_refuses_a_bad_out_before_the_command_starts(command, value, tmp_path, monkeypatch, capsys):
    def started(_args):
        raise AssertionError(f"lightbox {command} started with --out {value!r}")

    monkeypatch.setattr(cli, f"cmd_{command}", started)
    monkeypatch.chdir(tmp_path)
    assert cli.main([*COMMANDS[command], "--out", value]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"lightbox: error: --out {value!r}: "), captured.err
    assert captured.err.rstrip("\n").endswith(FORMS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("value", ["s3://", "memory://x", "ftp://x", "foo://x"])
def test_lightbox_run_with_a_bad_out_exits_2_and_writes_nothing(value, tmp_path):
    """The real command as a process, from an empty working directory (where ``s3://`` used to make ``./s3:``)."""
    r = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(EXAMPLE_CATALOG), "--brand", ACME, "--out", value],
                       cwd=tmp_path, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"lightbox: error: --out {value!r}: "), r.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_keeps_a_good_out(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_unlock", lambda args: seen.append(args.out) or 0)
    monkeypatch.chdir(tmp_path)
    for value in ("out", str(tmp_path / "o"), f"file://{tmp_path}/o", "s3://acme-images/live", "S3://acme-images/x"):
        assert cli.main(["unlock", "acme-home", "--out", value]) == 0
    assert seen == ["out", str(tmp_path / "o"), f"file://{tmp_path}/o", "s3://acme-images/live", "s3://acme-images/x"]


# --- the other ways in: the job API's settings, the flow's parameter, deployments ---------------------------
def test_api_settings_refuse_a_bad_output_root(monkeypatch, tmp_path):
    from api.app import Settings

    monkeypatch.setenv("LIGHTBOX_API_OUT", "memory://x")
    with pytest.raises(OutputRootError, match=r"^LIGHTBOX_API_OUT 'memory://x': scheme memory:// is not supported"):
        Settings.from_env()
    monkeypatch.setenv("LIGHTBOX_API_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("LIGHTBOX_API_INCOMING", "s3://")
    with pytest.raises(OutputRootError, match=r"^LIGHTBOX_API_INCOMING 's3://': no bucket"):
        Settings.from_env()
    monkeypatch.delenv("LIGHTBOX_API_INCOMING")
    assert Settings.from_env().out == str(tmp_path / "out")


def test_api_requests_cannot_name_an_output_root():
    from pydantic import ValidationError

    from api.app import CatalogEvent, JobRequest

    for model, body in ((JobRequest, {"brand": "acme-home", "catalog": "s3://feeds/c.csv", "out": "memory://x"}),
                        (CatalogEvent, {"brand": "acme-home", "skus": ["A"], "out": "memory://x"})):
        with pytest.raises(ValidationError, match="out"):
            model.model_validate(body)  # the API answers 422 naming the field


def test_flow_refuses_a_bad_out_parameter(tmp_path, monkeypatch):
    from flows.catalog_run import catalog_run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputRootError, match=r"^parameter out 'memory://x': "):
        catalog_run.fn(str(EXAMPLE_CATALOG), ACME, out="memory://x")
    assert list(tmp_path.iterdir()) == []


def test_deploy_refuses_a_bad_lightbox_out(monkeypatch):
    from deployments import apply

    for name in apply.DEPLOY_VARIABLES:
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("LIGHTBOX_OUT", "s3://")
    monkeypatch.setattr(apply.subprocess, "run", lambda *a, **k: pytest.fail("prefect deploy ran"))
    with pytest.raises(OutputRootError, match=r"^LIGHTBOX_OUT 's3://': no bucket"):
        apply.deploy()


@pytest.mark.slow
@pytest.mark.parametrize("case", ["no credentials", "endpoint down"])
def test_an_s3_root_that_cannot_be_written_is_one_line_and_exit_2(case, tmp_path):
    """``--out s3://bucket/x`` with no credentials (a 71-line NoCredentialsError traceback before), or with an
    endpoint that does not answer (a traceback after 27 s): one line naming the root and what to do, exit 2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env |= {"PYTHONPATH": str(REPO), "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_EC2_METADATA_DISABLED": "true"}
    if case == "endpoint down":  # a closed loopback port: nothing listens there
        env |= {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                "LIGHTBOX_S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    work = tmp_path / "work"
    work.mkdir()
    r = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(EXAMPLE_CATALOG), "--brand", ACME, "--out", "s3://bucket/x"],
                       cwd=work, capture_output=True, text=True, timeout=180, env=env)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightbox: error: s3://bucket/x: output is not writable ("), r.stderr
    assert ("no S3 credentials" if case == "no credentials" else "did not answer") in lines[0]
    assert "test" not in lines[0].split("(", 1)[1]  # the key is never echoed
    assert list(work.iterdir()) == []
