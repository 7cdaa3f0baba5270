"""``lightbox`` command line: runs the catalog-run flow with no server needed (Prefect's ephemeral mode).

    lightbox run CATALOG [--brand SPEC] [--out URI] [--chunk-size N] [--workers N] [-v]

Exits 0 when the run completed, 1 when the run failed, 2 for bad arguments or inputs found before the
run starts (among them an ``--out`` that is not a local path, file://PATH or s3://BUCKET[/PREFIX]), 3 for
a quality alarm (more outputs failed quality checks than the spec allows; what passed is published); on
failure it prints one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time

DEFAULT_BRAND = "brand_specs/acme-home.yaml"
LAYOUT_CHOICES = ["auto", "lightbox", "shopify", "woocommerce", "google-merchant"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightbox", description="Catalog-scale product imagery as a Prefect pipeline.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="ingest, validate, render, check and publish a catalog")
    run.add_argument("catalog", help="catalog URI (.csv, .tsv, .jsonl, .parquet, .xml; local path, file:// or s3://): "
                     "Lightbox layout or a Shopify / WooCommerce / Google Merchant export")
    run.add_argument("--brand", default=DEFAULT_BRAND, help=f"brand spec YAML (default: {DEFAULT_BRAND})")
    run.add_argument("--out", default="out", help="output root: a local path, file://PATH or s3://BUCKET[/PREFIX] "
                     "(default: out)")
    run.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto",
                     help="catalog layout (default: detected from the header)")
    run.add_argument("--fetch-policy", default=None,
                     help="fetch policy YAML for source images (default: $LIGHTBOX_FETCH_POLICY, else https and s3, "
                          "plus local files when the catalog itself is local)")
    run.add_argument("--skus", default=None, help="comma-separated SKUs: only these (unknown ones are reported)")
    run.add_argument("--webhooks", default=None, help="webhook subscribers YAML (default: $LIGHTBOX_WEBHOOKS)")
    run.add_argument("--retire-missing", action="store_true", help="take down the live images of products the catalog "
                     "no longer has (deleted from the shop); without it they stay live and the run names them")
    run.add_argument("--chunk-size", type=int, default=8, help="products per generate task (default: 8)")
    run.add_argument("--workers", type=int, default=None, help="concurrent tasks (default: CPU count, 2..8)")
    run.add_argument("--cluster", default=None,
                     help="run the tasks on Dask: local:N (N worker processes here) or tcp://HOST:8786 (an existing "
                          "scheduler); default: $LIGHTBOX_CLUSTER, else a thread pool")
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")

    init = sub.add_parser("init", help="write a starter brand spec from a catalog export (valid for it at once)")
    init.add_argument("catalog", help="catalog URI: a Shopify / WooCommerce / Google Merchant export or a Lightbox catalog")
    init.add_argument("--brand", default=None, help="brand name, a slug (default: from the catalog's file name)")
    init.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto", help="catalog layout (default: detected)")
    init.add_argument("--dir", default="brand_specs", help="where the spec is written (default: brand_specs)")
    init.add_argument("--force", action="store_true", help="overwrite an existing spec of that name")

    val = sub.add_parser("validate", help="check a catalog against a brand spec without rendering (no server)")
    val.add_argument("catalog", help="catalog URI (as for run)")
    val.add_argument("--brand", default=DEFAULT_BRAND, help=f"brand spec YAML (default: {DEFAULT_BRAND})")
    val.add_argument("--layout", choices=LAYOUT_CHOICES, default="auto", help="catalog layout (default: detected)")

    unlock = sub.add_parser("unlock", help="release a brand's lock left by a run known to be dead (it also expires by itself)")
    unlock.add_argument("brand", help="brand name, e.g. acme-home")
    unlock.add_argument("--out", default="out", help="output root the brand publishes to (default: out)")

    man = sub.add_parser("manifest", help="list or export what is live for a brand (from the run state table)",
                         description="The run state: $LIGHTBOX_STATE_URL, else <out>/_lightbox/state.sqlite for a local root.")
    man.add_argument("brand", help="brand name, e.g. acme-home")
    man.add_argument("--out", default="out", help="output root the brand publishes to (default: out)")
    man.add_argument("--sku", default=None, help="only this SKU")
    man.add_argument("--channel", default=None, help="only this channel")
    man.add_argument("--qc", default=None, choices=["passed", "warned", "failed", "not_run"], help="only this QC status")
    man.add_argument("--run", default=None, help="only entries written by this run id")
    man.add_argument("--limit", type=int, default=None, help="at most this many entries")
    man.add_argument("--format", choices=["table", "jsonl"], default="table", help="table (default) or JSON Lines")
    man.add_argument("--export", action="store_true",
                     help="write <brand>/manifest.parquet and manifest.jsonl of every live entry instead of listing")

    exp = sub.add_parser("export", help="write a platform's import file of the published images (Shopify / WooCommerce "
                         "CSV, Google Merchant supplemental feed)",
                         description="Each product's live gallery of one channel, main image first, as public URLs: the "
                         "URL the output root is served at (--base-url, else $LIGHTBOX_PUBLIC_BASE_URL) + each image's key.")
    exp.add_argument("brand", help="brand name, e.g. acme-home")
    exp.add_argument("--out", default="out", help="output root the brand publishes to (default: out)")
    exp.add_argument("--format", required=True, choices=["shopify", "woocommerce", "google-merchant"])
    exp.add_argument("--channel", default=None, help="whose images (default: shopify_square for shopify, google_merchant "
                     "for google-merchant, else the brand's only channel)")
    exp.add_argument("--base-url", default=None, help="public URL of the output root, e.g. https://cdn.example.com/media "
                     "(default: $LIGHTBOX_PUBLIC_BASE_URL, else the one saved for the root with --remember)")
    exp.add_argument("--remember", action="store_true", help="save --base-url with the output root "
                     "(<root>/_lightbox/settings.json): later exports from it use it without --base-url")
    exp.add_argument("--to", default=None, help="write the file here (default: standard output)")

    api = sub.add_parser("api", help="serve the job API (FastAPI; settings from LIGHTBOX_API_* variables)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    key = sub.add_parser("api-key", help="create, rotate, revoke or list job API keys (stored hashed)",
                         description="The key is printed alone on stdout, once: export KEY=$(lightbox api-key create NAME)")
    key.add_argument("action", choices=["create", "rotate", "revoke", "list"])
    key.add_argument("name", nargs="?", help="who the key is for, e.g. pim or catalog-sync")
    key.add_argument("--file", default=None,
                     help="keys file (default: $LIGHTBOX_API_KEYS_FILE, else $LIGHTBOX_HOME/api-keys.json, ~/.lightbox/api-keys.json)")
    key.add_argument("--scope", action="append", choices=["jobs", "admin"], default=None,
                     help="jobs (default): submit, see and cancel its own jobs; admin: every key's jobs")

    ops = sub.add_parser("ops", help="operations: create work pool, queues and limits; apply automations; run a worker")
    ops.add_argument("action", choices=["setup", "automations", "deploy", "worker"],
                     help="setup: work pools, queues, concurrency limits, the lightbox-ops notification block and the "
                          "automations; automations: apply the automations only; deploy: the deployments of prefect.yaml, "
                          "with their ids; worker: `prefect worker start --pool POOL` that a SIGTERM stops, even started in "
                          "the background of a script (where SIGINT is ignored, and Prefect's worker turns SIGTERM into SIGINT)")
    ops.add_argument("--pool", default="lightbox-process", help="worker: the work pool (default: lightbox-process)")
    ops.add_argument("--dir", default="deployments", help="where the templates and automations live (default: deployments)")
    ops.add_argument("--notify-url", default=None,
                     help="setup: webhook URL (Slack, Teams, any JSON receiver) for the lightbox-ops notification block the "
                          "automations notify (default: $LIGHTBOX_OPS_WEBHOOK_URL; without one an existing block is used)")
    return p


def cmd_init(args: argparse.Namespace) -> int:
    """Write brand_specs/<name>.yaml from the catalog, then check the catalog against it."""
    from pathlib import Path

    from lightbox.catalog.ingest import read_catalog
    from lightbox.catalog.validate import local_file, validate_catalog
    from lightbox.errors import LightboxError
    from lightbox.specs import load_brand_spec
    from lightbox.specs.starter import brand_slug, starter_spec

    try:
        _check_catalog_exists(args.catalog)
        frame = read_catalog(args.catalog, layout=None if args.layout == "auto" else args.layout)
    except LightboxError as e:
        return _fail(str(e), 2)
    stem = args.catalog.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name = args.brand or brand_slug(stem)
    try:
        starter = starter_spec(frame, name, args.catalog)
    except ValueError as e:
        return _fail(f"--brand: {e}", 2)
    path = Path(args.dir) / f"{name}.yaml"
    if path.exists() and not args.force:
        return _fail(f"{path} exists (choose another --brand, or --force to overwrite it)", 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(starter.text, encoding="utf-8")
    try:
        spec = load_brand_spec(str(path))
    except LightboxError as e:  # a bug of init's, not the user's: say so plainly
        return _fail(f"the written spec does not load ({e}); please report it", 1)
    result = validate_catalog(frame, spec, exists=local_file)
    layout = frame.attrs.get("layout", "lightbox")
    _say(
        f"wrote {path}: {_n(len(starter.categories), 'category', 'categories')} -> {_n(len(starter.templates), 'template')} "
        f"({', '.join(f'{t}: ' + (', '.join(a) or 'title only') for t, a in starter.templates.items())}), "
        f"value sets for {', '.join(starter.value_sets) or 'no attribute'}, channels {', '.join(spec.channels)}\n"
        f"{args.catalog} ({layout} layout): {len(result.valid)} of {result.total} products valid under it, "
        f"{len(result.skipped)} row{'s' if len(result.skipped) != 1 else ''} skipped\n")
    _print_rows(result.quarantined, result.skipped, result.warnings)
    _say(f"next: review the lines marked DECIDE in {path}, then\n"
                     f"  lightbox run {args.catalog} --brand {path}\n")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Catalog and spec checked as a run would check them, without rendering or a server."""
    from lightbox.errors import LightboxError
    from lightbox.preflight import check_catalog, check_models, rejection
    from lightbox.specs import load_brand_spec

    try:
        spec = load_brand_spec(args.brand)
        _check_catalog_exists(args.catalog)
        result = check_catalog(args.catalog, spec, args.layout)
        fallbacks = check_models(spec)
    except LightboxError as e:
        return _fail(str(e), 2)
    for note in fallbacks:
        _say(f"model: {note}\n")
    heroes = _heroes(result)  # the run skips them (traditional photography): counted as it counts them
    _say(f"{args.catalog} ({result.layout} layout) against {spec.name} v{spec.version}: {result.total} rows: "
                     f"{len(result.valid) - len(heroes)} valid, {len(result.quarantined)} invalid, "
                     f"{len(result.skipped) + len(heroes)} skipped, {len(result.warnings)} warnings\n")
    _print_rows(result.quarantined, result.skipped + heroes, result.warnings)
    refused = rejection(result, spec)
    if refused:
        return _fail(refused, 2)
    return 0


