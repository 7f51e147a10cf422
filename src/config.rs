//! The TOML configuration: parsing, validation and lints.
//!
//! The schema is part of the product's contract (see `examples/seats.toml`). Every
//! error names the file, the line and the problem; lints are warnings that never stop
//! a load but are shown in the report and through the C API.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::types::{MAX_LICENSE_TYPES, MAX_NAME_LEN, TypeSet};

/// How a license type counts its seats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CountMode {
    /// One seat per user, however many sessions (devices, logins) the user holds.
    User,
    /// One seat per session handle (concurrent-session licenses such as 1C integration).
    Session,
}

impl CountMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CountMode::User => "user",
            CountMode::Session => "session",
        }
    }
}

/// A calendar date (`support_until`), kept as a proleptic Gregorian Y-M-D.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

impl Date {
    /// Parses `YYYY-MM-DD`, rejecting impossible days such as 2027-02-30.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u32> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
        };
        let (year, month, day) = (num(0..4)? as i32, num(5..7)?, num(8..10)?);
        let date = Date { year, month, day };
        ((1..=12).contains(&month) && day >= 1 && day <= date.days_in_month()).then_some(date)
    }

    fn days_in_month(&self) -> u32 {
        match self.month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            _ if (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0 => 29,
            _ => 28,
        }
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    pub fn days_since_epoch(&self) -> i64 {
        let y = i64::from(self.year) - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Who the license was issued to; shown at the top of every report.
#[derive(Debug, Clone)]
pub struct Licensee {
    pub name: Option<String>,
    /// End of the support subscription: after it nothing is blocked, a warning is raised.
    pub support_until: Option<Date>,
    /// The whole license ends after this day (UTC).
    pub valid_until: Option<Date>,
    /// What happens to holders when the license (or a type without its own
    /// `on_expiry`) ends.
    pub on_expiry: OnExpiry,
    /// How long before a `valid_until` (or `support_until`) the early warning comes.
    pub warn_before: Duration,
}

impl Default for Licensee {
    fn default() -> Self {
        Licensee {
            name: None,
            support_until: None,
            valid_until: None,
            on_expiry: OnExpiry::DenyNew,
            warn_before: DEFAULT_WARN_BEFORE,
        }
    }
}

/// Default early warning before an end date: two weeks.
pub const DEFAULT_WARN_BEFORE: Duration = Duration::from_secs(14 * 86_400);

/// What happens when a license type (or the whole license) passes `valid_until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExpiry {
    /// Holders keep their seats; new logins are refused with `Error::Expired`.
    DenyNew,
    /// Holders are released (`license_expired`), and new logins are refused.
    Revoke,
}

impl OnExpiry {
    pub fn as_str(self) -> &'static str {
        match self {
            OnExpiry::DenyNew => "deny_new",
            OnExpiry::Revoke => "revoke",
        }
    }
}

impl Date {
    /// The first instant after this day (UTC), as seconds since the Unix epoch: a
    /// `valid_until` day is valid through its last second.
    pub fn end_unix(&self) -> i64 {
        (self.days_since_epoch() + 1) * 86_400
    }

    /// The UTC day of a Unix time.
    pub fn from_unix(secs: i64) -> Date {
        Date::from_days(secs.div_euclid(86_400))
    }

    /// The inverse of [`Date::days_since_epoch`] (Howard Hinnant's `civil_from_days`).
    pub fn from_days(days: i64) -> Date {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
        Date { year, month, day }
    }
}

/// `[emergency]`: extra seats a vendor allows for sudden growth, opened once with
/// `license_emergency_activate` and closed when the window ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmergencyConfig {
    /// Extra seats of each affected type while the window is open.
    pub seats: u32,
    /// The affected types (slots). Default: the type that counts users (per user,
    /// taken by every profile), else every `count = "user"` type.
    pub types: TypeSet,
    /// How long a window stays open.
    pub duration: Duration,
}

/// Where a type's limit came from, for the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitSource {
    /// `[licenses.NAME] limit` of the file.
    #[default]
    File,
    /// `[tenants.NAME.licenses]` of the file.
    TenantFile,
    /// `license_set_limit` at run time (kept across reloads).
    Runtime,
}

impl LimitSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitSource::File => "config",
            LimitSource::TenantFile => "tenant config",
            LimitSource::Runtime => "set at run time",
        }
    }
}

/// How a type's effective limit was made: `min(base, signed_cap) + emergency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LimitOrigin {
    pub source: LimitSource,
    pub base: u32,
    /// The vendor-signed limit, when a signed license is configured.
    pub signed_cap: Option<u32>,
    /// Extra seats of an open emergency window.
    pub emergency: u32,
}

/// A seat pool seatgate adds to carry a profile's reservation or cap: a hidden license
/// type taken in the same all-or-nothing step as the type it belongs to, so the rule is
/// enforced by the seat table itself on every backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolKind {
    /// The seats of the base type that no reservation holds: every request that does
    /// not draw on a reservation of its own takes one of these.
    Shared,
    /// Seats of the base type only members of `profile` can take.
    Reserve { profile: Arc<str>, seats: u32 },
    /// The most seats of the base type the members of `profile` may hold.
    Cap { profile: Arc<str>, seats: u32 },
}

/// A hidden pool type: which type it belongs to, and what it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Slot of the license type it belongs to.
    pub base: usize,
    pub kind: PoolKind,
}

/// One tenant (`[tenants.NAME]`) of a hosted installation: its own seat pool with its
/// own limits, and optionally its own profiles.
#[derive(Debug, Clone)]
pub struct TenantDef {
    pub name: Arc<str>,
    /// Limits by slot from `[tenants.NAME.licenses]`; other types use the global limit.
    pub limits: Vec<(usize, u32)>,
    /// Its own profiles (they replace the global ones for this tenant).
    pub profiles: Option<Arc<ProfileSet>>,
    pub description: Option<String>,
    pub line: usize,
}

/// Profiles and every name a request may use (profiles and bare license types), to
/// their seat sets.
#[derive(Debug, Clone, Default)]
pub struct ProfileSet {
    pub profiles: Vec<Profile>,
    names: crate::text::NameTable,
}

/// What the engine feeds [`Config::effective`]: the limits that do not come from the
/// file.
pub struct LimitInputs<'a> {
    /// The tenant whose view to build (`None`: the default tenant).
    pub tenant: Option<&'a TenantDef>,
    /// Limits set at run time for this tenant, by type name.
    pub runtime: &'a dyn Fn(&str) -> Option<u32>,
    /// Limits of the vendor-signed license, by type name (`None`: no signed license).
    pub signed: Option<&'a BTreeMap<String, u32>>,
    /// Extra seats while an emergency window is open.
    pub emergency: u32,
}

/// Whether a type slot belongs to the running configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// A type of the running configuration.
    Active,
    /// A type removed by a reload while seats of it were (or may have been) held: its
    /// holders can still release, nobody can acquire it, and the report lists it.
    Orphaned,
    /// An unused slot between others.
    Vacant,
}

/// One license type (`[licenses.NAME]`).
#[derive(Debug, Clone)]
pub struct LicenseType {
    pub name: Arc<str>,
    pub limit: u32,
    pub description: Option<String>,
    pub count: CountMode,
    /// Lease: a seat not renewed (`touch`) for this long is reclaimed. `None`: held
    /// until released.
    pub lease: Option<Duration>,
    /// Grace window: after a `count = "user"` seat is released it stays reserved for
    /// the same user this long. `None`: freed at once.
    pub linger: Option<Duration>,
    /// Types a user must hold (or request at the same time) to take this one.
    pub requires: TypeSet,
    /// Percentage of the limit at which threshold events fire (0: off).
    pub alert_at: u8,
    pub state: SlotState,
    /// Line of the `[licenses.NAME]` header, for messages.
    pub line: usize,
    /// The type ends after this day (UTC).
    pub valid_until: Option<Date>,
    pub on_expiry: OnExpiry,
    /// Set for the hidden pools that carry reservations and caps.
    pub pool: Option<Pool>,
    /// How `limit` was made (the effective limit is what backends enforce).
    pub origin: LimitOrigin,
}

impl LicenseType {
    fn vacant() -> LicenseType {
        LicenseType {
            name: Arc::from(""),
            limit: 0,
            description: None,
            count: CountMode::User,
            lease: None,
            linger: None,
            requires: TypeSet::EMPTY,
            alert_at: 0,
            state: SlotState::Vacant,
            line: 0,
            valid_until: None,
            on_expiry: OnExpiry::DenyNew,
            pool: None,
            origin: LimitOrigin::default(),
        }
    }

    /// Whether this is a hidden pool of a reservation or cap (not a type of the file).
    #[inline]
    pub fn is_pool(&self) -> bool {
        self.pool.is_some()
    }

    /// Seats in use at which the threshold counts as reached (`None`: no threshold).
    #[inline]
    pub fn alert_seats(&self) -> Option<u32> {
        if self.alert_at == 0 || self.limit == 0 {
            return None;
        }
        // ceil(limit * pct / 100), at least 1
        let seats = (u64::from(self.limit) * u64::from(self.alert_at)).div_ceil(100).max(1);
        Some(seats as u32)
    }
}

