"""``multiprocessing.popen_spawn_posix``: importable for libraries that probe it; ios_mp never
creates processes, so what it would start raises on use."""

from ._unimplemented import class_, function

__all__: list = []

Popen = class_("multiprocessing.popen_spawn_posix.Popen")
_ = function
