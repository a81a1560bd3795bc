"""Tests of ios_mp.sandbox and of the sandbox parts of ios_mp.pytest_plugin.

The plugin (loaded by the project's addopts) runs every test inside the
sandbox, except those marked no_sandbox; tests that switch the sandbox on and
off themselves are marked no_sandbox so that they start from a desktop Python.
"""

from __future__ import annotations

import errno
import gc
import importlib
import importlib.util
import io
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
def test_posixsubprocess_is_blocked_and_its_fork_exec_raises(ios_sandbox):
    # iOS has no _posixsubprocess; the desktop subprocess imported it before the
    # sandbox blocked it, and keeps a reference whose fork_exec raises.
    with pytest.raises(ModuleNotFoundError):
        import _posixsubprocess  # noqa: F401
    if hasattr(subprocess, "_fork_exec"):  # 3.11+
        fork_exec = subprocess._fork_exec
    else:
        fork_exec = subprocess._posixsubprocess.fork_exec
    assert_stub(fork_exec)
    with pytest.raises(OSError) as info:
        fork_exec()
    assert_ios_error(info.value)


# --- modules iOS lacks --------------------------------------------------------


@pytest.mark.parametrize("name", sandbox.NA_MODULES)
def test_modules_ios_lacks_cannot_be_imported(ios_sandbox, name):
    assert sys.modules[name] is None
    assert importlib.util.find_spec(name) is None  # as for a module that is not there
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(name)


def test_getpass_getuser_fails_as_on_ios(ios_sandbox):
    import getpass

    assert not any(name in os.environ for name in sandbox.USER_VARIABLES)
    # 3.13+ raises OSError when pwd is missing, earlier versions the ImportError.
    expected = OSError if sys.version_info >= (3, 13) else ImportError
    with pytest.raises(expected):
        getpass.getuser()


def test_expanduser_uses_home(ios_sandbox):
    assert os.path.expanduser("~") == os.environ["HOME"]
    assert os.path.expanduser("~/x") == os.path.join(os.environ["HOME"], "x")


def test_path_owner_and_group_are_unsupported(ios_sandbox, tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    for method in (path.owner, path.group):
        with pytest.raises(NotImplementedError, match=r"\(\) is unsupported"):
            method()


def test_tarfile_and_shutil_see_no_user_database(ios_sandbox, tmp_path):
    import shutil
    import tarfile

    assert tarfile.pwd is None and tarfile.grp is None
    path = tmp_path / "f"
    path.write_text("x")
    with tarfile.open(tmp_path / "a.tar", "w") as archive:
        info = archive.gettarinfo(str(path))
    assert info.uname == "" and info.gname == ""  # no names without pwd/grp
    with pytest.raises(LookupError, match="no such user"):
        shutil.chown(path, user="root")


def test_environment_has_no_user_name(ios_sandbox):
    for name in sandbox.USER_VARIABLES:
        assert name not in os.environ
    assert "HOME" in os.environ


@pytest.mark.no_sandbox
def test_already_imported_pwd_bindings_are_taken_back(desktop, monkeypatch):
    import pathlib
    import pwd
    import tarfile

    # As tarfile has it when imported outside the sandbox (one imported inside keeps None).
    monkeypatch.setattr(tarfile, "pwd", pwd)
    owner = vars(pathlib.Path).get("owner")
    sandbox.enable("ios")
    assert tarfile.pwd is None
    assert sys.modules["pwd"] is None
    if sys.version_info >= (3, 13):
        assert "owner" not in vars(pathlib.Path)  # inherited: raises UnsupportedOperation
    sandbox.disable()
    assert tarfile.pwd is pwd
    assert sys.modules["pwd"] is pwd
    assert vars(pathlib.Path).get("owner") is owner


@pytest.mark.no_sandbox
def test_dependent_modules_are_hidden_if_imported(desktop):
    curses = pytest.importorskip("curses")
    sandbox.enable("ios")
    assert sys.modules["curses"] is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("curses")
    sandbox.disable()
    assert sys.modules["curses"] is curses


@pytest.mark.no_sandbox
def test_user_option_and_environment_restore(desktop, monkeypatch):
    monkeypatch.setenv("USER", "desk")
    monkeypatch.setenv("LOGNAME", "desk")
    monkeypatch.setenv("USERNAME", "desk")
    monkeypatch.delenv("LNAME", raising=False)
    sandbox.enable("ios", user="mobile")
    assert (os.environ["USER"], os.environ["LOGNAME"]) == ("mobile", "mobile")
    assert "USERNAME" not in os.environ and "LNAME" not in os.environ
    import getpass

    assert getpass.getuser() == "mobile"
    sandbox.disable()
    assert [os.environ.get(n) for n in sandbox.USER_VARIABLES] == ["desk", "desk", None, "desk"]


# --- standard streams -------------------------------------------------------


@pytest.mark.no_sandbox
def test_stdin_none(desktop):
    stdin = sys.stdin
    sandbox.enable("ios", stdin="none")
    assert sys.stdin is None
    # As a plain interpreter, also through ios_mp's per-worker stream router.
    with pytest.raises(RuntimeError, match=r"input\(\): lost sys\.stdin"):
        input()
    sandbox.disable()
    assert sys.stdin is stdin


@pytest.mark.no_sandbox
def test_stdin_devnull_points_descriptor_0_at_dev_null(desktop, tmp_path):
    # Put a real file on descriptor 0 first, to see it replaced and put back.
    data = tmp_path / "in"
    data.write_bytes(b"typed")
    saved = os.dup(0)
    fd = os.open(data, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    try:
        before = os.fstat(0)
        sandbox.enable("ios", stdin="devnull")
        assert os.read(0, 10) == b""
        assert os.fstat(0).st_rdev == os.stat(os.devnull).st_rdev
        sandbox.disable()
        after = os.fstat(0)
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        assert os.read(0, 10) == b"typed"
    finally:
        os.dup2(saved, 0)
        os.close(saved)


@pytest.mark.no_sandbox
def test_stdio_log_streams_have_no_descriptor(desktop):
    messages: list[tuple[str, str]] = []
    stdout, stderr = sys.stdout, sys.stderr
    sandbox.enable(
        "ios", stdio="log", log=lambda stream, message: messages.append((stream, message))
    )
    try:
        assert isinstance(sys.stdout, sandbox.LogStream)
        for stream in (sys.stdout, sys.stderr):
            with pytest.raises(io.UnsupportedOperation):
                stream.fileno()
            assert not stream.isatty()
            assert stream.encoding == "utf-8"
        print("one\ntwo")
        print("partial", end="")
        sys.stdout.flush()
        sys.stderr.write("é\n")
    finally:
        sandbox.disable()
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    assert messages == [
        ("stdout", "one"),
        ("stdout", "two"),
        ("stdout", "partial"),
        ("stderr", "é"),
    ]


@pytest.mark.no_sandbox
def test_stdio_log_default_sink_writes_lines_to_descriptors(desktop, capfd):
    sandbox.enable("ios", stdio="log")
    try:
        print("to the log", end="")
        sys.stdout.flush()
        print("err line", file=sys.stderr)
    finally:
        sandbox.disable()
    out, err = capfd.readouterr()
    assert out == "to the log\n"
    assert err == "err line\n"


# --- sys.platform emulation -------------------------------------------------


@pytest.mark.no_sandbox
def test_platform_option(desktop):
    import platform

    desktop_platform, desktop_system = sys.platform, platform.system()
    sandbox.enable("ios", platform=True)
    try:
        assert sys.platform == "ios"
        assert platform.system() == "iOS"
        assert platform.release() == sandbox.IOS_RELEASE
        if hasattr(platform, "ios_ver"):  # 3.13+
            assert platform.ios_ver() == ("iOS", sandbox.IOS_RELEASE, "iPhone", False)
    finally:
        sandbox.disable()
    assert (sys.platform, platform.system()) == (desktop_platform, desktop_system)


def test_platform_is_not_emulated_by_default(ios_sandbox):
    assert sys.platform != "ios"
    assert sandbox.options()["platform"] is False


# --- options ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"stdin": "bogus"}, ValueError, "stdin"),
        ({"stdio": "file"}, ValueError, "stdio"),
        ({"log": print}, ValueError, "stdio='log'"),
        ({"stdio": "log", "log": 3}, TypeError, "log must be callable"),
        ({"user": ""}, ValueError, "user"),
        ({"platform": 1}, TypeError, "platform must be a bool"),
    ],
)
def test_enable_rejects_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        sandbox.enable("ios", **kwargs)