/// `[audit]`: the append-only log of acquires, releases, denials and reloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    pub path: PathBuf,
}

/// `[reaper]`: the background thread that reclaims expired leases and linger windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaperConfig {
    pub enabled: bool,
    pub interval: Duration,
}

impl Default for ReaperConfig {
    fn default() -> Self {
        ReaperConfig { enabled: true, interval: Duration::from_secs(1) }
    }
}

/// `[backend]`: where seats are counted.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BackendConfig {
    /// The in-process table (default): one process, any number of threads.
    #[default]
    Memory,
    /// A table in a shared memory-mapped file: every process of one host.
    Shm(ShmConfig),
    /// A Redis server: every node of a cluster.
    Redis(RedisConfig),
}

impl BackendConfig {
    /// The `kind` name as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            BackendConfig::Memory => "memory",
            BackendConfig::Shm(_) => "shm",
            BackendConfig::Redis(_) => "redis",
        }
    }
}

/// `[backend] kind = "shm"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShmConfig {
    /// The mapped file, usually under `/dev/shm`; created with mode 0600.
    pub path: PathBuf,
    /// Most seat handles held at once; a full table refuses with a clear error.
    pub capacity: u32,
    /// Reclaim the handles of a process that died (kill -9) without waiting for their
    /// lease. Turn off for hosts whose handles outlive the process that took them
    /// (PHP-FPM: logout in another worker than login, workers recycled).
    pub reclaim_dead_owners: bool,
}

/// What a node does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnBackendError {
    /// Refuse logins with `LICENSE_ERR_BACKEND` (a refusal that says why).
    Deny,
    /// Serve from a local table holding `local_share` percent of each limit, report
    /// the node as degraded, and reconcile when Redis is back.
    AllowLocal,
}

/// `[backend] kind = "redis"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://host:port` (or `redis://:password@host:port/db`).
    pub url: String,
    pub password: Option<String>,
    pub username: Option<String>,
    pub database: Option<u32>,
    /// Prefix of every key: one per installation sharing the server.
    pub prefix: String,
    /// This node's name in the report (default: the host name).
    pub node: Option<String>,
    pub connect_timeout: Duration,
    /// Longest a login thread waits for one Redis call.
    pub timeout: Duration,
    pub on_backend_error: OnBackendError,
    /// Percent of each limit this node may use on its own while degraded.
    pub local_share: u8,
    /// How often a degraded node tries Redis again.
    pub retry_interval: Duration,
}

/// One profile (`[profiles.NAME]`): the license types a login with it takes.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub consumes: TypeSet,
    pub description: Option<String>,
    pub line: usize,
}

/// A warning about a configuration that loads but is probably not what the admin meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// A stable, machine-readable name such as `zero-limit-consumed`.
    pub code: &'static str,
    /// The human sentence.
    pub message: String,
    /// `file:line` where the problem sits.
    pub location: String,
    /// The line alone (1-based), for sorting and for programs.
    pub line: usize,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning[{}]: {}", self.location, self.code, self.message)
    }
}

/// A configuration that failed to load: the file, the line and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem is not tied to a line (an unreadable file).
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration. Cheap to share (`Arc<Config>`), never mutated after load.
#[derive(Debug, Clone)]
pub struct Config {
    /// Unique per load in this process (clones share it): backends that map types by
    /// name cache their mapping under it.
    pub id: u64,
    /// The file it came from (or the name given to [`Config::from_toml_str`]).
    pub source: String,
    pub licensee: Licensee,
    /// License types by *slot*: a type's slot is its bit in a [`TypeSet`] and its
    /// counter in the seat table. A fresh load puts them in file order; a reload keeps
    /// every surviving type in its slot, so seats held across the reload stay counted
    /// against the same type. After a reload the vector may also hold orphaned and
    /// vacant slots: use [`Config::active`] for the types of the running file.
    pub licenses: Vec<LicenseType>,
    /// Slots of the active types, in file order.
    pub order: Vec<usize>,
    pub audit: Option<AuditConfig>,
    pub reaper: ReaperConfig,
    pub backend: BackendConfig,
    /// Profiles in file order, and every name a request may use (profiles and bare
    /// license types) to its seat set. Shared by the views built from this config.
    pub profiles: Arc<ProfileSet>,
    pub lints: Vec<Lint>,
    /// `[emergency]`, when configured.
    pub emergency: Option<EmergencyConfig>,
    /// `state_dir`: where the emergency state file lives.
    pub state_dir: Option<PathBuf>,
    /// `license_file`: the vendor-signed license, when configured.
    pub license_file: Option<PathBuf>,
    /// `[tenants.NAME]`, by name.
    pub tenants: Arc<BTreeMap<Arc<str>, TenantDef>>,
    /// The tenant this view serves (`None`: the default tenant).
    pub tenant: Option<Arc<str>>,
    /// Hidden pool slots: every one, and those of reservations.
    pool_types: TypeSet,
    reserve_types: TypeSet,
    user_count_types: TypeSet,
    /// Types with a lease, with `requires`, and with a linger window: the acquire path
    /// skips that work for requests that touch none of them.
    leased_types: TypeSet,
    requiring_types: TypeSet,
    lingering_types: TypeSet,
    /// Types a request may take by the express lane when it names nothing else
    /// ([`Config::express_types`]): active, not a hidden pool, no lease, no
    /// `requires`, no linger window.
    express_types: TypeSet,
}

/// The running configuration a reload starts from, so that surviving types keep their
/// slots (and their held seats).
pub struct Previous<'a> {
    pub config: &'a Config,
    /// Whether any seat of a slot is held now.
    pub in_use: &'a dyn Fn(usize) -> bool,
    /// Whether orphaned slots nobody holds may be dropped: only when no thread can
    /// still be acquiring through a configuration in which they were active.
    pub may_free: bool,
}

