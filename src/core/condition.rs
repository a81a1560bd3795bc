//! Condition variable over a [`SemLock`], with stdlib `Condition` semantics:
//! `wait` requires the lock to be held by the caller, releases it completely
//! (whatever its recursion depth), waits for a notify and re-acquires it.
//!
//! Each waiter takes a ticket before it releases the lock, so a `notify` issued
//! between the release and the sleep is not lost, and `notify(n)` wakes exactly
//! the `n` oldest waiters (tickets are granted in FIFO order).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use super::cancel::CancelToken;
use super::monitor::{Monitor, WaitError};
use super::semlock::{Owner, SemError, SemLock};

#[derive(Default)]
struct Tickets {
    next: u64,
    waiting: VecDeque<u64>,
    granted: HashSet<u64>,
}

pub struct Condition {
    lock: Arc<SemLock>,
    m: Arc<Monitor<Tickets>>,
}

/// Why a wait ended without a notify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CondError {
    NotOwner,
    Wait(WaitError),
}

impl Condition {
    pub fn new(lock: Arc<SemLock>) -> Self {
        Self {
            lock,
            m: Monitor::new(Tickets::default()),
        }
    }

    pub fn lock(&self) -> &Arc<SemLock> {
        &self.lock
    }

    /// Wait for a notify. Returns `Ok(true)` if notified, `Ok(false)` on timeout.
    /// The lock is held again on return, except when cancelled: then the caller's
    /// process is being terminated and the lock is re-acquired only if that was
    /// possible without blocking.
    pub fn wait(
        &self,
        me: Owner,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<bool, CondError> {
        let ticket = {
            let mut t = self.m.lock();
            let id = t.next;
            t.next += 1;
            t.waiting.push_back(id);
            id
        };
        let depth = match self.lock.release_all(me) {
            Ok(d) => d,
            Err(SemError::NotOwner | SemError::TooManyReleases) => {
                self.m.lock().waiting.retain(|&w| w != ticket);
                return Err(CondError::NotOwner);
            }
        };
        let outcome = self.m.wait_for(deadline, cancel, |t| {
            t.granted.remove(&ticket).then_some(())
        });
        let notified = match outcome {
            Ok(()) => true,
            Err(e) => {
                let mut t = self.m.lock();
                // A grant that raced with the timeout still counts as a notify.
                let granted = t.granted.remove(&ticket);
                t.waiting.retain(|&w| w != ticket);
                drop(t);
                if !granted && e == WaitError::Cancelled {
                    let _ = self
                        .lock
                        .acquire_restore(me, depth, Some(Instant::now()), None);
                    return Err(CondError::Wait(WaitError::Cancelled));
                }
                granted
            }
        };
        match self.lock.acquire_restore(me, depth, None, cancel) {
            Ok(()) => Ok(notified),
            Err(e) => Err(CondError::Wait(e)),
        }
    }

    /// Wake up to `n` waiters; returns how many were woken.
    pub fn notify(&self, n: usize) -> usize {
        let mut t = self.m.lock();
        let mut woken = 0;
        while woken < n {
            match t.waiting.pop_front() {
                Some(id) => {
                    t.granted.insert(id);
                    woken += 1;
                }
                None => break,
            }
        }
        drop(t);
        if woken > 0 {
            self.m.notify_all();
        }
        woken
    }

    /// Threads waiting and not notified yet.
    pub fn waiters(&self) -> usize {
        self.m.lock().waiting.len()
    }

    /// Notifications granted whose waiter has not woken up yet.
    pub fn pending(&self) -> usize {
        self.m.lock().granted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::SemKind;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn notify_wakes_waiter_and_lock_is_reacquired() {
        let lock = Arc::new(SemLock::new(SemKind::Recursive, 1, 1));
        let c = Arc::new(Condition::new(lock.clone()));
        let c2 = c.clone();
        let h = thread::spawn(move || {
            let me = (0, 2);
            c2.lock().acquire(me, None, None).unwrap();
            c2.lock().acquire(me, None, None).unwrap();
            let r = c2.wait(me, None, None);
            let depth = c2.lock().count_held_by(me);
            (r, depth)
        });
        while c.waiters() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        let me = (0, 1);
        lock.acquire(me, None, None).unwrap();
        assert_eq!(c.notify(5), 1);
        assert_eq!(c.waiters(), 0);
        lock.release(me).unwrap();
        assert_eq!(h.join().unwrap(), (Ok(true), 2));
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn wait_without_lock_and_timeout() {
        let lock = Arc::new(SemLock::new(SemKind::Semaphore, 1, 1));
        let c = Condition::new(lock.clone());
        assert_eq!(c.wait((0, 1), None, None), Err(CondError::NotOwner));
        assert_eq!(c.waiters(), 0);
        lock.acquire((0, 1), None, None).unwrap();
        let t0 = Instant::now();
        let r = c.wait((0, 1), Some(t0 + Duration::from_millis(30)), None);
        assert_eq!(r, Ok(false));
        assert_eq!(lock.count_held_by((0, 1)), 1);
        assert_eq!(c.waiters(), 0);
    }

    #[test]
    fn cancel_ends_a_wait() {
        let lock = Arc::new(SemLock::new(SemKind::Recursive, 1, 1));
        let c = Arc::new(Condition::new(lock));
        let tok = CancelToken::new();
        let (c2, t2) = (c.clone(), tok.clone());
        let h = thread::spawn(move || {
            c2.lock().acquire((1, 1), None, None).unwrap();
            c2.wait((1, 1), None, Some(&t2))
        });
        while c.waiters() == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        tok.cancel(15);
        assert_eq!(
            h.join().unwrap(),
            Err(CondError::Wait(WaitError::Cancelled))
        );
    }
}
