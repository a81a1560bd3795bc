"""Installing ios_mp as ``multiprocessing`` (and every submodule) in ``sys.modules``.

``install()`` is idempotent and ``uninstall()`` restores exactly what was there.

If the stdlib ``multiprocessing`` was imported before ``install()``, what was
bound then keeps pointing at it: a module object held as ``import
multiprocessing`` (``multiprocessing.Queue()`` through it is stdlib's) and names
taken with ``from multiprocessing import Queue``. Nothing can rebind those
references, so ``install()`` warns (``IosMpImportOrderWarning``); every import
made after it gets ios_mp. Import ``ios_mp`` first to avoid this.

``_multiprocessing`` and ``_posixshmem`` are left alone: they are absent on iOS,
libraries such as joblib use their absence to pick a thread backend, and ios_mp
never needs them.
"""

from __future__ import annotations

import importlib
import sys
import warnings

SUBMODULES = (
    "context",
    "process",
    "queues",
    "synchronize",
    "connection",
    "managers",
    "pool",
    "sharedctypes",
    "shared_memory",
    "heap",
    "util",
    "reduction",
    "resource_tracker",
    "resource_sharer",
    "spawn",
    "forkserver",
    "popen_fork",
    "popen_spawn_posix",
    "popen_forkserver",
    "dummy",
    "dummy.connection",
)

_MISSING = object()
_saved: dict[str, object] | None = None


class IosMpImportOrderWarning(RuntimeWarning):
    """``multiprocessing`` was imported before ios_mp was installed."""


def _ours(package) -> dict[str, object]:
    mods = {"multiprocessing": package}
    for sub in SUBMODULES:
        mods["multiprocessing." + sub] = importlib.import_module(f"{package.__name__}.{sub}")
    return mods


def is_installed() -> bool:
    return _saved is not None


def install() -> None:
    """Make ``import multiprocessing`` (and its submodules) return ios_mp."""
    global _saved
    if _saved is not None:
        return
    package = sys.modules[__name__.rpartition(".")[0]]
    ours = _ours(package)
    previous = {
        k: v
        for k, v in sys.modules.items()
        if k == "multiprocessing" or k.startswith("multiprocessing.")
    }
    stdlib = previous.get("multiprocessing")
    if stdlib is not None and stdlib is not package:
        warnings.warn(
            "multiprocessing was imported before ios_mp: references bound earlier "
            "('import multiprocessing' module objects, 'from multiprocessing import X' "
            "names) still use the stdlib, which cannot start processes on iOS. "
            "Import ios_mp first.",
            IosMpImportOrderWarning,
            stacklevel=3,
        )
    saved: dict[str, object] = {name: previous.get(name, _MISSING) for name in ours}
    # stdlib submodules ios_mp does not shadow (e.g. popen_spawn_win32) are
    # removed too, so nothing half-stdlib stays reachable by import.
    for name, mod in previous.items():
        if name not in ours:
            saved[name] = mod
            del sys.modules[name]
    sys.modules.update(ours)
    from . import _futures, _virtual, process

    process._patch_threading()
    _virtual.install()
    _futures.install()
    _saved = saved


def uninstall() -> None:
    """Restore the ``sys.modules`` entries that ``install()`` replaced."""
    global _saved
    if _saved is None:
        return
    for name, mod in _saved.items():
        if mod is _MISSING:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = mod  # type: ignore[assignment]
    from . import _futures, _virtual, process

    _futures.uninstall()
    _virtual.uninstall()
    process._unpatch_threading()
    _saved = None
