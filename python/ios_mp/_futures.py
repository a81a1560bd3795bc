"""``concurrent.futures.process`` (stdlib's ``ProcessPoolExecutor``) on ios_mp.

The executor runs unmodified; one thing needs help. Its workers report their
own exit with ``os.getpid()`` (``max_tasks_per_child``, 3.11+: the worker that
did its last task sends ``exit_pid=os.getpid()`` and the executor pops that key
from its ``{process.pid: process}`` table). In an ios_mp worker ``os.getpid()``
is the app's pid, never the key, so the executor's manager thread died with a
KeyError and the pool hung. While ios_mp is installed, the module's global
``os`` is therefore ``_WorkerPidOs``: the real ``os`` except that ``getpid()``
in a worker returns the worker's virtual pid (``current_process().pid``). The
rest of the program keeps the real ``os.getpid()``.

A worker ended by ``os._exit``/``terminate()``/``kill()`` unwinds with
``ProcessTerminated`` (see ``_virtual.py``), and ``_process_worker`` catches
``BaseException`` around the task and sends it back as the task's exception:
the future got that (or a PicklingError) instead of the pool breaking. So
``_sendback_result`` is wrapped: a ``ProcessTerminated`` is re-raised instead of
sent, the worker ends with its exit code, and the executor sees a worker that
died (``BrokenProcessPool``), as with a real process.

The module is patched when ios_mp is installed if it is already imported, or
else right after it is first imported (a ``sys.meta_path`` finder that wraps
its loader); ``uninstall()`` undoes both.
"""

from __future__ import annotations

import importlib.abc
import os
import sys
import types

from . import _core
from .process import ProcessTerminated

__all__: list[str] = []

MODULE = "concurrent.futures.process"


class _WorkerPidOs(types.ModuleType):
    """``os`` as ``concurrent.futures.process`` sees it under ios_mp."""

    def __init__(self) -> None:
        super().__init__("os", os.__doc__)

    def __getattr__(self, name: str):
        return getattr(os, name)

    @staticmethod
    def getpid() -> int:
        worker = _core._worker_process()
        return os.getpid() if worker is None else worker.pid


_SHIM = _WorkerPidOs()


def _wrap_sendback(original):
    def _sendback_result(result_queue, work_id, *args, **kwargs):
        exc = kwargs.get("exception", args[1] if len(args) > 1 else None)
        if isinstance(getattr(exc, "exc", None), ProcessTerminated):
            raise exc.exc  # the worker is ending: a real one would send nothing
        return original(result_queue, work_id, *args, **kwargs)

    _sendback_result.__wrapped__ = original  # type: ignore[attr-defined]
    _sendback_result._ios_mp = True  # type: ignore[attr-defined]
    return _sendback_result


def _patch(module) -> None:
    if module.__dict__.get("os") is os:
        module.os = _SHIM
    send = module.__dict__.get("_sendback_result")
    if send is not None and not getattr(send, "_ios_mp", False):
        module._sendback_result = _wrap_sendback(send)


def _unpatch(module) -> None:
    if module.__dict__.get("os") is _SHIM:
        module.os = os
    send = module.__dict__.get("_sendback_result")
    if getattr(send, "_ios_mp", False):
        module._sendback_result = send.__wrapped__


class _Loader(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        _patch(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Patches ``concurrent.futures.process`` as it is imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


_finder = _Finder()


def install() -> None:
    if _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    module = sys.modules.get(MODULE)
    if module is not None:
        _patch(module)


def uninstall() -> None:
    while _finder in sys.meta_path:
        sys.meta_path.remove(_finder)
    module = sys.modules.get(MODULE)
    if module is not None:
        _unpatch(module)
