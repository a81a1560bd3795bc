//! `BaseProcess`: the native, subclassable base of `multiprocessing.Process`.
//!
//! A process is a `threading.Thread` (so it is a real thread to Python: name,
//! `current_thread()`, `enumerate()`, tracing) whose target is [`_bootstrap`].
//! Its state lives in this struct, not in the instance `__dict__`, so no
//! attribute a subclass sets can collide with ours.
//!
//! Lock ordering: `ProcessInner` is never held while calling into Python
//! (Python code could re-enter and deadlock); values are cloned out first.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::exceptions::{PyAssertionError, PyException, PyRuntimeError, PySystemExit, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyInt, PyString, PyTuple};

use super::runtime::{self, block_on, deadline, Binding, ProcessTerminated};
use crate::core::{JoinCounter, ProcessHandle, ProcessTable};

static TABLE: OnceLock<ProcessTable> = OnceLock::new();

fn table() -> &'static ProcessTable {
    TABLE.get_or_init(ProcessTable::default)
}

/// Hooks the Python side registers once (`_configure`).
struct Hooks {
    main: Py<BaseProcess>,
    dangling: Py<PyAny>,
    authkey_type: Py<PyAny>,
    /// `on_start(child, target, args, kwargs)`: in the parent, after the child
    /// has its pid and before it runs. `on_exit(process)`: in the process's thread, last thing
    /// before it is marked exited (also when its thread could not start).
    on_start: Py<PyAny>,
    on_exit: Py<PyAny>,
}

/// Call the `on_exit` hook; an error is reported as unraisable, never raised.
fn run_exit_hook(py: Python<'_>, process: &Bound<'_, BaseProcess>) {
    if let Ok(h) = hooks(py) {
        if let Err(e) = runtime::call1(h.on_exit.bind(py), process.as_any()) {
            e.write_unraisable(py, Some(process.as_any()));
        }
    }
}

static HOOKS: PyOnceLock<Hooks> = PyOnceLock::new();

fn hooks(py: Python<'_>) -> PyResult<&Hooks> {
    HOOKS
        .get(py)
        .ok_or_else(|| PyRuntimeError::new_err("ios_mp.process is not imported"))
}

thread_local! {
    /// The process object of the calling thread (None: main process).
    static CURRENT: std::cell::RefCell<Option<Py<BaseProcess>>> = const { std::cell::RefCell::new(None) };
}

fn current(py: Python<'_>) -> PyResult<Py<BaseProcess>> {
    if let Some(p) = _worker_process(py) {
        return Ok(p);
    }
    Ok(hooks(py)?.main.clone_ref(py))
}

#[derive(Default)]
struct ProcessInner {
    initialized: bool,
    is_main: bool,
    name: String,
    daemon: bool,
    target: Option<Py<PyAny>>,
    args: Option<Py<PyTuple>>,
    kwargs: Option<Py<PyDict>>,
    identity: Vec<u32>,
    parent: Option<Py<BaseProcess>>,
    authkey: Option<Py<PyAny>>,
    closed: bool,
    /// Set once `start()` created the handle.
    handle: Option<Arc<ProcessHandle>>,
    thread: Option<Py<PyAny>>,
    ident: Option<u64>,
    children: Vec<Py<BaseProcess>>,
}

#[pyclass(subclass, frozen, dict, weakref, module = "ios_mp.process")]
pub struct BaseProcess {
    inner: Mutex<ProcessInner>,
    child_counter: AtomicU32,
    /// Non-daemon threads started by this process (or its threads) that have
    /// not finished; the process exits only when there are none left.
    threads: JoinCounter,
}

fn signal_name(code: i32) -> Option<&'static str> {
    Some(match -code {
        1 => "-SIGHUP",
        2 => "-SIGINT",
        3 => "-SIGQUIT",
        6 => "-SIGABRT",
        9 => "-SIGKILL",
        11 => "-SIGSEGV",
        13 => "-SIGPIPE",
        14 => "-SIGALRM",
        15 => "-SIGTERM",
        _ => return None,
    })
}

impl BaseProcess {
    fn check_closed(&self) -> PyResult<()> {
        if self.inner.lock().closed {
            return Err(PyValueError::new_err("process object is closed"));
        }
        Ok(())
    }

    fn handle(&self) -> Option<Arc<ProcessHandle>> {
        self.inner.lock().handle.clone()
    }

    fn pid_value(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        let g = self.inner.lock();
        if g.is_main {
            drop(g);
            return Ok(Some(
                py.import("os")?.call_method0("getpid")?.extract::<i64>()?,
            ));
        }
        Ok(g.handle.as_ref().map(|h| i64::from(h.vpid())))
    }

    /// The child's thread runs: remember it (for `join()`, signals) and list
    /// the child among `parent`'s children.
    fn record_started(
        &self,
        parent: &Py<BaseProcess>,
        slf: &Bound<'_, BaseProcess>,
        thread: Option<Bound<'_, PyAny>>,
        ident: Option<u64>,
    ) {
        {
            let mut g = self.inner.lock();
            g.thread = thread.map(Bound::unbind);
            g.ident = ident;
        }
        parent
            .get()
            .inner
            .lock()
            .children
            .push(slf.clone().unbind());
    }

    /// Drop finished children from the list (stdlib `_cleanup`).
    fn prune_children(&self, py: Python<'_>) {
        let mut g = self.inner.lock();
        g.children
            .retain(|c| c.get().handle().is_none_or(|h| h.exitcode().is_none()));
        let _ = py;
    }

