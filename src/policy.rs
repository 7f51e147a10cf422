//! Entitlement policy over time: the emergency window and its state file, expiry of
//! license types and of the whole license, support dates and early warnings.
//!
//! Everything here takes "now" as an argument (Unix seconds from the engine's clock),
//! so tests move time without sleeping.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, Date, OnExpiry};
use crate::error::Error;
use crate::signed::SignedLicense;
use crate::types::TypeSet;

/// The state file's name inside `state_dir`.
pub const STATE_FILE: &str = "seatgate-state.json";
const STATE_FORMAT: u32 = 1;

/// What must survive a restart: whether the emergency window was used, and when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmergencyState {
    /// When the last window opened and when it ends (Unix seconds).
    pub opened_at: Option<i64>,
    pub ends_at: Option<i64>,
    /// The extra seats it gave to each affected type.
    pub seats: u32,
    /// The permanent limit of each affected type when it was opened, by type name: a
    /// new window needs one of them to have grown.
    pub permanent_limits: BTreeMap<String, u32>,
    /// How many windows were opened in this installation's life.
    pub activations: u32,
}

impl EmergencyState {
    /// Whether the window is open at `now`.
    #[inline]
    pub fn open_at(&self, now: i64) -> bool {
        matches!((self.opened_at, self.ends_at), (Some(from), Some(to)) if from <= now && now < to)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    format: u32,
    /// Free text for a person who opens the file.
    #[serde(default)]
    note: String,
    emergency: EmergencyState,
    /// FNV-1a of the emergency state's canonical JSON: a file cut short or edited by
    /// hand is refused, never taken as "no emergency used".
    check: String,
}

fn checksum(state: &EmergencyState) -> String {
    let text = serde_json::to_string(state).unwrap_or_default();
    format!("{:016x}", crate::config::fnv1a(&[&text]))
}

/// The state file of one installation, in `state_dir`.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
}

impl StateStore {
    pub fn new(dir: &Path) -> StateStore {
        StateStore { dir: dir.to_path_buf() }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// Reads the state. A missing file is the documented first-start state (no
    /// emergency used yet), and is created at once so that it exists from then on; a
    /// file that cannot be read or does not check out is an error naming the file.
    pub fn load(&self) -> Result<EmergencyState, Error> {
        let path = self.path();
        match fs::read(&path) {
            Ok(bytes) => parse_state(&bytes, &path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !self.dir.is_dir() {
                    return Err(Error::State(format!(
                        "state_dir {} does not exist (or is not a folder): create it, writable by the host's user",
                        self.dir.display()
                    )));
                }
                let state = EmergencyState::default();
                self.save(&state)?;
                Ok(state)
            }
            Err(e) => Err(Error::State(format!("cannot read state file {}: {e}", path.display()))),
        }
    }

    /// Writes the state atomically: a temporary file, fsync, rename over the old one,
    /// fsync of the folder. A crash leaves either the old file or the new one.
    pub fn save(&self, state: &EmergencyState) -> Result<(), Error> {
        let path = self.path();
        let fail = |what: &str, e: std::io::Error| {
            Error::State(format!("cannot write state file {} ({what}): {e}", path.display()))
        };
        let file = StateFile {
            format: STATE_FORMAT,
            note: "seatgate entitlement state: do not edit; a changed file is refused".into(),
            emergency: state.clone(),
            check: checksum(state),
        };
        let text = serde_json::to_string_pretty(&file).map_err(|e| Error::State(e.to_string()))?;
        let tmp = self.dir.join(format!(".{STATE_FILE}.{}.tmp", std::process::id()));
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| fail("create", e))?;
        out.write_all(text.as_bytes()).map_err(|e| fail("write", e))?;
        out.sync_all().map_err(|e| fail("fsync", e))?;
        drop(out);
        fs::rename(&tmp, &path).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            fail("rename", e)
        })?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    /// Runs `f` with the state under an exclusive lock shared by every process of
    /// the installation (`flock` on a lock file next to the state), saving what it
    /// returns.
    pub fn update<T>(
        &self,
        f: impl FnOnce(&mut EmergencyState) -> Result<T, Error>,
    ) -> Result<(EmergencyState, T), Error> {
        let lock_path = self.dir.join(format!(".{STATE_FILE}.lock"));
        let lock = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::State(format!("cannot open lock file {}: {e}", lock_path.display())))?;
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| Error::State(format!("cannot lock {}: {e}", lock_path.display())))?;
        let mut state = self.load()?;
        let out = f(&mut state)?;
        self.save(&state)?;
        drop(lock);
        Ok((state, out))
    }

    /// A cheap fingerprint of the file (modification time and size), so that a
    /// change made by another process or the CLI is noticed.
    pub fn stamp(&self) -> Option<(std::time::SystemTime, u64)> {
        let meta = fs::metadata(self.path()).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

fn parse_state(bytes: &[u8], path: &Path) -> Result<EmergencyState, Error> {
    let corrupt = |why: String| {
        Error::State(format!(
            "state file {} is corrupt ({why}); restore it from a backup. Deleting it would forget that an emergency window was used, so seatgate will not guess",
            path.display()
        ))
    };
    let file: StateFile = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    if file.format != STATE_FORMAT {
        return Err(corrupt(format!("format {} is not {STATE_FORMAT}", file.format)));
    }
    if file.check != checksum(&file.emergency) {
        return Err(corrupt("its check value does not match its content".into()));
    }
    Ok(file.emergency)
}

/// When a license type, or the whole license, ends: the earliest of the type's own
/// `valid_until`, the license's and the signed license's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    pub date: Date,
    pub on_expiry: OnExpiry,
    /// Whether the whole license (not the type alone) ends then.
    pub whole: bool,
}

