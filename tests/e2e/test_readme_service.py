"""The README's service block, pasted line by line into a shell as a new user would: a copy of the
repository, a fresh home directory (so ``~/.lightbox`` and ``~/.prefect`` are new), only the ports and the
operators' webhook URL changed (to free loopback ports and a local receiver). Every line must work:
the key stays in the shell, ``ops setup`` creates the notification block and applies all automations,
``ops deploy`` prints the deployment ids, the curl calls succeed and the job completes.

Every wait is bounded; the shell's process group (server, worker, API) is stopped at the end."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.e2e.test_service import _wait
from tests.support.helpers import free_port
from tests.support.http_server import WebhookReceiver

pytestmark = pytest.mark.e2e
WEBHOOK_IN_README = "https://hooks.example.com/lightbox-ops"


def _entries(out) -> dict:  # a Path
    """What the run state records for the brand under an output root."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    return RunState.of(Store(str(out))).entries("acme-home")


def service_block(marker: str = "service-block") -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(f"<!-- {marker} -->\n```bash\n") + len(f"<!-- {marker} -->\n```bash\n")
    return text[start:text.index("\n```", start)]


def _alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _copy_repo(dest: Path) -> Path:
    anywhere = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", "*.log")

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = set(anywhere(folder, names))
        if Path(folder) == REPO:  # outputs and downloaded models at the root; the package's own model stays
            skipped |= {"out", "models"} & set(names)
        return skipped

    shutil.copytree(REPO, dest, ignore=ignore)
    return dest


def _stop(p: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(p.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def test_readme_service_block_works_pasted_line_by_line(tmp_path):
    work = _copy_repo(tmp_path / "lightbox")
    home = tmp_path / "home"
    home.mkdir()
    server_port, api_port = free_port(), free_port()
    block = service_block()
    assert WEBHOOK_IN_README in block and "4200" in block and "8080" in block
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LIGHTBOX_", "AWS_"))},
        "HOME": str(home), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_WORKER_QUERY_SECONDS": "2",
        "LIGHTBOX_CACHE_DIR": str(tmp_path / "cache"),
    }
    with WebhookReceiver() as ops_rx:
        script = block.replace("4200", str(server_port)).replace("8080", str(api_port)).replace(WEBHOOK_IN_README, ops_rx.url)
        script = "set -e\n" + script + '\necho "RESULT KEY=$KEY JOB=$JOB"\n'
        shell = subprocess.Popen(["bash"], cwd=work, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            try:
                out, err = shell.communicate(script, timeout=420)
            except subprocess.TimeoutExpired:
                raise AssertionError("the README block did not finish in 420 s") from None
            logs = "\n".join(f"--- {f.name}\n" + f.read_text(errors="replace")[-3000:] for f in work.glob("*.log"))
            assert shell.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}\n{logs}"

            # 2. setup made the block and applied every automation; deploy printed the ids
            assert "notification block custom-webhook/lightbox-ops: saved (posts to http://127.0.0.1)" in out
            assert ops_rx.url not in out + err  # the webhook URL (its secret) is never echoed
            applied = re.findall(r"automation (\S+): applied", out)
            assert len(applied) == 4 and "skipped" not in out, out
            ids = re.findall(r"deployment catalog-run/(\S+): id ([0-9a-f-]{36})", out)
            assert sorted(name.rstrip(",") for name, _ in ids) == ["catalog-update", "nightly-catalog", "on-demand"], out

            # 4. the key stayed in the shell and is stored hashed under ~/.lightbox, not in the repository
            m = re.search(r"RESULT KEY=(lbx_\S+) JOB=([0-9a-f-]{36})", out)
            assert m, out
            key, job = m.groups()
            stored = json.loads((home / ".lightbox" / "api-keys.json").read_text())
            assert [k["name"] for k in stored["keys"]] == ["me"] and key not in json.dumps(stored)
            assert not (work / "api-keys.json").exists()

            # the curl calls answered: the event was accepted, the job exists; it completes
            assert '"event":"lightbox.catalog.updated"' in out.replace(" ", ""), out
            api = httpx.Client(base_url=f"http://127.0.0.1:{api_port}", headers={"Authorization": f"Bearer {key}"}, timeout=30)

            def done():
                s = api.get(f"/v1/jobs/{job}").json()
                return s if s["state"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") else None

            try:
                status = _wait("the README's job to finish", done, 360, every=3)
            except AssertionError:
                raise AssertionError("\n".join(f.read_text(errors="replace")[-4000:] for f in work.glob("prefect-worker.log"))) from None
            assert status["state"] == "COMPLETED", status
            assert status["counts"]["published"] + status["counts"]["unchanged"] == 72, status
            manifest = {"entries": _entries(work / "out")}
            assert len(manifest["entries"]) == 72

            # the README's stop section, pasted into another shell: the API, the worker and the server all end
            stop = service_block("service-stop").replace("4200", str(server_port)).replace("8080", str(api_port))
            subprocess.run(["bash"], input=stop, cwd=work, env=env, text=True, capture_output=True, timeout=60)
            try:
                _wait("the services to stop", lambda: not _alive(shell.pid), 60)
            except AssertionError:
                left = subprocess.run(["ps", "-o", "pid,args", "-g", str(shell.pid)], capture_output=True, text=True).stdout
                raise AssertionError(f"still running after the README's stop section:\n{left}") from None
        finally:
            _stop(shell)
