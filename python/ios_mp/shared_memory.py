"""``multiprocessing.shared_memory``: importable (ansible's ssh plugin imports it
at module level); ``SharedMemory`` and ``ShareableList`` are not implemented yet."""

from ._unimplemented import class_

__all__ = ["ShareableList", "SharedMemory"]

SharedMemory = class_("multiprocessing.shared_memory.SharedMemory")
ShareableList = class_("multiprocessing.shared_memory.ShareableList")
