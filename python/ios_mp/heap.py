"""``multiprocessing.heap``: importable; the shared-memory heap is not implemented yet."""

from ._unimplemented import class_

__all__ = ["BufferWrapper"]

Arena = class_("multiprocessing.heap.Arena")
Heap = class_("multiprocessing.heap.Heap")
BufferWrapper = class_("multiprocessing.heap.BufferWrapper")