def test_options_of_the_plugin_sandbox(ios_sandbox):
    options = sandbox.options()
    assert options == {
        "kind": "ios",
        "stdin": "keep",
        "stdio": "keep",
        "log": None,
        "user": None,
        "platform": False,
    }
    sandbox.enable("ios", user="other")  # already on: no change
    assert sandbox.options() == options
    assert "USER" not in os.environ


@pytest.mark.no_sandbox
def test_ios_mp_imports_no_module_ios_lacks(tmp_path):
    # A fresh interpreter: the sandbox (loaded standalone) first, then every ios_mp module.
    script = tmp_path / "imports.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import importlib, importlib.util, pkgutil, sys
            path = {sandbox.__file__!r}
            spec = importlib.util.spec_from_file_location("standalone_sandbox", path)
            box = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(box)
            box.enable("ios")
            import ios_mp
            names = ["ios_mp"]
            for info in pkgutil.walk_packages(ios_mp.__path__, "ios_mp."):
                if info.name != "ios_mp.pytest_plugin":  # imports pytest
                    importlib.import_module(info.name)
                    names.append(info.name)
            assert all(sys.modules[n] is None for n in box.NA_MODULES)
            print(len(names))
            """
        )
    )
    env = dict(os.environ)
    package_root = os.path.dirname(os.path.dirname(sandbox.__file__))
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=50
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20


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
        saved_modules = {n: sys.modules.get(n, "absent") for n in sandbox.NA_MODULES}
        saved_environ = dict(os.environ)
        sandbox.enable("ios")
        assert not hasattr(os, "fork")
        assert sys.modules["_multiprocessing"] is None
        assert sys.modules["_posixshmem"] is None
        sandbox.disable()
        assert {n: sys.modules.get(n, "absent") for n in sandbox.NA_MODULES} == saved_modules
        assert dict(os.environ) == saved_environ
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
    options = sandbox.options()
    hook = pytest_plugin.pytest_runtest_protocol(_Item(marked=True), None)
    next(hook)
    assert not sandbox.is_enabled()
    with pytest.raises(StopIteration):
        hook.send(None)
    assert sandbox.is_enabled()
    assert sandbox.options() == options  # back on with the same options

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
