"""Tests of ios_mp.sandbox and of the sandbox parts of ios_mp.pytest_plugin.

The plugin (loaded by the project's addopts) runs every test inside the
sandbox, except those marked no_sandbox; tests that switch the sandbox on and
off themselves are marked no_sandbox so that they start from a desktop Python.
"""

from __future__ import annotations

import errno
import gc
import importlib
import os
import pathlib
import subprocess
import sys
import textwrap
import warnings

import pytest

from ios_mp import pytest_plugin, sandbox

MESSAGE = "ios does not support processes."
POSIX = os.name == "posix"


def assert_ios_error(exc: BaseException) -> None:
    """*exc* is exactly what CPython's iOS build raises for process creation."""
    assert type(exc) is OSError
    assert exc.errno == errno.ENOTSUP
    assert exc.strerror == MESSAGE
    assert str(exc) == f"[Errno {errno.ENOTSUP}] {MESSAGE}"


def assert_stub(function: object) -> None:
    # Checked before calling a replaced function: a real exec* would replace pytest.
    assert getattr(function, "_ios_mp_sandbox", False), f"{function!r} is not a sandbox stub"


@pytest.fixture
def desktop():
    """For no_sandbox tests that enable the sandbox: make sure it is off afterwards."""
    assert not sandbox.is_enabled()
    yield
    sandbox.disable()


# --- os ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sandbox.DELETED_OS_FUNCTIONS)
def test_fork_and_system_are_gone(ios_sandbox, name):
    assert not hasattr(os, name)
    assert name not in os.__all__
    if POSIX:
        import posix

        assert not hasattr(posix, name)


def test_from_os_import_star_still_works(ios_sandbox):
    namespace: dict = {}
    exec("from os import *", namespace)
    assert "fork" not in namespace
    assert "execv" in namespace


# Plausible arguments for each replaced function; a stub ignores them.
EXEC_ARGS = {
    "spawnl": (os.P_WAIT, "/bin/true", "true"),
    "spawnle": (os.P_WAIT, "/bin/true", "true", {}),
    "spawnlp": (os.P_WAIT, "true", "true"),
    "spawnlpe": (os.P_WAIT, "true", "true", {}),
    "spawnv": (os.P_WAIT, "/bin/true", ["true"]),
    "spawnve": (os.P_WAIT, "/bin/true", ["true"], {}),
    "spawnvp": (os.P_WAIT, "true", ["true"]),
    "spawnvpe": (os.P_WAIT, "true", ["true"], {}),
    "execv": ("/bin/true", ["true"]),
    "execve": ("/bin/true", ["true"], {}),
    "execl": ("/bin/true", "true"),
    "execle": ("/bin/true", "true", {}),
    "execlp": ("true", "true"),
    "execlpe": ("true", "true", {}),
    "execvp": ("true", ["true"]),
    "execvpe": ("true", ["true"], {}),
}


def test_every_raising_function_is_tested():
    assert set(EXEC_ARGS) == set(sandbox.RAISING_OS_FUNCTIONS)


@pytest.mark.parametrize("name", sandbox.RAISING_OS_FUNCTIONS)
def test_spawn_and_exec_raise_enotsup(ios_sandbox, name):
    function = getattr(os, name)
    assert_stub(function)
    assert function.__name__ == name
    with pytest.raises(OSError) as info:
        function(*EXEC_ARGS[name])
    assert_ios_error(info.value)


@pytest.mark.skipif(not POSIX, reason="posix only")
def test_posix_module_is_patched_too(ios_sandbox):
    import posix

    assert posix.execv is os.execv
    assert_stub(posix.execve)
    with pytest.raises(OSError) as info:
        posix.execv("/bin/true", ["true"])
    assert_ios_error(info.value)


def test_os_popen_raises_through_subprocess(ios_sandbox):
    with pytest.raises(OSError) as info:
        os.popen("true")
    assert_ios_error(info.value)


