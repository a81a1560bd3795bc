"""``multiprocessing.sharedctypes``: importable; not implemented yet."""

from ._unimplemented import function

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

RawValue = function("multiprocessing.sharedctypes.RawValue()")
RawArray = function("multiprocessing.sharedctypes.RawArray()")
Value = function("multiprocessing.sharedctypes.Value()")
Array = function("multiprocessing.sharedctypes.Array()")
copy = function("multiprocessing.sharedctypes.copy()")
synchronized = function("multiprocessing.sharedctypes.synchronized()")
