"""Catalog runs on Dask (prefect-dask): a LocalCluster of worker processes, a worker killed mid-run, an
existing scheduler joined by address with GPU work pinned to the worker that declares a GPU, and bad
settings refused at start. Real `dask scheduler` / `dask worker` processes on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.conftest import ACME, REPO
from tests.e2e.test_service import _wait
from tests.support.helpers import free_port, make_catalog

pytestmark = pytest.mark.slow


@pytest.fixture
def env(prefect_harness, tmp_path):
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_HOME": str(tmp_path / "prefect-home")}


def _run(catalog: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "run", str(catalog), "--brand", ACME, "--out", str(out), "--chunk-size", "1", *extra]


def _live(out: Path) -> dict[str, str]:
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (out / "acme-home").glob("*/*.jpg") if not p.parent.name.startswith("_")}


def _dask_workers(root_pid: int) -> list[psutil.Process]:
    """The Dask worker processes under a `lightbox run` (spawned by the LocalCluster's nannies)."""
    found = []
    for p in psutil.Process(root_pid).children(recursive=True):
        try:
            if "multiprocessing" in " ".join(p.cmdline()) and p.children() == []:
                found.append(p)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_worker_killed_mid_run_costs_only_its_chunk(tmp_path, env):
    """kill -9 of one of two Dask worker processes while chunks are rendering: its chunk is re-run
    elsewhere, the run completes, every image is live once with the bytes the state records."""
    from lightbox.state import RunState
    from lightbox.storage import Store

    catalog = make_catalog(tmp_path / "cat", n_good=8)
    out = tmp_path / "out"
    proc = subprocess.Popen(_run(catalog, out, "--cluster", "local:2"), cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    killed = []
    try:
        _wait("two Dask workers", lambda: len(_dask_workers(proc.pid)) >= 2 or proc.poll() is not None, 180, every=0.2)
        staged = lambda: list((out / "acme-home").glob("_runs/*/staging/*/*.jpg"))  # noqa: E731
        _wait("the first staged output", lambda: staged() or proc.poll() is not None, 240, every=0.05)
        assert proc.poll() is None, "the run ended before a worker could be killed"
        victim = _dask_workers(proc.pid)[0]
        victim.send_signal(signal.SIGKILL)
        killed.append(victim.pid)
        stdout, stderr = proc.communicate(timeout=480)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert killed and proc.returncode == 0, stdout + stderr
    assert "24 generated" in stdout or "24 published" in stdout, stdout
    live = _live(out)
    assert len(live) == 24  # 8 products x 3 channels, each once
    entries = RunState.of(Store(str(out))).entries("acme-home")
    assert len(entries) == 24
    for e in entries.values():  # the state matches the objects' bytes
        assert live[str(Path(e["uri"]).relative_to(out))] == e["sha256"]


@pytest.fixture
def scheduler(env, tmp_path):
    """A `dask scheduler` with one plain worker and one declaring GPU=1 (as a GPU node would)."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    worker = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-dashboard",
              "--host", "127.0.0.1", "--local-directory", str(tmp_path / "dask")]
    procs.append(subprocess.Popen([*worker, "--name", "cpu-worker"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    procs.append(subprocess.Popen([*worker, "--name", "gpu-worker", "--resources", "GPU=1"], cwd=REPO, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        from distributed import Client

        _wait("the scheduler", lambda: _connects(port), 60, every=0.2)
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_gpu_work_runs_only_on_the_worker_declaring_a_gpu(scheduler):
    from prefect import flow, task
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    from flows.cluster import gpu_workers, on_gpu

    @task
    def where(i: int) -> str:
        from distributed import get_worker

        time.sleep(0.2)
        return get_worker().name

    @flow(task_runner=DaskTaskRunner(address=scheduler))
    def probe() -> tuple[list[str], list[str], int]:
        runner = FlowRunContext.get().task_runner
        with on_gpu(runner, needed=True) as pinned:
            assert pinned
            gpu = where.map(range(6))
        with on_gpu(runner, needed=False) as pinned:
            assert not pinned
            anywhere = where.map(range(12))
        return [f.result() for f in gpu], [f.result() for f in anywhere], gpu_workers(runner)

    gpu, anywhere, n_gpu = probe()
    assert n_gpu == 1
    assert set(gpu) == {"gpu-worker"}
    assert set(anywhere) == {"gpu-worker", "cpu-worker"}  # studio work runs on any worker


def test_a_whole_run_joins_an_existing_scheduler(scheduler, tmp_path, env):
    catalog = make_catalog(tmp_path / "cat", n_good=3)
    r = subprocess.run(_run(catalog, tmp_path / "out", "--cluster", scheduler), cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=480)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "9 published" in r.stdout and len(_live(tmp_path / "out")) == 9
    assert f"; on a Dask cluster at {scheduler}, 2 workers (1 with a GPU)\n" in r.stdout, r.stdout  # where it ran


@pytest.mark.parametrize("setting, message", [
    ("tcp://127.0.0.1:1", "Dask scheduler tcp://127.0.0.1:1 is unreachable"),
    ("local:0", "local:N needs a worker count N from 1 to 256"),
    ("dask.example", "expected local:N or a scheduler address"),
])
def test_a_bad_cluster_setting_fails_at_start_naming_it(setting, message, tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_good=1)
    r = subprocess.run(_run(catalog, tmp_path / "out", "--cluster", setting), cwd=REPO, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "out" / "acme-home" / "_runs").exists()  # nothing started


def test_the_kubernetes_set_up_declares_what_the_runner_relies_on():
    """deployments/dask-kubernetes.yaml (not applied here: no Kubernetes): a scheduler on 8786 behind the
    service the docs name, CPU workers, and a GPU worker group declaring the Dask resource GPU=1."""
    import yaml

    docs = list(yaml.safe_load_all((REPO / "deployments" / "dask-kubernetes.yaml").read_text()))
    cluster = next(d for d in docs if d["kind"] == "DaskCluster")
    gpu = next(d for d in docs if d["kind"] == "DaskWorkerGroup")
    assert cluster["metadata"]["name"] == "lightbox" and gpu["spec"]["cluster"] == "lightbox"
    assert {p["port"] for p in cluster["spec"]["scheduler"]["service"]["ports"]} >= {8786}
    cpu_args = cluster["spec"]["worker"]["spec"]["containers"][0]["args"]
    gpu_container = gpu["spec"]["worker"]["spec"]["containers"][0]
    assert "--resources" not in cpu_args and gpu_container["args"][gpu_container["args"].index("--resources") + 1] == "GPU=1"
    assert gpu_container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "tcp://lightbox-scheduler.lightbox:8786" in (REPO / "docs" / "operations.md").read_text()
