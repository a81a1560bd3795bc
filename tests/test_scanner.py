"""Issue 6's real-world architecture: ``tests/scanner_app.py``, a program shaped
like a production scanner (SyncManager, bounded queues with sentinels, a
multiplexed upstream queue dispatched with ``match``, manager Condition/Event/
dict, picklable semaphores made of manager proxies and created lazily by the
parent, asyncio workers that ignore SIGINT, a Ctrl-C shutdown that terminates
and kills stragglers) run on ios_mp, and compared with stock multiprocessing.

The stock runs and the ``python -m ios_mp --sandbox ios`` runs are subprocesses,
so those tests are ``no_sandbox`` (the ios_mp child enables the sandbox itself).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from . import scanner_app as app

APP = Path(__file__).with_name("scanner_app.py")
METHODS = ["fork", "spawn"]


def expected(jobs: int) -> tuple[dict, dict]:
    """What a complete run of ``jobs`` jobs must report."""
    results = {str(j): app.job_value(j) for j in range(jobs) if j % 13 != app.FAILING}
    errors = {str(j): f"job {j}: connection refused" for j in range(jobs) if j % 13 == app.FAILING}
    return results, errors


def parse(out: str) -> dict:
    lines = out.strip().splitlines()
    assert lines, "the scanner printed nothing"
    assert lines[-1] == app.CLEAN_LINE, f"no clean-shutdown line last:\n{out[-3000:]}"
    result = [ln for ln in lines if ln.startswith("RESULT ")]
    assert len(result) == 1, out[-3000:]
    return json.loads(result[0][len("RESULT ") :])


def check_limits(report: dict) -> None:
    """No semaphore ever had more holders than its limit (the workers' meter)."""
    assert report["semaphores"] == app.LIMITS
    for name, peak in report["peaks"].items():
        assert 1 <= peak <= app.LIMITS[name], (name, peak, report["peaks"])


def comparable(report: dict) -> dict:
    """A report without what depends on timing (the peaks)."""
    return {k: v for k, v in report.items() if k != "peaks"}


def run(cmd: list, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=APP.parent.parent,
        stdin=subprocess.DEVNULL,
    )


def stock_cmd(*args: str) -> list:
    # A plain interpreter: the script's `import multiprocessing` is the stdlib's.
    return [sys.executable, str(APP), *args]


def ios_mp_cmd(*args: str) -> list:
    return [sys.executable, "-m", "ios_mp", "--sandbox", "ios", str(APP), *args]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", METHODS)
def test_scanner_runs_in_process_under_the_sandbox(method, ios_sandbox):
    out = io.StringIO()
    status = app.main(["--method", method, "--jobs", "60"], out=out)
    text = out.getvalue()
    assert status == 0, text
    report = parse(text)
    results, errors = expected(60)
    assert report["outcome"] == "complete"
    assert report["results"] == results
    assert report["errors"] == errors
    assert report["handled"] == 60
    assert report["crashes"] == []
    assert report["exitcodes"] == [0, 0, 0]
    check_limits(report)
    assert multiprocessing_children() == []


def multiprocessing_children() -> list:
    import multiprocessing

    return multiprocessing.active_children()


@pytest.mark.no_sandbox
@pytest.mark.timeout(240)
@pytest.mark.parametrize("method", METHODS)
def test_scanner_gives_the_same_results_as_stock_multiprocessing(method):
    args = ("--method", method, "--jobs", "60")
    stock = run(stock_cmd(*args))
    assert stock.returncode == 0, stock.stdout[-2000:] + stock.stderr[-3000:]
    ours = run(ios_mp_cmd(*args))
    assert ours.returncode == 0, ours.stdout[-2000:] + ours.stderr[-3000:]
    stock_report, our_report = parse(stock.stdout), parse(ours.stdout)
    check_limits(stock_report)
    check_limits(our_report)
    assert comparable(our_report) == comparable(stock_report)
    assert our_report["results"], "the run did no work"


def interrupt(cmd: list) -> tuple[int, str, str]:
    """Start ``cmd`` in its own session, send SIGINT to the session (as Ctrl-C in
    a terminal reaches the whole foreground group) once it printed its progress
    line (the workers are ready and busy), and return (status, stdout, stderr).
    The 30 s bound is generous: the program must shut down within 10 s of SIGINT;
    a hang fails here."""
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        bufsize=0,  # unbuffered: what is read here is not hidden from communicate()
        cwd=APP.parent.parent,
        start_new_session=True,
    )
    first = b""
    try:
        wanted = app.PROGRESS_LINE.encode() + b"\n"
        while wanted not in first:  # until the progress line (or EOF)
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                out, err = proc.communicate(timeout=30)
                pytest.fail(f"no progress line: {first!r}\n{out[-2000:]!r}\n{err[-3000:]!r}")
            first += chunk
        assert first.decode().splitlines()[0] == app.READY_LINE, first
        os.killpg(proc.pid, signal.SIGINT)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"no exit 30 s after SIGINT:\n{out[-2000:]!r}\n{err[-3000:]!r}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, (first + out).decode(), err.decode()


