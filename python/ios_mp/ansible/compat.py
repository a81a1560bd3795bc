"""What ansible-core's controller needs that CPython inside an iOS app lacks.

``install()`` puts the fixes in place, before ``ansible`` is imported;
``uninstall()`` takes them out again. Both are idempotent. Each fix is applied
only where it is needed, so on a desktop (where the real modules exist)
``install()`` changes nothing. ``ios_mp.ansible.run_playbook()`` calls
``install()`` itself. docs/ios-sandbox.md lists the fixes with the ansible-core
versions that need them; ``tests/test_ansible_compat.py`` checks them.

``pwd`` and ``grp`` stand-ins
-----------------------------
CPython's iOS build has no ``pwd`` and no ``grp`` (``configure.ac`` marks them
n/a). ansible-core imports both at the top of ``ansible.module_utils.basic``,
which every controller plugin (action, connection, ...) imports, and ``pwd`` at
the top of ``ansible/_internal/_templating/_template_vars.py`` (2.19+). And
``ansible.utils.display`` calls ``getpass.getuser()`` in a class body, which
falls back to ``pwd`` when no ``LOGNAME``/``USER``/``LNAME``/``USERNAME`` is set;
2.19 catches only ``KeyError`` there, so the import of ``ansible.cli`` fails
with ``ModuleNotFoundError`` (CPython < 3.13) or ``OSError`` (3.13+). Measured
with ansible-core 2.19.14 on CPython 3.11 and 2.20.10 on CPython 3.13 under
``ios_mp.sandbox`` (2.20 catches those errors in ``display``, but still imports
``pwd``/``grp`` at the top of ``module_utils.basic``).

When ``import pwd`` (or ``import grp``) fails, ``install()`` puts a small module
of that name in ``sys.modules``, a stand-in for the real one that knows one
entry, the app's own user:

* ``pwd.getpwuid(os.getuid())`` and ``pwd.getpwnam(<that name>)`` return a
  ``pwd.struct_passwd`` with ``pw_name`` the first non-empty of ``LOGNAME``,
  ``USER``, ``LNAME``, ``USERNAME`` (``getpass.getuser()``'s order), else
  ``DEFAULT_USER`` (``"mobile"``, the user iOS apps run as); ``pw_passwd`` ``"*"``;
  ``pw_uid``/``pw_gid`` ``os.getuid()``/``os.getgid()``; ``pw_gecos`` ``""``;
  ``pw_dir`` ``HOME`` (``"/"`` if unset); ``pw_shell`` ``SHELL`` (``"/bin/sh"`` if
  unset). The environment is read at each call. ``pwd.getpwall()`` is a list of
  that one entry.
* ``grp.getgrgid(os.getgid())`` and ``grp.getgrnam(<the user name>)`` return a
  ``grp.struct_group`` named like the user (on iOS the ``mobile`` user's group is
  ``mobile``), ``gr_passwd`` ``"*"``, ``gr_gid`` ``os.getgid()``, ``gr_mem``
  ``[]``; ``grp.getgrall()`` is a list of it.
* every other id or name raises ``KeyError`` with the real modules' message
  (``"getpwnam(): name not found: 'x'"``, ``"getpwuid(): uid not found: 123"``,
  ``"getgrgid(): gid not found: 5"``, ``"getgrnam(): name not found: 'x'"``);
  arguments of the wrong type raise ``TypeError`` (``"uid should be integer, not
  str"``, ``"getpwnam() argument must be str, not bytes"``), an embedded NUL
  ``ValueError``, an id out of range what the real ones raise. As on CPython
  3.10+, ``grp.getgrgid()`` takes no ``str``/``float`` (3.9's warned and
  converted them).
* ``struct_passwd``/``struct_group`` are tuples with the real field names, read-only
  attributes, ``n_fields``/``n_sequence_fields``/``n_unnamed_fields``,
  ``__match_args__``, the real ``repr`` and pickling, built from a sequence of the
  right length like the real struct sequences.

Where ansible writes, in an app container
----------------------------------------
On iOS (``sys.platform == "ios"``) ``install()`` points ``ANSIBLE_HOME`` at
``$HOME/Library/ansible`` and ``ANSIBLE_LOCAL_TEMP`` at the temp directory, unless
the environment names them: ansible's default ``~/.ansible`` is at the root of the
app's data container, which is not writable (see ``_set_container_paths``).

Per-worker connection caches (hazard 10)
----------------------------------------
``paramiko_ssh`` (and 2.19's copy ``_paramiko_ssh``) keeps its clients in the
module globals ``SSH_CONNECTION_CACHE``/``SFTP_CONNECTION_CACHE``, keyed by
address and user only, and ``close()`` at the end of every task pops the key and
closes the client. With forked workers each worker has its own copy of these
dicts; with ios_mp's workers all share one, so hosts with the same address and
user (inventory aliases, one bastion) share one client, which the first task to
finish closes under the others (``Failed to open session: 'NoneType' object has
no attribute 'set_keepalive'``). ``install()`` makes ansible's plugin loader
(``PluginLoader._load_module_source``, 2.16+) replace those two dicts, in every
plugin module it loads that has them, by a ``PerWorkerCache``: a mapping each
ios_mp worker sees its own (empty at start) copy of, as after a fork, and
whose clients still open when the worker exits are closed then. The app's own
threads share the app's copy. It is applied whether or not ansible is already
imported (a post-import hook on ``ansible.plugins.loader`` otherwise).

Plugin loaders and plays are shared with workers
------------------------------------------------
``PluginLoader`` instances are not copied into a worker's snapshot (they are
caches; copying them at every worker start was measured at ~15 ms per start),
nor are ``Play`` objects (a worker reads its play, which each start copied
with the task, see ``_share_play``).

One import of each plugin module at a time (hazard 15)
-----------------------------------------------------
``PluginLoader._load_module_source`` puts a plugin's module in ``sys.modules``
before it runs the module's code, and returns what ``sys.modules`` holds. With
forked workers a plugin's first import happens in one child; with threads two
workers import it at once and the second gets the half-run module (seen: ``No
filter named 'b64decode'`` for 2 of 5 hosts in a fresh ``ansible-playbook``;
``module 'ansible.plugins.action.normal' has no attribute 'ActionModule'``).
``install()`` makes a thread that asks for a plugin module another thread is
loading wait for that load to finish, like ``import``'s per-module locks.

Per-worker ``current_worker`` (hazard 11)
-----------------------------------------
``ansible.executor.process.worker.current_worker`` is a module global that each
worker sets to itself and ``Display.prompt_until`` reads; with threads the last
worker to start won, so a prompting worker waited on another worker's queue.
``install()`` makes the module's ``current_worker``, read in a worker, that worker.

Per-worker ``Display._final_q`` (hazard 3)
------------------------------------------
ansible's worker calls ``display.set_queue(final_q)`` on the process-wide
``Display`` singleton so that, in the worker, output goes to the controller
through the queue. With threads that switched the app's display to the queue
too, and all output after the first task header was lost. ``install()`` makes
``Display._final_q`` a ``PerWorkerAttribute``: each worker has its own value,
the app keeps ``None``.

The stand-ins are never installed over a real module: ``install()`` first tries
the real import. ``uninstall()`` puts back what ``sys.modules`` had (``None``
under ``ios_mp.sandbox``), but only while the entry is still the stand-in.
"""

