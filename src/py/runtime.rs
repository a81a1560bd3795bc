//! Per-thread state and the blocking loop shared by every primitive.
//!
//! # Blocking
//! [`block_on`] runs a core wait with the GIL released. On the main thread it
//! waits in slices of [`SIGNAL_SLICE`] and calls `PyErr_CheckSignals` between
//! slices, so Ctrl-C raises `KeyboardInterrupt` promptly; elsewhere it waits for
//! the whole timeout (signals are only ever handled on the main thread). A
//! worker's wait also ends when its process is terminated: the core returns
//! `Cancelled` and we raise `ProcessTerminated` in the worker.
//!
//! # Thread identity
//! A thread belongs to the main process unless `_bootstrap` (a worker) or
//! `_adopt` (a thread started by a worker) bound it to a virtual process. The
//! binding lives in thread-locals, read without the GIL by the waits.

use std::cell::{Cell, RefCell};
use std::os::raw::c_ulong;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use pyo3::exceptions::{PySystemExit, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};

use crate::core::{CancelToken, Owner, WaitError};

pyo3::create_exception!(
    _core,
    ProcessTerminated,
    PySystemExit,
    "Raised in a worker whose process was terminated or killed while it waited."
);

/// How long a main-thread wait sleeps between checks for Ctrl-C.
pub const SIGNAL_SLICE: Duration = Duration::from_millis(50);

unsafe extern "C" {
    // Part of the stable ABI since 3.2 (not wrapped by pyo3-ffi).
    fn PyThread_get_thread_ident() -> c_ulong;
}

/// `callable(*args, **kwargs)`, for Python code run from Rust that may still be
/// running when the interpreter exits: the body of a worker or of a thread it
/// started, a signal handler, `Thread.start()` in a worker.
///
/// A daemon thread blocked in C (a socket read, `select`) when the app exits
/// wakes up during finalization; on CPython 3.13 and older, CPython then ends
/// it with `pthread_exit()`, whose forced unwind aborts the app when it reaches
/// a Rust frame that cannot unwind (each pyo3 entry point; a paramiko transport
/// thread of an Ansible worker did this, SIGABRT with nothing printed). Here the
/// unwind stops in this frame and the thread sleeps for good, as CPython 3.14
/// does to such threads itself (and as pyo3 does when its own GIL re-acquire
/// meets finalization). Nothing of the thread runs again, and its Rust frames
/// are never unwound, so locks they hold stay held: callers hold none across
/// the call.
pub fn call<'py>(
    callable: &Bound<'py, PyAny>,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    struct HangThread;
    impl Drop for HangThread {
        // Run only by the forced unwind of pthread_exit(): there is no Rust
        // panic in the call (a panic in a pyo3 function becomes an exception).
        fn drop(&mut self) {
            loop {
                std::thread::park();
            }
        }
    }
    type Call = unsafe extern "C-unwind" fn(
        *mut pyo3::ffi::PyObject,
        *mut pyo3::ffi::PyObject,
        *mut pyo3::ffi::PyObject,
    ) -> *mut pyo3::ffi::PyObject;
    // PyObject_Call, called as a "C-unwind" function: only a call that may
    // unwind keeps its landing pad (the guard's drop). Called through a
    // pointer the optimizer cannot see through (black_box), since pyo3-ffi
    // declares the symbol "C", that is cannot-unwind, and under LTO the one
    // declaration would make this call site cannot-unwind too (seen: the
    // release build aborted, the debug build hung as meant).
    // SAFETY: the same function with the same signature; only the unwind
    // annotation differs.
    let call_unwinding: Call = std::hint::black_box(unsafe {
        std::mem::transmute::<
            unsafe extern "C" fn(
                *mut pyo3::ffi::PyObject,
                *mut pyo3::ffi::PyObject,
                *mut pyo3::ffi::PyObject,
            ) -> *mut pyo3::ffi::PyObject,
            Call,
        >(pyo3::ffi::PyObject_Call)
    });
    let kwargs = kwargs.map_or(std::ptr::null_mut(), |k| k.as_ptr());
    // The guard is the only local with a destructor: dropped first, it hangs.
    let guard = HangThread;
    // SAFETY: the GIL is held (the Bound arguments prove it); the pointers are
    // valid for the call (borrowed from the Bounds); kwargs may be NULL.
    let ret = unsafe { call_unwinding(callable.as_ptr(), args.as_ptr(), kwargs) };
    std::mem::forget(guard);
    // SAFETY: a new reference, or NULL with an exception set.
    unsafe { Bound::from_owned_ptr_or_err(callable.py(), ret) }
}

