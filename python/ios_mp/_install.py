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
import importlib.abc
import importlib.util
import sys
import warnings

__all__: list[str] = ["install", "is_installed", "uninstall"]

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


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """``import multiprocessing.<name>`` of an ios_mp module that is not in
    ``SUBMODULES`` (a private one, say) while installed: the ios_mp module itself,
    never a second copy of it (stdlib's tests import every ``*.py`` of the
    package directory by its ``multiprocessing.`` name)."""

    def __init__(self, package: str) -> None:
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        prefix = "multiprocessing."
        if not fullname.startswith(prefix) or "." in fullname[len(prefix) :]:
            return None
        real = f"{self.package}.{fullname[len(prefix) :]}"
        if importlib.util.find_spec(real) is None:
            return None
        return importlib.util.spec_from_loader(fullname, self, origin=real)

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        # importlib returns what sys.modules holds after exec_module.
        sys.modules[module.__name__] = importlib.import_module(module.__spec__.origin)


_alias: _Alias | None = None


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
    global _alias
    _alias = _Alias(package.__name__)
    sys.meta_path.insert(0, _alias)
    from . import _futures, _virtual

    _virtual.install()
    _futures.install()
    _saved = saved


def uninstall() -> None:
    """Restore the ``sys.modules`` entries that ``install()`` replaced."""
    global _saved
    if _saved is None:
        return
    global _alias
    if _alias is not None:
        sys.meta_path.remove(_alias)
        package = _alias.package
        _alias = None
        for name in [k for k in sys.modules if k.startswith("multiprocessing.")]:
            if name not in _saved and sys.modules[name].__name__.startswith(package + "."):
                del sys.modules[name]  # an alias made by _Alias
    for name, mod in _saved.items():
        if mod is _MISSING:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = mod  # type: ignore[assignment]
    from . import _futures, _virtual

    _futures.uninstall()
    _virtual.uninstall()
    _saved = None
