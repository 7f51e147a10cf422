//! The `redis` backend: one seat table for every node of a cluster.
//!
//! Every operation that reads and changes seats is one Lua script (`redis.lua`, beside
//! this file, documents the key layout), so an acquire is one round trip that checks
//! and takes the whole bundle atomically, and the seat counts live in the same atomic
//! step as the holder records they count: nothing a crashed node leaves half done. On
//! Redis 7 and later the script is a function library, loaded once and called with
//! FCALL; elsewhere (an older server, or an ACL that forbids functions) it runs with
//! EVALSHA, which makes every one of its definitions again on each call (about 5 us
//! of the server's time a call, measured: see BENCHMARKS.md). Types are keyed by
//! *name* (slots differ between nodes), and limits come from the caller's
//! configuration on every call.
//!
//! Time: deadlines in Redis are "cluster" microseconds, the caller's monotonic `now`
//! plus an offset calibrated once from the server's `TIME`, so nodes agree through
//! the server's clock and an injected clock still moves leases.
//!
//! Failure: with `on_backend_error = "deny"` a failed call is [`Error::Backend`] and
//! changed nothing. With `"allow_local"` the node serves from a local
//! [`MemoryBackend`] holding `local_share` percent of each limit, retries Redis every
//! `retry_interval`, and on recovery *reconciles*: each local handle is taken again in
//! Redis under the same id, and those that no longer fit are released
//! ([`ReleaseWhy::Reconciled`]). Each node also keeps a mirror of the Redis handles it
//! took, so that a release or renewal made while Redis was away is applied when it
//! comes back, and a Redis that comes back empty (restarted without persistence) gets
//! the node's handles again instead of forgetting them.
//!
//! Locks: no lock is held across a Redis call, except the connection checked out of
//! the pool, and during a reconcile the local table's write lock (local operations
//! wait for the handles to move).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, RwLockReadGuard, TryLockError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::{Connection, IntoConnectionInfo, Value};
use smallvec::SmallVec;

use super::memory::MemoryBackend;
use super::{
    Backend, BackendStatus, Changes, HeldSeat, LingeringSeat, ReleaseWhy, ReleasedSeat, SeatRequest,
    TypeStats,
};
use crate::clock::{Clock, Mono, Now, SystemClock, rfc3339, unix_ms};
use crate::config::{Config, CountMode, OnBackendError, RedisConfig, SlotState};
use crate::error::{Denial, DenialReason, Error};
use crate::types::{SEAT_ID_MASK, SeatId, TypeSet};

/// The script behind every operation: `redis.lua` defines `main`, and EVAL runs it.
const SCRIPT: &str = concat!(include_str!("redis.lua"), "return main(ARGV)\n");

/// How a link runs the script (`Link::mode`).
const MODE_UNKNOWN: u8 = 0;
const MODE_FUNCTION: u8 = 1;
const MODE_EVAL: u8 = 2;

/// The installation's tenant registry: `KEYS[1]` maps a tenant's name to its number,
/// `KEYS[2]` the number back to the name. `ARGV[1]` is the most tenants, `ARGV[2]` a
/// count *k* of claims, then *k* pairs (name, number) that the calling node already
/// uses, then the names to number.
///
/// The claims put a node's numbers back after Redis restarted empty, before anything
/// new is numbered: a new tenant never gets a number that this node knows as another
/// tenant's. A claim that Redis contradicts is an error. A new name gets the lowest
/// free number above the registry's size, atomically, so every node numbers every
/// tenant alike whatever order it met them in. Its two refusals start with an error code
/// ([`TENANTS_FULL`], [`TENANTS_DISAGREE`]), which the caller tells apart by the code,
/// not by the words after it.
const TENANT_SCRIPT: &str = r#"
local max = tonumber(ARGV[1])
local claims = tonumber(ARGV[2])
for i = 0, claims - 1 do
  local name, n = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  local has = redis.call('HGET', KEYS[1], name)
  local owner = redis.call('HGET', KEYS[2], n)
  if not has and not owner then
    redis.call('HSET', KEYS[1], name, n)
    redis.call('HSET', KEYS[2], n, name)
  elseif has ~= n or owner ~= name then
    return redis.error_reply('SEATGATE_TENANTS_DISAGREE the tenant registry disagrees with this node: it numbers tenant ' .. name .. ' ' .. n .. ', the registry ' .. tostring(has) .. ' (and gives ' .. n .. ' to ' .. tostring(owner) .. ')')
  end
end
local out = {}
for i = 3 + 2 * claims, #ARGV do
  local n = redis.call('HGET', KEYS[1], ARGV[i])
  if not n then
    n = redis.call('HLEN', KEYS[1]) + 1
    while redis.call('HEXISTS', KEYS[2], n) == 1 do
      n = n + 1
    end
    if n > max then
      return redis.error_reply('SEATGATE_TENANTS_FULL cannot add tenant ' .. ARGV[i] .. ': one installation serves at most ' .. max .. ' tenants')
    end
    redis.call('HSET', KEYS[1], ARGV[i], n)
    redis.call('HSET', KEYS[2], n, ARGV[i])
  end
  out[#out + 1] = tonumber(n)
end
return out
"#;

/// [`TENANT_SCRIPT`]'s refusal when the installation has its most tenants.
const TENANTS_FULL: &str = "SEATGATE_TENANTS_FULL";
/// [`TENANT_SCRIPT`]'s refusal when the registry contradicts a number this node uses.
const TENANTS_DISAGREE: &str = "SEATGATE_TENANTS_DISAGREE";

/// Why numbering tenants failed: a refusal of the registry (its error code), or
/// `None` when Redis could not be asked.
struct RegistryError {
    refusal: Option<&'static str>,
    message: String,
}

impl From<RegistryError> for String {
    fn from(e: RegistryError) -> String {
        e.message
    }
}

/// Handles taken from the local share while Redis was unreachable have this bit set,
/// so they never collide with ids from Redis's sequence, which stays below it (the
/// script refuses to hand out more). With it, every id stays below 2^48: the engine
/// keeps the top 16 bits for its tenant tag.
pub const LOCAL_SEAT_BIT: u64 = 1 << 47;
/// Below the bit: the local table's own handle (from the process-wide counter) plus a
/// random offset of the pool's own, modulo 2^47.
///
/// Collision window: a reconcile takes local handles into Redis under these ids, where
/// the local handles of two pools of one key prefix (two nodes, or two processes of
/// one node) could clash only if the stretches of the counter they used, each shifted
/// by its pool's random offset, overlap: about (s1 + s2) / 2^47 for stretches of s1
/// and s2 ids (a thread takes the counter's ids 1024 at a time). An id maps back to
/// the local table's handle only below 2^47 of them, 14 years at 300,000 a second.
const LOCAL_NUMBER_MASK: u64 = LOCAL_SEAT_BIT - 1;

/// Idle connections kept for reuse.
const POOL_IDLE: usize = 32;
/// Handles moved per script call while reconciling.
const RETAKE_CHUNK: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

/// A random 64-bit value (per-process random hasher seed, time and a counter).
fn random_u64() -> u64 {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// This host's name, for the report (no libc call: the kernel exposes it as a file).
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
        .find(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

fn why_from(s: &str) -> Option<ReleaseWhy> {
    [
        ReleaseWhy::Normal,
        ReleaseWhy::Expired,
        ReleaseWhy::Admin,
        ReleaseWhy::Dependency,
        ReleaseWhy::Shutdown,
        ReleaseWhy::OwnerGone,
        ReleaseWhy::Reconciled,
        ReleaseWhy::EmergencyExpired,
        ReleaseWhy::LicenseExpired,
    ]
    .into_iter()
    .find(|w| w.as_str() == s)
}

// ---- reading script replies ----

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".to_string()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        other => text(other).and_then(|s| s.parse().ok()),
    }
}

fn items(v: &Value) -> &[Value] {
    match v {
        Value::Array(items) | Value::Set(items) => items,
        _ => &[],
    }
}

fn at(v: &[Value], i: usize) -> String {
    v.get(i).and_then(text).unwrap_or_default()
}

fn int_at(v: &[Value], i: usize) -> i64 {
    v.get(i).and_then(int).unwrap_or(0)
}

fn label(s: String) -> Option<Arc<str>> {
    (!s.is_empty()).then(|| Arc::from(s))
}

/// A lease deadline as the script gives it ("+inf"/"inf": none).
fn score(s: &str) -> i64 {
    s.parse::<i64>()
        .ok()
        .or_else(|| s.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| f as i64))
        .unwrap_or(0)
}

