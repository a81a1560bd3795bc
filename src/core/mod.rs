//! Pure-Rust primitives behind ios_mp. Nothing in here knows about Python.
//!
//! Every blocking operation takes an optional deadline and an optional
//! [`CancelToken`]; it returns [`WaitError::Timeout`] when the deadline passes and
//! [`WaitError::Cancelled`] as soon as the token is cancelled (that is how
//! `Process.terminate()` wakes a worker blocked in a primitive). The Python layer
//! slices waits on the main thread so that it can check for Ctrl-C between slices.

mod barrier;
mod cancel;
mod channel;
mod condition;
mod event;
mod monitor;
mod process;
mod semlock;

pub use barrier::{Arrival, Barrier, BarrierError};
pub use cancel::{CancelToken, Wake};
pub use channel::{Broadcast, Channel, RecvError, SendError};
pub use condition::{CondError, Condition};
pub use event::Event;
pub use monitor::{Monitor, WaitError};
pub use process::{JoinCounter, ProcessHandle, ProcessTable, EXIT_REQUESTED, VPID_BASE};
pub use semlock::{Owner, SemError, SemKind, SemLock};
