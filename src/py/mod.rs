//! The PyO3 layer: `ios_mp._core`.
//!
//! Each submodule wraps one concept of `src/core` in the shape the Python
//! package needs; the Python files under `python/ios_mp/` subclass these types
//! to present the stdlib's class names and signatures.

use pyo3::prelude::*;

mod process;
mod queues;
mod runtime;
mod snapshot;
mod synchronize;

#[pymodule(gil_used = true)]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // Route Rust `log` records to Python's `logging` (logger "ios_mp").
    let _ = pyo3_log::try_init();
    runtime::register(m)?;
    process::register(m)?;
    synchronize::register(m)?;
    queues::register(m)?;
    snapshot::register(m)?;
    m.add("VPID_BASE", crate::core::VPID_BASE)?;
    Ok(())
}
