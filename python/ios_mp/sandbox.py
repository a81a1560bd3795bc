"""Make a desktop CPython look like CPython inside an iOS app, as far as it can.

``enable("ios")`` gives a Linux or macOS interpreter the limits of CPython's iOS
build, so that ios_mp, and code using it, can be tested on a desktop or in CI;
``disable()`` undoes every change exactly. This module imports nothing from
ios_mp, so it can be enabled before ios_mp (or anything else) is imported.
docs/ios-sandbox.md has the table of what is emulated, with sources, and of
what cannot be emulated on a desktop.

What ``enable("ios")`` changes
------------------------------
Always:

* **Modules iOS lacks.** ``sys.modules[name]`` is set to ``None`` for every
  module CPython's ``configure.ac`` marks n/a on iOS (``NA_MODULES``:
  ``_curses``, ``_curses_panel``, ``_gdbm``, ``_multiprocessing``,
  ``_posixshmem``, ``_posixsubprocess``, ``_scproxy``, ``_tkinter``, ``grp``,
  ``nis``, ``pwd``, ``readline``, ``spwd``, ``syslog``), so importing one raises
  ``ModuleNotFoundError`` and ``importlib.util.find_spec()`` returns ``None``, as
  on iOS. The pure-Python packages that cannot be imported without them
  (``DEPENDENT_MODULES``: ``curses``, ``dbm.gnu``, ``tkinter``, ``turtle`` and
  their submodules) are hidden the same way if they were already imported (if
  not, their import fails by itself). ``disable()`` puts back entries that were
  there and removes the others.
* **Names bound to ``pwd``/``grp`` before enable().** The stdlib modules that
  bind them at import (``shutil`` on 3.9, ``tarfile``, ``subprocess`` on 3.9,
  ``distutils.archive_util``, ``pathlib._local`` on 3.13+; all in ``try:
  import pwd / except ImportError: pwd = None`` form) get the ``None`` their
  ``except`` branch gives on iOS. ``pathlib.Path.owner()``/``group()``, defined
  on 3.13+ only when ``pwd``/``grp`` imported, are taken off ``Path`` so that they
  raise ``pathlib.UnsupportedOperation`` as on iOS (3.9-3.12 import ``pwd``
  lazily and raise ``NotImplementedError`` by themselves). The other lazy users
  follow from the blocked import: ``getpass.getuser()`` with no user variable set
  raises ``OSError`` on 3.13+ and ``ModuleNotFoundError`` before;
  ``os.path.expanduser("~")`` uses ``HOME`` (kept); ``~user`` is returned
  unchanged on 3.11+ and raises ``ModuleNotFoundError`` on 3.9/3.10.
* **Processes.** In ``os`` and the native module it re-exports (``posix``):

  - ``fork``, ``forkpty``, ``posix_spawn`` and ``posix_spawnp`` are
    **deleted**, and taken out of ``os.__all__``, so ``hasattr(os, "fork")`` is
    False. Libraries and CPython's own tests decide with that probe whether to
    take their fork path. This is stricter than a real iOS build, which (going
    by ``configure.ac``) keeps them, where calling one locks up or crashes the
    app (``test.support.has_fork_support`` is False on iOS for that reason).
    ``register_at_fork`` is kept, as on iOS: it only registers callbacks
    (ansible-core 2.19 warns at startup without it).
  - ``system``, ``getgroups`` and ``pipe2`` are **deleted** too: ``configure.ac``
    forces them off on iOS ("can be linked, but either raise a compilation
    error ... or raise an error if used at runtime"), so a real iOS build has
    none of them. ``DELETED_OS_FUNCTIONS`` lists all seven.
  - the ``spawn*`` and ``exec*`` functions (``RAISING_OS_FUNCTIONS``) are
    **replaced** by stubs that raise ``OSError(errno.ENOTSUP, "ios does not
    support processes.")``, the error of CPython's iOS ``subprocess``; PEP 730
    says they raise ``OSError``. ``os.popen`` is left alone: it runs
    ``subprocess.Popen``, patched below.
  - ``subprocess`` is imported first (a desktop ``subprocess`` imports
    ``_posixsubprocess`` unconditionally before 3.13, and on 3.13 whenever
    ``sys.platform`` is not a mobile one), then: ``_can_fork_exec`` is set to
    False where it exists (3.11+); ``Popen.__init__`` checks its arguments (a bad
    call is still a ``TypeError``) and raises the iOS error before opening any
    pipe; ``Popen._execute_child`` and ``_posixsubprocess.fork_exec`` (also
    ``subprocess._fork_exec``) raise it too. ``run``, ``call``,
    ``check_output``, ``getoutput``, ``os.popen`` and asyncio's subprocess
    functions all end there.
  - on a macOS host, ``urllib.request`` is imported before ``_scproxy`` is
    blocked: a desktop macOS ``urllib.request`` imports it unconditionally
    (``sys.platform == "darwin"``), an iOS one does not.
* **Environment.** ``LOGNAME``, ``USER``, ``LNAME`` and ``USERNAME``
  (``USER_VARIABLES``, the names ``getpass.getuser()`` tries) are removed from
  ``os.environ``, as in an app whose environment has no user name; with
  ``user="mobile"``, ``USER`` and ``LOGNAME`` are set to it instead (what a
  debugger dump of a real app shows) and the other two removed. ``HOME``,
  ``TMPDIR`` and ``PATH`` are kept (an app has them, with other values).

On request (keyword arguments of ``enable()``):

* ``stdin="keep"|"devnull"|"none"``: "mobile apps have no usable stdin at all".
  ``"devnull"`` points descriptor 0 at ``/dev/null`` (``dup2``; the original is
  put back by ``disable()``), so ``sys.stdin`` and C code read end of file and
  ``input()`` raises ``EOFError``, as in an app launched from the home screen.
  ``"none"`` sets ``sys.stdin`` to ``None``, as CPython does when descriptor 0
  is closed at startup (``input()`` raises ``RuntimeError``). ``"keep"`` (the
  default) leaves it: pytest's capture already gives a stdin that cannot be
  read, and ``--pdb`` needs the real one.
* ``stdio="keep"|"log"``: with ``"log"``, ``sys.stdout`` and ``sys.stderr``
  become ``LogStream`` objects, as ``Lib/_apple_support.py`` installs on iOS:
  line-buffered UTF-8 text streams over a raw stream without a descriptor
  (``fileno()`` raises ``io.UnsupportedOperation``, ``isatty()`` is False), each
  line (also each flushed partial line) one message to a log sink,
  ``log(stream_name, message)`` with ``stream_name`` ``"stdout"`` or
  ``"stderr"`` and the line ending removed. The default sink writes each
  message and a newline to (a duplicate, taken at ``enable()``, of) descriptor
  1 or 2. ``sys.__stdout__``/``__stderr__`` are not changed.
  The default ``"keep"`` leaves the streams to pytest's capture.
* ``platform=True``: ``sys.platform`` is ``"ios"``, ``platform.system()`` is
  ``"iOS"`` and ``platform.release()`` ``IOS_RELEASE`` (PEP 730's minimum
  iOS version; ``platform.uname()``'s cache is replaced), and
  ``platform.ios_ver()`` (3.13+) returns ``("iOS", IOS_RELEASE, "iPhone",
  False)`` instead of asking the Objective-C runtime. Off by default, because
  what branches on ``sys.platform`` at import time keeps what it saw, and what
  is imported while it is on takes iOS-only paths that need iOS itself
  (3.13's ``webbrowser`` and ``_ios_support`` load the Objective-C runtime with
  ``ctypes`` and fail to import; ``ctypes.util.find_library()`` searches like
  macOS; ``sysconfig`` looks for iOS build data it cannot find; ``test.support``
  says no subprocess support). docs/ios-sandbox.md lists what was checked.

What differs from a real iOS build
----------------------------------
* ``os.fork``, ``forkpty`` and the ``posix_spawn`` calls are absent here but
  present (and fatal) on iOS, see above.
* Importing a blocked module fails with "import of pwd halted; None in
  sys.modules" rather than "No module named 'pwd'" (both are
  ``ModuleNotFoundError``); ``sys.stdlib_module_names`` and
  ``sys.builtin_module_names`` still list them. Modules that imported a blocked
  module before ``enable()`` keep their reference, except the stdlib bindings
  of ``pwd``/``grp`` listed above (pytest imports ``readline`` early, for
  example). Modules first imported while the sandbox is on keep what they saw
  after ``disable()`` (a ``tarfile`` imported in the sandbox has ``pwd = None``
  for good).
* Importing ``subprocess`` afresh (after deleting it from ``sys.modules``) fails
  while the sandbox is on, because the desktop ``subprocess`` needs
  ``_posixsubprocess``.
* Without ``platform=True``, ``sys.platform`` is still ``"linux"``/``"darwin"``
  (``test.support.has_subprocess_support`` and such still see a desktop); with
  it, ``os.uname()``, ``sysconfig.get_platform()`` and
  ``sys.implementation._multiarch`` still describe the desktop.
* Only Python-level entry points are covered: C code, or ``ctypes`` calling
  libc's ``fork()``, can still create processes. The sandbox is a test aid, not
  a security boundary. Code signing, the read-only app bundle, memory limits
  and suspension in the background cannot be emulated (see the docs).

``enable()`` and ``disable()`` change process-wide state: they are serialized by
a lock, but should not run while other threads are starting processes, writing
to the standard streams or reading the environment.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import threading
from collections.abc import MutableMapping
from typing import Any, Callable, Iterator

try:  # the real descriptor calls, whatever wraps os.dup2 & co. for workers
    import posix as _fd
except ImportError:  # pragma: no cover - not POSIX
    _fd = os  # type: ignore[assignment]

__all__ = [
    "DELETED_OS_FUNCTIONS",
    "DEPENDENT_MODULES",
    "IOS_RELEASE",
    "KINDS",
    "NA_MODULES",
    "RAISING_OS_FUNCTIONS",
    "STDIN_MODES",
    "STDIO_MODES",
    "USER_VARIABLES",
    "LogStream",
    "disable",
    "enable",
    "is_enabled",
    "options",
    "sandboxed",
]

#: The sandbox kinds ``enable()`` accepts.
KINDS = ("ios",)

#: Modules CPython's ``configure.ac`` marks n/a on iOS (``PY_STDLIB_MOD_SET_NA``).
NA_MODULES = (
    "_curses",
    "_curses_panel",
    "_gdbm",
    "_multiprocessing",
    "_posixshmem",
    "_posixsubprocess",
    "_scproxy",
    "_tkinter",
    "grp",
    "nis",
    "pwd",
    "readline",
    "spwd",
    "syslog",
)

#: Pure-Python stdlib packages that cannot be imported without an n/a module;
#: hidden (with their submodules) if they were imported before ``enable()``.
DEPENDENT_MODULES = ("curses", "dbm.gnu", "tkinter", "turtle")

#: Removed from ``os.environ``: the names ``getpass.getuser()`` tries, in its order.
USER_VARIABLES = ("LOGNAME", "USER", "LNAME", "USERNAME")

#: Values of ``enable(stdin=...)`` and ``enable(stdio=...)``.
STDIN_MODES = ("keep", "devnull", "none")
STDIO_MODES = ("keep", "log")

#: The iOS version ``platform=True`` reports: PEP 730's minimum.
IOS_RELEASE = "13.0"

#: Deleted from ``os`` (and ``posix``): probes with ``hasattr`` see no fork support, and
#: the functions ``configure.ac`` forces off on iOS are absent.
DELETED_OS_FUNCTIONS = (
    "fork",
    "forkpty",
    "posix_spawn",
    "posix_spawnp",
    "system",
    "getgroups",
    "pipe2",
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

# (module, attribute, source): stdlib names bound to pwd/grp (or one of their
# functions) at import time, each with an `except ImportError: <name> = None`.
_BINDINGS = (
    ("shutil", "getpwnam", "pwd"),  # 3.9
    ("shutil", "getgrnam", "grp"),
    ("subprocess", "pwd", "pwd"),  # 3.9
    ("subprocess", "grp", "grp"),
    ("tarfile", "pwd", "pwd"),
    ("tarfile", "grp", "grp"),
    ("distutils.archive_util", "getpwnam", "pwd"),  # 3.9-3.11
    ("distutils.archive_util", "getgrnam", "grp"),
    ("pathlib._local", "pwd", "pwd"),  # 3.13
    ("pathlib._local", "grp", "grp"),
    ("pathlib", "pwd", "pwd"),  # later layouts
    ("pathlib", "grp", "grp"),
)
# Path methods defined only when the module named second imported (3.13+).
_PATH_METHODS = (("owner", "pwd"), ("group", "grp"))

# The exact message of CPython's iOS build (f"{sys.platform} does not support processes.").
_MESSAGE = "ios does not support processes."

#: A log sink: ``log(stream_name, message)``.
LogSink = Callable[[str, str], None]

_MISSING = object()  # marks "was not there" in the undo log
_CALL = object()  # undo-log target of an entry whose third item is a function to call
_lock = threading.RLock()
# While enabled: the undo log, a list of (target, name, previous value), oldest first.
# A target is a mapping (sys.modules, os.environ), an object whose own attribute
# was changed, or _CALL.
_undo: list[tuple[Any, str, Any]] | None = None
_options: dict[str, Any] | None = None


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
    if isinstance(target, MutableMapping):
        return target.get(name, _MISSING)
    return vars(target).get(name, _MISSING)


def _put(target: Any, name: str, value: Any) -> None:
    """Store *value* under *name* in *target*; _MISSING removes the entry."""
    if isinstance(target, MutableMapping):
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


def _on_undo(undo: list[tuple[Any, str, Any]], function: Callable[[], None]) -> None:
    undo.append((_CALL, "", function))


def _restore(undo: list[tuple[Any, str, Any]]) -> None:
    # Newest first, so a name changed twice ends up with its first saved value.
    # Every step runs; the first failure is raised at the end.
    failure: BaseException | None = None
    for target, name, previous in reversed(undo):
        try:
            if target is _CALL:
                previous()
            else:
                _put(target, name, previous)
        except BaseException as exc:
            if failure is None:
                failure = exc
    if failure is not None:
        raise failure


# --- processes ----------------------------------------------------------------


def _patch_processes(undo: list[tuple[Any, str, Any]]) -> None:
    # Import subprocess while os is still whole: it inspects os at import time,
    # and a desktop subprocess needs _posixsubprocess, blocked below.
    import subprocess

    try:
        import _posixsubprocess
    except ImportError:  # Windows
        _posixsubprocess = None

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

    if sys.platform == "darwin":
        with contextlib.suppress(ImportError):
            import urllib.request  # noqa: F401 - needs _scproxy on a macOS desktop


# --- modules ------------------------------------------------------------------


def _is_dependent(name: str) -> bool:
    return any(name == d or name.startswith(d + ".") for d in DEPENDENT_MODULES)


def _belongs_to(value: Any, module: Any, name: str) -> bool:
    """Whether *value* is *module* or its attribute *name* (a name bound from it)."""
    return value is module or (value is not _MISSING and value is getattr(module, name, None))


def _unsupported(module: Any, method: str) -> Any:
    error = getattr(module, "UnsupportedOperation", NotImplementedError)

    def unsupported(self: Any, *args: Any, **kwargs: Any) -> Any:
        raise error(f"{type(self).__name__}.{method}() is unsupported on this system")

    unsupported.__name__ = method
    unsupported._ios_mp_sandbox = True
    return unsupported


def _patch_modules(undo: list[tuple[Any, str, Any]]) -> None:
    real = {name: sys.modules.get(name) for name in ("pwd", "grp")}
    for name in NA_MODULES:
        _change(undo, sys.modules, name, None)
    for name in [n for n, m in list(sys.modules.items()) if m is not None and _is_dependent(n)]:
        _change(undo, sys.modules, name, None)

    unbound: set[tuple[str, str]] = set()
    for module_name, attribute, source in _BINDINGS:
        module, source_module = sys.modules.get(module_name), real[source]
        if module is None or source_module is None:
            continue
        if _belongs_to(_own(module, attribute), source_module, attribute):
            _change(undo, module, attribute, None)
            unbound.add((module_name, source))
    for module_name in ("pathlib._local", "pathlib"):
        path = getattr(sys.modules.get(module_name), "Path", None)
        if not isinstance(path, type):
            continue
        module = sys.modules[module_name]
        for method, source in _PATH_METHODS:
            if (module_name, source) not in unbound or method not in vars(path):
                continue
            if any(method in vars(base) for base in path.__mro__[1:]):
                _change(undo, path, method, _MISSING)  # the base class's raises
            else:
                _change(undo, path, method, _unsupported(module, method))


# --- environment --------------------------------------------------------------


def _patch_environment(undo: list[tuple[Any, str, Any]], user: str | None) -> None:
    for name in USER_VARIABLES:
        value = user if user is not None and name in ("USER", "LOGNAME") else _MISSING
        if _own(os.environ, name) != value:
            _change(undo, os.environ, name, value)


# --- standard streams ---------------------------------------------------------


def _flush(stream: Any) -> None:
    with contextlib.suppress(Exception):
        if stream is not None:
            stream.flush()


def _patch_stdin(undo: list[tuple[Any, str, Any]], mode: str) -> None:
    if mode == "none":
        previous = sys.stdin
        sys.stdin = None  # type: ignore[assignment]
        _on_undo(undo, lambda: setattr(sys, "stdin", previous))
    elif mode == "devnull":
        try:
            saved: int | None = _fd.dup(0)
        except OSError:  # descriptor 0 was closed: close it again at the end
            saved = None
        devnull = _fd.open(os.devnull, os.O_RDONLY)
        try:
            _fd.dup2(devnull, 0)
        finally:
            _fd.close(devnull)

        def put_back() -> None:
            if saved is None:
                _fd.close(0)
            else:
                _fd.dup2(saved, 0)
                _fd.close(saved)

        _on_undo(undo, put_back)


class _DescriptorLog:
    """The default log sink: each message and a newline, written to a duplicate of *fd*."""

    def __init__(self, fd: int) -> None:
        try:
            self._fd: int | None = _fd.dup(fd)
        except OSError:  # closed: messages go nowhere
            self._fd = None
        self._lock = threading.Lock()

    def __call__(self, stream: str, message: str) -> None:
        if self._fd is None:
            return
        data = (message + "\n").encode("utf-8", "backslashreplace")
        with self._lock:
            while data:
                data = data[_fd.write(self._fd, data) :]

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            _fd.close(fd)


class _LogRaw(io.RawIOBase):
    """A raw stream without a descriptor: every line written is one log message."""

    def __init__(self, stream: str, log: LogSink) -> None:
        super().__init__()
        self.stream = stream
        self._log = log

    def __repr__(self) -> str:
        return f"<ios_mp.sandbox._LogRaw {self.stream!r}>"

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        if self.closed:
            raise ValueError("write to closed file")
        data = bytes(memoryview(b))
        if data:
            # One message per line (LogStream hands over one line at a time), as
            # Apple's system log gets it from iOS Python; no line ending.
            text = data.decode("utf-8", "replace")
            for line in (text[:-1] if text.endswith("\n") else text).split("\n"):
                self._log(self.stream, line)
        return len(data)


class LogStream(io.TextIOWrapper):
    """What ``sys.stdout``/``sys.stderr`` are in an iOS app: a line-buffered UTF-8
    text stream with no file descriptor, writing each line to a log.

    ``fileno()`` raises ``io.UnsupportedOperation`` and ``isatty()`` is False, as
    with ``Lib/_apple_support.py``'s streams on iOS; *log* is called as
    ``log(stream, message)`` for every line (``stream`` is *stream*, the
    message has no line ending).
    """

    def __init__(self, stream: str, log: LogSink, errors: str = "backslashreplace") -> None:
        super().__init__(_LogRaw(stream, log), encoding="utf-8", errors=errors, line_buffering=True)

    def __repr__(self) -> str:
        return f"<ios_mp.sandbox.LogStream {self.buffer.stream!r}>"

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        # Line by line, so that line buffering flushes each complete line alone
        # (a pending partial line waits for its end, or for flush()).
        for line in str.__str__(s).splitlines(keepends=True):
            super().write(line)
        return len(s)


def _patch_stdio(undo: list[tuple[Any, str, Any]], log: LogSink | None) -> None:
    errors = getattr(sys.__stderr__, "errors", None) or "backslashreplace"
    for name, fd in (("stdout", 1), ("stderr", 2)):
        previous = getattr(sys, name)
        sink: Any = log
        if sink is None:
            sink = _DescriptorLog(fd)
            _on_undo(undo, sink.close)
        stream = LogStream(name, sink, errors=errors)
        _flush(previous)
        setattr(sys, name, stream)

        def put_back(name: str = name, previous: Any = previous, stream: Any = stream) -> None:
            _flush(stream)
            setattr(sys, name, previous)

        _on_undo(undo, put_back)


# --- platform -----------------------------------------------------------------


def _ios_ver(system: str = "", release: str = "", model: str = "", is_simulator: bool = False):
    """``platform.ios_ver()`` under ``enable(platform=True)``: fixed values."""
    import platform

    return platform.IOSVersionInfo("iOS", IOS_RELEASE, "iPhone", False)


def _patch_platform(undo: list[tuple[Any, str, Any]]) -> None:
    import platform

    # Fill platform's cache while sys.platform still names the desktop (on 3.13
    # uname() asks the Objective-C runtime when it is "ios").
    desktop = platform.uname()
    ios = type(desktop)("iOS", desktop.node, IOS_RELEASE, desktop.version, desktop.machine)
    _change(undo, platform, "_uname_cache", ios)
    if _own(platform, "ios_ver") is not _MISSING:
        _change(undo, platform, "ios_ver", _ios_ver)
    _change(undo, sys, "platform", "ios")


# --- public API ---------------------------------------------------------------


def _check(kind: str, stdin: str, stdio: str, log: Any, user: Any, platform: Any) -> None:
    def one_of(argument: str, value: Any, allowed: tuple[str, ...]) -> None:
        if value not in allowed:
            choices = ", ".join(repr(k) for k in allowed)
            raise ValueError(
                f"invalid sandbox {argument} {value!r}: {argument} must be one of {choices}"
            )

    one_of("kind", kind, KINDS)
    one_of("stdin", stdin, STDIN_MODES)
    one_of("stdio", stdio, STDIO_MODES)
    if log is not None:
        if not callable(log):
            raise TypeError(f"log must be callable or None, not {type(log).__name__}")
        if stdio != "log":
            raise ValueError("log is only used with stdio='log'")
    if user is not None and (not isinstance(user, str) or not user):
        raise ValueError(f"user must be a non-empty str or None, not {user!r}")
    if not isinstance(platform, bool):
        raise TypeError(f"platform must be a bool, not {type(platform).__name__}")


def enable(
    kind: str = "ios",
    *,
    stdin: str = "keep",
    stdio: str = "keep",
    log: LogSink | None = None,
    user: str | None = None,
    platform: bool = False,
) -> None:
    """Turn the sandbox on; does nothing if it is already on (with any options).

    *kind* names the platform to imitate; only ``"ios"`` exists. *stdin*
    (``"keep"``, ``"devnull"``, ``"none"``), *stdio* (``"keep"``, ``"log"``, with
    an optional sink *log*), *user* (``None``: no user name in the environment)
    and *platform* (``sys.platform == "ios"``) are described in the module
    docstring. ``options()`` returns the options in force.
    """
    _check(kind, stdin, stdio, log, user, platform)
    global _undo, _options
    with _lock:
        if _undo is not None:
            return
        undo: list[tuple[Any, str, Any]] = []
        try:
            _patch_processes(undo)
            _patch_modules(undo)
            _patch_environment(undo, user)
            _patch_stdin(undo, stdin)
            if stdio == "log":
                _patch_stdio(undo, log)
            if platform:
                _patch_platform(undo)
        except BaseException:
            _restore(undo)  # never leave a half-made sandbox behind
            raise
        _undo = undo
        _options = {
            "kind": kind,
            "stdin": stdin,
            "stdio": stdio,
            "log": log,
            "user": user,
            "platform": platform,
        }


def disable() -> None:
    """Turn the sandbox off, restoring everything ``enable()`` changed; idempotent."""
    global _undo, _options
    with _lock:
        if _undo is None:
            return
        undo, _undo, _options = _undo, None, None
        _restore(undo)


def is_enabled() -> bool:
    """Whether the sandbox is on."""
    return _undo is not None


def options() -> dict[str, Any] | None:
    """The keyword arguments (and ``kind``) the sandbox was enabled with; None when off.

    ``enable(**options())`` after ``disable()`` makes the same sandbox again.
    """
    current = _options
    return None if current is None else dict(current)


@contextlib.contextmanager
def sandboxed(kind: str = "ios", **options: Any) -> Iterator[None]:
    """Run a block with the sandbox on, then put back the state found on entry.

    *options* are ``enable()``'s. If the sandbox was already on, it stays on
    (with its options) after the block.
    """
    was_enabled = is_enabled()
    enable(kind, **options)
    try:
        yield
    finally:
        if not was_enabled:
            disable()
