"""``multiprocessing.sharedctypes``: ctypes objects shared by every process of the app.

This follows CPython's ``Lib/multiprocessing/sharedctypes.py`` closely: the
objects are ordinary ctypes objects placed (``from_buffer``) in the memory of a
``multiprocessing.heap.BufferWrapper``, and ``Value``/``Array`` wrap them in
``Synchronized``/``SynchronizedArray``/``SynchronizedString`` (or a generated
``Synchronized<Name>`` for a ``Structure``), which take a lock around each access.
The types, names, signatures, reprs and errors are stdlib's. What differs:

* **The memory is the app's own.** ios_mp's processes are threads of one
  interpreter, so a "shared" object is simply one object that every process
  uses: its bytes are a block of its ``BufferWrapper``, carved by stdlib's heap
  allocator out of anonymous memory of the app, not out of an mmapped arena
  file. There is no ``/dev/shm``, no temporary file, no size limit beyond the
  app's memory, and the block is freed when the last reference goes.
* **Sharing is by reference**, with every start method: pass the object to a
  ``Process`` (``args=``) or put it anywhere a process can reach it; nothing is
  pickled or re-attached. A synchronized wrapper and its lock are the same
  objects in every process.
* **Copying and pickling.** ``copy.copy``/``copy.deepcopy`` of a synchronized
  wrapper return the wrapper itself (as for ios_mp's locks), and pickling one
  raises stdlib's ``RuntimeError`` ("... objects should only be shared between
  processes through inheritance"), so putting it on a ``Queue`` fails at ``put``.
  A raw object (``RawValue``/``RawArray``, or ``lock=False``) is a plain ctypes
  object: ``copy.copy`` makes a private copy as ctypes does; pickling it with
  ``ForkingPickler`` raises that ``RuntimeError``, as in stdlib; plain
  ``pickle`` and ``copy.deepcopy`` raise it too (from its ``BufferWrapper``),
  where stdlib's raise ``TypeError: cannot pickle 'mmap.mmap' object`` (pickle
  cannot even look up an array's class, in either). Use ``sharedctypes.copy()``
  for a new shared copy.
* The default lock is ios_mp's native ``RLock`` (from ``ctx``, or the default
  context); any object with ``acquire``/``release`` may be given, as in stdlib.
* A few error messages say more than stdlib's (same exception types): an
  invalid typecode or type (stdlib: ``TypeError: this type has no size``), a
  ``size_or_initializer`` that is neither an int nor a sized sequence, a
  ``copy()`` of a non-ctypes object, and a tuple passed as ``lock`` (stdlib's
  message formatting breaks on it). ``synchronized()`` of a wrapper raises its
  ``AssertionError`` even under ``python -O``, and ``SynchronizedBase(obj)``
  without ``ctx`` works (stdlib's calls ``get_context(force=True)``, a
  ``TypeError``).
"""

from __future__ import annotations

import ctypes
import threading
import weakref

from . import heap
from .context import assert_spawning
from .reduction import ForkingPickler as _ForkingPickler

__all__ = ["Array", "RawArray", "RawValue", "Value", "copy", "synchronized"]

typecode_to_type = {
    "c": ctypes.c_char,     "u": ctypes.c_wchar,
    "b": ctypes.c_byte,     "B": ctypes.c_ubyte,
    "h": ctypes.c_short,    "H": ctypes.c_ushort,
    "i": ctypes.c_int,      "I": ctypes.c_uint,
    "l": ctypes.c_long,     "L": ctypes.c_ulong,
    "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float,    "d": ctypes.c_double,
}  # fmt: skip


def _get_context(ctx=None):
    if ctx:
        return ctx
    from .context import _default_context

    return _default_context.get_context()


def _has_size(type_) -> bool:
    if not isinstance(type_, type):
        return False
    try:
        ctypes.sizeof(type_)
    except TypeError:
        return False
    return True


def _type_of(typecode_or_type):
    """The ctypes type a typecode names, or ``typecode_or_type`` itself."""
    try:
        type_ = typecode_to_type.get(typecode_or_type, typecode_or_type)
    except TypeError:  # unhashable
        type_ = typecode_or_type
    if not _has_size(type_):
        raise TypeError(
            "typecode_or_type must be a ctypes type or one of the typecodes "
            f"{''.join(typecode_to_type)!r}, not {typecode_or_type!r}"
        )
    return type_


def _new_value(type_):
    size = ctypes.sizeof(type_)
    wrapper = heap.BufferWrapper(size)
    obj = rebuild_ctype(type_, wrapper, None)
    ctypes.memset(ctypes.addressof(obj), 0, size)  # a heap block is reused memory
    return obj


def RawValue(typecode_or_type, *args):
    """
    Returns a ctypes object allocated from shared memory
    """
    type_ = _type_of(typecode_or_type)
    obj = _new_value(type_)  # its memory is zeroed
    obj.__init__(*args)
    return obj


