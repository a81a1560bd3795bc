//! The virtual process table: ids, exit status, join, sentinels and
//! cancellation for the threads that stand in for processes.
//!
//! Virtual pids start at [`VPID_BASE`] (2^30). Linux caps real pids at 2^22
//! (`PID_MAX_LIMIT`) and Darwin at 99 999, so a virtual pid is never the pid of
//! a real process, and `os.kill(vpid, …)` reaching the OS would fail with ESRCH
//! instead of hitting a stranger.

use std::collections::HashMap;
use std::io::{PipeReader, PipeWriter};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Weak};
use std::time::Instant;

use parking_lot::Mutex;

use super::cancel::CancelToken;
use super::monitor::{Monitor, WaitError};

pub const VPID_BASE: u32 = 1 << 30;

/// Cancellation reason used when the process asked to exit (`os._exit(n)`),
/// as opposed to being sent a signal (reasons 1..=64 are signal numbers).
pub const EXIT_REQUESTED: i32 = -1;

/// [`ProcessHandle::launch`] states.
const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const ABANDONED: u8 = 2;

#[derive(Default)]
struct ExitState {
    exitcode: Option<i32>,
    /// The code `os._exit(n)` asked for, if it did.
    forced: Option<i32>,
    /// Write end of the sentinel pipe, closed (dropped) at exit so the read end
    /// becomes readable (EOF) for `select`/`connection.wait`.
    sentinel_w: Option<PipeWriter>,
    sentinel_r: Option<PipeReader>,
}

/// One virtual process.
pub struct ProcessHandle {
    vpid: u32,
    /// `run()` has returned: asynchronous exceptions must no longer be sent to
    /// the worker's thread (the Python layer reads and sets it with the GIL).
    exiting: AtomicBool,
    /// Cancelled to end the process; the threads the worker started wait with it.
    token: Arc<CancelToken>,
    /// The worker's own thread waits with this child of `token`: signals are
    /// delivered to that thread only (as to a process's main thread).
    main_token: Arc<CancelToken>,
    /// Signals whose disposition in the worker is not the default, one bit each.
    caught: AtomicU64,
    /// An asynchronous "run your signal handlers" is queued for the worker's
    /// thread and has not run yet.
    armed: AtomicBool,
    /// Idents of the threads the worker started that are running their
    /// `run()`: ending the process interrupts them as well as the worker's own
    /// thread. The Python layer adds, removes and reads them with the GIL held,
    /// so "in the list" and "may be sent an asynchronous exception" agree.
    threads: Mutex<Vec<u64>>,
    /// STARTING until the worker's thread begins to run it (RUNNING) or a
    /// failed `start()` gives it up (ABANDONED); whichever comes first wins, so
    /// a start that failed after the thread was created either never runs the
    /// worker or knows that it runs.
    launch: AtomicU8,
    /// `threading.get_ident()` of the worker's own thread once RUNNING, else 0.
    main_ident: AtomicU64,
    exit: Arc<Monitor<ExitState>>,
}

impl ProcessHandle {
    pub fn vpid(&self) -> u32 {
        self.vpid
    }

    pub fn token(&self) -> &Arc<CancelToken> {
        &self.token
    }

    pub fn main_token(&self) -> &Arc<CancelToken> {
        &self.main_token
    }

    /// Record whether signal `sig` has a non-default disposition in the worker.
    pub fn set_caught(&self, sig: u32, caught: bool) {
        if sig < 64 {
            if caught {
                self.caught.fetch_or(1 << sig, Ordering::SeqCst);
            } else {
                self.caught.fetch_and(!(1 << sig), Ordering::SeqCst);
            }
        }
    }

    pub fn is_caught(&self, sig: u32) -> bool {
        sig < 64 && self.caught.load(Ordering::SeqCst) & (1 << sig) != 0
    }

    /// Set the "handlers queued" flag; returns its previous value.
    pub fn arm(&self, armed: bool) -> bool {
        self.armed.swap(armed, Ordering::SeqCst)
    }

