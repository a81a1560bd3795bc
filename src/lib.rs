//! ios_mp native core.
//!
//! [`core`] is plain Rust: the blocking primitives (channels, semaphores, locks,
//! conditions, events, barriers), the virtual process table and cancellation
//! tokens. It never touches Python and is tested with
//! `cargo test --no-default-features`.
//!
//! `py` (feature `python`, on by default) is the thin PyO3 layer that turns those
//! primitives into the `ios_mp._core` extension module.

pub mod core;

#[cfg(feature = "python")]
mod py;