def _heroes(result) -> list:  # ValidationResult -> [QuarantinedRow]
    """The valid rows a run skips as hero products, with the run's reason."""
    from lightbox.catalog.ingest import to_products
    from lightbox.plan import HERO_REASON
    from lightbox.records import QuarantinedRow

    return [QuarantinedRow(row=p.row, sku=p.sku, reason=HERO_REASON) for p in to_products(result.valid) if p.hero]


def _n(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def cmd_unlock(args: argparse.Namespace) -> int:
    from lightbox.errors import LightboxError
    from lightbox.lock import current, describe, force_unlock
    from lightbox.storage import Store

    try:
        store = Store(args.out)
        released = force_unlock(store, args.brand, by=f"lightbox unlock ({os.environ.get('USER') or 'operator'})")
    except (LightboxError, OSError) as e:
        return _fail(str(e), 1)
    if released is None:
        _, lease = current(store, args.brand)
        _say(f"{args.brand}: not locked" + (f" (last: {describe(lease)})" if lease else ""))
        return 0
    _say(f"{args.brand}: released the lock of {describe(released)}")
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    _prepare_env(verbose=True)
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    from api.keys import create_key, list_keys, revoke_key
    from lightbox.config import api_keys_file

    path = args.file or api_keys_file()
    if args.action == "list":
        for k in list_keys(path):
            _say(f"{k['name']}\t{k['created']}\t{','.join(k['scopes'])}\n")
        return 0
    if not args.name:
        return _fail(f"api-key {args.action}: a key name is needed, e.g. lightbox api-key {args.action} catalog-sync", 2)
    if args.action in ("create", "rotate"):
        try:
            key = create_key(path, args.name, replace=args.action == "rotate", scopes=args.scope)
        except ValueError as e:
            return _fail(str(e), 2)
        _say(f"{key}\n")
        sys.stderr.write(f"key for {args.name!r} stored hashed in {path}; it is shown only this once\n")
        return 0
    if not revoke_key(path, args.name):
        return _fail(f"{path}: no key named {args.name!r}", 2)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    if args.action == "worker":
        import signal

        # a job started with `&` by a non-interactive shell inherits SIGINT ignored; exec keeps an ignored signal
        # ignored, and Prefect's worker stops on SIGTERM by sending itself SIGINT: it would never stop
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.execv(sys.executable, [sys.executable, "-m", "prefect", "worker", "start", "--pool", args.pool])
    from deployments.apply import apply_automations, deploy, setup

    _prepare_env(verbose=False)
    notify_url = args.notify_url or os.environ.get("LIGHTBOX_OPS_WEBHOOK_URL")
    actions = {"setup": lambda: setup(args.dir, notify_url), "automations": lambda: apply_automations(args.dir), "deploy": deploy}
    try:
        lines = actions[args.action]()
    except Exception as e:  # one line for the operator
        return _fail(root_cause(e), 1)
    for line in lines:
        _say(line + "\n")
    return 0


def _fail(msg: str, code: int) -> int:
    from lightbox.safe_text import terminal

    sys.stderr.write(f"lightbox: error: {terminal(msg)}\n")
    return code


def _say(text: str) -> None:
    """Lines for the terminal, with any control characters from catalog text shown escaped."""
    from lightbox.safe_text import terminal

    for line in text.rstrip("\n").split("\n"):
        sys.stdout.write(terminal(line) + "\n")


def _prepare_env(verbose: bool) -> None:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    # diffusers', transformers' and Python's warnings go with the run's logs (lightbox/quiet.py), not to the terminal
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "lightbox,diffusers,transformers,py.warnings")
    if not verbose:  # full logs still reach the Prefect API (and UI); the terminal gets the one-line outcome
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "CRITICAL")
        os.environ.setdefault("PREFECT_LOGGING_SERVER_LEVEL", "WARNING")


