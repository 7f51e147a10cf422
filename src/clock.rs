//! Injectable time, so that tests control "now" without sleeping.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Wall-clock time source for report timestamps (`since`, `generated_at`).
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, UTC.
    fn now(&self) -> SystemTime;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told to. For tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    /// Starts at `unix_seconds` after the epoch.
    pub fn at_unix(unix_seconds: u64) -> ManualClock {
        ManualClock { now: Mutex::new(UNIX_EPOCH + Duration::from_secs(unix_seconds)) }
    }
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-23T08:30:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Whole days since 1970-01-01 (UTC) of a wall-clock time.
pub fn unix_day(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -((e.duration().as_secs().div_ceil(86_400)) as i64),
    }
}