// ---- raw schema, exactly as written in TOML ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    state_dir: Option<Spanned<String>>,
    license_file: Option<Spanned<String>>,
    licensee: Option<RawLicensee>,
    emergency: Option<RawEmergency>,
    #[serde(default)]
    tenants: BTreeMap<Spanned<String>, RawTenant>,
    defaults: Option<RawDefaults>,
    #[serde(default)]
    licenses: BTreeMap<Spanned<String>, RawLicense>,
    #[serde(default)]
    profiles: BTreeMap<Spanned<String>, RawProfile>,
    audit: Option<RawAudit>,
    reaper: Option<RawReaper>,
    backend: Option<RawBackend>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBackend {
    kind: Spanned<String>,
    // shm
    path: Option<Spanned<String>>,
    capacity: Option<Spanned<toml::Value>>,
    reclaim_dead_owners: Option<Spanned<bool>>,
    // redis
    url: Option<Spanned<String>>,
    password: Option<Spanned<String>>,
    username: Option<Spanned<String>>,
    database: Option<Spanned<toml::Value>>,
    prefix: Option<Spanned<String>>,
    node: Option<Spanned<String>>,
    connect_timeout: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    on_backend_error: Option<Spanned<String>>,
    local_share: Option<Spanned<toml::Value>>,
    retry_interval: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    lease: Option<Spanned<String>>,
    linger: Option<Spanned<String>>,
    alert_at: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReaper {
    enabled: Option<bool>,
    interval: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicensee {
    name: Option<String>,
    support_until: Option<Spanned<RawDate>>,
    valid_until: Option<Spanned<RawDate>>,
    on_expiry: Option<Spanned<String>>,
    warn_before: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEmergency {
    seats: Option<Spanned<toml::Value>>,
    types: Option<Spanned<Vec<Spanned<String>>>>,
    duration: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    description: Option<String>,
    #[serde(default)]
    licenses: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    #[serde(default)]
    profiles: BTreeMap<Spanned<String>, RawProfile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawDate {
    Text(String),
    Toml(toml::value::Datetime),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLicense {
    limit: Spanned<toml::Value>,
    description: Option<String>,
    #[serde(default = "default_count")]
    count: CountMode,
    lease: Option<Spanned<String>>,
    linger: Option<Spanned<String>>,
    requires: Option<Spanned<Vec<Spanned<String>>>>,
    alert_at: Option<Spanned<toml::Value>>,
    valid_until: Option<Spanned<RawDate>>,
    on_expiry: Option<Spanned<String>>,
}

fn default_count() -> CountMode {
    CountMode::User
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    consumes: Spanned<Vec<Spanned<String>>>,
    description: Option<String>,
    /// Seats of a type only this profile's members can take.
    reserve: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
    /// Most seats of a type this profile's members may hold.
    cap: Option<BTreeMap<Spanned<String>, Spanned<toml::Value>>>,
}

/// Maps byte offsets to 1-based line/column for messages.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
    /// Offset of each line's first byte: a lookup is a binary search, so a config
    /// with ten thousand tenants loads in linear time.
    line_starts: Vec<usize>,
}

impl<'a> Locator<'a> {
    fn new(file: &'a str, text: &'a str) -> Locator<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(text.bytes().enumerate().filter(|&(_, b)| b == b'\n').map(|(i, _)| i + 1));
        Locator { file, text, line_starts }
    }

    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let col = offset - self.line_starts[line - 1] + 1;
        (line, col)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> ConfigError {
        let (line, column) = self.line_col(offset);
        ConfigError { file: self.file.to_string(), line, column, message: message.into() }
    }

    fn lint(&self, code: &'static str, line: usize, message: String) -> Lint {
        Lint { code, message, location: format!("{}:{}", self.file, line), line }
    }
}

/// Names must survive being written in a comma-separated profile list and in reports.
fn check_name(loc: &Locator<'_>, what: &str, name: &Spanned<String>) -> Result<(), ConfigError> {
    let n = name.get_ref();
    let ok_chars = n.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if n.is_empty() || n.len() > MAX_NAME_LEN || !ok_chars {
        return Err(loc.error(
            name.span().start,
            format!(
                "{what} name '{n}' is invalid: use 1 to {MAX_NAME_LEN} characters from A-Z a-z 0-9 _ - ."
            ),
        ));
    }
    Ok(())
}

fn parse_limit(loc: &Locator<'_>, type_name: &str, raw: &Spanned<toml::Value>) -> Result<u32, ConfigError> {
    let problem = match raw.get_ref() {
        toml::Value::Integer(n) if *n < 0 => {
            format!("limit of license type '{type_name}' is negative ({n}); use 0 or more")
        }
        toml::Value::Integer(n) => match u32::try_from(*n) {
            Ok(v) => return Ok(v),
            Err(_) => {
                format!("limit of license type '{type_name}' is too large ({n}); the maximum is {}", u32::MAX)
            }
        },
        other => format!(
            "limit of license type '{type_name}' must be a whole number, not {} `{other}`",
            other.type_str()
        ),
    };
    Err(loc.error(raw.span().start, problem))
}

fn parse_date(loc: &Locator<'_>, raw: &Spanned<RawDate>) -> Result<Date, ConfigError> {
    let text = match raw.get_ref() {
        RawDate::Text(s) => s.clone(),
        RawDate::Toml(dt) => dt.to_string(),
    };
    Date::parse(&text).ok_or_else(|| {
        loc.error(
            raw.span().start,
            format!("'{text}' is not a date; write it as YYYY-MM-DD, for example \"2027-10-31\""),
        )
    })
}

/// Longest lease or linger window accepted (a year): longer is surely a typo.
const MAX_WINDOW: Duration = Duration::from_secs(366 * 86_400);

/// Parses `"90s"`, `"2m"`, `"1h 30m"`, `"0"`; zero means "none".
fn parse_window(
    loc: &Locator<'_>,
    what: &str,
    raw: &Spanned<String>,
) -> Result<Option<Duration>, ConfigError> {
    let text = raw.get_ref().trim();
    let parsed = if text == "0" { Ok(Duration::ZERO) } else { humantime::parse_duration(text) };
    match parsed {
        Ok(d) if d > MAX_WINDOW => {
            Err(loc
                .error(raw.span().start, format!("{what} '{text}' is longer than the maximum of 366 days")))
        }
        Ok(d) if d.is_zero() => Ok(None),
        Ok(d) => Ok(Some(d)),
        Err(e) => Err(loc.error(
            raw.span().start,
            format!("{what} '{text}' is not a duration ({e}); write it like \"90s\", \"5m\" or \"1h 30m\""),
        )),
    }
}

fn parse_percent(loc: &Locator<'_>, what: &str, raw: &Spanned<toml::Value>) -> Result<u8, ConfigError> {
    match raw.get_ref() {
        toml::Value::Integer(n) if (0..=100).contains(n) => Ok(*n as u8),
        other => Err(loc.error(
            raw.span().start,
            format!("{what} must be a whole percentage from 0 (off) to 100, not `{other}`"),
        )),
    }
}

/// A path from the config: relative ones are taken from the config file's folder.
fn config_relative(source: &str, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_relative() {
        Path::new(source).parent().unwrap_or(Path::new(".")).join(path)
    } else {
        path.to_path_buf()
    }
}

/// Most license types with a linger window that the `shm` backend can keep for one user.
pub const SHM_MAX_LINGER_TYPES: usize = 8;

/// Most handles one `shm` table may hold (the handle index is 24 bits of a seat id).
pub const SHM_MAX_CAPACITY: u32 = 1 << 24;

fn parse_backend(loc: &Locator<'_>, b: &RawBackend) -> Result<BackendConfig, ConfigError> {
    let kind = b.kind.get_ref().as_str();
    // Options of another kind are a mistake the admin should hear about, not ignore.
    let shm_only: [(&str, Option<usize>); 3] = [
        ("path", b.path.as_ref().map(|v| v.span().start)),
        ("capacity", b.capacity.as_ref().map(|v| v.span().start)),
        ("reclaim_dead_owners", b.reclaim_dead_owners.as_ref().map(|v| v.span().start)),
    ];
    let redis_only: [(&str, Option<usize>); 10] = [
        ("url", b.url.as_ref().map(|v| v.span().start)),
        ("password", b.password.as_ref().map(|v| v.span().start)),
        ("username", b.username.as_ref().map(|v| v.span().start)),
        ("database", b.database.as_ref().map(|v| v.span().start)),
        ("prefix", b.prefix.as_ref().map(|v| v.span().start)),
        ("node", b.node.as_ref().map(|v| v.span().start)),
        ("connect_timeout", b.connect_timeout.as_ref().map(|v| v.span().start)),
        ("timeout", b.timeout.as_ref().map(|v| v.span().start)),
        ("on_backend_error", b.on_backend_error.as_ref().map(|v| v.span().start)),
        ("local_share", b.local_share.as_ref().map(|v| v.span().start)),
    ];
    let retry = [("retry_interval", b.retry_interval.as_ref().map(|v| v.span().start))];
    let foreign = |owner: &str, options: &[(&str, Option<usize>)]| -> Result<(), ConfigError> {
        match options.iter().find_map(|(name, at)| at.map(|at| (name, at))) {
            Some((name, at)) => Err(loc.error(
                at,
                format!("[backend] option '{name}' belongs to kind = \"{owner}\", but this backend is kind = \"{kind}\""),
            )),
            None => Ok(()),
        }
    };
    match kind {
        "memory" => {
            foreign("shm", &shm_only)?;
            foreign("redis", &redis_only)?;
            foreign("redis", &retry)?;
            Ok(BackendConfig::Memory)
        }
        "shm" => {
            foreign("redis", &redis_only)?;
            foreign("redis", &retry)?;
            let Some(path) = &b.path else {
                return Err(loc.error(
                    b.kind.span().start,
                    "[backend] kind = \"shm\" needs path = \"/dev/shm/<installation>\": the file every process of the installation maps",
                ));
            };
            let text = path.get_ref().trim();
            if text.is_empty() {
                return Err(loc.error(path.span().start, "[backend] path is empty"));
            }
            let capacity = match &b.capacity {
                None => 10_000,
                Some(raw) => match raw.get_ref() {
                    toml::Value::Integer(n) if (1..=i64::from(SHM_MAX_CAPACITY)).contains(n) => *n as u32,
                    other => {
                        return Err(loc.error(
                            raw.span().start,
                            format!(
                                "[backend] capacity must be a whole number of seat handles from 1 to {SHM_MAX_CAPACITY}, not {other}"
                            ),
                        ));
                    }
                },
            };
            Ok(BackendConfig::Shm(ShmConfig {
                path: config_relative(loc.file, text),
                capacity,
                reclaim_dead_owners: b.reclaim_dead_owners.as_ref().is_none_or(|v| *v.get_ref()),
            }))
        }
        "redis" => {
            foreign("shm", &shm_only)?;
            let text = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.get_ref().trim().to_string());
            let url = text(&b.url).unwrap_or_else(|| "redis://127.0.0.1:6379".to_string());
            if !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("redis+unix://"))
            {
                let at = b.url.as_ref().map_or(b.kind.span().start, |v| v.span().start);
                return Err(loc.error(
                    at,
                    format!(
                        "[backend] url '{url}' is not a Redis URL; write it like \"redis://127.0.0.1:6379\""
                    ),
                ));
            }
            let database = match &b.database {
                None => None,
                Some(raw) => {
                    match raw.get_ref() {
                        toml::Value::Integer(n) if (0..=i64::from(u16::MAX)).contains(n) => Some(*n as u32),
                        other => {
                            return Err(loc.error(
                            raw.span().start,
                            format!("[backend] database must be a Redis database number (0, 1, ...), not {other}"),
                        ));
                        }
                    }
                }
            };
            let prefix = text(&b.prefix).unwrap_or_else(|| "seatgate".to_string());
            if prefix.is_empty() || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
                let at = b.prefix.as_ref().map_or(0, |v| v.span().start);
                return Err(
                    loc.error(at, format!("[backend] prefix '{prefix}' must be non-empty, without spaces"))
                );
            }
            let node = text(&b.node);
            if let (Some(n), Some(raw)) = (&node, &b.node)
                && (n.is_empty() || n.len() > crate::types::MAX_LABEL_LEN || n.chars().any(char::is_control))
            {
                return Err(loc.error(
                    raw.span().start,
                    format!(
                        "[backend] node '{n}' must be 1 to {} printable bytes",
                        crate::types::MAX_LABEL_LEN
                    ),
                ));
            }
            let window = |raw: &Option<Spanned<String>>, what: &str, default: Duration| match raw {
                None => Ok(default),
                Some(raw) => parse_window(loc, what, raw)?
                    .ok_or_else(|| loc.error(raw.span().start, format!("{what} must be more than 0"))),
            };
            let connect_timeout =
                window(&b.connect_timeout, "[backend] connect_timeout", Duration::from_millis(500))?;
            let timeout = window(&b.timeout, "[backend] timeout", Duration::from_millis(200))?;
            let retry_interval =
                window(&b.retry_interval, "[backend] retry_interval", Duration::from_secs(1))?;
            let on_backend_error =
                match b.on_backend_error.as_ref().map(|v| (v.get_ref().as_str(), v.span().start)) {
                    None | Some(("deny", _)) => OnBackendError::Deny,
                    Some(("allow_local", _)) => OnBackendError::AllowLocal,
                    Some((other, at)) => {
                        return Err(loc.error(
                        at,
                        format!(
                            "[backend] on_backend_error must be \"deny\" or \"allow_local\", not '{other}'"
                        ),
                    ));
                    }
                };
            let local_share = match (&b.local_share, on_backend_error) {
                (None, OnBackendError::AllowLocal) => {
                    return Err(loc.error(
                        b.kind.span().start,
                        "[backend] on_backend_error = \"allow_local\" needs local_share: the percent of each limit this node may hand out on its own while Redis is unreachable (for example 100 / number of nodes)",
                    ));
                }
                (None, OnBackendError::Deny) => 0,
                (Some(raw), OnBackendError::Deny) => {
                    return Err(loc.error(
                        raw.span().start,
                        "[backend] local_share only applies with on_backend_error = \"allow_local\"",
                    ));
                }
                (Some(raw), OnBackendError::AllowLocal) => {
                    let pct = parse_percent(loc, "[backend] local_share", raw)?;
                    if pct == 0 {
                        return Err(loc.error(
                            raw.span().start,
                            "[backend] local_share = 0 hands out nothing while degraded: use on_backend_error = \"deny\" instead",
                        ));
                    }
                    pct
                }
            };
            Ok(BackendConfig::Redis(RedisConfig {
                url,
                password: text(&b.password),
                username: text(&b.username),
                database,
                prefix,
                node,
                connect_timeout,
                timeout,
                on_backend_error,
                local_share,
                retry_interval,
            }))
        }
        other => Err(loc.error(
            b.kind.span().start,
            format!("[backend] kind must be \"memory\", \"shm\" or \"redis\", not '{other}'"),
        )),
    }
}