from __future__ import annotations

import builtins
import collections.abc
import functools
import importlib
import importlib.abc
import importlib.machinery
import operator
import os
import sys
import threading
import types
import weakref
from typing import Any, Callable

__all__ = [
    "CONTAINER_PATHS",
    "DEFAULT_USER",
    "STAND_INS",
    "PerWorkerCache",
    "install",
    "installed",
    "uninstall",
]

#: The user name of the stand-in entry when the environment names none.
DEFAULT_USER = "mobile"

#: The modules ``install()`` can stand in for.
STAND_INS = ("pwd", "grp")

_MISSING = object()
_lock = threading.Lock()
# name -> (previous sys.modules entry or _MISSING, the stand-in module) while installed.
_installed: dict[str, tuple[Any, types.ModuleType]] = {}

_ID_MAX = 2**32 - 1  # uid_t and gid_t are 32-bit unsigned on Darwin and Linux
_LONG_MAX = 2**63 - 1


# --- the current user, from the environment ------------------------------------


def _user_name() -> str:
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        value = os.environ.get(name)
        if value:
            return value
    return DEFAULT_USER


# --- struct sequences ----------------------------------------------------------


class _Field:
    """A read-only attribute of a struct sequence: item *index* of the tuple."""

    def __init__(self, index: int, doc: str) -> None:
        self.index = index
        self.__doc__ = doc

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        return self if obj is None else tuple.__getitem__(obj, self.index)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError("readonly attribute")

    def __delete__(self, obj: Any) -> None:
        raise AttributeError("readonly attribute")


