//! `SemLock`, `Condition`, `Event`, `Barrier`: native bases of the classes in
//! `python/ios_mp/synchronize.py`.
//!
//! Construction is split the way subclassable stdlib types need it: `__new__`
//! accepts any arguments and builds an empty object, and the Python subclass's
//! `__init__` calls `_init(...)`. Using one before `_init` raises a RuntimeError
//! that says `__init__` was not called.
//!
//! None of these pickle (stdlib raises the same RuntimeError outside of
//! spawning); copying returns the same object, so the fork-like snapshot of a
//! process's arguments shares them, like inheritance through fork does.

use std::sync::{Arc, OnceLock};

use pyo3::exceptions::{PyAssertionError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use super::runtime::{self, block_on, deadline, owner};
use crate::core::{self, Arrival, BarrierError, CondError, SemError, SemKind, WaitError};

fn not_initialized(obj: &Bound<'_, PyAny>) -> PyErr {
    let name = obj
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string());
    PyRuntimeError::new_err(format!(
        "{name}.__init__() was not called (a subclass's __init__ must call super().__init__())"
    ))
}

pub fn share_only_by_inheritance(obj: &Bound<'_, PyAny>) -> PyErr {
    let name = obj
        .get_type()
        .name()
        .map_or_else(|_| "object".to_owned(), |n| n.to_string());
    PyRuntimeError::new_err(format!(
        "{name} objects should only be shared between processes through inheritance"
    ))
}

/// SemLock kinds, as in CPython's `_multiprocessing.SemLock`.
pub const RECURSIVE_MUTEX: i32 = 0;
pub const SEMAPHORE: i32 = 1;

#[pyclass(subclass, frozen, weakref, module = "ios_mp.synchronize")]
pub struct SemLock {
    inner: OnceLock<Arc<core::SemLock>>,
}

impl SemLock {
    pub fn get<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a Arc<core::SemLock>> {
        slf.get()
            .inner
            .get()
            .ok_or_else(|| not_initialized(slf.as_any()))
    }
}