def root_cause(exc: BaseException) -> str:
    """The innermost Lightbox error's message, else the exception's first line."""
    from lightbox.errors import LightboxError

    seen = exc
    while seen is not None:
        if isinstance(seen, LightboxError):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def cmd_run(args: argparse.Namespace) -> int:
    """Everything that can be checked without a server is checked first (spec, catalog, validation,
    output); a catalog over the invalid-share limit, or one with nothing to render, ends here without
    starting Prefect. Then the flow runs."""
    from lightbox.errors import LightboxError
    from lightbox.fetch_policy import load_fetch_policy
    from lightbox.preflight import check_catalog, check_models, rejection, unchanged_run
    from lightbox.run import Run
    from lightbox.specs import load_brand_spec
    from lightbox.storage import Store
    from lightbox.webhooks import load_webhooks

    started = time.time()
    if args.chunk_size < 1:
        return _fail(f"--chunk-size must be >= 1, got {args.chunk_size}", 2)
    workers = args.workers or max(2, min(8, os.cpu_count() or 2))
    skus = [s.strip() for s in args.skus.split(",") if s.strip()] if args.skus else None
    out_existed = _exists_locally(args.out)
    from flows.cluster import ClusterError, check_reachable

    cluster_setting = args.cluster or os.environ.get("LIGHTBOX_CLUSTER") or None
    try:
        check_reachable(cluster_setting)  # a bad setting or an unreachable scheduler fails here, naming it
    except ClusterError as e:
        return _fail(str(e), 2)
    try:
        spec = load_brand_spec(args.brand)  # a bad spec fails here, before any server starts
        policy = load_fetch_policy(args.fetch_policy or os.environ.get("LIGHTBOX_FETCH_POLICY"))
        hooks = load_webhooks(args.webhooks or os.environ.get("LIGHTBOX_WEBHOOKS"))
        _check_catalog_exists(args.catalog)
        store = Store(args.out)
        store.check_writable()
        checked = check_catalog(args.catalog, spec, args.layout, skus)
        from lightbox.state import RunState, state_exists

        if state_exists(store):
            RunState.of(store)  # a damaged run-state file is one line here, not a traceback later
    except LightboxError as e:
        _remove_if_left_empty(args.out, out_existed)
        return _fail(str(e), 2)

    run = Run.start(spec, args.catalog, store.root_uri, skus=skus, clock=lambda: started)
    refused = rejection(checked, spec)
    if refused:
        summary = run.validated(checked.total, checked.quarantined, checked.warnings, checked.skipped).stop(store, refused)
        _print_rows(summary.quarantine, summary.skipped_rows, summary.warnings, summary.quarantine_uri)
        return _fail(f"{refused}; quarantine report: {summary.quarantine_uri}", 2)
    if not hooks.subscribers:
        summary = unchanged_run(run, args.brand, spec, store, checked, policy, args.chunk_size, args.retire_missing)
        if summary is not None:
            _print_summary(summary)
            _say(f"nothing to render: every output is unchanged (checked in {summary.wall_s:.1f} s; no flow run started)\n")
            return 0
    try:
        # a model that cannot load is one line and exit 2 here, before a server starts; in this process the
        # flow's threads reuse what it loaded (Dask workers load their own: diffusion is left to them)
        check_models(spec, diffusion=not cluster_setting)
    except LightboxError as e:
        _remove_if_left_empty(args.out, out_existed)
        return _fail(str(e), 2)

    # the flow takes the catalog as checked here (its run id, valid rows and counts): not read and validated twice
    handed = run.hand_over(store, run.keep_validated(store, checked.valid, checked.total, checked.quarantined,
                                                      checked.warnings, checked.skipped, None))
    _prepare_env(args.verbose)
    from tqdm import tqdm

    from flows.catalog_run import INVALID_CATALOG, QUALITY_ALARM, catalog_run
    from flows.cluster import api_for_workers, task_runner
    from lightbox import progress

    bar = tqdm(total=0, unit="product", desc="catalog-run", file=sys.stderr, disable=None)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    progress.set_listener(on_progress)
    try:
        flow = catalog_run.with_options(task_runner=task_runner(cluster_setting, workers))
        with _stop_at_once(store, spec.name), api_for_workers(cluster_setting):
            state = flow(catalog=args.catalog, brand=args.brand, out=args.out, chunk_size=args.chunk_size,
                         layout=None if args.layout == "auto" else args.layout, fetch_policy=args.fetch_policy,
                         skus=skus, webhooks=args.webhooks, checked=handed, retire_missing=args.retire_missing,
                         return_state=True)
    except Exception as e:  # the server or the engine broke: one line here, the traceback with -v
        logging.getLogger(__name__).debug("the run raised", exc_info=True)
        _forget_run(store, run, args.out, out_existed)
        if "Failed to reach API" in str(e):
            return _fail(f"cannot reach the Prefect API at {os.environ.get('PREFECT_API_URL')} (is the server running? "
                         "without PREFECT_API_URL a temporary server is started)", 1)
        return _fail(root_cause(e), 1)
    finally:
        progress.set_listener(None)
        bar.close()
    if state.is_completed():
        _print_summary(state.result())
        return 0
    summary = _latest_summary(args.out, spec.name)
    if summary is not None and summary.flow_run_id == str(state.state_details.flow_run_id):
        _print_summary(summary)
    else:
        _forget_run(store, run, args.out, out_existed)
    if state.name == QUALITY_ALARM:
        return _fail(f"quality alarm: {state.message}", 3)
    result = state.result(raise_on_failure=False)
    reason = root_cause(result) if isinstance(result, BaseException) else (state.message or state.name)
    return _fail(reason, 2 if state.name == INVALID_CATALOG else 1)


