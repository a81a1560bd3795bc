"""Fixtures of the Ansible end-to-end suite (tests/test_ansible_e2e.py).

* ``sshd``: Debian's OpenSSH server on a free 127.0.0.1 port, started once per session
  with its own config file, throwaway host and client keys in a tmp dir, no PAM, key
  login only, for the dedicated test user ``iosmp-test`` (shell ``/bin/sh``: root's shell
  start-up runs ``pyenv init``, ~170 ms per remote command). Never touches
  ``/etc/ssh/sshd_config`` or ``~/.ssh``. Skips (with the reason) when sshd cannot be
  started; ``.ci/run`` installs ``openssh-server`` so CI runs these tests.
* ``make_inventory``: writes an INI inventory of N aliases of 127.0.0.1 with the
  connection settings (paramiko_ssh to ``sshd``, or ``local``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

HERE = Path(__file__).resolve().parent
SSHD = "/usr/sbin/sshd"
SSH_KEYGEN = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
TEST_USER = "iosmp-test"


@contextlib.contextmanager
def unsandboxed() -> Iterator[None]:
    """Real processes for the duration (the fixtures start sshd and ssh-keygen)."""
    from ios_mp import sandbox

    was = sandbox.is_enabled()
    if was:
        sandbox.disable()
    try:
        yield
    finally:
        if was:
            sandbox.enable("ios")


def remote_python() -> str:
    """A real python3 the test user can execute (modules run on the loopback target)."""
    for cand in ("/usr/bin/python3", "/root/.pyenv/versions/3.11.7/bin/python3"):
        if os.path.exists(cand) and os.access(cand, os.X_OK):
            return cand
    return os.path.realpath(sys.executable)


@dataclass
class Sshd:
    host: str
    port: int
    user: str
    key: str
    known_hosts: str
    workdir: str  # writable by the test user: remote-side files of the playbooks


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ensure_user():
    import pwd  # inside: the faithful iOS sandbox has no pwd module

    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pass
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip(f"test user {TEST_USER!r} missing and cannot be created (not root)")
    # -p "*": no password but not "locked" (sshd without PAM refuses locked accounts)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", TEST_USER], check=True)
    return pwd.getpwnam(TEST_USER)


@pytest.fixture(scope="session", name="sshd")
def sshd_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} missing (apt-get install openssh-server; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("sshd with a dedicated login user needs root")
    with unsandboxed():
        user = _ensure_user()
        d = Path(tempfile.mkdtemp(prefix="iosmp-sshd-"))
        os.chmod(d, 0o755)
        for name in ("host_ed25519", "client_ed25519"):
            subprocess.run(
                [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
            )
        auth = d / "authorized_keys"
        shutil.copy(d / "client_ed25519.pub", auth)
        os.chown(auth, user.pw_uid, user.pw_gid)
        os.chmod(auth, 0o600)
        work = d / "work"
        work.mkdir()
        os.chown(work, user.pw_uid, user.pw_gid)
        port = _free_port()
        cfg = d / "sshd_config"
        cfg.write_text(
            f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n"
            f"PidFile {d}/sshd.pid\nUsePAM no\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
            f"AuthorizedKeysFile {auth}\nStrictModes no\nPermitRootLogin no\n"
            f"AllowUsers {TEST_USER}\nMaxStartups 100:30:200\nMaxSessions 100\n"
            "UseDNS no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
        )
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir
        log = open(d / "sshd.log", "wb")  # noqa: SIM115 (closed at teardown)
        proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 10
    up = False
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                up = True
                break
        time.sleep(0.05)
    if not up:
        proc.kill()
        proc.wait()
        log.close()
        pytest.skip(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
    host_pub = (d / "host_ed25519.pub").read_text().split()
    kh = d / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    key = d / "client_ed25519"
    os.chmod(key, 0o600)
    try:
        yield Sshd("127.0.0.1", port, TEST_USER, str(key), str(kh), str(work))
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        with unsandboxed():
            shutil.rmtree(d, ignore_errors=True)
        assert stat.S_ISDIR(os.stat("/tmp").st_mode)


def write_inventory(
    path: Path,
    hosts: int,
    *,
    connection: str,
    sshd: Sshd | None = None,
    workdir: str,
    extra_hosts: str = "",
) -> Path:
    """An INI inventory of ``hosts`` aliases of 127.0.0.1 (h01..hNN) in group ``targets``."""
    lines = ["[targets]"]
    for i in range(1, hosts + 1):
        lines.append(f"h{i:02d} ansible_host=127.0.0.1 host_index={i}")
    if extra_hosts:
        lines.append(extra_hosts)
    lines += [
        "",
        "[targets:vars]",
        "group_color=blue",
        f"workdir={workdir}",
        "",
        "[all:vars]",
        f"ansible_connection={connection}",
        f"ansible_python_interpreter={remote_python()}",
    ]
    if connection == "paramiko_ssh":
        assert sshd is not None
        lines += [
            f"ansible_port={sshd.port}",
            f"ansible_user={sshd.user}",
            f"ansible_ssh_private_key_file={sshd.key}",
            "ansible_paramiko_host_key_checking=false",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
