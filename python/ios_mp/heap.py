"""``multiprocessing.heap``: ``BufferWrapper``, the memory behind ``sharedctypes``.

As in stdlib, a ``BufferWrapper(size)`` is a block carved out of an ``Arena`` by
the process-wide ``Heap`` allocator (``BufferWrapper._heap``; stdlib's code,
unchanged: blocks are freed when their wrapper is garbage, free neighbours are
merged, an arena that becomes entirely free is discarded). What differs is the
arena: stdlib's is an mmap of a file in ``/dev/shm`` (or the temp dir) that
forked children inherit; ios_mp's processes are threads of one app that already
share all memory, so an ``Arena`` here is *anonymous* memory of the app
(``mmap.mmap(-1, size)``): no file, no ``/dev/shm``, freed with its last view.

* ``BufferWrapper(size)`` validates ``size`` as stdlib does (``ValueError`` when
  negative, ``OverflowError`` when not below ``sys.maxsize``; a non-integer size
  raises ``TypeError``), and ``create_memoryview()`` returns a writable
  memoryview (format ``'B'``) of exactly ``size`` bytes. Every view of one
  wrapper shows the same bytes, in every process.
* Wrappers and arenas are shared by reference and never copied: pickling or
  copying one raises stdlib's ``RuntimeError`` ("... should only be shared
  between processes through inheritance"), as stdlib's arenas do outside of
  spawning.
"""

from __future__ import annotations

import bisect
import mmap
import operator
import os
import sys
import threading
from collections import defaultdict

from . import util
from .context import assert_spawning

__all__ = ["BufferWrapper"]


