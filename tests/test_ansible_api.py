"""run_playbook's API, without a connection: tests/ansible/pb_tiny.yml runs on the implicit
localhost with controller-only actions (set_fact, assert), so no sshd is needed. Runs
under the faithful iOS sandbox (the suite's default). Skipped without ansible-core."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("ansible")

import ios_mp.ansible as ia
from tests.ansible.conftest import take_compat_out

PB = Path(__file__).resolve().parent / "ansible"
ENV = {"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False"}


@pytest.fixture(scope="module", autouse=True)
def _compat_taken_out_afterwards():
    """compat out again after this module's runs (see take_compat_out)."""
    yield
    take_compat_out()


def _collector():
    chunks: list[str] = []
    threads: set[int] = set()

    def on_output(text: str) -> None:
        chunks.append(text)
        threads.add(threading.get_ident())

    return chunks, threads, on_output


@pytest.mark.timeout(120)
def test_on_output_gets_the_run_output_as_written_from_the_runs_thread():
    chunks, threads, on_output = _collector()
    res = ia.run_playbook(PB / "pb_tiny.yml", env=ENV, on_output=on_output)
    assert res.rc == 0, res.stdout[-2000:] + res.stderr[-2000:]
    text = "".join(chunks)
    # everything the run wrote (stdout and stderr) went through on_output, piece by piece
    assert len(text) == len(res.stdout) + len(res.stderr)
    assert len(chunks) > 1
    for line in res.stdout.splitlines() + res.stderr.splitlines():
        assert line in text
    assert "TASK [a fact]" in text and "PLAY RECAP" in text
    # called from the run (an ios_mp worker thread), not from the caller's thread
    assert threads and threading.get_ident() not in threads


@pytest.mark.timeout(120)
def test_on_output_without_capture_streams_but_keeps_nothing():
    chunks, _, on_output = _collector()
    res = ia.run_playbook(PB / "pb_tiny.yml", env=ENV, capture=False, on_output=on_output)
    assert res.rc == 0
    assert (res.stdout, res.stderr) == ("", "")
    assert "PLAY RECAP" in "".join(chunks)
    assert res.recap["localhost"]["failed"] == 0


def test_on_output_must_be_callable():
    with pytest.raises(TypeError, match="on_output must be callable, got 'print'"):
        ia.run_playbook(PB / "pb_tiny.yml", on_output="print")