    /// Deliver `ProcessTerminated` to the worker and wake its waits.
    fn signal(&self, py: Python<'_>, sig: i32) -> PyResult<()> {
        self.check_closed()?;
        let (handle, ident) = {
            let g = self.inner.lock();
            (g.handle.clone(), g.ident)
        };
        let Some(handle) = handle else {
            return Ok(());
        };
        let ident = ident.or_else(|| handle.main_ident());
        let exiting = handle.is_exiting();
        if handle.exitcode().is_some() || !handle.token().cancel(sig) {
            return Ok(());
        }
        interrupt_thread(py, ident, exiting);
        interrupt_running_threads(py, &handle, None);
        Ok(())
    }
}

/// `start()` of `slf` failed with `e`. If the child's thread has not begun to
/// run the child, it never will (see `ProcessHandle::launch`): the process
/// ends with exit code 1, as one that could not start. Otherwise `start()` was
/// interrupted after it created the thread (Ctrl-C in the main thread, in its
/// wait for the thread); the child runs on, as a forked child does when its
/// parent is interrupted after `fork()`: it is recorded as started and `e`
/// propagates.
fn start_failed(
    py: Python<'_>,
    slf: &Bound<'_, BaseProcess>,
    handle: &ProcessHandle,
    name: &str,
    thread: Option<Bound<'_, PyAny>>,
    e: PyErr,
) -> PyResult<()> {
    if !handle.abandon() {
        let parent = current(py)?;
        slf.get()
            .record_started(&parent, slf, thread, handle.main_ident());
        return Err(e);
    }
    run_exit_hook(py, slf);
    handle.set_exited(1);
    table().reap(handle.vpid());
    if !e.is_instance_of::<PyException>(py) {
        return Err(e); // KeyboardInterrupt, SystemExit: the caller is being interrupted
    }
    // Never an OSError: callers such as Ansible treat OSError from start() as
    // "skip this task" and would silently drop work.
    Err(PyRuntimeError::new_err(format!(
        "ios_mp could not start a worker thread for {name}: {e}"
    )))
}

/// What a shielded step held back (see `runtime::shielded`): the calling
/// worker's termination is raised, its pending signals' handlers run.
fn after_shield(py: Python<'_>) -> PyResult<()> {
    runtime::check_running(py)?;
    if runtime::signal_token().is_some_and(|t| t.has_signals()) {
        static RUN_PENDING: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        runtime::call0(RUN_PENDING.import(py, "ios_mp._signals", "_run_pending")?)?;
    }
    Ok(())
}

/// `step()`, shielded from the end of the calling worker (no asynchronous
/// exception, waits that do not wake for its termination); then what the
/// shield held back is raised or run. For `Thread.start()` in a worker.
#[pyfunction]
fn _shielded(py: Python<'_>, step: Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let result = runtime::shielded(|| runtime::call0(&step));
    after_shield(py)?;
    result.map(Bound::unbind)
}

/// What `snapshot_process` returns: copies of `__dict__`, target, args, kwargs.
type Snapshot<'py> = (
    Bound<'py, PyDict>,
    Option<Py<PyAny>>,
    Option<Py<PyTuple>>,
    Option<Py<PyDict>>,
);

/// The object the worker runs on: a copy of `slf` (same class, same virtual
/// process) holding the fork-like snapshot of its `__dict__`, target, args and
/// kwargs that `ios_mp._snapshot.snapshot_process` makes, or `slf` itself when
/// the class opts out (`__ios_mp_snapshot__ = False`). The copy shares the
/// process handle (pid, exit code, cancellation) with the parent's object.
fn worker_view<'py>(
    slf: &Bound<'py, BaseProcess>,
    handle: &Arc<ProcessHandle>,
) -> PyResult<Bound<'py, BaseProcess>> {
    let py = slf.py();
    static SNAPSHOT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let (target, args, kwargs) = {
        let g = slf.get().inner.lock();
        (
            g.target.as_ref().map(|t| t.clone_ref(py)),
            g.args.as_ref().map(|a| a.clone_ref(py)),
            g.kwargs.as_ref().map(|k| k.clone_ref(py)),
        )
    };
    let copies = runtime::call(
        SNAPSHOT.import(py, "ios_mp._snapshot", "snapshot_process")?,
        &(slf, target, args, kwargs).into_pyobject(py)?,
        None,
    )?;
    if copies.is_none() {
        return Ok(slf.clone());
    }
    let (dict, target, args, kwargs): Snapshot<'py> = copies.extract()?;
    let cls = slf.get_type();
    let copy = cls
        .call_method1("__new__", (&cls,))?
        .cast_into::<BaseProcess>()
        .map_err(PyErr::from)?;
    {
        let src = slf.get().inner.lock();
        let mut dst = copy.get().inner.lock();
        dst.initialized = true;
        dst.name = src.name.clone();
        dst.daemon = src.daemon;
        dst.identity = src.identity.clone();
        dst.parent = src.parent.as_ref().map(|p| p.clone_ref(py));
        dst.authkey = src.authkey.as_ref().map(|a| a.clone_ref(py));
        dst.handle = Some(handle.clone());
        dst.target = target;
        dst.args = args;
        dst.kwargs = kwargs;
    }
    copy.setattr("__dict__", dict)?;
    // As stdlib's start() does in the parent: the parent's object lets go of
    // the target and arguments (the worker has its copies), so they can be
    // collected (CPython's test_lose_target_ref).
    {
        let mut g = slf.get().inner.lock();
        g.target = None;
        g.args = None;
        g.kwargs = None;
    }
    Ok(copy)
}

/// Raise `ProcessTerminated` asynchronously in the worker's own thread, unless
/// it has finished `run()`. With the GIL held, `exiting` cannot change under us:
/// `_bootstrap` sets it with the GIL held, right after `run()` returns. A thread
/// in a shielded step (starting a child) is left alone: it checks for the
/// termination when the step ends.
fn interrupt_thread(py: Python<'_>, ident: Option<u64>, exiting: bool) {
    if let (Some(ident), false) = (ident, exiting) {
        if runtime::is_shielded(ident) {
            return;
        }
        let exc = py.get_type::<ProcessTerminated>();
        // SAFETY: GIL held; the exception type is kept alive by the module.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, exc.as_ptr());
        }
    }
}

