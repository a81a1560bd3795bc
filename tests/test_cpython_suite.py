"""CPython's own multiprocessing tests (``test._test_multiprocessing``), run through ios_mp.

Every CPython ships its multiprocessing test suite as ``test._test_multiprocessing``;
CPython's ``test_multiprocessing_{fork,spawn,forkserver}`` packages turn its
``_TestX`` base classes into ``WithProcessesTestX``/``WithThreadsTestX``/
``WithManagerTestX`` test cases with ``install_tests_in_module_dict()``, which
also copies the module's plain test classes (``OtherTest``, ``TestStartMethod``,
...). This module runs *every* class that function makes (four flavours:
processes, manager, threads, misc; see ``flavour_of``), and, where the interpreter
ships ``test_concurrent_futures``, its ProcessPoolExecutor classes (the fifth
flavour, futures), with ios_mp installed as ``multiprocessing`` and the iOS
sandbox on, so each test's processes are ios_mp's threads. Tests that are
inherently about OS processes are skipped with the reason given in
``tests/cpython/exclusions.py``.

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
* A test fails if it leaves an ios_mp process running (as conftest checks for
  the project's tests), less the workers of its class's ``Pool``; a process an
  earlier test left is counted against that test only.
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

# Every test class CPython's ``install_tests_in_module_dict()`` makes runs, in
# four flavours (by class name): ``WithProcessesTestX``, ``WithManagerTestX``,
# ``WithThreadsTestX`` (from the ``_TestX`` areas' ``ALLOWED_TYPES``), and "misc",
# the module's plain unittest classes (``OtherTest``, ``TestStartMethod``, ...);
# and "futures", CPython's ProcessPoolExecutor tests (see ``_build_futures``).
FLAVOURS = ("processes", "manager", "threads", "misc", "futures")


def flavour_of(class_name: str) -> str:
    """The flavour of a class of the suite, from its name (as report.py reads it)."""
    for flavour in FLAVOURS[:3]:
        if class_name.startswith("With" + flavour.capitalize() + "Test"):
            return flavour
    if class_name.startswith("ProcessPool"):
        return "futures"
    return "misc"


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


def _import_under_stand_in(name: str) -> types.ModuleType:
    """Import CPython's test module ``name`` under ios_mp and the sandbox."""
    stand_in = types.ModuleType("_multiprocessing")
    stand_in.__doc__ = (
        "Stand-in for the import of CPython's multiprocessing tests only: they check "
        "that _multiprocessing imports and read HAVE_BROKEN_SEM_GETVALUE (absent: "
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
        return importlib.import_module(name)
    except unittest.SkipTest as exc:
        # Not a reason to pass quietly: the whole point is to run these tests.
        raise RuntimeError(f"{name} skipped itself at import: {exc}") from exc
    finally:
        if lend_register:
            del manager.register
        if saved is _MISSING:
            sys.modules.pop("_multiprocessing", None)
        else:
            sys.modules["_multiprocessing"] = saved


def _import_suite() -> types.ModuleType:
    """Import ``test._test_multiprocessing`` under ios_mp and the sandbox."""
    if importlib.util.find_spec("test") is None:
        pytest.skip("CPython's test package is not installed", allow_module_level=True)
    return _import_under_stand_in("test._test_multiprocessing")


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
    """Every class of the suite, as CPython's own ``test_multiprocessing_fork`` builds them."""
    made: dict[str, object] = {"__name__": __name__}
    suite.install_tests_in_module_dict(made, START_METHOD)
    classes: dict[str, type] = {}
    mixins = {
        "processes": suite.ProcessesMixin,
        "manager": suite.ManagerMixin,
        "threads": suite.ThreadsMixin,
    }
    for name, cls in made.items():
        if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
            continue
        flavour = flavour_of(name)
        if flavour != "misc":
            assert issubclass(cls, mixins[flavour]) and issubclass(cls, suite.BaseTestCase)
        for test_name in unittest.TestLoader().getTestCaseNames(cls):
            reason = _excluded(f"{name}.{test_name}")
            if reason is not None:
                test = getattr(cls, test_name)
                setattr(cls, test_name, unittest.skip(EXCLUDED_PREFIX + reason)(test))
        if flavour != "misc":  # plain classes have no BaseMixin bookkeeping
            _fail_on_dangling(cls)
        classes[name] = cls
    globals()["setUpModule"] = made["setUpModule"]
    globals()["tearDownModule"] = made["tearDownModule"]
    return classes


# CPython's test_concurrent_futures: a module up to 3.10, a package of modules
# since 3.12 (3.11 and 3.12 here ship neither). Its executor tests are made for
# each executor mixin; the ProcessPoolExecutor ones with the 'fork' context are
# run, as the multiprocessing classes above run with 'fork' (ios_mp's 'spawn'
# and 'forkserver' contexts run processes exactly the same way).
FUTURES_MODULES = (
    "test_process_pool",
    "test_wait",
    "test_as_completed",
    "test_init",
    "test_deadlock",
    "test_shutdown",
)
FUTURES_PREFIX = "ProcessPoolFork"
# They are the slowest part of the module (about a minute: several tests wait
# for timeouts), so by default they run on 3.9 and 3.13 only, the oldest and
# newest versions that ship them; IOS_MP_CPYTHON_FUTURES=1 runs them on 3.10
# too, =0 nowhere.
FUTURES_ENV = "IOS_MP_CPYTHON_FUTURES"
FUTURES_BY_DEFAULT = ((3, 9), (3, 13))


def _futures_wanted() -> bool:
    setting = os.environ.get(FUTURES_ENV, "")
    if setting not in ("", "0", "1"):
        raise ValueError(f"{FUTURES_ENV} must be 0, 1 or unset, not {setting!r}")
    return setting == "1" or (setting == "" and sys.version_info[:2] in FUTURES_BY_DEFAULT)


def _futures_modules() -> list[types.ModuleType]:
    if not _futures_wanted():
        return []
    spec = importlib.util.find_spec("test.test_concurrent_futures")
    if spec is None:
        return []
    if spec.submodule_search_locations is None:  # a single module (3.9, 3.10)
        return [_import_under_stand_in("test.test_concurrent_futures")]
    return [
        _import_under_stand_in(f"test.test_concurrent_futures.{name}") for name in FUTURES_MODULES
    ]


def _build_futures() -> dict[str, type]:
    """The ProcessPoolExecutor test classes (fork context) of test_concurrent_futures."""
    classes: dict[str, type] = {}
    for module in _futures_modules():
        for name, cls in vars(module).items():
            if not (
                name.startswith(FUTURES_PREFIX)
                and not name.startswith(FUTURES_PREFIX + "server")  # ProcessPoolForkserver
                and isinstance(cls, type)
                and issubclass(cls, unittest.TestCase)
            ):
                continue
            assert name not in CLASSES and name not in classes, name
            # A subclass in this module: the stdlib class stays untouched.
            cls = type(name, (cls,), {"__module__": __name__, "__qualname__": name})
            for test_name in unittest.TestLoader().getTestCaseNames(cls):
                reason = _excluded(f"{name}.{test_name}")
                if reason is not None:
                    test = getattr(cls, test_name)
                    setattr(cls, test_name, unittest.skip(EXCLUDED_PREFIX + reason)(test))
            classes[name] = cls
    return classes


CLASSES = _build()
CLASSES.update(_build_futures())
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


def _pool_workers(pool) -> list:
    """The worker processes of a test class's ``pool``: a ``Pool``, or (manager
    flavour) a proxy of one, whose referent lives in the app's in-app manager server."""
    token = getattr(pool, "_token", None)
    if token is not None:
        server = ios_mp.managers._local_server(token.address)
        pool = server.id_to_obj.get(token.id, (None,))[0] if server is not None else None
    # A ThreadPool's workers are plain threads, not ios_mp workers.
    return [w for w in getattr(pool, "_pool", []) if isinstance(w, ios_mp.process.BaseProcess)]


@pytest.fixture(autouse=True)
def _no_leaked_workers(request):
    """conftest's check that a test leaves no ios_mp worker running, less the
    workers of the class's own pool: ``_TestPool.setUpClass`` makes one ``Pool(4)``
    for the whole class (``tearDownClass`` terminates it, and the class's dangling
    check above then applies); in the manager flavour, through the manager.
    A worker that an earlier test left (and failed for) is not counted again."""
    import ios_mp._core as core

    def running() -> set:
        return {p for p in list(multiprocessing.process._dangling) if _is_running(p)}

    before = running()
    yield
    workers = set(_pool_workers(getattr(request.cls, "pool", None)))

    def leaked() -> set:
        return running() - before - workers

    deadline = time.monotonic() + 5
    while leaked() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not leaked(), f"a test left ios_mp processes running: {leaked()}"
    if not before:  # and none that the process registry knows and we do not
        assert core._live_count() <= len(running()), "a test left an ios_mp process running"


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
    futures_run = any(flavour_of(name) == "futures" for name in CLASSES)
    stale = [
        p
        for p in EXCLUSIONS
        if not any(fnmatch.fnmatchcase(i, p) for i in ids)
        # CPython's futures tests: not on 3.11/3.12, nor with IOS_MP_CPYTHON_FUTURES=0
        and (futures_run or flavour_of(p.split(".", 1)[0]) != "futures")
    ]
    assert stale == []


def test_exclusion_reasons_are_concrete():
    assert all(len(reason) >= 20 for reason in EXCLUSIONS.values())
