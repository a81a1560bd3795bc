"""``multiprocessing.pool``: importable; ``Pool``/``ThreadPool`` are not implemented yet."""

from ._unimplemented import class_
from .context import TimeoutError

__all__ = ["Pool", "ThreadPool"]

Pool = class_("multiprocessing.pool.Pool")
ThreadPool = class_("multiprocessing.pool.ThreadPool")
AsyncResult = class_("multiprocessing.pool.AsyncResult")
ApplyResult = AsyncResult
MapResult = class_("multiprocessing.pool.MapResult")
IMapIterator = class_("multiprocessing.pool.IMapIterator")


class MaybeEncodingError(Exception):
    pass


_ = TimeoutError