/// Raise `ProcessTerminated` asynchronously in each thread the worker started
/// that is in its `run()` (but `skip`, the caller of `os._exit`, which unwinds
/// itself), as the end of a real process ends all of its threads. A thread
/// running Python code sees it at its next bytecode; one waiting in an ios_mp
/// wait already woke up, as the process's token is cancelled; one in a
/// blocking C call sees it when the call returns. GIL held: see `_run_thread`.
fn interrupt_running_threads(py: Python<'_>, handle: &ProcessHandle, skip: Option<u64>) {
    for ident in handle.running_threads() {
        if Some(ident) != skip {
            interrupt_thread(py, Some(ident), false);
        }
    }
}

#[pymethods]
impl BaseProcess {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            inner: Mutex::new(ProcessInner::default()),
            child_counter: AtomicU32::new(1),
            threads: JoinCounter::default(),
        }
    }

    #[pyo3(signature = (group = None, target = None, name = None, args = None, kwargs = None, *, daemon = None))]
    fn __init__(
        slf: &Bound<'_, Self>,
        group: Option<&Bound<'_, PyAny>>,
        target: Option<Py<PyAny>>,
        name: Option<&Bound<'_, PyAny>>,
        args: Option<&Bound<'_, PyAny>>,
        kwargs: Option<&Bound<'_, PyAny>>,
        daemon: Option<bool>,
    ) -> PyResult<()> {
        let py = slf.py();
        if group.is_some_and(|g| !g.is_none()) {
            return Err(PyAssertionError::new_err(
                "group argument must be None for now",
            ));
        }
        let parent = current(py)?;
        let p = parent.get();
        let count = p.child_counter.fetch_add(1, Ordering::Relaxed);
        let (mut identity, authkey, parent_daemon) = {
            let g = p.inner.lock();
            (
                g.identity.clone(),
                g.authkey.as_ref().map(|a| a.clone_ref(py)),
                g.daemon,
            )
        };
        identity.push(count);
        let args: Py<PyTuple> = match args {
            None => PyTuple::empty(py).unbind(),
            Some(a) => PyTuple::new(py, a.try_iter()?.collect::<PyResult<Vec<_>>>()?)?.unbind(),
        };
        let kwargs: Py<PyDict> = match kwargs {
            None => PyDict::new(py).unbind(),
            Some(k) => {
                let d = PyDict::new(py);
                d.update(k.cast()?)?;
                d.unbind()
            }
        };
        let name = match name {
            Some(n) if !n.is_none() => n
                .cast::<PyString>()
                .map_err(|_| PyAssertionError::new_err("name must be a string"))?
                .to_string(),
            _ => {
                let ids: Vec<String> = identity.iter().map(u32::to_string).collect();
                format!("{}-{}", slf.get_type().name()?, ids.join(":"))
            }
        };
        {
            let mut g = slf.get().inner.lock();
            g.initialized = true;
            g.name = name;
            g.daemon = daemon.unwrap_or(parent_daemon);
            g.target = target;
            g.args = Some(args);
            g.kwargs = Some(kwargs);
            g.identity = identity;
            g.parent = Some(parent);
            g.authkey = authkey;
        }
        hooks(py)?.dangling.bind(py).call_method1("add", (slf,))?;
        Ok(())
    }

    /// Method to be run in the worker; calls the target like stdlib.
    fn run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (target, args, kwargs) = {
            let g = slf.get().inner.lock();
            (
                g.target.as_ref().map(|t| t.clone_ref(py)),
                g.args.as_ref().map(|a| a.clone_ref(py)),
                g.kwargs.as_ref().map(|k| k.clone_ref(py)),
            )
        };
        if let Some(t) = target {
            let args = args.map_or_else(|| PyTuple::empty(py), |a| a.into_bound(py));
            runtime::call(t.bind(py), &args, kwargs.as_ref().map(|k| k.bind(py)))?;
        }
        Ok(())
    }

    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let parent = current(py)?;
        {
            let g = this.inner.lock();
            if g.is_main {
                return Err(PyAssertionError::new_err("cannot start a process twice"));
            }
            if !g.initialized {
                return Err(PyRuntimeError::new_err(
                    "Process.__init__() was not called (a subclass's __init__ must call super().__init__())",
                ));
            }
            if g.handle.is_some() {
                return Err(PyAssertionError::new_err("cannot start a process twice"));
            }
            if !g.parent.as_ref().is_some_and(|p| p.is(&parent)) {
                return Err(PyAssertionError::new_err(
                    "can only start a process object created by current process",
                ));
            }
        }
        if parent.get().inner.lock().daemon && !parent.get().inner.lock().is_main {
            return Err(PyAssertionError::new_err(
                "daemonic processes are not allowed to have children",
            ));
        }
        parent.get().prune_children(py);
        let handle = table().spawn();
        let (name, daemon) = {
            let mut g = this.inner.lock();
            g.handle = Some(handle.clone());
            (g.name.clone(), g.daemon)
        };
        let (target, args, kwargs) = {
            let g = this.inner.lock();
            (
                g.target.as_ref().map(|t| t.clone_ref(py)),
                g.args.as_ref().map(|a| a.clone_ref(py)),
                g.kwargs.as_ref().map(|k| k.clone_ref(py)),
            )
        };
        let on_start = hooks(py)?.on_start.bind(py);
        let start_args = (slf, target, args, kwargs).into_pyobject(py)?;
        if let Err(e) = runtime::call(on_start, &start_args, None) {
            this.inner.lock().handle = None;
            handle.set_exited(1);
            table().reap(handle.vpid());
            return Err(e);
        }
        let worker = match worker_view(slf, &handle) {
            Ok(w) => w,
            Err(e) => {
                run_exit_hook(py, slf);
                this.inner.lock().handle = None;
                handle.set_exited(1);
                table().reap(handle.vpid());
                return Err(e);
            }
        };
        static THREAD: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static BOOTSTRAP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let kw = PyDict::new(py);
        kw.set_item(
            "target",
            BOOTSTRAP.import(py, "ios_mp._core", "_bootstrap")?,
        )?;
        kw.set_item("args", (worker,))?;
        kw.set_item("name", &name)?;
        kw.set_item("daemon", daemon)?;
        // Shielded: a termination of the starting worker must not land between
        // "thread created" and "start() returned" (see runtime::shielded); it
        // is raised below, once the child is recorded.
        let thread = match THREAD
            .import(py, "threading", "Thread")?
            .call((), Some(&kw))
        {
            Ok(t) => t,
            Err(e) => return start_failed(py, slf, &handle, &name, None, e),
        };
        if let Err(e) = runtime::shielded(|| runtime::call0(&thread.getattr("start")?)) {
            return start_failed(py, slf, &handle, &name, Some(thread), e);
        }
        let ident: Option<u64> = thread.getattr("ident")?.extract()?;
        // Logged with the GIL held (pyo3-log needs it; see its docs).
        log::debug!(target: "ios_mp", "started {name} (vpid {}, thread {ident:?})", handle.vpid());
        this.record_started(&parent, slf, Some(thread), ident);
        after_shield(py)
    }

    #[pyo3(signature = (timeout = None))]
    fn join(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let Some(handle) = this.handle() else {
            return Err(PyAssertionError::new_err("can only join a started process"));
        };
        if current(py)?.is(slf) {
            return Err(PyRuntimeError::new_err("cannot join current process"));
        }
        let d = deadline(timeout)?;
        if handle.exitcode().is_none() {
            block_on(py, d, |d, tok| handle.join(d, tok))?;
        }
        if handle.exitcode().is_some() {
            // Make sure the thread has finished its Python-level epilogue too,
            // so `threading.enumerate()` no longer lists it after join().
            let thread = this.inner.lock().thread.as_ref().map(|t| t.clone_ref(py));
            if let Some(t) = thread {
                t.bind(py).call_method1("join", (5.0,))?;
            }
            let parent = this.inner.lock().parent.as_ref().map(|p| p.clone_ref(py));
            if let Some(p) = parent {
                p.get().inner.lock().children.retain(|c| !c.is(slf));
            }
        }
        Ok(())
    }

    fn is_alive(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        if current(py)?.is(slf) || this.inner.lock().is_main {
            return Ok(true);
        }
        Ok(this.handle().is_some_and(|h| h.exitcode().is_none()))
    }

    /// Deliver signal `sig` the way a real one would end the process (used by
    /// `os.kill(vpid, sig)`): the process ends with exit code `-sig`.
    fn _send_signal(slf: &Bound<'_, Self>, sig: i32) -> PyResult<()> {
        if !(1..=64).contains(&sig) {
            return Err(PyValueError::new_err(format!(
                "signal number out of range: {sig}"
            )));
        }
        slf.get().signal(slf.py(), sig)
    }

    /// SIGTERM: the worker's handler runs if it set one (`signal.signal` in
    /// the worker), else the process ends with exit code -15.
    fn terminate(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        if slf.get().handle().is_some_and(|h| h.is_caught(15)) {
            static DELIVER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
            let deliver = DELIVER.import(py, "ios_mp._signals", "deliver")?;
            runtime::call(deliver, &(slf, 15).into_pyobject(py)?, None)?;
            return Ok(());
        }
        slf.get().signal(py, 15)
    }

    fn kill(slf: &Bound<'_, Self>) -> PyResult<()> {
        slf.get().signal(slf.py(), 9)
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (handle, parent) = {
            let g = this.inner.lock();
            if g.closed {
                return Ok(());
            }
            (g.handle.clone(), g.parent.as_ref().map(|p| p.clone_ref(py)))
        };
        if let Some(h) = &handle {
            if h.exitcode().is_none() {
                return Err(PyValueError::new_err(
                    "Cannot close a process while it is still running. \
                     You should first call join() or terminate().",
                ));
            }
            h.close_sentinel();
        }
        if let Some(p) = parent {
            p.get().inner.lock().children.retain(|c| !c.is(slf));
        }
        let mut g = this.inner.lock();
        g.closed = true;
        g.thread = None;
        Ok(())
    }

    #[getter]
    fn name(&self) -> String {
        self.inner.lock().name.clone()
    }

    #[setter]
    fn set_name(&self, name: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = name
            .cast::<PyString>()
            .map_err(|_| PyAssertionError::new_err("name must be a string"))?
            .to_string();
        self.inner.lock().name = name;
        Ok(())
    }

    #[getter]
    fn daemon(&self) -> bool {
        self.inner.lock().daemon
    }

    #[setter]
    fn set_daemon(&self, daemonic: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = daemonic.is_truthy()?;
        let mut g = self.inner.lock();
        if g.handle.is_some() {
            return Err(PyAssertionError::new_err("process has already started"));
        }
        g.daemon = v;
        Ok(())
    }

    #[getter]
    fn authkey(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().authkey.as_ref().map(|a| a.clone_ref(py))
    }

    #[setter]
    fn set_authkey(&self, py: Python<'_>, authkey: &Bound<'_, PyAny>) -> PyResult<()> {
        let key = hooks(py)?.authkey_type.bind(py).call1((authkey,))?.unbind();
        self.inner.lock().authkey = Some(key);
        Ok(())
    }

    #[getter]
    fn exitcode(&self) -> PyResult<Option<i32>> {
        self.check_closed()?;
        Ok(self.handle().and_then(|h| h.exitcode()))
    }

    #[getter]
    fn ident(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        self.check_closed()?;
        self.pid_value(py)
    }

    #[getter]
    fn pid(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        self.check_closed()?;
        self.pid_value(py)
    }

    #[getter]
    fn sentinel(&self) -> PyResult<i32> {
        self.check_closed()?;
        let h = self
            .handle()
            .ok_or_else(|| PyValueError::new_err("process not started"))?;
        h.sentinel_fd().map_err(PyErr::from)
    }

    #[getter]
    fn _identity(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        let ids = self.inner.lock().identity.clone();
        Ok(PyTuple::new(py, ids)?.unbind())
    }

    #[getter]
    fn _parent_pid(&self, py: Python<'_>) -> PyResult<Option<i64>> {
        let parent = self.inner.lock().parent.as_ref().map(|p| p.clone_ref(py));
        match parent {
            None => Ok(None),
            Some(p) => p.get().pid_value(py),
        }
    }

    #[getter]
    fn _parent_name(&self, py: Python<'_>) -> Option<String> {
        let parent = self.inner.lock().parent.as_ref().map(|p| p.clone_ref(py));
        parent.map(|p| p.get().name())
    }

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let py = slf.py();
        let this = slf.get();
        let is_current = current(py)?.is(slf);
        let (closed, is_main, handle, name, daemon) = {
            let g = this.inner.lock();
            (
                g.closed,
                g.is_main,
                g.handle.clone(),
                g.name.clone(),
                g.daemon,
            )
        };
        let mut exitcode = None;
        let status = if is_current || is_main {
            "started"
        } else if closed {
            "closed"
        } else if let Some(h) = &handle {
            exitcode = h.exitcode();
            if exitcode.is_some() {
                "stopped"
            } else {
                "started"
            }
        } else {
            "initial"
        };
        let mut info = vec![
            slf.get_type().name()?.to_string(),
            format!("name={}", PyString::new(py, &name).repr()?),
        ];
        if let Some(h) = &handle {
            info.push(format!("pid={}", h.vpid()));
        }
        let ppid = this
            ._parent_pid(py)?
            .map_or_else(|| "None".to_owned(), |p| p.to_string());
        info.push(format!("parent={ppid}"));
        info.push(status.to_owned());
        if let Some(c) = exitcode {
            info.push(format!(
                "exitcode={}",
                signal_name(c).map_or_else(|| c.to_string(), str::to_owned)
            ));
        }
        if daemon {
            info.push("daemon".to_owned());
        }
        Ok(format!("<{}>", info.join(" ")))
    }

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        // try_lock: the collector must never block. A process being mutated
        // right now is simply not traversed this round.
        if let Some(g) = self.inner.try_lock() {
            if let Some(t) = &g.target {
                visit.call(t)?;
            }
            if let Some(a) = &g.args {
                visit.call(a)?;
            }
            if let Some(k) = &g.kwargs {
                visit.call(k)?;
            }
            if let Some(t) = &g.thread {
                visit.call(t)?;
            }
            for c in &g.children {
                visit.call(c)?;
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let mut g = self.inner.lock();
        g.target = None;
        g.args = None;
        g.kwargs = None;
        g.children.clear();
    }
}

