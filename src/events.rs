//! Lifecycle events: what the engine tells the host (and the audit log) after each
//! change. Events are built from what the seat table reports it changed, and are
//! delivered only after every lock and map guard is dropped, so a listener may call
//! back into the library.

use std::borrow::Cow;
use std::fmt;
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

    /// Every kind, in the order of their codes.
    pub const ALL: [EventKind; 11] = [
        EventKind::Acquired,
        EventKind::Released,
        EventKind::Denied,
        EventKind::ThresholdUp,
        EventKind::ThresholdDown,
        EventKind::Reloaded,
        EventKind::Warning,
        EventKind::Expired,
        EventKind::EmergencyStarted,
        EventKind::EmergencyEnded,
        EventKind::LimitChanged,
    ];

    /// The kind's number in the C API (`license_event_kind`): 1 to 11.
    pub const fn code(self) -> u32 {
        self as u32 + 1
    }
}

/// Which events a listener hears: a set of kinds (bit `1 << kind.code()`), where
/// released events can be narrowed to those the host did not ask for. The audit log
/// always gets everything.
///
/// What a set costs: a listener that hears every login (acquired, or released with
/// reason normal) puts every login and logout on the general path, counted exactly
/// and described. One that hears thresholds needs the seats counted exactly only where
/// a change can cross a threshold: below it logins keep the per-thread lanes, and no
/// login is described (the express lane still serves them). One that hears only refusals, forced releases and the
/// policy's and admins' events leaves quiet logins as fast as with nobody listening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventMask(u32);

impl EventMask {
    /// Nothing.
    pub const NONE: EventMask = EventMask(0);
    /// Released events whose reason is not [`ReleaseWhy::Normal`]: the holder did not
    /// log out itself (its lease ran out, an admin, a dependency, shutdown, a dead
    /// owner process, reconciliation, an emergency window or the license ended).
    /// Implied by [`EventKind::Released`]'s own bit.
    pub const FORCED_RELEASES: EventMask = EventMask(1 << 12);
    /// Every event (the default).
    pub const ALL: EventMask = EventMask(0x1ffe);
    /// What a host must act on or an admin must see, without hearing every login:
    /// refusals, forced releases, reloads, warnings, expiry, emergency windows and
    /// limits set at run time.
    pub const ALERTS: EventMask = EventMask(
        EventMask::of(EventKind::Denied).0
            | EventMask::FORCED_RELEASES.0
            | EventMask::of(EventKind::Reloaded).0
            | EventMask::of(EventKind::Warning).0
            | EventMask::of(EventKind::Expired).0
            | EventMask::of(EventKind::EmergencyStarted).0
            | EventMask::of(EventKind::EmergencyEnded).0
            | EventMask::of(EventKind::LimitChanged).0,
    );
    /// The kinds that need every login and logout described: an event for each.
    pub const EVERY_LOGIN: EventMask =
        EventMask(EventMask::of(EventKind::Acquired).0 | EventMask::of(EventKind::Released).0);
    /// Both threshold kinds.
    pub const THRESHOLDS: EventMask =
        EventMask(EventMask::of(EventKind::ThresholdUp).0 | EventMask::of(EventKind::ThresholdDown).0);

    /// The set of one kind.
    pub const fn of(kind: EventKind) -> EventMask {
        EventMask(1 << kind.code())
    }

