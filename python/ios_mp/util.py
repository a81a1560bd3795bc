"""``multiprocessing.util``: logging helpers, finalizers and exit handling.

As stdlib (records of ios_mp's Rust core, logger ``"ios_mp"``, reach
``get_logger()``'s logger too, like stdlib's own internal messages), except that
nothing here is fork-specific: ``register_after_fork``
records the callback but there is never a fork to call it after, and
``ForkAwareLocal``/``ForkAwareThreadLock`` are plain thread-local/lock objects.
At interpreter exit ``_exit_function`` terminates daemonic processes and joins
the others, as stdlib does for its children.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import sys
import tempfile
import threading
import weakref

from . import _core, process

__all__ = [
    "SUBDEBUG",
    "SUBWARNING",
    "Finalize",
    "ForkAwareLocal",
    "ForkAwareThreadLock",
    "abstract_sockets_supported",
    "debug",
    "get_logger",
    "get_temp_dir",
    "info",
    "is_exiting",
    "log_to_stderr",
    "register_after_fork",
    "sub_debug",
    "sub_warning",
]

NOTSET = 0
SUBDEBUG = 5
DEBUG = 10
INFO = 20
SUBWARNING = 25

LOGGER_NAME = "multiprocessing"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"

_logger: logging.Logger | None = None
_log_to_stderr = False


def sub_debug(msg, *args) -> None:
    if _logger:
        _logger.log(SUBDEBUG, msg, *args, stacklevel=2)


def debug(msg, *args) -> None:
    if _logger:
        _logger.log(DEBUG, msg, *args, stacklevel=2)


def info(msg, *args) -> None:
    if _logger:
        _logger.log(INFO, msg, *args, stacklevel=2)


def sub_warning(msg, *args) -> None:
    if _logger:
        _logger.log(SUBWARNING, msg, *args, stacklevel=2)


def get_logger() -> logging.Logger:
    """The ``multiprocessing`` logger, created on first use (stdlib behaviour)."""
    global _logger
    with logging._lock if hasattr(logging, "_lock") else threading.Lock():
        if not _logger:
            _logger = logging.getLogger(LOGGER_NAME)
            _logger.propagate = False
            logging.addLevelName(SUBDEBUG, "SUBDEBUG")
            logging.addLevelName(SUBWARNING, "SUBWARNING")
            if type(_logger) is logging.Logger:
                _logger.__class__ = _MultiprocessingLogger
    _sync_core_level()
    return _logger


class _MultiprocessingLogger(logging.Logger):
    """The ``multiprocessing`` logger: ``setLevel`` also lets the Rust core's records
    through at that level (see ``_sync_core_level``)."""

    def setLevel(self, level) -> None:
        super().setLevel(level)
        _sync_core_level()


def _sync_core_level() -> None:
    """The Rust core's records cost a trip into Python each, so pyo3-log passes only
    those the "ios_mp" logger is enabled for (NOTSET: its parents' level, WARNING by
    default). Lower it to the ``multiprocessing`` logger's level while that one is
    lower, and clear pyo3-log's cached levels."""
    core = logging.getLogger(CORE_LOGGER_NAME)
    wanted = logging.NOTSET
    if _logger is not None and _logger.level != logging.NOTSET:
        parent = core.parent.getEffectiveLevel() if core.parent else logging.WARNING
        if _logger.level < parent:
            wanted = _logger.level
    if core.level in (logging.NOTSET, _synced_level[0]) and core.level != wanted:
        core.setLevel(wanted)
        _synced_level[0] = wanted
        reset = getattr(_core, "_reset_log_cache", None)
        if reset is not None:
            reset()


_synced_level = [logging.NOTSET]  # the level _sync_core_level last gave "ios_mp"


# The Rust core logs through pyo3-log to the Python logger named after its log
# target, "ios_mp". _CoreRecords hands each record to the multiprocessing logger (as
# stdlib's internals log there) when that one is enabled for it, and lets it go on
# to the "ios_mp" logger's own handlers and ancestors only at the level they would
# have had without this (the parent's effective level: the root's). The "ios_mp"
# logger's level follows the multiprocessing logger's (_sync_core_level): left at
# DEBUG, every process start and exit paid ~70 us for records nobody wanted.
CORE_LOGGER_NAME = "ios_mp"