/// The exit code for how `run()` ended, printing as stdlib's `_bootstrap` does.
fn exitcode_for(py: Python<'_>, name: &str, result: PyResult<()>) -> i32 {
    let Err(err) = result else {
        return 0;
    };
    if err.is_instance_of::<PySystemExit>(py) {
        let code = err.value(py).getattr("code").ok();
        return match code {
            None => 1,
            Some(c) if c.is_none() => 0,
            Some(c) if c.is_instance_of::<PyInt>() => c.extract::<i32>().unwrap_or(1),
            Some(c) => {
                let msg = c.str().map_or_else(|_| String::new(), |s| s.to_string());
                write_stderr(py, &format!("{msg}\n"));
                1
            }
        };
    }
    write_stderr(py, &format!("Process {name}:\n"));
    err.display(py);
    1
}

fn write_stderr(py: Python<'_>, s: &str) {
    if let Ok(stderr) = py.import("sys").and_then(|m| m.getattr("stderr")) {
        if !stderr.is_none() {
            let _ = stderr.call_method1("write", (s,));
        }
    }
}

/// Flush the worker's `sys.stdout` and `sys.stderr`, as stdlib's child does
/// before it exits; errors are ignored. `_stdio._flush_at_exit` knows which
/// streams are the worker's without making its per-worker state (which a
/// worker that never used its streams does not have yet).
fn flush_std_streams(py: Python<'_>, process: &Bound<'_, BaseProcess>) {
    static FLUSH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    if let Ok(flush) = FLUSH.import(py, "ios_mp._stdio", "_flush_at_exit") {
        let _ = runtime::call1(flush, process);
        return;
    }
    if let Ok(sys) = py.import("sys") {
        for n in ["stdout", "stderr"] {
            if let Ok(s) = sys.getattr(n) {
                if !s.is_none() {
                    let _ = s.call_method0("flush");
                }
            }
        }
    }
}

