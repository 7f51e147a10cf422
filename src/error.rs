//! The engine's error type. The C layer maps each variant to one status code.

use std::fmt;
use std::sync::Arc;

use crate::backend::ReleaseWhy;
use crate::config::{ConfigError, Date};
use crate::types::SeatId;

/// Why a license type refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenialReason {
    /// Every seat is taken.
    Full,
    /// The type has no seats at all (limit 0).
    NoSeats,
    /// More seats are held than the limit allows (the limit was lowered by a reload);
    /// new logins wait until use falls under the limit.
    OverLimit,
    /// The type requires another type that the user neither holds nor requests.
    MissingRequirement,
    /// The free seats of the type are reserved for profiles the request does not
    /// name (`reserve = { ... }` of a profile).
    Reserved,
    /// The request's profile is capped at a number of seats of the type
    /// (`cap = { ... }` of a profile), and its members hold them all.
    Capped,
    /// The type (or the whole license) passed its `valid_until` date.
    Expired,
}

impl DenialReason {
    /// The stable name used in events, the audit log and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialReason::Full => "full",
            DenialReason::NoSeats => "no_seats",
            DenialReason::OverLimit => "over_limit",
            DenialReason::MissingRequirement => "missing_requirement",
            DenialReason::Reserved => "reserved",
            DenialReason::Capped => "capped",
            DenialReason::Expired => "expired",
        }
    }
}

/// Why a request was refused: which license type, and why. Programs read the fields;
/// people read the `Display` sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The license type that refused.
    pub license: Arc<str>,
    /// Seats in use when the request was refused.
    pub used: u32,
    pub limit: u32,
    pub reason: DenialReason,
    /// For [`DenialReason::MissingRequirement`]: the type that is missing.
    pub requires: Option<Arc<str>>,
    /// For [`DenialReason::Capped`]: the capped profile. For
    /// [`DenialReason::Reserved`]: the profiles holding the reservations
    /// (comma-separated).
    pub profile: Option<Arc<str>>,
}

