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

/// A clock that moves only when told to; for tests and deterministic replays.
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock {
            micros: std::sync::atomic::AtomicI64::new(start.as_micros()),
        }
    }

    pub fn set(&self, now: Timestamp) {
        self.micros
            .store(now.as_micros(), std::sync::atomic::Ordering::SeqCst);
    }

    pub fn advance_micros(&self, micros: i64) {
        self.micros
            .fetch_add(micros, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_micros(self.micros.load(std::sync::atomic::Ordering::SeqCst))
    }
}
