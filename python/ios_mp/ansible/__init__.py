"""Run ansible-core playbooks in-process, on ios_mp's thread-backed workers.

``run_playbook()`` is the embedding API for an app (iOS, Android) that runs ansible-core
as a controller inside its own process: it runs ``ansible.cli.playbook.PlaybookCLI(args)
.run()`` with ios_mp installed as ``multiprocessing`` and returns a ``PlaybookResult``
(exit code, per-host recap, the text the stdout callback printed). Stock
``ansible-playbook`` is a one-shot process; ansible keeps per-run state in module globals,
so this module resets it before each run (see ``reset_ansible_globals()``), which makes
repeated calls in one process run the playbook they are given, not the first one again.

What differs from running ``ansible-playbook``:

* No process is created; the workers are threads of the app. Only the ``paramiko_ssh``
  connection plugin works without ``subprocess`` (iOS); ansible-core 2.21 removed it, so
  pin ``ansible-core<2.21`` (see docs/ansible.md).
* ``ansible-playbook``'s own process is an ios_mp worker too (``_Controller``): what
  ansible does to its process (2.19+'s ``TaskQueueManager`` installs SIGINT/SIGTERM
  handlers, which would raise ``ValueError`` off the main thread) stays in that worker,
  so ``run_playbook()`` can be called from any thread, and the app's handlers, streams
  and descriptors are never touched.
* A run is cancelled with an event (``cancel=``), the app's Cancel button; it is Ctrl-C
  to that run.
* ``ios_mp.ansible.compat.install()`` (the ansible-specific patches) is applied before
  the first run.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from .. import context as _context

__all__ = ["CALLBACK_DIR", "PlaybookResult", "reset_ansible_globals", "run_playbook"]

#: Directory of the ``ios_mp_recap`` callback plugin (structured recap). Point
#: ``ANSIBLE_CALLBACK_PLUGINS`` at it to get the same recap from a stock run.
CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plugins", "callback")

RECAP_FIELDS = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")

# Set by run_playbook for the duration of a run; called by the ios_mp_recap callback.
_recap_sink: Callable[[dict, list], None] | None = None
_run_lock = threading.Lock()


@dataclass
class PlaybookResult:
    """Outcome of one ``run_playbook()`` call.

    ``rc`` is ``ansible-playbook``'s exit code (0 ok, 2 a host failed, 4 a host was
    unreachable, 1/4/5 errors, 99 interrupted, 250 unexpected exception). ``recap`` maps
    each host of the PLAY RECAP to its counters (``RECAP_FIELDS``); it is empty when no
    play ran. ``stdout``/``stderr`` hold what ansible wrote to ``sys.stdout``/``sys.stderr``
    during the run (when ``capture=True``). ``exception`` is the exception that ended the
    run, if any (already turned into ``rc`` the way ``ansible-playbook`` does). ``problems``
    lists one line per failed/unreachable task result (host, task, message).
    """

    rc: int
    recap: dict[str, dict[str, int]] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)
    exception: BaseException | None = None


class _Tee(io.TextIOBase):
    """Writes go to the original stream, to a buffer and to ``on_output``; everything
    else is delegated."""

    def __init__(
        self, orig: Any, echo: bool, on_output: Callable[[str], object] | None = None
    ) -> None:
        self._orig = orig
        self._echo = echo
        self._on_output = on_output
        self._buf = io.StringIO()
        self._lock = threading.Lock()

    def write(self, s: str) -> int:
        with self._lock:
            self._buf.write(s)
        if self._on_output is not None:
            self._on_output(s)  # outside the lock: it may write to this stream again
        if self._echo and self._orig is not None:
            self._orig.write(s)
        return len(s)

    def flush(self) -> None:
        if self._echo and self._orig is not None:
            self._orig.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._orig.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._orig, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]
        return getattr(self._orig, "errors", None) or "strict"

    def getvalue(self) -> str:
        with self._lock:
            return self._buf.getvalue()


_compat_installed = False


def _install_compat() -> None:
    global _compat_installed
    if _compat_installed:
        return
    from . import compat

    compat.install()
    _compat_installed = True


def reset_ansible_globals() -> list[str]:
    """Reset the process-global state one ``PlaybookCLI.run()`` leaves behind.

    Returns the names of what was reset. Without this a second run in the same process
    re-uses the first run's CLI arguments (``GlobalCLIArgs`` is a ``Singleton``: every
    version silently re-runs the first playbook) and, on 2.19+, fails with
    ``VaultSecretsContext context is already initialized``. Also cleared: the display's
    worker queue (``Display._final_q``, set by workers; a stale one would make the main
    thread queue its own output), ``ansible.context.CLIARGS``, the extra vars
    ``load_extra_vars`` memoizes, and the collection finder (each run configures its
    own).
    """
    done: list[str] = []
    try:
        from ansible import context
        from ansible.utils.context_objects import CLIArgs, GlobalCLIArgs
    except ImportError:
        return done
    if getattr(GlobalCLIArgs, "_Singleton__instance", None) is not None:
        GlobalCLIArgs._Singleton__instance = None  # type: ignore[attr-defined]
    done.append("ansible.utils.context_objects.GlobalCLIArgs singleton")
    context.CLIARGS = CLIArgs({})
    done.append("ansible.context.CLIARGS")
    try:
        from ansible.parsing.vault import VaultSecretsContext  # 2.19+
    except ImportError:
        pass
    else:
        VaultSecretsContext._current = None
        done.append("ansible.parsing.vault.VaultSecretsContext._current")
    try:
        from ansible.utils import vars as ansible_vars
    except ImportError:
        pass
    else:
        # load_extra_vars() memoizes the first run's -e values on itself: a second
        # run would see the first run's extra vars.
        if getattr(ansible_vars.load_extra_vars, "extra_vars", None) is not None:
            ansible_vars.load_extra_vars.extra_vars = None
        done.append("ansible.utils.vars.load_extra_vars.extra_vars")
    try:
        from ansible.utils.collection_loader import AnsibleCollectionConfig
        from ansible.utils.collection_loader._collection_finder import _AnsibleCollectionFinder
    except ImportError:
        pass
    else:
        # Each run configures the collection finder from its own settings (a second
        # configure warns "AnsibleCollectionFinder has already been configured" and
        # keeps the first run's collection paths).
        if AnsibleCollectionConfig.collection_finder is not None:
            _AnsibleCollectionFinder._remove()
        done.append("ansible's collection finder (sys.meta_path, sys.path_hooks)")
    try:
        from ansible.utils.display import Display
    except ImportError:
        pass
    else:
        disp = Display()
        if getattr(disp, "_final_q", None) is not None:
            disp._final_q = None
        done.append("ansible.utils.display.Display()._final_q")
    return done


def _exit_code(exc: BaseException) -> int:
    """``ansible-playbook``'s exit code for an exception that ended the run."""
    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(exc, KeyboardInterrupt):
        return 99
    try:
        from ansible.errors import AnsibleError
    except Exception:  # ansible itself failed to import
        return 250
    if isinstance(exc, AnsibleError):
        return int(getattr(exc, "_exit_code", 1) or 1)
    return 250


