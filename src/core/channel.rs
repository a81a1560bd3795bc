//! The queue under `multiprocessing.Queue`/`SimpleQueue`: a crossbeam channel
//! whose blocking operations also wake when any "interrupt" receiver fires.
//!
//! Interrupts are receivers that never carry a message and become disconnected
//! to signal: a [`CancelToken`](super::CancelToken) receiver (terminate) and a
//! [`Broadcast`] subscription (the queue was closed by some process). Waiting on
//! them is event-driven: a crossbeam `Select` over the data operation and the
//! interrupts, with the deadline.

use std::time::Instant;

use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use parking_lot::Mutex;

#[derive(Debug, PartialEq, Eq)]
pub enum RecvError {
    /// Nothing arrived before the deadline (or nothing was there, non-blocking).
    Empty,
    /// The interrupt at this index fired.
    Interrupted(usize),
}

#[derive(Debug, PartialEq, Eq)]
pub enum SendError<T> {
    /// Still full at the deadline; the item is handed back.
    Full(T),
    /// The interrupt at this index fired; the item is handed back.
    Interrupted(T, usize),
}

pub struct Channel<T> {
    tx: Sender<T>,
    rx: Receiver<T>,
}

impl<T> Channel<T> {
    /// `capacity == None` is unbounded. A capacity of zero is not a rendezvous
    /// channel here; callers map `maxsize <= 0` to unbounded, as stdlib does.
    pub fn new(capacity: Option<usize>) -> Self {
        let (tx, rx) = match capacity {
            None | Some(0) => crossbeam_channel::unbounded(),
            Some(n) => crossbeam_channel::bounded(n),
        };
        Self { tx, rx }
    }

    pub fn len(&self) -> usize {
        self.rx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rx.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.rx.is_full()
    }

    pub fn capacity(&self) -> Option<usize> {
        self.tx.capacity()
    }

    pub fn try_send(&self, item: T) -> Result<(), T> {
        self.tx.try_send(item).map_err(|e| match e {
            TrySendError::Full(v) | TrySendError::Disconnected(v) => v,
        })
    }

    pub fn try_recv(&self) -> Option<T> {
        self.rx.try_recv().ok()
    }

    /// Send, blocking while full until the deadline or an interrupt.
    pub fn send(
        &self,
        item: T,
        deadline: Option<Instant>,
        interrupts: &[&Receiver<()>],
    ) -> Result<(), SendError<T>> {
        let item = match self.try_send(item) {
            Ok(()) => return Ok(()),
            Err(v) => v,
        };
        let mut sel = Select::new();
        let op = sel.send(&self.tx);
        for r in interrupts {
            sel.recv(r);
        }
        let ready = match deadline {
            None => sel.select(),
            Some(d) => match sel.select_deadline(d) {
                Ok(o) => o,
                Err(_) => return Err(SendError::Full(item)),
            },
        };
        let i = ready.index();
        if i == op {
            // The channel is never disconnected: we own both ends.
            return ready
                .send(&self.tx, item)
                .map_err(|e| SendError::Full(e.into_inner()));
        }
        // An interrupt receiver: complete its (failing) operation as Select requires.
        let _ = ready.recv(interrupts[i - 1]);
        Err(SendError::Interrupted(item, i - 1))
    }

    /// Receive, blocking until an item, the deadline or an interrupt.
    pub fn recv(
        &self,
        deadline: Option<Instant>,
        interrupts: &[&Receiver<()>],
    ) -> Result<T, RecvError> {
        if let Some(v) = self.try_recv() {
            return Ok(v);
        }
        let mut sel = Select::new();
        let op = sel.recv(&self.rx);
        for r in interrupts {
            sel.recv(r);
        }
        loop {
            let ready = match deadline {
                None => sel.select(),
                Some(d) => match sel.select_deadline(d) {
                    Ok(o) => o,
                    Err(_) => return self.try_recv().ok_or(RecvError::Empty),
                },
            };
            let i = ready.index();
            if i == op {
                match ready.recv(&self.rx) {
                    Ok(v) => return Ok(v),
                    // Another receiver won the race for that item: wait again.
                    Err(_) => continue,
                }
            }
            let _ = ready.recv(interrupts[i - 1]);
            return Err(RecvError::Interrupted(i - 1));
        }
    }
}

/// Wakes every current subscriber at once, any number of times.
///
/// A subscription is a receiver that disconnects when [`Broadcast::fire`] is
/// called; subscribe *before* checking the condition you wait for, then select
/// on it, and no firing is lost.
pub struct Broadcast {
    current: Mutex<(Sender<()>, Receiver<()>)>,
}

impl Default for Broadcast {
    fn default() -> Self {
        Self {
            current: Mutex::new(crossbeam_channel::bounded(0)),
        }
    }
}

impl Broadcast {
    pub fn subscribe(&self) -> Receiver<()> {
        self.current.lock().1.clone()
    }

    pub fn fire(&self) {
        // Replacing the pair drops the old sender: old subscribers disconnect.
        let old = std::mem::replace(&mut *self.current.lock(), crossbeam_channel::bounded(0));
        drop(old);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::CancelToken;
    use std::sync::Arc;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn fifo_and_timeouts() {
        let c = Channel::new(None);
        c.send(1, None, &[]).unwrap();
        c.send(2, None, &[]).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.recv(None, &[]), Ok(1));
        assert_eq!(c.recv(None, &[]), Ok(2));
        let t0 = Instant::now();
        let d = Some(t0 + Duration::from_millis(30));
        assert_eq!(c.recv(d, &[]), Err(RecvError::Empty));
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn bounded_send_blocks_until_space() {
        let c = Arc::new(Channel::new(Some(1)));
        c.send(1, None, &[]).unwrap();
        assert!(c.is_full());
        let d = Some(Instant::now() + Duration::from_millis(10));
        assert_eq!(c.send(2, d, &[]), Err(SendError::Full(2)));
        let c2 = c.clone();
        let h = thread::spawn(move || c2.send(3, None, &[]));
        thread::sleep(Duration::from_millis(20));
        assert_eq!(c.recv(None, &[]), Ok(1));
        assert_eq!(h.join().unwrap(), Ok(()));
        assert_eq!(c.recv(None, &[]), Ok(3));
    }

    #[test]
    fn interrupts_wake_blocked_calls() {
        let c: Arc<Channel<i32>> = Arc::new(Channel::new(None));
        let tok = CancelToken::new();
        let b = Arc::new(Broadcast::default());
        let (c2, t2, b2) = (c.clone(), tok.clone(), b.clone());
        let h = thread::spawn(move || {
            let sub = b2.subscribe();
            let first = c2.recv(None, &[&t2.receiver(), &sub]);
            let second = c2.recv(None, &[&t2.receiver()]);
            (first, second)
        });
        thread::sleep(Duration::from_millis(20));
        b.fire();
        thread::sleep(Duration::from_millis(20));
        tok.cancel(15);
        let (first, second) = h.join().unwrap();
        assert_eq!(first, Err(RecvError::Interrupted(1)));
        assert_eq!(second, Err(RecvError::Interrupted(0)));
    }
}