def _check_catalog_exists(catalog: str) -> None:
    from lightbox.catalog.ingest import detect_format
    from lightbox.errors import CatalogError
    from lightbox.storage import filesystem

    detect_format(catalog)
    fs, path = filesystem(catalog)
    if not fs.exists(path):
        raise CatalogError(f"{catalog}: file not found")


def _exists_locally(out: str) -> bool:
    return "://" in out and not out.startswith("file://") or os.path.exists(out.removeprefix("file://"))


def _forget_run(store, run, out: str, existed: bool) -> None:  # Store, Run
    """A run that ended before writing its report leaves neither its handed-over files nor an empty output folder."""
    store.delete_prefix(run.key(""))
    _remove_if_left_empty(out, existed)


def _remove_if_left_empty(out: str, existed: bool) -> None:
    """A failed run leaves no empty output folder behind (only folders this run created, and only empty ones)."""
    if existed:
        return
    root = out.removeprefix("file://")
    for folder, _, files in os.walk(root, topdown=False):
        if files:
            return
        try:
            os.rmdir(folder)
        except OSError:
            return


def _latest_summary(out: str, brand: str):  # RunSummary | None
    import json

    from lightbox.layout import BrandLayout
    from lightbox.report import RunSummary
    from lightbox.storage import Store

    store = Store(out)
    try:
        pointer = json.loads(store.read(BrandLayout(brand).latest_run))
        return RunSummary.model_validate_json(store.read(store.key_of(pointer["summary"])))
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _print_rows(invalid: list, skipped: list, warnings: list, quarantine_uri: str | None = None) -> None:
    """Rows not rendered as they are, grouped by cause, per status (invalid, skipped, warning)."""
    from lightbox.preflight import reason_lines

    for status, rows in (("invalid", invalid), ("skipped", skipped), ("warning", warnings)):
        for line in reason_lines(rows, top=5 if status == "invalid" else 3):
            _say(f"{status}: {line}\n")
    if quarantine_uri and (invalid or skipped or warnings):
        _say(f"quarantine: {quarantine_uri}\n")


