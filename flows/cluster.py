"""Where a catalog run's tasks execute: a thread pool in the flow process (one machine, the default) or a
Dask cluster through prefect-dask's ``DaskTaskRunner`` (many processes or machines).

``--cluster local:N`` (or ``LIGHTBOX_CLUSTER=local:N``) starts a LocalCluster of N single-threaded worker
processes on this machine for the run; ``--cluster tcp://HOST:8786`` joins an existing scheduler
(dask-kubernetes, dask-jobqueue, a cloud Dask service). Deployments set ``LIGHTBOX_CLUSTER`` as a job
variable (``job_variables: {env: {LIGHTBOX_CLUSTER: ...}}``). Dask workers report task runs to the Prefect
API themselves, so they need ``PREFECT_API_URL`` (a LocalCluster's workers inherit the flow's).

GPU work (AI scenes, model cut-outs) is annotated with the Dask resource ``GPU=1`` when a worker of the
cluster declares that resource (``dask worker ... --resources GPU=1``), so it runs only there; studio work
runs on any worker. Models are loaded once per worker process (process-level caches in ``lightbox``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

log = logging.getLogger(__name__)

GPU_RESOURCE = "GPU"
SPAWN_ENVIRON = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


class ClusterError(ValueError):
    """A cluster setting that cannot be used: its text names the value."""


def parse(cluster: str | None) -> tuple[str, int | str] | None:
    """("local", workers) or ("address", scheduler address); None for the thread pool."""
    if cluster is None or not cluster.strip():
        return None
    value = cluster.strip()
    if value.startswith("local:"):
        n = value.removeprefix("local:")
        if not n.isdigit() or not 1 <= int(n) <= 256:
            raise ClusterError(f"--cluster {value!r}: local:N needs a worker count N from 1 to 256")
        return "local", int(n)
    parts = urlsplit(value)
    if parts.scheme in ("tcp", "tls") and parts.hostname and parts.port:
        return "address", value
    raise ClusterError(f"--cluster {value!r}: expected local:N or a scheduler address like tcp://HOST:8786")


def check_reachable(cluster: str | None, timeout_s: float = 5.0) -> None:
    """Fail early, naming the address, when a scheduler address does not answer (before any work starts)."""
    parsed = parse(cluster)
    if parsed is None or parsed[0] != "address":
        return
    parts = urlsplit(str(parsed[1]))
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout_s).close()
    except OSError as e:
        raise ClusterError(f"Dask scheduler {parsed[1]} is unreachable ({type(e).__name__}: {e.strerror or e})") from e


def task_runner(cluster: str | None, workers: int) -> TaskRunner:
    """The task runner for a cluster setting (None: a thread pool of ``workers`` threads)."""
    parsed = parse(cluster)
    if parsed is None:
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner

    kind, value = parsed
    if kind == "address":
        return DaskTaskRunner(address=str(value))
    import dask

    # Dask's nannies give workers MALLOC_TRIM_THRESHOLD_=65536 by default, which also pins glibc's mmap
    # threshold: every image buffer is then mapped and unmapped, and a worker spent ~5x the system time
    # of a thread (measured: 31.6 s vs 6.2 s of sys for 120 images). Keep the one-thread-per-library limits only.
    dask.config.set({"distributed.nanny.pre-spawn-environ": dict(SPAWN_ENVIRON)})
    return DaskTaskRunner(cluster_kwargs={"n_workers": int(value), "threads_per_worker": 1, "processes": True,
                                          "host": "127.0.0.1", "dashboard_address": None})


def describe(runner: TaskRunner) -> str:
    """Where a run's tasks ran, for the CLI line and summary.json: the thread pool and its size, or the Dask
    scheduler's address and its workers (as the scheduler knows them when asked)."""
    if type(runner).__name__ != "DaskTaskRunner":
        n = getattr(runner, "_max_workers", None)
        return f"thread pool of {n} threads" if n else type(runner).__name__
    client = getattr(runner, "_client", None)
    if client is None:
        return f"Dask cluster at {getattr(runner, 'address', None) or 'a local cluster'}"
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    kind = "local Dask cluster" if getattr(runner, "_cluster", None) is not None else "Dask cluster"
    gpus = sum(1 for w in workers.values() if (w.get("resources") or {}).get(GPU_RESOURCE, 0) >= 1)
    return f"{kind} at {info.get('address') or runner.address}, {len(workers)} workers" + (f" ({gpus} with a GPU)" if gpus else "")


def gpu_workers(runner: TaskRunner) -> int:
    """How many workers of the run's Dask cluster declare a GPU resource (0 for other runners)."""
    client = getattr(runner, "client", None) if type(runner).__name__ == "DaskTaskRunner" else None
    if client is None:
        return 0
    workers = client.scheduler_info(n_workers=-1).get("workers", {})
    return sum(1 for w in workers.values() if (w.get("resources") or {}).get(GPU_RESOURCE, 0) >= 1)


@contextlib.contextmanager
def on_gpu(runner: TaskRunner, needed: bool) -> Iterator[bool]:
    """Inside: work submitted is pinned to workers declaring ``GPU`` (when it needs one and such workers
    exist). Yields whether it is pinned."""
    if not needed or not gpu_workers(runner):
        yield False
        return
    import dask

    with dask.annotate(resources={GPU_RESOURCE: 1}):
        yield True


@contextlib.contextmanager
def api_for_workers(cluster: str | None) -> Iterator[None]:
    """Dask workers report to the Prefect API themselves: they get the flow's API URL through the
    environment they inherit, and with none configured one temporary server is started for the run
    (instead of one ephemeral server per worker process)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if parse(cluster) is None:
        yield
        return
    before = os.environ.get("PREFECT_API_URL")
    url, server = PREFECT_API_URL.value(), None
    if not url:
        from prefect.server.api.server import SubprocessASGIServer

        server = SubprocessASGIServer()
        server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")))
        url = server.api_url
    os.environ["PREFECT_API_URL"] = url  # inherited by LocalCluster workers
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            yield
            from prefect.logging.handlers import APILogHandler

            APILogHandler().flush()  # the run's last logs reach the server before it stops
    finally:
        if before is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = before
        if server is not None:
            server.stop()
