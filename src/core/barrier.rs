//! `threading.Barrier` semantics (which `multiprocessing.Barrier` shares).
//!
//! The last thread to arrive gets [`Arrival::Last`] and must run the barrier's
//! action (a Python callable, so it runs in the Python layer) and then call
//! [`Barrier::finish`]; while it does, the barrier is in an internal
//! "releasing" state that new arrivals wait out, just as they would wait for the
//! condition lock that `threading.Barrier` holds while its action runs.

use std::sync::Arc;
use std::time::Instant;

use super::cancel::CancelToken;
use super::monitor::{Monitor, WaitError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Filling,
    Releasing,
    Draining,
    Resetting,
    Broken,
}

struct State {
    phase: Phase,
    count: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Must wait for the last arrival; the value is this thread's index.
    Waiting(usize),
    /// This thread completed the party: run the action, then call `finish`.
    Last(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarrierError {
    Broken,
    /// The deadline passed; the barrier is unchanged.
    Timeout,
    Cancelled,
}

pub struct Barrier {
    parties: usize,
    m: Arc<Monitor<State>>,
}

impl Barrier {
    pub fn new(parties: usize) -> Self {
        assert!(parties > 0, "a barrier needs at least one party");
        Self {
            parties,
            m: Monitor::new(State {
                phase: Phase::Filling,
                count: 0,
            }),
        }
    }

    pub fn parties(&self) -> usize {
        self.parties
    }

    pub fn n_waiting(&self) -> usize {
        let s = self.m.lock();
        if s.phase == Phase::Filling {
            s.count
        } else {
            0
        }
    }

    pub fn broken(&self) -> bool {
        self.m.lock().phase == Phase::Broken
    }

    /// Arrive at the barrier: waits out a drain or reset in progress, then takes
    /// an index. `Err(Timeout)` leaves nothing changed, so a caller that slices
    /// its wait may call again. An [`Arrival::Waiting`] caller must next call
    /// [`Barrier::await_release`]; an [`Arrival::Last`] caller runs the action
    /// and calls [`Barrier::finish`].
    pub fn enter(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<Arrival, BarrierError> {
        let entered = self.m.wait_for(deadline, cancel, |s| match s.phase {
            Phase::Releasing | Phase::Draining | Phase::Resetting => None,
            Phase::Broken => Some(Err(BarrierError::Broken)),
            Phase::Filling => {
                let index = s.count;
                s.count += 1;
                if s.count == self.parties {
                    // Closed to newcomers until the action has run.
                    s.phase = Phase::Releasing;
                    Some(Ok(Arrival::Last(index)))
                } else {
                    Some(Ok(Arrival::Waiting(index)))
                }
            }
        });
        match entered {
            Ok(r) => r,
            Err(WaitError::Timeout) => Err(BarrierError::Timeout),
            Err(WaitError::Cancelled) => Err(BarrierError::Cancelled),
        }
    }

    /// Wait to be released. `Err(Timeout)` changes nothing (call again, or give
    /// up with [`Barrier::give_up`]); `Ok` and `Err(Broken)` have already left.
    pub fn await_release(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<(), BarrierError> {
        let released = self.m.wait_for(deadline, cancel, |s| match s.phase {
            Phase::Filling | Phase::Releasing => None,
            Phase::Draining => Some(true),
            Phase::Broken | Phase::Resetting => Some(false),
        });
        match released {
            Ok(ok) => {
                self.leave();
                if ok {
                    Ok(())
                } else {
                    Err(BarrierError::Broken)
                }
            }
            Err(WaitError::Timeout) => Err(BarrierError::Timeout),
            Err(WaitError::Cancelled) => Err(BarrierError::Cancelled),
        }
    }

    /// A waiting arrival gives up (its timeout passed or it was cancelled): the
    /// barrier breaks, as stdlib's does on a timeout.
    pub fn give_up(&self) {
        self.break_locked();
        self.leave();
    }

    /// Called by the [`Arrival::Last`] thread after running the action:
    /// `action_ok == false` breaks the barrier (the action raised).
    pub fn finish(&self, action_ok: bool) {
        {
            let mut s = self.m.lock();
            s.phase = if action_ok {
                Phase::Draining
            } else {
                Phase::Broken
            };
        }
        self.m.notify_all();
        self.leave();
    }

    fn leave(&self) {
        let mut s = self.m.lock();
        s.count -= 1;
        if s.count == 0 && matches!(s.phase, Phase::Draining | Phase::Resetting) {
            s.phase = Phase::Filling;
            drop(s);
            self.m.notify_all();
        }
    }

    fn break_locked(&self) {
        self.m.lock().phase = Phase::Broken;
        self.m.notify_all();
    }

    pub fn abort(&self) {
        self.break_locked();
    }

    pub fn reset(&self) {
        {
            let mut s = self.m.lock();
            if s.count > 0 {
                if matches!(s.phase, Phase::Filling | Phase::Broken) {
                    s.phase = Phase::Resetting;
                }
            } else {
                s.phase = Phase::Filling;
            }
        }
        self.m.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn parties_meet_and_the_barrier_is_reusable() {
        let b = Arc::new(Barrier::new(3));
        for _round in 0..3 {
            let hs: Vec<_> = (0..3)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || {
                        let a = b.enter(None, None).unwrap();
                        match a {
                            Arrival::Last(_) => b.finish(true),
                            Arrival::Waiting(_) => b.await_release(None, None).unwrap(),
                        }
                        a
                    })
                })
                .collect();
            let mut idx: Vec<usize> = hs
                .into_iter()
                .map(|h| match h.join().unwrap() {
                    Arrival::Last(i) | Arrival::Waiting(i) => i,
                })
                .collect();
            idx.sort_unstable();
            assert_eq!(idx, vec![0, 1, 2]);
        }
    }

    #[test]
    fn timeout_breaks_and_reset_repairs() {
        let b = Barrier::new(2);
        assert_eq!(b.enter(None, None), Ok(Arrival::Waiting(0)));
        let r = b.await_release(Some(Instant::now() + Duration::from_millis(20)), None);
        assert_eq!(r, Err(BarrierError::Timeout));
        assert!(!b.broken());
        b.give_up();
        assert!(b.broken());
        assert_eq!(b.enter(None, None), Err(BarrierError::Broken));
        b.reset();
        assert!(!b.broken());
        assert_eq!(b.n_waiting(), 0);
    }

    #[test]
    fn failing_action_breaks_others() {
        let b = Arc::new(Barrier::new(2));
        let b2 = b.clone();
        let h = thread::spawn(move || {
            assert_eq!(b2.enter(None, None), Ok(Arrival::Waiting(0)));
            b2.await_release(None, None)
        });
        let a = loop {
            if b.n_waiting() == 1 {
                break b.enter(None, None).unwrap();
            }
            thread::sleep(Duration::from_millis(1));
        };
        assert!(matches!(a, Arrival::Last(1)));
        b.finish(false);
        assert_eq!(h.join().unwrap(), Err(BarrierError::Broken));
        assert!(b.broken());
    }
}
