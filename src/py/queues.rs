//! The native base of `Queue`, `SimpleQueue` and `JoinableQueue`
//! (`python/ios_mp/queues.py` picks the methods each stdlib class has).
//!
//! # Copy semantics
//! A process receives its own copy of what was put, as through a pipe: `put`
//! pickles the value as stdlib's `ForkingPickler` does, with the reducers
//! registered with `reduction.register` (`super::pickler`; an unpicklable value
//! fails at `put`, with pickle's error) and `get` unpickles it. Immutable atoms (exact `int`, `float`,
//! `complex`, `str`, `bytes`, `bool`, `None`) are passed as they are, since a
//! copy could not be told apart; plain data (exact `dict`/`list`/`tuple` trees
//! of atoms) is copied structurally at `put`, which gives what the round trip
//! would, faster (`super::pickler::copy_plain`). `copy=False` (per queue) or
//! `set_default_copy(False)` passes references instead.
//!
//! # Close
//! `close()` is per process, like closing one process's pipe handles: the
//! process that closed the queue can no longer use it (stdlib's ValueError for
//! `Queue`, OSError for `SimpleQueue`); other processes keep using it. Threads of
//! the closing process blocked in `get`/`put` are woken and get that error.
//! As in stdlib, a `Queue`'s `empty()` raises OSError after `close()` only if
//! the process had put something (stdlib's feeder thread then closed the
//! process's pipe handles); `qsize()`, `full()`, `task_done()` and `join()` keep
//! working after `close()`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

use parking_lot::Mutex;
use pyo3::exceptions::{PyAssertionError, PyException, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyComplex, PyDict, PyFloat, PyInt, PyString, PyTuple};

use super::runtime::{self, block_on, check_running, deadline, process_key};
use super::synchronize::share_only_by_inheritance;
use crate::core::{Broadcast, CancelToken, Channel, JoinCounter, RecvError, SendError, WaitError};
use crossbeam_channel::Receiver;

static DEFAULT_COPY: AtomicBool = AtomicBool::new(true);

/// An item in flight: either pickled bytes or the object itself.
struct Item {
    pickled: bool,
    obj: Py<PyAny>,
}

/// Which stdlib class's close semantics apply.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Queue,
    Simple,
}

struct State {
    chan: Channel<Item>,
    flavor: Flavor,
    copy: bool,
    maxsize: i64,
    unfinished: Option<JoinCounter>,
    /// Processes (keys) that have closed their end.
    closed_by: Mutex<HashSet<u64>>,
    closed_any: AtomicBool,
    on_close: Broadcast,
    /// Processes (keys) that have put into the queue (stdlib: started its
    /// feeder thread there), and the last one, to skip the lock when unchanged.
    putters: Mutex<HashSet<u64>>,
    last_putter: AtomicU64,
}

#[pyclass(
    subclass,
    frozen,
    weakref,
    module = "ios_mp.queues",
    name = "_QueueBase"
)]
pub struct QueueBase {
    st: OnceLock<State>,
}

/// A wait's cancellation receiver fired: terminated, or a signal to handle.
fn fired(tok: Option<&CancelToken>) -> WaitError {
    tok.map_or(WaitError::Cancelled, CancelToken::fired)
}

fn pickle_loads(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOADS.import(py, "pickle", "loads")
}

pub(crate) fn is_atom(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_none()
        || obj.is_exact_instance_of::<PyInt>()
        || obj.is_exact_instance_of::<PyString>()
        || obj.is_exact_instance_of::<PyBytes>()
        || obj.is_exact_instance_of::<PyFloat>()
        || obj.is_exact_instance_of::<PyBool>()
        || obj.is_exact_instance_of::<PyComplex>()
}

/// What a blocking get/put ended with, besides success.
enum Outcome<T> {
    Done(T),
    Closed,
}

impl QueueBase {
    fn state<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a State> {
        slf.get().st.get().ok_or_else(|| {
            let name = slf
                .get_type()
                .name()
                .map_or_else(|_| "Queue".to_owned(), |n| n.to_string());
            PyRuntimeError::new_err(format!(
                "{name}.__init__() was not called (a subclass's __init__ must call super().__init__())"
            ))
        })
    }

