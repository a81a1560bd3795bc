"""Tests of CPython's multiprocessing suite that ios_mp does not run, and why.

Keys are ``fnmatch`` patterns of ``<Class>.<test>`` (``WithProcessesTestProcess.test_kill``);
values say concretely why the test cannot pass when processes are threads of one
app, which not-yet-implemented part of multiprocessing it needs, or which
deliberate (documented and tested) ios_mp behaviour it contradicts.
``tests/test_cpython_suite.py`` skips each match with ``"excluded: <reason>"``
(and fails if a pattern matches no test); ``tests/cpython/report.py`` prints them.

``EXCLUSIONS`` applies to every CPython version; ``PER_VERSION`` adds entries
for tests that exist, or differ, only in some versions (key: (major, minor)).
"""

from __future__ import annotations

EXCLUSIONS: dict[str, str] = {
    # --- inherently about OS processes ----------------------------------------
    "WithProcessesTestProcess.test_process_mainthread_native_id": (
        "checks that the child has its own main thread "
        "(threading.main_thread().native_id differs from the parent's); threads share "
        "the app's main thread"
    ),
    "WithProcessesTestPoolWorkerLifetime.test_worker_finalization_via_atexit_*": (
        "runs a child interpreter (test.support.script_helper.assert_python_ok), which "
        "the iOS sandbox forbids; tests/test_pool.py runs the same script (a Pool left "
        "open at interpreter exit) under ios_mp outside the sandbox"
    ),
    "WithProcessesTestSharedMemory.test_shared_memory_SharedMemoryManager_reuses_*": (
        "runs a child interpreter (test.support.script_helper.assert_python_ok) and "
        "checks that its resource tracker process printed nothing; the iOS sandbox "
        "forbids child interpreters, and ios_mp has no resource tracker process"
    ),
    "WithProcessesTestSharedMemory.test_shared_memory_cleaned_after_process_termination": (
        "starts a child interpreter (subprocess.Popen), kills it and expects its resource "
        "tracker process to unlink the segment it left; the iOS sandbox forbids child "
        "interpreters, and segments here are memory of the app, freed with it"
    ),
    "WithProcessesTestSharedMemory.test_shared_memory_SharedMemoryServer_ignores_sigint": (
        "sends SIGINT with os.kill(smm._process.pid) to the SharedMemoryManager's "
        "server, which in ios_mp.managers is a thread with no (virtual) pid "
        "(managers.py; remove this once the server has one)"
    ),
    # --- an ios_mp design decision, owned and tested elsewhere ----------------
    "WithProcessesTestQueue.test_queue_feeder_donot_stop_onexc": (
        "expects a plain Queue.put() of an unpicklable object to return (stdlib's "
        "feeder thread prints the error later); ios_mp has no feeder thread and raises "
        "pickle's error from put(), so nothing is lost silently. A Queue subclass that "
        "defines _on_queue_feeder_error gets stdlib's behaviour "
        "(test_queue_feeder_on_queue_feeder_error passes; tests/test_queues.py)"
    ),
}

PER_VERSION: dict[tuple[int, int], dict[str, str]] = {
    (3, 13): {
        "WithProcessesTestSharedMemory.test_shared_memory_*tracking": (
            "runs a child interpreter (test.support.script_helper.assert_python_ok) that "
            "attaches to the segment by name and checks its resource tracker's "
            "warnings; the iOS sandbox forbids child interpreters, and ios_mp has no "
            "resource tracker process"
        ),
    },
}


def for_version(version_info) -> dict[str, str]:
    """The exclusions that apply to CPython ``version_info`` (a ``sys.version_info``)."""
    merged = dict(EXCLUSIONS)
    merged.update(PER_VERSION.get(tuple(version_info[:2]), {}))
    return merged
