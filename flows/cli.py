"""Command lines of the flows, generated from their configuration models.

Every option comes from a field of the model (:mod:`flows.config`): ``--observation-days`` from
``observation_days``, with the field's type, help text and default, so a default lives in one
place. Options left out keep the model's default. A field marked ``cli_env`` (the database URL)
is handed to the flow through that environment variable, never as a flow-run parameter.

A run prints its JSON summary as the last stdout line and exits 0; a bad argument or an
ingestion problem exits 2, any other failure 1, each with one clear line (``<flow> failed: ...``)
on stderr and ``{"error": ...}`` on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from flows.config import (
    CLI_ENV,
    CLI_FLAGS,
    CLI_HIDDEN,
    install_secret_mask,
    log_handlers,
    mask_secrets,
)
from schemas.settings import check_flow_settings

M = TypeVar("M", bound=BaseModel)


def _base_type(annotation: Any) -> Any:
    """``int`` for ``int | None``; the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _comma_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parse_type(annotation: Any) -> Callable[[str], Any]:
    base = _base_type(annotation)
    if typing.get_origin(base) is list:
        return _comma_list
    return base if base in (int, float) else str  # pydantic parses the rest (dates, ...)


def _help(field: FieldInfo) -> str:
    text = field.description or ""
    default = field.get_default(call_default_factory=False)
    if default is not None and field.default_factory is None and "default" not in text:
        text += f" (default: {default})"
    return text


def build_parser(model: type[BaseModel], *, prog: str, description: str) -> argparse.ArgumentParser:
    """One option per field of ``model`` (``--field-name``); unset options are left out."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, argument_default=argparse.SUPPRESS
    )
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get(CLI_HIDDEN):
            continue
        flags = extra.get(CLI_FLAGS)
        if flags:  # a tri-state bool: --yes / --no, neither = automatic
            on, off = flags
            group = parser.add_mutually_exclusive_group()
            group.add_argument(on, dest=name, action="store_const", const=True, help=_help(field))
            group.add_argument(off, dest=name, action="store_const", const=False, help=f"not {on}")
            continue
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            type=_parse_type(field.annotation),
            metavar=name.upper(),
            help=_help(field),
        )
    return parser


def parse_config(model: type[M], argv: list[str] | None, *, prog: str, description: str) -> M:
    """The configuration the command line asks for (``ValueError`` when it is invalid).

    Fields marked ``cli_env`` go to their environment variable (read by the flow's process),
    so a secret such as the database password never becomes a flow-run parameter.
    """
    parsed = vars(build_parser(model, prog=prog, description=description).parse_args(argv))
    values = {k: v for k, v in parsed.items() if v != []}  # `--candidates ""`: the default
    for name in list(values):
        extra = model.model_fields[name].json_schema_extra
        env = extra.get(CLI_ENV) if isinstance(extra, dict) else None
        if env:
            os.environ[env] = values.pop(name)
    return model(**values)


class _NoTraceback(logging.Filter):
    """Console logs keep the error message but drop the traceback (the UI keeps it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_console_tracebacks() -> None:
    """Operators get one clear message on the terminal, not Prefect's tracebacks."""
    from prefect.logging.configuration import setup_logging
    from prefect.logging.handlers import PrefectConsoleHandler

    setup_logging()
    install_secret_mask()
    for handler in log_handlers():
        if isinstance(handler, PrefectConsoleHandler | logging.StreamHandler) and not any(
            isinstance(f, _NoTraceback) for f in handler.filters
        ):
            handler.addFilter(_NoTraceback())


def run_cli(
    call: Callable[[], Any],
    *,
    flow_name: str,
    precheck: str | None = None,
    warm: Callable[[], Any] | None = None,
) -> int:
    """Run a flow for the shell: JSON summary last on stdout, or one clear error line.

    ``precheck``: a data path checked before any server starts (a typo fails in a second);
    ``warm``: work done while a temporary Prefect server started with the command
    (:mod:`tasks.early_server`) boots, such as starting the worker pool.
    """
    from credit.ingest import IngestError, check_source
    from tasks import early_server
    from tasks.lifecycle import stop_worker_pool, tracked_process

    quiet_console_tracebacks()
    early_server.offer()  # Prefect takes it at its first API call (none: it is killed at exit)
    try:
        with tracked_process():  # crash the runs of dead processes; forget ours at the end
            if precheck:
                check_source(precheck)
            if warm is not None:
                warm()
            with early_server.run_settings():
                summary = call()
    except IngestError as exc:
        message = mask_secrets(str(exc))
        print(f"error: {message}", file=sys.stderr)
        print(json.dumps({"error": message}))
        return 2
    except Exception as exc:
        message = mask_secrets(f"{type(exc).__name__}: {exc}".splitlines()[0])
        print(f"error: {flow_name} failed: {message}", file=sys.stderr)
        print(json.dumps({"error": message}))
        return 1
    finally:
        stop_worker_pool()  # the exit then does not wait for each worker to tear down
    print(json.dumps(summary, default=str))
    return 0


def cli_main(
    model: type[M],
    argv: list[str] | None,
    run: Callable[[M], Any],
    *,
    flow_name: str,
    description: str,
    precheck: Callable[[M], str | None] = lambda config: None,
    warm: Callable[[M], Any] | None = None,
) -> int:
    """``python -m flows.<flow_name>``: check the ``BATI_*`` settings, parse the options into
    ``model``, run, report.

    ``description`` is the flow module's docstring; its first line is the ``--help`` summary."""
    summary = description.strip().split("\n")[0]
    refused = check_flow_settings()  # a bad BATI_* value: one line naming it, before any work
    if refused:
        print(refused, file=sys.stderr)
        return 2
    try:
        config = parse_config(model, argv, prog=f"python -m flows.{flow_name}", description=summary)
    except ValueError as exc:
        print(f"error: invalid arguments: {mask_secrets(str(exc))}", file=sys.stderr)
        return 2
    return run_cli(
        lambda: run(config),
        flow_name=flow_name,
        precheck=precheck(config),
        warm=(lambda: warm(config)) if warm else None,
    )