/// The end of the type in `slot` (`None`: it never ends).
pub fn expiry_of(config: &Config, slot: usize, signed_until: Option<Date>) -> Option<Expiry> {
    let l = config.licenses.get(slot)?;
    let whole = [config.licensee.valid_until, signed_until].into_iter().flatten().min();
    match (l.valid_until, whole) {
        (Some(own), Some(w)) if own < w => Some(Expiry { date: own, on_expiry: l.on_expiry, whole: false }),
        (_, Some(w)) => Some(Expiry { date: w, on_expiry: l.on_expiry, whole: true }),
        (Some(own), None) => Some(Expiry { date: own, on_expiry: l.on_expiry, whole: false }),
        (None, None) => None,
    }
}

/// What the policy says at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Types that refuse new logins (expired), and among them those whose holders
    /// must go (`on_expiry = "revoke"`).
    pub expired: TypeSet,
    pub revoke: TypeSet,
    /// The next instant (Unix seconds) at which the verdict may change.
    pub next_change: i64,
    /// Warnings due now, each with a stable key so it is sent once, and the type it
    /// is about (`None`: the whole license, support, the emergency window).
    pub warnings: Vec<(String, String, Option<usize>)>,
}

/// The policy's verdict at `now` for a config (the types of the file).
pub fn evaluate(
    config: &Config,
    now: i64,
    signed_until: Option<Date>,
    signed_support: Option<Date>,
    emergency: &EmergencyState,
) -> Verdict {
    let mut v = Verdict { next_change: i64::MAX, ..Verdict::default() };
    let today = Date::from_unix(now).days_since_epoch();
    let warn = i64::try_from(config.licensee.warn_before.as_secs()).unwrap_or(i64::MAX);
    let mut later = |t: i64| {
        if t > now {
            v.next_change = v.next_change.min(t);
        }
    };
    for (slot, _) in config.active() {
        if let Some(e) = expiry_of(config, slot, signed_until) {
            later(e.date.end_unix());
            later(e.date.end_unix().saturating_sub(warn));
        }
    }
    if let Some(end) = emergency.ends_at {
        later(end);
        later(end.saturating_sub(warn.min(3 * 86_400)));
    }
    let support = [config.licensee.support_until, signed_support].into_iter().flatten().min();
    if let Some(s) = support {
        later(s.end_unix());
        later(s.end_unix().saturating_sub(warn));
    }
    let mut whole_warned = false;
    for (slot, l) in config.active() {
        let Some(e) = expiry_of(config, slot, signed_until) else { continue };
        let end = e.date.end_unix();
        if now >= end {
            v.expired.insert(slot);
            if e.on_expiry == OnExpiry::Revoke {
                v.revoke.insert(slot);
            }
        } else if now >= end.saturating_sub(warn) {
            let days = e.date.days_since_epoch() - today;
            if e.whole {
                if !whole_warned {
                    whole_warned = true;
                    v.warnings.push((
                        format!("license-ends:{}", e.date),
                        format!(
                            "the license ends on {}, in {days} days: renew it before new logins are refused",
                            e.date
                        ),
                        None,
                    ));
                }
            } else {
                v.warnings.push((
                    format!("type-ends:{}:{}", l.name, e.date),
                    format!(
                        "license type '{}' ends on {}, in {days} days: renew it before new logins are refused",
                        l.name, e.date
                    ),
                    Some(slot),
                ));
            }
        }
    }
    if let Some(s) = support {
        let end = s.end_unix();
        if now >= end {
            v.warnings.push((
                format!("support-ended:{s}"),
                format!("support ended on {s}: nothing is blocked, but updates and help need a new support subscription"),
                None,
            ));
        } else if now >= end.saturating_sub(warn) {
            let days = s.days_since_epoch() - today;
            v.warnings.push((
                format!("support-ends:{s}"),
                format!("support ends on {s}, in {days} days"),
                None,
            ));
        }
    }
    if let (true, Some(end)) = (emergency.open_at(now), emergency.ends_at)
        && now >= end.saturating_sub(warn.min(3 * 86_400))
    {
        let hours = (end - now + 3_599) / 3_600;
        v.warnings.push((
            format!("emergency-ends:{end}"),
            format!(
                "the emergency window ends in {hours} hours: holders beyond the permanent limit will then be released"
            ),
            None,
        ));
    }
    v
}

