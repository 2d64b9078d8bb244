"""Command line: ``python -m registry list|show|history|promote|rollback|migrate``.

Errors are one line on stderr with exit code 1; usage errors, a bad ``--db-url`` and a database
schema newer than this code exit with 2. Never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Sequence
from typing import Any

from alembic.util.exc import CommandError
from sqlalchemy.exc import SQLAlchemyError

from registry.core import DEFAULT_MODEL_NAME, Registry, VersionInfo
from registry.db import default_db_url, safe_url
from registry.errors import InvalidDatabaseURL, RegistryError, SchemaTooNew

#: Exit codes: 1 = the command failed, 2 = wrong usage or a setup the code cannot work with.
EXIT_FAILED, EXIT_USAGE = 1, 2


def _common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options accepted both before and after the sub-command."""
    default = argparse.SUPPRESS if suppress else None
    parser.add_argument(
        "--db-url",
        default=default,
        help="SQLAlchemy URL (default: $BATI_DB_URL or sqlite:///<var>/bati.db, where <var> is "
        "$BATI_VAR_DIR or <project>/var)",
    )
    parser.add_argument(
        "--model",
        default=argparse.SUPPRESS if suppress else None,
        help=f"model name (default: {DEFAULT_MODEL_NAME}; `list` shows every model unless given)",
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

    p = add("list", "list the versions of every model (of one with --model)")
    p.add_argument(
        "--all-models", action="store_true", help="every model (the default; kept for scripts)"
    )
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


#: What the metric columns of `registry list` were measured on.
METRICS_NOTE = (
    "ROC_AUC/KS/BRIER: each version on its own test split (HOLDOUT = that split's fingerprint); "
    "versions with different HOLDOUTs are not comparable side by side. The champion-vs-challenger "
    "comparison, both on the challenger's test split, is under DECISIONS."
)


def _table(versions: list[VersionInfo]) -> str:
    header = ("MODEL", "VERSION", "STAGE", "CREATED", "HOLDOUT", "ROC_AUC", "KS", "BRIER", "SHA256")
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
                (v.holdout_fingerprint or "-")[:12],
                fmt("roc_auc"),
                fmt("ks"),
                fmt("brier"),
                v.artifact_sha256[:12],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def _latest_decisions(reg: Registry, versions: list[VersionInfo]) -> dict[tuple[str, int], Any]:
    """The latest recorded champion/challenger decision of each listed version, falling back
    to the promotion event (versions decided before decisions were recorded)."""
    found: dict[tuple[str, int], Any] = {}
    for name in sorted({v.model_name for v in versions}):
        for event in reg.events(name):
            if event.action == "auto_promote" and "roc_auc" in event.details:
                found[(name, event.to_version)] = {
                    "promoted": True,
                    "champion_version": event.from_version,
                    "reason": event.reason,
                    "checks": event.details,
                    "created_at": event.created_at.isoformat(),
                }
        for decision in reg.decisions(name):
            found[(name, decision.version)] = decision.to_dict()
    return found


def _comparison(name: str, version: int, decision: dict[str, Any]) -> str:
    """One line: the challenger against the champion, on the same holdout."""
    checks = decision.get("checks") or {}
    outcome = "promoted" if decision.get("promoted") else "kept"
    if "held" in checks:
        outcome = "held for approval"
    champ = decision.get("champion_version")
    if champ is None or champ == version or "roc_auc" not in checks:
        return f"{name} v{version}: {outcome}: {decision.get('reason')}"
    source = checks.get("champion_metrics_source", "stored")
    where = (
        f"champion re-evaluated on v{version}'s test split"
        if str(source).startswith("re-evaluated")
        else "champion's stored metrics (same holdout fingerprint)"
    )
    parts = [
        f"{label} {checks[key]['candidate']:.4f} vs {checks[key]['champion']:.4f}"
        for key, label in (("roc_auc", "ROC-AUC"), ("ks", "KS"), ("brier", "Brier"))
        if isinstance(checks.get(key), dict)
    ]
    return f"{name} v{version} vs champion v{champ} ({where}): {', '.join(parts)} -> {outcome}"


def _emit(args: argparse.Namespace, payload: Any, text: str) -> None:
    print(json.dumps(payload, indent=2, default=str) if args.json else text)


def run(args: argparse.Namespace) -> int:
    """Execute a parsed command; returns the exit code."""
    reg = Registry(args.db_url)
    if args.command != "list":
        args.model = args.model or DEFAULT_MODEL_NAME
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
            decisions = _latest_decisions(reg, versions)
            if args.json:
                rows = [
                    {
                        **v.to_dict(),
                        "metrics_measured_on": {
                            "holdout": "own test split",
                            "holdout_fingerprint": v.holdout_fingerprint,
                        },
                        "decision": decisions.get((v.model_name, v.version)),
                    }
                    for v in versions
                ]
                _emit(args, rows, "")
            elif not versions:
                print(f"no versions registered for {args.model or 'any model'!r}")
            else:
                lines = [
                    _comparison(v.model_name, v.version, decisions[(v.model_name, v.version)])
                    for v in versions
                    if (v.model_name, v.version) in decisions
                ]
                print(_table(versions))
                print(f"\n{METRICS_NOTE}")
                if lines:
                    print("\nDECISIONS")
                    print("\n".join(f"  {line}" for line in lines))
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
    except (InvalidDatabaseURL, SchemaTooNew) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except RegistryError as exc:
        return _fail(str(exc), EXIT_FAILED)
    except SQLAlchemyError as exc:
        detail = _first_line(getattr(exc, "orig", None) or exc)
        return _fail(f"database {safe_url(args.db_url or default_db_url())}: {detail}", EXIT_FAILED)
    except (OSError, ValueError, CommandError) as exc:
        return _fail(_first_line(exc), EXIT_FAILED)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _fail(message: str, code: int) -> int:
    """Print ``error: <message>`` as one line on stderr; return the exit code."""
    print(f"error: {' '.join(message.split())}", file=sys.stderr)
    return code
