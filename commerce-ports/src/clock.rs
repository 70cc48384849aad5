//! An injectable clock, so tests control time.

use std::fmt::Debug;
use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

/// A source of the current time. Pass one explicitly; there is no hidden global clock.
pub trait Clock: Send + Sync + Debug + 'static {
    /// The current time in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The operating system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: OffsetDateTime) -> ManualClock {
        ManualClock { now: Mutex::new(start) }
    }

    /// Moves the clock forward (or backward, with a negative duration), stopping at the limits of
    /// `OffsetDateTime` rather than overflowing.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.saturating_add(by);
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<T: Clock + ?Sized> Clock for std::sync::Arc<T> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}

impl<T: Clock + ?Sized> Clock for Box<T> {
    fn now(&self) -> OffsetDateTime {
        (**self).now()
    }
}
