"""tasks.early_server: the temporary Prefect server started with the command, handed to Prefect.

A stand-in HTTP process plays the server here (no Prefect server boots); the real one is used by
``python -m flows.retrain`` in tests/e2e/test_flows.py, which checks the hand-over in its log.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
import urllib.request

import pytest
from builders import run_python
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import early_server

HEALTHY = """
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()
        self.wfile.write(b"true")
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


@pytest.fixture
def no_api_url(monkeypatch):
    """Prefect would start a temporary server: no API URL anywhere it looks, and none running
    (an earlier test of this worker may have left Prefect's own: it is stopped, as Prefect
    stops it at exit, and the next flow starts another)."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    SubprocessASGIServer().stop()
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield
    monkeypatch.setattr(early_server, "_server", None)


def _early(code: str, *args: str) -> early_server.EarlyServer:
    port = early_server._free_port()
    proc = subprocess.Popen([sys.executable, "-c", code, str(port), *args])
    server = early_server.EarlyServer(proc, port, time.monotonic())
    early_server._server = server
    return server


@pytest.mark.parametrize(
    ("env", "argv", "expected"),
    [
        ({}, ["--data", "x.csv"], True),
        ({"PREFECT_API_URL": "http://127.0.0.1:4200/api"}, [], False),
        ({}, ["--help"], False),
        ({"PREFECT_SERVER_EPHEMERAL_ENABLED": "false"}, [], False),
        ({"PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "0"}, [], False),
    ],
)
def test_wanted_only_when_prefect_would_start_a_temporary_server(env, argv, expected):
    assert early_server.wanted(env, argv) is expected


@pytest.mark.parametrize("proxy", [None, "http://127.0.0.1:9"])
def test_adopted_server_is_prefects_temporary_server(no_api_url, monkeypatch, proxy):
    if proxy:  # an HTTP proxy in the environment (closed here): the local check goes direct
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.setenv("http_proxy", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.setattr(urllib.request, "_opener", None)  # urlopen reads the env afresh
    server = _early(HEALTHY)
    prefect_server = SubprocessASGIServer()
    try:
        assert early_server.adopt(timeout=10) is True
        assert prefect_server.running and prefect_server.server_process is server.process
        assert prefect_server.api_url == server.api_url
        server.stop()  # adopted: Prefect owns it now, so this leaves it running
        assert server.process.poll() is None
    finally:
        prefect_server.stop()
    assert server.process.poll() is not None  # Prefect's stop ended it
    assert not SubprocessASGIServer().running


def test_a_server_that_exits_is_discarded_and_prefect_starts_its_own(no_api_url, caplog):
    server = _early("import sys; sys.exit(3)")
    with caplog.at_level(logging.INFO, logger=early_server.__name__):
        assert early_server.adopt(timeout=30) is False
    assert "exited with code 3" in caplog.text
    assert early_server._server is None and not SubprocessASGIServer().running
    assert server.process.poll() == 3


def test_a_silent_server_is_stopped_after_the_timeout(no_api_url, caplog):
    server = _early("import time; time.sleep(60)")
    with caplog.at_level(logging.INFO, logger=early_server.__name__):
        assert early_server.adopt(timeout=0.5) is False
    assert "did not answer within 0.5 s" in caplog.text
    assert server.process.poll() is not None  # terminated, not left behind
    assert not SubprocessASGIServer().running


def test_an_api_url_from_the_settings_discards_the_early_server(monkeypatch, caplog):
    monkeypatch.setattr(early_server, "_server", None)
    server = _early(HEALTHY)
    with (
        temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        caplog.at_level(logging.INFO, logger=early_server.__name__),
    ):
        assert early_server.adopt(timeout=30) is False
    assert "Prefect does not need it" in caplog.text
    assert server.process.poll() is not None


def test_a_command_says_where_its_server_is(tmp_path):
    """In a fresh process (Prefect's logging not set up yet, as in ``flows.main``) the hand-over
    is logged like Prefect's own "Starting temporary server", and the server ends with it."""
    code = (
        "import sys\n"
        "from tasks import early_server\n"
        f"early_server.command = lambda port: [sys.executable, '-c', {HEALTHY!r}, str(port)]\n"
        "server = early_server.start()\n"
        "print(early_server.adopt(timeout=60), server.process.pid)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path / "prefect")
    proc = run_python("-c", code, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    adopted, pid = proc.stdout.split()
    assert adopted == "True"
    assert re.search(
        r"Temporary server on http://127\.0\.0\.1:\d+ \(started with the command", proc.stderr
    )
    assert "Stopping temporary server" in proc.stderr
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid), 0)


def test_an_unused_server_is_killed_not_waited_for(no_api_url, tmp_path):
    """uvicorn ignores SIGTERM while Prefect's server starts (its migrations): a command that
    refuses a bad path waited 5 s for it before exiting. An unused early server is killed at
    once: it never gets the SIGTERM that would be ignored."""
    flag = tmp_path / "sigterm"
    code = (
        "import signal, sys, time, pathlib\n"
        "flag = pathlib.Path(sys.argv[2])\n"
        "signal.signal(signal.SIGTERM, lambda *a: flag.write_text('ignored'))\n"
        "flag.with_suffix('.ready').write_text('')\n"
        "time.sleep(60)\n"
    )
    server = _early(code, str(flag))
    deadline = time.monotonic() + 30
    while not flag.with_suffix(".ready").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.stop()
    assert server.process.returncode == -9 and not flag.exists()


@pytest.fixture
def prefect_start(monkeypatch):
    """Prefect's own start of its temporary server, recorded instead of run; the instance
    the test offered to is forgotten afterwards."""
    calls: list = []
    monkeypatch.setattr(SubprocessASGIServer, "start", lambda self, timeout=None: calls.append(1))
    yield calls
    instance = SubprocessASGIServer._instances.get(None)
    if instance is not None:
        vars(instance).pop("start", None)
        instance.stop()


@pytest.mark.parametrize("code", [HEALTHY, "import sys; sys.exit(3)"], ids=["answers", "exits"])
def test_offered_server_is_taken_at_prefects_first_api_call_only(no_api_url, prefect_start, code):
    """A command that fails before calling the API (the nightly without a source) does not wait
    for the server; the first API call takes it, or starts Prefect's own when it is unusable."""
    server = _early(code)
    early_server.offer()
    assert not server.adopted and not prefect_start  # nothing waited, nothing started yet
    SubprocessASGIServer().start()  # what Prefect's get_client does without an API URL
    if code == HEALTHY:
        assert server.adopted and SubprocessASGIServer().server_process is server.process
        assert prefect_start == []
    else:
        assert not server.adopted and prefect_start == [1]  # Prefect's own start, as before


def test_while_booting_runs_steps_until_the_server_answers(no_api_url):
    """Work is done while the server boots, one step at a time, and stops as soon as it
    answers: the rest waits for the flow. A failing step is skipped, not raised."""
    server = _early("import time\ntime.sleep(1.5)\n" + HEALTHY)  # boots for 1.5 s, then serves
    ran: list[int] = []

    def step(i: int):
        def run() -> None:
            ran.append(i)
            if i == 1:
                raise RuntimeError("a broken import")
            time.sleep(0.2)

        return run

    try:
        done = early_server.while_booting(step(i) for i in range(100))
        assert done == len(ran) and 3 <= done < 100 and ran == list(range(done))
        assert server.healthy()
        assert early_server.while_booting([step(0)]) == 0  # it answers: nothing more runs here
    finally:
        server.process.kill()
        server.process.wait()


def test_while_booting_runs_nothing_without_a_booting_server(no_api_url):
    ran: list[str] = []
    assert early_server.while_booting([lambda: ran.append("x")]) == 0  # no early server
    server = _early("import sys; sys.exit(0)")
    server.process.wait()
    assert early_server.while_booting([lambda: ran.append("x")]) == 0  # it exited
    assert ran == []


def _heartbeat() -> int | None:
    from prefect.settings import get_current_settings

    return get_current_settings().flows.heartbeat_frequency


def test_runs_on_the_early_server_send_no_heartbeats(no_api_url):
    """Heartbeats only serve a lasting server; on the command's temporary one they would only
    hold up the end of each flow run. Elsewhere Prefect's setting is kept."""
    default = _heartbeat()
    assert default is not None
    with early_server.run_settings():  # no early server
        assert _heartbeat() == default
    server = _early(HEALTHY)
    try:
        with early_server.run_settings():
            assert _heartbeat() is None
        assert _heartbeat() == default
        with (
            temporary_settings(updates={PREFECT_API_URL: "http://127.0.0.1:9/api"}),
            early_server.run_settings(),
        ):
            assert _heartbeat() == default  # Prefect will use that server, not ours
    finally:
        server.process.kill()
        server.process.wait()
