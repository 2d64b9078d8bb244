"""Alerts end to end: a real ``prefect server start``, the automations of deployments.alerts, a
breach event, and the webhook notification arriving at a local HTTP receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from builders import ROOT, run_python, wait_until

CLIENT = """
import sys
from deployments.alerts import ensure_automations
from tasks.alerts import emit_breaches, emit_held
names = ensure_automations(sys.argv[1])
print("created", names, flush=True)
sent = emit_breaches(
    "bati-credit", 7,
    [{"metric": "feature_psi.amount_sum", "value": 1.83, "threshold": 0.25, "level": "act"}],
    kind="stability", as_of="2019-02-14", run_id="test-run",
)
held = emit_held("bati-credit", 8, reason="training inputs differ", champion_version=7,
                 drifted_inputs={"amount_sum": 1.83})
print("sent", sent, held, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
        return r.status == 200


@pytest.mark.e2e
def test_a_breach_event_notifies_the_webhook_through_the_automation(tmp_path: Path) -> None:
    _Receiver.received = []
    receiver = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{receiver.server_address[1]}/alerts"

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_API_URL": api,
        "PREFECT_UI_ENABLED": "false",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "prefect",
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        if not wait_until(lambda: _healthy(api), 150, proc=server):
            raise TimeoutError("prefect server did not start")
        done = run_python("-c", CLIENT, hook, env=env, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "sent 1 True" in done.stdout
        wait_until(lambda: len(_Receiver.received) >= 2, 90)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        receiver.shutdown()
    bodies = {r["subject"]: r["body"] for r in _Receiver.received}
    breach = next(b for s, b in bodies.items() if "monitoring breach" in s)
    assert "feature_psi.amount_sum = 1.83" in breach and "threshold 0.25" in breach
    assert "level act" in breach and "bati-credit v7" in breach
    held = next(b for s, b in bodies.items() if "held" in s)
    assert "v8 held for approval" in held and "training inputs differ" in held
    assert all(r["source"] == "bati" for r in _Receiver.received)
