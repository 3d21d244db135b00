//! The clock is passed in, never read from a global, so tests are deterministic.

use crate::time::Timestamp;

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// Wall-clock time of the operating system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp::from_micros(micros)
    }
}