def RawArray(typecode_or_type, size_or_initializer):
    """
    Returns a ctypes array allocated from shared memory
    """
    type_ = _type_of(typecode_or_type)
    if isinstance(size_or_initializer, int):
        type_ = type_ * size_or_initializer
        return _new_value(type_)  # its memory is zeroed
    try:
        length = len(size_or_initializer)
    except TypeError:
        raise TypeError(
            "size_or_initializer must be an int or a sequence with a len(), not "
            f"{type(size_or_initializer).__name__}"
        ) from None
    type_ = type_ * length
    result = _new_value(type_)
    result.__init__(*size_or_initializer)
    return result


def _lock_for(lock, ctx):
    if lock in (True, None):
        lock = _get_context(ctx).RLock()
    if not hasattr(lock, "acquire"):
        raise AttributeError("%r has no method 'acquire'" % (lock,))
    return lock


def Value(typecode_or_type, *args, lock=True, ctx=None):
    """
    Return a synchronization wrapper for a Value
    """
    obj = RawValue(typecode_or_type, *args)
    if lock is False:
        return obj
    lock = _lock_for(lock, ctx)
    return synchronized(obj, lock, ctx=ctx)


def Array(typecode_or_type, size_or_initializer, *, lock=True, ctx=None):
    """
    Return a synchronization wrapper for a RawArray
    """
    obj = RawArray(typecode_or_type, size_or_initializer)
    if lock is False:
        return obj
    lock = _lock_for(lock, ctx)
    return synchronized(obj, lock, ctx=ctx)


def copy(obj):
    """A new shared ctypes object with a copy of ``obj``'s contents."""
    if not _has_size(type(obj)):
        raise TypeError(f"copy() needs a ctypes object, not {type(obj).__name__}")
    new_obj = _new_value(type(obj))
    ctypes.pointer(new_obj)[0] = obj
    return new_obj


def synchronized(obj, lock=None, ctx=None):
    if isinstance(obj, SynchronizedBase):
        raise AssertionError("object already synchronized")
    ctx = _get_context(ctx)

    if isinstance(obj, ctypes._SimpleCData):
        return Synchronized(obj, lock, ctx)
    elif isinstance(obj, ctypes.Array):
        if obj._type_ is ctypes.c_char:
            return SynchronizedString(obj, lock, ctx)
        return SynchronizedArray(obj, lock, ctx)
    else:
        cls = type(obj)
        with _cache_lock:
            try:
                scls = class_cache[cls]
            except KeyError:
                names = [field[0] for field in cls._fields_]
                d = {name: make_property(name) for name in names}
                classname = "Synchronized" + cls.__name__
                scls = class_cache[cls] = type(classname, (SynchronizedBase,), d)
        return scls(obj, lock, ctx)


#
# Functions for pickling/unpickling
#


def reduce_ctype(obj):
    assert_spawning(obj)  # always raises: ios_mp never spawns
    if isinstance(obj, ctypes.Array):
        return rebuild_ctype, (obj._type_, obj._wrapper, obj._length_)
    else:
        return rebuild_ctype, (type(obj), obj._wrapper, None)


def rebuild_ctype(type_, wrapper, length):
    if length is not None:
        type_ = type_ * length
    _ForkingPickler.register(type_, reduce_ctype)
    buf = wrapper.create_memoryview()
    obj = type_.from_buffer(buf)
    obj._wrapper = wrapper
    return obj


#
# Function to create properties
#


def make_property(name):
    try:
        return prop_cache[name]
    except KeyError:
        pass

    def getter(self):
        self.acquire()
        try:
            return getattr(self._obj, name)
        finally:
            self.release()

    def setter(self, value):
        self.acquire()
        try:
            setattr(self._obj, name, value)
        finally:
            self.release()

    getter.__name__ = "get" + name
    setter.__name__ = "set" + name
    return prop_cache.setdefault(name, property(getter, setter))


prop_cache: dict = {}
class_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()

#
# Synchronized wrappers
#


class SynchronizedBase:
    def __init__(self, obj, lock=None, ctx=None):
        self._obj = obj
        if lock:
            self._lock = lock
        else:
            self._lock = _get_context(ctx).RLock()
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *args):
        return self._lock.__exit__(*args)

    def __reduce__(self):
        assert_spawning(self)  # always raises: shared by reference only

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def get_obj(self):
        return self._obj

    def get_lock(self):
        return self._lock

    def __repr__(self):
        return "<%s wrapper for %s>" % (type(self).__name__, self._obj)


class Synchronized(SynchronizedBase):
    value = make_property("value")


class SynchronizedArray(SynchronizedBase):
    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self:
            return self._obj[i]

    def __setitem__(self, i, value):
        with self:
            self._obj[i] = value

    def __getslice__(self, start, stop):
        with self:
            return self._obj[start:stop]

    def __setslice__(self, start, stop, values):
        with self:
            self._obj[start:stop] = values


class SynchronizedString(SynchronizedArray):
    value = make_property("value")
    raw = make_property("raw")