# --- modules ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["_multiprocessing", "_posixshmem"])
def test_native_multiprocessing_modules_cannot_be_imported(ios_sandbox, name):
    assert sys.modules[name] is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)
    with pytest.raises(ImportError):
        exec(f"import {name}", {})


# --- subprocess -------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda: subprocess.run(["true"]),
        lambda: subprocess.run("true", shell=True, capture_output=True, timeout=5),
        lambda: subprocess.Popen(["true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE),
        lambda: subprocess.call(["true"]),
        lambda: subprocess.check_call(["true"]),
        lambda: subprocess.check_output(["true"], text=True),
        lambda: subprocess.getoutput("true"),
        lambda: subprocess.getstatusoutput("true"),
    ],
    ids=[
        "run",
        "run-shell",
        "Popen",
        "call",
        "check_call",
        "check_output",
        "getoutput",
        "getstatusoutput",
    ],
)
def test_subprocess_raises_the_ios_error(ios_sandbox, call):
    with pytest.raises(OSError) as info:
        call()
    assert_ios_error(info.value)


def test_popen_still_checks_its_arguments(ios_sandbox):
    with pytest.raises(TypeError):
        subprocess.Popen()
    with pytest.raises(TypeError):
        subprocess.Popen(["true"], no_such_argument=1)


def test_subprocess_flags_and_execute_child(ios_sandbox):
    if hasattr(subprocess, "_can_fork_exec"):  # 3.11+
        assert subprocess._can_fork_exec is False
    assert_stub(subprocess.Popen._execute_child)


