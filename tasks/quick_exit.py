"""End a finished flow command without the interpreter's teardown.

After a retrain, the process holds pandas frames, fitted models, matplotlib, Prefect and
SQLAlchemy state. Python's finalization (module teardown and garbage collection of all of it)
then takes about 1.4 s on this 2-core machine, after every exit handler has run and the result
was printed: nothing observable happens in it. :func:`install` registers an exit handler first,
so it runs last; when the command recorded its exit code through :func:`finish`, that handler
closes what the skipped teardown would have closed (logging handlers, ``weakref.finalize``
callbacks such as temporary directories, the standard streams) and ends the process with
``os._exit``. A command that did not record a code (an uncaught exception, a Ctrl-C) exits the
usual way. Only the standard library is imported: :func:`install` runs before any import.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from typing import NoReturn

_code: int | None = None
_installed = False


def install() -> None:
    """Register the last exit handler; call it at the top of ``__main__``, before imports."""
    global _installed
    if not _installed:
        atexit.register(_exit)
        _installed = True


def finish(code: int | None) -> NoReturn:
    """``sys.exit(code)``, the process then ending right after the exit handlers."""
    global _code
    _code = 0 if code is None else int(code)
    sys.exit(code)


def _exit() -> None:
    if _code is None:
        return
    import logging
    import weakref

    weakref.finalize._exitfunc()  # type: ignore[attr-defined]  # their hook may follow this one
    logging.shutdown()  # flushes and closes every handler (registered before this hook)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(_code)
