"""README's quickstart, run as written: the commands of its ``<!-- quickstart -->`` block
(start the loopback demo target, run examples/ansible/site.yml under
``python -m ios_mp --sandbox ios ansible-playbook``, stop the target) in one shell, from
the repository root. The commands are read from README.md, so the two cannot drift.

The set-up commands (``apt-get install``, ``python3 -m venv``, ``pip install``) change
the machine: by default they are checked instead (sshd is there, this interpreter has
ios_mp, ansible-core < 2.21 and paramiko) and the rest runs with this interpreter's
``bin`` first on ``PATH``. ``IOS_MP_README_INSTALL=1`` runs them too, literally (a fresh
venv, the wheel built from this tree: minutes, needs network and Rust). The demo's
state directory (``/tmp/iosmp-demo`` in the README) is a tmp dir here (the demo's
``IOS_MP_DEMO_DIR``), so concurrent runs do not meet.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DEMO_DIR = "/tmp/iosmp-demo"
FULL = os.environ.get("IOS_MP_README_INSTALL") == "1"

pytestmark = pytest.mark.no_sandbox


def quickstart_commands() -> list[str]:
    """The command lines of README's ``<!-- quickstart ... -->`` sh block."""
    text = README.read_text()
    m = re.search(r"<!-- quickstart\b.*?-->\s*```sh\n(.*?)```\s*<!-- /quickstart -->", text, re.S)
    assert m, "README.md has no <!-- quickstart --> ```sh ... ``` <!-- /quickstart --> block"
    return [ln.strip() for ln in m.group(1).splitlines() if ln.strip() and ln[0] != "#"]


def _is_setup(cmd: str) -> bool:
    return cmd.startswith(("apt-get ", "sudo apt-get ", "python3 -m venv ", "pip install "))


@pytest.fixture
def reachable_dir():
    """A tmp dir the demo's login user can reach (pytest's tmp dirs are 0700)."""
    d = Path(tempfile.mkdtemp(prefix="iosmp-readme-"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_quickstart_block_shape():
    cmds = quickstart_commands()
    setup = [c for c in cmds if _is_setup(c)]
    assert setup == cmds[: len(setup)], "set-up commands come first"
    run = cmds[len(setup) :]
    assert run[0].startswith("python -m ios_mp.ansible.demo start"), run
    assert any(c.startswith("python -m ios_mp --sandbox ios ansible-playbook ") for c in run)
    assert run[-1].startswith("python -m ios_mp.ansible.demo stop"), run
    assert any("ansible-core<2.21" in c and "paramiko" in c for c in setup), setup


def _check_prerequisites() -> None:
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("/usr/sbin/sshd missing (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the demo target's dedicated login user needs root")
    if FULL:
        return
    try:
        import ansible.release
        import paramiko  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"{exc.name} missing (pip install 'ansible-core<2.21' paramiko)")
    major_minor = tuple(int(x) for x in ansible.release.__version__.split(".")[:2])
    if major_minor >= (2, 21):
        pytest.skip(f"ansible-core {ansible.release.__version__}: 2.21 removed paramiko_ssh")
    if not (Path(sys.executable).parent / "ansible-playbook").exists():
        pytest.skip(f"no ansible-playbook beside {sys.executable}")


@pytest.mark.timeout(1500 if FULL else 300)
def test_readme_quickstart_runs(tmp_path, reachable_dir):
    _check_prerequisites()
    cmds = quickstart_commands()
    demo_dir = reachable_dir / "demo"
    run = cmds if FULL else [c for c in cmds if not _is_setup(c)]
    script = "set -ex\n" + "\n".join(c.replace(DEMO_DIR, str(demo_dir)) for c in run) + "\n"
    env = dict(os.environ, IOS_MP_DEMO_DIR=str(demo_dir))
    env.pop("PYTHONPATH", None)
    if FULL:
        # build the wheel with a target dir of our own (not the tree's shared target/)
        env["CARGO_TARGET_DIR"] = str(tmp_path / "cargo-target")
        # the system's python3 (Debian's), not a pyenv shim
        env["PATH"] = os.pathsep.join(
            p for p in env.get("PATH", "").split(os.pathsep) if ".pyenv" not in p
        )
    else:
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    try:
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=1400 if FULL else 280,
        )
    finally:
        if (demo_dir / "demo.json").exists():  # the stop command did not run: clean up
            from ios_mp.ansible import demo

            demo.stop_sshd(demo_dir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    recap = out[out.index("PLAY RECAP") :] if "PLAY RECAP" in out else ""
    assert recap, out[-6000:]
    hosts = re.findall(r"^(h\d\d)\s+: ok=(\d+)\s.*?unreachable=(\d+)\s+failed=(\d+)", recap, re.M)
    assert [h for h, *_ in hosts] == [f"h{i:02d}" for i in range(1, 6)], recap
    assert all(int(ok) > 0 and (u, f) == ("0", "0") for _, ok, u, f in hosts), recap
    assert "demo sshd in" in out and "stopped" in out, out[-2000:]
    assert not demo_dir.exists(), "stop removes the demo directory"


@pytest.mark.timeout(60)
def test_demo_target_stops_on_ctrl_c(reachable_dir):
    """``python -m ios_mp.ansible.demo`` (foreground) stops sshd and cleans up on SIGINT."""
    if not os.path.exists("/usr/sbin/sshd"):
        pytest.skip("/usr/sbin/sshd missing (apt-get install openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the demo target's dedicated login user needs root")
    d = reachable_dir / "demo"
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "ios_mp.ansible.demo", "--hosts", "2", "--dir", str(d)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if line.startswith("stop it:"):
                break
        text = "".join(lines)
        m = re.search(r"sshd pid (\d+) on 127\.0\.0\.1:(\d+)", text)
        assert m, text
        pid = int(m.group(1))
        inventory = (d / "inventory.ini").read_text()
        assert f"ansible_port={m.group(2)}" in inventory
        assert inventory.count("ansible_host=127.0.0.1") == 2
        os.kill(pid, 0)  # sshd runs
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, text + rest
    assert "demo sshd stopped" in rest
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"sshd pid {pid} still runs after Ctrl-C")
    assert not d.exists()
