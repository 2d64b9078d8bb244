"""Serialising models with skops and loading them only after checksum and type checks.

Loading order: sha256 of the stored bytes must equal the registered digest
(:class:`ArtifactTampered` otherwise); every type the skops file would instantiate beyond
skops' own safe defaults must sit under a trusted module prefix and not be a known dangerous
callable (:class:`ArtifactRefused` otherwise); only then is anything constructed. Nothing is
ever unpickled.
"""

from __future__ import annotations

import gc
import hashlib
import io
import threading
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from registry.errors import ArtifactRefused, ArtifactTampered, RegistryError

ARTIFACT_FORMAT = "skops"

#: Module prefixes whose types may be constructed from an artifact (``credit.`` = our code).
DEFAULT_TRUSTED_PREFIXES: tuple[str, ...] = (
    "sklearn.",
    "numpy.",
    "scipy.",
    "builtins.",
    "collections.",
    "credit.",
)
#: Callables refused even under a trusted prefix: they execute code or touch files/processes.
DENIED_NAMES = frozenset(
    {
        "eval",
        "exec",
        "compile",
        "open",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "input",
        "breakpoint",
        "exit",
        "quit",
        "help",
        "system",
        "popen",
        "load",
        "loads",
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "loadtxt",
        "genfromtxt",
        "fromfile",
        "tofile",
        "memmap",
        "fromregex",
    }
)


def serialise(model: object) -> bytes:
    """The skops bytes of ``model`` (no pickle); :class:`RegistryError` if skops cannot.

    Importing skops names every SciPy ufunc by scanning ``sys.modules`` in import order up to
    the first module that holds it, so its cost depends on what came before ``scipy.special``:
    1.0 s after the retrain's imports, 0.55 s when ``scipy.special`` was imported first, as
    the flow commands do (``python -m flows.retrain`` and its peers, before their imports)."""
    import skops.io as sio  # lazy: importing skops pulls in scikit-learn

    try:
        return sio.dumps(model)
    except Exception as exc:  # skops raises TypeError/NotImplementedError/... per type
        raise RegistryError(f"cannot serialise {type(model).__name__} with skops: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Hex sha256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def refused_types(types: Iterable[str], trusted_prefixes: Iterable[str]) -> list[str]:
    """The subset of ``types`` the trust policy rejects (outside the prefixes or denied)."""
    prefixes = tuple(trusted_prefixes)
    bad = []
    for name in types:
        last = name.rsplit(".", 1)[-1]
        if not name.startswith(prefixes) or last in DENIED_NAMES:
            bad.append(name)
    return sorted(bad)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building a large object graph (about 30 % faster)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_checked(data: bytes, trusted_prefixes: tuple[str, ...], label: str) -> Any:
    """Audit then construct, building skops' node tree only once when possible."""
    import skops.io as sio

    try:
        from skops.io._audit import get_tree
        from skops.io._utils import read_schema
    except ImportError:  # pragma: no cover - older skops: public (slower, two-pass) path
        untrusted = sio.get_untrusted_types(data=data)
        _refuse(refused_types(untrusted, trusted_prefixes), label)
        with _gc_paused():
            return sio.loads(data, trusted=untrusted)

    with zipfile.ZipFile(io.BytesIO(data), "r") as zf:
        schema, load_context = read_schema(zf)
        tree = get_tree(schema, load_context, trusted=None)
        # Types beyond skops' default-trusted set, exactly what get_untrusted_types() lists.
        _refuse(refused_types(tree.get_unsafe_set(), trusted_prefixes), label)
        with _gc_paused():
            return tree.construct()


def _refuse(bad: list[str], label: str) -> None:
    if bad:
        raise ArtifactRefused(
            f"artifact of {label} refused: it would instantiate untrusted types {bad}; "
            "only types under the trusted prefixes may be loaded"
        )


def load_artifact(
    data: bytes,
    *,
    expected_sha256: str,
    trusted_prefixes: Iterable[str] = DEFAULT_TRUSTED_PREFIXES,
    label: str = "artifact",
) -> Any:
    """Verify ``data`` against ``expected_sha256``, audit its types, then deserialise it."""
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise ArtifactTampered(
            f"artifact of {label} failed its integrity check: sha256 {actual[:16]}... "
            f"!= registered {expected_sha256[:16]}...; refusing to load it"
        )
    try:
        return _load_checked(data, tuple(trusted_prefixes), label)
    except RegistryError:
        raise
    except Exception as exc:  # corrupt zip/schema written at registration time
        raise RegistryError(f"artifact of {label} cannot be deserialised: {exc}") from exc


class ModelCache:
    """Small thread-safe LRU of deserialised models keyed by (version id, sha256)."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[tuple[int, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[int, str]) -> Any | None:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: tuple[int, str], model: Any) -> None:
        if self.maxsize <= 0:
            return
        with self._lock:
            self._items[key] = model
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)
