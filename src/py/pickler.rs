//! The pickler of a queue's copies: `multiprocessing.reduction.ForkingPickler`'s
//! semantics (the reducers registered with `ForkingPickler.register` take
//! precedence over `copyreg.dispatch_table`, as in stdlib, whose queues pickle
//! with `ForkingPickler.dumps`) at about the cost of `pickle.dumps`.
//!
//! `ForkingPickler.dumps` makes a `BytesIO`, a `Pickler` and a copy of the
//! dispatch table for every object. Here each thread keeps one C
//! `pickle.Pickler` writing into a native [`Sink`], with a merged dispatch table
//! (a copy of `copyreg.dispatch_table` updated with the registered reducers)
//! that is rebuilt only when the registry may have changed: another
//! `_extra_reducers` dict, another size of it or of `copyreg.dispatch_table`,
//! or a `register()` call (which bumps [`VERSION`] through `_reducers_changed`).
//! The memo is cleared after every dump, so the pickler holds no reference to
//! what it pickled. A re-entrant dump on the same thread (a reducer that puts
//! into a queue) gets a pickler of its own.
//!
//! Plain data skips pickle altogether ([`copy_plain`]): a tree of exact
//! `dict`/`list`/`tuple` whose leaves are atoms is copied structurally, which
//! gives what the pickle round trip would (the C pickler saves these types
//! itself, never through a dispatch table or reducer) at a fraction of its cost.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

use super::queues::is_atom;
use super::runtime;

/// Bumped by `reduction.register` (through `_reducers_changed`).
static VERSION: AtomicU64 = AtomicU64::new(0);

/// What the merged dispatch table was built from.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sig {
    extra: usize,
    extra_len: usize,
    copyreg_len: usize,
    version: u64,
}

/// The file a cached pickler writes to: the parts of one pickle.
#[pyclass(module = "ios_mp.queues", name = "_Sink")]
struct Sink {
    parts: Vec<Py<PyAny>>,
}

#[pymethods]
impl Sink {
    fn write(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let part = if data.is_exact_instance_of::<PyBytes>() {
            data.clone().unbind()
        } else {
            // pickle hands large payloads over directly, a bytearray's or a
            // PickleBuffer's as a memoryview of its memory: copy it now.
            // SAFETY: PyBytes_FromObject returns a new reference or NULL with an
            // exception set.
            unsafe {
                Bound::from_owned_ptr_or_err(data.py(), ffi::PyBytes_FromObject(data.as_ptr()))?
            }
            .unbind()
        };
        self.parts.push(part);
        Ok(())
    }
}

struct Cached {
    dump: Py<PyAny>,
    clear_memo: Py<PyAny>,
    sink: Py<Sink>,
    sig: Sig,
}

thread_local! {
    static CACHED: RefCell<Option<Cached>> = const { RefCell::new(None) };
}

impl Cached {
    fn new(
        py: Python<'_>,
        sig: Sig,
        extra: &Bound<'_, PyDict>,
        copyreg: &Bound<'_, PyDict>,
    ) -> PyResult<Self> {
        static PICKLER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let table = copyreg.copy()?;
        table.update(extra.as_mapping())?;
        let sink = Py::new(py, Sink { parts: Vec::new() })?;
        let pickler = PICKLER
            .import(py, "pickle", "Pickler")?
            .call1((sink.bind(py), -1))?;
        pickler.setattr(intern!(py, "dispatch_table"), table)?;
        Ok(Self {
            dump: pickler.getattr(intern!(py, "dump"))?.unbind(),
            clear_memo: pickler.getattr(intern!(py, "clear_memo"))?.unbind(),
            sink,
            sig,
        })
    }

    fn dump<'py>(&self, py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let done = runtime::call1(self.dump.bind(py), obj);
        let cleared = self.clear_memo.bind(py).call0();
        let parts = std::mem::take(&mut self.sink.borrow_mut(py).parts);
        done?;
        cleared?;
        match parts.len() {
            1 => Ok(parts.into_iter().next().expect("one part").into_bound(py)),
            0 => Err(PyValueError::new_err("pickle wrote nothing")),
            _ => {
                PyBytes::new(py, b"").call_method1(intern!(py, "join"), (PyList::new(py, parts)?,))
            }
        }
    }
}

