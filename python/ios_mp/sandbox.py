"""Make a desktop CPython look like CPython on iOS, as far as processes go.

An iOS app cannot create processes: CPython's iOS build has no
``_multiprocessing``, ``_posixshmem`` or ``_posixsubprocess``, its
``Lib/subprocess.py`` sets ``_can_fork_exec = False`` and ``Popen()`` raises
``OSError(errno.ENOTSUP, "ios does not support processes.")``, and PEP 730 says
``os.fork`` and the ``os.spawn*`` calls raise ``OSError`` there. ``enable()``
gives a Linux or macOS interpreter the same limits, so that ios_mp, and code
using it, can be tested on a desktop or in CI; ``disable()`` undoes every change
exactly. This module imports nothing from ios_mp, so it can be enabled before
ios_mp (or anything else) is imported.

What ``enable("ios")`` changes
------------------------------
* ``sys.modules["_multiprocessing"]`` and ``sys.modules["_posixshmem"]`` are set
  to ``None``, so importing them raises ``ModuleNotFoundError`` as on iOS. Entries
  that were there before (already imported modules) are put back by ``disable()``;
  entries that were absent are removed again.
* In ``os``, and in the native module it re-exports (``posix``):

  - ``fork``, ``forkpty``, ``register_at_fork``, ``posix_spawn`` and
    ``posix_spawnp`` are **deleted**, so ``hasattr(os, "fork")`` is False.
    Libraries and CPython's own tests decide with that probe whether to take
    their fork path, and on iOS they must not take it. This is stricter than a
    real iOS build, which (going by CPython's ``configure.ac``) keeps these
    attributes, but where calling one locks up or crashes the app; CPython's
    ``test.support.has_fork_support`` is False on iOS for that reason.
    ``register_at_fork`` goes with ``fork`` because it only exists where fork
    does, and callers guard it with ``hasattr``.
  - ``system`` is **deleted**: a real iOS build has no ``os.system`` at all
    (``configure.ac`` forces ``system`` off on iOS, the SDK forbids it).
  - ``spawnl``, ``spawnle``, ``spawnlp``, ``spawnlpe``, ``spawnv``, ``spawnve``,
    ``spawnvp``, ``spawnvpe``, ``execv``, ``execve``, ``execl``, ``execle``,
    ``execlp``, ``execlpe``, ``execvp`` and ``execvpe`` are **replaced** by stubs
    that raise ``OSError(errno.ENOTSUP, "ios does not support processes.")``.
    They exist on iOS (``fork`` and ``execv`` are there, so ``os.py`` defines
    them) and PEP 730 says they raise ``OSError``; a stub also stops
    ``os.py``'s ``spawn*`` wrappers from failing with ``NameError`` on the
    deleted ``fork``.
  - ``popen`` is **left alone**: it runs ``subprocess.Popen``, patched below, so
    it raises the iOS error exactly as ``os.popen`` does on iOS (after its own
    argument checks).
  - The deleted names are also taken out of ``os.__all__``, so that
    ``from os import *`` keeps working.
* ``subprocess``: ``_can_fork_exec`` is set to False where it exists (3.11+),
  ``Popen.__init__`` raises the iOS error first thing, as the iOS build's does
  (after checking the call's arguments, so a bad call is still a ``TypeError``),
  and ``Popen._execute_child`` raises it too. ``run``, ``call``,
  ``check_call``, ``check_output``, ``getoutput`` and asyncio's subprocess
  functions all go through ``Popen``. No pipe is opened before the error, and
  the half-built ``Popen`` is collected without a ``ResourceWarning``.
* ``_posixsubprocess.fork_exec`` (and ``subprocess._fork_exec``, its alias on
  3.11+) raises the iOS error. ``_posixsubprocess`` itself stays importable:
  desktop ``subprocess`` imports it unconditionally before 3.13.
* The stdlib ``multiprocessing`` package is not touched, imported or not.

What differs from a real iOS build
----------------------------------
* ``sys.platform`` is still ``"linux"``/``"darwin"``, so checks on it (such as
  ``test.support.has_subprocess_support``) still see a desktop.
* ``os.fork`` and friends are absent here but present (and fatal) on iOS, see
  above; ``_posixsubprocess`` is importable here but missing on iOS.
* Importing ``_multiprocessing`` fails with "import of _multiprocessing halted;
  None in sys.modules" rather than "No module named '_multiprocessing'" (both
  are ``ModuleNotFoundError``). Modules that imported it before ``enable()``
  keep their reference.
* Only Python-level entry points are covered: C code, or ``ctypes`` calling
  libc's ``fork()``, can still create processes. The sandbox is a test aid, not
  a security boundary.
* Only process creation and ``_multiprocessing``/``_posixshmem`` are emulated
  for now. Future work: the other modules missing on iOS (``pwd``, ``grp``,
  ``readline``, ``curses``, ``syslog``, ``_gdbm``, ``nis``, ``spwd``,
  ``_tkinter``) and the limits on inter-process sockets.

``enable()`` and ``disable()`` change process-wide state: they are serialized by
a lock, but should not run while other threads are starting processes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from typing import Any, Iterator

__all__ = [
    "DELETED_OS_FUNCTIONS",
    "KINDS",
    "RAISING_OS_FUNCTIONS",
    "disable",
    "enable",
    "is_enabled",
    "sandboxed",
]

#: The sandbox kinds ``enable()`` accepts.
KINDS = ("ios",)

#: Deleted from ``os`` (and ``posix``): probes with ``hasattr`` see no fork support.
DELETED_OS_FUNCTIONS = (
    "fork",
    "forkpty",
    "register_at_fork",
    "posix_spawn",
    "posix_spawnp",
    "system",
)

#: Replaced in ``os`` (and ``posix``) by stubs raising ``OSError(ENOTSUP)``.
RAISING_OS_FUNCTIONS = (
    "spawnl",
    "spawnle",
    "spawnlp",
    "spawnlpe",
    "spawnv",
    "spawnve",
    "spawnvp",
    "spawnvpe",
    "execv",
    "execve",
    "execl",
    "execle",
    "execlp",
    "execlpe",
    "execvp",
    "execvpe",
)

# The extension modules the iOS build does not have.
_BLOCKED_MODULES = ("_multiprocessing", "_posixshmem")

# The exact message of CPython's iOS build (f"{sys.platform} does not support processes.").
_MESSAGE = "ios does not support processes."

_MISSING = object()  # marks "was not there" in the undo log
_lock = threading.RLock()
# While enabled: the undo log, a list of (target, name, previous value), oldest first.
# A target is a dict (sys.modules) or an object whose own attribute was changed.
_undo: list[tuple[Any, str, Any]] | None = None


def _error() -> OSError:
    return OSError(errno.ENOTSUP, _MESSAGE)


def _make_stub(name: str, original: Any) -> Any:
    """Return a function named like *original* that raises the iOS error."""

    def stub(*args: Any, **kwargs: Any) -> Any:
        raise _error()

    stub.__name__ = name
    stub.__qualname__ = getattr(original, "__qualname__", name)
    stub.__module__ = getattr(original, "__module__", None) or stub.__module__
    stub.__doc__ = f"Disabled by ios_mp.sandbox: raises OSError(ENOTSUP, {_MESSAGE!r})."
    stub._ios_mp_sandbox = True  # lets tests check a stub is in place before calling it
    return stub


def _make_popen_init(original: Any) -> Any:
    import inspect

    signature = inspect.signature(original)

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        # Like the iOS build's Popen.__init__: a call with bad arguments is still a
        # TypeError, any other raises before a pipe is opened. `_child_created`
        # stays False (a class attribute), so __del__ is silent.
        signature.bind(self, *args, **kwargs)
        raise _error()

    __init__.__qualname__ = getattr(original, "__qualname__", "Popen.__init__")
    __init__.__module__ = original.__module__
    __init__.__doc__ = original.__doc__
    __init__._ios_mp_sandbox = True
    return __init__


def _own(target: Any, name: str) -> Any:
    """The value stored under *name* in *target* itself (not inherited), or _MISSING."""
    if isinstance(target, dict):
        return target.get(name, _MISSING)
    return vars(target).get(name, _MISSING)


def _put(target: Any, name: str, value: Any) -> None:
    """Store *value* under *name* in *target*; _MISSING removes the entry."""
    if isinstance(target, dict):
        if value is _MISSING:
            target.pop(name, None)
        else:
            target[name] = value
    elif value is _MISSING:
        if name in vars(target):
            delattr(target, name)
    else:
        setattr(target, name, value)


def _change(undo: list[tuple[Any, str, Any]], target: Any, name: str, value: Any) -> None:
    undo.append((target, name, _own(target, name)))
    _put(target, name, value)


def _restore(undo: list[tuple[Any, str, Any]]) -> None:
    # Newest first, so a name changed twice ends up with its first saved value.
    for target, name, previous in reversed(undo):
        _put(target, name, previous)


def _patch_ios(undo: list[tuple[Any, str, Any]]) -> None:
    # Import subprocess while os is still whole: it inspects os at import time.
    import subprocess

    try:
        import _posixsubprocess
    except ImportError:  # Windows
        _posixsubprocess = None

    for name in _BLOCKED_MODULES:
        _change(undo, sys.modules, name, None)

    # os re-exports the native module (posix, or nt on Windows): treat both alike,
    # sharing one stub per name so that `os.execv is posix.execv` stays true.
    native = sys.modules.get(os.name)
    modules = [os] if native is None else [os, native]
    stubs: dict[str, Any] = {}
    for module in modules:
        for name in DELETED_OS_FUNCTIONS:
            if _own(module, name) is not _MISSING:
                _change(undo, module, name, _MISSING)
        for name in RAISING_OS_FUNCTIONS:
            original = _own(module, name)
            if original is not _MISSING:
                stub = stubs.setdefault(name, _make_stub(name, original))
                _change(undo, module, name, stub)
    exported = getattr(os, "__all__", None)
    if exported is not None:
        # A new list: disable() puts the original list object back.
        os.__all__ = [n for n in exported if n not in DELETED_OS_FUNCTIONS]
        undo.append((os, "__all__", exported))

    if _own(subprocess, "_can_fork_exec") is not _MISSING:
        _change(undo, subprocess, "_can_fork_exec", False)
    popen = subprocess.Popen
    _change(undo, popen, "__init__", _make_popen_init(popen.__init__))
    if _own(popen, "_execute_child") is not _MISSING:
        _change(undo, popen, "_execute_child", _make_stub("_execute_child", popen._execute_child))
    if _posixsubprocess is not None:
        fork_exec = _posixsubprocess.fork_exec
        stub = _make_stub("fork_exec", fork_exec)
        _change(undo, _posixsubprocess, "fork_exec", stub)
        if _own(subprocess, "_fork_exec") is fork_exec:
            _change(undo, subprocess, "_fork_exec", stub)


def enable(kind: str = "ios") -> None:
    """Turn the sandbox on; does nothing if it is already on.

    *kind* names the platform to imitate; only ``"ios"`` exists.
    """
    if kind not in KINDS:
        allowed = ", ".join(repr(k) for k in KINDS)
        raise ValueError(f"invalid sandbox kind {kind!r}: kind must be one of {allowed}")
    global _undo
    with _lock:
        if _undo is not None:
            return
        undo: list[tuple[Any, str, Any]] = []
        try:
            _patch_ios(undo)
        except BaseException:
            _restore(undo)  # never leave a half-made sandbox behind
            raise
        _undo = undo


def disable() -> None:
    """Turn the sandbox off, restoring everything ``enable()`` changed; idempotent."""
    global _undo
    with _lock:
        if _undo is None:
            return
        undo, _undo = _undo, None
        _restore(undo)


def is_enabled() -> bool:
    """Whether the sandbox is on."""
    return _undo is not None


@contextlib.contextmanager
def sandboxed(kind: str = "ios") -> Iterator[None]:
    """Run a block with the sandbox on, then put back the state found on entry.

    If the sandbox was already on, it stays on after the block.
    """
    was_enabled = is_enabled()
    enable(kind)
    try:
        yield
    finally:
        if not was_enabled:
            disable()
