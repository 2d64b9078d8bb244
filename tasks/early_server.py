"""Prefect's temporary API server, started at a command's first line instead of its first API call.

A command run without ``PREFECT_API_URL`` (``python -m flows.retrain ...``) gets a temporary
Prefect server, which Prefect starts when the flow first calls its API: after every import, and
the flow then waits ~9 s on this 2-core machine (server imports, then the migrations of a fresh
database). :func:`start` spawns the very same server (Prefect's own command line, its SQLite
database migrated ahead by :mod:`tasks.server_boot`) before the command's imports, so the two
overlap; :func:`adopt` waits until it answers and hands it to
Prefect (:class:`prefect.server.api.server.SubprocessASGIServer`), which
then uses and stops it exactly as one it had started itself. :func:`offer` defers that to the
moment Prefect would start its own server, so a command that fails before using the API does
not wait.

Only the standard library is imported here: :func:`start` runs before anything heavy.
Whenever the early server cannot be used (an API URL from a profile or ``prefect.toml``, a
server that exits or does not answer in time, Prefect already running its own), it is stopped
and Prefect starts its own as it always does.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_FALSE = {"0", "false", "no", "off"}
_ROOT = Path(__file__).resolve().parents[1]  # where ``tasks.server_boot`` is imported from
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignores *_PROXY


@dataclass
class EarlyServer:
    """A temporary Prefect API server process started by :func:`start`."""

    process: subprocess.Popen
    port: int
    started: float
    adopted: bool = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def healthy(self) -> bool:
        """Does it answer its health check (directly: never through an HTTP proxy)?"""
        try:
            with _DIRECT.open(f"{self.api_url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        """End the process unless Prefect owns it now. It served nobody, so it is killed at once
        (uvicorn ignores SIGTERM while the server starts up: a command refusing a bad path would
        wait 5 s for it); an interrupted migration is rolled back (Prefect runs one transaction
        per migration) and the next start resumes from there."""
        if self.adopted or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait()


_server: EarlyServer | None = None


def wanted(environ: Mapping[str, str] | None = None, argv: list[str] | None = None) -> bool:
    """Will this command need a temporary server? Not with an API URL in the environment,
    with ephemeral mode off, or for ``--help``."""
    env = os.environ if environ is None else environ
    args = sys.argv[1:] if argv is None else argv
    if env.get("PREFECT_API_URL") or any(a in ("-h", "--help") for a in args):
        return False
    for name in ("PREFECT_SERVER_EPHEMERAL_ENABLED", "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"):
        if env.get(name, "").strip().lower() in _FALSE:
            return False
    return True


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> Callable[[], None] | None:
    """The child's ``preexec_fn`` (Linux): ask for SIGTERM when this process dies. prctl is
    resolved here, before the fork, so the forked child imports and loads nothing."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import signal

    prctl, term = ctypes.CDLL(None, use_errno=True).prctl, int(signal.SIGTERM)
    return lambda: prctl(1, term, 0, 0, 0)  # PR_SET_PDEATHSIG


def command(port: int) -> list[str]:
    """Prefect's own command line for its temporary server (``SubprocessASGIServer``), with
    :mod:`tasks.server_boot` in place of ``-m uvicorn``: the same server, its SQLite database
    migrated over the synchronous driver first."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("prefect")
    app_dir = Path(spec.origin).parent.parent
    return [
        sys.executable, "-m", "tasks.server_boot", "--app-dir", str(app_dir),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip


def server_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: this one, with Prefect's settings for its temporary server
    and this project importable from any working directory (:mod:`tasks.server_boot`)."""
    env = dict(os.environ if environ is None else environ)
    return {
        **env,
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")])),
    }


def start() -> EarlyServer | None:
    """Spawn the temporary server now when the command will need one (see :func:`wanted`).

    Call it from the main thread, before the heavy imports; the server ends with this process
    (Linux: even after ``kill -9``)."""
    global _server
    if _server is not None or not wanted():
        return _server
    port = _free_port()
    try:
        process = subprocess.Popen(command(port), env=server_env(), preexec_fn=_die_with_parent())
    except (OSError, ModuleNotFoundError) as exc:
        log.debug("no early Prefect server: %s", exc)
        return None
    _server = EarlyServer(process, port, time.monotonic())
    atexit.register(_server.stop)
    return _server


