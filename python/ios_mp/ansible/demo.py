"""A loopback demo target for ansible-core on ios_mp: Debian's OpenSSH server on 127.0.0.1.

``python -m ios_mp.ansible.demo`` starts ``/usr/sbin/sshd`` (package ``openssh-server``)
on a free 127.0.0.1 port with its own config file, throwaway host and client keys, key
login only and no PAM, writes an inventory of N aliases of 127.0.0.1 that reach it over
``paramiko_ssh`` (the connection plugin that needs no ``subprocess``, so it works in an
iOS app), prints how to run a playbook against it, and stops sshd on Ctrl-C::

    python -m ios_mp.ansible.demo [--hosts N] [--dir DIR]        # until Ctrl-C
    python -m ios_mp.ansible.demo start [--hosts N] [--dir DIR]  # in the background
    python -m ios_mp.ansible.demo stop [--dir DIR]

Everything lives in DIR (default ``$IOS_MP_DEMO_DIR`` or ``/tmp/iosmp-demo``):
``sshd_config``, the keys, ``inventory.ini``, ``sshd.log``, ``sshd.pid`` and ``work/``
(a directory the login user can write, the inventory's ``workdir`` variable). The
system's sshd config and ``~/.ssh`` are never touched. As root, the login user is a
dedicated one, ``iosmp-demo`` (shell ``/bin/sh``; created with ``useradd`` if missing); otherwise
sshd runs as the current user and logs in as that user (a non-root sshd can only
authenticate the user it runs as).

The test suite's sshd fixture (tests/ansible/conftest.py) uses ``start_sshd()`` and
``write_inventory()`` from here. This module only starts processes when called (it
is importable under the iOS sandbox, which has no ``subprocess`` or ``pwd``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

__all__ = [
    "DEFAULT_DIR",
    "DEMO_USER",
    "SSHD",
    "Sshd",
    "SshdUnavailable",
    "main",
    "remote_python",
    "start_sshd",
    "stop_sshd",
    "write_inventory",
]

SSHD = "/usr/sbin/sshd"
DEMO_USER = "iosmp-demo"
DEFAULT_DIR = "/tmp/iosmp-demo"
INVENTORY = "inventory.ini"
STATE = "demo.json"


class SshdUnavailable(RuntimeError):
    """sshd cannot be started here; the message says why (and what to install)."""


@dataclass
class Sshd:
    """A running loopback sshd (``start_sshd()``); ``stop()`` ends it."""

    host: str
    port: int
    user: str
    key: str  # the client's private key (authorized for ``user``)
    known_hosts: str  # a known_hosts line for ``[host]:port``
    workdir: str  # writable by ``user``: remote-side files of playbooks
    directory: str  # holds the config, keys, log and pid file
    pid: int
    _proc: Any = None  # the subprocess.Popen, when this process started sshd

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate sshd (SIGTERM, then SIGKILL after ``timeout`` seconds) and wait."""
        if self._proc is not None:
            import subprocess

            self._proc.terminate()
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            log = getattr(self._proc, "_iosmp_log", None)
            if log is not None:
                log.close()
            self._proc = None
        else:
            _kill_pid(self.pid, timeout)


