"""multiprocessing.sharedctypes and multiprocessing.heap.BufferWrapper."""

from __future__ import annotations

import copy
import ctypes
import gc
import multiprocessing
import multiprocessing.heap
import multiprocessing.sharedctypes as sharedctypes
import pickle
import threading

import pytest

import ios_mp
from ios_mp import synchronize

ONLY_INHERITANCE = "objects should only be shared between processes through inheritance"


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int), ("y", ctypes.c_double), ("z", ctypes.c_longlong)]


def run(target, *args, n=1, ctx=multiprocessing):
    procs = [ctx.Process(target=target, args=args) for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(10)
    assert [p.exitcode for p in procs] == [0] * n


def test_the_package_is_ios_mp():
    assert multiprocessing.sharedctypes is ios_mp.sharedctypes
    assert multiprocessing.heap is ios_mp.heap


# --- values -------------------------------------------------------------------


def _increment(counter, times):
    for _ in range(times):
        with counter.get_lock():
            counter.value += 1


def test_value_incremented_under_its_lock_by_several_processes_is_exact():
    counter = multiprocessing.Value("i", 0)
    run(_increment, counter, 2000, n=6)
    assert counter.value == 6 * 2000


def test_value_default_lock_is_a_fresh_ios_mp_rlock():
    a, b = multiprocessing.Value("i", 0), multiprocessing.Value("i", 0, lock=None)
    for v in (a, b):
        assert isinstance(v, sharedctypes.Synchronized)
        assert isinstance(v.get_lock(), synchronize.RLock)
        assert isinstance(v.get_obj(), ctypes.c_int)
    assert a.get_lock() is not b.get_lock()
    with a:  # reentrant, as the value property takes it again
        a.value = 5
        assert a.value == 5


def test_wrapper_holds_its_lock_against_other_processes():
    v = multiprocessing.Value("i", 0)
    seen = []

    def try_lock():
        got = v.get_lock().acquire(timeout=0.01)
        seen.append(got)
        if got:
            v.get_lock().release()

    with v:
        run(try_lock)
    run(try_lock)
    assert seen == [False, True]


CODES = [
    ("i", 4343, 24234),
    ("d", 3.625, -4.25),
    ("h", -232, 234),
    ("q", 2**33, 2**34),
    ("Q", 2**63, 2**64 - 1),
    ("c", b"x", b"y"),
    ("u", "x", "\u20ac"),
    ("B", 255, 7),
    ("f", 0.5, -0.25),
]


@pytest.mark.parametrize("raw", [False, True], ids=["Value", "RawValue"])
def test_every_typecode_is_shared_with_a_process(raw):
    factory = multiprocessing.RawValue if raw else multiprocessing.Value
    values = [factory(code, first) for code, first, _ in CODES]
    assert [v.value for v in values] == [first for _, first, _ in CODES]

    def change():
        for v, (_, _, second) in zip(values, CODES):
            v.value = second

    run(change)
    assert [v.value for v in values] == [second for _, _, second in CODES]


def test_value_without_arguments_is_zero_and_types_are_ctypes_types():
    assert multiprocessing.Value("d").value == 0.0
    assert multiprocessing.RawValue(ctypes.c_ushort).value == 0
    assert multiprocessing.Value(ctypes.c_bool, True).value is True
    assert sharedctypes.typecode_to_type["l"] is ctypes.c_long


def test_lock_false_returns_the_raw_ctypes_object():
    v = multiprocessing.Value("i", 5, lock=False)
    a = multiprocessing.Array("i", range(3), lock=False)
    r = multiprocessing.RawValue("i", 5)
    assert type(v) is ctypes.c_int and type(r) is ctypes.c_int and v.value == 5
    assert isinstance(a, ctypes.Array) and a._type_ is ctypes.c_int and list(a) == [0, 1, 2]
    for obj in (v, a, r):
        assert not hasattr(obj, "get_lock")
        assert not hasattr(obj, "get_obj")


class CountingLock:
    """Any object with acquire/release will do, as in stdlib."""

    def __init__(self):
        self._lock = threading.RLock()
        self.acquired = 0

    def acquire(self, *args):
        self.acquired += 1
        return self._lock.acquire(*args)

    def release(self):
        self._lock.release()

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def test_a_given_lock_is_used():
    lk = multiprocessing.Lock()
    v = multiprocessing.Value("i", 1, lock=lk)
    assert v.get_lock() is lk
    a = multiprocessing.Array("i", 3, lock=threading.Lock())
    assert isinstance(a.get_lock(), type(threading.Lock()))

    counting = CountingLock()
    v = multiprocessing.Value("i", 1, lock=counting)
    v.value += 1  # a get and a set
    arr = multiprocessing.Array("d", 4, lock=counting)
    arr[0] = 1.0
    assert arr[0:2] == [1.0, 0.0]
    assert v.value == 2 and counting.acquired == 5


@pytest.mark.parametrize("lock", ["navalue", 0, object(), (1, 2)])
@pytest.mark.parametrize("factory", ["Value", "Array"])
def test_a_lock_without_acquire_is_refused(factory, lock):
    with pytest.raises(AttributeError, match=r"has no method 'acquire'") as info:
        getattr(multiprocessing, factory)("i", 5, lock=lock)
    assert str(info.value) == f"{lock!r} has no method 'acquire'"


def test_ctx_gives_the_default_lock():
    made = []

    class Ctx:
        def RLock(self):
            made.append(multiprocessing.RLock())
            return made[-1]

    v = sharedctypes.Value("i", 1, ctx=Ctx())
    a = sharedctypes.Array("i", 1, ctx=Ctx())
    assert [v.get_lock(), a.get_lock()] == made
    for ctx in ("fork", "spawn", "forkserver"):
        context = multiprocessing.get_context(ctx)
        v = context.Value("i", 0)
        assert isinstance(v.get_lock(), synchronize.RLock)
        run(_increment, v, 10, n=2, ctx=context)  # shared by reference, never pickled
        assert v.value == 20


# --- arrays -------------------------------------------------------------------


def _accumulate(seq):
    for i in range(1, len(seq)):
        seq[i] += seq[i - 1]


@pytest.mark.parametrize("raw", [False, True], ids=["Array", "RawArray"])
def test_array_indexing_slicing_and_sharing(raw):
    seq = [680, 626, 934, 821, 150, 233, 548, 982, 714, 831]
    arr = multiprocessing.RawArray("i", seq) if raw else multiprocessing.Array("i", seq)
    assert len(arr) == len(seq)
    assert arr[3] == seq[3] and arr[-1] == seq[-1]
    assert arr[2:7] == seq[2:7] and arr[::3] == seq[::3] and arr[:] == seq
    arr[4:8] = seq[4:8] = [1, 2, 3, 4]
    arr[::5] = seq[::5] = [-1, -2]
    assert list(arr) == seq
    _accumulate(seq)
    run(_accumulate, arr)
    assert arr[:] == seq
    with pytest.raises(IndexError):
        arr[len(seq)]
    with pytest.raises(ValueError, match="same size"):
        arr[0:2] = [1]


def test_array_from_size_is_zeroed():
    for _ in range(3):
        arr = multiprocessing.Array("d", 10)
        assert isinstance(arr, sharedctypes.SynchronizedArray)
        assert arr[:] == [0.0] * 10
        arr[:] = range(10)
        assert arr[:] == [float(i) for i in range(10)]
    assert len(multiprocessing.RawArray("i", 0)) == 0


def test_char_arrays_have_value_and_raw():
    s = multiprocessing.Array("c", b"hello")
    assert isinstance(s, sharedctypes.SynchronizedString)
    assert s.value == b"hello" and s.raw == b"hello"
    assert s[0] == b"h" and s[1:3] == b"el"
    s.value = b"hi"
    assert s.value == b"hi" and s.raw == b"hi\x00lo"
    s.raw = b"HELLO"
    assert s.value == b"HELLO"
    with pytest.raises(ValueError, match="too long"):
        s.value = b"far too long"

    buf = multiprocessing.Array("c", 20)
    buf.value = b"hello"
    run(lambda: setattr(buf, "value", buf.value * 2))
    assert buf.value == b"hellohello"

    raw = multiprocessing.RawArray("c", b"abc")
    assert isinstance(raw, ctypes.Array) and raw.raw == b"abc" and raw.value == b"abc"


def test_wchar_array_is_a_plain_synchronized_array():
    u = multiprocessing.Array("u", "abc")
    assert type(u) is sharedctypes.SynchronizedArray
    assert u[:] == "abc" and u.get_obj().value == "abc"


# --- structures ---------------------------------------------------------------


def _double(p):
    p.x *= 2
    p.y *= 2
    p.z *= 2


def test_structures_are_shared_and_synchronized_field_by_field():
    p = multiprocessing.Value(Point, 3, 2.0, 2**33)
    assert type(p).__name__ == "SynchronizedPoint"
    assert isinstance(p, sharedctypes.SynchronizedBase)
    assert type(multiprocessing.Value(Point)) is type(p)  # one class per structure
    assert isinstance(p.get_obj(), Point)
    run(_double, p)
    assert (p.x, p.y, p.z) == (6, 4.0, 2**34)
    with pytest.raises(AttributeError):
        p.w  # noqa: B018

    raw = multiprocessing.RawValue(Point, 1)
    run(_double, raw)
    assert (raw.x, raw.y, raw.z) == (2, 0.0, 0)


def test_array_of_structures():
    pts = multiprocessing.Array(Point, [(1, 1.5, 1), (2, 2.5, 2)])
    assert type(pts) is sharedctypes.SynchronizedArray
    run(lambda: _double(pts[1]))  # pts[1] is a view into the shared array
    assert (pts[1].x, pts[1].y, pts[0].x) == (4, 5.0, 1)


# --- bad arguments ------------------------------------------------------------


@pytest.mark.parametrize("bad", ["x", "ii", None, int, [1], ctypes.Structure])
@pytest.mark.parametrize("factory", ["Value", "RawValue", "Array", "RawArray"])
def test_an_invalid_typecode_or_type_is_a_type_error_naming_it(factory, bad):
    args = (bad,) if factory.endswith("Value") else (bad, 3)
    with pytest.raises(
        TypeError,
        match=r"^typecode_or_type must be a ctypes type or one of "
        r"the typecodes 'cubBhHiIlLqQfd', not ",
    ) as info:
        getattr(multiprocessing, factory)(*args)
    assert str(info.value).endswith(repr(bad))


def test_bad_sizes_and_initializers():
    with pytest.raises(ValueError, match="Array length must be >= 0, not -1"):
        multiprocessing.Array("i", -1)
    for bad, name in [(1.5, "float"), (None, "NoneType"), (iter([1]), "list_iterator")]:
        with pytest.raises(
            TypeError,
            match=f"^size_or_initializer must be an int or a sequence "
            f"with a len\\(\\), not {name}$",
        ):
            multiprocessing.RawArray("i", bad)
    with pytest.raises(TypeError):
        multiprocessing.Value("i", "a")
    with pytest.raises(TypeError):
        multiprocessing.Value("i", 1, 2)
    with pytest.raises(TypeError, match="too many initializers"):
        multiprocessing.Value(Point, 1, 2, 3, 4)
    with pytest.raises(TypeError):
        multiprocessing.Array("c", "text, not bytes")
    with pytest.raises(TypeError):
        multiprocessing.Array("i", [1, "two"])


# --- copy(), synchronized() ---------------------------------------------------


def test_copy_makes_an_independent_shared_copy():
    foo = Point(2, 5.0, 2**33)
    bar = sharedctypes.copy(foo)
    foo.x = foo.y = foo.z = 0
    assert (bar.x, bar.y, bar.z) == (2, 5.0, 2**33)
    assert isinstance(bar._wrapper, multiprocessing.heap.BufferWrapper)

    arr = multiprocessing.RawArray("i", [1, 2, 3])
    dup = sharedctypes.copy(arr)
    arr[0] = 9
    assert dup[:] == [1, 2, 3] and type(dup) is type(arr)
    with pytest.raises(TypeError, match=r"^copy\(\) needs a ctypes object, not Synchronized$"):
        sharedctypes.copy(multiprocessing.Value("i", 1))


def test_synchronized_wraps_a_raw_object():
    raw = multiprocessing.RawValue("i", 1)
    s = sharedctypes.synchronized(raw)
    assert type(s) is sharedctypes.Synchronized and s.get_obj() is raw
    assert isinstance(s.get_lock(), synchronize.RLock)
    lk = multiprocessing.Lock()
    assert sharedctypes.synchronized(raw, lk).get_lock() is lk
    assert (
        type(sharedctypes.synchronized(multiprocessing.RawArray("c", 3)))
        is sharedctypes.SynchronizedString
    )
    assert sharedctypes.SynchronizedBase(raw).get_obj() is raw  # stdlib's needs ctx here
    with pytest.raises(AssertionError, match="object already synchronized"):
        sharedctypes.synchronized(s)


def test_reprs():
    assert repr(multiprocessing.Value("i", 7)) == "<Synchronized wrapper for c_int(7)>"
    assert repr(multiprocessing.Array("c", 2)).startswith("<SynchronizedString wrapper for <")
    assert repr(multiprocessing.Array("d", 2)).startswith("<SynchronizedArray wrapper for <")
    assert repr(multiprocessing.RawValue("d", 0.5)) == "c_double(0.5)"


# --- copying and pickling -----------------------------------------------------


def test_copying_a_wrapper_returns_it():
    v = multiprocessing.Value("i", 1)
    a = multiprocessing.Array("i", 2)
    p = multiprocessing.Value(Point)
    for w in (v, a, p):
        assert copy.copy(w) is w
        assert copy.deepcopy(w) is w
    nested = copy.deepcopy({"v": [v]})
    assert nested["v"][0] is v


def test_pickling_a_wrapper_is_refused():
    for w, name in [
        (multiprocessing.Value("i", 1), "Synchronized"),
        (multiprocessing.Array("i", 2), "SynchronizedArray"),
        (multiprocessing.Array("c", 2), "SynchronizedString"),
        (multiprocessing.Value(Point), "SynchronizedPoint"),
    ]:
        with pytest.raises(RuntimeError, match=f"^{name} {ONLY_INHERITANCE}$"):
            pickle.dumps(w)
    q = multiprocessing.SimpleQueue()
    with pytest.raises(RuntimeError, match=ONLY_INHERITANCE):
        q.put(multiprocessing.Value("i", 1))
    q.close()


def test_pickling_a_raw_object_is_refused():
    with pytest.raises(RuntimeError, match=f"^BufferWrapper {ONLY_INHERITANCE}$"):
        pickle.dumps(multiprocessing.RawValue("i", 1))
    raw = multiprocessing.RawArray("i", 3)
    with pytest.raises(pickle.PicklingError):  # its class is not importable, as in stdlib
        pickle.dumps(raw)
    with pytest.raises(RuntimeError, match=f"^c_int_Array_3 {ONLY_INHERITANCE}$"):
        multiprocessing.reduction.ForkingPickler.dumps(raw)
    with pytest.raises(RuntimeError, match=ONLY_INHERITANCE):
        copy.deepcopy(multiprocessing.RawValue("i", 1))
    # a shallow copy is a private copy, as for any ctypes object
    v = multiprocessing.RawValue("i", 1)
    c = copy.copy(v)
    c.value = 2
    assert v.value == 1


# --- heap.BufferWrapper -------------------------------------------------------


def test_buffer_wrapper_views_share_writable_memory():
    w = multiprocessing.heap.BufferWrapper(8)
    a, b = w.create_memoryview(), w.create_memoryview()
    assert a.nbytes == 8 and a.format == "B" and not a.readonly
    assert bytes(a) == bytes(8)
    a[0:2] = b"\x01\x02"
    ints = b.cast("i")
    run(lambda: ints.__setitem__(1, -5))
    assert b[0:2] == b"\x01\x02" and w.create_memoryview().cast("i")[1] == -5
    assert w.create_memoryview().nbytes == 8
    assert multiprocessing.heap.BufferWrapper(0).create_memoryview().nbytes == 0
    w.note = "attributes may be set, as on stdlib's"


def test_buffer_wrapper_validates_size_as_stdlib():
    import sys

    with pytest.raises(ValueError, match=r"^Size -1 out of range$"):
        multiprocessing.heap.BufferWrapper(-1)
    with pytest.raises(OverflowError, match=r"too large$"):
        multiprocessing.heap.BufferWrapper(sys.maxsize)
    with pytest.raises(TypeError):
        multiprocessing.heap.BufferWrapper(1.5)
    with pytest.raises(TypeError):
        multiprocessing.heap.BufferWrapper("3")


def test_buffer_wrapper_is_never_copied_or_pickled():
    w = multiprocessing.heap.BufferWrapper(4)
    for refuse in (pickle.dumps, copy.copy, copy.deepcopy):
        with pytest.raises(RuntimeError, match=f"^BufferWrapper {ONLY_INHERITANCE}$"):
            refuse(w)


def test_buffer_wrappers_are_blocks_of_the_heap_freed_with_the_wrapper():
    heap = multiprocessing.heap.Heap()  # stdlib's allocator, over anonymous arenas
    saved = multiprocessing.heap.BufferWrapper._heap
    multiprocessing.heap.BufferWrapper._heap = heap
    try:
        a = multiprocessing.heap.BufferWrapper(100)
        b = multiprocessing.heap.BufferWrapper(100)
        (arena, _, stop), _ = a._state
        assert isinstance(arena, multiprocessing.heap.Arena) and arena.size >= 200
        assert b._state[0][0] is arena and b._state[0][1] >= stop  # same arena, after a
        assert heap._n_mallocs == 2 and heap._n_frees == 0
        del a, b
        gc.collect()
        assert heap._n_frees == 2 and not any(heap._allocated_blocks.values())
        with pytest.raises(RuntimeError, match="through inheritance"):
            pickle.dumps(arena)
    finally:
        multiprocessing.heap.BufferWrapper._heap = saved
