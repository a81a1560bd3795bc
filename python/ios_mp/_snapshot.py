"""The fork-like snapshot a worker gets of what it was handed.

A forked child works on a copy of its parent's memory: the Process object's
attributes, its target, args and kwargs are the child's own, so the child's
mutations never reach the parent and the parent's later ones never reach the
child. ios_mp gives a worker the same: at ``start()`` the worker runs on a
*copy* of the Process object (same class, same virtual process: pid, exit
code, name are shared state) whose ``__dict__``, target, args and kwargs are
deep copies. ``current_process()`` in the worker is that copy.

What is copied and what stays shared:

* copied, preserving identity inside the copy (two args referring to one dict
  still refer to one, new, dict): ``dict``, ``list``, ``tuple``, ``set``,
  ``frozenset``, ``bytearray`` and instances of ordinary classes (their
  ``__dict__``), plus anything ``copy.deepcopy`` handles (``__deepcopy__``,
  ``__reduce_ex__``);
* shared, as inheritance through fork shares them: ios_mp's IPC objects
  (queues, locks, events, conditions, barriers, connections, processes,
  sharedctypes wrappers), and what cannot be copied: modules, classes,
  functions, code, threads, open files, sockets, ``threading`` locks, and any
  object whose deep copy raises;
* immutable atoms are passed as they are (a copy could not be told apart).

Opt-outs: a Process subclass with ``__ios_mp_snapshot__ = False`` is not
snapshotted at all (the worker runs on the parent's object, like
``multiprocessing.dummy``); ``share_type(cls)`` (or a class attribute
``__ios_mp_share__ = True``) keeps instances of a class shared.
"""

from __future__ import annotations

import copy
import gc
import io
import socket
import sys
import threading
import types
import weakref
from typing import Any

from . import _core

__all__ = ["copy_hook", "share_type", "snapshot", "snapshot_process"]

_ATOMS = (
    type(None),
    int,
    float,
    complex,
    bool,
    str,
    bytes,
    range,
    type(Ellipsis),
    type(NotImplemented),
)
# Never copied: shared by reference, as fork inherits them.
_SHARED: tuple[type, ...] = (
    type,
    types.ModuleType,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.CodeType,
    types.GeneratorType,
    types.FrameType,
    types.TracebackType,
    types.CoroutineType,
    weakref.ref,
    property,
    threading.Thread,
    io.IOBase,
    socket.socket,
    memoryview,
    type(threading.Lock()),
    type(threading.RLock()),
    threading.Condition,
    threading.Event,
)
_shared_types: set[type] = set()
_CONTAINERS = (dict, list, tuple)
# type -> _Copier._kind(type), filled by the native copier.
_kinds: dict[type, int] = {}


def share_type(cls: type) -> type:
    """Never copy instances of ``cls`` into a worker's snapshot (usable as a
    class decorator). Subclasses are shared too."""
    global _SHARED
    _shared_types.add(cls)
    _SHARED = (*_SHARED, cls)
    _kinds.clear()
    return cls


# type -> hook(x, copier) that makes the copy of x (and puts it in copier.memo first).
_copy_hooks: dict[type, Any] = {}


def copy_hook(cls: type, hook: Any) -> None:
    """Copy instances of exactly ``cls`` with ``hook(x, copier)`` instead of field by
    field. The hook must store its copy in ``copier.memo[id(x)]`` before it copies
    what ``x`` refers to (cycles), may pre-seed ``copier.memo`` with ``copier.seed``
    (copies it made earlier, reused), and usually ends with ``copier.plain(x)``."""
    _copy_hooks[cls] = hook
    _kinds.clear()


def _ios_mp_shared() -> tuple[type, ...]:
    return (
        _core.SemLock,
        _core.Condition,
        _core.Event,
        _core.Barrier,
        _core._QueueBase,
        _core.BaseProcess,
    )


