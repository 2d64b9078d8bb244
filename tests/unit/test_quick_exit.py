"""A finished flow command ends right after its exit handlers, losing nothing on the way."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from credit.paths import PROJECT_ROOT

SCRIPT = textwrap.dedent(
    """
    import atexit, logging, logging.handlers, pathlib, sys, tempfile

    # made before install(): logging's and weakref.finalize's exit hooks come before its own,
    # so they would run after it
    temporary = tempfile.TemporaryDirectory()  # removed by a weakref.finalize at exit
    from tasks import quick_exit

    quick_exit.install()
    out = pathlib.Path(sys.argv[1])
    (out / "tmp").write_text(temporary.name)
    handler = logging.handlers.MemoryHandler(100, target=logging.FileHandler(out / "log.txt"))
    logging.getLogger("t").addHandler(handler)
    logging.getLogger("t").warning("the last log line")  # buffered until logging.shutdown
    atexit.register(lambda: (out / "handler").write_text("ran"))
    class Noisy:  # its teardown message proves the interpreter finalized
        def __del__(self):
            print("finalized", file=sys.stderr)
    keep = Noisy()
    print('{"ok": true}', end="")  # the JSON contract, still in the stdout buffer
    if sys.argv[2] == "finish":
        quick_exit.finish(3)
    if sys.argv[2] == "raise":
        raise RuntimeError("boom")
    sys.exit(4)
    """
)


def _run(tmp_path: Path, how: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), how],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_finish_keeps_the_output_handlers_and_finalizers_and_skips_the_teardown(tmp_path):
    done = _run(tmp_path, "finish")
    assert done.returncode == 3
    assert done.stdout == '{"ok": true}'
    assert (tmp_path / "log.txt").read_text().strip() == "the last log line"
    assert (tmp_path / "handler").read_text() == "ran"
    assert not Path((tmp_path / "tmp").read_text()).exists()  # the temporary directory is gone
    assert "finalized" not in done.stderr  # no teardown of the heap after the handlers


def test_without_finish_the_interpreter_exits_as_usual(tmp_path):
    done = _run(tmp_path, "exit")
    assert done.returncode == 4 and done.stdout == '{"ok": true}'
    assert "finalized" in done.stderr
    failed = _run(tmp_path, "raise")
    assert failed.returncode == 1 and "RuntimeError: boom" in failed.stderr
    assert (tmp_path / "handler").read_text() == "ran"