/// What stdlib's child process does between `run()` returning and exiting:
/// `util._exit_function()` terminates its daemonic children and joins the
/// other children, then `threading._shutdown()` waits for its non-daemon
/// threads. A `terminate()`/`kill()` of this process ends the waiting at once
/// (stdlib's signal would kill the process, threads and all). Daemonic
/// children are not waited for: one busy in a C call may take a while to see
/// its termination.
fn wind_down(py: Python<'_>, process: &Bound<'_, BaseProcess>, handle: &ProcessHandle) {
    if handle.token().is_cancelled() {
        return;
    }
    let this = process.get();
    this.prune_children(py);
    let children: Vec<Py<BaseProcess>> = {
        let g = this.inner.lock();
        g.children.iter().map(|c| c.clone_ref(py)).collect()
    };
    for c in &children {
        if c.get().daemon() {
            let _ = c.get().signal(py, 15);
        }
    }
    for c in &children {
        let child = c.get();
        if child.daemon() {
            continue;
        }
        if let Some(h) = child.handle() {
            if block_on(py, None, |d, tok| h.join(d, tok)).is_err() {
                return; // terminated meanwhile
            }
        }
    }
    let threads = &this.threads;
    // Only wait (and so release the GIL) when there is something to wait for:
    // each GIL hand-off costs, and most workers start no threads.
    if threads.unfinished() > 0 {
        let _ = block_on(py, None, |d, tok| threads.join(d, tok));
    }
}