fn since_of(ms: i64) -> SystemTime {
    if ms >= 0 { UNIX_EPOCH + Duration::from_millis(ms as u64) } else { UNIX_EPOCH }
}

// ---- names and slots ----

/// Slot of a type (active or orphaned) of `config` by name.
fn slot_of(config: &Config, name: &str) -> Option<usize> {
    config.licenses.iter().position(|l| l.state != SlotState::Vacant && &*l.name == name)
}

fn type_name(config: &Config, name: &str) -> Arc<str> {
    slot_of(config, name).map_or_else(|| Arc::from(name), |s| config.licenses[s].name.clone())
}

fn names_csv(config: &Config, set: TypeSet) -> String {
    let mut out = String::new();
    for slot in set.iter() {
        if let Some(l) = config.licenses.get(slot) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&l.name);
        }
    }
    out
}

fn set_of(config: &Config, csv: &str) -> TypeSet {
    let mut set = TypeSet::EMPTY;
    for slot in csv.split(',').filter(|n| !n.is_empty()).filter_map(|n| slot_of(config, n)) {
        set.insert(slot);
    }
    set
}

/// What the script needs to know of every type: "name mode limit linger_us requires;".
fn type_table(config: &Config) -> String {
    let mut out = String::with_capacity(config.licenses.len() * 32);
    for l in config.licenses.iter().filter(|l| l.state != SlotState::Vacant) {
        let mode = if l.count == CountMode::User { 'u' } else { 's' };
        let linger = l.linger.map_or(0, |d| d.as_micros());
        let _ = write!(out, "{} {mode} {} {linger} ", l.name, l.limit);
        if l.requires.is_empty() {
            out.push('-');
        } else {
            out.push_str(&names_csv(config, l.requires));
        }
        out.push(';');
    }
    out
}

/// A handle this node took in Redis, as last known here: enough to release or renew
/// it later, or to take it again if Redis lost its data.
#[derive(Debug, Clone)]
struct Mirrored {
    user: Arc<str>,
    user_types: String,
    session_types: String,
    extension: Option<Arc<str>>,
    session: Option<Arc<str>>,
    since_ms: i64,
    lease_us: i64,
    /// Cluster microseconds (0: no lease).
    deadline_us: i64,
    /// Released by its holder while Redis was unreachable: release it there on return.
    pending: Option<ReleaseWhy>,
    /// Renewed while Redis was unreachable: renew it there on return.
    touched: bool,
}

/// One script reply: its status, and the rest for the operation to read.
struct Reply {
    status: String,
    detail: Vec<Value>,
}

#[derive(Debug)]
struct Down {
    since: SystemTime,
    error: String,
    retry_at: Instant,
}

/// A scaled copy of the caller's config for the local table, kept per generation.
struct Scaled {
    key: Vec<(Arc<str>, u32)>,
    config: Arc<Config>,
}

/// What every pool of one installation shares, its own and its tenants'
/// ([`Backend::open_tenant`]): the server, the credentials and the connections.
struct Link {
    settings: RedisConfig,
    client: redis::Client,
    /// "redis://host:port db N", without credentials.
    location: String,
    node: Arc<str>,
    script: redis::Script,
    /// The script as a Redis 7 function library: its function's name (from the
    /// script's hash, so nodes of different versions each call their own), and the
    /// library's code for FUNCTION LOAD.
    function: String,
    library: String,
    /// `MODE_*`: learnt from the server's first answer to FCALL.
    mode: AtomicU8,
    /// [`TENANT_SCRIPT`], hashed once.
    tenant_script: redis::Script,
    pool: Mutex<Vec<Connection>>,
}

impl Link {
    /// Runs the script's `main` on `conn` with one key and `args`: as the Redis 7
    /// function (loaded on first use, and again if the server lost it), or with
    /// EVALSHA where the server has no functions or the ACL forbids them.
    fn run(&self, conn: &mut Connection, key: &str, args: &[&str]) -> redis::RedisResult<Value> {
        if self.mode.load(Ordering::Relaxed) != MODE_EVAL {
            match self.fcall(conn, key, args) {
                Ok(value) => {
                    self.mode.store(MODE_FUNCTION, Ordering::Relaxed);
                    return Ok(value);
                }
                Err(e) if no_functions(&e) => self.mode.store(MODE_EVAL, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let mut inv = self.script.prepare_invoke();
        inv.key(key);
        for a in args {
            inv.arg(*a);
        }
        inv.invoke(conn)
    }

    fn fcall(&self, conn: &mut Connection, key: &str, args: &[&str]) -> redis::RedisResult<Value> {
        let call = |conn: &mut Connection| {
            redis::cmd("FCALL").arg(&self.function).arg(1).arg(key).arg(args).query(conn)
        };
        match call(conn) {
            Err(e)
                if e.code() == Some("ERR")
                    && e.detail().is_some_and(|d| d.contains("Function not found")) =>
            {
                // Not loaded yet, or lost (a restart without persistence, FUNCTION FLUSH).
                redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(&self.library).query::<Value>(conn)?;
                call(conn)
            }
            result => result,
        }
    }

    /// Which way the script runs, for the report's backend line (nothing before the
    /// first call).
    fn script_note(&self) -> &'static str {
        match self.mode.load(Ordering::Relaxed) {
            MODE_FUNCTION => ", script by FCALL",
            MODE_EVAL => ", script by EVALSHA",
            _ => "",
        }
    }
}

/// Whether an error to FCALL or FUNCTION LOAD means this server will not run
/// functions for us: a server before Redis 7 (unknown command), or an ACL that does
/// not let this user (NOPERM).
fn no_functions(e: &redis::RedisError) -> bool {
    match e.code() {
        Some("NOPERM") => true,
        Some("ERR") => e.detail().is_some_and(|d| d.contains("unknown command")),
        _ => false,
    }
}

/// The seat table in Redis. See the module docs.
pub struct RedisBackend {
    link: Arc<Link>,
    /// "{prefix}" (or "{prefix}:tenant:NAME" for a tenant's pool): every key starts
    /// with it, and every pool of an installation shares the `{prefix}` hash slot.
    prefix: String,
    epoch_key: String,
    /// The tenant whose pool this is ([`Backend::open_tenant`]; `None`: the main pool).
    tenant: Option<String>,
    /// The data set this node knows (`None` before the first contact).
    epoch: Mutex<Option<Arc<str>>>,
    /// The server's clock at the last hello (microseconds) and when that was here.
    anchor: Mutex<Option<(i64, Instant)>>,
    /// Cluster microseconds minus the caller's monotonic microseconds.
    offset_us: OnceLock<i64>,
    down: AtomicBool,
    health: Mutex<Option<Down>>,
    /// One recovery at a time.
    recovery: Mutex<()>,
    local: RwLock<MemoryBackend>,
    /// Handles that live in the local table (ids with [`LOCAL_SEAT_BIT`]).
    local_ids: Mutex<HashSet<SeatId>>,
    /// This pool's offset for local ids (see [`LOCAL_NUMBER_MASK`]).
    local_offset: u64,
    scaled: Mutex<Option<Scaled>>,
    mirror: Mutex<HashMap<SeatId, Mirrored>>,
    last_reconcile: Mutex<Option<String>>,
    /// Tenants this node had to number while Redis was unreachable (`allow_local`):
    /// numbered down from the top, where the registry's numbers (up from 1) never
    /// reach, so another node reads such a handle as unknown, never as another
    /// tenant's.
    unregistered: Mutex<Vec<Arc<str>>>,
    /// The registry's numbers this node has used (the main pool's): claimed again
    /// with every registration, and when Redis comes back without its data.
    numbered: Mutex<BTreeMap<u32, Arc<str>>>,
}

impl std::fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBackend")
            .field("location", &self.link.location)
            .field("node", &self.link.node)
            .finish()
    }
}

