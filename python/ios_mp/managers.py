"""``multiprocessing.managers``: importable; managers are not implemented yet."""

from ._unimplemented import class_, function

__all__ = ["BaseManager", "BaseProxy", "Namespace", "SyncManager", "Token"]

BaseManager = class_("multiprocessing.managers.BaseManager")
SyncManager = class_("multiprocessing.managers.SyncManager")
SharedMemoryManager = class_("multiprocessing.managers.SharedMemoryManager")
BaseProxy = class_("multiprocessing.managers.BaseProxy")
Namespace = class_("multiprocessing.managers.Namespace")
Token = class_("multiprocessing.managers.Token")
MakeProxyType = function("multiprocessing.managers.MakeProxyType()")


class RemoteError(Exception):
    pass
