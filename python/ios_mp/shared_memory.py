"""``multiprocessing.shared_memory``: ``SharedMemory`` and ``ShareableList`` between
ios_mp processes (threads of one app).

A block is memory of the app (an anonymous ``mmap``, page-aligned and zero-filled
like a POSIX shared memory object) held by an in-process registry under its
name: no ``/dev/shm``, no ``_posixshmem``, no resource tracker process. Any
worker attaches to a block by name, and every handle's ``buf`` is a writable
memoryview onto the same memory. Names, errors and lifetime follow stdlib on
POSIX: random names ``psm_xxxxxxxx`` (stored with a leading ``/`` in ``_name``,
reported without it by ``name``), ``FileNotFoundError`` to attach to a missing
name or unlink twice, ``FileExistsError`` to create an existing one,
``ValueError`` for a negative size, for ``create=True`` with size 0, for a name
without ``create`` and for an embedded NUL; ``size`` is the size it was created
with; ``unlink()`` removes the name, and handles still open keep the memory;
pickling a ``SharedMemory`` attaches to the block by name (``__reduce__`` as
stdlib), so passing one to a worker gives it its own handle. What differs:

* Blocks live only as long as the app: nothing outlives it, and a block that is
  never unlinked is freed at exit (there is no leak to warn about).
* ``close()`` releases this handle's ``buf``, and views made from it
  before (slices, ``ctypes`` ``from_buffer``,
  ``numpy.frombuffer``) stay usable after it, on the same memory (stdlib's
  ``close()`` raises ``BufferError`` while they are alive).
* ``track=`` (3.13) is accepted on every Python; ``resource_tracker`` is a no-op.
"""

from __future__ import annotations

import errno
import mmap
import os
import secrets
import struct
import threading
import types
from functools import partial

from . import resource_tracker

__all__ = ["ShareableList", "SharedMemory"]

_USE_POSIX = True

_O_CREX = os.O_CREAT | os.O_EXCL

# FreeBSD (and perhaps other BSDs) limit names to 14 characters.
_SHM_SAFE_NAME_LENGTH = 14

# Shared memory block name prefix
_SHM_NAME_PREFIX = "/psm_"


def _make_filename():
    "Create a random filename for the shared memory object."
    # number of random bytes to use for name
    nbytes = (_SHM_SAFE_NAME_LENGTH - len(_SHM_NAME_PREFIX)) // 2
    assert nbytes >= 2, "_SHM_NAME_PREFIX too long"
    name = _SHM_NAME_PREFIX + secrets.token_hex(nbytes)
    assert len(name) <= _SHM_SAFE_NAME_LENGTH
    return name


# The registry: name (with its leading "/") -> the block's memory.
_blocks: dict[str, mmap.mmap] = {}
_blocks_lock = threading.Lock()


def _check_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"shared memory name must be str, not {type(name).__name__}")
    if "\0" in name:
        raise ValueError("embedded null character")
    return name


def _open_block(name: str, flags: int, size: int) -> mmap.mmap:
    """``shm_open`` + ``ftruncate`` + ``mmap`` on the registry: the block named
    ``name``, made with ``size`` bytes if ``flags`` has ``O_CREAT`` and it is new."""
    _check_name(name)
    with _blocks_lock:
        block = _blocks.get(name)
        if block is not None:
            if flags & _O_CREX == _O_CREX:
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), name)
            return block
        if not flags & os.O_CREAT:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)
        if size <= 0:
            # stdlib: an empty object cannot be mapped.
            raise ValueError("cannot mmap an empty file")
        block = _blocks[name] = mmap.mmap(-1, size)
        return block


def _unlink_block(name: str) -> None:
    """``shm_unlink``: forget ``name``; handles still open keep the memory."""
    _check_name(name)
    with _blocks_lock:
        if _blocks.pop(name, None) is None:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), name)


