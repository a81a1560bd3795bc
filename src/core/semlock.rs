//! Counting semaphores and (recursive) locks, the Rust side of
//! `multiprocessing.synchronize.SemLock` and its subclasses.
//!
//! Ownership is tracked with an opaque [`Owner`] (the Python layer passes the
//! virtual process id and the thread id) so that `RLock` can check the owner on
//! release and `Lock.__repr__` can say who holds it, as stdlib does.

use std::sync::Arc;
use std::time::Instant;

use super::cancel::CancelToken;
use super::monitor::{Monitor, WaitError};

/// (process key, thread id) of whoever acquired the lock.
pub type Owner = (u64, u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemKind {
    /// Lock, Semaphore, BoundedSemaphore: anyone may release.
    Semaphore,
    /// RLock: re-entrant for its owner, only the owner may release.
    Recursive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemError {
    /// Released more often than `maxvalue` allows.
    TooManyReleases,
    /// A recursive lock released by a thread that does not own it.
    NotOwner,
}

#[derive(Debug)]
struct State {
    /// Semaphore: available count. Recursive: 1 when free, 0 when held.
    value: usize,
    /// Recursion depth (Recursive) or 1 while held by the last acquirer.
    count: usize,
    owner: Option<Owner>,
}

pub struct SemLock {
    kind: SemKind,
    maxvalue: usize,
    m: Arc<Monitor<State>>,
}

impl SemLock {
    /// `maxvalue` bounds releases (1 for Lock/RLock, `usize::MAX` for an unbounded
    /// Semaphore). Panics if `value > maxvalue`; the Python layer validates first.
    pub fn new(kind: SemKind, value: usize, maxvalue: usize) -> Self {
        assert!(value <= maxvalue, "initial value exceeds maxvalue");
        Self {
            kind,
            maxvalue,
            m: Monitor::new(State {
                value,
                count: 0,
                owner: None,
            }),
        }
    }

    pub fn kind(&self) -> SemKind {
        self.kind
    }

    pub fn maxvalue(&self) -> usize {
        self.maxvalue
    }

    fn try_take(&self, s: &mut State, me: Owner) -> bool {
        if self.kind == SemKind::Recursive && s.count > 0 && s.owner == Some(me) {
            s.count += 1;
            return true;
        }
        if s.value > 0 {
            s.value -= 1;
            s.owner = Some(me);
            s.count = if self.kind == SemKind::Recursive {
                1
            } else {
                s.count + 1
            };
            return true;
        }
        false
    }

    /// Acquire without blocking. Returns whether it was acquired.
    pub fn try_acquire(&self, me: Owner) -> bool {
        let mut s = self.m.lock();
        self.try_take(&mut s, me)
    }

    /// Block until acquired, the deadline passes or `cancel` fires.
    pub fn acquire(
        &self,
        me: Owner,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<(), WaitError> {
        self.m
            .wait_for(deadline, cancel, |s| self.try_take(s, me).then_some(()))
    }

    pub fn release(&self, me: Owner) -> Result<(), SemError> {
        let mut s = self.m.lock();
        match self.kind {
            SemKind::Recursive => {
                if s.count == 0 || s.owner != Some(me) {
                    return Err(SemError::NotOwner);
                }
                s.count -= 1;
                if s.count > 0 {
                    return Ok(());
                }
                s.owner = None;
                s.value = 1;
            }
            SemKind::Semaphore => {
                if s.value >= self.maxvalue {
                    return Err(SemError::TooManyReleases);
                }
                s.value += 1;
                s.count = s.count.saturating_sub(1);
                if s.count == 0 {
                    s.owner = None;
                }
            }
        }
        drop(s);
        self.m.notify_one();
        Ok(())
    }

    /// Current value (`Semaphore.get_value()`).
    pub fn value(&self) -> usize {
        self.m.lock().value
    }

    /// Recursion depth if `me` holds it (0 otherwise): SemLock `_count()` /
    /// `_is_mine()`.
    pub fn count_held_by(&self, me: Owner) -> usize {
        let s = self.m.lock();
        if s.owner == Some(me) && s.value == 0 {
            s.count
        } else {
            0
        }
    }

    /// Who acquired it last, while it is held.
    pub fn owner(&self) -> Option<Owner> {
        let s = self.m.lock();
        if s.value == 0 {
            s.owner
        } else {
            None
        }
    }

    /// Release a lock completely on behalf of `me`, returning the depth to
    /// restore later (Condition.wait). Errors if `me` does not hold it.
    pub fn release_all(&self, me: Owner) -> Result<usize, SemError> {
        let mut s = self.m.lock();
        let depth = if s.owner == Some(me) && s.value == 0 {
            s.count
        } else {
            0
        };
        if depth == 0 {
            return Err(SemError::NotOwner);
        }
        s.count = 0;
        s.owner = None;
        s.value = (s.value + 1).min(self.maxvalue);
        drop(s);
        self.m.notify_one();
        Ok(depth)
    }

    /// Re-acquire after [`SemLock::release_all`] and restore the depth.
    pub fn acquire_restore(
        &self,
        me: Owner,
        depth: usize,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<(), WaitError> {
        self.m.wait_for(deadline, cancel, |s| {
            if s.value > 0 {
                s.value -= 1;
                s.owner = Some(me);
                s.count = depth;
                Some(())
            } else {
                None
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    const A: Owner = (0, 1);
    const B: Owner = (0, 2);

    #[test]
    fn lock_excludes_and_over_release_errors() {
        let l = SemLock::new(SemKind::Semaphore, 1, 1);
        assert!(l.try_acquire(A));
        assert!(!l.try_acquire(A));
        assert_eq!(l.owner(), Some(A));
        // Another thread may release a plain Lock (stdlib semantics).
        assert_eq!(l.release(B), Ok(()));
        assert_eq!(l.release(B), Err(SemError::TooManyReleases));
        assert_eq!(l.owner(), None);
    }

    #[test]
    fn rlock_is_reentrant_and_owner_checked() {
        let l = SemLock::new(SemKind::Recursive, 1, 1);
        assert!(l.try_acquire(A));
        assert!(l.try_acquire(A));
        assert!(!l.try_acquire(B));
        assert_eq!(l.count_held_by(A), 2);
        assert_eq!(l.release(B), Err(SemError::NotOwner));
        assert_eq!(l.release_all(A), Ok(2));
        assert!(l.try_acquire(B));
        assert_eq!(l.release(B), Ok(()));
        assert_eq!(l.acquire_restore(A, 2, None, None), Ok(()));
        assert_eq!(l.count_held_by(A), 2);
        l.release(A).unwrap();
        l.release(A).unwrap();
        assert_eq!(l.release(A), Err(SemError::NotOwner));
    }

    #[test]
    fn semaphore_counts_and_times_out() {
        let s = Arc::new(SemLock::new(SemKind::Semaphore, 2, usize::MAX));
        assert!(s.try_acquire(A));
        assert!(s.try_acquire(B));
        let t0 = Instant::now();
        let r = s.acquire(A, Some(t0 + Duration::from_millis(30)), None);
        assert_eq!(r, Err(WaitError::Timeout));
        let s2 = s.clone();
        let h = thread::spawn(move || s2.acquire(B, None, None));
        thread::sleep(Duration::from_millis(20));
        s.release(A).unwrap();
        assert_eq!(h.join().unwrap(), Ok(()));
        assert_eq!(s.value(), 0);
    }

    #[test]
    fn bounded_semaphore_rejects_over_release() {
        let s = SemLock::new(SemKind::Semaphore, 1, 1);
        assert_eq!(s.release(A), Err(SemError::TooManyReleases));
    }
}