    /// The worker's thread `ident` is about to run it; false if `start()` has
    /// given the process up (the thread must then return at once).
    pub fn begin_run(&self, ident: u64) -> bool {
        let won = self
            .launch
            .compare_exchange(STARTING, RUNNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if won {
            self.main_ident.store(ident, Ordering::SeqCst);
        }
        won
    }

    /// `start()` failed: give the process up unless its thread already runs
    /// it. True if given up (it will never run).
    pub fn abandon(&self) -> bool {
        self.launch
            .compare_exchange(STARTING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// The ident of the worker's own thread, once it runs.
    pub fn main_ident(&self) -> Option<u64> {
        match self.main_ident.load(Ordering::SeqCst) {
            0 => None,
            ident => Some(ident),
        }
    }

    pub fn mark_exiting(&self) {
        self.exiting.store(true, Ordering::SeqCst);
    }

    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::SeqCst)
    }

    /// A thread the worker started enters its `run()`.
    pub fn enter_thread(&self, ident: u64) {
        self.threads.lock().push(ident);
    }

    /// That thread's `run()` has returned (or raised).
    pub fn leave_thread(&self, ident: u64) {
        let mut threads = self.threads.lock();
        if let Some(i) = threads.iter().position(|&t| t == ident) {
            threads.swap_remove(i);
        }
    }

    /// The threads the worker started that are in their `run()` now.
    pub fn running_threads(&self) -> Vec<u64> {
        self.threads.lock().clone()
    }

    pub fn exitcode(&self) -> Option<i32> {
        self.exit.lock().exitcode
    }

    /// The process asked to exit with `code` (`os._exit`): remember the code
    /// (first request wins) and cancel the token so every wait of the process
    /// ends. Returns false if it had already asked, or had exited.
    pub fn request_exit(&self, code: i32) -> bool {
        {
            let mut s = self.exit.lock();
            if s.forced.is_some() || s.exitcode.is_some() {
                return false;
            }
            s.forced = Some(code);
        }
        self.token.cancel(EXIT_REQUESTED);
        true
    }

    /// The exit code the process will have, from how it was ended: a requested
    /// exit's code, `-signal` for a signal, otherwise `normal`.
    pub fn final_code(&self, normal: i32) -> i32 {
        if let Some(code) = self.exit.lock().forced {
            return code;
        }
        match self.token.reason() {
            Some(sig) if sig > 0 => -sig,
            _ => normal,
        }
    }

    /// Record the exit status (first call wins), wake joiners, signal the sentinel.
    pub fn set_exited(&self, code: i32) -> bool {
        let mut s = self.exit.lock();
        if s.exitcode.is_some() {
            return false;
        }
        s.exitcode = Some(code);
        s.sentinel_w = None;
        drop(s);
        self.exit.notify_all();
        true
    }

    /// Wait for exit; `Ok(code)` or a timeout/cancel.
    pub fn join(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<i32, WaitError> {
        self.exit.wait_for(deadline, cancel, |s| s.exitcode)
    }

    /// The sentinel's raw fd, created on first use (most programs never ask).
    #[cfg(unix)]
    pub fn sentinel_fd(&self) -> std::io::Result<i32> {
        use std::os::fd::AsRawFd;
        let mut s = self.exit.lock();
        if let Some(r) = &s.sentinel_r {
            return Ok(r.as_raw_fd());
        }
        let (r, w) = std::io::pipe()?;
        let fd = r.as_raw_fd();
        s.sentinel_r = Some(r);
        if s.exitcode.is_none() {
            s.sentinel_w = Some(w);
        }
        Ok(fd)
    }

    /// Close the sentinel's read end (`Process.close()`).
    pub fn close_sentinel(&self) {
        let mut s = self.exit.lock();
        s.sentinel_r = None;
    }
}

/// All live virtual processes, by vpid.
#[derive(Default)]
pub struct ProcessTable {
    next: AtomicU32,
    live: Mutex<HashMap<u32, Weak<ProcessHandle>>>,
}

impl ProcessTable {
    /// Allocate a new handle and register it as live.
    pub fn spawn(&self) -> Arc<ProcessHandle> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // 2^30 + n stays below i32::MAX for 2^30 processes; wrap back to the base.
        let vpid = VPID_BASE + (n % VPID_BASE);
        let token = CancelToken::new();
        let h = Arc::new(ProcessHandle {
            vpid,
            exiting: AtomicBool::new(false),
            main_token: token.child(),
            token,
            caught: AtomicU64::new(0),
            armed: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
            launch: AtomicU8::new(STARTING),
            main_ident: AtomicU64::new(0),
            exit: Monitor::new(ExitState::default()),
        });
        self.live.lock().insert(vpid, Arc::downgrade(&h));
        h
    }

    /// Forget a process that has exited.
    pub fn reap(&self, vpid: u32) {
        self.live.lock().remove(&vpid);
    }

    pub fn get(&self, vpid: u32) -> Option<Arc<ProcessHandle>> {
        self.live.lock().get(&vpid).and_then(Weak::upgrade)
    }

    pub fn is_virtual(pid: i64) -> bool {
        pid >= i64::from(VPID_BASE) && pid <= i64::from(i32::MAX)
    }

    pub fn live_count(&self) -> usize {
        self.live.lock().len()
    }
}

/// Unfinished-task counter of a `JoinableQueue`.
pub struct JoinCounter {
    m: Arc<Monitor<usize>>,
}

impl Default for JoinCounter {
    fn default() -> Self {
        Self { m: Monitor::new(0) }
    }
}

impl JoinCounter {
    pub fn incr(&self) {
        *self.m.lock() += 1;
    }

