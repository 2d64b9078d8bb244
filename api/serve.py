"""``bati-api``: serve the scoring API with gunicorn and the project's ``gunicorn.conf.py``.

Equivalent to ``gunicorn -c gunicorn.conf.py "api:create_app()"`` run from the project folder;
``--bind`` and ``--workers`` override ``BATI_API_BIND`` and ``WEB_CONCURRENCY``; any other
argument goes to gunicorn as is. ``--check`` validates the ``BATI_*`` settings and exits.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CONFIG = Path(__file__).resolve().parents[1] / "gunicorn.conf.py"
APP = "api:create_app()"


def gunicorn_argv(bind: str | None, workers: int | None, rest: list[str]) -> list[str]:
    """The gunicorn command line (``python -m gunicorn -c gunicorn.conf.py ... app``)."""
    argv = [sys.executable, "-m", "gunicorn", "-c", str(CONFIG)]
    if bind:
        argv += ["--bind", bind]
    if workers:
        argv += ["--workers", str(workers)]
    return [*argv, *rest, APP]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bati-api", description=__doc__.splitlines()[0])
    parser.add_argument("--bind", help="host:port (default BATI_API_BIND or 127.0.0.1:8000)")
    parser.add_argument("--workers", type=int, help="worker processes (default WEB_CONCURRENCY)")
    parser.add_argument(
        "--check", action="store_true", help="validate the BATI_* settings, print them and exit"
    )
    args, rest = parser.parse_known_args(argv)
    from api.config import load_settings

    try:
        settings = load_settings()
    except ValueError as exc:
        print(f"bati api: refused setting {exc}", file=sys.stderr)
        return 2
    if args.check:
        print(settings.public())
        return 0
    if not CONFIG.is_file():
        print(f"bati api: {CONFIG} not found (install the project editable)", file=sys.stderr)
        return 2
    os.chdir(CONFIG.parent)  # "api:create_app()" and var/ resolve from the project folder
    command = gunicorn_argv(args.bind, args.workers, rest)
    os.execv(command[0], command)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