impl RedisBackend {
    /// Connects to the server the config names. With `on_backend_error = "deny"` an
    /// unreachable server (or a refused login) is [`Error::Backend`]; with
    /// `"allow_local"` the backend opens degraded and keeps trying.
    pub fn open(settings: &RedisConfig) -> Result<RedisBackend, Error> {
        let mut info = settings.url.as_str().into_connection_info().map_err(|e| {
            Error::Backend(format!("[backend] url '{}' is not a usable Redis URL: {e}", settings.url))
        })?;
        let mut redis_info = info.redis_settings().clone();
        if let Some(user) = &settings.username {
            redis_info = redis_info.set_username(user);
        }
        if let Some(password) = &settings.password {
            redis_info = redis_info.set_password(password);
        }
        if let Some(db) = settings.database {
            redis_info = redis_info.set_db(i64::from(db));
        }
        let db = redis_info.db();
        info = info.set_redis_settings(redis_info);
        let scheme = match info.addr() {
            redis::ConnectionAddr::Tcp(..) => "redis",
            redis::ConnectionAddr::TcpTls { .. } => "rediss",
            _ => "redis+unix",
        };
        let location = format!("{scheme}://{} db {db}", info.addr());
        let client = redis::Client::open(info)
            .map_err(|e| Error::Backend(format!("redis at {location}: cannot use this address: {e}")))?;
        let script = redis::Script::new(SCRIPT);
        let function = format!("seatgate_{}", &script.get_hash()[..16]);
        let link = Arc::new(Link {
            settings: settings.clone(),
            client,
            location,
            // The node name plus the process: each process's handles are its own (a
            // shutdown gives back only them), also when a forking host runs several
            // processes per node.
            node: Arc::from(format!(
                "{} pid {}",
                settings.node.clone().unwrap_or_else(host_name),
                crate::backend::shm::own_pid()
            )),
            script,
            library: format!(
                "#!lua name={function}\n{}\nredis.register_function('{function}', function(keys, args) return main(args) end)\n",
                include_str!("redis.lua")
            ),
            function,
            mode: AtomicU8::new(MODE_UNKNOWN),
            tenant_script: redis::Script::new(TENANT_SCRIPT),
            pool: Mutex::new(Vec::new()),
        });
        RedisBackend::open_pool(link, format!("{{{}}}", settings.prefix), None)
    }

    /// A pool under `prefix` on `link`: learns the data set (or, with
    /// `on_backend_error = "allow_local"`, opens degraded when Redis is unreachable).
    fn open_pool(link: Arc<Link>, prefix: String, tenant: Option<String>) -> Result<RedisBackend, Error> {
        let backend = RedisBackend::pool_on(link, prefix, tenant);
        match backend.hello() {
            Ok(epoch) => *lock(&backend.epoch) = Some(epoch),
            Err(e) if backend.link.settings.on_backend_error == OnBackendError::Deny => {
                return Err(Error::Backend(backend.refusal("logins are refused", &e)));
            }
            Err(e) => backend.mark_down(&e),
        }
        Ok(backend)
    }

    /// A pool under `prefix` on `link` that has not spoken to Redis yet.
    fn pool_on(link: Arc<Link>, prefix: String, tenant: Option<String>) -> RedisBackend {
        let local = MemoryBackend::new();
        RedisBackend {
            link,
            epoch_key: format!("{prefix}:epoch"),
            prefix,
            tenant,
            epoch: Mutex::new(None),
            anchor: Mutex::new(None),
            offset_us: OnceLock::new(),
            down: AtomicBool::new(false),
            health: Mutex::new(None),
            recovery: Mutex::new(()),
            local: RwLock::new(local),
            local_ids: Mutex::new(HashSet::new()),
            local_offset: random_u64() & LOCAL_NUMBER_MASK,
            scaled: Mutex::new(None),
            mirror: Mutex::new(HashMap::new()),
            last_reconcile: Mutex::new(None),
            unregistered: Mutex::new(Vec::new()),
            numbered: Mutex::new(BTreeMap::new()),
        }
    }

    /// This node's name as the report shows it.
    pub fn node(&self) -> &str {
        &self.link.node
    }

    /// Whether the node serves from its local share now.
    pub fn is_degraded(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    fn refusal(&self, consequence: &str, error: &str) -> String {
        format!(
            "redis at {} unreachable: {error}; {consequence} (on_backend_error = \"deny\")",
            self.link.location
        )
    }

    fn allow_local(&self) -> bool {
        self.link.settings.on_backend_error == OnBackendError::AllowLocal
    }

    // ---- connections ----

    fn connect(&self) -> Result<Connection, String> {
        let conn = self.link.client.get_connection_with_timeout(self.link.settings.connect_timeout).map_err(
            |e| {
                if e.kind() == redis::ErrorKind::AuthenticationFailed {
                    format!("the server refused the login (check [backend] username and password): {e}")
                } else if e.is_timeout() {
                    format!(
                        "no connection within {} ms (connect_timeout): {e}",
                        self.link.settings.connect_timeout.as_millis()
                    )
                } else {
                    format!("cannot connect: {e}")
                }
            },
        )?;
        conn.set_read_timeout(Some(self.link.settings.timeout)).map_err(|e| e.to_string())?;
        conn.set_write_timeout(Some(self.link.settings.timeout)).map_err(|e| e.to_string())?;
        Ok(conn)
    }

    fn checkin(&self, conn: Connection) {
        let mut pool = lock(&self.link.pool);
        if pool.len() < POOL_IDLE && !self.down.load(Ordering::Acquire) {
            pool.push(conn);
        }
    }

    /// Runs `f` on a connection of the pool (or a new one). A pooled connection that
    /// turns out dead (the server restarted) is replaced once.
    fn exec<T>(&self, mut f: impl FnMut(&mut Connection) -> redis::RedisResult<T>) -> Result<T, String> {
        let pooled = lock(&self.link.pool).pop();
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.connect()?,
        };
        let describe = |e: &redis::RedisError| {
            if e.is_timeout() {
                format!("no answer within {} ms ({e})", self.link.settings.timeout.as_millis())
            } else {
                e.to_string()
            }
        };
        match f(&mut conn) {
            Ok(v) => {
                self.checkin(conn);
                Ok(v)
            }
            Err(e) if was_pooled && !e.is_timeout() && (e.is_connection_dropped() || e.is_io_error()) => {
                drop(conn);
                lock(&self.link.pool).clear();
                let mut conn = self.connect()?;
                match f(&mut conn) {
                    Ok(v) => {
                        self.checkin(conn);
                        Ok(v)
                    }
                    Err(e) => Err(describe(&e)),
                }
            }
            Err(e) => {
                // A reply that is an error leaves the connection in step; anything
                // else (timeout, broken pipe) may not.
                if matches!(e.kind(), redis::ErrorKind::Server(_)) && !e.is_io_error() {
                    self.checkin(conn);
                }
                Err(describe(&e))
            }
        }
    }

    fn mark_down(&self, error: &str) {
        let now = SystemTime::now();
        let mut health = lock(&self.health);
        let since = health.as_ref().map_or(now, |d| d.since);
        *health = Some(Down {
            since,
            error: error.to_string(),
            retry_at: Instant::now() + self.link.settings.retry_interval,
        });
        self.down.store(true, Ordering::Release);
        drop(health);
        lock(&self.link.pool).clear();
    }

    /// Establishes (or learns) the data set's epoch and the server's clock.
    fn hello(&self) -> Result<Arc<str>, String> {
        let candidate = format!("{:016x}", random_u64());
        let value = self.exec(|conn| {
            self.link.run(conn, &self.epoch_key, &["hello", &self.prefix, &candidate, &self.link.node, "0"])
        })?;
        let parts = items(&value);
        let epoch = at(parts, 0);
        if epoch.is_empty() {
            return Err("the hello script gave no epoch".into());
        }
        let server_us = int_at(parts, 1).saturating_mul(1_000_000).saturating_add(int_at(parts, 2));
        *lock(&self.anchor) = Some((server_us, Instant::now()));
        Ok(Arc::from(epoch))
    }

    // ---- time ----

    /// Fixes the offset from the caller's monotonic clock to cluster time, once.
    fn calibrate(&self, now: Mono) {
        if self.offset_us.get().is_some() {
            return;
        }
        if let Some(offset) = self.offset_at(now) {
            let _ = self.offset_us.set(offset);
        }
    }

    fn offset_at(&self, now: Mono) -> Option<i64> {
        let (server_us, at) = (*lock(&self.anchor))?;
        let elapsed = i64::try_from(at.elapsed().as_micros()).unwrap_or(i64::MAX);
        Some(server_us.saturating_add(elapsed).saturating_sub((now / 1000) as i64))
    }

    /// The offset, or before calibration one taken against the real monotonic clock.
    fn offset(&self) -> i64 {
        match self.offset_us.get() {
            Some(&o) => o,
            None => self.offset_at(SystemClock.monotonic()).unwrap_or(0),
        }
    }

