"""``multiprocessing.reduction``: the pickler used for copies.

``ForkingPickler`` is a ``pickle.Pickler`` with a per-class reducer registry, as
in stdlib. Passing file descriptors or sockets between processes
(``send_handle``/``recv_handle``/``DupFd``) is not needed between threads of one
app and is not implemented yet.
"""

from __future__ import annotations

import copyreg
import io
import pickle

from ._unimplemented import function as _missing

__all__ = ["DupFd", "ForkingPickler", "dump", "recv_handle", "register", "send_handle"]

HAVE_SEND_HANDLE = False


class ForkingPickler(pickle.Pickler):
    """Pickler supporting extra reducers registered with ``register``."""

    _extra_reducers: dict = {}
    _copyreg_dispatch_table = copyreg.dispatch_table

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.dispatch_table = self._copyreg_dispatch_table.copy()
        self.dispatch_table.update(self._extra_reducers)

    @classmethod
    def register(cls, type, reduce) -> None:
        cls._extra_reducers[type] = reduce

    @classmethod
    def dumps(cls, obj, protocol=None):
        buf = io.BytesIO()
        cls(buf, protocol).dump(obj)
        return buf.getbuffer()

    loads = pickle.loads


register = ForkingPickler.register


def dump(obj, file, protocol=None) -> None:
    ForkingPickler(file, protocol).dump(obj)


send_handle = _missing("multiprocessing.reduction.send_handle()")
recv_handle = _missing("multiprocessing.reduction.recv_handle()")
DupFd = _missing("multiprocessing.reduction.DupFd()")