    /// The set from its bits; `None` when a bit names no kind.
    pub const fn from_bits(bits: u32) -> Option<EventMask> {
        if bits & !EventMask::ALL.0 == 0 { Some(EventMask(bits)) } else { None }
    }

    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn union(self, other: EventMask) -> EventMask {
        EventMask(self.0 | other.0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether an event of `kind` is heard (for released events, see
    /// [`EventMask::hears_release`]).
    #[inline]
    pub const fn hears(self, kind: EventKind) -> bool {
        self.0 & EventMask::of(kind).0 != 0
    }

    /// Whether a released event for `why` is heard.
    #[inline]
    pub fn hears_release(self, why: ReleaseWhy) -> bool {
        self.hears(EventKind::Released)
            || (why != ReleaseWhy::Normal && self.0 & EventMask::FORCED_RELEASES.0 != 0)
    }

    /// Whether an event is heard.
    pub fn hears_event(self, event: &Event<'_>) -> bool {
        match (event.kind, event.why) {
            (EventKind::Released, Some(why)) => self.hears_release(why),
            (kind, _) => self.hears(kind),
        }
    }

    /// Reads a mask as a host's config file writes it: `all`, `alerts`, `none`, or
    /// event names joined by commas (`denied, threshold_up, forced_releases`): the
    /// names of [`EventKind::as_str`], `threshold` for both threshold kinds and
    /// `forced_releases` for [`EventMask::FORCED_RELEASES`]; `all` and `alerts` may
    /// be among them. Spaces around a name are ignored; case matters.
    pub fn parse(text: &str) -> Result<EventMask, String> {
        let mut mask = EventMask::NONE;
        for word in text.split(',').map(|w| w.trim_matches(' ')) {
            mask = mask.union(match word {
                "all" => EventMask::ALL,
                "alerts" => EventMask::ALERTS,
                "none" => EventMask::NONE,
                "threshold" => EventMask::THRESHOLDS,
                "forced_releases" => EventMask::FORCED_RELEASES,
                _ => match EventKind::ALL.iter().find(|k| k.as_str() == word) {
                    Some(&kind) => EventMask::of(kind),
                    None => {
                        let names: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        return Err(format!(
                            "event mask '{text}': '{word}' names no event; use all, alerts, none, or names \
                             joined by commas: {}, threshold, forced_releases",
                            names.join(", ")
                        ));
                    }
                },
            });
        }
        Ok(mask)
    }
}

impl Default for EventMask {
    fn default() -> EventMask {
        EventMask::ALL
    }
}

/// One event. Counts are those right after the change (a listener on another thread
/// may already see later ones: events of different threads can arrive in any order).
///
/// The names it carries are borrowed from the call that made it (the configuration
/// and the request it served): a listener reads them in place, and no login or
/// logout clones or counts a reference for its event. A listener that keeps an event
/// past its call keeps [`Event::into_owned`].
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub kind: EventKind,
    /// For [`EventKind::Released`].
    pub why: Option<ReleaseWhy>,
    /// For [`EventKind::Denied`].
    pub denial: Option<DenialReason>,
    /// The license type (every kind but [`EventKind::Reloaded`]).
    pub license: Option<Cow<'a, str>>,
    /// The user (acquired, released, denied).
    pub user: Option<Cow<'a, str>>,
    /// The seat handle (acquired, released; 0 otherwise).
    pub seat: SeatId,
    pub used: u32,
    pub limit: u32,
    /// The type's alert percentage (threshold events).
    pub threshold_percent: u8,
    /// Wall-clock time, UTC, in milliseconds since the Unix epoch (see [`Event::time`]).
    pub time_unix_ms: i64,
    /// One human sentence (see [`Event::detail`]).
    pub(crate) detail: Detail,
    /// For a denial for a missing requirement: the type that is missing.
    pub requires: Option<Cow<'a, str>>,
    /// The tenant whose pool changed (`None`: the default tenant, or an event about
    /// the whole installation).
    pub tenant: Option<Cow<'a, str>>,
}

/// An event's sentence: written when the event was made, or, for the events of every
/// login and logout, only when somebody reads it, from the event's own fields. A
/// listener that passes it on (the C API's writes it straight into the buffer it hands
/// the host) then costs no allocation and no formatting of its own.
#[derive(Debug, Clone)]
pub(crate) enum Detail {
    Text(String),
    /// "user 'alice' holds 'callcenter' through seat 42".
    Holds,
    /// "user 'alice' released seat 42 of 'callcenter' (normal)".
    Released,
}

impl Event<'_> {
    /// The event with names of its own, to keep after the listener returns.
    pub fn into_owned(self) -> Event<'static> {
        let own = |name: Option<Cow<'_, str>>| name.map(|n| Cow::Owned(n.into_owned()));
        Event {
            license: own(self.license),
            user: own(self.user),
            requires: own(self.requires),
            tenant: own(self.tenant),
            ..self
        }
    }

    /// The wall-clock time, UTC.
    pub fn time(&self) -> SystemTime {
        crate::clock::from_unix_ms(self.time_unix_ms)
    }

    /// One human sentence: what happened, to whom, and why.
    pub fn detail(&self) -> Cow<'_, str> {
        match &self.detail {
            Detail::Text(text) => Cow::Borrowed(text),
            _ => {
                let mut text = String::with_capacity(self.detail_len_bound());
                // Writing into a `String` cannot fail.
                let _ = self.write_detail(&mut text);
                Cow::Owned(text)
            }
        }
    }

    /// Writes [`Event::detail`] to `out`, piece by piece (no allocation of its own).
    pub fn write_detail(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let user = self.user.as_deref().unwrap_or("?");
        let license = self.license.as_deref().unwrap_or("?");
        let mut digits = itoa::Buffer::new();
        match &self.detail {
            Detail::Text(text) => out.write_str(text),
            Detail::Holds => {
                for piece in
                    ["user '", user, "' holds '", license, "' through seat ", digits.format(self.seat)]
                {
                    out.write_str(piece)?;
                }
                Ok(())
            }
            Detail::Released => {
                let why = self.why.map_or("?", ReleaseWhy::as_str);
                let seat = digits.format(self.seat);
                for piece in ["user '", user, "' released seat ", seat, " of '", license, "' (", why, ")"] {
                    out.write_str(piece)?;
                }
                Ok(())
            }
        }
    }

    /// At least the length of [`Event::detail`] in bytes.
    pub(crate) fn detail_len_bound(&self) -> usize {
        // The fixed words of the longest sentence, and a seat id's most digits.
        const WORDS: usize = "user '' released seat  of '' ()".len() + 20;
        match &self.detail {
            Detail::Text(text) => text.len(),
            _ => {
                WORDS
                    + self.user.as_deref().map_or(1, str::len)
                    + self.license.as_deref().map_or(1, str::len)
                    + self.why.map_or(1, |why| why.as_str().len())
            }
        }
    }
}