class _CoreRecords(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        logger = _logger
        if logger is not None and logger.isEnabledFor(record.levelno):
            logger.handle(record)
        parent = logging.getLogger(CORE_LOGGER_NAME).parent
        return parent is None or record.levelno >= parent.getEffectiveLevel()


def _route_core_records() -> None:
    core = logging.getLogger(CORE_LOGGER_NAME)
    if not any(isinstance(f, _CoreRecords) for f in core.filters):
        core.addFilter(_CoreRecords())


_route_core_records()


def log_to_stderr(level=None) -> logging.Logger:
    global _log_to_stderr
    logger = get_logger()
    formatter = logging.Formatter(DEFAULT_LOGGING_FORMAT)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    _log_to_stderr = True
    return logger


# Abstract (Linux/Android) socket names, as in stdlib; used to decide how
# ``connection.Listener`` addresses look.


def _platform_supports_abstract_sockets() -> bool:
    return sys.platform in ("linux", "android") or hasattr(sys, "getandroidapilevel")


def is_abstract_socket_namespace(address) -> bool:
    if not address:
        return False
    if isinstance(address, bytes):
        return address[0] == 0
    if isinstance(address, str):
        return address[0] == "\0"
    raise TypeError(f"address type of {address!r} unrecognized")


abstract_sockets_supported = _platform_supports_abstract_sockets()


_temp_dir: str | None = None


def _remove_temp_dir(rmtree, tempdir: str) -> None:
    """Finalizer of ``get_temp_dir()``'s directory; the next call makes a new one."""
    global _temp_dir
    rmtree(tempdir, True)
    if _temp_dir == tempdir:
        _temp_dir = None


def get_temp_dir() -> str:
    """A private temporary directory, removed at exit (or by ``_run_finalizers()``)."""
    global _temp_dir
    if _temp_dir is None:
        import shutil

        _temp_dir = tempfile.mkdtemp(prefix="pymp-")
        info("created temp directory %s", _temp_dir)
        # A strong reference to rmtree: the finalizer may run late at shutdown.
        Finalize(None, _remove_temp_dir, args=(shutil.rmtree, _temp_dir), exitpriority=-100)
    return _temp_dir


_afterfork_registry: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
_afterfork_counter = itertools.count()


def register_after_fork(obj, func) -> None:
    """Recorded for compatibility; ios_mp never forks, so it is never called."""
    _afterfork_registry[(next(_afterfork_counter), id(obj), func)] = obj


_finalizer_registry: dict = {}
_finalizer_counter = itertools.count()


class Finalize:
    """Run a callback when an object is collected or at exit (stdlib semantics)."""

    def __init__(self, obj, callback, args=(), kwargs=None, exitpriority=None) -> None:
        if exitpriority is not None and not isinstance(exitpriority, int):
            raise TypeError(
                f"Exitpriority ({exitpriority!r}) must be None or int, not {type(exitpriority)}"
            )
        if obj is not None:
            self._weakref = weakref.ref(obj, self)
        elif exitpriority is None:
            raise ValueError("Without object, exitpriority cannot be None")
        else:
            self._weakref = None
        self._callback = callback
        self._args = args
        self._kwargs = kwargs or {}
        self._key = (exitpriority, next(_finalizer_counter))
        self._pid = os.getpid()
        # The process that registered it (0: the app): a worker's _exit_function()
        # runs its own finalizers only, as a child's runs only the child's.
        self._owner = _core._process_key()
        _finalizer_registry[self._key] = self

    def __call__(self, wr=None, _finalizer_registry=_finalizer_registry, sub_debug=sub_debug):
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            sub_debug("finalizer no longer registered")
            return None
        sub_debug(
            "finalizer calling %s with args %s and kwargs %s",
            self._callback,
            self._args,
            self._kwargs,
        )
        res = self._callback(*self._args, **self._kwargs)
        self._weakref = self._callback = self._args = self._kwargs = self._key = None
        return res

    def cancel(self) -> None:
        try:
            del _finalizer_registry[self._key]
        except KeyError:
            pass
        else:
            self._weakref = self._callback = self._args = self._kwargs = self._key = None

    def still_active(self) -> bool:
        return self._key in _finalizer_registry

    def __repr__(self) -> str:
        try:
            obj = self._weakref()
        except (AttributeError, TypeError):
            obj = None
        if obj is None:
            return "<%s object, dead>" % self.__class__.__name__
        x = "<{} object, callback={}".format(
            self.__class__.__name__, getattr(self._callback, "__name__", self._callback)
        )
        if self._args:
            x += ", args=" + str(self._args)
        if self._kwargs:
            x += ", kwargs=" + str(self._kwargs)
        if self._key[0] is not None:
            x += ", exitpriority=" + str(self._key[0])
        return x + ">"


def _run_finalizers(minpriority=None) -> None:
    """Run finalizers with priority >= minpriority (all with a priority if None)."""
    if _finalizer_registry is None:
        return
    if minpriority is None:

        def f(p):
            return p[0] is not None
    else:

        def f(p):
            return p[0] is not None and p[0] >= minpriority

    owner = _core._process_key()
    registered = _finalizer_registry.copy()  # one step: other threads add and remove
    keys = [
        key
        for key, fin in registered.items()
        if f(key) and (owner == 0 or getattr(fin, "_owner", 0) == owner)
    ]
    keys.sort(reverse=True)
    for key in keys:
        finalizer = _finalizer_registry.get(key)
        if finalizer is not None:
            try:
                finalizer()
            except Exception:
                import traceback

                traceback.print_exc()
    if minpriority is None:
        if owner == 0:
            _finalizer_registry.clear()
        else:
            for key, fin in _finalizer_registry.copy().items():
                if getattr(fin, "_owner", 0) == owner:
                    _finalizer_registry.pop(key, None)


_exiting = False
# Workers (by process key) that called _exit_function(): a worker's exit state is
# its own, as a child's is (the app's is ``_exiting``).
_exiting_workers: set[int] = set()


def is_exiting() -> bool:
    key = _core._process_key()
    if key:
        return key in _exiting_workers
    return _exiting or _exiting is None


def _exit_function(
    info=info,
    debug=debug,
    _run_finalizers=_run_finalizers,
    active_children=process.active_children,
    current_process=process.current_process,
) -> None:
    """At exit: finalizers, then terminate daemonic processes and join the rest.

    Called in a worker (CPython's tests do, before ``os._exit``), it is that worker's
    exit: its own exit state, its own finalizers, its own children."""
    global _exiting
    key = _core._process_key()
    if key:
        if key in _exiting_workers:
            return
        _exiting_workers.add(key)
    elif _exiting:
        return
    else:
        _exiting = True
    info("process shutting down")
    debug("running all 'atexit' finalizers with priority >= 0")
    _run_finalizers(0)
    if current_process() is not None:
        for p in active_children():
            if p.daemon:
                info("calling terminate() for daemon %s", p.name)
                p.terminate()
        for p in active_children():
            info("calling join() for process %s", p.name)
            p.join(None if not p.daemon else 1.0)
    debug("running the remaining 'atexit' finalizers")
    _run_finalizers()


atexit.register(_exit_function)


def _forget_exiting(proc) -> None:
    _exiting_workers.discard(proc.pid)


process._exit_hooks.append(_forget_exiting)


def _release_logging_locks(proc=None) -> int:
    """Release every lock of ``logging`` (the module lock and each live
    handler's ``lock``) that the calling thread still holds, as it ends; return
    how many it held.

    Called as a thread of a worker ends: the worker's own thread (an exit hook)
    and each thread it started (``process._bootstrap_inner``). Those locks are
    the app's: a real child has its own copies, which die with it. A worker is
    a thread, and ``terminate()`` raises in it at any bytecode, so it can land
    between a lock's ``acquire()`` and the ``try:`` that would release it
    (``Handler.handle`` and ``logging._acquireLock`` on CPython 3.9-3.12, while
    the worker waits for a handler another thread is using). The lock would then
    stay held by a thread that no longer exists, and the app's next log record
    through that handler, and ``logging.shutdown()`` at exit, would wait forever.
    Only locks that can tell their owner are released (``RLock``, which logging
    uses); a handler that made its ``lock`` a plain ``Lock`` is left as it is.
    """
    logging_module = sys.modules.get("logging")
    if logging_module is None:
        return 0
    locks = [getattr(logging_module, "_lock", None)]
    for ref in list(getattr(logging_module, "_handlerList", ())):
        handler = ref()
        if handler is not None:
            locks.append(getattr(handler, "lock", None))
    released = 0
    for lock in locks:
        is_owned = getattr(lock, "_is_owned", None)
        if is_owned is not None and is_owned():
            lock._release_save()  # all levels of the RLock at once
            released += 1
    if released:
        name = process.current_process().name if proc is None else proc.name
        debug("%s: released %d logging lock(s) its ending thread held", name, released)
    return released


process._exit_hooks.append(_release_logging_locks)


class ForkAwareThreadLock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)


class ForkAwareLocal(threading.local):
    def __reduce__(self):
        return type(self), ()


MAXFD = os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 256


def close_all_fds_except(fds) -> None:
    fds = sorted({*fds, -1, MAXFD})
    for i in range(len(fds) - 1):
        os.closerange(fds[i] + 1, fds[i + 1])


def _flush_std_streams() -> None:
    for s in (sys.stdout, sys.stderr):
        try:
            if s is not None:
                s.flush()
        except (AttributeError, ValueError):
            pass


def _cleanup_tests() -> None:
    """Stdlib's test-suite helper: collect processes and run finalizers."""
    process._cleanup()
    _run_finalizers()