    /// Undo an `incr` whose put did not happen.
    pub fn undo(&self) {
        let mut n = self.m.lock();
        *n = n.saturating_sub(1);
        let zero = *n == 0;
        drop(n);
        if zero {
            self.m.notify_all();
        }
    }

    /// `task_done()`: false if called more often than items were put.
    pub fn done(&self) -> bool {
        let mut n = self.m.lock();
        if *n == 0 {
            return false;
        }
        *n -= 1;
        let zero = *n == 0;
        drop(n);
        if zero {
            self.m.notify_all();
        }
        true
    }

    pub fn unfinished(&self) -> usize {
        *self.m.lock()
    }

    pub fn join(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<(), WaitError> {
        self.m
            .wait_for(deadline, cancel, |n| (*n == 0).then_some(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn vpids_are_virtual_and_join_waits_for_exit() {
        let t = ProcessTable::default();
        let h = t.spawn();
        assert!(ProcessTable::is_virtual(i64::from(h.vpid())));
        assert!(!ProcessTable::is_virtual(4_194_304));
        assert!(t.get(h.vpid()).is_some());
        let d = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(h.join(d, None), Err(WaitError::Timeout));
        let h2 = h.clone();
        let j = thread::spawn(move || h2.join(None, None));
        thread::sleep(Duration::from_millis(10));
        assert!(h.request_exit(3));
        assert!(!h.request_exit(4));
        assert!(h.token().is_cancelled());
        assert_eq!(h.final_code(0), 3);
        assert!(h.set_exited(3));
        assert!(!h.set_exited(4));
        assert_eq!(j.join().unwrap(), Ok(3));
        t.reap(h.vpid());
        assert!(t.get(h.vpid()).is_none());
        assert_eq!(t.live_count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn sentinel_becomes_readable_at_exit() {
        use std::io::Read;
        use std::os::fd::FromRawFd;
        let t = ProcessTable::default();
        let h = t.spawn();
        let fd = h.sentinel_fd().unwrap();
        assert_eq!(h.sentinel_fd().unwrap(), fd);
        h.set_exited(0);
        // EOF once the write end is gone. Borrow the fd without taking ownership.
        let mut f = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let mut buf = [0u8; 1];
        assert_eq!(f.read(&mut buf).unwrap(), 0);
        h.close_sentinel();
    }

    #[test]
    fn launch_is_won_by_the_thread_or_by_the_failed_start_never_both() {
        let t = ProcessTable::default();
        let ran = t.spawn();
        assert_eq!(ran.main_ident(), None);
        assert!(ran.begin_run(77));
        assert!(
            !ran.abandon(),
            "its thread runs it: start() cannot give it up"
        );
        assert_eq!(ran.main_ident(), Some(77));
        let given_up = t.spawn();
        assert!(given_up.abandon());
        assert!(
            !given_up.begin_run(78),
            "given up: its thread must not run it"
        );
        assert_eq!(given_up.main_ident(), None);
    }

    #[test]
    fn running_threads_are_listed_until_they_leave() {
        let h = ProcessTable::default().spawn();
        assert!(h.running_threads().is_empty());
        h.enter_thread(7);
        h.enter_thread(9);
        h.enter_thread(11);
        h.leave_thread(9);
        h.leave_thread(42); // never entered: ignored
        let mut running = h.running_threads();
        running.sort_unstable();
        assert_eq!(running, vec![7, 11]);
        h.leave_thread(7);
        h.leave_thread(11);
        assert!(h.running_threads().is_empty());
    }

    #[test]
    fn join_counter() {
        let c = JoinCounter::default();
        assert!(!c.done());
        c.incr();
        c.incr();
        assert!(c.done());
        let d = Some(Instant::now() + Duration::from_millis(5));
        assert_eq!(c.join(d, None), Err(WaitError::Timeout));
        assert!(c.done());
        assert_eq!(c.join(None, None), Ok(()));
    }
}