/// The body of every worker thread.
#[pyfunction]
fn _bootstrap(py: Python<'_>, process: Bound<'_, BaseProcess>) -> PyResult<()> {
    let this = process.get();
    let Some(handle) = this.handle() else {
        return Err(PyRuntimeError::new_err(
            "_bootstrap called for an unstarted process",
        ));
    };
    if !handle.begin_run(runtime::thread_ident()) {
        return Ok(()); // start() failed and gave the process up: never run it
    }
    runtime::bind(Binding {
        key: u64::from(handle.vpid()),
        token: Some(handle.main_token().clone()),
        signals: true,
    });
    CURRENT.with(|c| *c.borrow_mut() = Some(process.clone().unbind()));
    // The worker's copy of the process learns its thread here (the parent's
    // object learns it when start() returns).
    this.inner.lock().ident = Some(runtime::thread_ident());

    let result = if handle.token().is_cancelled() {
        Err(ProcessTerminated::new_err(("terminated before it ran",)))
    } else {
        process
            .getattr("run")
            .and_then(|run| runtime::call0(&run))
            .map(drop)
    };
    // From here on no asynchronous exception may hit this thread: mark it
    // exiting (terminate() checks this with the GIL held) and drop any that is
    // already pending.
    handle.mark_exiting();
    if handle.token().is_cancelled() {
        // terminate() may have queued one before `exiting` was set.
        runtime::absorb_pending_termination(py);
    }
    if handle.arm(false) {
        // A signal's handlers were queued and have not run: run them now (as a
        // real process would before exiting); what they raise is ignored.
        if let Err(e) = absorb_signal_trampoline(py) {
            e.write_unraisable(py, Some(process.as_any()));
        }
    }
    wind_down(py, &process, &handle);

    let name = this.name();
    let code = if handle.token().is_cancelled() {
        // Ended by a signal or by os._exit(): no traceback, the code says how.
        handle.final_code(0)
    } else {
        exitcode_for(py, &name, result)
    };
    flush_std_streams(py, &process);
    {
        let mut g = this.inner.lock();
        // stdlib drops these in the parent after start(); here the worker is
        // done with them, and keeping them would keep their objects alive.
        g.target = None;
        g.args = None;
        g.kwargs = None;
    }
    run_exit_hook(py, &process);
    CURRENT.with(|c| c.borrow_mut().take());
    runtime::unbind();
    log::debug!(target: "ios_mp", "{} (vpid {}) exited with {code}", this.name(), handle.vpid());
    handle.set_exited(code);
    table().reap(handle.vpid());
    Ok(())
}

/// `os._exit(code)` in a thread of a worker: end that worker with `code`.
///
/// Returns false outside workers (the caller then exits for real). Otherwise
/// the exit is recorded and every wait of the worker is cancelled; if the
/// caller is not the worker's own thread, that thread is interrupted too. The
/// caller raises `ProcessTerminated` to unwind its own thread.
#[pyfunction]
fn _request_exit(py: Python<'_>, code: i32) -> bool {
    let Some(process) = _worker_process(py) else {
        return false;
    };
    let this = process.get();
    let (handle, ident) = {
        let g = this.inner.lock();
        (g.handle.clone(), g.ident)
    };
    if let Some(h) = handle {
        let me = runtime::thread_ident();
        if h.request_exit(code) {
            if ident != Some(me) {
                interrupt_thread(py, ident, h.is_exiting());
            }
            interrupt_running_threads(py, &h, Some(me));
        }
    }
    true
}

/// `sys.unraisablehook` while ios_mp is installed (set by `ios_mp._virtual`).
///
/// `terminate()` ends a worker running Python code with an asynchronous
/// `ProcessTerminated`. When that lands in a `__del__` or a weakref callback
/// (run by the garbage collector at any bytecode), CPython reports it as
/// unraisable and goes on: the termination would be lost and the worker run on.
/// This hook raises it again in the same thread, asynchronously, so it lands in
/// the worker's own code next. Only such an asynchronous delivery (no arguments)
/// to a thread of a worker that is terminated and still running is raised
/// again; everything else goes to the previous hook. A native function, not a
/// Python one: a Python hook would catch the renewed exception itself.
#[pyclass(module = "ios_mp._core", frozen)]
pub struct UnraisableHook {
    previous: Py<PyAny>,
}

#[pymethods]
impl UnraisableHook {
    #[new]
    fn new(previous: Py<PyAny>) -> Self {
        Self { previous }
    }

    /// The hook this one passes everything else to.
    #[getter]
    fn previous(&self, py: Python<'_>) -> Py<PyAny> {
        self.previous.clone_ref(py)
    }

    fn __call__(&self, py: Python<'_>, unraisable: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        if is_async_termination(unraisable)? && rearm_termination(py) {
            return Ok(py.None());
        }
        Ok(runtime::call1(self.previous.bind(py), unraisable)?.unbind())
    }
}

