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
#[derive(Debug, Clone, Default)]
pub struct Licensee {
    pub name: Option<String>,
    pub support_until: Option<Date>,
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
        }
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
    /// Profiles in file order.
    pub profiles: Vec<Profile>,
    pub lints: Vec<Lint>,
    /// Every name a request may use, profiles and bare license types, to its seat set.
    names: HashMap<Box<str>, TypeSet, foldhash::fast::RandomState>,
    user_count_types: TypeSet,
    /// Types with a lease, with `requires`, and with a linger window: the acquire path
    /// skips that work for requests that touch none of them.
    leased_types: TypeSet,
    requiring_types: TypeSet,
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
    licensee: Option<RawLicensee>,
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
}

fn default_count() -> CountMode {
    CountMode::User
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    consumes: Spanned<Vec<Spanned<String>>>,
    description: Option<String>,
}

/// Maps byte offsets to 1-based line/column for messages.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
        let col = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
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
        let loc = Locator { file: source, text };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let mut err = loc.error(offset, e.message().trim_end().to_string());
            if e.span().is_none() {
                err.line = 0;
            }
            err
        })?;

        let licensee = match raw.licensee {
            None => Licensee::default(),
            Some(l) => Licensee {
                name: l.name,
                support_until: l.support_until.as_ref().map(|d| parse_date(&loc, d)).transpose()?,
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
        let file_names: Vec<&Spanned<String>> = raw_licenses.iter().map(|(n, _)| n).collect();
        let (slots, orphans) = assign_slots(&loc, &file_names, previous)?;
        let slot_count = slots.iter().chain(orphans.iter().map(|(s, _)| s)).map(|s| s + 1).max().unwrap_or(0);
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
            if lic.count == CountMode::User {
                user_count_types.insert(slot);
            }
            if lease.is_some() {
                leased_types.insert(slot);
            }
            if !requires.is_empty() {
                requiring_types.insert(slot);
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

        let mut raw_profiles: Vec<_> = raw.profiles.into_iter().collect();
        raw_profiles.sort_by_key(|(name, _)| name.span().start);
        let mut profiles = Vec::with_capacity(raw_profiles.len());
        for (name, prof) in &raw_profiles {
            check_name(&loc, "profile", name)?;
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
                // Only license types are in `names` yet: profiles are added below.
                let Some(&set) = names.get(entry.get_ref().as_str()) else {
                    let known: Vec<&str> = slots.iter().map(|&s| &*licenses[s].name).collect();
                    return Err(loc.error(
                        entry.span().start,
                        format!(
                            "profile '{}' consumes unknown license type '{}' (known types: {})",
                            name.get_ref(),
                            entry.get_ref(),
                            if known.is_empty() { "none".to_string() } else { known.join(", ") }
                        ),
                    ));
                };
                if consumes.contains_all(set) {
                    return Err(loc.error(
                        entry.span().start,
                        format!(
                            "profile '{}' lists license type '{}' twice",
                            name.get_ref(),
                            entry.get_ref()
                        ),
                    ));
                }
                consumes = consumes.union(set);
            }
            profiles.push(Profile {
                name: name.get_ref().clone(),
                consumes,
                description: prof.description.clone(),
                line: loc.line_col(name.span().start).0,
            });
        }
        for p in &profiles {
            names.insert(p.name.as_str().into(), p.consumes);
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
            profiles,
            lints: Vec::new(),
            names,
            user_count_types,
            leased_types,
            requiring_types,
        };
        config.lints = lint(&config, &loc, &raw_profiles);
        Ok(config)
    }

    /// The seat set for one profile or bare license-type name.
    #[inline]
    pub fn resolve_name(&self, name: &str) -> Option<TypeSet> {
        self.names.get(name).copied()
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
        config.profiles.iter().filter(|p| p.consumes.contains(index)).collect()
    };

    // The product's common case: a team role with the chat flag on a server without chat
    // seats. Every login with that profile is refused.
    for (profile, (_, raw)) in config.profiles.iter().zip(raw_profiles) {
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
            if !config.profiles.is_empty() {
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
    for (i, a) in config.profiles.iter().enumerate() {
        if let Some(b) =
            config.profiles[..i].iter().find(|b| b.consumes == a.consumes && !a.consumes.is_empty())
        {
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
