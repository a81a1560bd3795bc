"""pytest plugin: run the tests inside the iOS sandbox (``ios_mp.sandbox``).

Load it with ``-p ios_mp.pytest_plugin`` (the project's ``addopts`` does). It
adds:

* ``--ios-sandbox`` / ``--no-ios-sandbox``: turn the sandbox on (the default) or
  off for the run. When on, the sandbox is enabled before the initial
  ``conftest.py`` files are imported (``pytest_load_initial_conftests``; again,
  idempotently, in a ``tryfirst`` ``pytest_configure`` for when the plugin is
  loaded too late for that hook) and disabled in ``pytest_unconfigure``.
  A sandbox that was already on when pytest started (for example under
  ``python -m ios_mp --sandbox ios -m pytest``) is left on, with its options.
  The plugin's sandbox is ``sandbox.enable("ios")`` with its defaults, the
  faithful one: the modules iOS lacks cannot be imported (``pwd``, ``grp``,
  ``_posixsubprocess``, ``readline``, ...), no process can be created, and the
  environment has no ``USER``/``LOGNAME``. The standard streams are left to
  pytest's capture (which already gives a stdin that cannot be read).
* the ``ios_sandbox`` fixture: the ``ios_mp.sandbox`` module, after checking the
  sandbox is on.
* the ``no_sandbox`` marker: the sandbox is off while a marked test runs
  (its setup, call and teardown) and back on afterwards, with the same options.
  Use it for tests that must start real processes, e.g. to run
  ``python -m ios_mp`` end to end, or that need a module iOS lacks.
* a report-header line saying whether the sandbox is on.

Importing this module imports the ``ios_mp`` package (and with it whatever its
``__init__`` does, such as installing ios_mp as ``multiprocessing``) before the
sandbox is enabled; ios_mp imports no module iOS lacks, so that order is safe.
"""

from __future__ import annotations

from typing import Any, Generator

import pytest

from . import sandbox

__all__: list[str] = []

# True in config.stash once this plugin has enabled the sandbox for the run;
# the value says whether it must disable it at the end (False: it was on already).
_OWNED = pytest.StashKey[bool]()

_KIND = "ios"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ios_mp", "ios_mp iOS sandbox")
    group.addoption(
        "--ios-sandbox",
        action="store_true",
        dest="ios_sandbox",
        default=True,
        help="run the tests with ios_mp.sandbox enabled, like CPython on iOS: no "
        "processes, none of the modules iOS lacks (pwd, grp, ...), no USER/LOGNAME (default)",
    )
    group.addoption(
        "--no-ios-sandbox",
        action="store_false",
        dest="ios_sandbox",
        help="run the tests without the ios_mp sandbox",
    )


def _start(config: pytest.Config, wanted: bool) -> None:
    if not wanted or _OWNED in config.stash:
        return
    config.stash[_OWNED] = not sandbox.is_enabled()
    sandbox.enable(_KIND)


def _stop(config: pytest.Config) -> None:
    if config.stash.get(_OWNED, False):
        sandbox.disable()
    config.stash[_OWNED] = False  # done: a second call does nothing


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> None:
    # The earliest point where the options are known (this hook only reaches
    # plugins given with -p or installed). If parsing fails after this, pytest
    # skips pytest_unconfigure but still runs the config's cleanups.
    _start(early_config, getattr(early_config.known_args_namespace, "ios_sandbox", True))
    early_config.add_cleanup(lambda: _stop(early_config))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "no_sandbox: run this test with the ios_mp sandbox disabled (real processes allowed)",
    )
    _start(config, config.getoption("ios_sandbox"))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    _stop(config)


def pytest_report_header(config: pytest.Config) -> str:
    options = sandbox.options()
    if options is None:
        return "ios_mp sandbox: off"
    user = options["user"]
    details = [
        "no processes",
        f"none of the {len(sandbox.NA_MODULES)} modules iOS lacks",
        "no user name in the environment" if user is None else f"USER={user}",
        f"stdin {options['stdin']}",
        f"stdio {options['stdio']}",
    ]
    if options["platform"]:
        details.append("sys.platform ios")
    return f"ios_mp sandbox: on ({options['kind']}: {', '.join(details)})"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, Any, None]:
    # Wraps setup, call and teardown of one test. Fixtures of a wider scope set up
    # here are set up without the sandbox (and may be torn down with it).
    if item.get_closest_marker("no_sandbox") is None or not sandbox.is_enabled():
        yield
        return
    options = sandbox.options() or {"kind": _KIND}
    sandbox.disable()
    try:
        yield
    finally:
        sandbox.enable(**options)


@pytest.fixture
def ios_sandbox() -> Any:
    """The ``ios_mp.sandbox`` module; fails the test if the sandbox is off."""
    assert sandbox.is_enabled(), (
        "the ios_mp sandbox is off (run without --no-ios-sandbox, and not in a no_sandbox test)"
    )
    return sandbox