class SharedMemory:
    """Creates a new shared memory block or attaches to an existing
    shared memory block.

    Every shared memory block is assigned a unique name.  This enables
    one process to create a shared memory block with a particular name
    so that a different process can attach to that same shared memory
    block using that same name.

    Here a block is memory of the app, shared by its ios_mp processes (see the
    module's docstring); ``close()`` and ``unlink()`` as in stdlib."""

    # Defaults; enables close() and unlink() to run without errors.
    _name = None
    _fd = -1
    _mmap = None
    _buf = None
    _flags = os.O_RDWR
    _mode = 0o600
    _prepend_leading_slash = True
    _track = True

    def __init__(self, name=None, create=False, size=0, *, track=True):
        if not size >= 0:
            raise ValueError("'size' must be a positive integer")
        if create:
            self._flags = _O_CREX | os.O_RDWR
            if size == 0:
                raise ValueError("'size' must be a positive number different from zero")
        if name is None and not self._flags & os.O_EXCL:
            raise ValueError("'name' can only be None if create=True")

        self._track = track
        if name is None:
            while True:
                name = _make_filename()
                try:
                    block = _open_block(name, self._flags, size)
                except FileExistsError:
                    continue
                self._name = name
                break
        else:
            name = "/" + _check_name(name) if self._prepend_leading_slash else name
            block = _open_block(name, self._flags, size)
            self._name = name
        self._size = len(block)
        # This handle's own view; close() releases it.
        self._mmap = memoryview(block)
        self._buf = self._mmap
        if self._track:
            resource_tracker.register(self._name, "shared_memory")

    def __del__(self):
        try:
            self.close()
        except (OSError, BufferError):
            pass

    def __reduce__(self):
        return (
            self.__class__,
            (
                self.name,
                False,
                self.size,
            ),
        )

    def __repr__(self):
        return f"{self.__class__.__name__}({self.name!r}, size={self.size})"

    @property
    def buf(self):
        "A memoryview of contents of the shared memory block."
        return self._buf

    @property
    def name(self):
        "Unique name that identifies the shared memory block."
        reported_name = self._name
        if self._prepend_leading_slash and self._name.startswith("/"):
            reported_name = self._name[1:]
        return reported_name

    @property
    def size(self):
        "Size in bytes."
        return self._size

    def close(self):
        """Closes access to the shared memory from this instance but does
        not destroy the shared memory block."""
        if self._buf is not None:
            self._buf.release()
            self._buf = None
        self._mmap = None

    def unlink(self):
        """Requests that the underlying shared memory block be destroyed.

        Unlink should be called once (and only once) across all handles
        which have access to the shared memory block, even if these
        handles belong to different processes. Handles still open keep
        the memory (as on POSIX); a second unlink raises FileNotFoundError."""
        if self._name:
            _unlink_block(self._name)
            if self._track:
                resource_tracker.unregister(self._name, "shared_memory")


_encoding = "utf8"


