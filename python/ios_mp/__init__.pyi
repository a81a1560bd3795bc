"""Type stub for ``ios_mp``: the top-level names are bound at import time from the default
context (``__init__.py`` copies them with ``globals().update``), which no type checker can
follow; this stub names them, as typeshed's ``multiprocessing/__init__.pyi`` does."""

from types import ModuleType

from . import context
from ._install import IosMpImportOrderWarning as IosMpImportOrderWarning
from ._install import install as install
from ._install import is_installed as is_installed
from ._install import uninstall as uninstall

__all__ = [
    "Array",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "BufferTooShort",
    "Condition",
    "Event",
    "IosMpImportOrderWarning",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Pool",
    "Process",
    "ProcessError",
    "Queue",
    "RLock",
    "RawArray",
    "RawValue",
    "Semaphore",
    "SimpleQueue",
    "TimeoutError",
    "Value",
    "active_children",
    "allow_connection_pickling",
    "cpu_count",
    "current_process",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "install",
    "is_installed",
    "log_to_stderr",
    "parent_process",
    "reducer",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
    "uninstall",
]

__version__: str
SUBDEBUG: int
SUBWARNING: int

# Classes (as attributes of every context).
Process = context.DefaultContext.Process
ProcessError = context.ProcessError
BufferTooShort = context.BufferTooShort
TimeoutError = context.TimeoutError
AuthenticationError = context.AuthenticationError

# Methods of the default context, bound.
Array = context._default_context.Array
Barrier = context._default_context.Barrier
BoundedSemaphore = context._default_context.BoundedSemaphore
Condition = context._default_context.Condition
Event = context._default_context.Event
JoinableQueue = context._default_context.JoinableQueue
Lock = context._default_context.Lock
Manager = context._default_context.Manager
Pipe = context._default_context.Pipe
Pool = context._default_context.Pool
Queue = context._default_context.Queue
RLock = context._default_context.RLock
RawArray = context._default_context.RawArray
RawValue = context._default_context.RawValue
Semaphore = context._default_context.Semaphore
SimpleQueue = context._default_context.SimpleQueue
Value = context._default_context.Value
active_children = context._default_context.active_children
allow_connection_pickling = context._default_context.allow_connection_pickling
cpu_count = context._default_context.cpu_count
current_process = context._default_context.current_process
freeze_support = context._default_context.freeze_support
get_all_start_methods = context._default_context.get_all_start_methods
get_context = context._default_context.get_context
get_logger = context._default_context.get_logger
get_start_method = context._default_context.get_start_method
log_to_stderr = context._default_context.log_to_stderr
parent_process = context._default_context.parent_process
set_executable = context._default_context.set_executable
set_forkserver_preload = context._default_context.set_forkserver_preload
set_start_method = context._default_context.set_start_method
# The module used for pickling (a property of the context, read at import).
reducer: ModuleType
