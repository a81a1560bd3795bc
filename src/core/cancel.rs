//! Cancellation tokens: how `terminate()` reaches a worker that is blocked, and
//! how a signal reaches a worker's own thread while it waits.
//!
//! A token is cancelled once, with a reason (the signal number the Python layer
//! turns into the exit code, 15 or 9). Cancelling wakes every wait that is
//! registered with the token:
//! - condition-variable waits register a [`Wake`] callback (see [`Monitor`]);
//! - channel waits select on [`CancelToken::receiver`], whose sender is dropped on
//!   cancel, so the receiver becomes disconnected and every select on it fires.
//!
//! A token can also be *interrupted*, any number of times: a signal with a
//! Python handler is pending for the thread that waits with it. An interrupt
//! wakes the same waits, which then end as if their deadline had passed (every
//! wait here is written so that a caller may call again after `Timeout`); the
//! Python layer runs the handlers and waits again. Each worker has two tokens:
//! the process's, used by the threads it started, and a [`child`] for its own
//! thread, the only one signals are delivered to. Cancelling a token cancels
//! its children; interrupts stay with the token they were sent to.
//!
//! [`Monitor`]: super::Monitor
//! [`child`]: CancelToken::child

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

use super::monitor::WaitError;

/// Something a cancelled token must wake up.
pub trait Wake: Send + Sync {
    fn wake(&self);
}

pub struct CancelToken {
    /// 0 while live, otherwise the reason it was cancelled with.
    reason: AtomicI32,
    next_id: AtomicU64,
    wakers: Mutex<HashMap<u64, Arc<dyn Wake>>>,
    /// Channel waits select on a clone of `.1`. Cancel drops the sender for
    /// good (every receiver, old and new, is disconnected from then on); an
    /// interrupt replaces the pair, which disconnects the receivers of waits in
    /// progress only.
    wake: Mutex<(Option<Sender<()>>, Receiver<()>)>,
    /// An interrupt not yet seen by a wait (taken by the wait that ends for it).
    interrupted: AtomicBool,
    /// Signals pending for the thread of this token, one bit per signal number.
    pending: AtomicU64,
    /// Waits in progress with this token (the GIL is released in all of them).
    waiting: AtomicU32,
    children: Mutex<Vec<Weak<CancelToken>>>,
}

impl Default for CancelToken {
    fn default() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Self {
            reason: AtomicI32::new(0),
            next_id: AtomicU64::new(1),
            wakers: Mutex::new(HashMap::new()),
            wake: Mutex::new((Some(tx), rx)),
            interrupted: AtomicBool::new(false),
            pending: AtomicU64::new(0),
            waiting: AtomicU32::new(0),
            children: Mutex::new(Vec::new()),
        }
    }
}

impl CancelToken {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A token cancelled (with the same reason) whenever this one is.
    pub fn child(&self) -> Arc<Self> {
        let c = Self::new();
        let mut kids = self.children.lock();
        kids.retain(|k| k.strong_count() > 0);
        kids.push(Arc::downgrade(&c));
        drop(kids);
        // A parent cancelled before the child existed: the child is born cancelled.
        if let Some(r) = self.reason() {
            c.cancel(r);
        }
        c
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
        self.wake.lock().0.take();
        self.wake_all();
        let kids: Vec<Arc<Self>> = self
            .children
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for k in kids {
            k.cancel(reason);
        }
        true
    }

    fn wake_all(&self) {
        let wakers: Vec<Arc<dyn Wake>> = self.wakers.lock().values().cloned().collect();
        for w in wakers {
            w.wake();
        }
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

    /// Mark signal `sig` (1..=63) pending and interrupt the waits in progress.
    /// Returns false if the token is cancelled (the thread is going away).
    pub fn raise_signal(&self, sig: u32) -> bool {
        debug_assert!((1..64).contains(&sig));
        self.pending.fetch_or(1 << sig, Ordering::SeqCst);
        self.interrupt()
    }

    /// The pending signals, cleared.
    pub fn take_signals(&self) -> u64 {
        self.pending.swap(0, Ordering::SeqCst)
    }

    pub fn has_signals(&self) -> bool {
        self.pending.load(Ordering::SeqCst) != 0
    }

    /// Make the waits in progress end as timed out (see the module docs).
    pub fn interrupt(&self) -> bool {
        if self.is_cancelled() {
            return false;
        }
        // Flag first, then wake: a waiter checks the flag after registering (or
        // after taking its receiver), so it either sees the flag or is woken.
        self.interrupted.store(true, Ordering::SeqCst);
        {
            let mut w = self.wake.lock();
            if w.0.is_some() {
                // Dropping the old pair disconnects the receivers handed out so far.
                *w = {
                    let (tx, rx) = crossbeam_channel::bounded(0);
                    (Some(tx), rx)
                };
            }
        }
        self.wake_all();
        true
    }

    /// True (once) if an interrupt arrived since the last call.
    pub fn take_interrupt(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst) && self.interrupted.swap(false, Ordering::SeqCst)
    }

    /// What a wait returns when the receiver from [`CancelToken::receiver`]
    /// fired: `Cancelled`, or `Timeout` for an interrupt.
    pub fn fired(&self) -> WaitError {
        if self.is_cancelled() {
            WaitError::Cancelled
        } else {
            self.take_interrupt();
            WaitError::Timeout
        }
    }

    /// A receiver that never yields a message and becomes disconnected on
    /// cancel or on the next interrupt. Take it *before* checking
    /// [`CancelToken::take_interrupt`], then select on it.
    pub fn receiver(&self) -> Receiver<()> {
        self.wake.lock().1.clone()
    }

    /// Count a wait in progress for as long as the guard lives.
    pub fn enter_wait(&self) -> WaitGuard<'_> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        WaitGuard { token: self }
    }

    /// Whether a thread is waiting with this token right now.
    pub fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) != 0
    }

    /// Register `w` to be woken on cancel for as long as the guard lives.
    pub fn register(&self, w: Arc<dyn Wake>) -> Registration<'_> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.wakers.lock().insert(id, w);
        Registration { token: self, id }
    }
}

pub struct WaitGuard<'a> {
    token: &'a CancelToken,
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.token.waiting.fetch_sub(1, Ordering::SeqCst);
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
    fn interrupt_wakes_current_receivers_only_and_is_taken_once() {
        let t = CancelToken::new();
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        let _reg = t.register(c.clone());
        let before = t.receiver();
        assert!(t.raise_signal(14));
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(before.try_recv().unwrap_err().is_disconnected());
        assert!(!t.receiver().try_recv().unwrap_err().is_disconnected());
        assert_eq!(t.fired(), WaitError::Timeout);
        assert!(!t.take_interrupt());
        assert_eq!(t.take_signals(), 1 << 14);
        assert!(!t.has_signals());
        assert!(t.cancel(15));
        assert!(!t.interrupt());
        assert_eq!(t.fired(), WaitError::Cancelled);
    }

    #[test]
    fn children_are_cancelled_with_their_parent() {
        let parent = CancelToken::new();
        let kid = parent.child();
        assert!(kid.interrupt());
        assert!(!parent.take_interrupt(), "interrupts stay with the child");
        assert!(parent.cancel(9));
        assert_eq!(kid.reason(), Some(9));
        assert!(kid.receiver().try_recv().unwrap_err().is_disconnected());
        assert_eq!(parent.child().reason(), Some(9), "born cancelled");
    }

    #[test]
    fn first_reason_sticks() {
        let t = CancelToken::new();
        assert!(t.cancel(15));
        assert!(!t.cancel(9));
        assert_eq!(t.reason(), Some(15));
    }
}