class _Env:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> None:
        for k, v in self._env.items():
            self._saved[k] = os.environ.get(k)
            os.environ[k] = v

    def __exit__(self, *exc: object) -> None:
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _iter_args(
    playbook: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> Iterator[str]:
    if isinstance(playbook, (str, os.PathLike)):
        yield os.fspath(playbook)
    else:
        for p in playbook:
            yield os.fspath(p)


class _Controller(_context.Process):
    """``ansible-playbook``'s own process, as an ios_mp worker.

    ``run_playbook`` runs ``PlaybookCLI(args).run()`` in an ios_mp process (a thread of
    the app), so that what ansible does to *its* process -- 2.19+'s
    ``TaskQueueManager`` installs SIGINT/SIGTERM handlers (which raises ``ValueError``
    off the main thread), re-sends SIGTERM to ``os.getpid()``, the stdout callback
    writes to ``sys.stdout`` -- happens to that worker and not to the app, from any
    thread of the app. ansible's workers are its children. Cancelling the run is
    Ctrl-C to it: SIGINT to its virtual pid, which ansible handles as it does a
    terminal's Ctrl-C (rc 99).
    """

    # No fork-like snapshot: run_playbook reads the results back from this object.
    __ios_mp_snapshot__ = False
    # It stands for the whole ansible-playbook program: os.getpid() is "its" pid, so
    # the TQM's os.kill(os.getpid(), SIGTERM) reaches it, not the app (_virtual._kill).
    __ios_mp_program__ = True

    def __init__(
        self,
        args: list[str],
        capture: bool,
        echo: bool,
        on_output: Callable[[str], object] | None = None,
    ) -> None:
        super().__init__(name="ansible-playbook", daemon=False)
        self.args = args
        self.rc = 0
        self.exc: BaseException | None = None
        self.out = self.err = None
        if capture or on_output is not None:
            self.out = _Tee(sys.stdout, echo, on_output)
            self.err = _Tee(sys.stderr, echo, on_output)

    def run(self) -> None:
        self._main()

    def _main(self) -> None:
        from ..process import ProcessTerminated

        if self.out is not None:
            sys.stdout, sys.stderr = self.out, self.err  # this worker's own streams
        try:
            # Imported here, in the try: the first run's import of ansible.cli takes
            # a while, and a cancel may come meanwhile (KeyboardInterrupt, rc 99).
            from ansible.cli.playbook import PlaybookCLI

            self.rc = PlaybookCLI(self.args).run()
        except ProcessTerminated:
            raise
        except BaseException as e:
            self.exc = e
            self.rc = _exit_code(e)
            if not isinstance(e, (SystemExit, KeyboardInterrupt)):
                try:
                    from ansible.utils.display import Display

                    Display().error(e)
                except Exception:
                    pass
        finally:
            try:
                sys.stdout.flush()
            except Exception:
                pass

    def interrupt(self) -> None:
        """Ctrl-C: SIGINT to the run's virtual pid (delivered to it only)."""
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            pass  # it has just ended

    def kill_all(self) -> None:
        """End the run and every worker it started, at once (exit code -9)."""
        from ..process import _by_vpid

        doomed = {self.pid}
        for p in list(_by_vpid.values()):
            chain, q = [], p
            while q is not None and q.pid not in doomed and len(chain) < 64:
                chain.append(q)
                q = _by_vpid.get(q._parent_pid or 0)
            if q is not None and q.pid in doomed:
                doomed.update(c.pid for c in chain)
        for pid in doomed:
            p = _by_vpid.get(pid)
            if p is not None and p.is_alive():
                p.kill()

    def wait_for_end(self, cancel: Any, cancel_timeout: float) -> None:
        """Join the run. ``cancel`` set, or Ctrl-C in this (main) thread, interrupts
        it; a second Ctrl-C, or ``cancel_timeout`` seconds after the interrupt, kills it."""
        interrupted_at: float | None = None
        while True:
            try:
                self.join(_POLL)
                if not self.is_alive():
                    return
                if interrupted_at is None:
                    if cancel is not None and cancel.is_set():
                        self.interrupt()
                        interrupted_at = time.monotonic()
                elif time.monotonic() - interrupted_at > cancel_timeout:
                    self.kill_all()
                    self.join()
                    self.rc = self.rc or 99
                    return
            except KeyboardInterrupt:
                if interrupted_at is None:
                    self.interrupt()
                    interrupted_at = time.monotonic()
                else:
                    self.kill_all()


_POLL = 0.05  # seconds between looks at ``cancel`` while a run goes on


def run_playbook(
    playbook: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    inventory: str | os.PathLike[str] | None = None,
    *,
    forks: int | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    capture: bool = True,
    echo: bool = False,
    on_output: Callable[[str], object] | None = None,
    cancel: Any = None,
    cancel_timeout: float = 10.0,
) -> PlaybookResult:
    """Run ``ansible-playbook [-i inventory] [-f forks] [-e extra_vars] *extra_args playbook``
    in this process, with ios_mp as ``multiprocessing``, and return a ``PlaybookResult``.

    ``env`` entries are set in ``os.environ`` for the run and restored afterwards (ansible
    reads ``ANSIBLE_*`` plugin options from it; options ansible reads only when
    ``ansible.constants`` is first imported keep their first value). ``capture`` collects
    what is written to ``sys.stdout``/``sys.stderr`` during the run into the result;
    ``echo`` also passes it on to the streams. Calls are serialized (one run at a time per
    process: ansible's state is process-global). Unlike ``ansible-playbook`` this never
    calls ``sys.exit``: every exception of the run becomes ``rc`` like the CLI does it.

    The run is ``ansible-playbook``'s process as an ios_mp worker (a thread; see
    ``_Controller``), so it can be called from any thread: the app's signal handlers,
    ``sys.stdout`` and descriptors are never touched (``capture`` and ``echo`` act on
    that worker's streams; ``echo`` writes to the calling thread's ``sys.stdout``).

    Live output: ``on_output`` (a callable) is called with each piece of text the run
    writes to its ``sys.stdout`` or ``sys.stderr``, as it is written, whether or not
    ``capture`` is on. It is called from the run's threads, not the caller's: an app
    hands the text to its UI thread (``loop.call_soon_threadsafe``) and returns. What
    it raises propagates into that write, as a failing stream's error would.

    Cancelling: ``cancel`` is an object with ``is_set()`` (``threading.Event``); once it
    is set, the run gets SIGINT, as from a terminal's Ctrl-C: ansible stops its workers
    and the result has ``rc`` 99 (interrupted) and the recap of what ran. Ctrl-C in the
    calling thread (the main thread) does the same. If the run has not ended
    ``cancel_timeout`` seconds after that (or at a second Ctrl-C), it and every worker
    it started are killed (``rc`` 99).
    """
    global _recap_sink
    if forks is not None and (not isinstance(forks, int) or forks < 1):
        raise ValueError(f"forks must be a positive int, got {forks!r}")
    if cancel is not None and not callable(getattr(cancel, "is_set", None)):
        raise TypeError(f"cancel must have an is_set() method (threading.Event), got {cancel!r}")
    if on_output is not None and not callable(on_output):
        raise TypeError(f"on_output must be callable, got {on_output!r}")
    if not isinstance(cancel_timeout, (int, float)) or not cancel_timeout > 0:
        raise ValueError(f"cancel_timeout must be a positive number, got {cancel_timeout!r}")
    args = ["ansible-playbook"]
    if inventory is not None:
        args += ["-i", os.fspath(inventory)]
    if forks is not None:
        args += ["-f", str(forks)]
    if extra_vars:
        import json

        args += ["-e", json.dumps(dict(extra_vars))]
    args += [str(a) for a in extra_args]
    args += list(_iter_args(playbook))

    import ios_mp  # noqa: F401  (installs ios_mp as multiprocessing)

    _install_compat()
    run_env = {"ANSIBLE_NOCOWS": "1"}
    run_env.update(env or {})
    with _run_lock, _Env(run_env):
        reset_ansible_globals()
        from ansible.plugins.loader import callback_loader

        callback_loader.add_directory(CALLBACK_DIR)
        recaps: list[tuple[dict, list]] = []
        _recap_sink = lambda recap, problems: recaps.append((recap, problems))  # noqa: E731
        controller = _Controller(args, capture, echo, on_output)
        t0 = time.monotonic()
        try:
            controller.start()
            controller.wait_for_end(cancel, cancel_timeout)
        except BaseException:
            # The wait itself was aborted (e.g. pytest-timeout's exception in this
            # thread): the run must not outlive the call.
            if controller.is_alive():
                controller.kill_all()
                controller.join(5)
            raise
        finally:
            seconds = time.monotonic() - t0
            _recap_sink = None
            reset_ansible_globals()
    out, err, exc, rc = controller.out, controller.err, controller.exc, controller.rc
    if exc is None and controller.exitcode not in (0, None):
        rc = rc or (99 if controller.exitcode == -signal.SIGKILL else 250)
    return PlaybookResult(
        rc=int(rc or 0),
        recap=recaps[-1][0] if recaps else {},
        problems=recaps[-1][1] if recaps else [],
        stdout=out.getvalue() if out is not None and capture else "",
        stderr=err.getvalue() if err is not None and capture else "",
        seconds=seconds,
        exception=exc,
    )
