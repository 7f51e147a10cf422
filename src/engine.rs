//! One engine value: a validated config, a seat table behind the backend boundary, and
//! a clock. The C API keeps one in a global; Rust code builds as many as it likes.

use std::path::Path;
use std::sync::Arc;

use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, SeatRequest};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Lint};
use crate::error::Error;
use crate::report::{Page, Report};
use crate::types::{MAX_LABEL_LEN, MAX_PROFILES_LEN, SeatId, TypeSet};

/// A login request: who, which profiles (comma-separated profile or license-type
/// names), and optional labels shown in the report.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub user: &'a str,
    pub profiles: &'a str,
    /// Extension or device label (the report's "extension" column).
    pub extension: Option<&'a str>,
    /// Session label (for example a SIP Call-ID or a CRM session id).
    pub session: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(user: &'a str, profiles: &'a str) -> Request<'a> {
        Request { user, profiles, extension: None, session: None }
    }
    pub fn extension(mut self, extension: &'a str) -> Request<'a> {
        self.extension = Some(extension);
        self
    }
    pub fn session(mut self, session: &'a str) -> Request<'a> {
        self.session = Some(session);
        self
    }
}

/// Use of one license type at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub name: Arc<str>,
    pub used: u32,
    pub limit: u32,
}

pub struct Engine {
    config: Arc<Config>,
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config.source)
            .field("backend", &self.backend.kind())
            .finish()
    }
}

/// Whether `s` holds a control character (Unicode Cc: U+0000-U+001F, U+007F-U+009F),
/// by bytes: in UTF-8 the C1 range is 0xC2 0x80..=0x9F.
#[inline]
fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20 || c == 0x7f || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

fn check_label(what: &str, value: &str) -> Result<(), Error> {
    if value.trim().is_empty() {
        return Err(Error::InvalidArgument(format!("{what} is empty or blank")));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(Error::InvalidArgument(format!(
            "{what} is {} bytes long; the maximum is {MAX_LABEL_LEN}",
            value.len()
        )));
    }
    if has_control(value) {
        return Err(Error::InvalidArgument(format!("{what} contains a control character")));
    }
    Ok(())
}

impl Engine {
    /// Loads and validates `path`, with an empty in-memory seat table.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Engine, Error> {
        Ok(Engine::new(Config::from_file(path)?))
    }

    /// An engine over an already validated config, with the memory backend.
    pub fn new(config: Config) -> Engine {
        let backend = Box::new(MemoryBackend::new(config.licenses.len()));
        Engine { config: Arc::new(config), backend, clock: Arc::new(SystemClock) }
    }

    /// Replaces the clock (tests use [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.clock = clock;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn lints(&self) -> &[Lint] {
        &self.config.lints
    }

    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The union of the seat sets of a comma-separated list of profile or type names.
    pub fn resolve(&self, profiles: &str) -> Result<TypeSet, Error> {
        if profiles.len() > MAX_PROFILES_LEN {
            return Err(Error::InvalidArgument(format!(
                "profile list is {} bytes long; the maximum is {MAX_PROFILES_LEN}",
                profiles.len()
            )));
        }
        if has_control(profiles) {
            return Err(Error::InvalidArgument("profile list contains a control character".into()));
        }
        // The common request names one profile exactly as configured.
        if let Some(set) = self.config.resolve_name(profiles) {
            return Ok(set);
        }
        let mut set = TypeSet::EMPTY;
        for name in profiles.split(',') {
            let name = name.trim_matches(' ');
            if name.is_empty() {
                return Err(Error::InvalidArgument(format!(
                    "profile list '{profiles}' has an empty name; separate names with single commas"
                )));
            }
            set = set.union(
                self.config.resolve_name(name).ok_or_else(|| Error::UnknownProfile(name.to_string()))?,
            );
        }
        Ok(set)
    }

    /// Takes one seat of every license type the request's profiles imply, all or
    /// nothing, and returns a new seat handle.
    pub fn try_acquire(&self, req: &Request<'_>) -> Result<SeatId, Error> {
        check_label("user name", req.user)?;
        if let Some(ext) = req.extension {
            check_label("extension", ext)?;
        }
        if let Some(session) = req.session {
            check_label("session label", session)?;
        }
        let types = self.resolve(req.profiles)?;
        let seat_request = SeatRequest {
            user: req.user,
            types,
            extension: req.extension,
            session: req.session,
            since: self.clock.now(),
        };
        self.backend.try_acquire(&self.config, &seat_request)
    }

    /// Gives back one seat handle. The user's `count = "user"` seats are freed with
    /// their last handle.
    pub fn release(&self, seat: SeatId) -> Result<(), Error> {
        if seat == 0 {
            return Err(Error::UnknownSeat(0));
        }
        self.backend.release(seat)
    }

    /// Current use of every license type, in config order.
    pub fn usage(&self) -> Vec<Usage> {
        self.config
            .licenses
            .iter()
            .enumerate()
            .map(|(i, l)| Usage { name: l.name.clone(), used: self.backend.used(i), limit: l.limit })
            .collect()
    }

    /// Current use of one license type.
    pub fn usage_of(&self, license: &str) -> Option<Usage> {
        let i = self.config.license_index(license)?;
        let l = &self.config.licenses[i];
        Some(Usage { name: l.name.clone(), used: self.backend.used(i), limit: l.limit })
    }

    /// A snapshot report: counts, holders (one page of them) and warnings.
    pub fn report(&self, page: Page) -> Report {
        Report::build(
            &self.config,
            self.backend.kind(),
            &self.usage(),
            self.backend.holders(),
            self.clock.now(),
            page,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_by_bytes_match_unicode() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(super::has_control(&s), c.is_control(), "U+{:04X}", c as u32);
        }
    }
}
