//! seatgate: per-type license seat limits for telephony and call-center servers.
//!
//! The engine ([`Engine`]) is safe Rust: load a [`Config`], call
//! [`Engine::try_acquire`] at login and [`Engine::release`] at logout, read
//! [`Engine::report`]. The C ABI in [`ffi`] (`include/seatgate.h`) is a thin layer
//! over one global engine.

pub mod audit;
pub mod backend;
pub mod clock;
pub mod config;
pub mod engine;
pub mod error;
pub mod events;
pub mod ffi;
pub mod policy;
mod reaper;
pub mod report;
pub mod signed;
pub mod text;
pub mod types;

pub use backend::ReleaseWhy;
pub use config::{Config, ConfigError, CountMode, Lint};
pub use engine::{Engine, ReloadSummary, Request, Usage};
pub use error::{Denial, DenialReason, Error};
pub use events::{Event, EventKind, EventMask};
pub use report::{Page, Report};
pub use types::{SeatId, TypeSet};
