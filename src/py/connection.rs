//! The wait under `ios_mp.connection`: `_wait_fd(fd, write, timeout)`.
//!
//! A Connection's descriptor is blocking, as stdlib's, so a read or write that
//! would block is a C call that no `terminate()` can interrupt. The Python
//! layer therefore waits until the descriptor is ready before each read or
//! write (in a worker; and for `poll(timeout)` everywhere), here: `poll(2)`
//! with the GIL released, as every ios_mp wait. The main thread's wait ends for
//! Ctrl-C (`EINTR`, and `block_on`'s slices). A worker's wait also polls the
//! read end of a wake pipe of its thread, which its cancel token writes to when
//! the worker is terminated or signalled: the wait ends at once, with no
//! polling in slices.

use std::io::{ErrorKind, PipeReader, PipeWriter, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::time::Instant;

use pyo3::prelude::*;

use super::runtime::{block_on, check_running, deadline};
use crate::core::{CancelToken, WaitError, Wake};

/// A pipe that wakes this thread's `poll(2)`: the token's waker writes a byte.
/// Both ends are non-blocking. Shared (`Arc`) by the thread and the waker
/// registered with a token, so the descriptors stay open while either may use
/// them, even if the thread exits while a waker call is in flight.
struct WakePipe {
    r: PipeReader,
    w: PipeWriter,
}

impl WakePipe {
    fn new() -> std::io::Result<Self> {
        let (r, w) = std::io::pipe()?;
        set_nonblocking(r.as_raw_fd())?;
        set_nonblocking(w.as_raw_fd())?;
        Ok(Self { r, w })
    }

    /// Empty the pipe (the wakes it holds are about to be acted on).
    fn drain(&self) {
        let mut buf = [0u8; 64];
        while matches!((&self.r).read(&mut buf), Ok(n) if n > 0) {}
    }
}

impl Wake for WakePipe {
    fn wake(&self) {
        // A full pipe already holds a wake: nothing is lost by failing here.
        let _ = (&self.w).write(&[1]);
    }
}

fn set_nonblocking(fd: RawFd) -> std::io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take an int.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

thread_local! {
    static WAKE: std::cell::OnceCell<Option<Arc<WakePipe>>> = const { std::cell::OnceCell::new() };
}

/// This thread's wake pipe (made at its first wait), or None if no pipe could
/// be made (out of descriptors): the wait then polls in short slices.
fn wake_pipe() -> Option<Arc<WakePipe>> {
    WAKE.with(|w| w.get_or_init(|| WakePipe::new().ok().map(Arc::new)).clone())
}

/// How long a worker's wait polls at a time when it has no wake pipe.
const FALLBACK_SLICE_MS: i32 = 20;

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
    wake: Option<&Arc<WakePipe>>,
) -> Result<std::io::Result<()>, WaitError> {
    let events = if write { libc::POLLOUT } else { libc::POLLIN };
    let mut fds = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.map_or(-1, |w| w.r.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // Registered before the flags are checked: a cancel or interrupt after the
    // check writes to the pipe, so it is never missed.
    let _reg = match (tok, wake) {
        (Some(t), Some(w)) => Some(t.register(w.clone() as Arc<dyn Wake>)),
        _ => None,
    };
    let cap = (tok.is_some() && wake.is_none()).then_some(FALLBACK_SLICE_MS);
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
            Ok(_) if fds[0].revents != 0 => return Ok(Ok(())),
            Ok(_) => {
                if fds[1].revents != 0 {
                    wake.expect("polled only with a pipe").drain();
                    continue; // the flags above say why
                }
            }
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
    let wake = super::runtime::current_token().and_then(|_| wake_pipe());
    let r = block_on(py, d, |slice, tok| {
        wait_ready(fd, write, slice, tok, wake.as_ref())
    })?;
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