/// `unraisable` (a `sys.UnraisableHookArgs`) is a `ProcessTerminated` raised
/// by `PyThreadState_SetAsyncExc`: its class called without arguments.
fn is_async_termination(unraisable: &Bound<'_, PyAny>) -> PyResult<bool> {
    let value = unraisable.getattr(pyo3::intern!(unraisable.py(), "exc_value"))?;
    if !value.is_instance_of::<ProcessTerminated>() {
        return Ok(false);
    }
    Ok(value
        .getattr(pyo3::intern!(unraisable.py(), "args"))?
        .len()?
        == 0)
}

/// Raise `ProcessTerminated` again, asynchronously, in the calling thread if it
/// belongs to a worker that was terminated (or asked to exit) and that thread
/// is still where `terminate()` interrupts it: the worker's own thread before
/// its exit path, or a thread it started, in its `run()`. True if raised.
fn rearm_termination(py: Python<'_>) -> bool {
    let Some(process) = _worker_process(py) else {
        return false;
    };
    let Some(handle) = process.get().handle() else {
        return false;
    };
    if handle.exitcode().is_some() || !handle.token().is_cancelled() {
        return false;
    }
    let me = runtime::thread_ident();
    let interruptible = if handle.main_ident() == Some(me) {
        !handle.is_exiting()
    } else {
        handle.running_threads().contains(&me)
    };
    if !interruptible || runtime::is_shielded(me) {
        return false;
    }
    interrupt_thread(py, Some(me), false);
    true
}

/// Let a queued signal trampoline run now, in this thread, and swallow what it
/// raises when its handlers returned normally (see `ios_mp._signals`).
fn absorb_signal_trampoline(py: Python<'_>) -> PyResult<()> {
    static ABSORB: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    runtime::call0(ABSORB.import(py, "ios_mp._signals", "_absorb")?)?;
    Ok(())
}

/// Queue signal `sig` for the worker's own thread and make it run the
/// handlers: a wait of that thread is interrupted (the wait runs them and goes
/// on); a thread running Python code gets an asynchronous `_Trampoline`
/// exception, which runs them at its next bytecode. Returns false if the
/// process is not running (not started, exited or being terminated).
///
/// Everything happens with the GIL held, and the worker checks for pending
/// signals with the GIL held before it waits, so a signal is never lost
/// between "not waiting" and "waiting".
#[pyfunction]
fn _signal_worker(py: Python<'_>, process: Bound<'_, BaseProcess>, sig: u32) -> PyResult<bool> {
    if !(1..64).contains(&sig) {
        return Err(PyValueError::new_err(format!(
            "signal number out of range: {sig}"
        )));
    }
    let this = process.get();
    let (handle, ident) = {
        let g = this.inner.lock();
        (g.handle.clone(), g.ident)
    };
    let Some(handle) = handle else {
        return Ok(false);
    };
    if handle.exitcode().is_some() || !handle.main_token().raise_signal(sig) {
        return Ok(false);
    }
    if handle.main_token().is_waiting() || handle.is_exiting() {
        return Ok(true);
    }
    let Some(ident) = ident else {
        return Ok(true); // not running yet: handled before its first wait or at exit
    };
    if ident == runtime::thread_ident() {
        return Ok(true); // sent to itself: the caller runs the handlers now
    }
    if runtime::is_shielded(ident) {
        return Ok(true); // starting a child: it runs the handlers when done
    }
    if !handle.arm(true) {
        static TRAMPOLINE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let t = TRAMPOLINE.import(py, "ios_mp._signals", "_Trampoline")?;
        // SAFETY: GIL held; the type object is kept alive by its module.
        unsafe {
            pyo3::ffi::PyThreadState_SetAsyncExc(ident as _, t.as_ptr());
        }
    }
    Ok(true)
}

/// The signals pending for the calling thread (a worker's own thread; empty
/// elsewhere), cleared, in increasing order.
#[pyfunction]
fn _take_signals() -> Vec<u32> {
    let Some(tok) = runtime::signal_token() else {
        return Vec::new();
    };
    let bits = tok.take_signals();
    (1..64).filter(|s| bits & (1 << s) != 0).collect()
}

/// Clear the "trampoline queued" flag of the calling thread's worker, if the
/// caller is that worker's own thread; returns the flag's old value.
#[pyfunction]
fn _disarm() -> bool {
    if runtime::signal_token().is_none() {
        return false;
    }
    CURRENT
        .with(|c| c.borrow().as_ref().and_then(|p| p.get().handle()))
        .is_some_and(|h| h.arm(false))
}

/// Record, for the calling thread's worker, whether `sig` has a non-default
/// disposition (so that `terminate()` asks `ios_mp._signals` what to do).
#[pyfunction]
fn _set_caught(sig: u32, caught: bool) {
    if let Some(h) = CURRENT.with(|c| c.borrow().as_ref().and_then(|p| p.get().handle())) {
        h.set_caught(sig, caught);
    }
}