/// `callable()`, as [`call`].
pub fn call0<'py>(callable: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    call(callable, &PyTuple::empty(callable.py()), None)
}

/// `callable(arg)`, as [`call`]: for the short calls into user code (pickling,
/// copying, a predicate) that a daemon thread may also be inside at exit.
pub fn call1<'py>(
    callable: &Bound<'py, PyAny>,
    arg: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    call(callable, &PyTuple::new(callable.py(), [arg])?, None)
}

/// `threading.get_ident()` of the calling thread.
pub fn thread_ident() -> u64 {
    // SAFETY: no preconditions; it only reads the OS thread id.
    // (c_ulong is u32 on some targets, hence the conversion.)
    #[allow(clippy::useless_conversion)]
    u64::from(unsafe { PyThread_get_thread_ident() })
}

static MAIN_IDENT: OnceLock<u64> = OnceLock::new();
static NEXT_THREAD: AtomicU64 = AtomicU64::new(1);

/// The process a thread belongs to, as the waits see it.
#[derive(Clone)]
pub struct Binding {
    /// Virtual pid, or 0 for the main process.
    pub key: u64,
    pub token: Option<Arc<CancelToken>>,
    /// The worker's own thread: signals sent to the worker run their handlers
    /// here (`token` is then the process's `main_token`).
    pub signals: bool,
}

thread_local! {
    static BINDING: RefCell<Binding> = const {
        RefCell::new(Binding { key: 0, token: None, signals: false })
    };
    static THREAD_NO: Cell<u64> = const { Cell::new(0) };
}

pub fn bind(b: Binding) {
    BINDING.with(|c| *c.borrow_mut() = b);
}

pub fn unbind() {
    bind(Binding {
        key: 0,
        token: None,
        signals: false,
    });
}

pub fn process_key() -> u64 {
    BINDING.with(|c| c.borrow().key)
}

/// Threads in a [`shielded`] step, by ident. Read and changed with the GIL held.
static SHIELDED: parking_lot::Mutex<Vec<u64>> = parking_lot::Mutex::new(Vec::new());

/// Run `step` shielded from the end of the calling thread's process: until it
/// returns, no asynchronous exception is sent to this thread
/// ([`is_shielded`]), and its waits neither wake for the process's
/// termination nor run its signal handlers. For a step that must not be cut in
/// half, such as starting a child process: `Thread.start()` creates the
/// child's thread and then waits for it, and an interruption there left a
/// child that runs while its parent's object says it never started. The caller
/// checks for termination ([`check_running`]) and pending signals afterwards.
/// Called with the GIL held.
pub fn shielded<R>(step: impl FnOnce() -> R) -> R {
    struct Restore(Option<Binding>, u64);
    impl Drop for Restore {
        fn drop(&mut self) {
            let mut shielded = SHIELDED.lock();
            if let Some(i) = shielded.iter().position(|&t| t == self.1) {
                shielded.swap_remove(i);
            }
            drop(shielded);
            if let Some(b) = self.0.take() {
                BINDING.with(|c| *c.borrow_mut() = b);
            }
        }
    }
    let me = thread_ident();
    let saved = BINDING.with(|c| {
        let mut b = c.borrow_mut();
        let quiet = Binding {
            key: b.key,
            token: None,
            signals: false,
        };
        std::mem::replace(&mut *b, quiet)
    });
    SHIELDED.lock().push(me);
    let _restore = Restore(Some(saved), me);
    step()
}

