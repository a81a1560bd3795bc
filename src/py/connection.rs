//! The wait under `ios_mp.connection`: `_wait_fd(fd, write, timeout)`.
//!
//! A Connection's descriptor is blocking, as stdlib's, so a read or write that
//! would block is a C call that no `terminate()` can interrupt. The Python
//! layer therefore waits until the descriptor is ready before each read or
//! write (in a worker; and for `poll(timeout)` everywhere), here: `poll(2)`
//! with the GIL released, as every ios_mp wait. The main thread's wait ends for
//! Ctrl-C (`EINTR`, and `block_on`'s slices). A worker's wait polls in slices
//! of [`TOKEN_SLICE_MS`] and looks at its cancel token between them, so it
//! ends within a slice when the worker is terminated or signalled. (A wake
//! descriptor would end it at once, but a worker's descriptors share the app's
//! table: one made lazily can collide with code that `dup2`s onto numbers it
//! found free, as CPython's `test_large_fd_transfer` does.)

use std::io::ErrorKind;
use std::os::fd::RawFd;
use std::time::Instant;

use pyo3::prelude::*;

use super::runtime::{block_on, check_running, deadline};
use crate::core::{CancelToken, WaitError};

/// How long a worker's wait polls at a time between looks at its token.
const TOKEN_SLICE_MS: i32 = 20;
/// `poll(2)` on `fds` for `until` (None: no limit), at most `cap_ms`.
/// Returns the number of ready descriptors (0 on timeout).
fn poll(
    fds: &mut [libc::pollfd],
    until: Option<Instant>,
    cap_ms: Option<i32>,
) -> std::io::Result<i32> {
    let mut ms = until.map_or(-1, |u| {
        let left = u.saturating_duration_since(Instant::now());
        // Round up: poll(2) would otherwise return just before the deadline.
        i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX)
    });
    if let Some(cap) = cap_ms {
        ms = if ms < 0 { cap } else { ms.min(cap) };
    }
    // SAFETY: `fds` is a valid, exclusively borrowed slice of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if n < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(n)
    }
}

/// Wait until `fd` is ready (for writing if `write`): what one wait of
/// `_wait_fd` does with the GIL released. `Ok(Ok(()))` ready (also for an
/// error, hang-up or bad descriptor: the caller's read or write then raises
/// it), `Ok(Err(e))` poll itself failed, `Err` timed out, cancelled or
/// interrupted (`block_on` decides what follows).
fn wait_ready(
    fd: RawFd,
    write: bool,
    until: Option<Instant>,
    tok: Option<&CancelToken>,
) -> Result<std::io::Result<()>, WaitError> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut fds = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    let cap = tok.map(|_| TOKEN_SLICE_MS);
    loop {
        if let Some(t) = tok {
            if t.is_cancelled() {
                return Err(WaitError::Cancelled);
            }
            if t.take_interrupt() {
                return Err(WaitError::Timeout);
            }
        }
        match poll(&mut fds, until, cap) {
            Ok(n) if n > 0 => return Ok(Ok(())),
            Ok(_) => {}
            // A signal: the main thread's Ctrl-C (block_on runs the handlers).
            Err(e) if e.kind() == ErrorKind::Interrupted => return Err(WaitError::Timeout),
            Err(e) => return Ok(Err(e)),
        }
        if until.is_some_and(|u| Instant::now() >= u) {
            return Err(WaitError::Timeout);
        }
    }
}

/// Wait until descriptor `fd` is readable (writable if `write`), for at most
/// `timeout` seconds (None: no limit); False on timeout. Raises
/// `ProcessTerminated` in a worker that is (or gets) terminated, and what the
/// signal handlers raise (Ctrl-C in the main thread).
#[pyfunction]
#[pyo3(signature = (fd, write, timeout = None))]
fn _wait_fd(py: Python<'_>, fd: RawFd, write: bool, timeout: Option<f64>) -> PyResult<bool> {
    check_running(py)?;
    // Ready already (the common case): one poll(2) with the GIL held.
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut now = [libc::pollfd {
        fd,
        events,
        revents: 0,
    }];
    if matches!(poll(&mut now, Some(Instant::now()), None), Ok(n) if n > 0) {
        return Ok(true);
    }
    let d = deadline(timeout)?;
    if d.is_some_and(|d| d <= Instant::now()) {
        return Ok(false);
    }
    let r = block_on(py, d, |slice, tok| wait_ready(fd, write, slice, tok))?;
    match r {
        Some(Ok(())) => Ok(true),
        Some(Err(e)) => Err(e.into()),
        None => Ok(false),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_wait_fd, m)?)?;
    Ok(())
}