#[pymethods]
impl SemLock {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            inner: OnceLock::new(),
        }
    }

    /// `_init(kind, value, maxvalue)`: kind is `RECURSIVE_MUTEX` or `SEMAPHORE`;
    /// `maxvalue` None means unbounded.
    #[pyo3(signature = (kind, value, maxvalue))]
    fn _init(slf: &Bound<'_, Self>, kind: i32, value: i64, maxvalue: Option<i64>) -> PyResult<()> {
        let kind = match kind {
            RECURSIVE_MUTEX => SemKind::Recursive,
            SEMAPHORE => SemKind::Semaphore,
            _ => return Err(PyValueError::new_err(format!("unrecognized kind {kind}"))),
        };
        if value < 0 {
            return Err(PyValueError::new_err(format!(
                "semaphore initial value must be >= 0, not {value}"
            )));
        }
        let maxvalue = match maxvalue {
            None => usize::MAX,
            Some(m) => usize::try_from(m).unwrap_or(0),
        };
        let value = usize::try_from(value).unwrap_or(usize::MAX);
        if value > maxvalue {
            return Err(PyValueError::new_err(format!(
                "initial value {value} is larger than maxvalue {maxvalue}"
            )));
        }
        slf.get()
            .inner
            .set(Arc::new(core::SemLock::new(kind, value, maxvalue)))
            .map_err(|_| PyRuntimeError::new_err("SemLock is already initialized"))
    }

    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let sem = Self::get(slf)?;
        let me = owner();
        if sem.try_acquire(me) {
            return Ok(true);
        }
        if !block {
            return Ok(false);
        }
        let d = deadline(timeout)?;
        let sem = sem.clone();
        let r = block_on(slf.py(), d, move |d, tok| sem.acquire(me, d, tok))?;
        Ok(r.is_some())
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        match Self::get(slf)?.release(owner()) {
            Ok(()) => Ok(()),
            Err(SemError::TooManyReleases) => Err(PyValueError::new_err(
                "semaphore or lock released too many times",
            )),
            Err(SemError::NotOwner) => Err(PyAssertionError::new_err(
                "attempt to release recursive lock not owned by thread",
            )),
        }
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(slf: &Bound<'_, Self>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        Self::release(slf)
    }

    /// The stdlib reaches the native lock as `lock._semlock`; here it is itself.
    #[getter]
    #[allow(clippy::self_named_constructors)]
    fn _semlock<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    #[getter]
    fn kind(slf: &Bound<'_, Self>) -> PyResult<i32> {
        Ok(match Self::get(slf)?.kind() {
            SemKind::Recursive => RECURSIVE_MUTEX,
            SemKind::Semaphore => SEMAPHORE,
        })
    }

    #[getter]
    fn maxvalue(slf: &Bound<'_, Self>) -> PyResult<Option<usize>> {
        let m = Self::get(slf)?.maxvalue();
        Ok((m != usize::MAX).then_some(m))
    }

    fn _count(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.count_held_by(owner()))
    }

    fn _is_mine(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::get(slf)?.count_held_by(owner()) > 0)
    }

    fn _is_zero(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::get(slf)?.value() == 0)
    }

    fn _get_value(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.value())
    }

    /// For `__repr__`: "mine", "other-thread" (same process), "other-process"
    /// or None when free.
    fn _holder(slf: &Bound<'_, Self>) -> PyResult<Option<&'static str>> {
        let me = owner();
        Ok(Self::get(slf)?.owner().map(|o| {
            if o == me {
                "mine"
            } else if o.0 == me.0 {
                "other-thread"
            } else {
                "other-process"
            }
        }))
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

#[pyclass(subclass, frozen, weakref, module = "ios_mp.synchronize")]
pub struct Condition {
    inner: OnceLock<(Arc<core::Condition>, Py<SemLock>)>,
}

impl Condition {
    fn get<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a (Arc<core::Condition>, Py<SemLock>)> {
        slf.get()
            .inner
            .get()
            .ok_or_else(|| not_initialized(slf.as_any()))
    }

    fn wait_impl(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        let (cond, _) = Self::get(slf)?;
        let cond = cond.clone();
        let me = owner();
        let d = deadline(timeout)?;
        // On the main thread `block_on` slices the wait for Ctrl-C. Each slice is
        // a complete wait (release, sleep, re-acquire), and between slices this
        // thread holds the lock again, so no notify can fall between two slices:
        // a notifier must hold the lock to notify.
        let r = block_on(slf.py(), d, move |slice, tok| {
            match cond.wait(me, slice, tok) {
                Ok(true) => Ok(()),
                Ok(false) => Err(WaitError::Timeout),
                Err(CondError::Wait(e)) => Err(e),
                // Checked by the caller before waiting; only a release by another
                // thread of a plain Lock could get here.
                Err(CondError::NotOwner) => Err(WaitError::Cancelled),
            }
        })?;
        Ok(r.is_some())
    }
}

#[pymethods]
impl Condition {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            inner: OnceLock::new(),
        }
    }

    fn _init(slf: &Bound<'_, Self>, lock: &Bound<'_, PyAny>) -> PyResult<()> {
        let lock = lock.cast::<SemLock>().map_err(|_| {
            PyTypeError::new_err(format!(
                "Condition(lock=...) needs an ios_mp Lock or RLock, not {}",
                lock.get_type()
                    .name()
                    .map_or_else(|_| "?".into(), |n| n.to_string())
            ))
        })?;
        let sem = SemLock::get(lock)?.clone();
        slf.get()
            .inner
            .set((Arc::new(core::Condition::new(sem)), lock.clone().unbind()))
            .map_err(|_| PyRuntimeError::new_err("Condition is already initialized"))
    }

    #[getter]
    fn _lock(slf: &Bound<'_, Self>) -> PyResult<Py<SemLock>> {
        Ok(Self::get(slf)?.1.clone_ref(slf.py()))
    }

    #[pyo3(signature = (block = true, timeout = None))]
    fn acquire(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<bool> {
        let lock = Self::get(slf)?.1.bind(slf.py()).clone();
        SemLock::acquire(&lock, block, timeout)
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let lock = Self::get(slf)?.1.bind(slf.py()).clone();
        SemLock::release(&lock)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Self::acquire(slf, true, None)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(slf: &Bound<'_, Self>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        Self::release(slf)
    }

    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<bool> {
        let (cond, _) = Self::get(slf)?;
        if cond.lock().count_held_by(owner()) == 0 {
            return Err(PyAssertionError::new_err(
                "must acquire() condition before using wait()",
            ));
        }
        Self::wait_impl(slf, timeout)
    }

    /// Wait until `predicate()` is true, or the timeout; returns its last value.
    #[pyo3(signature = (predicate, timeout = None))]
    fn wait_for(
        slf: &Bound<'_, Self>,
        predicate: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let end = deadline(timeout)?;
        let mut result = runtime::call0(predicate)?;
        while !result.is_truthy()? {
            let remaining = match end {
                None => None,
                Some(e) => {
                    let now = std::time::Instant::now();
                    if now >= e {
                        break;
                    }
                    Some((e - now).as_secs_f64())
                }
            };
            Self::wait(slf, remaining)?;
            result = runtime::call0(predicate)?;
        }
        Ok(result.unbind())
    }

    #[pyo3(signature = (n = 1))]
    fn notify(slf: &Bound<'_, Self>, n: usize) -> PyResult<()> {
        let (cond, _) = Self::get(slf)?;
        if cond.lock().count_held_by(owner()) == 0 {
            return Err(PyAssertionError::new_err("lock is not owned"));
        }
        cond.notify(n);
        Ok(())
    }

    fn notify_all(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::notify(slf, usize::MAX)
    }

    fn _waiters(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.0.waiters())
    }

    /// Notified waiters that have not woken up yet.
    fn _pending(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.0.pending())
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

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some((_, l)) = self.inner.get() {
            visit.call(l)?;
        }
        Ok(())
    }
}

