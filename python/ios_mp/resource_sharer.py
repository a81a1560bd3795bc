"""``multiprocessing.resource_sharer``: importable; not needed between threads."""

from ._unimplemented import class_

__all__ = ["stop"]

DupFd = class_("multiprocessing.resource_sharer.DupFd")


def stop(timeout=None) -> None:
    pass
