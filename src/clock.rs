//! Injectable time, so that tests control "now" without sleeping.
//!
//! Two clocks, for two jobs:
//! - **monotonic** nanoseconds for leases, linger windows and the reaper: they never
//!   jump when an admin or NTP sets the wall clock. `CLOCK_MONOTONIC` is one clock for
//!   every process of the host, so deadlines can be shared between processes;
//! - **wall-clock** UTC for what people read: login times in the report, event and
//!   audit-log timestamps.

use std::cell::Cell;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point on the monotonic clock, in nanoseconds since an arbitrary origin (boot).
pub type Mono = u64;

/// Converts a duration to monotonic nanoseconds, saturating (584 years).
#[inline]
pub fn mono_ns(d: Duration) -> Mono {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Time source for the engine.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time, UTC.
    fn now(&self) -> SystemTime;
    /// Monotonic time for deadlines.
    fn monotonic(&self) -> Mono;
    /// A monotonic time no later than now, possibly cheaper to read: only for deciding
    /// whether a deadline has passed (it is never early), never for computing one.
    #[inline]
    fn monotonic_floor(&self) -> Mono {
        self.monotonic()
    }
    /// [`Clock::now`] in milliseconds since the Unix epoch.
    #[inline]
    fn unix_ms(&self) -> i64 {
        unix_ms(self.now())
    }
}

/// The real clocks: `CLOCK_REALTIME_COARSE` for what people read, `CLOCK_MONOTONIC`
/// for deadlines, `CLOCK_MONOTONIC_COARSE` for checking them.
///
/// The wall clock is read at the kernel tick's resolution (1 to 4 ms, by `HZ`): the
/// time of the last timer tick, from the vDSO in about 5 ns instead of 20 to 25 ns on
/// a virtual machine. It stamps login times (shown to the second) and dates the
/// policy. The monotonic clock stays precise: a coarse one would let a lease or a
/// linger window end up to a tick before its time (the deadline computed from a tick
/// that was already past), and a lease must never end early. Whether a deadline has
/// passed is checked against `CLOCK_MONOTONIC_COARSE` ([`Clock::monotonic_floor`]):
/// the same clock as of the last tick, never ahead of `CLOCK_MONOTONIC`, so a check
/// can only see a deadline late (by at most a tick), never early. All are one clock
/// for every process of the host, so deadlines stay comparable between processes
/// sharing a table.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> SystemTime {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        match u64::try_from(t.tv_sec) {
            Ok(secs) => UNIX_EPOCH + Duration::new(secs, t.tv_nsec as u32),
            Err(_) => SystemTime::now(),
        }
    }
    #[inline]
    fn monotonic(&self) -> Mono {
        mono_of(rustix::time::clock_gettime(rustix::time::ClockId::Monotonic))
    }
    #[inline]
    fn monotonic_floor(&self) -> Mono {
        mono_of(rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse))
    }
    #[inline]
    fn unix_ms(&self) -> i64 {
        // Straight from the timespec: no `SystemTime` built and taken apart again.
        let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
        t.tv_sec.saturating_mul(1000).saturating_add(t.tv_nsec as i64 / 1_000_000)
    }
}

/// The monotonic time of one backend call, read on first use: a call that checks and
/// computes no deadline (a login or logout with no lease, no linger window and no
/// expired handle in sight) reads no clock at all. Exact ([`Clock::monotonic`]) when
/// made so, for calls that may compute a deadline; otherwise a floor of now
/// ([`Clock::monotonic_floor`]), good only for checking whether a deadline passed.
/// Every read of one `Now` gives the same time.
pub struct Now<'a> {
    clock: Option<&'a dyn Clock>,
    exact: bool,
    at: Cell<Option<Mono>>,
}

impl<'a> Now<'a> {
    /// Reads `clock` when first asked: exactly, or its floor.
    #[inline]
    pub fn lazy(clock: &'a dyn Clock, exact: bool) -> Now<'a> {
        Now { clock: Some(clock), exact, at: Cell::new(None) }
    }

    /// A time read already.
    #[inline]
    pub fn fixed(at: Mono) -> Now<'static> {
        Now { clock: None, exact: true, at: Cell::new(Some(at)) }
    }

    #[inline]
    pub fn get(&self) -> Mono {
        if let Some(at) = self.at.get() {
            return at;
        }
        let at = match self.clock {
            Some(clock) if self.exact => clock.monotonic(),
            Some(clock) => clock.monotonic_floor(),
            // `fixed` sets the time when it makes the value.
            None => 0,
        };
        self.at.set(Some(at));
        at
    }
}

impl std::fmt::Debug for Now<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Now").field("exact", &self.exact).field("at", &self.at.get()).finish()
    }
}

#[inline]
fn mono_of(t: rustix::time::Timespec) -> Mono {
    (t.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(t.tv_nsec as u64)
}

/// A clock that moves only when told to: both its wall-clock and its monotonic time
/// advance together. For tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<(SystemTime, Mono)>,
}

impl ManualClock {
    /// Starts at `unix_seconds` after the epoch (monotonic time starts at 1 s).
    pub fn at_unix(unix_seconds: u64) -> ManualClock {
        ManualClock { now: Mutex::new((UNIX_EPOCH + Duration::from_secs(unix_seconds), 1_000_000_000)) }
    }
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        now.0 += by;
        now.1 = now.1.saturating_add(mono_ns(by));
    }
    fn read(&self) -> (SystemTime, Mono) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        self.read().0
    }
    fn monotonic(&self) -> Mono {
        self.read().1
    }
}

/// RFC 3339 UTC with second precision, e.g. `2026-11-23T08:30:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Milliseconds since the Unix epoch (negative before it).
#[inline]
pub fn unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        // Seconds and milliseconds apart: `as_millis` is 128-bit arithmetic.
        Ok(d) => i64::try_from(d.as_secs())
            .ok()
            .and_then(|s| s.checked_mul(1000))
            .map_or(i64::MAX, |ms| ms + i64::from(d.subsec_millis())),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// The wall-clock time of a count of milliseconds since the Unix epoch.
pub fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// Whole seconds since the Unix epoch (rounded down, so negative before it).
pub fn unix_secs(t: SystemTime) -> i64 {
    unix_ms(t).div_euclid(1000)
}

/// The wall-clock time of a Unix second.
pub fn from_unix_secs(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Whole days since 1970-01-01 (UTC) of a wall-clock time.
pub fn unix_day(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -((e.duration().as_secs().div_ceil(86_400)) as i64),
    }
}

/// A short human duration for configured windows: `90s`, `2m 30s`, `1h 5m`, `250ms`,
/// `1s 250ms` (exact to the millisecond under a minute).
pub fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 if d.subsec_millis() > 0 => {
            humantime::format_duration(Duration::from_millis(d.as_millis() as u64)).to_string()
        }
        0..=59 => format!("{s}s"),
        60..=3599 if s.is_multiple_of(60) => format!("{}m", s / 60),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ if s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// A countdown for reports, in whole seconds rounded up (`0s` only when due).
pub fn countdown(seconds: f64) -> String {
    short_duration(Duration::from_secs(seconds.max(0.0).ceil() as u64))
}