def adopt(timeout: float | None = None) -> bool:
    """Wait for the server of :func:`start` and make it Prefect's temporary server.

    Returns ``False`` (and stops the early server) when Prefect should start its own: no early
    server, an API URL configured where Prefect looks for one, a server that exited or did not
    answer within ``timeout`` (default Prefect's ephemeral start-up timeout)."""
    global _server
    server = _server
    if server is None or server.adopted:
        return server is not None
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
    )

    prefect_server = SubprocessASGIServer()
    if (
        PREFECT_API_URL.value()
        or not PREFECT_SERVER_EPHEMERAL_ENABLED.value()
        or prefect_server.running
    ):
        return _discard(server, "Prefect does not need it")
    limit = (
        timeout if timeout is not None else PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    )
    deadline = server.started + float(limit)
    while not server.healthy():
        if server.process.poll() is not None:
            return _discard(server, f"it exited with code {server.process.returncode}")
        if time.monotonic() > deadline:
            return _discard(server, f"it did not answer within {limit} s")
        time.sleep(0.05)
    prefect_server.port = server.port
    prefect_server.server_process = server.process
    prefect_server.running = True
    atexit.register(prefect_server.stop)
    server.adopted = True
    import prefect.main  # noqa: F401 - Prefect's logging set-up, as importing ``flow`` does
    from prefect.logging.loggers import get_logger

    get_logger().info(
        "Temporary server on %s (started with the command, ready after %.1f s)",
        prefect_server.address,
        time.monotonic() - server.started,
    )
    return True


def while_booting(steps: Iterable[Callable[[], object]]) -> int:
    """Run ``steps`` one after the other while the early server boots, and return how many ran.

    The command would otherwise sit idle until the server answers (its migrations run on one
    core): steps are work it needs later anyway, such as imports its tasks make on first use.
    Before each step the server is asked once; as soon as it answers (or has exited, or there
    is no early server) the remaining steps are left to run when they are needed. A step that
    raises is skipped: its work fails again, and is reported, where the flow needs it."""
    server = _server
    done = 0
    if server is None or server.adopted:
        return done
    for step in steps:
        if server.process.poll() is not None or server.healthy():
            break
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - reported where the flow needs it
            log.debug("preparation step %r failed: %s", step, exc)
        done += 1
    return done


@contextlib.contextmanager
def run_settings() -> Iterator[None]:
    """Prefect settings for flow runs served by the early server: no flow-run heartbeats.

    Heartbeats let a lasting Prefect server notice a crashed run; a temporary server ends with
    the command (whose crashed runs :mod:`tasks.lifecycle` marks at the next start), so they
    would serve nobody, and Prefect's heartbeat thread, which sleeps in 1 s steps, holds up the
    end of every flow run by up to a second. Anything else (no early server, or an API URL
    Prefect will use instead) keeps Prefect's settings."""
    server = _server
    if server is None or server.process.poll() is not None:
        yield
        return
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_ENABLED,
        temporary_settings,
    )

    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        yield
        return
    with temporary_settings(updates={"flows.heartbeat_frequency": None}):
        yield


def offer() -> None:
    """Let Prefect take the early server when it first needs its temporary server.

    Prefect starts that server in ``SubprocessASGIServer().start()``, at its first API call. From
    now on that call waits for the early server and adopts it (:func:`adopt`), or starts
    Prefect's own as before when it cannot be used. A command that fails before it calls the
    API (no data source, a bad argument) never waits for the server: it is killed at exit."""
    if _server is None or _server.adopted:
        return
    from prefect.server.api.server import SubprocessASGIServer

    prefect_server = SubprocessASGIServer()
    own_start = type(prefect_server).start

    def start(timeout: int | None = None) -> None:
        if not prefect_server.running and not adopt():
            own_start(prefect_server, timeout)

    prefect_server.start = start  # type: ignore[method-assign]  # this instance only


def _discard(server: EarlyServer, reason: str) -> bool:
    global _server
    log.info("early Prefect server not used: %s", reason)
    server.stop()
    _server = None
    return False
