//! The fast path of the fork-like snapshot (`python/ios_mp/_snapshot.py`).
//!
//! A worker gets deep copies of what it was handed. Most of such a graph is
//! plain containers and atoms; copying those here, instead of in Python,
//! makes a snapshot cheaper than a pickle round trip. Everything else is
//! handed to the Python copier (`fallback`), which applies the sharing rules.
//! Both sides use one memo, a dict from `id(original)` to its copy, so
//! identity inside the copy is kept across them (two args referring to one
//! dict still refer to one new dict).

use std::cell::Cell;

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyTuple};

use super::queues::is_atom;
use super::runtime;

/// Native nesting depth allowed on one thread, counted across re-entries
/// through the Python copier. Deeper parts go to the copier's pure-Python path
/// (`fallback._deep`), whose recursion limit then applies: a RecursionError,
/// never an overflow of the native stack.
const MAX_NATIVE_DEPTH: u32 = 200;

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Counts one level of native nesting while alive.
struct Level;

impl Level {
    fn enter() -> Option<Self> {
        DEPTH.with(|d| {
            let v = d.get();
            (v < MAX_NATIVE_DEPTH).then(|| {
                d.set(v + 1);
                Level
            })
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// How the Python copier classifies a type (`_Copier._kind`), cached per type
/// in the copier's `kinds` dict.
const KIND_PLAIN: u8 = 1;
const KIND_SHARED: u8 = 2;

struct Ctx<'a, 'py> {
    memo: &'a Bound<'py, PyDict>,
    fallback: &'a Bound<'py, PyAny>,
    kinds: &'a Bound<'py, PyDict>,
}

fn kind(ctx: &Ctx<'_, '_>, x: &Bound<'_, PyAny>) -> PyResult<u8> {
    let t = x.get_type();
    if let Some(k) = ctx.kinds.get_item(&t)? {
        return k.extract();
    }
    let k: u8 = ctx.fallback.call_method1("_kind", (&t,))?.extract()?;
    ctx.kinds.set_item(&t, k)?;
    Ok(k)
}

/// A new instance of a plain class with a copy of the original's `__dict__`,
/// made without calling `__init__` (as unpickling and fork do).
fn copy_plain<'py>(ctx: &Ctx<'_, 'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    static OBJECT_NEW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = x.py();
    // `id(x)`, made into a Python int once for the lookup and the insert.
    let key = (x.as_ptr() as usize).into_pyobject(py)?;
    if let Some(y) = ctx.memo.get_item(&key)? {
        return Ok(y);
    }
    let new = OBJECT_NEW.get_or_try_init(py, || -> PyResult<_> {
        Ok(py
            .import("builtins")?
            .getattr("object")?
            .getattr("__new__")?
            .unbind())
    })?;
    let y = new.bind(py).call1((x.get_type(),))?;
    ctx.memo.set_item(&key, &y)?;
    let state = x.getattr(intern!(py, "__dict__"))?;
    y.setattr(intern!(py, "__dict__"), copy(ctx, &state)?)?;
    Ok(y)
}

fn copy<'py>(ctx: &Ctx<'_, 'py>, x: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if is_atom(x) {
        return Ok(x.clone());
    }
    let py = x.py();
    let is_dict = x.is_exact_instance_of::<PyDict>();
    let is_list = !is_dict && x.is_exact_instance_of::<PyList>();
    let is_tuple = !is_dict && !is_list && x.is_exact_instance_of::<PyTuple>();
    let Some(_level) = Level::enter() else {
        return runtime::call1(&ctx.fallback.getattr(intern!(py, "_deep"))?, x);
    };
    if !(is_dict || is_list || is_tuple) {
        return match kind(ctx, x)? {
            KIND_SHARED => Ok(x.clone()),
            KIND_PLAIN => copy_plain(ctx, x),
            // 0: anything else (custom copy/pickle protocols, sets, ...).
            _ => runtime::call1(ctx.fallback, x),
        };
    }
    let memo = ctx.memo;
    // `id(x)`: the same key the Python copier uses (one Python int, reused).
    let key = (x.as_ptr() as usize).into_pyobject(py)?;
    if let Some(y) = memo.get_item(&key)? {
        return Ok(y);
    }
    if is_dict {
        let y = PyDict::new(py);
        memo.set_item(&key, &y)?;
        for (k, v) in x.cast::<PyDict>()?.iter() {
            y.set_item(copy(ctx, &k)?, copy(ctx, &v)?)?;
        }
        return Ok(y.into_any());
    }
    if is_list {
        let y = PyList::empty(py);
        memo.set_item(&key, &y)?;
        for v in x.cast::<PyList>()?.iter() {
            y.append(copy(ctx, &v)?)?;
        }
        return Ok(y.into_any());
    }
    let t = x.cast::<PyTuple>()?;
    let mut items = Vec::with_capacity(t.len());
    let mut same = true;
    for v in t.iter() {
        let c = copy(ctx, &v)?;
        same &= c.is(&v);
        items.push(c);
    }
    // A cycle through a list or dict inside may have copied this tuple already.
    if let Some(y) = memo.get_item(&key)? {
        return Ok(y);
    }
    let y = if same {
        x.clone()
    } else {
        PyTuple::new(py, items)?.into_any()
    };
    memo.set_item(&key, &y)?;
    Ok(y)
}

/// Copy `obj` (see the module docs). `fallback` is the Python copier: it
/// classifies types (`_kind`), copies what is neither an atom, a plain
/// container nor a plain instance (`fallback(x)`), and takes over past the
/// native depth limit (`_deep`). `kinds` caches its classification.
#[pyfunction]
fn _snapshot_fast<'py>(
    obj: &Bound<'py, PyAny>,
    memo: &Bound<'py, PyDict>,
    fallback: &Bound<'py, PyAny>,
    kinds: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyAny>> {
    copy(
        &Ctx {
            memo,
            fallback,
            kinds,
        },
        obj,
    )
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_snapshot_fast, m)?)?;
    Ok(())
}