class Arena:
    """``size`` bytes of anonymous memory of the app (stdlib: an mmapped file)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.buffer = mmap.mmap(-1, size)

    def __reduce__(self):
        assert_spawning(self)


# stdlib's allocator (CPython Lib/multiprocessing/heap.py, 3.9-3.13; only ruff-modernised).
class Heap:
    # Minimum malloc() alignment
    _alignment = 8

    _DISCARD_FREE_SPACE_LARGER_THAN = 4 * 1024**2  # 4 MB
    _DOUBLE_ARENA_SIZE_UNTIL = 4 * 1024**2

    def __init__(self, size=mmap.PAGESIZE):
        self._lastpid = os.getpid()
        self._lock = threading.Lock()
        # Current arena allocation size
        self._size = size
        # A sorted list of available block sizes in arenas
        self._lengths = []

        # Free block management:
        # - map each block size to a list of `(Arena, start, stop)` blocks
        self._len_to_seq = {}
        # - map `(Arena, start)` tuple to the `(Arena, start, stop)` block
        #   starting at that offset
        self._start_to_block = {}
        # - map `(Arena, stop)` tuple to the `(Arena, start, stop)` block
        #   ending at that offset
        self._stop_to_block = {}

        # Map arenas to their `(Arena, start, stop)` blocks in use
        self._allocated_blocks = defaultdict(set)
        self._arenas = []

        # List of pending blocks to free - see comment in free() below
        self._pending_free_blocks = []

        # Statistics
        self._n_mallocs = 0
        self._n_frees = 0

    @staticmethod
    def _roundup(n, alignment):
        # alignment must be a power of 2
        mask = alignment - 1
        return (n + mask) & ~mask

    def _new_arena(self, size):
        # Create a new arena with at least the given *size*
        length = self._roundup(max(self._size, size), mmap.PAGESIZE)
        # We carve larger and larger arenas, for efficiency, until we
        # reach a large-ish size (roughly L3 cache-sized)
        if self._size < self._DOUBLE_ARENA_SIZE_UNTIL:
            self._size *= 2
        util.info("allocating a new mmap of length %d", length)
        arena = Arena(length)
        self._arenas.append(arena)
        return (arena, 0, length)

    def _discard_arena(self, arena):
        # Possibly delete the given (unused) arena
        length = arena.size
        # Reusing an existing arena is faster than creating a new one, so
        # we only reclaim space if it's large enough.
        if length < self._DISCARD_FREE_SPACE_LARGER_THAN:
            return
        blocks = self._allocated_blocks.pop(arena)
        assert not blocks
        del self._start_to_block[(arena, 0)]
        del self._stop_to_block[(arena, length)]
        self._arenas.remove(arena)
        seq = self._len_to_seq[length]
        seq.remove((arena, 0, length))
        if not seq:
            del self._len_to_seq[length]
            self._lengths.remove(length)

    def _malloc(self, size):
        # returns a large enough block -- it might be much larger
        i = bisect.bisect_left(self._lengths, size)
        if i == len(self._lengths):
            return self._new_arena(size)
        else:
            length = self._lengths[i]
            seq = self._len_to_seq[length]
            block = seq.pop()
            if not seq:
                del self._len_to_seq[length], self._lengths[i]

        (arena, start, stop) = block
        del self._start_to_block[(arena, start)]
        del self._stop_to_block[(arena, stop)]
        return block

    def _add_free_block(self, block):
        # make block available and try to merge with its neighbours in the arena
        (arena, start, stop) = block

        try:
            prev_block = self._stop_to_block[(arena, start)]
        except KeyError:
            pass
        else:
            start, _ = self._absorb(prev_block)

        try:
            next_block = self._start_to_block[(arena, stop)]
        except KeyError:
            pass
        else:
            _, stop = self._absorb(next_block)

        block = (arena, start, stop)
        length = stop - start

        try:
            self._len_to_seq[length].append(block)
        except KeyError:
            self._len_to_seq[length] = [block]
            bisect.insort(self._lengths, length)

        self._start_to_block[(arena, start)] = block
        self._stop_to_block[(arena, stop)] = block

    def _absorb(self, block):
        # deregister this block so it can be merged with a neighbour
        (arena, start, stop) = block
        del self._start_to_block[(arena, start)]
        del self._stop_to_block[(arena, stop)]

        length = stop - start
        seq = self._len_to_seq[length]
        seq.remove(block)
        if not seq:
            del self._len_to_seq[length]
            self._lengths.remove(length)

        return start, stop

    def _remove_allocated_block(self, block):
        arena, start, stop = block
        blocks = self._allocated_blocks[arena]
        blocks.remove((start, stop))
        if not blocks:
            # Arena is entirely free, discard it from this process
            self._discard_arena(arena)

    def _free_pending_blocks(self):
        # Free all the blocks in the pending list - called with the lock held.
        while True:
            try:
                block = self._pending_free_blocks.pop()
            except IndexError:
                break
            self._add_free_block(block)
            self._remove_allocated_block(block)

    def free(self, block):
        # free a block returned by malloc()
        # Since free() can be called asynchronously by the GC, it could happen
        # that it's called while self._lock is held: in that case,
        # self._lock.acquire() would deadlock (issue #12352). To avoid that, a
        # trylock is used instead, and if the lock can't be acquired
        # immediately, the block is added to a list of blocks to be freed
        # synchronously sometimes later from malloc() or free(), by calling
        # _free_pending_blocks() (appending and retrieving from a list is not
        # strictly thread-safe but under CPython it's atomic thanks to the GIL).
        if os.getpid() != self._lastpid:
            raise ValueError(f"My pid ({os.getpid():n}) is not last pid {self._lastpid:n}")
        if not self._lock.acquire(False):
            # can't acquire the lock right now, add the block to the list of
            # pending blocks to free
            self._pending_free_blocks.append(block)
        else:
            # we hold the lock
            try:
                self._n_frees += 1
                self._free_pending_blocks()
                self._add_free_block(block)
                self._remove_allocated_block(block)
            finally:
                self._lock.release()

    def malloc(self, size):
        # return a block of right size (possibly rounded up)
        if size < 0:
            raise ValueError(f"Size {size:n} out of range")
        if sys.maxsize <= size:
            raise OverflowError(f"Size {size:n} too large")
        if os.getpid() != self._lastpid:
            self.__init__()  # reinitialize after fork
        with self._lock:
            self._n_mallocs += 1
            # allow pending blocks to be marked available
            self._free_pending_blocks()
            size = self._roundup(max(size, 1), self._alignment)
            (arena, start, stop) = self._malloc(size)
            real_stop = start + size
            if real_stop < stop:
                # if the returned block is larger than necessary, mark
                # the remainder available
                self._add_free_block((arena, real_stop, stop))
            self._allocated_blocks[arena].add((start, real_stop))
            return (arena, start, real_stop)


#
# Class wrapping a block allocated out of a Heap -- can be inherited by child process
#


class BufferWrapper:
    """``size`` bytes of memory shared by every process (thread) of the app."""

    _heap = Heap()

    def __init__(self, size) -> None:
        size = operator.index(size)
        if size < 0:
            raise ValueError(f"Size {size:n} out of range")
        if sys.maxsize <= size:
            raise OverflowError(f"Size {size:n} too large")
        block = BufferWrapper._heap.malloc(size)
        self._state = (block, size)
        util.Finalize(self, BufferWrapper._heap.free, args=(block,))

    def create_memoryview(self) -> memoryview:
        (arena, start, _stop), size = self._state
        return memoryview(arena.buffer)[start : start + size]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} size={self._state[1]} at {id(self):#x}>"

    def __reduce__(self):
        assert_spawning(self)