fn parse_on_expiry(loc: &Locator<'_>, what: &str, raw: &Spanned<String>) -> Result<OnExpiry, ConfigError> {
    match raw.get_ref().as_str() {
        "deny_new" => Ok(OnExpiry::DenyNew),
        "revoke" => Ok(OnExpiry::Revoke),
        other => Err(loc.error(
            raw.span().start,
            format!(
                "{what} must be \"deny_new\" (holders keep their seats, new logins are refused) or \"revoke\" (holders are released too), not '{other}'"
            ),
        )),
    }
}

/// A stable 64-bit FNV-1a hash: hidden pool names must be the same in every process
/// and after every reload (their seats are counted under that name).
pub(crate) fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h = (h ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in part.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A hidden pool to add: its internal name (short, stable, never a valid file name
/// since it starts with `~`), where it was written, its type (index into the file's
/// types) and what it carries.
struct PoolDef {
    name: String,
    at: usize,
    base: usize,
    kind: PoolKind,
}

fn pool_seats(loc: &Locator<'_>, what: &str, raw: &Spanned<toml::Value>) -> Result<u32, ConfigError> {
    match raw.get_ref() {
        toml::Value::Integer(n) if *n >= 1 && *n <= i64::from(u32::MAX) => Ok(*n as u32),
        other => Err(loc.error(
            raw.span().start,
            format!("{what} must be a whole number of seats from 1, not `{other}`"),
        )),
    }
}

/// The pools that carry the profiles' `reserve` and `cap` tables, checked.
fn pool_definitions(
    loc: &Locator<'_>,
    raw_licenses: &[(Spanned<String>, RawLicense)],
    raw_profiles: &[(Spanned<String>, RawProfile)],
) -> Result<Vec<PoolDef>, ConfigError> {
    let mut defs: Vec<PoolDef> = Vec::new();
    let mut shared_needed: Vec<(usize, usize)> = Vec::new();
    for (pname, prof) in raw_profiles {
        let profile = pname.get_ref().as_str();
        for (table, is_reserve) in [(&prof.reserve, true), (&prof.cap, false)] {
            let Some(table) = table else { continue };
            let word = if is_reserve { "reserve" } else { "cap" };
            let mut entries: Vec<_> = table.iter().collect();
            entries.sort_by_key(|(k, _)| k.span().start);
            for (type_name, seats) in entries {
                let t = type_name.get_ref().as_str();
                let Some(base) = raw_licenses.iter().position(|(n, _)| n.get_ref() == t) else {
                    return Err(loc.error(
                        type_name.span().start,
                        format!("profile '{profile}' has a {word} for unknown license type '{t}'"),
                    ));
                };
                if !prof.consumes.get_ref().iter().any(|c| c.get_ref() == t) {
                    return Err(loc.error(
                        type_name.span().start,
                        format!(
                            "profile '{profile}' has a {word} for license type '{t}', which it does not consume; add '{t}' to its consumes"
                        ),
                    ));
                }
                let n = pool_seats(loc, &format!("{word} of '{t}' in profile '{profile}'"), seats)?;
                let who: Arc<str> = Arc::from(profile);
                let (tag, kind) = if is_reserve {
                    ("reserve", PoolKind::Reserve { profile: who, seats: n })
                } else {
                    ("cap", PoolKind::Cap { profile: who, seats: n })
                };
                defs.push(PoolDef {
                    name: format!("~{tag}.{:016x}", fnv1a(&[t, profile])),
                    at: type_name.span().start,
                    base,
                    kind,
                });
                if is_reserve && !shared_needed.iter().any(|(b, _)| *b == base) {
                    shared_needed.push((base, type_name.span().start));
                }
            }
        }
    }
    for (base, at) in shared_needed {
        let t = raw_licenses[base].0.get_ref().as_str();
        defs.push(PoolDef {
            name: format!("~shared.{:016x}", fnv1a(&[t])),
            at,
            base,
            kind: PoolKind::Shared,
        });
    }
    Ok(defs)
}

/// The slot of the pool of `base` whose kind matches.
fn pool_slot(licenses: &[LicenseType], base: usize, kind: impl Fn(&PoolKind) -> bool) -> Option<usize> {
    licenses.iter().position(|l| {
        l.state == SlotState::Active && l.pool.as_ref().is_some_and(|p| p.base == base && kind(&p.kind))
    })
}

/// One `[profiles.NAME]` (or `[tenants.T.profiles.NAME]`): its seat set from the
/// type names (and their shared pools) in `names`.
fn parse_profile(
    loc: &Locator<'_>,
    name: &Spanned<String>,
    prof: &RawProfile,
    names: &HashMap<Box<str>, TypeSet, foldhash::fast::RandomState>,
    type_names: &[&str],
) -> Result<Profile, ConfigError> {
    check_name(loc, "profile", name)?;
    if names.contains_key(name.get_ref().as_str()) {
        return Err(loc.error(
            name.span().start,
            format!(
                "profile '{0}' has the same name as license type '{0}'; a bare license type already acts as a profile of one type, so rename the profile",
                name.get_ref()
            ),
        ));
    }
    let mut consumes = TypeSet::EMPTY;
    for entry in prof.consumes.get_ref() {
        let Some(&set) = names.get(entry.get_ref().as_str()) else {
            return Err(loc.error(
                entry.span().start,
                format!(
                    "profile '{}' consumes unknown license type '{}' (known types: {})",
                    name.get_ref(),
                    entry.get_ref(),
                    if type_names.is_empty() { "none".to_string() } else { type_names.join(", ") }
                ),
            ));
        };
        if consumes.contains_all(set) {
            return Err(loc.error(
                entry.span().start,
                format!("profile '{}' lists license type '{}' twice", name.get_ref(), entry.get_ref()),
            ));
        }
        consumes = consumes.union(set);
    }
    Ok(Profile {
        name: name.get_ref().clone(),
        consumes,
        description: prof.description.clone(),
        line: loc.line_col(name.span().start).0,
    })
}

impl ProfileSet {
    fn new(
        profiles: Vec<Profile>,
        names: &HashMap<Box<str>, TypeSet, foldhash::fast::RandomState>,
    ) -> ProfileSet {
        // A profile named like a type is that profile (the later entry wins).
        let names = crate::text::NameTable::new(
            names
                .iter()
                .map(|(n, &set)| (&**n, set))
                .chain(profiles.iter().map(|p| (p.name.as_str(), p.consumes))),
        );
        ProfileSet { profiles, names }
    }

    /// The seat set of one profile or bare license-type name.
    #[inline]
    pub fn resolve(&self, name: &str) -> Option<TypeSet> {
        self.names.get(name)
    }
}

fn parse_emergency(
    loc: &Locator<'_>,
    e: &RawEmergency,
    licenses: &[LicenseType],
    slots: &[usize],
    raw_profiles: &[(Spanned<String>, RawProfile)],
) -> Result<EmergencyConfig, ConfigError> {
    let seats = match &e.seats {
        None => 10,
        Some(raw) => match raw.get_ref() {
            toml::Value::Integer(n) if (1..=100_000).contains(n) => *n as u32,
            other => {
                return Err(loc.error(
                    raw.span().start,
                    format!("[emergency] seats must be a whole number of extra seats from 1, not `{other}`"),
                ));
            }
        },
    };
    let mut types = TypeSet::EMPTY;
    match &e.types {
        Some(list) => {
            for entry in list.get_ref() {
                let Some(&slot) = slots.iter().find(|&&s| *licenses[s].name == **entry.get_ref()) else {
                    return Err(loc.error(
                        entry.span().start,
                        format!("[emergency] types names unknown license type '{}'", entry.get_ref()),
                    ));
                };
                types.insert(slot);
            }
            if types.is_empty() {
                return Err(loc.error(
                    list.span().start,
                    "[emergency] types is empty: name the types the extra seats are for",
                ));
            }
        }
        None => {
            // The type that counts users: counted per user and taken by every
            // profile (the product's general seat). Without one, every per-user type.
            let everyone = |s: usize| {
                !raw_profiles.is_empty()
                    && raw_profiles
                        .iter()
                        .all(|(_, p)| p.consumes.get_ref().iter().any(|c| *c.get_ref() == *licenses[s].name))
            };
            for &s in slots {
                if licenses[s].count == CountMode::User && everyone(s) {
                    types.insert(s);
                }
            }
            if types.is_empty() {
                for &s in slots {
                    if licenses[s].count == CountMode::User {
                        types.insert(s);
                    }
                }
            }
            if types.is_empty() {
                return Err(loc.error(
                    e.seats.as_ref().map_or(0, |s| s.span().start),
                    "[emergency] has no types: no license type counts users (count = \"user\"), so name them with types = [...]",
                ));
            }
        }
    }
    let duration = match &e.duration {
        None => Duration::from_secs(30 * 86_400),
        Some(raw) => parse_window(loc, "[emergency] duration", raw)?
            .ok_or_else(|| loc.error(raw.span().start, "[emergency] duration must be more than 0"))?,
    };
    Ok(EmergencyConfig { seats, types, duration })
}

fn parse_tenant(
    loc: &Locator<'_>,
    name: &Spanned<String>,
    raw: &RawTenant,
    names: &HashMap<Box<str>, TypeSet, foldhash::fast::RandomState>,
    type_names: &[&str],
    slots: &[usize],
    licenses: &[LicenseType],
) -> Result<TenantDef, ConfigError> {
    check_name(loc, "tenant", name)?;
    let tenant = name.get_ref().as_str();
    let mut limits = Vec::with_capacity(raw.licenses.len());
    for (type_name, value) in &raw.licenses {
        let Some(&slot) = slots.iter().find(|&&s| *licenses[s].name == **type_name.get_ref()) else {
            return Err(loc.error(
                type_name.span().start,
                format!(
                    "tenant '{tenant}' sets a limit for unknown license type '{}': declare the type under [licenses] (tenants set their own limits for it)",
                    type_name.get_ref()
                ),
            ));
        };
        limits.push((slot, parse_limit(loc, type_name.get_ref(), value)?));
    }
    let profiles = if raw.profiles.is_empty() {
        None
    } else {
        let mut list: Vec<_> = raw.profiles.iter().collect();
        list.sort_by_key(|(n, _)| n.span().start);
        let mut profiles = Vec::with_capacity(list.len());
        for (pname, prof) in list {
            if let Some(t) = prof.reserve.as_ref().or(prof.cap.as_ref()).and_then(|t| t.keys().next()) {
                return Err(loc.error(
                    t.span().start,
                    format!(
                        "tenant '{tenant}' profile '{}': reserve and cap are set on the global [profiles], which every tenant shares",
                        pname.get_ref()
                    ),
                ));
            }
            profiles.push(parse_profile(loc, pname, prof, names, type_names)?);
        }
        Some(Arc::new(ProfileSet::new(profiles, names)))
    };
    Ok(TenantDef {
        name: Arc::from(tenant),
        limits,
        profiles,
        description: raw.description.clone(),
        line: loc.line_col(name.span().start).0,
    })
}

/// Slot of every type of the new file (in file order), and the orphans carried over.
type SlotLayout = (Vec<usize>, Vec<(usize, LicenseType)>);

fn assign_slots(
    loc: &Locator<'_>,
    names: &[&Spanned<String>],
    previous: Option<&Previous<'_>>,
) -> Result<SlotLayout, ConfigError> {
    let Some(prev) = previous else {
        return Ok(((0..names.len()).collect(), Vec::new()));
    };
    let old_slot = |name: &str| {
        prev.config.licenses.iter().position(|l| l.state != SlotState::Vacant && &*l.name == name)
    };
    let mut taken = TypeSet::EMPTY;
    let mut slots: Vec<Option<usize>> = names.iter().map(|n| old_slot(n.get_ref())).collect();
    for slot in slots.iter().flatten() {
        taken.insert(*slot);
    }
    let mut orphans = Vec::new();
    for (slot, old) in prev.config.licenses.iter().enumerate() {
        let kept = names.iter().any(|n| n.get_ref().as_str() == &*old.name);
        let carry = match old.state {
            SlotState::Vacant => false,
            // Removed now: someone may be acquiring it through the old config still.
            SlotState::Active => !kept,
            SlotState::Orphaned => !kept && ((prev.in_use)(slot) || !prev.may_free),
        };
        if carry {
            let mut orphan = old.clone();
            orphan.state = SlotState::Orphaned;
            orphan.requires = TypeSet::EMPTY;
            orphan.linger = None;
            orphan.alert_at = 0;
            taken.insert(slot);
            orphans.push((slot, orphan));
        }
    }
    let mut free = (0..MAX_LICENSE_TYPES).filter(|s| !taken.contains(*s));
    let mut out = Vec::with_capacity(names.len());
    for (name, slot) in names.iter().zip(slots.iter_mut()) {
        match slot.or_else(|| free.next()) {
            Some(s) => out.push(s),
            None => {
                let held: Vec<&str> = orphans.iter().map(|(_, o)| &*o.name).collect();
                return Err(loc.error(
                    name.span().start,
                    format!(
                        "too many license types: at most {MAX_LICENSE_TYPES} fit, counting the removed types whose seats are still held ({})",
                        held.join(", ")
                    ),
                ));
            }
        }
    }
    Ok((out, orphans))
}

impl Config {
    /// Reads and validates a config file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        Config::load(path.as_ref(), None)
    }

    /// Reads and validates a config file that replaces `previous` (a reload): every type
    /// that survives keeps its slot, and removed types whose seats may be held become
    /// orphans.
    pub fn from_file_after(path: impl AsRef<Path>, previous: &Previous<'_>) -> Result<Config, ConfigError> {
        Config::load(path.as_ref(), Some(previous))
    }

    fn load(path: &Path, previous: Option<&Previous<'_>>) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: shown.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read config file: {e}"),
        })?;
        Config::parse(&text, &shown, previous)
    }

    /// Validates config text; `source` names it in messages (usually the file path).
    pub fn from_toml_str(text: &str, source: &str) -> Result<Config, ConfigError> {
        Config::parse(text, source, None)
    }

    /// Like [`Config::from_toml_str`], replacing `previous` (see [`Config::from_file_after`]).
    pub fn from_toml_str_after(
        text: &str,
        source: &str,
        previous: &Previous<'_>,
    ) -> Result<Config, ConfigError> {
        Config::parse(text, source, Some(previous))
    }

    fn parse(text: &str, source: &str, previous: Option<&Previous<'_>>) -> Result<Config, ConfigError> {
        let loc = Locator::new(source, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let mut err = loc.error(offset, e.message().trim_end().to_string());
            if e.span().is_none() {
                err.line = 0;
            }
            err
        })?;

        let licensee = match &raw.licensee {
            None => Licensee::default(),
            Some(l) => Licensee {
                name: l.name.clone(),
                support_until: l.support_until.as_ref().map(|d| parse_date(&loc, d)).transpose()?,
                valid_until: l.valid_until.as_ref().map(|d| parse_date(&loc, d)).transpose()?,
                on_expiry: match &l.on_expiry {
                    Some(raw) => parse_on_expiry(&loc, "[licensee] on_expiry", raw)?,
                    None => OnExpiry::DenyNew,
                },
                warn_before: match &l.warn_before {
                    Some(raw) => parse_window(&loc, "[licensee] warn_before", raw)?.unwrap_or(Duration::ZERO),
                    None => DEFAULT_WARN_BEFORE,
                },
            },
        };

        // License types, in file order (map keys carry their spans).
        let mut raw_licenses: Vec<_> = raw.licenses.into_iter().collect();
        raw_licenses.sort_by_key(|(name, _)| name.span().start);
        if raw_licenses.len() > MAX_LICENSE_TYPES {
            let (name, _) = &raw_licenses[MAX_LICENSE_TYPES];
            return Err(loc.error(
                name.span().start,
                format!("too many license types: at most {MAX_LICENSE_TYPES} are supported"),
            ));
        }
        let defaults = raw.defaults.unwrap_or_default();
        let default_lease =
            defaults.lease.as_ref().map(|d| parse_window(&loc, "[defaults] lease", d)).transpose()?.flatten();
        let default_linger = defaults
            .linger
            .as_ref()
            .map(|d| parse_window(&loc, "[defaults] linger", d))
            .transpose()?
            .flatten();
        let default_alert =
            defaults.alert_at.as_ref().map(|a| parse_percent(&loc, "[defaults] alert_at", a)).transpose()?;

        for (name, _) in &raw_licenses {
            check_name(&loc, "license type", name)?;
        }
        let mut raw_profiles: Vec<_> = raw.profiles.into_iter().collect();
        raw_profiles.sort_by_key(|(name, _)| name.span().start);
        // Reservations and caps become hidden pool types after the file's types.
        let pool_defs = pool_definitions(&loc, &raw_licenses, &raw_profiles)?;
        let pool_names: Vec<Spanned<String>> =
            pool_defs.iter().map(|d| Spanned::new(d.at..d.at, d.name.clone())).collect();
        let mut all_names: Vec<&Spanned<String>> = raw_licenses.iter().map(|(n, _)| n).collect();
        all_names.extend(pool_names.iter());
        let (all_slots, orphans) = assign_slots(&loc, &all_names, previous)?;
        let slots: Vec<usize> = all_slots[..raw_licenses.len()].to_vec();
        let pool_slots: Vec<usize> = all_slots[raw_licenses.len()..].to_vec();
        let slot_count =
            all_slots.iter().chain(orphans.iter().map(|(s, _)| s)).map(|s| s + 1).max().unwrap_or(0);
        let mut licenses: Vec<LicenseType> = (0..slot_count).map(|_| LicenseType::vacant()).collect();
        for (slot, orphan) in orphans {
            licenses[slot] = orphan;
        }
        let mut names: HashMap<Box<str>, TypeSet, _> = HashMap::with_hasher(Default::default());
        for ((name, _), &slot) in raw_licenses.iter().zip(&slots) {
            names.insert(name.get_ref().as_str().into(), TypeSet::single(slot));
        }
        let mut user_count_types = TypeSet::EMPTY;
        let mut leased_types = TypeSet::EMPTY;
        let mut requiring_types = TypeSet::EMPTY;
        let mut lingering_types = TypeSet::EMPTY;
        for ((name, lic), &slot) in raw_licenses.iter().zip(&slots) {
            let type_name = name.get_ref();
            let limit = parse_limit(&loc, type_name, &lic.limit)?;
            let what = |key: &str| format!("{key} of license type '{type_name}'");
            let lease = match &lic.lease {
                Some(raw) => parse_window(&loc, &what("lease"), raw)?,
                None => default_lease,
            };
            let linger = match &lic.linger {
                Some(raw) => {
                    let linger = parse_window(&loc, &what("linger"), raw)?;
                    if linger.is_some() && lic.count != CountMode::User {
                        return Err(loc.error(
                            raw.span().start,
                            format!(
                                "license type '{type_name}' counts per session; linger keeps a released seat for the same user, so it applies only to count = \"user\" types"
                            ),
                        ));
                    }
                    linger
                }
                None if lic.count == CountMode::User => default_linger,
                None => None,
            };
            let alert_at = match &lic.alert_at {
                Some(raw) => parse_percent(&loc, &what("alert_at"), raw)?,
                None => default_alert.unwrap_or(0),
            };
            let mut requires = TypeSet::EMPTY;
            if let Some(list) = &lic.requires {
                for entry in list.get_ref() {
                    let Some(&set) = names.get(entry.get_ref().as_str()) else {
                        return Err(loc.error(
                            entry.span().start,
                            format!(
                                "license type '{type_name}' requires unknown license type '{}'",
                                entry.get_ref()
                            ),
                        ));
                    };
                    if entry.get_ref() == type_name {
                        return Err(loc.error(
                            entry.span().start,
                            format!("license type '{type_name}' requires itself"),
                        ));
                    }
                    requires = requires.union(set);
                }
            }
            let valid_until = lic.valid_until.as_ref().map(|d| parse_date(&loc, d)).transpose()?;
            let on_expiry = match &lic.on_expiry {
                Some(raw) => parse_on_expiry(&loc, &what("on_expiry"), raw)?,
                None => licensee.on_expiry,
            };
            if lic.count == CountMode::User {
                user_count_types.insert(slot);
            }
            if lease.is_some() {
                leased_types.insert(slot);
            }
            if !requires.is_empty() {
                requiring_types.insert(slot);
            }
            if linger.is_some() {
                lingering_types.insert(slot);
            }
            licenses[slot] = LicenseType {
                name: Arc::from(type_name.as_str()),
                limit,
                description: lic.description.clone(),
                count: lic.count,
                lease,
                linger,
                requires,
                alert_at,
                state: SlotState::Active,
                line: loc.line_col(name.span().start).0,
                valid_until,
                on_expiry,
                pool: None,
                origin: LimitOrigin {
                    source: LimitSource::File,
                    base: limit,
                    signed_cap: None,
                    emergency: 0,
                },
            };
        }
        // The hidden pools copy how their type counts, leases and lingers.
        let mut pool_types = TypeSet::EMPTY;
        let mut reserve_types = TypeSet::EMPTY;
        for (def, &slot) in pool_defs.iter().zip(&pool_slots) {
            let base_slot = slots[def.base];
            let base = licenses[base_slot].clone();
            if base.count == CountMode::User {
                user_count_types.insert(slot);
            }
            if base.lease.is_some() {
                leased_types.insert(slot);
            }
            if base.linger.is_some() {
                lingering_types.insert(slot);
            }
            pool_types.insert(slot);
            if matches!(def.kind, PoolKind::Reserve { .. }) {
                reserve_types.insert(slot);
            }
            licenses[slot] = LicenseType {
                name: Arc::from(def.name.as_str()),
                limit: 0,
                description: None,
                requires: TypeSet::EMPTY,
                alert_at: 0,
                line: loc.line_col(def.at).0,
                valid_until: None,
                pool: Some(Pool { base: base_slot, kind: def.kind.clone() }),
                origin: LimitOrigin::default(),
                ..base
            };
        }
        for (slot, l) in licenses.iter().enumerate() {
            if l.state == SlotState::Orphaned && l.count == CountMode::User {
                user_count_types.insert(slot);
            }
        }

        let audit = match raw.audit {
            None => None,
            Some(a) => {
                let path = a.path.get_ref().trim();
                if path.is_empty() {
                    return Err(loc.error(a.path.span().start, "[audit] path is empty"));
                }
                // Relative paths are taken from the config file's folder, as admins expect.
                Some(AuditConfig { path: config_relative(source, path) })
            }
        };
        let reaper = match raw.reaper {
            None => ReaperConfig::default(),
            Some(r) => {
                let interval = match &r.interval {
                    Some(raw) => parse_window(&loc, "[reaper] interval", raw)?.ok_or_else(|| {
                        loc.error(
                            raw.span().start,
                            "[reaper] interval must be more than 0; to stop the reaper set enabled = false",
                        )
                    })?,
                    None => ReaperConfig::default().interval,
                };
                ReaperConfig { enabled: r.enabled.unwrap_or(true), interval }
            }
        };

        let backend = match &raw.backend {
            None => BackendConfig::Memory,
            Some(b) => parse_backend(&loc, b)?,
        };
        if let (BackendConfig::Shm(_), Some(b)) = (&backend, &raw.backend) {
            let lingering: Vec<&str> =
                licenses.iter().filter(|l| l.linger.is_some()).map(|l| &*l.name).collect();
            if lingering.len() > SHM_MAX_LINGER_TYPES {
                return Err(loc.error(
                    b.kind.span().start,
                    format!(
                        "the shm backend keeps at most {SHM_MAX_LINGER_TYPES} lingering seats per user, but {} license types have a linger window ({}); drop linger from some of them",
                        lingering.len(),
                        lingering.join(", ")
                    ),
                ));
            }
        }

        let type_names: Vec<&str> = slots.iter().map(|&s| &*licenses[s].name).collect();
        // A bare type name takes the type's shared pool when it has reservations.
        for (&slot, name) in slots.iter().zip(&type_names) {
            if let Some(shared) = pool_slot(&licenses, slot, |k| matches!(k, PoolKind::Shared)) {
                names.insert((*name).into(), TypeSet::single(slot).union(TypeSet::single(shared)));
            }
        }
        let type_names_map = names.clone();
        let mut profiles = Vec::with_capacity(raw_profiles.len());
        for (name, prof) in &raw_profiles {
            let mut profile = parse_profile(&loc, name, prof, &names, &type_names)?;
            // Its caps, and its reservations (with the type's shared pool taken
            // instead only when the reservation is full).
            for (slot, l) in licenses.iter().enumerate() {
                match &l.pool {
                    Some(Pool { kind: PoolKind::Cap { profile: p, .. }, .. })
                    | Some(Pool { kind: PoolKind::Reserve { profile: p, .. }, .. })
                        if **p == *profile.name =>
                    {
                        profile.consumes.insert(slot);
                    }
                    _ => {}
                }
            }
            profiles.push(profile);
        }
        let profiles = ProfileSet::new(profiles, &names);

        let emergency = match &raw.emergency {
            None => None,
            Some(e) => Some(parse_emergency(&loc, e, &licenses, &slots, &raw_profiles)?),
        };
        let state_dir = raw
            .state_dir
            .as_ref()
            .map(|d| {
                let t = d.get_ref().trim();
                if t.is_empty() {
                    Err(loc.error(d.span().start, "state_dir is empty"))
                } else {
                    Ok(config_relative(source, t))
                }
            })
            .transpose()?;
        if let (Some(_), None) = (&emergency, &state_dir) {
            return Err(loc.error(
                raw.emergency.as_ref().and_then(|e| e.seats.as_ref().map(|s| s.span().start)).unwrap_or(0),
                "[emergency] needs state_dir = \"/var/lib/seatgate\" (a folder): an emergency window may be opened only once per permanent limit, and the state file there keeps that across restarts",
            ));
        }
        let license_file = raw
            .license_file
            .as_ref()
            .map(|d| {
                let t = d.get_ref().trim();
                if t.is_empty() {
                    Err(loc.error(d.span().start, "license_file is empty"))
                } else {
                    Ok(config_relative(source, t))
                }
            })
            .transpose()?;

        let mut tenants = BTreeMap::new();
        for (name, raw_tenant) in &raw.tenants {
            let tenant =
                parse_tenant(&loc, name, raw_tenant, &type_names_map, &type_names, &slots, &licenses)?;
            tenants.insert(tenant.name.clone(), tenant);
        }

        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let mut config = Config {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            source: source.to_string(),
            licensee,
            licenses,
            order: slots,
            audit,
            reaper,
            backend,
            profiles: Arc::new(profiles),
            lints: Vec::new(),
            emergency,
            state_dir,
            license_file,
            tenants: Arc::new(tenants),
            tenant: None,
            pool_types,
            reserve_types,
            user_count_types,
            leased_types,
            requiring_types,
            lingering_types,
            express_types: TypeSet::EMPTY,
        };
        config.express_types = config
            .order
            .iter()
            .fold(TypeSet::EMPTY, |set, &slot| set.union(TypeSet::single(slot)))
            .minus(config.pool_types)
            .minus(config.leased_types)
            .minus(config.requiring_types)
            .minus(config.lingering_types);
        config.refresh_pool_limits();
        config.lints = lint(&config, &loc, &raw_profiles);
        Ok(config)
    }

    /// The seat set for one profile or bare license-type name.
    #[inline]
    pub fn resolve_name(&self, name: &str) -> Option<TypeSet> {
        self.profiles.resolve(name)
    }

    /// The hidden pools of reservations and caps.
    #[inline]
    pub fn pool_types(&self) -> TypeSet {
        self.pool_types
    }

    /// The hidden pools of reservations.
    #[inline]
    pub fn reserve_types(&self) -> TypeSet {
        self.reserve_types
    }

    /// A request's seat set with at most one reservation per type: a member of a
    /// reserving profile draws on that reservation (not on the shared pool), and on
    /// the shared pool only when [`Config::reserve_fallback`] says so.
    #[inline]
    pub fn normalize_pools(&self, set: TypeSet) -> TypeSet {
        let reserves = set.intersect(self.reserve_types);
        if reserves.is_empty() {
            return set;
        }
        let mut out = set;
        let mut bases = TypeSet::EMPTY;
        for r in reserves.iter() {
            let Some(pool) = &self.licenses[r].pool else { continue };
            if bases.contains(pool.base) {
                out = out.minus(TypeSet::single(r));
                continue;
            }
            bases.insert(pool.base);
            if let Some(shared) = pool_slot(&self.licenses, pool.base, |k| matches!(k, PoolKind::Shared)) {
                out = out.minus(TypeSet::single(shared));
            }
        }
        out
    }

    /// When the reservation in `slot` is full: the same request drawing on its type's
    /// shared pool instead (`None` when `slot` is not a reservation).
    pub fn reserve_fallback(&self, set: TypeSet, slot: usize) -> Option<TypeSet> {
        if !self.reserve_types.contains(slot) || !set.contains(slot) {
            return None;
        }
        let base = self.licenses[slot].pool.as_ref()?.base;
        let shared = pool_slot(&self.licenses, base, |k| matches!(k, PoolKind::Shared))?;
        Some(set.minus(TypeSet::single(slot)).union(TypeSet::single(shared)))
    }

    /// Slot of a license type or hidden pool by its internal name (denials name the
    /// pool that refused).
    pub fn slot_by_name(&self, name: &str) -> Option<usize> {
        self.licenses.iter().position(|l| l.state == SlotState::Active && &*l.name == name)
    }

    /// The limits of the hidden pools from their types' limits.
    fn refresh_pool_limits(&mut self) {
        for slot in self.pool_types.iter() {
            let Some(pool) = self.licenses[slot].pool.clone() else { continue };
            let limit = match pool.kind {
                PoolKind::Shared => {
                    let reserved: u32 = self
                        .licenses
                        .iter()
                        .filter_map(|l| match &l.pool {
                            Some(Pool { base, kind: PoolKind::Reserve { seats, .. } })
                                if *base == pool.base && l.state == SlotState::Active =>
                            {
                                Some(*seats)
                            }
                            _ => None,
                        })
                        .fold(0u32, u32::saturating_add);
                    self.licenses[pool.base].limit.saturating_sub(reserved)
                }
                PoolKind::Reserve { seats, .. } | PoolKind::Cap { seats, .. } => seats,
            };
            self.licenses[slot].limit = limit;
        }
    }

    /// A view of this (file) config with the limits that do not come from the file:
    /// a tenant's own limits and profiles, limits set at run time, the vendor-signed
    /// caps and an open emergency window. Each type's effective limit is
    /// `min(base, signed) + emergency`, where `base` is the run-time limit, else the
    /// tenant's, else the file's. The view gets a new [`Config::id`].
    pub fn effective(&self, inputs: &LimitInputs<'_>) -> Config {
        static NEXT_VIEW: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 40);
        let mut c = self.clone();
        c.id = NEXT_VIEW.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        c.tenant = inputs.tenant.map(|t| t.name.clone());
        if let Some(own) = inputs.tenant.and_then(|t| t.profiles.clone()) {
            // A reservation for a profile this tenant does not have would keep seats
            // nobody here can take: it holds none in this tenant.
            for l in &mut c.licenses {
                if let Some(Pool { kind: PoolKind::Reserve { profile, seats }, .. }) = &mut l.pool
                    && own.resolve(profile).is_none()
                {
                    *seats = 0;
                }
            }
            c.profiles = own;
        }
        let emergency_types = self.emergency.as_ref().map_or(TypeSet::EMPTY, |e| e.types);
        for &slot in &self.order {
            let file = self.licenses[slot].origin.base;
            let l = &mut c.licenses[slot];
            let (mut base, mut source) = (file, LimitSource::File);
            if let Some(&(_, n)) = inputs.tenant.and_then(|t| t.limits.iter().find(|(s, _)| *s == slot)) {
                (base, source) = (n, LimitSource::TenantFile);
            }
            if let Some(n) = (inputs.runtime)(&l.name) {
                (base, source) = (n, LimitSource::Runtime);
            }
            let signed_cap = inputs.signed.map(|m| m.get(&*l.name).copied().unwrap_or(0));
            let emergency = if emergency_types.contains(slot) { inputs.emergency } else { 0 };
            l.limit = base.min(signed_cap.unwrap_or(u32::MAX)).saturating_add(emergency);
            l.origin = LimitOrigin { source, base, signed_cap, emergency };
        }
        c.refresh_pool_limits();
        c
    }

    /// Slot of an active license type by name.
    pub fn license_index(&self, name: &str) -> Option<usize> {
        self.order.iter().copied().find(|&s| &*self.licenses[s].name == name)
    }

    /// The active license types, in file order, with their slots.
    pub fn active(&self) -> impl Iterator<Item = (usize, &LicenseType)> + '_ {
        self.order.iter().map(|&s| (s, &self.licenses[s]))
    }

    /// Types removed by a reload whose slots are kept for the seats still held.
    pub fn orphans(&self) -> impl Iterator<Item = (usize, &LicenseType)> + '_ {
        self.licenses.iter().enumerate().filter(|(_, l)| l.state == SlotState::Orphaned)
    }

    /// Types with a lease.
    #[inline]
    pub fn leased_types(&self) -> TypeSet {
        self.leased_types
    }

    /// Types with a linger window.
    #[inline]
    pub fn lingering_types(&self) -> TypeSet {
        self.lingering_types
    }

    /// Whether a request's seat set is all plain types (no lease, no `requires`, no
    /// linger window, no reservation or cap): a request the engine may hand to
    /// [`crate::backend::Backend::express_acquire`].
    #[inline(always)]
    pub fn express_types(&self, set: TypeSet) -> bool {
        !set.is_empty() && self.express_types.contains_all(set)
    }

    /// Types that require other types.
    #[inline]
    pub fn requiring_types(&self) -> TypeSet {
        self.requiring_types
    }

    /// The lease of a handle holding `types`: the shortest lease among them.
    #[inline]
    pub fn lease_of(&self, types: TypeSet) -> Option<Duration> {
        types.intersect(self.leased_types).iter().filter_map(|s| self.licenses[s].lease).min()
    }

    /// The license types counted per user (the rest are counted per session).
    #[inline]
    pub fn user_count_types(&self) -> TypeSet {
        self.user_count_types
    }

    /// Names of the types in a set, in config order.
    pub fn type_names(&self, set: TypeSet) -> Vec<Arc<str>> {
        set.iter().map(|i| self.licenses[i].name.clone()).collect()
    }
}

