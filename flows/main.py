"""``make run``: the whole main job on the embedded default, then the API in the foreground.

1. ``--demo`` (what ``make run`` passes; the default without ``--data``): the ``nightly`` flow on
   the generated demo set, landed once in var/landing-demo and stored in var/store-demo (a
   second run finds nothing new and trains nothing); ``--data``/``BATI_DATA``: the file as is;
2. the ``retrain`` flow (registers a version, promotes the first champion);
3. the ``score`` flow (every customer of the snapshot scored into the ``scores`` table);
4. print a ready-to-paste curl call and serve the API with gunicorn until Ctrl-C
   (``--no-serve`` stops after step 3).
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--no-serve" in sys.argv[1:]:  # the process that runs the flows:
    from tasks import early_server  # its temporary Prefect server boots during the imports

    early_server.start()
    import scipy.special  # noqa: F401  # before the rest: see registry.artifacts.serialise

import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

from credit.paths import PROJECT_ROOT
from schemas.settings import check_flow_settings, setting


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.main", description=__doc__.split("\n")[0]
    )
    refused = check_flow_settings()  # a bad BATI_* value: one line naming it, exit 2
    if refused:
        print(refused, file=sys.stderr)
        return 2
    parser.add_argument("--data", default=setting("data"))
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the nightly flow on the generated demo set (the default without --data)",
    )
    parser.add_argument("--port", type=int, default=setting("api_port"))
    parser.add_argument("--no-serve", action="store_true", help="stop after batch scoring")
    args = parser.parse_args(argv)
    if not args.no_serve:
        # The pipeline runs in a child process, so that its temporary Prefect server stops
        # with it before the API takes over this process.
        cmd = [sys.executable, "-m", "flows.main", "--no-serve", "--port", str(args.port)]
        cmd += ["--data", args.data] if args.data else ["--demo"]
        code = subprocess.call(cmd)
        if code:
            return code
        return serve_api(args.port)

    from tasks import early_server

    early_server.offer()  # the temporary server started with this process, if any
    if args.data is None:  # --demo: the night on the demo set, as one landed file
        return _demo_night(args.port)
    from flows.cluster import on_cluster
    from flows.retrain import RetrainConfig, run_retrain
    from flows.score import score

    print("== 1/4 data", flush=True)
    print(f"transactions: {args.data}", flush=True)
    print(
        "== 2/4 retrain flow (ingest, validate, clean, EDA, features, label, train, "
        "evaluate, register, promote)",
        flush=True,
    )
    config = RetrainConfig(data=args.data)  # on Dask with BATI_DASK_ADDRESS, as every step
    summary = run_retrain(config)
    print(
        json.dumps(
            {
                k: summary[k]
                for k in ("model_version", "champion", "promoted", "candidate", "metrics")
            },
            indent=2,
        )
    )
    print(f"run outputs (EDA report, plots, model card): {summary['out_dir']}")
    print("== 3/4 score flow", flush=True)
    scored = on_cluster(score, config.dask_address)()
    print(json.dumps(scored, indent=2))
    _print_curl(args.port)
    return 0


def _demo_night(port: int) -> int:
    """``--demo``: the nightly flow (ingest the demo file once, retrain, score), then the curl."""
    from flows.nightly import NightlyConfig, nightly

    print("== 1/2 nightly flow on the demo set (ingest -> store -> retrain -> score)", flush=True)
    summary = nightly(NightlyConfig(demo=True))
    keys = ("new_rows", "store_rows", "trained", "model_version", "promoted", "scored")
    print(json.dumps({k: summary[k] for k in (*keys, "skipped_reason")}, indent=2))
    if summary["retrain"]:
        print(f"run outputs (EDA report, plots, model card): {summary['retrain']['out_dir']}")
    _print_curl(port, step="== 2/2 API")
    return 0


def _print_curl(port: int, step: str = "== 4/4 API") -> None:
    from registry import Registry, read_feature_snapshot
    from tasks.registry_handle import database_url

    with Registry(database_url()) as registry:
        snapshot = read_feature_snapshot(registry)
    customer = str(snapshot.index[0]) if len(snapshot) else "CustomerId_1"
    url = f"http://127.0.0.1:{port}"
    print(step, flush=True)
    print("Score a customer (paste in another terminal):\n")
    print(
        f"  curl -s -X POST {url}/v1/score -H 'Content-Type: application/json' "
        f'-d \'{{"customer_id": "{customer}"}}\'\n'
    )
    print(f"Docs: {url}/docs   Health: {url}/ready   Models: {url}/v1/models")


def serve_api(port: int) -> int:
    """Replace this process with gunicorn serving the API (Ctrl-C stops it)."""
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    print(f"serving the API on http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    os.chdir(PROJECT_ROOT)
    os.execv(gunicorn, [gunicorn, "--bind", f"127.0.0.1:{port}", "api:create_app()"])
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
