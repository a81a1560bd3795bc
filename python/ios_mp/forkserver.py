"""``multiprocessing.forkserver``: importable for libraries that probe it; ios_mp never
creates processes, so what it would start raises on use."""

from ._unimplemented import class_, function

__all__: list = []

ensure_running = function("multiprocessing.forkserver.ensure_running()")
connect_to_new_process = function("multiprocessing.forkserver.connect_to_new_process()")
set_forkserver_preload = function("multiprocessing.forkserver.set_forkserver_preload()")
ForkServer = class_("multiprocessing.forkserver.ForkServer")