def test_failed_popen_leaves_no_warning_and_no_open_pipe(ios_sandbox):
    unraisable = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fds = set(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
            for _ in range(3):
                with pytest.raises(OSError):
                    subprocess.Popen(["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            gc.collect()
            if fds is not None:
                assert set(os.listdir("/proc/self/fd")) <= fds
    finally:
        sys.unraisablehook = old_hook
    assert caught == []
    assert unraisable == []


@pytest.mark.skipif(not POSIX, reason="posix only")
def test_posixsubprocess_fork_exec_raises(ios_sandbox):
    import _posixsubprocess  # still importable: desktop subprocess needs it

    assert_stub(_posixsubprocess.fork_exec)
    with pytest.raises(OSError) as info:
        _posixsubprocess.fork_exec()
    assert_ios_error(info.value)
    if hasattr(subprocess, "_fork_exec"):  # its alias in subprocess, 3.11+
        assert subprocess._fork_exec is _posixsubprocess.fork_exec


# --- enable / disable -------------------------------------------------------


def test_enable_is_idempotent(ios_sandbox):
    stub = os.execv
    sandbox.enable("ios")
    sandbox.enable()
    assert sandbox.is_enabled()
    assert os.execv is stub


def test_enable_rejects_unknown_kinds():
    with pytest.raises(ValueError, match=r"kind .*'ios'") as info:
        sandbox.enable("android")
    assert "'android'" in str(info.value)


def test_sandbox_module_is_standalone():
    # It must be usable before (and without) the rest of ios_mp.
    source = pathlib.Path(sandbox.__file__).read_text(encoding="utf-8")
    assert "ios_mp" not in "".join(
        line for line in source.splitlines() if line.lstrip().startswith(("import", "from"))
    )


@pytest.mark.no_sandbox
def test_disable_restores_everything(desktop):
    import _multiprocessing  # a real module, already imported: must come back as is

    saved_os = dict(vars(os))
    saved_popen = dict(vars(subprocess.Popen))
    saved_subprocess = dict(vars(subprocess))
    had_shmem = "_posixshmem" in sys.modules
    shmem = sys.modules.pop("_posixshmem", None)  # absent: must be absent again
    try:
        sandbox.enable("ios")
        assert not hasattr(os, "fork")
        assert sys.modules["_multiprocessing"] is None
        assert sys.modules["_posixshmem"] is None
        sandbox.disable()
        sandbox.disable()  # idempotent too

        assert not sandbox.is_enabled()
        assert sys.modules["_multiprocessing"] is _multiprocessing
        assert "_posixshmem" not in sys.modules
        for saved, now in [
            (saved_os, vars(os)),
            (saved_popen, vars(subprocess.Popen)),
            (saved_subprocess, vars(subprocess)),
        ]:
            assert saved.keys() == now.keys()
            assert all(now[name] is value for name, value in saved.items())
        assert os.fork is saved_os["fork"]
        assert subprocess.run(["true"]).returncode == 0
        assert subprocess.check_output([sys.executable, "-c", "print(42)"], text=True) == "42\n"
    finally:
        if had_shmem:
            sys.modules["_posixshmem"] = shmem


@pytest.mark.no_sandbox
def test_sandboxed_restores_the_state_it_found(desktop):
    with sandbox.sandboxed():
        assert sandbox.is_enabled()
        assert not hasattr(os, "fork")
    assert not sandbox.is_enabled()
    assert hasattr(os, "fork")

    with pytest.raises(RuntimeError), sandbox.sandboxed():
        raise RuntimeError
    assert not sandbox.is_enabled()

    sandbox.enable()
    with sandbox.sandboxed():
        pass
    assert sandbox.is_enabled()  # it was on before the block


# --- pytest plugin ----------------------------------------------------------


def test_plugin_enables_the_sandbox_by_default(ios_sandbox, pytestconfig):
    assert ios_sandbox is sandbox
    assert ios_sandbox.is_enabled()
    assert "ios_mp sandbox: on" in pytest_plugin.pytest_report_header(pytestconfig)


@pytest.mark.no_sandbox
def test_no_sandbox_marker_turns_it_off():
    assert not sandbox.is_enabled()
    assert hasattr(os, "fork")


def test_sandbox_is_back_after_a_no_sandbox_test(ios_sandbox):
    # Runs right after the test above.
    assert sandbox.is_enabled()
    assert not hasattr(os, "fork")


class _Item:
    def __init__(self, marked: bool):
        self.marked = marked

    def get_closest_marker(self, name):
        return object() if self.marked and name == "no_sandbox" else None


def test_no_sandbox_wrapper_switches_off_then_on(ios_sandbox):
    hook = pytest_plugin.pytest_runtest_protocol(_Item(marked=True), None)
    next(hook)
    assert not sandbox.is_enabled()
    with pytest.raises(StopIteration):
        hook.send(None)
    assert sandbox.is_enabled()

    hook = pytest_plugin.pytest_runtest_protocol(_Item(marked=False), None)
    next(hook)
    assert sandbox.is_enabled()
    with pytest.raises(StopIteration):
        hook.send(None)


@pytest.mark.no_sandbox
def test_plugin_options_end_to_end(tmp_path):
    # A separate pytest run, with its own ini file so the project's addopts don't apply.
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_probe.py").write_text(
        textwrap.dedent(
            """
            import os, sys

            def test_probe():
                blocked = sys.modules.get("_posixshmem", 0) is None
                print("FORK", hasattr(os, "fork"), "BLOCKED", blocked)
            """
        )
    )
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(sandbox.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    outputs = {}
    for flag in ("--ios-sandbox", "--no-ios-sandbox"):
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "ios_mp.pytest_plugin",
                flag,
                "-s",
                "-p",
                "no:cacheprovider",
                "test_probe.py",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=50,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs[flag] = result.stdout
    assert "ios_mp sandbox: on" in outputs["--ios-sandbox"]
    assert "FORK False BLOCKED True" in outputs["--ios-sandbox"]
    assert "ios_mp sandbox: off" in outputs["--no-ios-sandbox"]
    assert "FORK True BLOCKED False" in outputs["--no-ios-sandbox"]