def _print_summary(s) -> None:  # RunSummary
    _say(
        f"{s.brand}: {s.ingested} rows, {s.invalid} quarantined, {s.skipped} skipped, {s.generated} generated, "
        f"{s.unchanged} unchanged, {s.published} published"
        + (f" ({s.already_live} already live)" if getattr(s, "already_live", 0) else "")
        + f" in {s.wall_s:.1f} s ({s.images_per_s:.2f} images/s); "
        f"failed: {s.render_failed} to render, {s.qc_failed} quality" + (f"; on a {s.runner}" if getattr(s, "runner", None) else "") + "\n"
        f"summary: {s.summary_uri}\nmanifest: {s.manifest_uri}\n"
    )
    if getattr(s, "engine", "studio") != "studio":  # an AI look, or its fallback to the studio engine and why
        _say(f"engine: {s.engine}\n")
    counts = (getattr(s, "cutouts", None) or {}).get("counts")
    if counts:
        _say("cut-out, photos: " + ", ".join(f"{n} {method}" for method, n in counts.items()) + "\n")
    if getattr(s, "storage_line", None) and s.storage_line():
        _say(s.storage_line() + "\n")
    _print_rows(s.quarantine, s.skipped_rows, s.warnings, s.quarantine_uri)
    from lightbox.report import failure_lines

    for line in failure_lines(s.failures):
        _say(line + "\n")
    retired = getattr(s, "retired", None) or []
    if retired:
        _say(f"retired: {len(retired)} images of photos the catalog no longer has or the gallery cap leaves out "
             f"({', '.join(sorted({r['sku'] for r in retired})[:5])}{', ...' if len({r['sku'] for r in retired}) > 5 else ''})\n")
    for line in getattr(s, "retire_failures", None) or []:
        _say(f"not retired: {line}\n")
    if s.unknown_skus:
        _say(f"unknown SKUs (not in the catalog): {', '.join(s.unknown_skus)}\n")
    gone = getattr(s, "still_live_absent", None) or []
    if gone:
        _say(f"not in this catalog: {len(gone)} products still live ({', '.join(gone[:5])}{', ...' if len(gone) > 5 else ''}); "
             "--retire-missing takes them down\n")
    if s.consistency and s.consistency.get("score") is not None:
        _say(f"catalog consistency: {s.consistency['score']:.3f}\n")
    if s.review_uri:  # the gallery: what to look at, and a contact sheet of what went live
        failed = f", {s.render_failed} failed to render" if s.render_failed else ""  # images, not catalog rows
        _say(f"review: {s.published} images live ({s.warned} with warnings), {s.to_review} to review{failed}: {s.review_uri}\n")