def _kill_pid(pid: int, timeout: float) -> None:
    """SIGTERM ``pid`` (not our child), wait until it is gone, then SIGKILL."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def remote_python() -> str:
    """A real python3 the login user can execute (ansible's modules run on the target)."""
    for cand in ("/usr/bin/python3", "/root/.pyenv/versions/3.11.7/bin/python3"):
        if os.path.exists(cand) and os.access(cand, os.X_OK):
            return cand
    return os.path.realpath(sys.executable)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 at the time of the call."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _login_user(user: str | None) -> Any:
    """The ``pwd`` entry to log in as: ``user`` (created if missing and we are root)
    when root, else the current user (a non-root sshd authenticates only itself)."""
    import pwd  # inside: the iOS sandbox has no pwd module
    import subprocess

    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        if user is not None and user != me.pw_name:
            raise SshdUnavailable(
                f"user={user!r}: not root, so sshd can only log in as {me.pw_name!r}"
            )
        return me
    name = user or DEMO_USER
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    if not shutil.which("useradd"):
        raise SshdUnavailable(f"user {name!r} missing and useradd not found")
    # -p "*": no password but not "locked" (sshd without PAM refuses locked accounts)
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-p", "*", name], check=True)
    return pwd.getpwnam(name)


def _check_reachable(d: Path, user: str) -> None:
    # sshd reads AuthorizedKeysFile as the login user: every parent must let it through
    for parent in d.parents:
        if not os.stat(parent).st_mode & 0o001:
            raise SshdUnavailable(
                f"directory {d}: user {user!r} cannot reach it ({parent} has no "
                "search permission for others); choose one under /tmp"
            )


def start_sshd(
    directory: str | os.PathLike[str] | None = None,
    *,
    user: str | None = None,
    port: int | None = None,
    timeout: float = 10.0,
    detach: bool = False,
) -> Sshd:
    """Start Debian's ``/usr/sbin/sshd`` on 127.0.0.1 and return it once it accepts.

    ``directory`` (created; a fresh temporary one if None) receives ``sshd_config``,
    throwaway ed25519 host and client keys, ``authorized_keys``, ``known_hosts``,
    ``sshd.log``, ``sshd.pid`` and ``work/``. ``user``: the login user when root (default
    ``DEMO_USER``, created if missing, shell ``/bin/sh``); not root, the current user.
    ``port``: default a free one. ``detach``: sshd gets its own session (it outlives
    this process; stop it with ``Sshd.stop()`` or ``stop_sshd(directory)``). Raises
    ``SshdUnavailable`` (saying why) if sshd is missing or did not come up in
    ``timeout`` seconds.
    """
    import subprocess
    import tempfile

    if not os.path.exists(SSHD):
        raise SshdUnavailable(f"{SSHD} missing (apt-get install openssh-server)")
    keygen = shutil.which("ssh-keygen") or "/usr/bin/ssh-keygen"
    if not os.path.exists(keygen):
        raise SshdUnavailable("ssh-keygen missing (apt-get install openssh-client)")
    if port is not None and not (isinstance(port, int) and 0 < port < 65536):
        raise ValueError(f"port must be an int in 1..65535, got {port!r}")
    account = _login_user(user)
    if directory is None:
        d = Path(tempfile.mkdtemp(prefix="iosmp-sshd-"))
    else:
        d = Path(directory).resolve()
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o755)
    if os.geteuid() == 0 and account.pw_uid != 0:
        _check_reachable(d, account.pw_name)
    for name in ("host_ed25519", "client_ed25519"):
        for suffix in ("", ".pub"):
            (d / (name + suffix)).unlink(missing_ok=True)
        subprocess.run(
            [keygen, "-q", "-t", "ed25519", "-N", "", "-C", f"iosmp-{name}", "-f", str(d / name)],
            check=True,
        )
    auth = d / "authorized_keys"
    shutil.copy(d / "client_ed25519.pub", auth)
    os.chmod(auth, 0o600)
    work = d / "work"
    work.mkdir(exist_ok=True)
    if os.geteuid() == 0:
        os.chown(auth, account.pw_uid, account.pw_gid)
        os.chown(work, account.pw_uid, account.pw_gid)
    port = port or free_port()
    cfg = d / "sshd_config"
    cfg.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\n"
        f"PidFile {d}/sshd.pid\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"AuthorizedKeysFile {auth}\nStrictModes no\nPermitRootLogin no\n"
        f"AllowUsers {account.pw_name}\nMaxStartups 100:30:200\nMaxSessions 100\n"
        "UseDNS no\nLogLevel ERROR\nSubsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation dir
    log = open(d / "sshd.log", "wb")  # noqa: SIM115 (closed by Sshd.stop)
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(cfg)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=detach,
    )
    proc._iosmp_log = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    up = False
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                up = True
                break
        time.sleep(0.05)
    if not up:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.close()
        raise SshdUnavailable(f"sshd did not start: {(d / 'sshd.log').read_text()[-2000:]}")
    host_pub = (d / "host_ed25519.pub").read_text().split()
    kh = d / "known_hosts"
    kh.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    key = d / "client_ed25519"
    os.chmod(key, 0o600)
    return Sshd(
        "127.0.0.1", port, account.pw_name, str(key), str(kh), str(work), str(d), proc.pid, proc
    )


