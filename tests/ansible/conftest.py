"""Fixtures of the Ansible end-to-end suite (tests/test_ansible_e2e.py).

* ``sshd``: Debian's OpenSSH server on a free 127.0.0.1 port, started once per session by
  ``ios_mp.ansible.demo.start_sshd()`` (the README's demo target: one implementation)
  with its own config file, throwaway host and client keys in a tmp dir, no PAM, key
  login only, for the dedicated test user ``iosmp-test`` (shell ``/bin/sh``: root's shell
  start-up runs ``pyenv init``, ~170 ms per remote command). Never touches
  ``/etc/ssh/sshd_config`` or ``~/.ssh``. Skips (with the reason) when sshd cannot be
  started; ``.ci/run`` installs ``openssh-server`` so CI runs these tests.
* ``write_inventory``: writes an INI inventory of N aliases of 127.0.0.1 with the
  connection settings (paramiko_ssh to ``sshd``, or ``local``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from pathlib import Path
from typing import Iterator

import pytest

from ios_mp.ansible import demo
from ios_mp.ansible.demo import Sshd, remote_python

__all__ = ["Sshd", "remote_python", "sshd_fixture", "unsandboxed", "write_inventory"]

HERE = Path(__file__).resolve().parent
TEST_USER = "iosmp-test"
SSHD = demo.SSHD


def take_compat_out() -> None:
    """run_playbook() installs ios_mp.ansible.compat for good, as an app would; the rest
    of the test session must see the plain sandbox again. Modules first imported
    during the runs bound its pwd/grp stand-ins (tarfile, shutil...): they get what
    they would have got in the sandbox, None. (Called by the Ansible test modules'
    module-scoped fixtures.)"""
    import sys

    try:
        from ios_mp.ansible import compat
    except ImportError:
        return
    compat.uninstall()
    for module in list(sys.modules.values()):
        for name in ("pwd", "grp"):
            if module is not None and compat._is_stand_in(getattr(module, name, None)):
                with contextlib.suppress(Exception):
                    setattr(module, name, None)


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


@pytest.fixture(scope="session", name="sshd")
def sshd_fixture() -> Iterator[Sshd]:
    if not os.path.exists(SSHD):
        pytest.skip(f"{SSHD} missing (apt-get install openssh-server; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("sshd with a dedicated login user needs root")
    with unsandboxed():
        try:
            server = demo.start_sshd(user=TEST_USER)
        except demo.SshdUnavailable as exc:
            pytest.skip(str(exc))
    try:
        yield server
    finally:
        with unsandboxed():
            server.stop()
            shutil.rmtree(server.directory, ignore_errors=True)
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
    return demo.write_inventory(
        path,
        hosts,
        connection=connection,
        sshd=sshd,
        workdir=workdir,
        group_vars={"group_color": "blue"},
        extra_hosts=extra_hosts,
    )