def _struct_sequence(module: str, name: str, fields: dict[str, str], doc: str) -> type:
    """A tuple subclass that behaves like the C struct sequence ``module.name``."""
    names = tuple(fields)
    size = len(names)
    qualified = f"{module}.{name}"

    def __new__(cls: type, sequence: Any, dict: Any = None) -> Any:
        if dict is not None and not isinstance(dict, builtins.dict):
            raise TypeError(f"{qualified}() takes a dict as second arg, if any")
        try:
            items = tuple(sequence)
        except TypeError:
            raise TypeError("constructor requires a sequence") from None
        if len(items) != size:
            raise TypeError(f"{qualified}() takes a {size}-sequence ({len(items)}-sequence given)")
        if dict and sys.version_info >= (3, 13):
            raise TypeError(f"{qualified}() got duplicate or unexpected field name(s)")
        return tuple.__new__(cls, items)

    def __repr__(self: Any) -> str:
        values = ", ".join(f"{n}={v!r}" for n, v in zip(names, self))
        return f"{qualified}({values})"

    def __reduce__(self: Any) -> Any:
        return (type(self), (tuple(self), {}))

    namespace: dict[str, Any] = {
        "__slots__": (),
        "__module__": module,
        "__qualname__": name,
        "__doc__": doc,
        "__new__": __new__,
        "__repr__": __repr__,
        "__reduce__": __reduce__,
        "n_fields": size,
        "n_sequence_fields": size,
        "n_unnamed_fields": 0,
    }
    if sys.version_info >= (3, 10):
        namespace["__match_args__"] = names
    if sys.version_info >= (3, 13):

        def __replace__(self: Any, **changes: Any) -> Any:
            unknown = set(changes) - set(names)
            if unknown:
                raise TypeError(f"{qualified}.__replace__() got unexpected field name(s)")
            return type(self)(tuple(changes.get(n, v) for n, v in zip(names, self)))

        namespace["__replace__"] = __replace__
    for index, (field, field_doc) in enumerate(fields.items()):
        namespace[field] = _Field(index, field_doc)
    return type(name, (tuple,), namespace)


# --- argument checks like the C functions' -------------------------------------