/// Bind the calling thread (started by a worker) to `process`.
#[pyfunction]
fn _adopt(process: Bound<'_, BaseProcess>) {
    if let Some(h) = process.get().handle() {
        runtime::bind(Binding {
            key: u64::from(h.vpid()),
            token: Some(h.token().clone()),
            signals: false,
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(process.unbind()));
    }
}

/// A thread is being started by a thread of `process` (`threading.Thread.start`).
#[pyfunction]
fn _thread_started(process: Bound<'_, BaseProcess>, daemon: bool) {
    if !daemon {
        process.get().threads.incr();
    }
}

/// A thread counted by `_thread_started` has finished (or failed to start).
#[pyfunction]
fn _thread_finished(process: Bound<'_, BaseProcess>, daemon: bool) {
    if !daemon {
        process.get().threads.done();
    }
}

/// Run `run()`, the body of a thread that a thread of `process` started, so
/// that ending the process ends it too: while `run()` runs, the thread is
/// listed on the process, and `terminate()`, `kill()` and `os._exit` raise
/// `ProcessTerminated` in it (`interrupt_running_threads`), which ends the
/// thread quietly here. With `interruptible` false (idle pool threads that
/// other code may reuse) the thread is not listed.
///
/// Entering and leaving the list happens with the GIL held and no bytecode in
/// between the check and the change, and `signal()` reads the list with the
/// GIL: so no asynchronous exception is sent before `run()` is entered, or
/// after it has returned; one sent just before it returned is delivered and
/// dropped here. None may land in threading's epilogue, which would leave the
/// thread's `_tstate_lock` held (and `join()` waiting forever).
#[pyfunction]
fn _run_thread(
    py: Python<'_>,
    process: Bound<'_, BaseProcess>,
    run: Bound<'_, PyAny>,
    interruptible: bool,
) -> PyResult<()> {
    let handle = process.get().handle().filter(|_| interruptible);
    let Some(handle) = handle else {
        return swallow_termination(py, runtime::call0(&run).map(drop));
    };
    if handle.token().is_cancelled() {
        return Ok(()); // the process is ending: its new thread never runs
    }
    let me = runtime::thread_ident();
    handle.enter_thread(me);
    let result = runtime::call0(&run).map(drop);
    handle.leave_thread(me);
    if handle.token().is_cancelled() {
        runtime::absorb_pending_termination(py);
    }
    swallow_termination(py, result)
}

/// A thread of a worker that ends because the worker ends ends quietly, as a
/// real process's threads end with it: `ProcessTerminated` is not an error.
fn swallow_termination(py: Python<'_>, result: PyResult<()>) -> PyResult<()> {
    match result {
        Err(e) if e.is_instance_of::<ProcessTerminated>(py) => Ok(()),
        other => other,
    }
}

#[pyfunction]
fn _unadopt() {
    CURRENT.with(|c| c.borrow_mut().take());
    runtime::unbind();
}

/// The process object for the calling thread, or None in the main process.
/// Threads not started by ios_mp workers belong to the main process.
#[pyfunction]
fn _worker_process(py: Python<'_>) -> Option<Py<BaseProcess>> {
    CURRENT.with(|c| c.borrow().as_ref().map(|p| p.clone_ref(py)))
}

#[pyfunction]
fn current_process(py: Python<'_>) -> PyResult<Py<BaseProcess>> {
    current(py)
}

#[pyfunction]
fn parent_process(py: Python<'_>) -> PyResult<Option<Py<BaseProcess>>> {
    let me = current(py)?;
    let parent = me
        .get()
        .inner
        .lock()
        .parent
        .as_ref()
        .map(|p| p.clone_ref(py));
    Ok(parent)
}

#[pyfunction]
fn active_children(py: Python<'_>) -> PyResult<Vec<Py<BaseProcess>>> {
    let me = current(py)?;
    me.get().prune_children(py);
    let g = me.get().inner.lock();
    Ok(g.children.iter().map(|c| c.clone_ref(py)).collect())
}

/// Register the Python-side objects: the main process (an instance of
/// `process._MainProcess`, uninitialized), the `_dangling` WeakSet, the
/// `AuthenticationString` type, the main process's authkey and the
/// `on_start`/`on_exit` hooks (see [`Hooks`]).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
fn _configure(
    py: Python<'_>,
    main: Bound<'_, BaseProcess>,
    dangling: Py<PyAny>,
    authkey_type: Py<PyAny>,
    authkey: Py<PyAny>,
    on_start: Py<PyAny>,
    on_exit: Py<PyAny>,
) -> PyResult<()> {
    {
        let mut g = main.get().inner.lock();
        g.initialized = true;
        g.is_main = true;
        g.name = "MainProcess".to_owned();
        g.authkey = Some(authkey);
    }
    HOOKS
        .set(
            py,
            Hooks {
                main: main.unbind(),
                dangling,
                authkey_type,
                on_start,
                on_exit,
            },
        )
        .map_err(|_| PyRuntimeError::new_err("ios_mp._core is already configured"))
}

/// Number of virtual processes started and not yet finished (for tests).
#[pyfunction]
fn _live_count() -> usize {
    table().live_count()
}

#[pyfunction]
fn is_virtual_pid(pid: i64) -> bool {
    ProcessTable::is_virtual(pid)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<BaseProcess>()?;
    m.add_class::<UnraisableHook>()?;
    m.add_function(wrap_pyfunction!(_bootstrap, m)?)?;
    m.add_function(wrap_pyfunction!(_adopt, m)?)?;
    m.add_function(wrap_pyfunction!(_request_exit, m)?)?;
    m.add_function(wrap_pyfunction!(_unadopt, m)?)?;
    m.add_function(wrap_pyfunction!(_run_thread, m)?)?;
    m.add_function(wrap_pyfunction!(_shielded, m)?)?;
    m.add_function(wrap_pyfunction!(_thread_started, m)?)?;
    m.add_function(wrap_pyfunction!(_thread_finished, m)?)?;
    m.add_function(wrap_pyfunction!(_worker_process, m)?)?;
    m.add_function(wrap_pyfunction!(current_process, m)?)?;
    m.add_function(wrap_pyfunction!(parent_process, m)?)?;
    m.add_function(wrap_pyfunction!(active_children, m)?)?;
    m.add_function(wrap_pyfunction!(_configure, m)?)?;
    m.add_function(wrap_pyfunction!(_live_count, m)?)?;
    m.add_function(wrap_pyfunction!(is_virtual_pid, m)?)?;
    m.add_function(wrap_pyfunction!(_signal_worker, m)?)?;
    m.add_function(wrap_pyfunction!(_take_signals, m)?)?;
    m.add_function(wrap_pyfunction!(_disarm, m)?)?;
    m.add_function(wrap_pyfunction!(_set_caught, m)?)?;
    Ok(())
}