/// `obj` pickled (highest protocol) as `ForkingPickler.dumps` would: a `bytes`.
pub(crate) fn dumps<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static FORKING_PICKLER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static COPYREG: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let fp = FORKING_PICKLER.import(py, "ios_mp.reduction", "ForkingPickler")?;
    let extra = fp.getattr(intern!(py, "_extra_reducers"))?;
    let Ok(extra) = extra.cast::<PyDict>() else {
        // Not a dict (replaced by hand): stdlib's way.
        return fp.call_method1(intern!(py, "dumps"), (obj, -1));
    };
    let copyreg = COPYREG
        .import(py, "copyreg", "dispatch_table")?
        .cast::<PyDict>()?;
    let sig = Sig {
        extra: extra.as_ptr() as usize,
        extra_len: extra.len(),
        copyreg_len: copyreg.len(),
        version: VERSION.load(Ordering::Acquire),
    };
    // Taken out while in use: a re-entrant dump finds none and makes its own.
    let cached = CACHED.try_with(|c| c.borrow_mut().take()).ok().flatten();
    let cached = match cached {
        Some(c) if c.sig == sig => c,
        _ => Cached::new(py, sig, extra, copyreg)?,
    };
    let data = cached.dump(py, obj);
    if data.is_ok() {
        // After an error the pickler is dropped: a fresh one is made next time.
        let _ = CACHED.try_with(|c| {
            let mut slot = c.borrow_mut();
            if slot.is_none() {
                *slot = Some(cached);
            }
        });
    }
    data
}

/// Nesting deeper than this is left to pickle (and its recursion limit).
const MAX_PLAIN_DEPTH: u32 = 64;

/// Why a structural copy stopped.
enum Stop {
    /// It met what only pickle gets right.
    NotPlain,
    Err(PyErr),
}

impl From<PyErr> for Stop {
    fn from(e: PyErr) -> Self {
        Self::Err(e)
    }
}

type Plain<T> = Result<T, Stop>;

/// A copy of `obj` equal to `pickle.loads(pickle.dumps(obj))` when `obj` is
/// plain data: exact `dict`, `list` and `tuple`, nested at most
/// [`MAX_PLAIN_DEPTH`] deep, whose leaves are atoms (`is_atom`; dict keys are
/// atoms or tuples of them). Atoms, and tuples holding only atoms, are shared:
/// immutable, they cannot be told from a copy. `None` for anything else,
/// including a container met twice (shared, or a cycle): pickle's memo keeps
/// that structure, so such graphs go to pickle.
///
/// Calls no Python code: only exact builtin types are touched, and their keys
/// hash and compare in C. Each original container is read once, by one C call
/// (a shallow copy into a new object only the walk knows, then fixed up in
/// place), so even a finalizer that an allocation's garbage collection runs,
/// and that changes the original, cannot break the walk.
pub(crate) fn copy_plain<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let mut seen = HashSet::new();
    match plain(obj, 0, &mut seen) {
        Ok(copy) => Ok(Some(copy)),
        Err(Stop::NotPlain) => Ok(None),
        Err(Stop::Err(e)) => Err(e),
    }
}

fn enter(x: &Bound<'_, PyAny>, depth: u32, seen: &mut HashSet<usize>) -> Plain<()> {
    if depth >= MAX_PLAIN_DEPTH || !seen.insert(x.as_ptr() as usize) {
        return Err(Stop::NotPlain);
    }
    Ok(())
}

/// An atom or a tuple of such keys: hashable in C, shared as it is.
fn frozen_key(k: &Bound<'_, PyAny>, depth: u32) -> bool {
    is_atom(k)
        || (depth < MAX_PLAIN_DEPTH
            && k.cast_exact::<PyTuple>()
                .is_ok_and(|t| t.iter().all(|v| frozen_key(&v, depth + 1))))
}

fn plain<'py>(
    x: &Bound<'py, PyAny>,
    depth: u32,
    seen: &mut HashSet<usize>,
) -> Plain<Bound<'py, PyAny>> {
    if is_atom(x) {
        return Ok(x.clone());
    }
    if let Ok(d) = x.cast_exact::<PyDict>() {
        enter(x, depth, seen)?;
        let y = d.copy()?;
        for (k, v) in y.iter() {
            if !frozen_key(&k, depth + 1) {
                return Err(Stop::NotPlain);
            }
            if !is_atom(&v) {
                // Replacing the value of a present key: the size stays, which
                // is what iterating a dict allows.
                y.set_item(k, plain(&v, depth + 1, seen)?)?;
            }
        }
        return Ok(y.into_any());
    }
    if let Ok(l) = x.cast_exact::<PyList>() {
        enter(x, depth, seen)?;
        let y = l.get_slice(0, l.len());
        for (i, v) in y.iter().enumerate() {
            if !is_atom(&v) {
                y.set_item(i, plain(&v, depth + 1, seen)?)?;
            }
        }
        return Ok(y.into_any());
    }
    if let Ok(t) = x.cast_exact::<PyTuple>() {
        if t.iter().all(|v| is_atom(&v)) {
            return Ok(x.clone());
        }
        enter(x, depth, seen)?;
        let items = t
            .iter()
            .map(|v| plain(&v, depth + 1, seen))
            .collect::<Plain<Vec<_>>>()?;
        return Ok(PyTuple::new(x.py(), items)?.into_any());
    }
    Err(Stop::NotPlain)
}

/// Called by `reduction.register`: the merged dispatch tables are stale.
#[pyfunction]
fn _reducers_changed() {
    VERSION.fetch_add(1, Ordering::AcqRel);
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Sink>()?;
    m.add_function(wrap_pyfunction!(_reducers_changed, m)?)?;
    Ok(())
}