/// The lints a careful admin wants to hear about at load time, not after a day of
/// failed logins.
fn lint(config: &Config, loc: &Locator<'_>, raw_profiles: &[(Spanned<String>, RawProfile)]) -> Vec<Lint> {
    let mut lints = Vec::new();
    let consumed_by = |index: usize| -> Vec<&Profile> {
        config.profiles.profiles.iter().filter(|p| p.consumes.contains(index)).collect()
    };

    // The product's common case: a team role with the chat flag on a server without chat
    // seats. Every login with that profile is refused.
    for (profile, (_, raw)) in config.profiles.profiles.iter().zip(raw_profiles) {
        for entry in raw.consumes.get_ref() {
            let Some(index) = config.license_index(entry.get_ref()) else {
                continue;
            };
            let lic = &config.licenses[index];
            if lic.limit == 0 {
                lints.push(loc.lint("zero-limit-consumed", loc.line_col(entry.span().start).0, format!(
                        "profile '{}' consumes license type '{}' whose limit is 0: every login with this profile will be refused",
                        profile.name, lic.name
                    )));
            }
        }
        if profile.consumes.is_empty() {
            lints.push(loc.lint(
                "empty-profile",
                profile.line,
                format!(
                    "profile '{}' consumes no license type: its logins take no seat and are never limited",
                    profile.name
                ),
            ));
        }
    }

    for (index, lic) in config.active() {
        let users = consumed_by(index);
        if users.is_empty() {
            if !config.profiles.profiles.is_empty() {
                lints.push(loc.lint("unused-license", lic.line, format!(
                        "license type '{}' is consumed by no profile: only requests naming '{}' directly can take it",
                        lic.name, lic.name
                    )));
            }
            continue;
        }
        // A type whose every profile also takes a smaller user-counted type can never
        // fill: the smaller one runs out first, so part of what was bought sits idle.
        if lic.count != CountMode::User {
            continue;
        }
        let ceiling = config
            .active()
            .filter(|&(other, o)| other != index && o.count == CountMode::User && o.limit < lic.limit)
            .filter(|&(other, _)| users.iter().all(|p| p.consumes.contains(other)))
            .min_by_key(|(_, o)| o.limit);
        if let Some((_, other)) = ceiling {
            let names: Vec<&str> = users.iter().map(|p| p.name.as_str()).collect();
            lints.push(loc.lint("unreachable-seats", lic.line, format!(
                    "license type '{}' has limit {}, but every profile that takes it ({}) also takes '{}' with limit {}: at most {} '{}' seats can be used through profiles",
                    lic.name, lic.limit, names.join(", "), other.name, other.limit, other.limit, lic.name
                )));
        }
    }

    // Profiles that differ only by name are usually a copy-paste mistake.
    let profiles = &config.profiles.profiles;
    for (i, a) in profiles.iter().enumerate() {
        if let Some(b) = profiles[..i].iter().find(|b| b.consumes == a.consumes && !a.consumes.is_empty()) {
            lints.push(loc.lint(
                "duplicate-profile",
                a.line,
                format!("profiles '{}' and '{}' consume exactly the same license types", b.name, a.name),
            ));
        }
    }

    for (_, lic) in config.active() {
        for (_, needed) in config.active().filter(|(s, _)| lic.requires.contains(*s)) {
            if needed.limit == 0 {
                lints.push(loc.lint(
                    "unreachable-requirement",
                    lic.line,
                    format!(
                        "license type '{}' requires '{}' whose limit is 0: no login can take '{}'",
                        lic.name, needed.name, lic.name
                    ),
                ));
            }
        }
        if lic.linger.is_some() && lic.lease.is_none() && !config.reaper.enabled {
            lints.push(loc.lint("reaper-disabled", lic.line, format!(
                "license type '{}' lingers, but the reaper is off: a lingering seat is freed only when an acquire needs it or the host calls license_reap",
                lic.name
            )));
        } else if lic.lease.is_some() && !config.reaper.enabled {
            lints.push(loc.lint("reaper-disabled", lic.line, format!(
                "license type '{}' has a lease, but the reaper is off: expired seats are reclaimed only when an acquire needs them or the host calls license_reap, so the report may show them until then",
                lic.name
            )));
        }
    }

    // Reservations that together exceed the type's limit leave nothing for anyone
    // else, and some of them cannot be honoured at all.
    for (slot, lic) in config.active() {
        let reserved: Vec<(&str, u32)> = config
            .licenses
            .iter()
            .filter_map(|l| match &l.pool {
                Some(Pool { base, kind: PoolKind::Reserve { profile, seats } }) if *base == slot => {
                    Some((&**profile, *seats))
                }
                _ => None,
            })
            .collect();
        let total: u64 = reserved.iter().map(|(_, n)| u64::from(*n)).sum();
        if total > u64::from(lic.limit) {
            let list: Vec<String> = reserved.iter().map(|(p, n)| format!("{p}: {n}")).collect();
            lints.push(loc.lint("reservations-exceed-limit", lic.line, format!(
                "license type '{}' has limit {}, but its profiles reserve {} seats ({}): the reservations cannot all be honoured, and nobody else can take a seat",
                lic.name, lic.limit, total, list.join(", ")
            )));
        }
        for l in &config.licenses {
            if let Some(Pool { base, kind: PoolKind::Cap { profile, seats } }) = &l.pool
                && *base == slot
                && *seats >= lic.limit
                && lic.limit > 0
            {
                lints.push(loc.lint("cap-not-limiting", l.line, format!(
                    "profile '{profile}' is capped at {seats} '{}' seats, but the type's limit is {}: the cap never refuses anyone",
                    lic.name, lic.limit
                )));
            }
        }
    }
    if let Some(e) = &config.emergency
        && e.seats > 10
    {
        lints.push(loc.lint(
            "large-emergency",
            1,
            format!(
                "[emergency] seats = {}: the product's emergency license allows up to 10 extra users",
                e.seats
            ),
        ));
    }

    if config.order.is_empty() {
        lints.push(loc.lint(
            "no-licenses",
            1,
            "no license types are configured: every request naming a profile or type is refused".into(),
        ));
    }
    lints.sort_by_key(|l| l.line);
    lints
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_validated() {
        assert_eq!(Date::parse("2027-10-31"), Some(Date { year: 2027, month: 10, day: 31 }));
        assert_eq!(Date::parse("2028-02-29").map(|d| d.day), Some(29));
        assert_eq!(Date::parse("2027-02-29"), None);
        assert_eq!(Date::parse("2027-13-01"), None);
        assert_eq!(Date::parse("27-10-31"), None);
        assert_eq!(Date { year: 1970, month: 1, day: 1 }.days_since_epoch(), 0);
        assert_eq!(Date { year: 2000, month: 3, day: 1 }.days_since_epoch(), 11_017);
    }
}
