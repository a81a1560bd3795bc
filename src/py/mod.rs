//! The PyO3 layer: `ios_mp._core`.
//!
//! Each submodule wraps one concept of `src/core` in the shape the Python
//! package needs; the Python files under `python/ios_mp/` subclass these types
//! to present the stdlib's class names and signatures.

use pyo3::prelude::*;

mod connection;
mod pickler;
mod process;
mod queues;
mod runtime;
mod snapshot;
mod synchronize;

/// pyo3-log caches each Python logger's level at its first record; this handle
/// lets `util` clear that cache when the `multiprocessing` logger's level changes.
static LOG_RESET: std::sync::OnceLock<pyo3_log::ResetHandle> = std::sync::OnceLock::new();

/// Forget pyo3-log's cached logger levels (the next record looks them up again).
#[pyfunction]
fn _reset_log_cache() {
    if let Some(handle) = LOG_RESET.get() {
        handle.reset();
    }
}

#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Route Rust `log` records to Python's `logging` (logger "ios_mp").
    if let Ok(handle) = pyo3_log::try_init() {
        let _ = LOG_RESET.set(handle);
    }
    m.add_function(wrap_pyfunction!(_reset_log_cache, m)?)?;
    runtime::register(m)?;
    process::register(m)?;
    synchronize::register(m)?;
    queues::register(m)?;
    pickler::register(m)?;
    snapshot::register(m)?;
    connection::register(m)?;
    m.add("VPID_BASE", crate::core::VPID_BASE)?;
    Ok(())
}