#[pyclass(subclass, frozen, weakref, module = "ios_mp.synchronize")]
pub struct Event {
    inner: Arc<core::Event>,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            inner: Arc::new(core::Event::default()),
        }
    }

    fn is_set(&self) -> bool {
        self.inner.is_set()
    }

    fn set(&self) {
        self.inner.set();
    }

    fn clear(&self) {
        self.inner.clear();
    }

    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        if self.inner.is_set() {
            return Ok(true);
        }
        let d = deadline(timeout)?;
        let ev = self.inner.clone();
        let r = block_on(py, d, move |d, tok| match ev.wait(d, tok) {
            Ok(true) => Ok(()),
            Ok(false) => Err(WaitError::Timeout),
            Err(e) => Err(e),
        })?;
        Ok(r.is_some())
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

struct BarrierInner {
    core: Arc<core::Barrier>,
    action: Option<Py<PyAny>>,
    timeout: Option<f64>,
}

#[pyclass(subclass, frozen, weakref, module = "ios_mp.synchronize")]
pub struct Barrier {
    inner: OnceLock<BarrierInner>,
}

impl Barrier {
    fn get<'a>(slf: &'a Bound<'_, Self>) -> PyResult<&'a BarrierInner> {
        slf.get()
            .inner
            .get()
            .ok_or_else(|| not_initialized(slf.as_any()))
    }
}

fn broken_barrier(py: Python<'_>) -> PyErr {
    match py
        .import("threading")
        .and_then(|t| t.getattr("BrokenBarrierError"))
        .and_then(|cls| cls.call0())
    {
        Ok(e) => PyErr::from_value(e),
        Err(e) => e,
    }
}

