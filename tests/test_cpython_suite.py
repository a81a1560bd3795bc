"""CPython's own multiprocessing tests (``test._test_multiprocessing``), run through ios_mp.

Every CPython ships its multiprocessing test suite as ``test._test_multiprocessing``;
CPython's ``test_multiprocessing_{fork,spawn,forkserver}`` packages turn its
``_TestX`` base classes into ``WithProcessesTestX``/``WithThreadsTestX``/
``WithManagerTestX`` test cases with ``install_tests_in_module_dict()``. This module
does the same for the *processes* flavour of the areas ios_mp implements (see
``AREAS``; ``MANAGER_AREAS`` adds manager-flavour and listener classes), with
ios_mp installed as ``multiprocessing`` and the iOS sandbox on, so
each test's processes are ios_mp's threads. Tests that are inherently about OS
processes, or that need parts of multiprocessing ios_mp does not implement yet,
are skipped with the reason given in ``tests/cpython/exclusions.py``.

Run it with ``scripts/test.sh -k cpython`` (every CPython) or
``python -m pytest tests/test_cpython_suite.py``; ``tests/cpython/report.py`` prints
the per-version table of docs/cpython-suite.md.

What this module adds around the stdlib test module, and why:

* Importing ``test._test_multiprocessing`` needs ``_multiprocessing``, which the
  sandbox blocks (as iOS lacks it): a stand-in module is put in ``sys.modules``
  for the import only, and the sandbox's ``None`` is restored right after.
  ``support.skip_if_broken_multiprocessing_synchronize()`` then only needs
  ``multiprocessing.synchronize.Lock`` (ios_mp's). The module also calls
  ``BaseManager.register()`` at import time; should ``BaseManager`` be a placeholder
  (it is implemented now), a no-op ``register`` is lent to it for the import.
* The test classes, and ``setUpModule``/``tearDownModule``, come from the
  interpreter's own ``install_tests_in_module_dict()`` (the one the
  ``test_multiprocessing_fork`` package calls), with ios_mp's default start
  method, ``'fork'``: arguments are shared with the child, not pickled.
* Dangling processes or threads after a test class: stdlib's ``BaseMixin`` and
  ``tearDownModule`` print a warning and set ``support.environment_altered`` (which
  regrtest's ``--fail-env-changed`` turns into a failure). Here, on top of the
  warning, a process or non-daemon thread the class started that is still
  *running* (after a grace of ``DANGLING_GRACE`` seconds) fails the class. Stopped
  ones that are merely still referenced (by a failed test's traceback) and daemon
  threads only warn: a daemon thread a child started outlives it here (a thread
  cannot be killed), where the child's exit would have ended it
  (``test_wait_for_threads`` leaves one in ``time.sleep(20)``).
* The tests run in a temporary working directory, as under regrtest.
* Standard streams are put back after each test: a child that assigns
  ``sys.stderr`` (``test_stderr_flush``, ``test_sys_exit``) assigns the app's,
  since its ``sys`` module is the parent's.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import pathlib
import sys
import threading
import time
import types
import unittest

import pytest

import ios_mp
import ios_mp.managers

# The ios_mp pytest plugin (pyproject's addopts) installed ios_mp as multiprocessing.
assert ios_mp.is_installed() and sys.modules["multiprocessing"] is ios_mp
multiprocessing = ios_mp

# Unittest classes are not pytest functions, but pytest-timeout reads the
# closest ``timeout`` marker of each item, and a module's pytestmark is on
# every item collected from it (a hung test is stopped by SIGALRM in the main
# thread; every ios_mp wait there checks for signals).
pytestmark = pytest.mark.timeout(30)

HERE = pathlib.Path(__file__).resolve().parent

# The areas (``_TestX`` base classes) ios_mp implements.
AREAS = (
    "_TestProcess",
    "_TestSubclassingProcess",
    "_TestQueue",
    "_TestLock",
    "_TestSemaphore",
    "_TestCondition",
    "_TestEvent",
    "_TestBarrier",
    "_TestValue",
    "_TestArray",
    "_TestSharedCTypes",
    "_TestPool",
    "_TestPoolWorkerErrors",
    "_TestPoolWorkerLifetime",
    "_TestSharedMemory",
)
FLAVOUR = "processes"
# Managers and listeners: (flavour, area) pairs -- their own areas, the manager
# flavour of other areas (``WithManagerTestX``: the same tests through manager
# proxies), and (None, name) for a plain unittest class of the suite.
MANAGER_AREAS = (
    ("manager", "_TestQueue"),
    ("manager", "_TestLock"),
    ("manager", "_TestSemaphore"),
    ("manager", "_TestCondition"),
    ("manager", "_TestEvent"),
    ("manager", "_TestBarrier"),
    ("manager", "_TestContainers"),
    ("manager", "_TestMyManager"),
    ("manager", "_TestRemoteManager"),
    ("manager", "_TestManagerRestart"),
    ("processes", "_TestManagerRestart"),
    ("processes", "_TestListener"),
    ("processes", "_TestListenerClient"),
    ("processes", "_TestPoll"),
    ("processes", "_TestPicklingConnections"),
    (None, "TestSyncManagerTypes"),
)
START_METHOD = multiprocessing.get_start_method()  # ios_mp's default: 'fork'
EXCLUDED_PREFIX = "excluded: "


def _load_exclusions() -> types.ModuleType:
    # By path: whether tests/ is a package, and pytest's import mode, must not matter.
    spec = importlib.util.spec_from_file_location(
        "_ios_mp_cpython_exclusions", HERE / "cpython" / "exclusions.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


exclusions = _load_exclusions()
EXCLUSIONS: dict[str, str] = exclusions.for_version(sys.version_info)

_MISSING = object()


def _import_suite() -> types.ModuleType:
    """Import ``test._test_multiprocessing`` under ios_mp and the sandbox."""
    if importlib.util.find_spec("test") is None:
        pytest.skip("CPython's test package is not installed", allow_module_level=True)
    stand_in = types.ModuleType("_multiprocessing")
    stand_in.__doc__ = (
        "Stand-in for the import of test._test_multiprocessing only: it checks "
        "that _multiprocessing imports and reads HAVE_BROKEN_SEM_GETVALUE (absent: "
        "False). ios_mp itself never uses _multiprocessing."
    )
    saved = sys.modules.get("_multiprocessing", _MISSING)
    manager = ios_mp.managers.BaseManager
    lend_register = not hasattr(manager, "register")
    sys.modules["_multiprocessing"] = stand_in
    if lend_register:
        # The suite registers its manager test types at import time.
        manager.register = classmethod(lambda cls, *args, **kwargs: None)
    try:
        return importlib.import_module("test._test_multiprocessing")
    except unittest.SkipTest as exc:
        # Not a reason to pass quietly: the whole point is to run these tests.
        raise RuntimeError(f"test._test_multiprocessing skipped itself at import: {exc}") from exc
    finally:
        if lend_register:
            del manager.register
        if saved is _MISSING:
            sys.modules.pop("_multiprocessing", None)
        else:
            sys.modules["_multiprocessing"] = saved


suite = _import_suite()
assert suite.multiprocessing is multiprocessing, "the suite must see ios_mp as multiprocessing"


def _excluded(test_id: str) -> str | None:
    for pattern, reason in EXCLUSIONS.items():
        if fnmatch.fnmatchcase(test_id, pattern):
            return reason
    return None


DANGLING_GRACE = 2.0


def _is_running(p) -> bool:
    try:
        return p.is_alive()
    except ValueError:  # closed
        return False


def _still_running(before: tuple) -> list:
    procs = set(multiprocessing.process._dangling) - set(before[0])
    threads = set(threading._dangling) - set(before[1])
    return [p for p in procs if _is_running(p)] + [
        t for t in threads if t.is_alive() and not t.daemon
    ]


def _fail_on_dangling(cls: type) -> None:
    """Fail ``cls`` if it leaves processes or non-daemon threads running."""
    stdlib_teardown = cls.tearDownClass

    def tearDownClass(klass) -> None:
        deadline = time.monotonic() + DANGLING_GRACE
        while _still_running(klass.dangling) and time.monotonic() < deadline:
            time.sleep(0.02)
        stdlib_teardown()  # BaseMixin: gc, then warns about any dangling process/thread
        running = _still_running(klass.dangling)
        if running:
            raise AssertionError(f"{klass.__name__} left these running: {running}")

    cls.tearDownClass = classmethod(tearDownClass)


def _build() -> dict[str, type]:
    """The processes-flavour classes of ``AREAS``, as CPython's own packages build them."""
    made: dict[str, object] = {"__name__": __name__}
    suite.install_tests_in_module_dict(made, START_METHOD)
    classes: dict[str, type] = {}
    mixins = {"processes": suite.ProcessesMixin, "manager": suite.ManagerMixin}
    for flavour, area in [(FLAVOUR, area) for area in AREAS] + list(MANAGER_AREAS):
        if flavour is None:  # a plain unittest class of the suite
            name = area
            cls = made[name]
            assert isinstance(cls, type) and issubclass(cls, unittest.TestCase)
        else:
            base = getattr(suite, area)
            assert flavour in base.ALLOWED_TYPES, (area, base.ALLOWED_TYPES)
            name = "With" + flavour.capitalize() + area[1:]
            cls = made[name]
            assert isinstance(cls, type) and issubclass(cls, base)
            assert issubclass(cls, mixins[flavour]) and issubclass(cls, unittest.TestCase)
        for test_name in unittest.TestLoader().getTestCaseNames(cls):
            reason = _excluded(f"{name}.{test_name}")
            if reason is not None:
                test = getattr(cls, test_name)
                setattr(cls, test_name, unittest.skip(EXCLUDED_PREFIX + reason)(test))
        if flavour is not None:  # plain classes have no BaseMixin bookkeeping
            _fail_on_dangling(cls)
        classes[name] = cls
    globals()["setUpModule"] = made["setUpModule"]
    globals()["tearDownModule"] = made["tearDownModule"]
    return classes