    fn cluster_us(&self, now: Mono) -> i64 {
        ((now / 1000) as i64).saturating_add(self.offset())
    }

    fn mono_of(&self, cluster_us: i64) -> Mono {
        if cluster_us <= 0 {
            return 0;
        }
        let us = cluster_us.saturating_sub(self.offset()).max(1);
        (us as u64).saturating_mul(1000)
    }

    // ---- script calls ----

    /// Runs one operation of the script; on a reply, folds its count changes and
    /// released handles into `changes`. Does not recover or retry.
    fn invoke(
        &self,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
        op: &str,
        args: &[&str],
    ) -> Result<Reply, String> {
        let epoch = lock(&self.epoch).clone().unwrap_or_else(|| Arc::from(""));
        let now_us = self.cluster_us(now).to_string();
        let table = type_table(config);
        let mut all: SmallVec<[&str; 16]> = SmallVec::new();
        all.extend_from_slice(&[op, &self.prefix, &epoch, &self.link.node, &now_us, &table]);
        all.extend_from_slice(args);
        let value = self.exec(|conn| self.link.run(conn, &self.epoch_key, &all))?;
        let parts = items(&value);
        let status = at(parts, 0);
        if status.is_empty() {
            return Err(format!("unexpected reply to '{op}': {value:?}"));
        }
        if let Some(counts) = parts.get(1) {
            let counts = items(counts);
            for c in counts.chunks_exact(3) {
                if let Some(slot) = slot_of(config, &at(c, 0)) {
                    let before = u32::try_from(int_at(c, 1)).unwrap_or(0);
                    let after = u32::try_from(int_at(c, 2)).unwrap_or(0);
                    changes.count(slot, before, after);
                }
            }
        }
        if let Some(released) = parts.get(2) {
            for entry in items(released) {
                if let Some(seat) = self.released_entry(config, items(entry)) {
                    changes.released.push(seat);
                }
            }
        }
        Ok(Reply { status, detail: parts.get(3).map(|d| items(d).to_vec()).unwrap_or_default() })
    }

    /// A released handle from the script: seat, user, why, node, ext, ses, ut, st,
    /// since, then (type, used after) pairs.
    fn released_entry(&self, config: &Config, e: &[Value]) -> Option<ReleasedSeat> {
        let seat: SeatId = at(e, 0).parse().ok()?;
        let why = why_from(&at(e, 2)).unwrap_or(ReleaseWhy::Normal);
        if at(e, 3) == *self.link.node {
            lock(&self.mirror).remove(&seat);
        }
        let mut used: SmallVec<[(usize, u32); 4]> = e
            .get(9..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .filter_map(|p| Some((slot_of(config, &at(p, 0))?, u32::try_from(int_at(p, 1)).unwrap_or(0))))
            .collect();
        used.sort_unstable_by_key(|&(slot, _)| slot);
        let mut types = TypeSet::EMPTY;
        for &(slot, _) in &used {
            types.insert(slot);
        }
        Some(ReleasedSeat {
            seat,
            user: Arc::from(at(e, 1)),
            types,
            why,
            extension: label(at(e, 4)),
            session: label(at(e, 5)),
            used: used.into_iter().map(|(_, u)| u).collect(),
        })
    }

    /// Runs one operation against Redis, first trying to recover when it is due, and
    /// recovering once if Redis turns out to hold another data set (it restarted).
    fn call(
        &self,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
        op: &str,
        args: &[&str],
    ) -> Result<Reply, String> {
        self.ready(config, now, changes)?;
        for _ in 0..2 {
            let epoch = lock(&self.epoch).clone();
            let reply = self.invoke(config, now, changes, op, args).inspect_err(|e| self.mark_down(e))?;
            if reply.status != "epoch" {
                return Ok(reply);
            }
            self.recover(config, now, changes, epoch.as_deref())?;
        }
        Err("the Redis data set changed again while this call was retried".into())
    }

    /// Ok when Redis may be called: not known down, or down and recovered just now.
    fn ready(&self, config: &Config, now: Mono, changes: &mut Changes) -> Result<(), String> {
        if !self.down.load(Ordering::Acquire) {
            self.calibrate(now);
            return Ok(());
        }
        let error = match &*lock(&self.health) {
            Some(d) if Instant::now() < d.retry_at => return Err(d.error.clone()),
            Some(d) => d.error.clone(),
            None => String::new(),
        };
        let _recovering = match self.recovery.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(error),
        };
        if !self.down.load(Ordering::Acquire) {
            return Ok(());
        }
        self.reconcile(config, now, changes).inspect_err(|e| self.mark_down(e))
    }

    /// Redis answered with another data set than this node knew: take this node's
    /// handles there again (once, whichever thread gets here first).
    fn recover(
        &self,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
        stale: Option<&str>,
    ) -> Result<(), String> {
        let _recovering = lock(&self.recovery);
        if lock(&self.epoch).as_deref() != stale {
            return Ok(());
        }
        self.reconcile(config, now, changes).inspect_err(|e| self.mark_down(e))
    }

    /// Numbers `names` in the registry (see [`TENANT_SCRIPT`]), claiming first the
    /// numbers this node already uses; remembers the numbers it got.
    fn register_tenants(&self, names: &[&str], max: usize) -> Result<Vec<u32>, RegistryError> {
        let claims = lock(&self.numbered).clone();
        let refusal = std::cell::Cell::new(None);
        let numbers = self.exec(|conn| {
            let mut inv = self.link.tenant_script.prepare_invoke();
            inv.key(format!("{}:tenants", self.prefix))
                .key(format!("{}:tenant-names", self.prefix))
                .arg(max)
                .arg(claims.len());
            for (number, name) in &claims {
                inv.arg(&**name).arg(*number);
            }
            for name in names {
                inv.arg(*name);
            }
            inv.invoke::<Vec<u32>>(conn).inspect_err(|e| {
                refusal
                    .set([TENANTS_FULL, TENANTS_DISAGREE].into_iter().find(|&code| e.code() == Some(code)));
            })
        });
        let numbers: Vec<u32> =
            numbers.map_err(|message| RegistryError { refusal: refusal.get(), message })?;
        if numbers.len() != names.len() {
            return Err(RegistryError {
                refusal: None,
                message: format!(
                    "the tenant registry gave {} numbers for {} names",
                    numbers.len(),
                    names.len()
                ),
            });
        }
        let mut numbered = lock(&self.numbered);
        for (name, &number) in names.iter().zip(&numbers) {
            numbered.entry(number).or_insert_with(|| Arc::from(*name));
        }
        Ok(numbers)
    }

    /// Brings Redis up to date with this node: the handles it took there if Redis lost
    /// them, what its holders did while Redis was away, and the local table's handles.
    /// Clears the degraded state on success. The caller holds `recovery`.
    fn reconcile(&self, config: &Config, now: Mono, changes: &mut Changes) -> Result<(), String> {
        let epoch = self.hello()?;
        self.calibrate(now);
        let known = lock(&self.epoch).replace(epoch.clone());
        let lost = known.as_ref().is_some_and(|k| *k != epoch);
        let mut notes: Vec<String> = Vec::new();
        if lost && self.tenant.is_none() && !lock(&self.numbered).is_empty() {
            // The tenants' numbers first: a node numbering a new tenant meanwhile
            // must not be given one that this node's handles carry.
            self.register_tenants(&[], crate::engine::MAX_TENANTS)?;
        }
        if lost {
            let (kept, released) = self.retake_mirror(config, now, changes)?;
            notes.push(format!(
                "redis lost its data: {kept} handles of this node taken again, {released} released (did not fit)"
            ));
        } else {
            self.replay_mirror(config, now, changes)?;
        }
        // From here until the local table is empty, local operations wait.
        let mut local = self.local.write().unwrap_or_else(|e| e.into_inner());
        let (moved, released) = self.retake_local(&local, config, now, changes)?;
        *local = MemoryBackend::new();
        lock(&self.local_ids).clear();
        let was_down = lock(&self.health).take();
        self.down.store(false, Ordering::Release);
        drop(local);
        if let Some(down) = was_down {
            notes.push(format!(
                "redis was unreachable from {} to {}: {moved} local handles moved to redis, {released} released (did not fit)",
                rfc3339(down.since),
                rfc3339(SystemTime::now())
            ));
        }
        if !notes.is_empty() {
            *lock(&self.last_reconcile) = Some(format!("last reconcile: {}", notes.join("; ")));
        }
        Ok(())
    }

