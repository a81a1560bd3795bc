//! Cancellation tokens: how `terminate()` reaches a worker that is blocked.
//!
//! A token is cancelled once, with a reason (the signal number the Python layer
//! turns into the exit code, 15 or 9). Cancelling wakes every wait that is
//! registered with the token:
//! - condition-variable waits register a [`Wake`] callback (see [`Monitor`]);
//! - channel waits select on [`CancelToken::receiver`], whose sender is dropped on
//!   cancel, so the receiver becomes disconnected and every select on it fires.
//!
//! [`Monitor`]: super::Monitor

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

/// Something a cancelled token must wake up.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

pub struct CancelToken {
    /// 0 while live, otherwise the reason it was cancelled with.
    reason: AtomicI32,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Arc<dyn Wake>>>,
    /// Dropped on cancel: that disconnects `rx` and wakes channel selects.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
}

impl Default for CancelToken {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Self {
            reason: AtomicI32::new(0),
            next_id: AtomicU64::new(1),
            wakers: Mutex::new(HashMap::new()),
            tx: Mutex::new(Some(tx)),
            rx,
        }
    }
}

impl CancelToken {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Cancel with `reason` (must be non-zero). The first reason sticks; returns
    /// true if this call cancelled the token.
    pub fn cancel(&self, reason: i32) -> bool {
        assert!(reason != 0, "cancel reason must be non-zero");
        if self
            .reason
            .compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return false;
        }
        // The store above happens before we read the waker list; a waiter that
        // registers after we read it will see the reason when it checks (it checks
        // after registering), so no wake-up is lost.
        self.tx.lock().take();
        let wakers: Vec<Arc<dyn Wake>> = self.wakers.lock().values().cloned().collect();
        for w in wakers {
            w.wake();
        }
        true
    }

    pub fn reason(&self) -> Option<i32> {
        match self.reason.load(Ordering::SeqCst) {
            0 => None,
            r => Some(r),
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.reason.load(Ordering::SeqCst) != 0
    }

    /// A receiver that never yields a message and becomes disconnected on cancel.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.rx
    }

    /// Register `w` to be woken on cancel for as long as the guard lives.
    pub fn register(&self, w: Arc<dyn Wake>) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.wakers.lock().insert(id, w);
        Registration { token: self, id }
    }
}

/// Removes its waker from the token when dropped.
pub struct Registration<'a> {
    token: &'a CancelToken,
    id: u64,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.token.wakers.lock().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct Counter(AtomicUsize);
    impl Wake for Counter {
        fn wake(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn cancel_wakes_registered_and_disconnects_receiver() {
        let t = CancelToken::new();
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        let reg = t.register(c.clone());
        assert!(t.receiver().try_recv().is_err());
        assert!(!t.receiver().try_recv().unwrap_err().is_disconnected());
        assert!(t.cancel(15));
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(t.receiver().try_recv().unwrap_err().is_disconnected());
        assert_eq!(t.reason(), Some(15));
        drop(reg);
        assert!(t.wakers.lock().is_empty());
    }

    #[test]
    fn first_reason_sticks() {
        let t = CancelToken::new();
        assert!(t.cancel(15));
        assert!(!t.cancel(9));
        assert_eq!(t.reason(), Some(15));
    }
}