/// Reads and verifies the vendor-signed license at `path` with the trusted keys.
pub fn load_signed(path: &Path, now: std::time::SystemTime) -> Result<SignedLicense, Error> {
    SignedLicense::load(path, &crate::signed::trusted_keys(), crate::signed::date_of(now))
        .map_err(|e| Error::LicenseFile(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_days_round_trip() {
        for days in [-1000i64, 0, 59, 60, 10_957, 20_000, 30_000] {
            let d = Date::from_unix(days * 86_400 + 3_600);
            assert_eq!(d.days_since_epoch(), days, "{d}");
        }
        assert_eq!(
            Date::parse("2027-12-31").unwrap().end_unix(),
            Date::parse("2028-01-01").unwrap().end_unix() - 86_400
        );
    }

    #[test]
    fn state_file_round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("seatgate-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let store = StateStore::new(&dir);
        assert_eq!(store.load().unwrap(), EmergencyState::default());
        assert!(store.path().exists(), "a first start creates the file");
        let (state, ()) = store
            .update(|s| {
                s.opened_at = Some(100);
                s.ends_at = Some(200);
                s.activations = 1;
                s.permanent_limits.insert("users".into(), 20);
                Ok(())
            })
            .unwrap();
        assert_eq!(store.load().unwrap(), state);
        // Edited by hand: refused, not reset.
        let text =
            fs::read_to_string(store.path()).unwrap().replace("\"activations\": 1", "\"activations\": 0");
        fs::write(store.path(), text).unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("corrupt") && err.contains("check value"), "{err}");
        // Cut short.
        fs::write(store.path(), "{\"format\": 1, \"emergency\"").unwrap();
        assert!(store.load().unwrap_err().to_string().contains("corrupt"));
        let _ = fs::remove_dir_all(&dir);
    }
}