/// Thread `ident` is in a [`shielded`] step: send it no asynchronous exception.
pub fn is_shielded(ident: u64) -> bool {
    SHIELDED.lock().contains(&ident)
}

pub fn current_token() -> Option<Arc<CancelToken>> {
    BINDING.with(|c| c.borrow().token.clone())
}

/// The token of the calling thread if signals are delivered to it (a worker's
/// own thread), else None.
pub fn signal_token() -> Option<Arc<CancelToken>> {
    BINDING.with(|c| {
        let b = c.borrow();
        if b.signals {
            b.token.clone()
        } else {
            None
        }
    })
}

/// Run the handlers of the signals pending for this thread (a worker's own
/// thread), as the main thread of a process runs its handlers between
/// bytecodes. An exception a handler raises is returned.
pub fn run_signal_handlers(py: Python<'_>) -> PyResult<()> {
    static RUN: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    call0(RUN.import(py, "ios_mp._signals", "_run_pending")?)?;
    Ok(())
}

/// Owner id for locks: (process key, per-thread number).
pub fn owner() -> Owner {
    let t = THREAD_NO.with(|c| {
        let v = c.get();
        if v != 0 {
            return v;
        }
        let v = NEXT_THREAD.fetch_add(1, Ordering::Relaxed);
        c.set(v);
        v
    });
    (process_key(), t)
}

pub fn is_main_thread() -> bool {
    MAIN_IDENT.get().is_some_and(|&m| m == thread_ident())
}

/// Convert a stdlib-style `timeout` argument to a deadline. `None` waits
/// forever; negative values mean "don't wait" (as `SemLock.acquire` does); NaN
/// is rejected; values too large for `Instant` wait forever.
pub fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    match timeout {
        None => Ok(None),
        Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must be a number, not NaN")),
        Some(t) if t <= 0.0 => Ok(Some(Instant::now())),
        Some(t) => Ok(Duration::try_from_secs_f64(t)
            .ok()
            .and_then(|d| Instant::now().checked_add(d))),
    }
}

/// The error a worker sees when its process is terminated while it waits.
///
/// `terminate()` may also have queued an asynchronous `ProcessTerminated` for
/// this thread; it is absorbed first, so the termination is raised once, here,
/// and not a second time at some later bytecode.
pub fn terminated(py: Python<'_>, token: &CancelToken) -> PyErr {
    absorb_pending_termination(py);
    let sig = token.reason().unwrap_or(15);
    ProcessTerminated::new_err((format!("process terminated by signal {sig}"),))
}

/// Refuse IPC from a process that has been ended (`terminate()`, `kill()`,
/// `os._exit`) but still runs Python code: an `except`/`finally` of the worker
/// that ran while `ProcessTerminated` unwound it. A real process would be gone
/// and send (or take) nothing, so a queue put or get, or a Pipe send or
/// receive, raises `ProcessTerminated` again there. Cheap when not ended.
pub fn check_running(py: Python<'_>) -> PyResult<()> {
    let token = BINDING.with(|c| {
        let b = c.borrow();
        b.token.as_ref().filter(|t| t.is_cancelled()).cloned()
    });
    match token {
        Some(token) => Err(terminated(py, &token)),
        None => Ok(()),
    }
}

/// Let an asynchronous `ProcessTerminated` queued for the calling thread be
/// delivered now, and drop it. Harmless when none is pending.
///
/// Not `PyThreadState_SetAsyncExc(ident, NULL)`: before CPython 3.13 that call
/// signals the eval breaker, and only the *delivery* of a non-NULL exception
/// unsignals it; every later function call of every thread would then take the
/// slow path, and on 3.11 a trace or profile function would loop forever. So a
/// few bytecodes with a backward jump (where every version checks the breaker)
/// are run instead, and the exception they receive is swallowed.
pub fn absorb_pending_termination(py: Python<'_>) {
    static ABSORB: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let Ok(absorb) = ABSORB.import(py, "ios_mp.process", "_absorb_termination") else {
        return;
    };
    for _ in 0..2 {
        match call0(absorb) {
            Err(e) if e.is_instance_of::<ProcessTerminated>(py) => continue,
            _ => return,
        }
    }
}