CLASSES = _build()
globals().update(CLASSES)
__all__ = list(CLASSES)


def _all_test_ids() -> list[str]:
    loader = unittest.TestLoader()
    return [f"{name}.{t}" for name, cls in CLASSES.items() for t in loader.getTestCaseNames(cls)]


@pytest.fixture(autouse=True)
def _restore_std_streams():
    saved = sys.stdin, sys.stdout, sys.stderr
    yield
    sys.stdin, sys.stdout, sys.stderr = saved


@pytest.fixture(autouse=True)
def _no_leaked_workers(request):
    """conftest's check that a test leaves no ios_mp worker running, less the
    workers of the class's own pool: ``_TestPool.setUpClass`` makes one ``Pool(4)``
    for the whole class (``tearDownClass`` terminates it, and the class's dangling
    check above then applies)."""
    import ios_mp._core as core

    yield
    pool = getattr(request.cls, "pool", None)
    workers = getattr(pool, "_pool", [])

    def leaked() -> int:
        return core._live_count() - sum(1 for w in workers if w.is_alive())

    deadline = time.monotonic() + 5
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert leaked() == 0, "a test left an ios_mp process running"


@pytest.fixture(autouse=True, scope="module")
def _in_a_work_dir(tmp_path_factory):
    # As regrtest runs tests in a temporary working directory: some write files
    # (os_helper.TESTFN, temp_cwd("tempcwd")) relative to it.
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cpython-suite"))
    try:
        yield
    finally:
        os.chdir(old)


@pytest.fixture(autouse=True, scope="module")
def _record_python_version(record_testsuite_property):
    # Read by tests/cpython/report.py from the junit xml.
    record_testsuite_property("cpython_suite_python", "%d.%d.%d" % sys.version_info[:3])
    record_testsuite_property("cpython_suite_start_method", START_METHOD)


def test_exclusions_all_match_a_test():
    """A stale exclusion (renamed or removed test) must not linger."""
    ids = _all_test_ids()
    stale = [p for p in EXCLUSIONS if not any(fnmatch.fnmatchcase(i, p) for i in ids)]
    assert stale == []


def test_exclusion_reasons_are_concrete():
    assert all(len(reason) >= 20 for reason in EXCLUSIONS.values())