#[pymethods]
impl Barrier {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Self {
            inner: OnceLock::new(),
        }
    }

    #[pyo3(signature = (parties, action = None, timeout = None))]
    fn _init(
        slf: &Bound<'_, Self>,
        parties: i64,
        action: Option<Py<PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        if parties < 1 {
            return Err(PyValueError::new_err(format!(
                "Barrier(parties=...) must be >= 1, not {parties}"
            )));
        }
        let parties = usize::try_from(parties).unwrap_or(usize::MAX);
        slf.get()
            .inner
            .set(BarrierInner {
                core: Arc::new(core::Barrier::new(parties)),
                action,
                timeout,
            })
            .map_err(|_| PyRuntimeError::new_err("Barrier is already initialized"))
    }

    #[pyo3(signature = (timeout = None))]
    fn wait(slf: &Bound<'_, Self>, timeout: Option<f64>) -> PyResult<usize> {
        let py = slf.py();
        let b = Self::get(slf)?;
        let d = deadline(timeout.or(b.timeout))?;
        let core = b.core.clone();
        // Both phases use `Timeout` only for "slice over, nothing changed", so
        // main-thread slicing (Ctrl-C) is safe; the real deadline is ours.
        let entered = {
            let core = core.clone();
            block_on(py, None, move |slice, tok| match core.enter(slice, tok) {
                Ok(a) => Ok(Ok(a)),
                Err(BarrierError::Timeout) => Err(WaitError::Timeout),
                Err(BarrierError::Cancelled) => Err(WaitError::Cancelled),
                Err(BarrierError::Broken) => Ok(Err(())),
            })?
        };
        let index = match entered {
            Some(Ok(Arrival::Waiting(i))) => i,
            Some(Ok(Arrival::Last(i))) => {
                let res = match &b.action {
                    Some(a) => runtime::call0(a.bind(py)).map(drop),
                    None => Ok(()),
                };
                core.finish(res.is_ok());
                return res.map(|()| i);
            }
            Some(Err(())) | None => return Err(broken_barrier(py)),
        };
        let waited = {
            let core = core.clone();
            block_on(py, d, move |slice, tok| {
                match core.await_release(slice, tok) {
                    Ok(()) => Ok(true),
                    Err(BarrierError::Broken) => Ok(false),
                    Err(BarrierError::Timeout) => Err(WaitError::Timeout),
                    Err(BarrierError::Cancelled) => Err(WaitError::Cancelled),
                }
            })
        };
        match waited {
            Ok(Some(true)) => Ok(index),
            Ok(Some(false)) => Err(broken_barrier(py)),
            Ok(None) => {
                core.give_up();
                Err(broken_barrier(py))
            }
            Err(e) => {
                // Terminated or Ctrl-C while waiting: leave, breaking the barrier.
                core.give_up();
                Err(e)
            }
        }
    }

    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::get(slf)?.core.abort();
        Ok(())
    }

    fn reset(slf: &Bound<'_, Self>) -> PyResult<()> {
        Self::get(slf)?.core.reset();
        Ok(())
    }

    #[getter]
    fn parties(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.core.parties())
    }

    #[getter]
    fn n_waiting(slf: &Bound<'_, Self>) -> PyResult<usize> {
        Ok(Self::get(slf)?.core.n_waiting())
    }

    #[getter]
    fn broken(slf: &Bound<'_, Self>) -> PyResult<bool> {
        Ok(Self::get(slf)?.core.broken())
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

    fn __traverse__(&self, visit: pyo3::PyVisit<'_>) -> Result<(), pyo3::PyTraverseError> {
        if let Some(BarrierInner {
            action: Some(a), ..
        }) = self.inner.get()
        {
            visit.call(a)?;
        }
        Ok(())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<SemLock>()?;
    m.add_class::<Condition>()?;
    m.add_class::<Event>()?;
    m.add_class::<Barrier>()?;
    m.add("RECURSIVE_MUTEX", RECURSIVE_MUTEX)?;
    m.add("SEMAPHORE", SEMAPHORE)?;
    Ok(())
}