def _one_positional(qualified: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Like METH_O: exactly one positional argument."""
    if kwargs:
        raise TypeError(f"{qualified}() takes no keyword arguments")
    if len(args) != 1:
        raise TypeError(f"{qualified}() takes exactly one argument ({len(args)} given)")
    return args[0]


def _one_argument(function: str, keyword: str, args: tuple[Any, ...], kwargs: dict) -> Any:
    """Like Argument Clinic's ``function(keyword)``: one argument, by position or name."""
    if len(args) > 1 or len(args) + len(kwargs) > 1:
        raise TypeError(f"{function}() takes at most 1 argument ({len(args) + len(kwargs)} given)")
    if args:
        return args[0]
    if keyword not in kwargs:
        if kwargs:
            unexpected = next(iter(kwargs))
            raise TypeError(f"{function}() got an unexpected keyword argument {unexpected!r}")
        raise TypeError(f"{function}() missing required argument {keyword!r} (pos 1)")
    return kwargs[keyword]


def _integer(value: Any, what: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} should be integer, not {type(value).__name__}") from None


def _converted_id(number: int, what: str) -> int:
    """The id as CPython's ``_Py_Uid_Converter``/``_Py_Gid_Converter`` see it, or OverflowError."""
    if number == -1 or 0 <= number <= _ID_MAX:
        return -1 if number == _ID_MAX else number
    if number <= _LONG_MAX:  # below -1, or too big for the id type but not for a C long
        raise OverflowError(f"{what} is less than minimum")
    raise OverflowError(f"{what} is greater than maximum")


def _name(value: Any, message: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{message}, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError("embedded null byte")
    return value


# --- pwd -----------------------------------------------------------------------

_PWD_DOC = """\
ios_mp's stand-in for the pwd module, which CPython's iOS build lacks.

It knows one password database entry: the app's own user (os.getuid()), named
by LOGNAME, USER, LNAME or USERNAME, else "mobile"; home HOME, shell SHELL.
Any other uid or name raises KeyError, as the real module does for unknown ones.
Installed by ios_mp.ansible.compat.install() only where "import pwd" fails."""

_PASSWD_FIELDS = {
    "pw_name": "user name",
    "pw_passwd": "password",
    "pw_uid": "user id",
    "pw_gid": "group id",
    "pw_gecos": "real name",
    "pw_dir": "home directory",
    "pw_shell": "shell program",
}
_PASSWD_DOC = """pwd.struct_passwd: Results from getpw*() routines.

This object may be accessed either as a tuple of
  (pw_name,pw_passwd,pw_uid,pw_gid,pw_gecos,pw_dir,pw_shell)
or via the object attributes as named in the above tuple."""


def _make_pwd() -> types.ModuleType:
    module = types.ModuleType("pwd", _PWD_DOC)
    struct_passwd = _struct_sequence("pwd", "struct_passwd", _PASSWD_FIELDS, _PASSWD_DOC)

    def entry() -> Any:
        return struct_passwd(
            (
                _user_name(),
                "*",
                os.getuid(),
                os.getgid(),
                "",
                os.environ.get("HOME") or "/",
                os.environ.get("SHELL") or "/bin/sh",
            )
        )

    def getpwuid(*args: Any, **kwargs: Any) -> Any:
        """Return the password database entry for the given numeric user ID.

        The stand-in knows only ``os.getuid()``."""
        uid = _integer(_one_positional("pwd.getpwuid", args, kwargs), "uid")
        try:
            shown = _converted_id(uid, "uid")
        except OverflowError:
            raise KeyError("getpwuid(): uid not found") from None
        if shown == os.getuid():
            return entry()
        raise KeyError(f"getpwuid(): uid not found: {shown}")

    def getpwnam(*args: Any, **kwargs: Any) -> Any:
        """Return the password database entry for the given user name.

        The stand-in knows only the app's own user."""
        name = _one_positional("pwd.getpwnam", args, kwargs)
        name = _name(name, "getpwnam() argument must be str")
        if name == _user_name():
            return entry()
        raise KeyError(f"getpwnam(): name not found: {name!r}")

    def getpwall(*args: Any, **kwargs: Any) -> list[Any]:
        """Return a list of all available password database entries: the app's user."""
        if kwargs:
            raise TypeError("pwd.getpwall() takes no keyword arguments")
        if args:
            raise TypeError(f"pwd.getpwall() takes no arguments ({len(args)} given)")
        return [entry()]

    _populate(
        module, struct_passwd=struct_passwd, getpwuid=getpwuid, getpwnam=getpwnam, getpwall=getpwall
    )
    return module


# --- grp -----------------------------------------------------------------------

_GRP_DOC = """\
ios_mp's stand-in for the grp module, which CPython's iOS build lacks.

It knows one group database entry: the app's own group (os.getgid()), named
like the app's user (LOGNAME, USER, LNAME or USERNAME, else "mobile").
Any other gid or name raises KeyError, as the real module does for unknown ones.
Installed by ios_mp.ansible.compat.install() only where "import grp" fails."""

_GROUP_FIELDS = {
    "gr_name": "group name",
    "gr_passwd": "password",
    "gr_gid": "group id",
    "gr_mem": "group members",
}
_GROUP_DOC = """grp.struct_group: Results from getgr*() routines.

This object may be accessed either as a tuple of
  (gr_name,gr_passwd,gr_gid,gr_mem)
or via the object attributes as named in the above tuple.
"""


def _make_grp() -> types.ModuleType:
    module = types.ModuleType("grp", _GRP_DOC)
    struct_group = _struct_sequence("grp", "struct_group", _GROUP_FIELDS, _GROUP_DOC)
    name_error = (
        "getgrnam() argument 1 must be str"
        if sys.version_info >= (3, 13)
        else "getgrnam() argument 'name' must be str"
    )

    def entry() -> Any:
        return struct_group((_user_name(), "*", os.getgid(), []))

    def getgrgid(*args: Any, **kwargs: Any) -> Any:
        """Return the group database entry for the given numeric group ID.

        If id is not valid, raise KeyError. The stand-in knows only ``os.getgid()``."""
        gid = _integer(_one_argument("getgrgid", "id", args, kwargs), "gid")
        shown = _converted_id(gid, "gid")
        if shown == os.getgid():
            return entry()
        raise KeyError(f"getgrgid(): gid not found: {shown}")

    def getgrnam(*args: Any, **kwargs: Any) -> Any:
        """Return the group database entry for the given group name.

        If name is not valid, raise KeyError. The stand-in knows only the app's group."""
        name = _name(_one_argument("getgrnam", "name", args, kwargs), name_error)
        if name == _user_name():
            return entry()
        raise KeyError(f"getgrnam(): name not found: {name!r}")

    def getgrall(*args: Any, **kwargs: Any) -> list[Any]:
        """Return a list of all available group entries: the app's group."""
        if kwargs:
            raise TypeError("grp.getgrall() takes no keyword arguments")
        if args:
            raise TypeError(f"grp.getgrall() takes no arguments ({len(args)} given)")
        return [entry()]

    _populate(
        module, struct_group=struct_group, getgrgid=getgrgid, getgrnam=getgrnam, getgrall=getgrall
    )
    return module


def _populate(module: types.ModuleType, **members: Any) -> None:
    for name, value in members.items():
        if isinstance(value, types.FunctionType):
            value.__name__ = value.__qualname__ = name
            value.__module__ = module.__name__
        setattr(module, name, value)
    module.__spec__ = importlib.machinery.ModuleSpec(module.__name__, None, origin=__name__)
    module.__ios_mp_stand_in__ = True


_FACTORIES: dict[str, Callable[[], types.ModuleType]] = {"pwd": _make_pwd, "grp": _make_grp}


# --- install / uninstall ---------------------------------------------------------


# --- per-worker connection caches (hazard 10) ----------------------------------------

_CACHE_GLOBALS = ("SSH_CONNECTION_CACHE", "SFTP_CONNECTION_CACHE")
_caches: weakref.WeakSet = weakref.WeakSet()


class PerWorkerCache(collections.abc.MutableMapping):
    """A module-global dict of which each ios_mp worker sees its own copy.

    The app (its main thread and its own threads) has one copy; each worker
    starts with an empty one (its clients are its own, as in a forked child)
    shared by the worker's threads. When a worker exits, the values left in
    its copy that have a ``close()`` are closed (a real process's sockets close
    when it dies)."""

    # Compared and hashed by identity, as a module global (Mapping would make it
    # unhashable; something on ansible's plugin path hashes module globals).
    __eq__ = object.__eq__
    __hash__ = object.__hash__

    def __init__(self, initial: Any = ()) -> None:
        self._maps: dict[int, dict[Any, Any]] = {0: dict(initial)}
        _caches.add(self)

    def _map(self) -> dict[Any, Any]:
        from .. import _core

        key = _core._process_key()
        m = self._maps.get(key)
        if m is None:
            m = self._maps.setdefault(key, {})
        return m

    def __getitem__(self, key: Any) -> Any:
        return self._map()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._map()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._map()[key]

    def __iter__(self) -> Any:
        return iter(list(self._map()))

    def __len__(self) -> int:
        return len(self._map())

    def __contains__(self, key: Any) -> bool:
        return key in self._map()

    def __repr__(self) -> str:
        return f"<ios_mp PerWorkerCache {self._map()!r}>"

    def _worker_exited(self, vpid: int) -> None:
        for value in self._maps.pop(vpid, {}).values():
            close = getattr(value, "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # already closed, or its transport is gone
                    pass


def _close_worker_caches(proc: Any) -> None:
    for cache in list(_caches):
        cache._worker_exited(proc.pid)
    for attr in _attributes:
        attr._worker_exited(proc.pid)


def _isolate_caches(module: Any) -> None:
    for name in _CACHE_GLOBALS:
        value = getattr(module, name, None)
        if type(value) is dict:
            setattr(module, name, PerWorkerCache(value))


# --- one import of each plugin module at a time (hazard 15) ----------------------------


class _PluginImports:
    """Lets one thread at a time load a given plugin module.

    ansible's ``_load_module_source`` puts the module in ``sys.modules`` before it
    runs the module's code, and returns whatever ``sys.modules`` holds. With forked
    workers the first import of a plugin happens in one child and is thrown away;
    with threads a second worker gets the half-run module (``No filter named
    'b64decode'``, ``module 'ansible.plugins.action.normal' has no attribute
    'ActionModule'``). A thread that asks for a module another thread is loading
    waits until that load has finished (or failed: then it loads it itself), as
    ``import`` does with its per-module locks. Different modules load in parallel.
    As in ``importlib._bootstrap._ModuleLock``, a wait that would close a cycle
    (A loads x and waits for y, which B loads and waits for x) does not wait: the
    thread then sees the partly run module, as a circular import does.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._owner: dict[str, int] = {}  # module name -> ident of the thread loading it
        self._waiting: dict[int, str] = {}  # thread ident -> module name it waits for

    def _closes_cycle(self, owner: int, me: int) -> bool:
        """Whether ``me`` waiting for ``owner`` closes a cycle of waits."""
        seen = set()
        while owner != me:
            if owner in seen:
                return False  # a cycle without us in it: not ours to break
            seen.add(owner)
            name = self._waiting.get(owner)
            owner = self._owner.get(name) if name is not None else None
            if owner is None:
                return False  # that thread is not waiting for a load
        return True

    def load(self, name: str, load: Callable[[], Any]) -> Any:
        me = threading.get_ident()
        with self._cond:
            while True:
                owner = self._owner.get(name)
                if owner is None:
                    self._owner[name] = me
                    mine = True
                    break
                if owner == me or self._closes_cycle(owner, me):
                    mine = False  # a load of ours further up the stack, or a cycle
                    break
                self._waiting[me] = name
                try:
                    self._cond.wait()
                finally:
                    del self._waiting[me]
        try:
            return load()
        finally:
            if mine:
                with self._cond:
                    del self._owner[name]
                    self._cond.notify_all()


_plugin_imports = _PluginImports()


def _plugin_module_name(self: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The ``sys.modules`` key ``_load_module_source`` loads into: 2.19+ pass it as
    ``python_module_name=``; 2.16-2.18 pass ``(name, path)`` and prefix ``name``
    with the loader's package unless it is a collection's."""
    if "python_module_name" in kwargs:
        return kwargs["python_module_name"]
    name = args[0] if args else kwargs.get("name")
    if not isinstance(name, str):
        return None
    if name.startswith("ansible_collections."):
        return name
    return f"{getattr(self, 'package', '')}.{name}"


def _wrap_method(cls: Any, name: str, make: Callable[[Any], Any]) -> bool:
    """Replace ``cls.name`` by ``make(original)`` (with the original's name and doc),
    once: False if there is no such method or it is already ours."""
    original = getattr(cls, name, None)
    if original is None or getattr(original, "__ios_mp_patched__", False):
        return False
    wrapper = functools.wraps(original)(make(original))
    wrapper.__ios_mp_patched__ = True
    setattr(cls, name, wrapper)
    return True


def _patch_plugin_loader(loader_module: Any) -> None:
    def make(original: Any) -> Any:
        def _load_module_source(self: Any, *args: Any, **kwargs: Any) -> Any:
            name = _plugin_module_name(self, args, kwargs)
            if name is None:
                module = original(self, *args, **kwargs)
            else:
                module = _plugin_imports.load(name, lambda: original(self, *args, **kwargs))
            _isolate_caches(module)
            return module

        return _load_module_source

    cls = getattr(loader_module, "PluginLoader", None)
    if not _wrap_method(cls, "_load_module_source", make):
        return
    # Plugin loaders are shared with the workers, not copied into each one's snapshot:
    # they are caches of plugin paths and classes (a forked child gets its parent's
    # warm ones for free), and ansible hands every worker all of them (2.19+:
    # get_plugin_loader_namespace(); 2.16-2.18: SharedPluginLoaderObj), so copying
    # them cost ~15 ms of every worker start, in the controller's thread
    # (benches/ansible_bench.py --phases).
    from .. import _snapshot

    _snapshot.share_type(cls)


class PerWorkerAttribute:
    """A data descriptor: an attribute of which each ios_mp worker has its own
    value (``default`` until it sets one), as each forked worker has its own
    copy of an object. The app's threads share the app's value."""

    def __init__(self, name: str, default: Any = None) -> None:
        self.name = name
        self.default = default
        self._values: dict[tuple[int, int], Any] = {}  # (id(obj), process key)

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        if obj is None:
            return self
        from .. import _core

        return self._values.get((id(obj), _core._process_key()), self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        from .. import _core

        self._values[(id(obj), _core._process_key())] = value

    def __delete__(self, obj: Any) -> None:
        from .. import _core

        self._values.pop((id(obj), _core._process_key()), None)

    def _worker_exited(self, vpid: int) -> None:
        for key in [k for k in self._values if k[1] == vpid]:
            del self._values[key]


_attributes: list[PerWorkerAttribute] = []


def _patch_display(display_module: Any) -> None:
    """``Display._final_q`` per worker (hazard 3): ansible's worker calls
    ``display.set_queue(final_q)`` on the process-wide ``Display`` singleton, so
    that, in the worker, output goes to the controller through the queue. With
    threads, that switched the *app's* display to the queue too, and every line
    after the first task was lost. Each worker now has its own ``_final_q``."""
    cls = getattr(display_module, "Display", None)
    if cls is None or isinstance(cls.__dict__.get("_final_q"), PerWorkerAttribute):
        return
    attr = PerWorkerAttribute("_final_q")
    # Instances made before the patch keep their value as the app's.
    singleton = getattr(cls, "_Singleton__instance", None)  # ansible's Singleton metaclass
    for obj in [singleton] if singleton is not None else []:
        if "_final_q" in vars(obj):
            attr._values[(id(obj), 0)] = vars(obj).pop("_final_q")
    cls._final_q = attr
    _attributes.append(attr)
    _ensure_exit_hook()


# --- per-worker ``worker.current_worker`` (hazard 11) -----------------------------------


class _WorkerModule(types.ModuleType):
    """The class of ``ansible.executor.process.worker`` once patched: reading its
    ``current_worker`` in an ios_mp worker gives that worker's ``WorkerProcess``."""

    @property
    def current_worker(self) -> Any:
        from .. import _core

        proc = _core._worker_process()
        worker_class = vars(self).get("WorkerProcess")
        if proc is not None and worker_class is not None and isinstance(proc, worker_class):
            return proc
        return vars(self).get("current_worker")

    @current_worker.setter
    def current_worker(self, value: Any) -> None:
        vars(self)["current_worker"] = value


def _patch_worker(worker_module: Any) -> None:
    """``worker.current_worker`` per worker (hazard 11, 2.16+): ``WorkerProcess.run``
    does ``global current_worker; current_worker = self``, and ``Display.prompt_until``
    reads it to send a prompt and wait for its reply on ``current_worker.worker_queue``.
    Forked, each worker had its own global; as threads, the last worker to start won,
    and a prompting worker (``pause``, paramiko's host-key question) sent another
    worker's id and waited on another worker's queue for ever. In a worker, the
    module's ``current_worker`` is now the worker itself (``current_process()``);
    the assignment still lands in the module's dict, which the app's threads read."""
    if type(worker_module) is types.ModuleType:
        worker_module.__class__ = _WorkerModule


# --- TaskQueueManager.cleanup closes the connection lock file ---------------------------


def _patch_task_queue_manager(tqm_module: Any) -> None:
    """``TaskQueueManager.__init__`` opens ``_connection_lockfile``
    (``tempfile.TemporaryFile()``, 2.16+) and nothing closes it: a CLI process just
    exits. An app that runs many playbooks leaked one descriptor per run (closed
    only by the garbage collector, with a ``ResourceWarning``). ``cleanup()``, which
    ``PlaybookExecutor.run`` calls at the end of every run, now closes it too."""

    def make(original: Any) -> Any:
        def cleanup(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            finally:
                lockfile = getattr(self, "_connection_lockfile", None)
                if lockfile is not None and not lockfile.closed:
                    lockfile.close()
                _bump_vm_generation()  # drop the VariableManager copies of this run

        return cleanup

    _wrap_method(getattr(tqm_module, "TaskQueueManager", None), "cleanup", make)


# --- the Play is shared with the workers -------------------------------------------------


def _share_play(play_module: Any) -> None:
    """``Play`` objects are not copied into a worker's snapshot (2.16+). A worker is
    handed its ``Task``, whose parent ``Block`` (copied: ``Task.post_validate``
    templates the parent blocks in place, per host) refers to the ``Play``, which
    holds every block, task, handler and role of the play: each worker start copied
    the whole play with its task, in the controller's thread (the ``_task`` copy was
    16 ms at 5 hosts and 34 ms at 20, ``benches/ansible_bench.py --phases``; most of
    what is left of it is the ``VariableManager`` the Task refers to). A worker only
    reads the Play (its vars, roles, tags, name); the strategy in the controller
    owns it. The e2e playbooks' recaps stay identical to fork with it."""
    from .. import _snapshot

    cls = getattr(play_module, "Play", None)
    if isinstance(cls, type):
        _snapshot.share_type(cls)


# --- the VariableManager's per-host stores, copied once per generation --------------------

# Bumped by every controller-side mutation of a VariableManager's stores (the wrapped
# methods below). A copy made at generation g is reused while the generation is g.
_vm_generation = 0
# id(per-host dict) -> (that dict, its copy, generation, len at copy time)
_vm_copies: dict[int, tuple[Any, Any, int, int]] = {}
_vm_lock = threading.Lock()

_VM_MUTATORS = (
    "set_host_facts",
    "set_nonpersistent_facts",
    "set_host_variable",
    "clear_facts",
    "set_inventory",
    "__setstate__",
)
_FACT_CACHE_MUTATORS = ("__setitem__", "__delitem__", "flush", "first_order_merge")


def _bump_vm_generation() -> None:
    global _vm_generation
    with _vm_lock:
        _vm_generation += 1
        _vm_copies.clear()


def _vm_stores(vm: Any) -> list[Any]:
    """The host -> dict mappings of a VariableManager that hold every host's data: the
    fact cache (2.16-2.18: a ``FactCache`` around a cache plugin; 2.19+: the plugin;
    its ``_cache`` dict), the set_fact store and the include_vars store."""
    stores = []
    fact_cache = vars(vm).get("_fact_cache")
    plugin = getattr(fact_cache, "_plugin", fact_cache)
    for store in (
        fact_cache if isinstance(fact_cache, dict) else getattr(plugin, "_cache", None),
        vars(vm).get("_nonpersistent_fact_cache"),
        vars(vm).get("_vars_cache"),
    ):
        if isinstance(store, dict):
            stores.append(store)
    return stores


def _copy_variable_manager(vm: Any, copier: Any) -> Any:
    """The snapshot copy hook of ``VariableManager`` (2.16+). At 20 hosts the manager
    holds every host's facts, and each worker start copied them all (~19-40 ms of the
    controller's time per start, ``benches/ansible_bench.py --phases``), though a worker
    only reads them (``get_vars`` for ``delegate_to``, ``hostvars``). The per-host dicts
    of its stores are copied once per *generation* and that copy is given to every
    worker started until the controller changes a store (facts, set_fact results,
    include_vars, clear_facts: each bumps the generation and drops the copies). The
    copies are never touched by the controller, so a worker sees the stores as they
    were when it started (as after fork); the mappings themselves and the manager
    are still copied per worker, so a worker's own additions stay its own."""
    with _vm_lock:
        generation = _vm_generation
        for store in _vm_stores(vm):
            for value in list(store.values()):
                if type(value) is not dict:
                    continue
                entry = _vm_copies.get(id(value))
                if (
                    entry is not None
                    and entry[0] is value
                    and entry[2] == generation
                    and entry[3] == len(value)
                ):
                    copier.seed(value, entry[1])
                elif id(value) not in copier.memo:
                    _vm_copies[id(value)] = (value, copier(value), generation, len(value))
    return copier.plain(vm)


def _wrap_mutators(cls: Any, names: tuple[str, ...]) -> None:
    def make(original: Any) -> Any:
        def mutator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return original(self, *args, **kwargs)
            finally:
                _bump_vm_generation()

        return mutator

    for name in names:
        if name in vars(cls):
            _wrap_method(cls, name, make)


def _share_variable_manager_copies(vm_module: Any) -> None:
    """``VariableManager`` (2.16+): see ``_copy_variable_manager``."""
    from .. import _snapshot

    cls = getattr(vm_module, "VariableManager", None)
    if not isinstance(cls, type) or cls in _snapshot._copy_hooks:
        return
    _wrap_mutators(cls, _VM_MUTATORS)
    _snapshot.copy_hook(cls, _copy_variable_manager)


def _patch_fact_cache(fact_cache_module: Any) -> None:
    """``FactCache`` (2.16-2.18) writes bump the VariableManager generation."""
    cls = getattr(fact_cache_module, "FactCache", None)
    if isinstance(cls, type):
        _wrap_mutators(cls, _FACT_CACHE_MUTATORS)


_AFTER_IMPORT = {
    "ansible.vars.manager": lambda m: _share_variable_manager_copies(m),
    "ansible.vars.fact_cache": lambda m: _patch_fact_cache(m),
    "ansible.playbook.play": lambda m: _share_play(m),
    "ansible.executor.task_queue_manager": lambda m: _patch_task_queue_manager(m),
    "ansible.plugins.loader": lambda m: _patch_plugin_loader(m),
    "ansible.utils.display": lambda m: _patch_display(m),
    "ansible.executor.process.worker": lambda m: _patch_worker(m),
}


class _AfterLoaderImport(importlib.abc.MetaPathFinder):
    """Patches ansible's modules of ``_AFTER_IMPORT`` right after they are imported."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        patch = _AFTER_IMPORT.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                break
        else:
            return None
        exec_module = spec.loader.exec_module

        def exec_and_patch(module: Any) -> None:
            exec_module(module)
            patch(module)

        spec.loader.exec_module = exec_and_patch  # type: ignore[method-assign]
        return spec


_after_import = _AfterLoaderImport()


def _ensure_exit_hook() -> None:
    from .. import process

    if _close_worker_caches not in process._exit_hooks:
        process._exit_hooks.append(_close_worker_caches)


def _install_cache_isolation() -> None:
    _ensure_exit_hook()
    pending = False
    for name, patch in _AFTER_IMPORT.items():
        module = sys.modules.get(name)
        if module is not None:
            patch(module)
        else:
            pending = True
    if pending and _after_import not in sys.meta_path:
        sys.meta_path.insert(0, _after_import)
    for name, module in list(sys.modules.items()):
        if name.endswith("paramiko_ssh") and module is not None:
            _isolate_caches(module)


# --- where ansible writes, inside an app container ---------------------------------------

#: What ``install()`` sets in ``os.environ`` on iOS when the app has not set it:
#: name -> path relative to ``HOME`` (``None``: under ``tempfile.gettempdir()``).
CONTAINER_PATHS = {
    "ANSIBLE_HOME": "Library/ansible",
    "ANSIBLE_LOCAL_TEMP": None,
}


def _set_container_paths() -> dict[str, str]:
    """ansible-core (2.14+) writes under ``ANSIBLE_HOME``, ``~/.ansible`` by default:
    ``tmp/`` (``DEFAULT_LOCAL_TMP``, a directory per run, on every run), the galaxy
    cache, collections installed by ``ansible-galaxy``. In an iOS app ``HOME`` is the
    app's data container, whose root is not writable: only ``Documents``, ``Library``
    (and ``Library/Caches``) and ``tmp`` are (``TMPDIR`` is ``$HOME/tmp``). On iOS
    (``sys.platform == "ios"``, also under ``ios_mp.sandbox.enable(platform=True)``)
    this sets ``ANSIBLE_HOME`` to ``$HOME/Library/ansible`` and ``ANSIBLE_LOCAL_TEMP``
    to ``<tempfile.gettempdir()>/ansible-local``, each only if the environment does
    not name it already. Returns what it set. Elsewhere (Android's ``HOME`` is the
    app's writable files directory; desktops) it sets nothing."""
    if sys.platform != "ios":
        return {}
    import tempfile

    home = os.path.expanduser("~")
    done = {}
    for name, relative in CONTAINER_PATHS.items():
        if os.environ.get(name):
            continue
        if relative is None:
            path = os.path.join(tempfile.gettempdir(), "ansible-local")
        else:
            path = os.path.join(home, relative)
        os.environ[name] = done[name] = path
    return done


def _is_stand_in(module: Any) -> bool:
    return getattr(module, "__ios_mp_stand_in__", False) is True


def install() -> tuple[str, ...]:
    """Install every fix this interpreter needs; return the names of the stand-ins in place.

    A stand-in for ``pwd``/``grp`` goes into ``sys.modules`` only when importing
    the real module fails (on iOS, or under ``ios_mp.sandbox``). Call it before
    ``ansible`` is imported.
    """
    with _lock:
        for name in STAND_INS:
            record = _installed.get(name)
            if record is not None and sys.modules.get(name) is record[1]:
                continue  # already in place
            _installed.pop(name, None)
            current = sys.modules.get(name, _MISSING)
            if _is_stand_in(current):
                continue  # another copy of ours (a reloaded compat module): leave it
            try:
                importlib.import_module(name)
            except ImportError:
                stand_in = _FACTORIES[name]()
                _installed[name] = (current, stand_in)
                sys.modules[name] = stand_in
        _install_cache_isolation()
        _set_container_paths()
        return installed()


def uninstall() -> None:
    """Take out what ``install()`` put in, where it is still in place."""
    with _lock:
        for name, (previous, stand_in) in list(_installed.items()):
            if sys.modules.get(name) is stand_in:
                if previous is _MISSING:
                    del sys.modules[name]
                else:
                    sys.modules[name] = previous
            del _installed[name]


def installed() -> tuple[str, ...]:
    """The names of the stand-ins ``install()`` put in ``sys.modules`` that are still there."""
    return tuple(n for n in STAND_INS if n in _installed and sys.modules.get(n) is _installed[n][1])
