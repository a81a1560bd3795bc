"""``multiprocessing.heap``: ``BufferWrapper``, the memory behind ``sharedctypes``.

stdlib's ``BufferWrapper(size)`` carves a block out of an ``Arena``, an mmap of a
file in ``/dev/shm`` (or the temp dir) that forked children inherit, managed by a
process-wide ``Heap`` allocator. ios_mp's processes are threads of one app and
already share all memory, so a ``BufferWrapper`` here is a ``bytearray`` of
``size`` zero bytes, the app's own memory: no file, no mmap, no ``/dev/shm``, and
the block is freed by the garbage collector when the last view of it goes.

* ``BufferWrapper(size)`` validates ``size`` as stdlib does (``ValueError`` when
  negative, ``OverflowError`` when not below ``sys.maxsize``; a non-integer size
  raises ``TypeError``), and ``create_memoryview()`` returns a writable
  memoryview (format ``'B'``) of exactly ``size`` bytes. Every view of one
  wrapper shows the same bytes, in every process.
* It is shared by reference and never copied: pickling or copying one raises
  stdlib's ``RuntimeError`` ("... should only be shared between processes
  through inheritance"), as stdlib's arenas do outside of spawning.
* ``Arena`` and ``Heap`` (stdlib's allocator internals, which nothing outside
  the stdlib uses) are placeholders that raise ``NotImplementedYet``; there is
  no ``BufferWrapper._heap``.
"""

from __future__ import annotations

import operator
import sys

from ._unimplemented import class_

__all__ = ["BufferWrapper"]

Arena = class_("multiprocessing.heap.Arena")
Heap = class_("multiprocessing.heap.Heap")


class BufferWrapper:
    """``size`` bytes of memory shared by every process (thread) of the app."""

    def __init__(self, size) -> None:
        size = operator.index(size)
        if size < 0:
            raise ValueError(f"Size {size:n} out of range")
        if sys.maxsize <= size:
            raise OverflowError(f"Size {size:n} too large")
        self._buffer = bytearray(size)
        self._size = size

    def create_memoryview(self) -> memoryview:
        return memoryview(self._buffer)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self._size} at {id(self):#x}>"

    def __reduce__(self):
        from .context import assert_spawning

        assert_spawning(self)
