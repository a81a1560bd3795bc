//! A settable flag that waiters block on (`multiprocessing.Event`).

use std::sync::Arc;
use std::time::Instant;

use super::cancel::CancelToken;
use super::monitor::{Monitor, WaitError};

pub struct Event {
    m: Arc<Monitor<bool>>,
}

impl Default for Event {
    fn default() -> Self {
        Self {
            m: Monitor::new(false),
        }
    }
}

impl Event {
    pub fn is_set(&self) -> bool {
        *self.m.lock()
    }

    pub fn set(&self) {
        *self.m.lock() = true;
        self.m.notify_all();
    }

    pub fn clear(&self) {
        *self.m.lock() = false;
    }

    /// Ok(true) once set; Ok(false) if the deadline passed first.
    pub fn wait(
        &self,
        deadline: Option<Instant>,
        cancel: Option<&CancelToken>,
    ) -> Result<bool, WaitError> {
        match self.m.wait_for(deadline, cancel, |set| set.then_some(())) {
            Ok(()) => Ok(true),
            Err(WaitError::Timeout) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn set_wakes_all_waiters() {
        let e = Arc::new(Event::default());
        let hs: Vec<_> = (0..3)
            .map(|_| {
                let e = e.clone();
                thread::spawn(move || e.wait(None, None))
            })
            .collect();
        thread::sleep(Duration::from_millis(20));
        e.set();
        for h in hs {
            assert_eq!(h.join().unwrap(), Ok(true));
        }
        e.clear();
        let r = e.wait(Some(Instant::now() + Duration::from_millis(10)), None);
        assert_eq!(r, Ok(false));
    }
}
