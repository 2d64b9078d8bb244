"""Command line: ``python -m registry list|show|history|promote|rollback|migrate``.

Errors are one line on stderr with exit code 1 (2 for usage errors); no tracebacks.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from registry.core import DEFAULT_MODEL_NAME, Registry, VersionInfo
from registry.db import default_db_url, safe_url
from registry.errors import RegistryError


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted both before and after the sub-command."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--db-url",
        default=default,
        help="SQLAlchemy URL (default: $BATI_DB_URL or sqlite:///<project>/var/bati.db)",
    )
    parser.add_argument(
        "--model",
        default=argparse.SUPPRESS if suppress else DEFAULT_MODEL_NAME,
        help=f"model name (default: {DEFAULT_MODEL_NAME})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="machine-readable JSON output",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="python -m registry", description="Bati Bank model registry"
    )
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_, description=help_)
        _common(p, suppress=True)
        return p

    p = add("list", "list the versions of a model (or of every model with --all-models)")
    p.add_argument("--all-models", action="store_true", help="list versions of every model")
    p = add("show", "show one version (a number, or 'champion')")
    p.add_argument("version", help="version number or 'champion'")
    add("history", "promotion and rollback events of a model")
    p = add("promote", "make a version the champion")
    p.add_argument("version", type=int)
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default=None, help="who (default: the OS user)")
    p = add("rollback", "re-instate the previous champion")
    p.add_argument("--reason", required=True)
    p.add_argument("--actor", default=None, help="who (default: the OS user)")
    add("migrate", "create or upgrade the database schema")
    return parser


def _actor(value: str | None) -> str:
    if value:
        return value
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user database entry (containers)
        return "cli"


def _table(versions: list[VersionInfo]) -> str:
    header = ("MODEL", "VERSION", "STAGE", "CREATED", "ROC_AUC", "KS", "BRIER", "SHA256")
    rows = [header]
    for v in versions:
        m = v.metrics

        def fmt(key: str, m: dict[str, Any] = m) -> str:
            return f"{m[key]:.4f}" if key in m else "-"

        rows.append(
            (
                v.model_name,
                str(v.version),
                v.stage,
                v.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                fmt("roc_auc"),
                fmt("ks"),
                fmt("brier"),
                v.artifact_sha256[:12],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def run(args: argparse.Namespace) -> int:
    """Execute a parsed command; returns the exit code."""
    reg = Registry(args.db_url)
    try:
        if args.command == "migrate":
            revision = reg.migrate()
            _emit(
                args,
                {"database": safe_url(reg.url), "revision": revision},
                f"{safe_url(reg.url)} is at revision {revision}",
            )
        elif args.command == "list":
            versions = reg.list_versions(None if args.all_models else args.model)
            if args.json:
                _emit(args, [v.to_dict() for v in versions], "")
            elif not versions:
                print(f"no versions registered for {args.model!r}")
            else:
                print(_table(versions))
        elif args.command == "show":
            if args.version == "champion":
                info = reg.champion(args.model)
                if info is None:
                    raise RegistryError(f"model {args.model!r} has no champion")
            else:
                try:
                    number = int(args.version)
                except ValueError:
                    raise RegistryError(
                        f"version must be a number or 'champion', not {args.version!r}"
                    ) from None
                info = reg.get_version(args.model, number)
            _emit(args, info.to_dict(), json.dumps(info.to_dict(), indent=2, default=str))
        elif args.command == "history":
            events = [e.to_dict() for e in reg.events(args.model)]
            text = "\n".join(
                f"{e['created_at']}  {e['action']:<12} v{e['from_version']} -> v{e['to_version']}"
                f"  by {e['actor']}: {e['reason']}"
                for e in events
            )
            _emit(args, events, text or f"no promotion events for {args.model!r}")
        elif args.command in ("promote", "rollback"):
            if args.command == "promote":
                decision = reg.promote(
                    args.model, args.version, actor=_actor(args.actor), reason=args.reason
                )
            else:
                decision = reg.rollback(args.model, actor=_actor(args.actor), reason=args.reason)
            _emit(
                args,
                decision.to_dict(),
                f"{args.model}: champion is now v{decision.champion_version} "
                f"(was v{decision.previous_champion})",
            )
    finally:
        reg.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except RegistryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        url = safe_url(args.db_url or default_db_url())
        print(f"error: database {url}: {detail}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
