//! Lifecycle events: what the engine tells the host (and the audit log) after each
//! change. Events are built from what the seat table reports it changed, and are
//! delivered only after every lock and map guard is dropped, so a listener may call
//! back into the library.

use std::sync::Arc;
use std::time::SystemTime;

use crate::backend::ReleaseWhy;
use crate::error::DenialReason;
use crate::types::SeatId;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A handle took (or kept) a seat of `license`. One event per type of the handle.
    Acquired,
    /// A handle gave back its hold on `license`; `why` says why. One event per type.
    Released,
    /// A request was refused by `license`; `denial` says why.
    Denied,
    /// Use of `license` reached its alert threshold going up.
    ThresholdUp,
    /// Use of `license` fell back under its alert threshold.
    ThresholdDown,
    /// A new configuration was swapped in; `detail` lists what changed.
    Reloaded,
    /// An early warning: a license type, the whole license or the support
    /// subscription ends soon (or support has ended), or an emergency window is
    /// about to close. `detail` says which; `license` names the type when one.
    Warning,
    /// A license type (or, with `license` empty, the whole license) passed its
    /// `valid_until`: new logins are refused.
    Expired,
    /// An emergency window opened: `detail` says until when.
    EmergencyStarted,
    /// An emergency window closed; holders beyond the permanent limit follow as
    /// released events (`emergency_expired`).
    EmergencyEnded,
    /// A limit was set at run time (`set_limit`); `detail` says which and where.
    LimitChanged,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Acquired => "acquired",
            EventKind::Released => "released",
            EventKind::Denied => "denied",
            EventKind::ThresholdUp => "threshold_up",
            EventKind::ThresholdDown => "threshold_down",
            EventKind::Reloaded => "reloaded",
            EventKind::Warning => "warning",
            EventKind::Expired => "expired",
            EventKind::EmergencyStarted => "emergency_started",
            EventKind::EmergencyEnded => "emergency_ended",
            EventKind::LimitChanged => "limit_changed",
        }
    }
}

/// One event. Counts are those right after the change (a listener on another thread
/// may already see later ones: events of different threads can arrive in any order).
#[derive(Debug, Clone)]
pub struct Event {
    pub kind: EventKind,
    /// For [`EventKind::Released`].
    pub why: Option<ReleaseWhy>,
    /// For [`EventKind::Denied`].
    pub denial: Option<DenialReason>,
    /// The license type (every kind but [`EventKind::Reloaded`]).
    pub license: Option<Arc<str>>,
    /// The user (acquired, released, denied).
    pub user: Option<Arc<str>>,
    /// The seat handle (acquired, released; 0 otherwise).
    pub seat: SeatId,
    pub used: u32,
    pub limit: u32,
    /// The type's alert percentage (threshold events).
    pub threshold_percent: u8,
    /// Wall-clock time, UTC.
    pub time: SystemTime,
    /// One human sentence.
    pub detail: String,
    /// For a denial for a missing requirement: the type that is missing.
    pub requires: Option<Arc<str>>,
    /// The tenant whose pool changed (`None`: the default tenant, or an event about
    /// the whole installation).
    pub tenant: Option<Arc<str>>,
}

/// A listener. It runs on the thread that caused the event (see the header for which
/// one) and must not block for long: the login that caused the event waits for it.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;
