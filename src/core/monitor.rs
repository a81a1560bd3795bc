//! A mutex-protected state with a condition variable, and the one wait loop every
//! condvar-based primitive uses (deadline + cancellation, no polling).

use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::cancel::{CancelToken, Wake};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed first.
    Timeout,
    /// The waiter's cancellation token fired (its process is being terminated).
    Cancelled,
}

pub struct Monitor<T> {
    state: Mutex<T>,
    cond: Condvar,
}

impl<T: Send> Wake for Monitor<T> {
    fn wake(&self) {
        // Taking the lock orders this wake-up after any waiter's last check of
        // its token (made under the lock), so the notify cannot be lost.
        drop(self.state.lock());
        self.cond.notify_all();
    }
}

impl<T: Send + 'static> Monitor<T> {
    pub fn new(state: T) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(state),
            cond: Condvar::new(),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.state.lock()
    }

    pub fn notify_all(&self) {
        self.cond.notify_all();
    }

    pub fn notify_one(&self) {
        self.cond.notify_one();
    }

    /// Call `step` under the lock until it returns `Some`, the deadline passes,
    /// `cancel` is cancelled (`Cancelled`) or interrupted (`Timeout`). `step` runs once more after a timeout, so a state change
    /// that raced with the deadline still wins. On success the guard is returned
    /// with the result so callers can finish their update atomically.
    pub fn wait_for<R>(
        self: &Arc<Self>,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
        mut step: impl FnMut(&mut T) -> Option<R>,
    ) -> Result<R, WaitError> {
        {
            // Fast path: no registration when nothing has to wait.
            let mut g = self.state.lock();
            if let Some(r) = step(&mut g) {
                return Ok(r);
            }
        }
        // Register before re-checking: a cancel that happens after this point
        // either is seen by the check below or wakes the condvar wait.
        let _reg = cancel.map(|c| c.register(self.clone() as Arc<dyn Wake>));
        let mut g = self.state.lock();
        loop {
            if let Some(r) = step(&mut g) {
                return Ok(r);
            }
            if cancel.is_some_and(CancelToken::is_cancelled) {
                return Err(WaitError::Cancelled);
            }
            // A signal for this thread: end as a timeout would (the caller runs
            // the handler and calls again).
            if cancel.is_some_and(CancelToken::take_interrupt) {
                return step(&mut g).ok_or(WaitError::Timeout);
            }
            match deadline {
                None => self.cond.wait(&mut g),
                Some(d) => {
                    if self.cond.wait_until(&mut g, d).timed_out() {
                        return step(&mut g).ok_or(WaitError::Timeout);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn wait_for_times_out_and_is_woken() {
        let m = Monitor::new(0u32);
        let t0 = Instant::now();
        let r = m.wait_for(Some(t0 + Duration::from_millis(50)), None, |v| {
            (*v > 0).then_some(())
        });
        assert_eq!(r, Err(WaitError::Timeout));
        assert!(t0.elapsed() >= Duration::from_millis(50));

        let m2 = m.clone();
        let h = thread::spawn(move || m2.wait_for(None, None, |v| (*v > 0).then_some(*v)));
        thread::sleep(Duration::from_millis(20));
        *m.lock() = 7;
        m.notify_all();
        assert_eq!(h.join().unwrap(), Ok(7));
    }

    #[test]
    fn cancel_wakes_a_waiter() {
        let m = Monitor::new(false);
        let tok = CancelToken::new();
        let (m2, t2) = (m.clone(), tok.clone());
        let h = thread::spawn(move || m2.wait_for(None, Some(&t2), |v| v.then_some(())));
        thread::sleep(Duration::from_millis(20));
        let t0 = Instant::now();
        tok.cancel(15);
        assert_eq!(h.join().unwrap(), Err(WaitError::Cancelled));
        assert!(t0.elapsed() < Duration::from_millis(100));
    }
}