    fn closed_here(st: &State) -> bool {
        st.closed_any.load(Ordering::Acquire) && st.closed_by.lock().contains(&process_key())
    }

    /// Remember that the calling process has put into the queue.
    fn mark_putter(st: &State) {
        let key = process_key();
        if st.last_putter.load(Ordering::Relaxed) != key {
            st.putters.lock().insert(key);
            st.last_putter.store(key, Ordering::Relaxed);
        }
    }

    /// Whether the calling process's pipe handles would be closed: it closed
    /// the queue, and (for `Queue`) it had put something before.
    fn handles_closed_here(st: &State) -> bool {
        Self::closed_here(st)
            && (st.flavor == Flavor::Simple || st.putters.lock().contains(&process_key()))
    }

    /// `put` could not pickle `obj`. By default that raises pickle's error here,
    /// in the caller. A `Queue` subclass that defines stdlib's private hook
    /// `_on_queue_feeder_error(e, obj)` asked for stdlib's feeder-thread
    /// behaviour instead: the hook is called (while `e` is being handled) and the
    /// item is dropped.
    fn unpicklable(
        slf: &Bound<'_, Self>,
        st: &State,
        err: PyErr,
        obj: Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        if st.flavor != Flavor::Queue
            || !err.is_instance_of::<PyException>(py)
            || !slf.hasattr("_on_queue_feeder_error")?
        {
            return Err(err);
        }
        static REPORT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let report = REPORT.import(py, "ios_mp.queues", "_report_feeder_error")?;
        report.call1((slf, err.into_value(py), obj))?;
        Ok(())
    }

    /// One round of a blocking channel operation: `op` gets the interrupts to
    /// select on, `[cancellation, close]` (index 0 fires when this process is
    /// terminated, index 1 when any process closes the queue). The close
    /// subscription is taken before checking whether `key` closed the queue, so
    /// a close racing with this check still wakes `op`.
    fn interruptible<R>(
        st: &State,
        key: u64,
        tok: Option<&CancelToken>,
        op: impl FnOnce(&[&Receiver<()>]) -> Result<Outcome<R>, WaitError>,
    ) -> Result<Outcome<R>, WaitError> {
        let sub = st.on_close.subscribe();
        if st.closed_by.lock().contains(&key) {
            return Ok(Outcome::Closed);
        }
        let cancel = tok.map_or_else(crossbeam_channel::never, CancelToken::receiver);
        if tok.is_some_and(CancelToken::take_interrupt) {
            return Err(WaitError::Timeout); // a signal: run its handler first
        }
        op(&[&cancel, &sub])
    }

    fn closed_error(slf: &Bound<'_, Self>, st: &State) -> PyErr {
        match st.flavor {
            Flavor::Simple => PyOSError::new_err("handle is closed"),
            Flavor::Queue => {
                let r = slf
                    .repr()
                    .map_or_else(|_| "<Queue>".to_owned(), |r| r.to_string());
                PyValueError::new_err(format!("Queue {r} is closed"))
            }
        }
    }

    fn encode(py: Python<'_>, st: &State, obj: Bound<'_, PyAny>) -> PyResult<Item> {
        if !st.copy || is_atom(&obj) {
            return Ok(Item {
                pickled: false,
                obj: obj.unbind(),
            });
        }
        if let Some(copy) = super::pickler::copy_plain(&obj)? {
            return Ok(Item {
                pickled: false,
                obj: copy.unbind(),
            });
        }
        let data = super::pickler::dumps(py, &obj)?;
        Ok(Item {
            pickled: true,
            obj: data.unbind(),
        })
    }

    fn decode(py: Python<'_>, item: Item) -> PyResult<Py<PyAny>> {
        if item.pickled {
            Ok(runtime::call1(pickle_loads(py)?, item.obj.bind(py))?.unbind())
        } else {
            Ok(item.obj)
        }
    }

    fn empty_error(py: Python<'_>) -> PyErr {
        match py.import("queue").and_then(|q| q.getattr("Empty")) {
            Ok(cls) => PyErr::from_type(cls.cast_into().expect("queue.Empty is a type"), ()),
            Err(e) => e,
        }
    }

