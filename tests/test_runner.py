"""Tests of ``python -m ios_mp`` (ios_mp._runner.main).

Most tests call ``main([...])`` in-process, inside the sandbox the pytest plugin
enables. The few end-to-end runs of ``python -m ios_mp`` start a real process,
so they are marked no_sandbox.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

import ios_mp
from ios_mp import sandbox
from ios_mp._runner import USAGE, main

MESSAGE = "ios does not support processes."

# A program that reports what it saw to the JSON file named by $IOS_MP_PROBE_REPORT.
PROBE = textwrap.dedent(
    """
    import json, os, sys

    report = {
        "argv": sys.argv,
        "name": __name__,
        "path0": sys.path[0],
        "fork": hasattr(os, "fork"),
        "multiprocessing_blocked": sys.modules.get("_multiprocessing", 0) is None,
        "pwd_blocked": sys.modules.get("pwd", 0) is None,
        "user": os.environ.get("USER"),
        "logname": os.environ.get("LOGNAME"),
        "stdin": None if sys.stdin is None else type(sys.stdin).__name__,
        "platform": sys.platform,
    }
    try:
        report["stdout_fileno"] = sys.stdout.fileno()
    except OSError as exc:  # io.UnsupportedOperation
        report["stdout_fileno"] = type(exc).__name__
    if os.environ.get("IOS_MP_PROBE_READ_STDIN"):
        report["stdin_data"] = sys.stdin.read()
    import platform
    report["system"] = platform.system()
    try:
        import subprocess
        subprocess.run(["true"])
    except OSError as exc:
        report["subprocess"] = [exc.errno, exc.strerror]
    else:
        report["subprocess"] = None
    with open(os.environ["IOS_MP_PROBE_REPORT"], "w") as f:
        json.dump(report, f)
    """
)


@pytest.fixture
def report_file(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    monkeypatch.setenv("IOS_MP_PROBE_REPORT", str(path))
    return path


def read(report_file) -> dict:
    return json.loads(report_file.read_text())


@pytest.fixture
def probe(tmp_path):
    path = tmp_path / "probe.py"
    path.write_text(PROBE)
    return path


@pytest.fixture(autouse=True)
def installs(monkeypatch):
    """Keep in-process runs from changing this interpreter; record install() calls."""
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    calls: list[bool] = []
    monkeypatch.setattr(ios_mp, "install", lambda: calls.append(True))
    monkeypatch.setattr(ios_mp, "uninstall", lambda: calls.append(False))
    was_enabled = sandbox.is_enabled()
    yield calls
    if not was_enabled:
        sandbox.disable()


# --- scripts ----------------------------------------------------------------


def test_runs_a_script_with_its_arguments(probe, report_file, installs):
    args = ["a", "--b", "-m", "x", "--sandbox", "bogus", "--"]
    assert main([str(probe), *args]) == 0
    report = read(report_file)
    assert report["argv"] == [str(probe), *args]
    assert report["name"] == "__main__"
    assert report["path0"] == os.path.dirname(os.path.realpath(probe))
    assert installs == [True]


def test_double_dash_ends_ios_mp_options(probe, report_file, installs):
    assert main(["--no-install", "--", str(probe), "--help"]) == 0
    assert read(report_file)["argv"] == [str(probe), "--help"]
    assert installs == [False]  # --no-install: uninstalled again after the import


@pytest.mark.parametrize(
    ("body", "status", "stderr"),
    [
        ("pass", 0, ""),
        ("import sys; sys.exit()", 0, ""),
        ("raise SystemExit(3)", 3, ""),
        ("import sys; sys.exit(True)", 1, ""),
        ("import sys; sys.exit('bye')", 1, "bye\n"),
    ],
)
def test_exit_status_of_the_program(tmp_path, capsys, body, status, stderr):
    script = tmp_path / "exits.py"
    script.write_text(body + "\n")
    assert main([str(script)]) == status
    assert capsys.readouterr().err == stderr


def test_exceptions_of_the_program_propagate(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("raise ValueError('boom')\n")
    with pytest.raises(ValueError, match="boom"):
        main([str(script)])


def test_missing_script_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.py")]) == 2
    assert "can't open file" in capsys.readouterr().err


# --- modules, console scripts, PATH -----------------------------------------


@pytest.mark.parametrize("form", ["-m NAME", "-mNAME"])
def test_runs_a_module(tmp_path, monkeypatch, report_file, form):
    module = tmp_path / "ios_mp_probe_module.py"
    module.write_text(PROBE)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main([*form.replace("NAME", "ios_mp_probe_module").split(), "x", "-h"]) == 0
    report = read(report_file)
    assert report["argv"] == [str(module), "x", "-h"]
    assert report["name"] == "__main__"


def test_missing_module(capsys):
    assert main(["-m", "ios_mp_no_such_module"]) == 1
    assert "No module named ios_mp_no_such_module" in capsys.readouterr().err


def test_import_error_of_the_module_propagates(tmp_path, monkeypatch):
    (tmp_path / "ios_mp_probe_broken.py").write_text("import ios_mp_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="ios_mp_no_such_dependency"):
        main(["-m", "ios_mp_probe_broken"])


def test_runs_a_console_script(tmp_path, monkeypatch, report_file):
    (tmp_path / "ios_mp_probe_cli.py").write_text(
        "import json, os, sys\n"
        "def main():\n"
        "    with open(os.environ['IOS_MP_PROBE_REPORT'], 'w') as f:\n"
        "        json.dump(sys.argv, f)\n"
        "    return 5\n"
    )
    dist_info = tmp_path / "ios_mp_probe_cli-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ios-mp-probe-cli\nVersion: 1.0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[console_scripts]\nios-mp-probe-cli = ios_mp_probe_cli:main\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["ios-mp-probe-cli", "a", "--no-install"]) == 5
    assert read(report_file) == ["ios-mp-probe-cli", "a", "--no-install"]


def test_runs_a_python_script_found_on_path(tmp_path, monkeypatch, report_file):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "ios-mp-probe-tool"
    tool.write_text("#!/usr/bin/env python3\n" + PROBE)
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]))
    assert main(["ios-mp-probe-tool", "z"]) == 0
    assert read(report_file)["argv"] == [str(tool), "z"]


def test_unknown_program(capsys):
    assert main(["ios-mp-no-such-program"]) == 2
    assert "can't find 'ios-mp-no-such-program'" in capsys.readouterr().err


# --- command-line errors ----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        ([], "the following arguments are required"),
        (["--no-install"], "the following arguments are required"),
        (["--"], "the following arguments are required"),
        (["--bogus", "x.py"], "unrecognized arguments: --bogus"),
        (["--sandbox"], "argument --sandbox: expected one argument"),
        (["-m"], "argument -m: expected one argument"),
        (["--stdin", "none", "x.py"], "argument --stdin: only allowed with --sandbox"),
        (["--platform", "x.py"], "argument --platform: only allowed with --sandbox"),
        (["--sandbox", "ios", "--stdio", "file", "x.py"], "argument --stdio: invalid choice"),
        (["--sandbox", "ios", "--user=", "x.py"], "argument --user: expected a non-empty"),
    ],
)
def test_usage_errors_exit_2(capsys, installs, argv, error):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(USAGE + "\n")
    assert USAGE == (
        "usage: python -m ios_mp [--sandbox ios [--stdin MODE] [--stdio MODE] [--user NAME]"
        " [--platform]] [--no-install] (script | -m module | console-script) [args...]"
    )
    assert f"python -m ios_mp: error: {error}" in err
    assert installs == []


@pytest.mark.parametrize("argv", [["--sandbox", "bogus"], ["--sandbox=bogus"]])
def test_unknown_sandbox_kind_exits_2(probe, report_file, capsys, argv):
    assert main([*argv, str(probe)]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'bogus' (choose from 'ios')" in err
    assert not report_file.exists()


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(capsys, installs, flag):
    assert main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith(USAGE + "\n")
    assert "--sandbox" in out
    assert installs == []


# --- the sandbox option -----------------------------------------------------


@pytest.mark.no_sandbox
def test_sandbox_option_enables_the_sandbox_first(probe, report_file, monkeypatch):
    order = []
    monkeypatch.setattr(ios_mp, "install", lambda: order.append(sandbox.is_enabled()))
    assert main(["--sandbox", "ios", str(probe)]) == 0
    assert order == [True]  # the sandbox was on when install() ran
    report = read(report_file)
    assert report["fork"] is False
    assert report["multiprocessing_blocked"] is True
    assert report["subprocess"] == [errno.ENOTSUP, MESSAGE]


@pytest.mark.no_sandbox
def test_without_sandbox_option_processes_work(probe, report_file):
    assert main(["--no-install", str(probe)]) == 0
    report = read(report_file)
    assert report["fork"] is True
    assert report["subprocess"] is None
    assert not sandbox.is_enabled()


# --- end to end: python -m ios_mp -------------------------------------------


def run_ios_mp(tmp_path, *args: str, pythonpath: str | None = None, stdin: str | None = None):
    env = dict(os.environ)
    env["IOS_MP_PROBE_REPORT"] = str(tmp_path / "report.json")
    # Find the same ios_mp package as this test run does.
    package_root = os.path.dirname(os.path.dirname(ios_mp.__file__))
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [pythonpath, package_root, env.get("PYTHONPATH")])
    )
    if stdin is not None:
        env["IOS_MP_PROBE_READ_STDIN"] = "1"
    return subprocess.run(
        [sys.executable, "-m", "ios_mp", *args],
        cwd=tmp_path,
        env=env,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        capture_output=True,
        text=True,
        timeout=50,
    )


@pytest.mark.no_sandbox
def test_end_to_end_script_in_the_sandbox(tmp_path, report_file):
    script = tmp_path / "probe_exit.py"
    script.write_text(PROBE + "\nraise SystemExit(7)\n")
    result = run_ios_mp(tmp_path, "--sandbox", "ios", str(script), "a", "b")
    assert result.returncode == 7, result.stderr
    report = read(report_file)
    assert report["argv"] == [str(script), "a", "b"]
    assert report["fork"] is False
    assert report["multiprocessing_blocked"] is True
    assert report["subprocess"] == [errno.ENOTSUP, MESSAGE]
    assert report["pwd_blocked"] is True
    assert (report["user"], report["logname"]) == (None, None)
    assert report["platform"] == sys.platform


@pytest.mark.no_sandbox
def test_end_to_end_stdin_is_unusable_by_default(tmp_path, report_file):
    script = tmp_path / "probe_stdin.py"
    script.write_text(PROBE)
    result = run_ios_mp(tmp_path, "--sandbox", "ios", str(script), stdin="typed")
    assert result.returncode == 0, result.stderr
    assert read(report_file)["stdin_data"] == ""  # descriptor 0 is /dev/null
    result = run_ios_mp(tmp_path, "--sandbox", "ios", "--stdin", "keep", str(script), stdin="typed")
    assert result.returncode == 0, result.stderr
    assert read(report_file)["stdin_data"] == "typed"


@pytest.mark.no_sandbox
def test_end_to_end_sandbox_options(tmp_path, report_file):
    script = tmp_path / "probe_options.py"
    script.write_text(PROBE + "\nprint('hello')\nprint('bye', file=sys.stderr)\n")
    args = ["--sandbox=ios", "--stdin=none", "--stdio", "log", "--user", "mobile", "--platform"]
    result = run_ios_mp(tmp_path, *args, str(script))
    assert result.returncode == 0, result.stderr
    report = read(report_file)
    assert report["stdin"] is None
    assert report["stdout_fileno"] == "UnsupportedOperation"
    assert (report["user"], report["logname"]) == ("mobile", "mobile")
    assert (report["platform"], report["system"]) == ("ios", "iOS")
    assert result.stdout == "hello\n"  # one log message per line, to descriptor 1
    assert result.stderr == "bye\n"


@pytest.mark.no_sandbox
def test_sandbox_options_reach_enable(probe, report_file):
    assert main(["--sandbox", "ios", "--stdin", "none", "--user", "mobile", str(probe)]) == 0
    assert sandbox.options()["stdin"] == "none"
    report = read(report_file)
    assert report["stdin"] is None
    assert report["user"] == "mobile"


@pytest.mark.no_sandbox
def test_end_to_end_module_without_sandbox(tmp_path, report_file):
    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "ios_mp_probe_e2e.py").write_text(PROBE)
    result = run_ios_mp(tmp_path, "-m", "ios_mp_probe_e2e", "x", pythonpath=str(modules))
    assert result.returncode == 0, result.stderr
    report = read(report_file)
    assert report["argv"] == [str(modules / "ios_mp_probe_e2e.py"), "x"]
    assert report["fork"] is True


@pytest.mark.no_sandbox
def test_end_to_end_unknown_sandbox_kind(tmp_path):
    result = run_ios_mp(tmp_path, "--sandbox", "bogus", "x.py")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: python -m ios_mp")
    assert "'bogus'" in result.stderr
    assert "'ios'" in result.stderr