/// Run `attempt(deadline, token)` with the GIL released until it succeeds,
/// times out (`Ok(None)`) or is cancelled (raises `ProcessTerminated`).
pub fn block_on<R, F>(
    py: Python<'_>,
    deadline: Option<Instant>,
    mut attempt: F,
) -> PyResult<Option<R>>
where
    R: Send,
    F: FnMut(Option<Instant>, Option<&CancelToken>) -> Result<R, WaitError> + Send,
{
    let (token, signals) = BINDING.with(|c| {
        let b = c.borrow();
        (b.token.clone(), b.signals)
    });
    let main = is_main_thread();
    loop {
        // A worker's own thread handles its pending signals before it waits
        // (and again each time a signal interrupts the wait, below). With the
        // GIL held here, a sender either sees this thread waiting (and only
        // interrupts the wait) or queues its handlers before we check.
        if signals && token.as_deref().is_some_and(CancelToken::has_signals) {
            run_signal_handlers(py)?;
        }
        let slice = if main {
            let s = Instant::now() + SIGNAL_SLICE;
            Some(deadline.map_or(s, |d| d.min(s)))
        } else {
            deadline
        };
        let tok = token.as_deref();
        let outcome = {
            let _waiting = tok.map(CancelToken::enter_wait);
            py.detach(|| attempt(slice, tok))
        };
        match outcome {
            Ok(r) => return Ok(Some(r)),
            Err(WaitError::Cancelled) => {
                return Err(terminated(
                    py,
                    token.as_deref().expect("cancelled without token"),
                ))
            }
            Err(WaitError::Timeout) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(None);
                }
                // Early: the main thread's slice ended (run its signal handlers:
                // Ctrl-C), or a signal interrupted a worker's own thread (its
                // handlers run at the top of the loop). Either way, wait again.
                if main {
                    py.check_signals()?;
                }
            }
        }
    }
}

/// The calling thread's process key: its virtual pid, or 0 in the main process.
#[pyfunction]
fn _process_key() -> u64 {
    process_key()
}

/// `time.sleep(seconds)` for a thread of a worker: the same wait, but it ends
/// at once (raising `ProcessTerminated`) when the worker is terminated. Returns
/// false, without sleeping, outside workers: the caller then uses the real
/// `time.sleep`, so the app sees stdlib behaviour exactly.
#[pyfunction]
fn _sleep(py: Python<'_>, seconds: f64) -> PyResult<bool> {
    if current_token().is_none() {
        return Ok(false);
    }
    if seconds.is_nan() {
        return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
    }
    if seconds < 0.0 {
        return Err(PyValueError::new_err("sleep length must be non-negative"));
    }
    let d = deadline(Some(seconds))?;
    block_on::<(), _>(py, d, |slice, tok| {
        let tok = tok.expect("worker threads have a token");
        let rx = tok.receiver();
        if tok.take_interrupt() {
            return Err(WaitError::Timeout);
        }
        let r = match slice {
            Some(s) => rx.recv_deadline(s).map_err(|e| e.is_timeout()),
            None => rx.recv().map_err(|_| false),
        };
        match r {
            // The token never carries a message; disconnection means cancelled
            // or interrupted.
            Ok(()) | Err(false) => Err(tok.fired()),
            Err(true) => Err(WaitError::Timeout),
        }
    })?;
    Ok(true)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("ProcessTerminated", py.get_type::<ProcessTerminated>())?;
    m.add_function(wrap_pyfunction!(_process_key, m)?)?;
    m.add_function(wrap_pyfunction!(_sleep, m)?)?;
    let main: u64 = py
        .import("threading")?
        .call_method0("main_thread")?
        .getattr("ident")?
        .extract()?;
    let _ = MAIN_IDENT.set(main);
    Ok(())
}