    fn full_error(py: Python<'_>) -> PyErr {
        match py.import("queue").and_then(|q| q.getattr("Full")) {
            Ok(cls) => PyErr::from_type(cls.cast_into().expect("queue.Full is a type"), ()),
            Err(e) => e,
        }
    }
}

#[pymethods]
impl QueueBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            st: OnceLock::new(),
        }
    }

    /// `_init(maxsize, copy, simple, joinable)`: `copy` None takes the default.
    #[pyo3(signature = (maxsize = 0, copy = None, simple = false, joinable = false))]
    fn _init(
        slf: &Bound<'_, Self>,
        maxsize: i64,
        copy: Option<bool>,
        simple: bool,
        joinable: bool,
    ) -> PyResult<()> {
        let cap = usize::try_from(maxsize).ok().filter(|&n| n > 0);
        let st = State {
            chan: Channel::new(cap),
            flavor: if simple {
                Flavor::Simple
            } else {
                Flavor::Queue
            },
            copy: copy.unwrap_or_else(|| DEFAULT_COPY.load(Ordering::Relaxed)),
            maxsize: if cap.is_some() { maxsize } else { 0 },
            unfinished: joinable.then(JoinCounter::default),
            closed_by: Mutex::new(HashSet::new()),
            closed_any: AtomicBool::new(false),
            on_close: Broadcast::default(),
            putters: Mutex::new(HashSet::new()),
            last_putter: AtomicU64::new(u64::MAX),
        };
        slf.get()
            .st
            .set(st)
            .map_err(|_| PyRuntimeError::new_err("queue is already initialized"))
    }

    #[getter]
    fn _maxsize(slf: &Bound<'_, Self>) -> PyResult<i64> {
        Ok(Self::state(slf)?.maxsize)
    }

    #[getter]
    fn _copy(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::state(slf)?.copy)
    }

    #[pyo3(signature = (obj, block = true, timeout = None))]
    fn _put(
        slf: &Bound<'_, Self>,
        obj: Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let py = slf.py();
        let st = Self::state(slf)?;
        if Self::closed_here(st) {
            return Err(Self::closed_error(slf, st));
        }
        check_running(py)?;
        let item = match Self::encode(py, st, obj.clone()) {
            Ok(item) => item,
            Err(err) => return Self::unpicklable(slf, st, err, obj),
        };
        Self::mark_putter(st);
        if let Some(u) = &st.unfinished {
            // Count before the item is visible, or a fast consumer's task_done()
            // could run first and be refused.
            u.incr();
        }
        let item = match st.chan.try_send(item) {
            Ok(()) => return Ok(()),
            Err(item) => item,
        };
        let undo = |e: PyErr| {
            if let Some(u) = &st.unfinished {
                u.undo();
            }
            e
        };
        if !block {
            return Err(undo(Self::full_error(py)));
        }
        let d = deadline(timeout)?;
        let key = process_key();
        let mut slot = Some(item);
        let r = block_on(py, d, |slice, tok| {
            Self::interruptible(st, key, tok, |interrupts| {
                let item = slot.take().expect("item present until sent");
                match st.chan.send(item, slice, interrupts) {
                    Ok(()) => Ok(Outcome::Done(())),
                    Err(SendError::Full(item)) => {
                        slot = Some(item);
                        Err(WaitError::Timeout)
                    }
                    Err(SendError::Interrupted(item, 0)) => {
                        slot = Some(item);
                        Err(fired(tok))
                    }
                    Err(SendError::Interrupted(item, _)) => {
                        slot = Some(item);
                        // Closed by some process: ours? Re-check on the next round.
                        Err(WaitError::Timeout)
                    }
                }
            })
        });
        match r {
            Ok(Some(Outcome::Done(()))) => Ok(()),
            Ok(Some(Outcome::Closed)) => Err(undo(Self::closed_error(slf, st))),
            Ok(None) => Err(undo(Self::full_error(py))),
            Err(e) => Err(undo(e)),
        }
    }

    #[pyo3(signature = (block = true, timeout = None))]
    fn _get(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let st = Self::state(slf)?;
        if Self::closed_here(st) {
            return Err(Self::closed_error(slf, st));
        }
        check_running(py)?;
        if let Some(item) = st.chan.try_recv() {
            return Self::decode(py, item);
        }
        if !block {
            return Err(Self::empty_error(py));
        }
        let d = deadline(timeout)?;
        let key = process_key();
        let r = block_on(py, d, |slice, tok| {
            Self::interruptible(st, key, tok, |interrupts| {
                match st.chan.recv(slice, interrupts) {
                    Ok(item) => Ok(Outcome::Done(item)),
                    Err(RecvError::Empty) => Err(WaitError::Timeout),
                    Err(RecvError::Interrupted(0)) => Err(fired(tok)),
                    // Closed by some process: loop and re-check (ours, or not).
                    Err(RecvError::Interrupted(_)) => Err(WaitError::Timeout),
                }
            })
        })?;
        match r {
            Some(Outcome::Done(item)) => Self::decode(py, item),
            Some(Outcome::Closed) => Err(Self::closed_error(slf, st)),
            None => Err(Self::empty_error(py)),
        }
    }

    fn _put_nowait(slf: &Bound<'_, Self>, obj: Bound<'_, PyAny>) -> PyResult<()> {
        Self::_put(slf, obj, false, None)
    }

    fn _get_nowait(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::_get(slf, false, None)
    }

    /// stdlib computes it from a semaphore, which closing does not touch.
    fn _qsize(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::state(slf)?.chan.len())
    }

    /// stdlib polls the process's read handle, which may be closed.
    fn _empty(slf: &Bound<'_, Self>) -> PyResult<bool> {
        let st = Self::state(slf)?;
        if Self::handles_closed_here(st) {
            return Err(PyOSError::new_err("handle is closed"));
        }
        Ok(st.chan.is_empty())
    }

    fn _full(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::state(slf)?.chan.is_full())
    }

    /// Close this process's end (see the module docs).
    fn _close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = Self::state(slf)?;
        if st.closed_by.lock().insert(process_key()) {
            st.closed_any.store(true, Ordering::Release);
            st.on_close.fire();
        }
        Ok(())
    }

    fn _is_closed(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::closed_here(Self::state(slf)?))
    }

    /// No feeder thread exists (puts are synchronous), so there is nothing to
    /// join; stdlib's precondition is kept.
    fn _join_thread(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = Self::state(slf)?;
        if !Self::closed_here(st) {
            let r = slf.repr()?.to_string();
            return Err(PyAssertionError::new_err(format!("Queue {r} not closed")));
        }
        Ok(())
    }

    fn _cancel_join_thread(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::state(slf)?;
        Ok(())
    }

    fn _task_done(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = Self::state(slf)?;
        let u = st
            .unfinished
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("not a joinable queue"))?;
        if u.done() {
            Ok(())
        } else {
            Err(PyValueError::new_err("task_done() called too many times"))
        }
    }

    fn _join(slf: &Bound<'_, Self>) -> PyResult<()> {
        let st = Self::state(slf)?;
        let u = st
            .unfinished
            .as_ref()
            .ok_or_else(|| PyValueError::new_err("not a joinable queue"))?;
        block_on(slf.py(), None, |d, tok| u.join(d, tok))?;
        Ok(())
    }

    fn _unfinished(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::state(slf)?
            .unfinished
            .as_ref()
            .map_or(0, JoinCounter::unfinished))
    }

    fn __reduce__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Err(share_only_by_inheritance(slf.as_any()))
    }

    fn __copy__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    fn __deepcopy__<'py>(slf: Bound<'py, Self>, _memo: &Bound<'py, PyAny>) -> Bound<'py, Self> {
        slf
    }
}

/// Default for queues created without `copy=`; returns the previous default.
#[pyfunction]
fn set_default_copy(copy: bool) -> bool {
    DEFAULT_COPY.swap(copy, Ordering::Relaxed)
}

#[pyfunction]
fn get_default_copy() -> bool {
    DEFAULT_COPY.load(Ordering::Relaxed)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<QueueBase>()?;
    m.add_function(wrap_pyfunction!(set_default_copy, m)?)?;
    m.add_function(wrap_pyfunction!(get_default_copy, m)?)?;
    Ok(())
}
