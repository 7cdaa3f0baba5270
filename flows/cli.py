"""``lightbox`` command line: runs the catalog-run flow with no server needed (Prefect's ephemeral mode).

    lightbox run CATALOG [--brand SPEC] [--out URI] [--chunk-size N] [--workers N] [-v]

Exits 0 when the run completed, 1 when the run failed, 2 for bad arguments or inputs found before the
run starts, 3 for a quality alarm (more outputs failed quality checks than the spec allows; what
passed is published); on failure it prints one line naming the file and the problem.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

DEFAULT_BRAND = "brand_specs/acme-home.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lightbox", description="Catalog-scale product imagery as a Prefect pipeline.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="ingest, validate, render, check and publish a catalog")
    run.add_argument("catalog", help="catalog URI (.csv, .tsv, .jsonl, .parquet, .xml; local path, file:// or s3://): "
                     "Lightbox layout or a Shopify / WooCommerce / Google Merchant export")
    run.add_argument("--brand", default=DEFAULT_BRAND, help=f"brand spec YAML (default: {DEFAULT_BRAND})")
    run.add_argument("--out", default="out", help="output root: a directory or s3://bucket/prefix (default: out)")
    run.add_argument("--layout", choices=["auto", "lightbox", "shopify", "woocommerce", "google-merchant"], default="auto",
                     help="catalog layout (default: detected from the header)")
    run.add_argument("--fetch-policy", default=None,
                     help="fetch policy YAML for source images (default: $LIGHTBOX_FETCH_POLICY, else https + s3 only)")
    run.add_argument("--skus", default=None, help="comma-separated SKUs: only these (unknown ones are reported)")
    run.add_argument("--webhooks", default=None, help="webhook subscribers YAML (default: $LIGHTBOX_WEBHOOKS)")
    run.add_argument("--chunk-size", type=int, default=8, help="products per generate task (default: 8)")
    run.add_argument("--workers", type=int, default=None, help="concurrent tasks (default: CPU count, 2..8)")
    run.add_argument("-v", "--verbose", action="store_true", help="show Prefect's logs")

    api = sub.add_parser("api", help="serve the job API (FastAPI; settings from LIGHTBOX_API_* variables)")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8080)
    key = sub.add_parser("api-key", help="create or revoke job API keys (stored hashed)")
    key.add_argument("action", choices=["create", "revoke"])
    key.add_argument("name", help="who the key is for, e.g. pim or catalog-sync")
    key.add_argument("--file", default=None, help="keys file (default: $LIGHTBOX_API_KEYS_FILE, else api-keys.json)")

    ops = sub.add_parser("ops", help="operations: create work pool, queues and limits; apply automations")
    ops.add_argument("action", choices=["setup", "automations", "deploy"])
    ops.add_argument("--dir", default="deployments", help="where the templates and automations live (default: deployments)")
    return p


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    _prepare_env(verbose=True)
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_api_key(args: argparse.Namespace) -> int:
    from api.keys import create_key, revoke_key

    path = args.file or os.environ.get("LIGHTBOX_API_KEYS_FILE", "api-keys.json")
    if args.action == "create":
        try:
            key = create_key(path, args.name)
        except ValueError as e:
            return _fail(str(e), 2)
        sys.stdout.write(f"{key}\n")
        sys.stderr.write(f"key for {args.name!r} stored hashed in {path}; it is shown only this once\n")
        return 0
    if not revoke_key(path, args.name):
        return _fail(f"{path}: no key named {args.name!r}", 2)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    from deployments.apply import apply_automations, deploy, setup

    _prepare_env(verbose=False)
    actions = {"setup": lambda: setup(args.dir), "automations": lambda: apply_automations(args.dir), "deploy": deploy}
    try:
        lines = actions[args.action]()
    except Exception as e:  # noqa: BLE001 - one line for the operator
        return _fail(root_cause(e), 1)
    for line in lines:
        sys.stdout.write(line + "\n")
    return 0


def _fail(msg: str, code: int) -> int:
    sys.stderr.write(f"lightbox: error: {msg}\n")
    return code


def _prepare_env(verbose: bool) -> None:
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
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
    from lightbox.catalog.ingest import detect_format
    from lightbox.errors import LightboxError
    from lightbox.fetch import load_fetch_policy
    from lightbox.webhooks import load_webhooks
    from lightbox.specs import load_brand_spec
    from lightbox.storage import Store, filesystem

    if args.chunk_size < 1:
        return _fail(f"--chunk-size must be >= 1, got {args.chunk_size}", 2)
    workers = args.workers or max(2, min(8, os.cpu_count() or 2))
    try:
        spec = load_brand_spec(args.brand)  # a bad spec fails here, before any server starts
        detect_format(args.catalog)
        load_fetch_policy(args.fetch_policy or os.environ.get("LIGHTBOX_FETCH_POLICY"))
        load_webhooks(args.webhooks or os.environ.get("LIGHTBOX_WEBHOOKS"))
        fs, path = filesystem(args.catalog)
        if not fs.exists(path):
            return _fail(f"{args.catalog}: file not found", 2)
        Store(args.out).check_writable()
    except LightboxError as e:
        return _fail(str(e), 2)

    _prepare_env(args.verbose)
    from prefect.task_runners import ThreadPoolTaskRunner
    from tqdm import tqdm

    from flows.catalog_run import catalog_run
    from lightbox import progress

    bar = tqdm(total=0, unit="product", desc="catalog-run", file=sys.stderr, disable=None)

    def on_progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    progress.set_listener(on_progress)
    try:
        flow = catalog_run.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
        state = flow(catalog=args.catalog, brand=args.brand, out=args.out, chunk_size=args.chunk_size,
                     layout=None if args.layout == "auto" else args.layout, fetch_policy=args.fetch_policy,
                     skus=[s.strip() for s in args.skus.split(",") if s.strip()] if args.skus else None,
                     webhooks=args.webhooks, return_state=True)
    finally:
        progress.set_listener(None)
        bar.close()
    if state.name == "QualityAlarm":
        _print_summary(_latest_summary(args.out, spec.name))
        return _fail(f"quality alarm: {state.message}", 3)
    if not state.is_completed():
        result = state.result(raise_on_failure=False)
        reason = root_cause(result) if isinstance(result, BaseException) else (state.message or state.name)
        return _fail(reason, 1)
    _print_summary(state.result())
    return 0


def _latest_summary(out: str, brand: str):  # noqa: ANN202 - RunSummary
    import json

    from lightbox.report import RunSummary
    from lightbox.storage import Store

    store = Store(out)
    pointer = json.loads(store.read(f"{brand}/latest-run.json"))
    return RunSummary.model_validate_json(store.read(store.key_of(pointer["summary"])))


def _print_summary(s) -> None:  # noqa: ANN001 - RunSummary
    sys.stdout.write(
        f"{s.brand}: {s.ingested} rows, {s.invalid} quarantined, {s.skipped} skipped, {s.generated} generated, "
        f"{s.unchanged} unchanged, {s.failed} failed, {s.published} published "
        f"in {s.wall_s:.1f} s ({s.images_per_s:.2f} images/s)\n"
        f"summary: {s.summary_uri}\nmanifest: {s.manifest_uri}\n"
    )
    counts = (getattr(s, "cutouts", None) or {}).get("counts")
    if counts:
        sys.stdout.write("cut-out: " + ", ".join(f"{n} {method}" for method, n in counts.items()) + "\n")
    for q in s.quarantine[:10]:
        sys.stdout.write(f"quarantined row {q.row} {q.sku}: {q.reason}\n")
    for f in s.failures[:10]:
        sys.stdout.write(f"failed {f['sku']}/{f['channel']} ({f['stage']}): {f['reason']}\n")
    more = max(0, len(s.quarantine) - 10) + max(0, len(s.failures) - 10)
    if more:
        sys.stdout.write(f"... {more} more in the summary\n")
    if s.consistency and s.consistency.get("score") is not None:
        sys.stdout.write(f"catalog consistency: {s.consistency['score']:.3f}\n")
    if s.review_uri and s.to_review:
        sys.stdout.write(f"review: {s.review_uri}\n")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # libraries that set their own loggers to INFO (Great Expectations) stay quiet too
        for handler in logging.getLogger().handlers:
            handler.setLevel(logging.WARNING)
    commands = {"run": cmd_run, "api": cmd_api, "api-key": cmd_api_key, "ops": cmd_ops}
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