def _brand_state(store, brand: str):  # Store -> RunState | None
    """The run state of ``brand`` under the output root, or None when no run of the brand made one."""
    from lightbox.state import RunState, state_exists

    state = RunState.of(store) if state_exists(store) else None
    return state if state is not None and state.knows(brand) else None


def cmd_manifest(args: argparse.Namespace) -> int:
    """List (filtered) or export the brand's live entries from the run state."""
    import json

    from lightbox.errors import LightboxError
    from lightbox.state import StateError
    from lightbox.storage import Store

    try:
        store = Store(args.out)
        state = _brand_state(store, args.brand)
        if state is None:
            return _fail(f"brand {args.brand!r}: no run state under {store.uri('')}; a run of the brand creates it", 2)
        if args.export:
            _say(f"{state.export(store, args.brand)}\n")
            return 0
        rows = state.query(args.brand, sku=args.sku, channel=args.channel, qc=args.qc, run=args.run, limit=args.limit)
    except (LightboxError, StateError) as e:
        return _fail(str(e), 1)
    if args.format == "jsonl":
        _say("".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return 0
    _say(f"{'sku':<24} {'channel':<18} {'photo':<6} {'role':<11} {'qc':<8} {'run':<26} sha256\n")
    for r in rows:
        photo = int(r.get("photo") or 1)
        role = r.get("role") or ("main" if photo == 1 else "additional")
        _say(f"{r['sku']:<24} {r['channel']:<18} {photo:<6} {role:<11} {r['qc']:<8} {r['run_id']:<26} {(r.get('sha256') or '')[:12]}\n")
    _say(f"{len(rows)} entries\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The platform's import file on stdout (or --to FILE); what was left out and the counts on stderr."""
    from pathlib import Path

    from lightbox.catalog.export import RootSettings, default_channel, export, public_base_url
    from lightbox.errors import LightboxError
    from lightbox.state import StateError
    from lightbox.storage import Store

    if args.remember and not args.base_url:
        return _fail("--remember saves --base-url for the output root: give --base-url URL", 2)
    try:
        store = Store(args.out)
        base_url = public_base_url(args.base_url, store)
        if args.remember:
            sys.stderr.write(f"public base URL {base_url} saved for {store.root_uri} "
                             f"({RootSettings(public_base_url=base_url).save(store)})\n")
        state = _brand_state(store, args.brand)
        if state is None:
            return _fail(f"brand {args.brand!r}: no run state under {store.uri('')}; a run of the brand creates it", 2)
        entries = list(state.entries(args.brand).values())
        channels = sorted({e["channel"] for e in entries})
        channel = args.channel or default_channel(args.format, channels)
        if channel not in channels:
            return _fail(f"--channel: no live {channel!r} images for {args.brand} (live: {', '.join(channels) or 'none'})", 2)
        made = export(entries, args.format, channel, store.key_of, base_url)
    except StateError as e:
        return _fail(str(e), 1)
    except LightboxError as e:
        return _fail(str(e), 2)
    for line in made.left_out:
        sys.stderr.write(f"left out: {line}\n")
    if args.to:
        try:
            Path(args.to).write_text(made.text, encoding="utf-8")
        except OSError as e:
            return _fail(f"--to {args.to}: cannot write ({e.strerror or type(e).__name__})", 2)
    else:
        sys.stdout.write(made.text)
    sys.stderr.write(f"{args.format}: {made.products} products, {made.images} {channel} images"
                     + (f" -> {args.to}" if args.to else "") + "\n")
    return 0


INTERRUPTED = "interrupted; what was published stays published - run the same command again to go on"


@contextlib.contextmanager
def _stop_at_once(store, brand: str):  # Store
    """While the flow runs, Ctrl-C (SIGINT) or SIGTERM stop the run at once: one line, the brand's lock handed
    back if this process holds it, this run's child processes (the temporary Prefect server, local Dask
    workers) stopped, exit 130 (143 for SIGTERM). Left to Prefect, a Ctrl-C took 2-6 minutes: the terminal's
    SIGINT also stops the temporary server, and the engine then retried its reports to it before failing with
    "Connection refused". Stopping at once is a crash as far as the outputs go, and a run recovers from a crash:
    a publish is atomic, each chunk's run-state rows commit in one transaction, the next run sweeps the staging
    and renders only what is not live (tests/flows/test_crash.py)."""
    import signal
    import threading

    def stop(signum: int, _frame) -> None:
        sys.stderr.write("\n")
        _fail(INTERRUPTED, 130)
        sys.stderr.flush()
        from lightbox.lock import release_held_here

        handing = threading.Thread(target=lambda: release_held_here(store, brand), daemon=True)
        handing.start()
        handing.join(5)  # bounded: the storage may be what hangs
        try:
            import psutil

            children = psutil.Process().children(recursive=True)
            for child in children:
                child.terminate()
            _, alive = psutil.wait_procs(children, timeout=5)
            for child in alive:
                child.kill()
        except Exception:  # already gone, or not ours to stop: we are leaving either way
            pass
        os._exit(130 if signum == signal.SIGINT else 143)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    else:  # the terminal gets the outcome lines; logs go to the Prefect API and with -v here
        logging.getLogger().addHandler(logging.NullHandler())
    if getattr(args, "out", None) is not None:  # run, unlock, manifest, export: refused before anything is read or written
        from lightbox.errors import OutputRootError
        from lightbox.storage import parse_output_root

        try:
            args.out = parse_output_root(args.out, "--out")
        except OutputRootError as e:
            return _fail(str(e), 2)
    commands = {"run": cmd_run, "init": cmd_init, "validate": cmd_validate, "unlock": cmd_unlock, "manifest": cmd_manifest, "export": cmd_export, "api": cmd_api, "api-key": cmd_api_key, "ops": cmd_ops}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:  # Ctrl-C: one line, no traceback; what a run made live stays live and recorded
        return _fail(INTERRUPTED, 130)
    except BrokenPipeError:  # `lightbox manifest ... | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