    /// Takes handles again in Redis under their ids. Per handle: (seat, mirror entry);
    /// returns the outcome of each ("ok", "present", "expired", "refused" + used).
    fn retake(
        &self,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
        handles: &[(SeatId, Mirrored)],
    ) -> Result<Vec<Vec<Value>>, String> {
        let mut outcomes = Vec::with_capacity(handles.len());
        for chunk in handles.chunks(RETAKE_CHUNK) {
            let fields: Vec<[String; 9]> = chunk
                .iter()
                .map(|(seat, m)| {
                    [
                        seat.to_string(),
                        m.user.to_string(),
                        m.user_types.clone(),
                        m.session_types.clone(),
                        m.lease_us.to_string(),
                        m.deadline_us.to_string(),
                        m.since_ms.to_string(),
                        m.extension.as_deref().unwrap_or("").to_string(),
                        m.session.as_deref().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            let args: Vec<&str> = fields.iter().flatten().map(String::as_str).collect();
            let reply = self.invoke(config, now, changes, "retake", &args)?;
            if reply.status != "ok" {
                return Err(format!("redis changed its data set again while reconciling ({})", reply.status));
            }
            let list = reply.detail.get(1).map(items).unwrap_or(&[]);
            outcomes.extend(list.iter().map(|o| items(o).to_vec()));
        }
        Ok(outcomes)
    }

    /// Reports a handle that could not be taken again.
    fn not_retaken(
        &self,
        config: &Config,
        seat: SeatId,
        m: &Mirrored,
        outcome: &[Value],
        changes: &mut Changes,
    ) {
        let why = if at(outcome, 0) == "expired" { ReleaseWhy::Expired } else { ReleaseWhy::Reconciled };
        let mut used: SmallVec<[(usize, u32); 4]> = outcome
            .get(1..)
            .unwrap_or(&[])
            .chunks_exact(2)
            .filter_map(|p| Some((slot_of(config, &at(p, 0))?, u32::try_from(int_at(p, 1)).unwrap_or(0))))
            .collect();
        used.sort_unstable_by_key(|&(slot, _)| slot);
        let types = set_of(config, &m.user_types).union(set_of(config, &m.session_types));
        changes.released.push(ReleasedSeat {
            seat,
            user: m.user.clone(),
            types,
            why,
            extension: m.extension.clone(),
            session: m.session.clone(),
            // Empty for an expired one: the engine reads the counts as they are.
            used: if used.len() == types.len() {
                used.into_iter().map(|(_, u)| u).collect()
            } else {
                SmallVec::new()
            },
        });
    }

    /// Redis came back without its data: take every handle this node holds there again.
    fn retake_mirror(
        &self,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<(usize, usize), String> {
        let handles: Vec<(SeatId, Mirrored)> = {
            let mut mirror = lock(&self.mirror);
            mirror.retain(|_, m| m.pending.is_none());
            let mut all: Vec<_> = mirror.iter().map(|(s, m)| (*s, m.clone())).collect();
            all.sort_by(|a, b| a.1.user.cmp(&b.1.user).then(a.0.cmp(&b.0)));
            all
        };
        let outcomes = self.retake(config, now, changes, &handles)?;
        let (mut kept, mut released) = (0, 0);
        for ((seat, m), outcome) in handles.iter().zip(outcomes) {
            match at(&outcome, 0).as_str() {
                "ok" | "present" => {
                    kept += 1;
                    if let Some(entry) = lock(&self.mirror).get_mut(seat) {
                        entry.touched = false;
                    }
                }
                _ => {
                    released += 1;
                    lock(&self.mirror).remove(seat);
                    self.not_retaken(config, *seat, m, &outcome, changes);
                }
            }
        }
        Ok((kept, released))
    }

    /// Applies in Redis what holders did to its handles while it was unreachable.
    fn replay_mirror(&self, config: &Config, now: Mono, changes: &mut Changes) -> Result<(), String> {
        let work: Vec<(SeatId, Option<ReleaseWhy>, bool)> = lock(&self.mirror)
            .iter()
            .filter(|(_, m)| m.pending.is_some() || m.touched)
            .map(|(s, m)| (*s, m.pending, m.touched))
            .collect();
        for (seat, pending, touched) in work {
            let id = seat.to_string();
            if let Some(why) = pending {
                // Its holder already heard of this release: report only what it cascades.
                let mut scratch = Changes::default();
                self.invoke(config, now, &mut scratch, "release", &[&id, why.as_str()])?;
                changes.counts.extend(scratch.counts);
                changes.released.extend(scratch.released.into_iter().filter(|r| r.seat != seat));
                lock(&self.mirror).remove(&seat);
            } else if touched {
                let reply = self.invoke(config, now, changes, "touch", &[&id])?;
                let mut mirror = lock(&self.mirror);
                match reply.status.as_str() {
                    "ok" => {
                        if let Some(m) = mirror.get_mut(&seat) {
                            m.touched = false;
                            m.deadline_us = score(&at(&reply.detail, 1));
                        }
                    }
                    _ => {
                        mirror.remove(&seat);
                    }
                }
            }
        }
        Ok(())
    }

    /// Moves the local table's handles into Redis, keeping their ids.
    fn retake_local(
        &self,
        local: &MemoryBackend,
        config: &Config,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<(usize, usize), String> {
        let ids = lock(&self.local_ids).clone();
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let scaled = self.scaled(config);
        let mut handles: Vec<(SeatId, Mirrored)> = local
            .holders(&scaled)
            .into_iter()
            .map(|h| (self.local_id(h.seat), h))
            .filter(|(id, _)| ids.contains(id))
            .map(|(id, h)| {
                let user_types = h.types.intersect(config.user_count_types());
                let lease_us =
                    config.lease_of(h.types).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(0));
                let deadline_us = if h.deadline == 0 {
                    0
                } else {
                    ((h.deadline / 1000) as i64).saturating_add(self.offset())
                };
                (
                    id,
                    Mirrored {
                        user: h.user,
                        user_types: names_csv(config, user_types),
                        session_types: names_csv(config, h.types.minus(user_types)),
                        extension: h.extension,
                        session: h.session,
                        since_ms: unix_ms(h.since),
                        lease_us,
                        deadline_us,
                        pending: None,
                        touched: false,
                    },
                )
            })
            .collect();
        // A user's earlier handles first: they usually hold what later ones require.
        handles.sort_by(|a, b| a.1.user.cmp(&b.1.user).then(a.0.cmp(&b.0)));
        let (mut moved, mut released) = (0, 0);
        for chunk in handles.chunks(RETAKE_CHUNK) {
            let outcomes = self.retake(config, now, changes, chunk)?;
            for ((seat, m), outcome) in chunk.iter().zip(outcomes) {
                lock(&self.local_ids).remove(seat);
                match at(&outcome, 0).as_str() {
                    "ok" | "present" => {
                        moved += 1;
                        lock(&self.mirror).insert(*seat, m.clone());
                    }
                    _ => {
                        released += 1;
                        self.not_retaken(config, *seat, m, &outcome, changes);
                    }
                }
            }
        }
        Ok((moved, released))
    }

    // ---- the local share ----

    fn local_id(&self, mem: SeatId) -> SeatId {
        LOCAL_SEAT_BIT | (mem.wrapping_add(self.local_offset) & LOCAL_NUMBER_MASK)
    }

    /// The local table's handle behind a local id (whether this pool issued it is
    /// for `local_ids` to say).
    fn mem_id(&self, seat: SeatId) -> Option<SeatId> {
        (seat & LOCAL_SEAT_BIT != 0 && seat <= SEAT_ID_MASK)
            .then(|| (seat & LOCAL_NUMBER_MASK).wrapping_sub(self.local_offset) & LOCAL_NUMBER_MASK)
    }

    /// The caller's config with every limit cut to this node's local share.
    fn scaled(&self, config: &Config) -> Arc<Config> {
        let key: Vec<(Arc<str>, u32)> = config.licenses.iter().map(|l| (l.name.clone(), l.limit)).collect();
        let mut cached = lock(&self.scaled);
        if let Some(s) = cached.as_ref().filter(|s| s.key == key) {
            return s.config.clone();
        }
        let mut scaled = config.clone();
        let share = u64::from(self.link.settings.local_share.min(100));
        for l in &mut scaled.licenses {
            l.limit = (u64::from(l.limit) * share / 100) as u32;
        }
        let scaled = Arc::new(scaled);
        *cached = Some(Scaled { key, config: scaled.clone() });
        scaled
    }

    fn local_error(&self, e: Error) -> Error {
        match e {
            Error::UnknownSeat(s) => Error::UnknownSeat(self.local_id(s)),
            Error::SeatExpired(s) => Error::SeatExpired(self.local_id(s)),
            Error::SeatReleased(s, why) => Error::SeatReleased(self.local_id(s), why),
            other => other,
        }
    }

    /// Moves what a local call changed into `changes`, with local ids.
    fn absorb_local(&self, local: Changes, changes: &mut Changes) {
        changes.counts.extend(local.counts);
        if local.released.is_empty() {
            return;
        }
        let mut ids = lock(&self.local_ids);
        for mut r in local.released {
            r.seat = self.local_id(r.seat);
            ids.remove(&r.seat);
            changes.released.push(r);
        }
    }

    /// Runs `f` on the local table if `seat` lives there.
    fn on_local<T>(
        &self,
        config: &Config,
        seat: SeatId,
        changes: &mut Changes,
        f: impl FnOnce(&MemoryBackend, &Config, SeatId, &mut Changes) -> Result<T, Error>,
    ) -> Option<Result<T, Error>> {
        let mem = self.mem_id(seat)?;
        let local = read(&self.local);
        if !lock(&self.local_ids).contains(&seat) {
            return None;
        }
        let scaled = self.scaled(config);
        let mut local_changes = Changes::default();
        let result = f(&local, &scaled, mem, &mut local_changes).map_err(|e| self.local_error(e));
        self.absorb_local(local_changes, changes);
        Some(result)
    }

    fn acquire_locally(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Option<Result<SeatId, Error>> {
        let local = read(&self.local);
        // Recovered meanwhile: the caller goes to Redis.
        if !self.down.load(Ordering::Acquire) {
            return None;
        }
        let scaled = self.scaled(config);
        let mut local_changes = Changes::default();
        let result = local.try_acquire(&scaled, req, &mut local_changes).map(|mem| {
            let id = self.local_id(mem);
            lock(&self.local_ids).insert(id);
            id
        });
        self.absorb_local(local_changes, changes);
        Some(result.map_err(|e| self.local_error(e)))
    }

    fn mirror_released(&self, config: &Config, seat: SeatId, m: &Mirrored, why: ReleaseWhy) -> ReleasedSeat {
        ReleasedSeat {
            seat,
            user: m.user.clone(),
            types: set_of(config, &m.user_types).union(set_of(config, &m.session_types)),
            why,
            extension: m.extension.clone(),
            session: m.session.clone(),
            used: SmallVec::new(),
        }
    }

    /// A release of a Redis handle while Redis is unreachable (allow_local): done now
    /// for the holder, applied in Redis when it is back.
    fn release_while_down(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        error: &str,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        let mut mirror = lock(&self.mirror);
        match mirror.get_mut(&seat) {
            Some(m) if m.pending.is_none() => {
                m.pending = Some(why);
                let released = self.mirror_released(config, seat, m, why);
                drop(mirror);
                changes.released.push(released);
                Ok(())
            }
            Some(_) => Err(Error::UnknownSeat(seat)),
            None => Err(Error::Backend(format!(
                "redis at {} unreachable: {error}; seat {seat} was not taken on this node, so it is released when redis is back or its lease runs out",
                self.link.location
            ))),
        }
    }

    fn touch_while_down(&self, seat: SeatId, now: Mono, error: &str) -> Result<(), Error> {
        let now_us = self.cluster_us(now);
        let mut mirror = lock(&self.mirror);
        match mirror.get_mut(&seat) {
            Some(m) if m.pending.is_none() => {
                if m.deadline_us != 0 && m.deadline_us <= now_us {
                    mirror.remove(&seat);
                    return Err(Error::SeatExpired(seat));
                }
                if m.lease_us > 0 {
                    m.deadline_us = now_us.saturating_add(m.lease_us);
                    m.touched = true;
                }
                Ok(())
            }
            Some(_) => Err(Error::UnknownSeat(seat)),
            None => Err(Error::Backend(format!(
                "redis at {} unreachable: {error}; seat {seat} was not taken on this node, so its lease cannot be renewed now",
                self.link.location
            ))),
        }
    }

    fn gone_error(seat: SeatId, why: &str) -> Error {
        match why_from(why) {
            Some(ReleaseWhy::Expired) => Error::SeatExpired(seat),
            Some(why) => Error::SeatReleased(seat, why),
            None => Error::UnknownSeat(seat),
        }
    }

    fn type_key(&self, name: &str) -> String {
        format!("{}:t:{name}", self.prefix)
    }

    /// A plain read (no script); marks Redis down when it fails.
    fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Option<T> {
        if self.down.load(Ordering::Acquire) {
            return None;
        }
        self.exec(|conn| cmd.query::<T>(conn)).inspect_err(|e| self.mark_down(e)).ok()
    }
}

impl Backend for RedisBackend {
    /// The time goes to the cluster (converted to its clock) and into deadlines.
    fn exact_now(&self) -> bool {
        true
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn try_acquire(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let user_types = req.types.intersect(config.user_count_types());
        let ut = names_csv(config, user_types);
        let st = names_csv(config, req.types.minus(user_types));
        let lease_us = (req.lease / 1000).to_string();
        let since_ms = req.since_ms;
        let since = since_ms.to_string();
        let args =
            [req.user, &ut, &st, &lease_us, &since, req.extension.unwrap_or(""), req.session.unwrap_or("")];
        let attempt = |changes: &mut Changes| -> Result<Result<SeatId, Error>, String> {
            let reply = self.call(config, req.now.get(), changes, "acquire", &args)?;
            let d = &reply.detail;
            Ok(match reply.status.as_str() {
                "ok" => {
                    let seat = at(d, 1).parse::<SeatId>().unwrap_or(0);
                    if seat == 0 || seat >= LOCAL_SEAT_BIT {
                        return Ok(Err(Error::Backend(format!(
                            "redis at {}: the script handed out seat id '{}', outside 1 to 2^47 - 1",
                            self.link.location,
                            at(d, 1)
                        ))));
                    }
                    lock(&self.mirror).insert(
                        seat,
                        Mirrored {
                            user: Arc::from(req.user),
                            user_types: ut.clone(),
                            session_types: st.clone(),
                            extension: req.extension.map(Arc::from),
                            session: req.session.map(Arc::from),
                            since_ms,
                            lease_us: i64::try_from(req.lease / 1000).unwrap_or(0),
                            deadline_us: score(&at(d, 2)),
                            pending: None,
                            touched: false,
                        },
                    );
                    Ok(seat)
                }
                "full" | "noseats" => Err(Error::LimitReached(Denial::limit(
                    type_name(config, &at(d, 1)),
                    u32::try_from(int_at(d, 2)).unwrap_or(0),
                    u32::try_from(int_at(d, 3)).unwrap_or(0),
                ))),
                "idspace" => Err(Error::Backend(format!(
                    "redis at {}: the seat-id sequence '{}:seq' is at {}, past 2^47 - 1, the highest seat id this version hands out; an older seatgate started it near 2^50. With the nodes of that version stopped, `SET {}:seq 0` is safe (every id it handed out is above 2^47) and lets logins go on",
                    self.link.location,
                    self.prefix,
                    at(d, 1),
                    self.prefix
                ))),
                "missing" => Err(Error::LimitReached(Denial {
                    license: type_name(config, &at(d, 1)),
                    used: u32::try_from(int_at(d, 2)).unwrap_or(0),
                    limit: u32::try_from(int_at(d, 3)).unwrap_or(0),
                    reason: DenialReason::MissingRequirement,
                    requires: Some(type_name(config, &at(d, 4))),
                    profile: None,
                })),
                other => Err(Error::Backend(format!(
                    "redis at {}: unexpected reply '{other}'",
                    self.link.location
                ))),
            })
        };
        let error = match attempt(changes) {
            Ok(result) => return result,
            Err(e) => e,
        };
        if self.allow_local() {
            match self.acquire_locally(config, req, changes) {
                Some(result) => return result,
                // Recovered while this call waited: Redis again, once.
                None => match attempt(changes) {
                    Ok(result) => return result,
                    Err(e) => return Err(Error::Backend(self.refusal("logins are refused", &e))),
                },
            }
        }
        Err(Error::Backend(self.refusal("logins are refused", &error)))
    }

    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        if let Some(result) = self
            .on_local(config, seat, changes, |local, scaled, mem, c| local.release(scaled, mem, why, now, c))
        {
            return result;
        }
        let id = seat.to_string();
        match self.call(config, now.get(), changes, "release", &[&id, why.as_str()]) {
            Ok(reply) => {
                lock(&self.mirror).remove(&seat);
                match reply.status.as_str() {
                    "ok" => Ok(()),
                    "expired" => Err(Error::SeatExpired(seat)),
                    // The engine's shutdown walks every holder the report shows, which
                    // here includes the other nodes'.
                    "othernode" => Err(Error::Backend(format!(
                        "seat {seat} was taken on node '{}': a shutdown of node '{}' leaves it held",
                        at(&reply.detail, 1),
                        self.link.node
                    ))),
                    _ => Err(Self::gone_error(seat, &at(&reply.detail, 1))),
                }
            }
            Err(e) if self.allow_local() => self.release_while_down(config, seat, why, &e, changes),
            Err(e) => Err(Error::Backend(self.refusal("nothing was released", &e))),
        }
    }

    fn release_user(
        &self,
        config: &Config,
        user: &str,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let error = match self.call(config, now, changes, "release_user", &[user, why.as_str()]) {
            Ok(reply) => {
                return match reply.status.as_str() {
                    "count" => Ok(usize::try_from(int_at(&reply.detail, 1)).unwrap_or(0)),
                    _ => Err(Error::UnknownUser(user.to_string())),
                };
            }
            Err(e) => e,
        };
        if !self.allow_local() {
            return Err(Error::Backend(self.refusal("nothing was released", &error)));
        }
        let scaled = self.scaled(config);
        let local_result = {
            let local = read(&self.local);
            let mut local_changes = Changes::default();
            let r = local.release_user(&scaled, user, why, now, &mut local_changes);
            self.absorb_local(local_changes, changes);
            r
        };
        let mut mirrored = 0;
        let mut mirror = lock(&self.mirror);
        for (seat, m) in mirror.iter_mut().filter(|(_, m)| &*m.user == user && m.pending.is_none()) {
            m.pending = Some(why);
            changes.released.push(self.mirror_released(config, *seat, m, why));
            mirrored += 1;
        }
        match local_result {
            Ok(n) => Ok(n + mirrored),
            Err(_) if mirrored > 0 => Ok(mirrored),
            Err(e) => Err(e),
        }
    }

    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error> {
        if let Some(result) =
            self.on_local(config, seat, changes, |local, scaled, mem, c| local.touch(scaled, mem, now, c))
        {
            return result;
        }
        let id = seat.to_string();
        match self.call(config, now, changes, "touch", &[&id]) {
            Ok(reply) => match reply.status.as_str() {
                "ok" => {
                    if let Some(m) = lock(&self.mirror).get_mut(&seat) {
                        m.deadline_us = score(&at(&reply.detail, 1));
                    }
                    Ok(())
                }
                "expired" => Err(Error::SeatExpired(seat)),
                _ => {
                    lock(&self.mirror).remove(&seat);
                    Err(Self::gone_error(seat, &at(&reply.detail, 1)))
                }
            },
            Err(e) if self.allow_local() => self.touch_while_down(seat, now, &e),
            Err(e) => Err(Error::Backend(self.refusal("no lease was renewed", &e))),
        }
    }

    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let error = match self.call(config, now, changes, "touch_user", &[user]) {
            Ok(reply) => {
                let d = &reply.detail;
                let renewed = usize::try_from(int_at(d, 1)).unwrap_or(0);
                let mut mirror = lock(&self.mirror);
                for pair in d.get(2..).unwrap_or(&[]).chunks_exact(2) {
                    if let Some(m) = at(pair, 0).parse::<SeatId>().ok().and_then(|s| mirror.get_mut(&s)) {
                        m.deadline_us = score(&at(pair, 1));
                    }
                }
                return if renewed == 0 { Err(Error::UnknownUser(user.to_string())) } else { Ok(renewed) };
            }
            Err(e) => e,
        };
        if !self.allow_local() {
            return Err(Error::Backend(self.refusal("no lease was renewed", &error)));
        }
        let scaled = self.scaled(config);
        let local_renewed = {
            let local = read(&self.local);
            let mut local_changes = Changes::default();
            let r = local.touch_user(&scaled, user, now, &mut local_changes);
            self.absorb_local(local_changes, changes);
            r.unwrap_or(0)
        };
        let seats: Vec<SeatId> =
            lock(&self.mirror).iter().filter(|(_, m)| &*m.user == user).map(|(s, _)| *s).collect();
        let renewed = local_renewed
            + seats.into_iter().filter(|&s| self.touch_while_down(s, now, &error).is_ok()).count();
        if renewed == 0 { Err(Error::UnknownUser(user.to_string())) } else { Ok(renewed) }
    }

    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        let mut reaped = 0;
        if !lock(&self.local_ids).is_empty() || self.down.load(Ordering::Acquire) {
            let scaled = self.scaled(config);
            let local = read(&self.local);
            let mut local_changes = Changes::default();
            reaped += local.reap(&scaled, now, &mut local_changes);
            self.absorb_local(local_changes, changes);
        }
        if let Ok(reply) = self.call(config, now, changes, "reap", &[]) {
            reaped += usize::try_from(int_at(&reply.detail, 1)).unwrap_or(0);
            // This node's handles that other nodes released: forget them here.
            if let Some(dropped) = reply.detail.get(2) {
                let mut mirror = lock(&self.mirror);
                for seat in items(dropped).iter().filter_map(|v| text(v)?.parse::<SeatId>().ok()) {
                    mirror.remove(&seat);
                }
            }
        }
        reaped
    }

    fn used(&self, config: &Config, slot: usize) -> u32 {
        let Some(license) = config.licenses.get(slot) else { return 0 };
        if self.down.load(Ordering::Acquire) {
            return read(&self.local).used(&self.scaled(config), slot);
        }
        self.query::<Option<u32>>(redis::cmd("HGET").arg(self.type_key(&license.name)).arg("used"))
            .flatten()
            .unwrap_or(0)
    }

    fn stats(&self, config: &Config, slot: usize) -> TypeStats {
        let Some(license) = config.licenses.get(slot) else { return TypeStats::default() };
        if self.down.load(Ordering::Acquire) {
            return read(&self.local).stats(&self.scaled(config), slot);
        }
        let fields = self
            .query::<Vec<Option<u64>>>(
                redis::cmd("HMGET").arg(self.type_key(&license.name)).arg(&["peak", "psr", "acq", "den"]),
            )
            .unwrap_or_default();
        let get = |i: usize| fields.get(i).copied().flatten().unwrap_or(0);
        TypeStats {
            peak: u32::try_from(get(0)).unwrap_or(u32::MAX),
            peak_since_reset: u32::try_from(get(1)).unwrap_or(u32::MAX),
            acquired: get(2),
            denied: get(3),
        }
    }

    fn count_denial(&self, config: &Config, slot: usize) {
        let Some(license) = config.licenses.get(slot) else { return };
        if self.down.load(Ordering::Acquire) {
            read(&self.local).count_denial(&self.scaled(config), slot);
            return;
        }
        let _ = self.query::<i64>(redis::cmd("HINCRBY").arg(self.type_key(&license.name)).arg("den").arg(1));
    }

    fn reset_peaks(&self, config: &Config) {
        if self.down.load(Ordering::Acquire) {
            read(&self.local).reset_peaks(&self.scaled(config));
            return;
        }
        let mut scratch = Changes::default();
        let now = SystemClock.monotonic();
        if let Err(e) = self.invoke(config, now, &mut scratch, "reset_peaks", &[]) {
            self.mark_down(&e);
        }
    }

    fn holders(&self, config: &Config) -> Vec<HeldSeat> {
        if !self.down.load(Ordering::Acquire) {
            let value = self
                .exec(|conn| {
                    self.link.run(conn, &self.epoch_key, &["holders", &self.prefix, "", &self.link.node, "0"])
                })
                .inspect_err(|e| self.mark_down(e));
            if let Ok(value) = value {
                return items(&value)
                    .iter()
                    .filter_map(|h| {
                        let h = items(h);
                        let seat = at(h, 0).parse().ok()?;
                        let deadline = score(&at(h, 1));
                        Some(HeldSeat {
                            seat,
                            user: Arc::from(at(h, 2)),
                            types: set_of(config, &at(h, 3)).union(set_of(config, &at(h, 4))),
                            extension: label(at(h, 5)),
                            session: label(at(h, 6)),
                            since: since_of(int_at(h, 7)),
                            deadline: if deadline == 0 { 0 } else { self.mono_of(deadline) },
                            node: label(at(h, 8)),
                            order: seat,
                        })
                    })
                    .collect();
            }
        }
        // Degraded: what this node holds, locally and (as last known) in Redis.
        let scaled = self.scaled(config);
        let mut out: Vec<HeldSeat> = read(&self.local)
            .holders(&scaled)
            .into_iter()
            .map(|mut h| {
                h.seat = self.local_id(h.seat);
                h.node = Some(self.link.node.clone());
                h
            })
            .collect();
        out.extend(lock(&self.mirror).iter().filter(|(_, m)| m.pending.is_none()).map(|(seat, m)| {
            HeldSeat {
                seat: *seat,
                user: m.user.clone(),
                types: set_of(config, &m.user_types).union(set_of(config, &m.session_types)),
                extension: m.extension.clone(),
                session: m.session.clone(),
                since: since_of(m.since_ms),
                deadline: if m.deadline_us == 0 { 0 } else { self.mono_of(m.deadline_us) },
                node: Some(self.link.node.clone()),
                order: *seat,
            }
        }));
        out
    }

    fn own_holders(&self, config: &Config) -> Vec<HeldSeat> {
        let me = Some(self.link.node.clone());
        self.holders(config).into_iter().filter(|h| h.node == me).collect()
    }

    fn lingering(&self, config: &Config) -> Vec<LingeringSeat> {
        if self.down.load(Ordering::Acquire) {
            return read(&self.local).lingering(&self.scaled(config));
        }
        let raw = self
            .query::<Vec<(String, f64)>>(
                redis::cmd("ZRANGE").arg(format!("{}:linger", self.prefix)).arg(0).arg(-1).arg("WITHSCORES"),
            )
            .unwrap_or_default();
        raw.into_iter()
            .filter_map(|(member, deadline)| {
                let (name, user) = member.split_once('\n')?;
                Some(LingeringSeat {
                    user: Arc::from(user),
                    slot: slot_of(config, name)?,
                    deadline: self.mono_of(deadline as i64),
                })
            })
            .collect()
    }

    fn shared(&self) -> bool {
        true
    }

    /// The numbers from the registry in Redis (see [`TENANT_SCRIPT`]). With Redis
    /// unreachable, `deny` refuses, and `allow_local` numbers the tenants on this node
    /// from the top down: its own handles work, another node finds them unknown.
    fn tenant_numbers(&self, names: &[&str], max: usize) -> Result<Option<Vec<u32>>, Error> {
        let registered = self.register_tenants(names, max);
        let error = match registered {
            Ok(numbers) => return Ok(Some(numbers)),
            Err(RegistryError { refusal: Some(TENANTS_FULL), message }) => {
                return Err(Error::InvalidArgument(message));
            }
            Err(RegistryError { refusal: Some(_), message }) => return Err(Error::Backend(message)),
            Err(RegistryError { refusal: None, message }) => message,
        };
        if !self.allow_local() {
            return Err(Error::Backend(self.refusal("its tenants cannot be numbered", &error)));
        }
        self.mark_down(&error);
        let mut local = lock(&self.unregistered);
        let mut numbers = Vec::with_capacity(names.len());
        for &name in names {
            let index = match local.iter().position(|n| &**n == name) {
                Some(i) => i,
                None => {
                    local.push(Arc::from(name));
                    local.len() - 1
                }
            };
            numbers.push((max - index) as u32);
        }
        Ok(Some(numbers))
    }

    fn tenant_named(&self, number: u32) -> Result<Option<Arc<str>>, Error> {
        let name: Option<String> = self
            .exec(|conn| redis::cmd("HGET").arg(format!("{}:tenant-names", self.prefix)).arg(number).query(conn))
            .map_err(|e| Error::Backend(format!("redis at {} unreachable: {e}; the seat handle's tenant number {number} cannot be looked up", self.link.location)))?;
        let name = name.map(Arc::<str>::from);
        if let Some(name) = &name {
            lock(&self.numbered).entry(number).or_insert_with(|| name.clone());
        }
        Ok(name)
    }

    /// The keys under `{prefix}:tenant:NAME` (all in the installation's `{prefix}` hash
    /// slot) on the same server, through this pool's connections: one client and one
    /// pool of connections serve every tenant. The tenant's pool has its own data set
    /// (epoch and id sequence, learnt now: one round trip), its own local share and
    /// mirror under `on_backend_error = "allow_local"`, and its own degraded state.
    /// While this pool knows Redis is unreachable and is not due to try again, the
    /// tenant's opens without trying: refused under `"deny"`, degraded under
    /// `"allow_local"`.
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        super::check_tenant_name(tenant)?;
        let prefix = format!("{}:tenant:{tenant}", self.prefix);
        let known_down = lock(&self.health).as_ref().filter(|d| Instant::now() < d.retry_at).map(|d| Down {
            since: d.since,
            error: d.error.clone(),
            retry_at: d.retry_at,
        });
        let Some(down) = known_down else {
            return Ok(Box::new(RedisBackend::open_pool(
                self.link.clone(),
                prefix,
                Some(tenant.to_string()),
            )?));
        };
        if !self.allow_local() {
            return Err(Error::Backend(self.refusal("logins are refused", &down.error)));
        }
        let pool = RedisBackend::pool_on(self.link.clone(), prefix, Some(tenant.to_string()));
        *lock(&pool.health) = Some(down);
        pool.down.store(true, Ordering::Release);
        Ok(Box::new(pool))
    }

    fn status(&self, _config: &Config) -> BackendStatus {
        let tenant = self.tenant.as_ref().map(|t| format!(" tenant '{t}'")).unwrap_or_default();
        let script = self.link.script_note();
        let detail = format!(
            "{} prefix '{}'{tenant}, node '{}'{script}",
            self.link.location, self.link.settings.prefix, self.link.node
        );
        let degraded = lock(&self.health).as_ref().map(|d| {
            let since = rfc3339(d.since);
            if self.allow_local() {
                format!(
                    "redis at {} unreachable since {since}: serving {}% of each limit locally ({})",
                    self.link.location, self.link.settings.local_share, d.error
                )
            } else {
                format!(
                    "redis at {} unreachable since {since}: logins are refused (on_backend_error = \"deny\"; {})",
                    self.link.location, d.error
                )
            }
        });
        let warnings = lock(&self.last_reconcile).iter().cloned().collect();
        BackendStatus { kind: self.kind(), detail, degraded, warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_ids_never_look_like_redis_ids_and_map_back() {
        let settings = RedisConfig {
            url: "redis://127.0.0.1:1".into(),
            password: None,
            username: None,
            database: None,
            prefix: "t".into(),
            node: Some("n1".into()),
            connect_timeout: Duration::from_millis(50),
            timeout: Duration::from_millis(50),
            on_backend_error: OnBackendError::AllowLocal,
            local_share: 50,
            retry_interval: Duration::from_secs(60),
        };
        let b = RedisBackend::open(&settings).expect("allow_local opens degraded");
        assert!(b.is_degraded());
        // Local ids: bit 47 set (Redis's sequence stays below it), nothing above it.
        for mem in [1, 12345, LOCAL_NUMBER_MASK - b.local_offset, LOCAL_NUMBER_MASK] {
            let id = b.local_id(mem);
            assert!(id & LOCAL_SEAT_BIT != 0 && id <= SEAT_ID_MASK, "{id:#x}");
            assert_eq!(b.mem_id(id), Some(mem));
        }
        assert_eq!(b.mem_id(12345), None);
        assert_eq!(b.mem_id(LOCAL_SEAT_BIT << 1 | 5), None, "an id with the engine's bits");

        // A tenant of a pool that knows Redis is down opens degraded at once, named.
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 2\n", "t.toml").unwrap();
        let t = b.open_tenant("acme-1").expect("a tenant opens degraded");
        let status = t.status(&config);
        assert!(status.degraded.is_some(), "{status:?}");
        assert!(status.detail.contains("tenant 'acme-1'"), "{}", status.detail);
        assert!(matches!(b.open_tenant("a/b"), Err(Error::Backend(_))));
        assert_eq!(score("+inf"), 0);
        assert_eq!(score("1790000000123456"), 1_790_000_000_123_456);
    }
}