def write_inventory(
    path: str | os.PathLike[str],
    hosts: int,
    *,
    connection: str = "paramiko_ssh",
    sshd: Sshd | None = None,
    workdir: str | None = None,
    group: str = "targets",
    group_vars: Mapping[str, object] | None = None,
    extra_hosts: str = "",
) -> Path:
    """Write an INI inventory of ``hosts`` aliases of 127.0.0.1 (h01..hNN, each with
    ``host_index``) in ``group``, whose vars are ``workdir`` and ``group_vars``;
    ``connection`` is ``paramiko_ssh`` (to ``sshd``: port, user, key, no host key
    checking) or ``local``. ``extra_hosts``: more lines for the group. Returns the path."""
    if not isinstance(hosts, int) or hosts < 1:
        raise ValueError(f"hosts must be a positive int, got {hosts!r}")
    if connection == "paramiko_ssh" and sshd is None:
        raise ValueError("connection='paramiko_ssh' needs sshd (a started Sshd)")
    path = Path(path)
    if workdir is None:
        workdir = sshd.workdir if sshd is not None else str(path.parent)
    lines = [f"[{group}]"]
    for i in range(1, hosts + 1):
        lines.append(f"h{i:02d} ansible_host=127.0.0.1 host_index={i}")
    if extra_hosts:
        lines.append(extra_hosts)
    lines += ["", f"[{group}:vars]"]
    lines += [f"{k}={v}" for k, v in (group_vars or {}).items()]
    lines += [
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
            # the host key is a throwaway one (nothing is recorded in ~/.ssh)
            "ansible_paramiko_host_key_checking=false",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------- command line


def _state(directory: Path) -> dict[str, Any] | None:
    import json

    try:
        return json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (an exited one not yet reaped by its parent does not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


def stop_sshd(directory: str | os.PathLike[str] = DEFAULT_DIR, timeout: float = 10.0) -> bool:
    """Stop the demo sshd started with ``start`` in ``directory`` and remove the directory.
    Returns whether an sshd was running."""
    d = Path(directory)
    state = _state(d)
    running = bool(state) and _alive(int(state["pid"]))  # type: ignore[index]
    if running:
        _kill_pid(int(state["pid"]), timeout)  # type: ignore[index]
    if state is not None:
        shutil.rmtree(d, ignore_errors=True)
    return running


def _usage_text(sshd: Sshd, inventory: Path, hosts: int, background: bool) -> str:
    pb = "examples/ansible/site.yml"
    stop = (
        f"python -m ios_mp.ansible.demo stop --dir {sshd.directory}"
        if background
        else "Ctrl-C here"
    )
    return (
        f"ios_mp demo target: sshd pid {sshd.pid} on 127.0.0.1:{sshd.port}, "
        f"login {sshd.user!r} (key {sshd.key})\n"
        f"inventory: {inventory} ({hosts} hosts h01..h{hosts:02d}, paramiko_ssh)\n"
        "run a playbook against it under the iOS sandbox (from the ios_mp checkout):\n"
        f"  python -m ios_mp --sandbox ios ansible-playbook -i {inventory} -f {hosts} {pb}\n"
        "or with stock ansible (fork):\n"
        f"  ansible-playbook -i {inventory} -f {hosts} {pb}\n"
        f"stop it: {stop}\n"
    )


def _start(directory: Path, hosts: int, user: str | None, port: int | None, detach: bool):
    import json

    state = _state(directory)
    if state is None and directory.exists() and any(directory.iterdir()):
        raise SshdUnavailable(f"--dir {directory}: exists and is not a demo directory")
    if state and _alive(int(state["pid"])):
        raise SshdUnavailable(
            f"a demo sshd (pid {state['pid']}) already runs in {directory}: "
            f"python -m ios_mp.ansible.demo stop --dir {directory}"
        )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / STATE).write_text(json.dumps({"pid": 0}))  # a demo directory from now on
    sshd = start_sshd(directory, user=user, port=port, detach=detach)
    inventory = write_inventory(directory / INVENTORY, hosts, sshd=sshd)
    (directory / STATE).write_text(
        json.dumps({"pid": sshd.pid, "port": sshd.port, "user": sshd.user, "hosts": hosts})
    )
    return sshd, inventory


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ios_mp.ansible.demo [start|stop|run] ...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m ios_mp.ansible.demo",
        description="A loopback OpenSSH demo target for ansible-playbook on ios_mp.",
    )
    parser.add_argument(
        "action",
        nargs="?",
        default="run",
        choices=("run", "start", "stop"),
        help="run: until Ctrl-C (default); start: in the background; stop: a started one",
    )
    parser.add_argument("--hosts", type=int, default=5, help="inventory aliases (default 5)")
    parser.add_argument(
        "--dir",
        default=os.environ.get("IOS_MP_DEMO_DIR") or DEFAULT_DIR,
        help=f"state dir (default: $IOS_MP_DEMO_DIR or {DEFAULT_DIR})",
    )
    parser.add_argument("--user", default=None, help=f"login user when root ({DEMO_USER})")
    parser.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    args = parser.parse_args(argv)
    if args.hosts < 1:
        parser.error(f"argument --hosts: must be >= 1, got {args.hosts}")
    directory = Path(args.dir).resolve()
    if args.action == "stop":
        if stop_sshd(directory):
            print(f"demo sshd in {directory} stopped")
        else:
            print(f"no demo sshd running in {directory}")
        return 0
    if args.action == "start":
        try:
            sshd, inventory = _start(directory, args.hosts, args.user, args.port, detach=True)
        except SshdUnavailable as exc:
            print(f"python -m ios_mp.ansible.demo: {exc}", file=sys.stderr)
            return 1
        sshd._proc = None  # it outlives us (own session); `stop` ends it by pid
        print(_usage_text(sshd, inventory, args.hosts, background=True), end="")
        return 0
    # run: until Ctrl-C or SIGTERM, then stop sshd and clean up. The handlers come
    # first, so an interrupt at any point after them stops what was started (SIGINT
    # too: a shell's background job starts with SIGINT ignored). sshd has its own
    # session: Ctrl-C reaches this process only, which stops sshd.
    previous = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    sshd = None
    try:
        sshd, inventory = _start(directory, args.hosts, args.user, args.port, detach=True)
        print(_usage_text(sshd, inventory, args.hosts, background=False), end="", flush=True)
        while sshd._proc.poll() is None:
            time.sleep(0.2)
        print(f"sshd exited with {sshd._proc.returncode}", file=sys.stderr)
        return 1
    except SshdUnavailable as exc:
        print(f"python -m ios_mp.ansible.demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if sshd is not None:
            sshd.stop()
        else:  # interrupted while starting: by the pid sshd wrote, if it got that far
            _stop_by_pidfile(directory)
        if _state(directory) is not None:
            shutil.rmtree(directory, ignore_errors=True)
        print("demo sshd stopped", flush=True)


def _stop_by_pidfile(directory: Path) -> None:
    try:
        pid = int((directory / "sshd.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    _kill_pid(pid, 10.0)


if __name__ == "__main__":
    sys.exit(main())