class ShareableList:
    """Pattern for a mutable list-like object shareable via a shared
    memory block.  It differs from the built-in list type in that these
    lists can not change their overall length (i.e. no append, insert,
    etc.)

    Because values are packed into a memoryview as bytes, the struct
    packing format for any storable value must require no more than 8
    characters to describe its format."""

    # The shared memory area is organized as follows:
    # - 8 bytes: number of items (N) as a 64-bit integer
    # - (N + 1) * 8 bytes: offsets of each element from the start of the
    #                      data area
    # - K bytes: the data area storing item values (with encoding and size
    #            depending on their respective types)
    # - N * 8 bytes: `struct` format string for each element
    # - N bytes: index into _back_transforms_mapping for each element
    #            (for reconstructing the corresponding Python value)
    _types_mapping = {
        int: "q",
        float: "d",
        bool: "xxxxxxx?",
        str: "%ds",
        bytes: "%ds",
        None.__class__: "xxxxxx?x",
    }
    _alignment = 8
    _back_transforms_mapping = {
        0: lambda value: value,  # int, float, bool
        1: lambda value: value.rstrip(b"\x00").decode(_encoding),  # str
        2: lambda value: value.rstrip(b"\x00"),  # bytes
        3: lambda _value: None,  # None
    }

    @staticmethod
    def _extract_recreation_code(value):
        """Used in concert with _back_transforms_mapping to convert values
        into the appropriate Python objects when retrieving them from
        the list as well as when storing them."""
        if not isinstance(value, (str, bytes, None.__class__)):
            return 0
        elif isinstance(value, str):
            return 1
        elif isinstance(value, bytes):
            return 2
        else:
            return 3  # NoneType

    def __init__(self, sequence=None, *, name=None):
        if name is None or sequence is not None:
            sequence = sequence or ()
            _formats = [
                self._types_mapping[type(item)]
                if not isinstance(item, (str, bytes))
                else self._types_mapping[type(item)]
                % (self._alignment * (len(item) // self._alignment + 1),)
                for item in sequence
            ]
            self._list_len = len(_formats)
            assert sum(len(fmt) <= 8 for fmt in _formats) == self._list_len
            offset = 0
            # The offsets of each list element into the shared memory's
            # data area (0 meaning the start of the data area, not the start
            # of the shared memory area).
            self._allocated_offsets = [0]
            for fmt in _formats:
                offset += self._alignment if fmt[-1] != "s" else int(fmt[:-1])
                self._allocated_offsets.append(offset)
            _recreation_codes = [self._extract_recreation_code(item) for item in sequence]
            requested_size = struct.calcsize(
                "q"
                + self._format_size_metainfo
                + "".join(_formats)
                + self._format_packing_metainfo
                + self._format_back_transform_codes
            )

            self.shm = SharedMemory(name, create=True, size=requested_size)
        else:
            self.shm = SharedMemory(name)

        if sequence is not None:
            _enc = _encoding
            struct.pack_into(
                "q" + self._format_size_metainfo,
                self.shm.buf,
                0,
                self._list_len,
                *(self._allocated_offsets),
            )
            struct.pack_into(
                "".join(_formats),
                self.shm.buf,
                self._offset_data_start,
                *(v.encode(_enc) if isinstance(v, str) else v for v in sequence),
            )
            struct.pack_into(
                self._format_packing_metainfo,
                self.shm.buf,
                self._offset_packing_formats,
                *(v.encode(_enc) for v in _formats),
            )
            struct.pack_into(
                self._format_back_transform_codes,
                self.shm.buf,
                self._offset_back_transform_codes,
                *(_recreation_codes),
            )

        else:
            self._list_len = len(self)  # Obtains size from offset 0 in buffer.
            self._allocated_offsets = list(
                struct.unpack_from(self._format_size_metainfo, self.shm.buf, 1 * 8)
            )

    def _get_packing_format(self, position):
        "Gets the packing format for a single value stored in the list."
        position = position if position >= 0 else position + self._list_len
        if (position >= self._list_len) or (self._list_len < 0):
            raise IndexError("Requested position out of range.")

        v = struct.unpack_from("8s", self.shm.buf, self._offset_packing_formats + position * 8)[0]
        fmt = v.rstrip(b"\x00")
        fmt_as_str = fmt.decode(_encoding)

        return fmt_as_str

    def _get_back_transform(self, position):
        "Gets the back transformation function for a single value."

        if (position >= self._list_len) or (self._list_len < 0):
            raise IndexError("Requested position out of range.")

        transform_code = struct.unpack_from(
            "b", self.shm.buf, self._offset_back_transform_codes + position
        )[0]
        transform_function = self._back_transforms_mapping[transform_code]

        return transform_function

    def _set_packing_format_and_transform(self, position, fmt_as_str, value):
        """Sets the packing format and back transformation code for a
        single value in the list at the specified position."""

        if (position >= self._list_len) or (self._list_len < 0):
            raise IndexError("Requested position out of range.")

        struct.pack_into(
            "8s",
            self.shm.buf,
            self._offset_packing_formats + position * 8,
            fmt_as_str.encode(_encoding),
        )

        transform_code = self._extract_recreation_code(value)
        struct.pack_into(
            "b", self.shm.buf, self._offset_back_transform_codes + position, transform_code
        )

    def __getitem__(self, position):
        position = position if position >= 0 else position + self._list_len
        try:
            offset = self._offset_data_start + self._allocated_offsets[position]
            (v,) = struct.unpack_from(self._get_packing_format(position), self.shm.buf, offset)
        except IndexError:
            raise IndexError("index out of range")  # noqa: B904 (as stdlib)

        back_transform = self._get_back_transform(position)
        v = back_transform(v)

        return v

    def __setitem__(self, position, value):
        position = position if position >= 0 else position + self._list_len
        try:
            item_offset = self._allocated_offsets[position]
            offset = self._offset_data_start + item_offset
            current_format = self._get_packing_format(position)
        except IndexError:
            raise IndexError("assignment index out of range")  # noqa: B904

        if not isinstance(value, (str, bytes)):
            new_format = self._types_mapping[type(value)]
            encoded_value = value
        else:
            allocated_length = self._allocated_offsets[position + 1] - item_offset

            encoded_value = value.encode(_encoding) if isinstance(value, str) else value
            if len(encoded_value) > allocated_length:
                raise ValueError("bytes/str item exceeds available storage")
            if current_format[-1] == "s":
                new_format = current_format
            else:
                new_format = self._types_mapping[str] % (allocated_length,)

        self._set_packing_format_and_transform(position, new_format, value)
        struct.pack_into(new_format, self.shm.buf, offset, encoded_value)

    def __reduce__(self):
        return partial(self.__class__, name=self.shm.name), ()

    def __len__(self):
        return struct.unpack_from("q", self.shm.buf, 0)[0]

    def __repr__(self):
        return f"{self.__class__.__name__}({list(self)}, name={self.shm.name!r})"

    @property
    def format(self):
        "The struct packing format used by all currently stored items."
        return "".join(self._get_packing_format(i) for i in range(self._list_len))

    @property
    def _format_size_metainfo(self):
        "The struct packing format used for the items' storage offsets."
        return "q" * (self._list_len + 1)

    @property
    def _format_packing_metainfo(self):
        "The struct packing format used for the items' packing formats."
        return "8s" * self._list_len

    @property
    def _format_back_transform_codes(self):
        "The struct packing format used for the items' back transforms."
        return "b" * self._list_len

    @property
    def _offset_data_start(self):
        # - 8 bytes for the list length
        # - (N + 1) * 8 bytes for the element offsets
        return (self._list_len + 2) * 8

    @property
    def _offset_packing_formats(self):
        return self._offset_data_start + self._allocated_offsets[-1]

    @property
    def _offset_back_transform_codes(self):
        return self._offset_packing_formats + self._list_len * 8

    def count(self, value):
        "L.count(value) -> integer -- return number of occurrences of value."

        return sum(value == entry for entry in self)

    def index(self, value):
        """L.index(value) -> integer -- return first index of value.
        Raises ValueError if the value is not present."""

        for position, entry in enumerate(self):
            if value == entry:
                return position
        else:
            raise ValueError(f"{value!r} not in this container")

    __class_getitem__ = classmethod(types.GenericAlias)