impl Denial {
    pub(crate) fn limit(license: Arc<str>, used: u32, limit: u32) -> Denial {
        let reason = if limit == 0 {
            DenialReason::NoSeats
        } else if used > limit {
            DenialReason::OverLimit
        } else {
            DenialReason::Full
        };
        Denial { license, used, limit, reason, requires: None, profile: None }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, used, limit) = (&self.license, self.used, self.limit);
        match self.reason {
            DenialReason::Full => write!(f, "license type '{name}' is full ({used}/{limit})"),
            DenialReason::NoSeats => {
                write!(f, "license type '{name}' is full ({used}/{limit}): no seats are licensed")
            }
            DenialReason::OverLimit => write!(
                f,
                "license type '{name}' is full ({used}/{limit}): over its limit since the limit was lowered; new logins wait until use falls under {limit}"
            ),
            DenialReason::MissingRequirement => write!(
                f,
                "license type '{name}' requires '{}', which the user neither holds nor requests",
                self.requires.as_deref().unwrap_or("?")
            ),
            DenialReason::Reserved => write!(
                f,
                "license type '{name}' has no free seat for this request ({used}/{limit} in use): the seats left are reserved for profile '{}'",
                self.profile.as_deref().unwrap_or("?")
            ),
            DenialReason::Capped => write!(
                f,
                "profile '{}' is capped at {limit} '{name}' seats ({used} in use by its members)",
                self.profile.as_deref().unwrap_or("?")
            ),
            DenialReason::Expired => write!(f, "license type '{name}' expired: new logins are refused"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A license type in the request is full (or misses a type it requires); nothing
    /// was taken.
    LimitReached(Denial),
    /// A name in the profile list is neither a profile nor a license type.
    UnknownProfile(String),
    /// A malformed request (empty user, over-long label, empty list item...).
    InvalidArgument(String),
    /// The seat handle is not held (never issued, already released, or from an earlier init).
    UnknownSeat(SeatId),
    /// The seat's lease ran out before this call: it has been reclaimed, and the handle
    /// is unknown from now on.
    SeatExpired(SeatId),
    /// The seat handle was released by seatgate or an admin, not by its holder: by a
    /// dependency cascade or an admin action.
    SeatReleased(SeatId, ReleaseWhy),
    /// The user holds no seat.
    UnknownUser(String),
    /// The configuration did not load.
    Config(ConfigError),
    /// The backend could not do its part (Redis unreachable or too slow with
    /// `on_backend_error = "deny"`, a shared table that cannot be opened). Nothing was
    /// taken or freed.
    Backend(String),
    /// The shared table has no room for another seat handle (`[backend] capacity`).
    /// Nothing was taken.
    TableFull { capacity: u32, path: String },
    /// A license type of the request (`license: Some`) or the whole license
    /// (`None`) passed its `valid_until` date. Nothing was taken.
    Expired { license: Option<Arc<str>>, date: Date },
    /// The request names a tenant that is neither in the config nor given limits
    /// with `set_limit`.
    UnknownTenant(String),
    /// The name is not a license type of the running configuration.
    UnknownLicenseType(String),
    /// An emergency window cannot be opened (not configured, already used, or open).
    Emergency(String),
    /// The state file (`state_dir`) cannot be read or written, or is corrupt.
    State(String),
    /// The vendor-signed license file is missing, tampered with, signed by an
    /// untrusted key, or expired.
    LicenseFile(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::LimitReached(d) => d.fmt(f),
            Error::UnknownProfile(name) => write!(f, "unknown profile or license type '{name}'"),
            Error::InvalidArgument(msg) => f.write_str(msg),
            Error::UnknownSeat(seat) => write!(
                f,
                "seat {seat} is not held (already released, never issued, or from before a shutdown)"
            ),
            Error::SeatExpired(seat) => write!(
                f,
                "seat {seat} is not held: its lease ran out (it was not renewed with license_touch in time) and it was reclaimed"
            ),
            Error::SeatReleased(seat, why) => {
                let by = match why {
                    ReleaseWhy::Dependency => "because the user gave up a license type it requires",
                    ReleaseWhy::Admin => "by an admin",
                    ReleaseWhy::Shutdown => "at shutdown",
                    ReleaseWhy::OwnerGone => "because the process that took it died",
                    ReleaseWhy::Reconciled => {
                        "because it was taken while the cluster backend was unreachable and did not fit when it came back"
                    }
                    ReleaseWhy::Expired => "because its lease ran out",
                    ReleaseWhy::Normal => "by its holder",
                    ReleaseWhy::EmergencyExpired => "because the emergency window that gave its seat ended",
                    ReleaseWhy::LicenseExpired => "because its license expired (on_expiry = \"revoke\")",
                };
                write!(f, "seat {seat} is not held: it was released {by} ({})", why.as_str())
            }
            Error::UnknownUser(user) => write!(f, "user '{user}' holds no seat"),
            Error::Config(e) => e.fmt(f),
            Error::Backend(msg) => f.write_str(msg),
            Error::TableFull { capacity, path } => write!(
                f,
                "the shared seat table {path} is full: all {capacity} seat handles are in use; raise [backend] capacity (and restart every process of the installation)"
            ),
            Error::Expired { license: Some(name), date } => {
                write!(f, "license type '{name}' expired: it was valid until {date}; new logins are refused")
            }
            Error::Expired { license: None, date } => {
                write!(f, "the license expired: it was valid until {date}; new logins are refused")
            }
            Error::UnknownTenant(name) => write!(
                f,
                "unknown tenant '{name}': declare it as [tenants.{name}] or give it limits with license_set_limit"
            ),
            Error::UnknownLicenseType(name) => {
                write!(f, "'{name}' is not a license type of the running configuration")
            }
            Error::Emergency(msg) | Error::State(msg) | Error::LicenseFile(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}
