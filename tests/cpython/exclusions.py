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
    "TestFlags.test_flags": (
        "runs a child interpreter with -E -S -O (test.support.script_helper) to check "
        "that a child's sys.flags follow its parent's; the iOS sandbox forbids child "
        "interpreters, and a worker here is in the app's interpreter"
    ),
    "TestNoForkBomb.test_noforkbomb": (
        "runs a child interpreter (test.support.script_helper) whose unguarded "
        "module-level Process.start() must fail under spawn; the iOS sandbox forbids "
        "child interpreters, and nothing is re-imported when a worker starts"
    ),
    "TestIgnoreEINTR.*": (
        "sends SIGUSR1 with os.kill(p.pid) to a child blocked in a C call (a pipe "
        "read) and checks that the call is resumed after EINTR; a worker is a thread "
        "with a virtual pid: no OS signal reaches it, so there is no EINTR"
    ),
    "TestResourceTracker.test_resource_tracker*": (
        "about the resource tracker process (its pid, its exit code, killing it with "
        "signals, the leaked-resource warnings of a child interpreter); the iOS "
        "sandbox forbids child interpreters, and ios_mp has no resource tracker "
        "process (segments are memory of the app, freed with it)"
    ),
    "WithProcessesTestConnection.test_large_fd_transfer": (
        "the child dup2()s its Connection onto every descriptor below 256 it finds "
        "unassigned while the parent opens the file it will send; a worker shares "
        "the app's descriptor table, so a dup2 can land on the descriptor the "
        "parent just opened and the write goes to the socket (seen in CI: b'' != "
        "b'bar'); test_fd_transfer, the same transfer without the dup2 loop, runs"
    ),
    "TestWait.test_wait": (
        "each child sends its os.getpid() and the test expects p.pid; a worker is a "
        "thread of the app, so os.getpid() is the app's pid in every process "
        "(process.py), and a worker's pid is its virtual pid (current_process().pid)"
    ),
    "TestWait.test_wait_slow": (
        "each child sends its os.getpid() and the test expects p.pid; a worker is a "
        "thread of the app, so os.getpid() is the app's pid in every process "
        "(process.py), and a worker's pid is its virtual pid (current_process().pid)"
    ),
    "ProcessPoolForkExecutorDeadlockTest.test_crash_*": (
        "a worker segfaults (faulthandler._sigsegv()) and the test expects only that "
        "process to die (BrokenProcessPool); a worker is a thread, so a segfault "
        "kills the app"
    ),
    "ProcessPoolForkExecutorDeadlockTest.test_shutdown_deadlock": (
        "a worker segfaults (faulthandler._sigsegv()) and the test expects only that "
        "process to die (BrokenProcessPool); a worker is a thread, so a segfault "
        "kills the app"
    ),
    "ProcessPoolForkProcessPoolShutdownTest.test_*interpreter_shutdown": (
        "runs a child interpreter (test.support.script_helper.assert_python_ok) that "
        "exits with work pending in a ProcessPoolExecutor; the iOS sandbox forbids "
        "child interpreters"
    ),
}

_TOO_LONG_NAME = {
    "TestResourceTracker.test_too_long_name_resource": (
        "expects register() to reject a name whose message would exceed PIPE_BUF "
        "on the pipe to the resource tracker process; ios_mp has no resource tracker "
        "process and no such pipe, so any name can be registered"
    ),
}

PER_VERSION: dict[tuple[int, int], dict[str, str]] = {
    (3, 10): {
        **_TOO_LONG_NAME,
        "TestNamedResource.test_global_named_resource_spawn": (
            "runs a child interpreter (test.support.script_helper.assert_python_ok) "
            "that creates a named resource under spawn; the iOS sandbox forbids child "
            "interpreters (3.13 skips it under the 'fork' start method)"
        ),
    },
    (3, 11): dict(_TOO_LONG_NAME),
    (3, 12): dict(_TOO_LONG_NAME),
    (3, 13): {
        **_TOO_LONG_NAME,
        "WithProcessesTestAtExit.test_atexit": (
            "a child registers an atexit handler and the test expects it to run when "
            "the child exits; a worker is a thread of the app, and atexit handlers are "
            "the app's: they run when the app's interpreter exits"
        ),
        "ProcessPoolFork*.test_python_finalization_error": (
            "makes every thread start after the first fail (as at interpreter shutdown) "
            "and expects the pool's worker processes to start anyway; a worker process is "
            "a thread here, so it cannot start either"
        ),
        "MiscTestCase.test_large_pool": (
            "runs a child interpreter (test.support.script_helper.assert_python_ok) "
            "with a Pool(200); the iOS sandbox forbids child interpreters"
        ),
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
