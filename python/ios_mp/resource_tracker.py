"""``multiprocessing.resource_tracker``: nothing to track between threads.

``register``/``unregister``/``ensure_running`` are no-ops: there is no tracker
process, and in-process resources are freed by their owners.
"""

__all__ = ["ensure_running", "getfd", "register", "unregister"]


def ensure_running() -> None:
    pass


def register(name, rtype) -> None:
    pass


def unregister(name, rtype) -> None:
    pass


def getfd():
    raise OSError("ios_mp has no resource tracker process")


class ResourceTracker:
    ensure_running = staticmethod(ensure_running)
    register = staticmethod(register)
    unregister = staticmethod(unregister)
    getfd = staticmethod(getfd)


_resource_tracker = ResourceTracker()