/// A listener. It runs on the thread that caused the event (see the header for which
/// one) and must not block for long: the login that caused the event waits for it.
pub type EventSink = Arc<dyn Fn(&Event<'_>) + Send + Sync>;

#[cfg(test)]
mod tests {
    use super::{Detail, Event, EventKind, EventMask};
    use crate::backend::ReleaseWhy;
    use std::borrow::Cow;

    #[test]
    fn masks_read_from_text_name_the_kinds_they_hear() {
        assert_eq!(EventMask::parse("all"), Ok(EventMask::ALL));
        assert_eq!(EventMask::parse("alerts"), Ok(EventMask::ALERTS));
        assert_eq!(EventMask::parse("none"), Ok(EventMask::NONE));
        for kind in EventKind::ALL {
            assert_eq!(EventMask::parse(kind.as_str()), Ok(EventMask::of(kind)), "{kind:?}");
        }
        let mask = EventMask::parse(" alerts , threshold").expect("valid");
        assert!(mask.hears(EventKind::ThresholdUp) && mask.hears(EventKind::ThresholdDown));
        assert!(mask.hears(EventKind::Denied) && !mask.hears(EventKind::Acquired));
        assert!(
            mask.bits() & EventMask::THRESHOLDS.bits() != 0
                && mask.bits() & EventMask::EVERY_LOGIN.bits() == 0,
            "thresholds need exact counts only"
        );
        let forced = EventMask::parse("forced_releases").expect("valid");
        assert!(forced.hears_release(ReleaseWhy::Expired) && !forced.hears_release(ReleaseWhy::Normal));
        assert!(
            forced.bits() & EventMask::EVERY_LOGIN.union(EventMask::THRESHOLDS).bits() == 0,
            "forced releases need no exact count"
        );
        assert!(EventMask::parse("acquired").expect("valid").bits() & EventMask::EVERY_LOGIN.bits() != 0);
        assert!(EventMask::parse("released").expect("valid").hears_release(ReleaseWhy::Normal));
        for bad in ["", "al", "ALL", "acquired,", "denied;warning", "threshold_sideways"] {
            let e = EventMask::parse(bad).expect_err(bad);
            assert!(e.contains("names no event") && e.contains("forced_releases"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_owned_event_keeps_its_names_and_sentence_after_the_call() {
        let (license, user) = (String::from("callcenter"), String::from("alice"));
        let heard = Event {
            kind: EventKind::Released,
            why: Some(ReleaseWhy::Admin),
            denial: None,
            license: Some(Cow::Borrowed(&license)),
            user: Some(Cow::Borrowed(&user)),
            seat: 42,
            used: 1,
            limit: 2,
            threshold_percent: 0,
            time_unix_ms: 5,
            detail: Detail::Released,
            requires: None,
            tenant: Some(Cow::Borrowed("acme")),
        };
        let kept: Event<'static> = heard.clone().into_owned();
        drop(heard);
        drop((license, user));
        assert!(matches!(kept.license, Some(Cow::Owned(ref l)) if l == "callcenter"));
        assert_eq!((kept.user.as_deref(), kept.tenant.as_deref()), (Some("alice"), Some("acme")));
        assert_eq!((kept.seat, kept.used, kept.limit, kept.time_unix_ms), (42, 1, 2, 5));
        assert_eq!(kept.detail(), "user 'alice' released seat 42 of 'callcenter' (admin)");
    }

    #[test]
    fn bits_outside_the_kinds_are_refused() {
        assert_eq!(EventMask::from_bits(EventMask::ALL.bits()), Some(EventMask::ALL));
        assert_eq!(EventMask::from_bits(1), None, "bit 0 names no kind");
        assert_eq!(EventMask::from_bits(1 << 13), None);
        assert_eq!(
            EventMask::ALERTS.union(EventMask::EVERY_LOGIN).union(EventMask::THRESHOLDS),
            EventMask::ALL
        );
    }
}
