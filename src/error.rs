//! The engine's error type. The C layer maps each variant to one status code.

use std::fmt;
use std::sync::Arc;

use crate::config::ConfigError;
use crate::types::SeatId;

/// Why a request was refused because a license type is full. Programs read the fields;
/// people read the `Display` sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// The license type that ran out.
    pub license: Arc<str>,
    /// Seats in use when the request was refused.
    pub used: u32,
    pub limit: u32,
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "license type '{}' is full ({}/{})", self.license, self.used, self.limit)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A license type in the request is full; nothing was taken.
    LimitReached(Denial),
    /// A name in the profile list is neither a profile nor a license type.
    UnknownProfile(String),
    /// A malformed request (empty user, over-long label, empty list item...).
    InvalidArgument(String),
    /// The seat handle is not held (never issued, already released, or from an earlier init).
    UnknownSeat(SeatId),
    /// The configuration did not load.
    Config(ConfigError),
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
            Error::Config(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Error {
        Error::Config(e)
    }
}