class _Copier:
    """``copy.deepcopy`` with sharing rules instead of errors."""

    def __init__(self) -> None:
        self.memo: dict[int, Any] = {}
        self.keep: list[Any] = []  # originals stay alive so their ids stay unique
        self.shared = _SHARED + _ios_mp_shared()

    def __call__(self, x: Any) -> Any:
        cls = type(x)
        if cls in _ATOMS:
            return x
        if cls in _CONTAINERS:
            # dict/list/tuple graphs are copied natively; objects met inside
            # come back here. Originals stay alive: they are reachable from the
            # root, which the caller holds.
            return _core._snapshot_fast(x, self.memo, self, _kinds)
        return self._deep(x)

    def _kind(self, cls: type) -> int:
        """For the native copier: 2 shared, 1 plain instance, 0 anything else."""
        if issubclass(cls, self.shared) or getattr(cls, "__ios_mp_share__", False):
            return 2
        if cls in _copy_hooks:
            return 0
        return 1 if _is_plain(cls) and cls not in _CONTAINERS else 0

    def _deep(self, x: Any) -> Any:
        """The pure-Python path (the native one hands over what nests too deep)."""
        cls = type(x)
        if cls in _ATOMS:
            return x
        d = id(x)
        memo = self.memo
        if d in memo:
            return memo[d]
        if cls is dict:
            y: Any = {}
            memo[d] = y
            for k, v in x.items():
                y[self._deep(k)] = self._deep(v)
            return y
        if cls is list:
            y = []
            memo[d] = y
            y.extend(self._deep(v) for v in x)
            return y
        if cls is tuple:
            items = [self._deep(v) for v in x]
            if d in memo:  # a cycle through a list/dict inside came back here
                return memo[d]
            y = x if all(a is b for a, b in zip(items, x)) else tuple(items)
            memo[d] = y
            return y
        if cls in (set, frozenset):
            y = cls(self(v) for v in x)
            memo[d] = y
            self.keep.append(x)
            return y
        if isinstance(x, self.shared) or getattr(cls, "__ios_mp_share__", False):
            return x
        return self._object(x, cls, d)

    def seed(self, original: Any, copy_: Any) -> None:
        """Make ``copy_`` the copy of ``original`` in this snapshot (unless it has one)."""
        d = id(original)
        if d not in self.memo:
            self.memo[d] = copy_
            self.keep.append(original)

    def plain(self, x: Any) -> Any:
        """The field-by-field copy of an ordinary instance (no ``__init__``)."""
        y = object.__new__(type(x))
        self.memo[id(x)] = y
        self.keep.append(x)
        y.__dict__.update(self(x.__dict__))
        return y

    def _object(self, x: Any, cls: type, d: int) -> Any:
        memo = self.memo
        hook = _copy_hooks.get(cls)
        if hook is not None:
            return hook(x, self)
        plain = _plain.get(cls)
        if plain is None:
            plain = _plain[cls] = _is_plain(cls)
        if cls is types.SimpleNamespace:
            # Its fields through this copier (copy.deepcopy would copy them with
            # its own rules: our shared objects inside would be copied or fail).
            y = types.SimpleNamespace()
            memo[d] = y
            self.keep.append(x)
            y.__dict__.update(self(x.__dict__))
            return y
        if plain and isinstance(getattr(x, "__dict__", None), dict):
            # An ordinary instance: a new one with a copied __dict__, without
            # calling __init__ (as unpickling and fork do).
            y = object.__new__(cls)
            memo[d] = y
            self.keep.append(x)
            y.__dict__.update(self(x.__dict__))
            return y
        try:
            y = copy.deepcopy(x, _DeepcopyMemo(self))
        except Exception:
            y = x  # cannot be copied: shared, as a file or socket would be
        memo[d] = y
        self.keep.append(x)
        return y


_plain: dict[type, bool] = {}


def _is_plain(cls: type) -> bool:
    """Instances are copied field by field, as fork copies them: no custom copy
    protocol (``__deepcopy__``, ``__reduce__``/``__reduce_ex__``), no ``__slots__``,
    the default ``__new__``. A custom ``__getstate__``/``__setstate__`` does not
    count: that is how an object is *pickled* (spawn), and a forked child never
    pickles what it inherits. (ansible-core 2.18's ``VariableManager.__setstate__``
    sets ``_loader = None``: a worker given the pickle round trip failed with
    ``'NoneType' object has no attribute 'get_basedir'`` at its first
    ``delegate_to``.)"""
    return (
        getattr(cls, "__deepcopy__", None) is None
        and cls.__reduce_ex__ is object.__reduce_ex__
        and cls.__reduce__ is object.__reduce__
        and not any("__slots__" in vars(k) for k in cls.__mro__[:-1])
        and cls.__new__ is object.__new__
    )


class _DeepcopyMemo(dict):
    """A ``copy.deepcopy`` memo that sends nested objects back to our copier,
    so our sharing rules (and identities) hold inside objects deepcopy handles."""

    def __init__(self, copier: _Copier) -> None:
        super().__init__()
        self.copier = copier

    def get(self, key, default=None):
        return self.copier.memo.get(key, default)

    def __getitem__(self, key):
        return self.copier.memo[key]

    def __setitem__(self, key, value) -> None:
        self.copier.memo[key] = value


# While a snapshot is copied the copying thread asks CPython to switch threads
# less often (sys.setswitchinterval), so the copy runs through instead of waiting
# for the GIL at every 5 ms switch: with N busy workers each 5 ms of copying had
# cost up to N x 5 ms of wall time in the starting thread (ansible's strategy
# starts workers one after another from one thread: 49 ms of CPU per start took
# 224 ms of wall at 20 hosts, benches/ansible_bench.py --phases). A copy is
# atomic for the other threads then, as fork is. The interval is process-wide:
# the first of overlapping copies saves it, the last puts it back (unless
# somebody changed it meanwhile), under _interval_lock.
_HOLD_INTERVAL = 0.25
_interval_lock = threading.Lock()
_holding = 0
_saved_interval = 0.0


def _hold_gil() -> None:
    global _holding, _saved_interval
    with _interval_lock:
        if _holding == 0:
            _saved_interval = sys.getswitchinterval()
            if _saved_interval < _HOLD_INTERVAL:
                sys.setswitchinterval(_HOLD_INTERVAL)
        _holding += 1


def _release_gil_hold() -> None:
    global _holding
    with _interval_lock:
        _holding -= 1
        if _holding == 0 and sys.getswitchinterval() == max(_saved_interval, _HOLD_INTERVAL):
            sys.setswitchinterval(_saved_interval)


def _without_gc(fn, *args):
    """Run ``fn`` with the cyclic GC paused: a copy creates many containers and
    none of them is garbage yet, so collections during it only cost time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return fn(*args)
    finally:
        if enabled:
            gc.enable()


def snapshot(obj: Any) -> Any:
    """A fork-like private copy of ``obj`` (see the module docstring)."""
    return _without_gc(_Copier(), obj)


def snapshot_process(proc, target, args, kwargs):
    """Called by ``start()`` in the parent: the worker's private copies of the
    process's ``__dict__``, target, args and kwargs, or None to opt out."""
    if not getattr(type(proc), "__ios_mp_snapshot__", True):
        return None
    if not (proc.__dict__ or args or kwargs):  # nothing to copy but the target
        return _without_gc(_Copier(), (proc.__dict__, target, args, kwargs))
    _hold_gil()
    try:
        return _without_gc(_Copier(), (proc.__dict__, target, args, kwargs))
    finally:
        _release_gil_hold()