# Many more jobs than fit in the run, each taking a while, and one (job 5) that
# never ends: its worker ignores the shutdown and must be terminated.
INTERRUPTED_ARGS = (
    *("--jobs", "100000", "--work-seconds", "0.01", "--hang-job", "5"),
    *("--progress-after", "20"),
)


@pytest.mark.no_sandbox
@pytest.mark.timeout(150)
@pytest.mark.parametrize("method", METHODS)
def test_scanner_shuts_down_cleanly_on_sigint(method):
    args = ("--method", method, *INTERRUPTED_ARGS)
    reports = {}
    for kind, cmd in (("stock", stock_cmd(*args)), ("ios_mp", ios_mp_cmd(*args))):
        status, out, err = interrupt(cmd)
        assert status == app.INTERRUPT_STATUS, f"{kind}: status {status}\n{out[-2000:]}\n{err}"
        assert "scanner: interrupted, shutting down" in out, out[-2000:]
        report = parse(out)
        assert report["outcome"] == "interrupted", (kind, report)
        assert report["alive"] == [], (kind, report)
        assert report["sentinel_seen"], (kind, report)
        assert report["crashes"] == [], (kind, report)
        # The straggler (the worker on job 5) was terminated; the others ended
        # by themselves when told to shut down.
        assert len(report["terminated"]) == 1, (kind, report)
        assert report["killed"] == [], (kind, report)
        assert sorted(report["exitcodes"]) == [-signal.SIGTERM, 0, 0], (kind, report)
        check_limits(report)
        results, errors = expected(100000)
        assert report["results"].items() <= results.items()
        assert report["errors"].items() <= errors.items()
        assert "5" not in report["results"]
        reports[kind] = report
    assert reports["ios_mp"]["results"], "the interrupted ios_mp run did no work"


ALL_MESSAGES = [
    app.Ready(0, 123),
    app.Result(1, 4, 44),
    app.Done(2, 10),
    app.ScanError(7, "job 7: connection refused"),
    RuntimeError("worker 3: boom"),
    None,
]


class _FakeState(app.State):
    def create_semaphore(self, name, limit):
        self.semaphores[name] = limit


def _dispatch_all(dispatch) -> dict:
    state = _FakeState(None, None, None, app.Interrupts())
    for msg in [*ALL_MESSAGES, app.SemRequest(1, "dns", 1)]:
        dispatch(app, state, msg)
    with pytest.raises(TypeError, match="unexpected message"):
        dispatch(app, state, object())
    return {
        "ready": state.ready,
        "results": state.results,
        "done": state.done,
        "errors": state.errors,
        "crashes": state.crashes,
        "sentinels": state.sentinels,
        "semaphores": state.semaphores,
    }


def test_if_elif_dispatch_routes_every_message():
    assert _dispatch_all(app.dispatch_if) == {
        "ready": {0},
        "results": {4: 44},
        "done": {2: 10},
        "errors": {7: "job 7: connection refused"},
        "crashes": ["RuntimeError: worker 3: boom"],
        "sentinels": 1,
        "semaphores": {"dns": 1},
    }


@pytest.mark.skipif(sys.version_info < (3, 10), reason="the match statement needs Python 3.10")
def test_match_dispatch_is_the_one_used_and_routes_like_if_elif():
    from . import scanner_match

    assert app.dispatch is scanner_match.dispatch
    assert _dispatch_all(scanner_match.dispatch) == _dispatch_all(app.dispatch_if)


def test_messages_and_semaphores_pickle(ios_sandbox):
    import pickle
    from multiprocessing.managers import SyncManager

    for msg in ALL_MESSAGES[:4]:
        back = pickle.loads(pickle.dumps(msg))
        assert type(back) is type(msg)
        assert getattr(back, "__dict__", None) == getattr(msg, "__dict__", None)
    with SyncManager() as m:
        sem = app.ManagedSemaphore(
            "x", 2, m.Value("i", 0), m.Condition(), m.Value("i", 0), m.Value("i", 0), m.Lock()
        )
        registry = m.dict()
        registry["x"] = sem
        got = registry["x"]  # a copy whose proxies reach the same managed objects
        with got.held(), sem.held():
            assert sem.count.value == 2
            assert got.peak.value == 2
        assert got.count.value == 0
