//! One engine value: a validated config, a seat table behind the backend boundary, a
//! clock, and the lifecycle around them (leases and the reaper, hot reload, events and
//! the audit log). The C API keeps one in a global; Rust code builds as many as it likes.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use dashmap::DashMap;
use serde_json::json;

use crate::audit::{AuditLog, AuditStatus};
use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, Changes, CountChange, ReleaseWhy, SeatRequest, TypeStats};
use crate::clock::{
    Clock, Now, SystemClock, from_unix_ms, from_unix_secs, mono_ns, rfc3339, short_duration, unix_secs,
};
use crate::config::{Config, CountMode, LimitInputs, Lint, PoolKind, Previous, SlotState, TenantDef};
use crate::error::{Denial, DenialReason, Error};
use crate::events::{Detail, Event, EventKind, EventMask, EventSink};
use crate::policy::{EmergencyState, StateStore};
use crate::reaper::Reaper;
use crate::report::{Page, Report};
use crate::signed::SignedLicense;
use crate::types::{MAX_LABEL_LEN, MAX_PROFILES_LEN, SeatId, TypeSet};

/// Seat ids carry their tenant's number in the bits above this many (0: the default
/// tenant), so a release finds the tenant's pool from the id alone.
pub const TENANT_SHIFT: u32 = 48;
const SEAT_MASK: u64 = (1 << TENANT_SHIFT) - 1;

/// The bit of `Engine::observers` that says an audit log is written (it hears every
/// call); the listener's [`EventMask`] uses bits 1 to 12.
const AUDITED: u32 = 1 << 31;

/// Whether somebody among `observers` hears every login and logout: an audit log, or
/// a listener of acquired or normal released events.
#[inline(always)]
fn hears_every_login(observers: u32) -> bool {
    observers & (AUDITED | EventMask::EVERY_LOGIN.bits()) != 0
}

/// The threshold `change` moved its type across, going up or coming down, if any.
#[inline]
fn threshold_crossed(config: &Config, change: &CountChange) -> Option<EventKind> {
    let threshold = config.licenses.get(change.slot)?.alert_seats()?;
    if change.before < threshold && change.after >= threshold {
        Some(EventKind::ThresholdUp)
    } else if change.before >= threshold && change.after < threshold {
        Some(EventKind::ThresholdDown)
    } else {
        None
    }
}

/// Most tenants one engine can serve (the number must fit above [`TENANT_SHIFT`]).
pub const MAX_TENANTS: usize = (1 << (64 - TENANT_SHIFT)) - 1;

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
    /// The tenant whose pool serves the request (`None`: the default tenant).
    pub tenant: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub fn new(user: &'a str, profiles: &'a str) -> Request<'a> {
        Request { user, profiles, extension: None, session: None, tenant: None }
    }
    pub fn tenant(mut self, tenant: &'a str) -> Request<'a> {
        self.tenant = Some(tenant);
        self
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

/// Use of one license type at one instant, with its billing counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub name: Arc<str>,
    pub used: u32,
    pub limit: u32,
    pub stats: TypeStats,
}

/// What a reload changed, in one sentence per change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadSummary {
    pub changes: Vec<String>,
}

impl std::fmt::Display for ReloadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.changes.is_empty() {
            f.write_str("no changes")
        } else {
            f.write_str(&self.changes.join("; "))
        }
    }
}

pub struct Engine {
    /// The default tenant's view: the file's config with the limits that do not come
    /// from the file (run-time limits, signed caps, emergency seats). Everything the
    /// default pool does goes through it.
    config: ArcSwap<Config>,
    /// The config as loaded from the file; every view is built from it.
    base: ArcSwap<Config>,
    /// The file `reload(None)` reads again.
    path: Mutex<Option<PathBuf>>,
    /// Serialises reloads; holds the configurations replaced so far that someone may
    /// still be acquiring through (their orphaned slots are not reused until none is).
    reload_lock: Mutex<Vec<Weak<Config>>>,
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    /// Whether `clock` is the [`SystemClock`]: the login path then reads it without
    /// a call through the trait object.
    system_clock: bool,
    /// Whether the backend is shared with other processes, which may reload the
    /// config ([`Backend::reload_epoch`]); `false`: nothing to follow.
    shared_backend: bool,
    sink: ArcSwapOption<SinkBox>,
    audit: ArcSwapOption<AuditLog>,
    /// Who hears about calls, in the one word the hot path loads: the listener's
    /// [`EventMask`] while a listener is installed (0 without one), and [`AUDITED`]
    /// while an audit log is. Set under `observers_lock` after every change of
    /// `sink`, `mask` or `audit`.
    observers: AtomicU32,
    /// The events the listener hears (kept while none is installed).
    mask: AtomicU32,
    observers_lock: Mutex<()>,
    started_at: SystemTime,
    peaks_reset_at: Mutex<Option<SystemTime>>,
    reaper: Mutex<Option<Reaper>>,
    /// The backend's reload epoch this engine's config matches (see
    /// [`Backend::reload_epoch`]), and why following another process's reload
    /// failed, if it did.
    seen_reload: AtomicU64,
    follow_error: Mutex<Option<String>>,
    /// Entitlement policy: emergency window, expiry, warnings.
    policy: Mutex<PolicyState>,
    /// Types that refuse new logins now (expired), as [`TypeSet`] bits.
    expired: AtomicU64,
    /// Unix second at which the policy must be looked at again.
    next_policy_at: AtomicI64,
    /// The vendor-signed license's terms, when one is configured.
    signed: ArcSwapOption<SignedLicense>,
    /// Limits set at run time: (tenant, type) -> limit. Kept across reloads.
    runtime_limits: RwLock<RuntimeLimits>,
    /// Bumped whenever views must be rebuilt (reload, run-time limit, emergency),
    /// always after `config` changed: a thread's cached copy of `config`
    /// (`THREAD_CACHE`) is current while this still reads the same.
    view_gen: AtomicU64,
    /// Tells this engine's entries in thread caches from another engine's.
    id: u64,
    /// Extra seats the views carry now (an open emergency window), else 0.
    emergency_seats: AtomicU32,
    tenants: Tenants,
}

/// Numbers engines, for `THREAD_CACHE`.
static NEXT_ENGINE_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's [`ThreadCache`].
    static THREAD_CACHE: ThreadCache = const {
        ThreadCache {
            running: RefCell::new(None),
            config: RefCell::new(None),
            lane: Cell::new(None),
            tenants: RefCell::new(ThreadTenants { slots: [const { None }; THREAD_TENANTS], next: 0 }),
        }
    };
}

/// What a thread keeps between calls, in one thread-local so that a call reaches all
/// of it with one lookup (in a shared library each lookup is a call into the loader).
pub(crate) struct ThreadCache {
    /// The C API's running engine as this thread last used it, and the generation it
    /// was taken at (kept for `ffi::with_engine`, here so that its lookup also finds
    /// `config` and `lane` for the call it makes: see [`with_thread_cache`]).
    pub(crate) running: RefCell<Option<(u64, Arc<Engine>)>>,
    /// The default pool's config as this thread last used it: (engine id, `view_gen`,
    /// config). Loading an `ArcSwap` costs two atomic read-modify-writes (a debt
    /// slot taken and given back); a hit here costs none. A config replaced by a
    /// reload lives on in a thread's copy only until that thread's next call.
    config: RefCell<Option<(u64, u64, Arc<Config>)>>,
    /// This thread's number for backends that keep per-thread state ([`Changes::lane`]),
    /// given on its first call.
    lane: Cell<Option<usize>>,
    /// The tenants' pools and views this thread used last (see [`Engine::with_tenant`]).
    tenants: RefCell<ThreadTenants>,
}

/// Tenants a thread keeps: a PBX thread serves a few at a time; past that, the oldest
/// goes for a new one.
const THREAD_TENANTS: usize = 4;

/// A tenant's pool and its view at one `view_gen`, as this thread last used them.
/// Like the config in [`ThreadCache::config`], they live on in the thread's copy only
/// until its next call for that tenant (or until the entry is reused).
struct CachedTenant {
    engine: u64,
    generation: u64,
    pool: Arc<TenantPool>,
    view: Arc<Config>,
}

struct ThreadTenants {
    slots: [Option<CachedTenant>; THREAD_TENANTS],
    /// Where a new tenant goes when no entry is stale.
    next: usize,
}

/// Which tenant a call is for: a request's (by name; only a tenant this process
/// serves) or a seat id's (by its tag).
#[derive(Clone, Copy)]
enum TenantKey<'a> {
    Name(&'a str),
    Seat(SeatId),
}

impl ThreadTenants {
    /// The entry for `key` current at (`engine`, `generation`).
    fn find(&self, engine: u64, generation: u64, key: TenantKey<'_>) -> Option<&CachedTenant> {
        self.slots.iter().flatten().find(|t| {
            (t.engine, t.generation) == (engine, generation)
                && match key {
                    TenantKey::Name(name) => t.pool.is_served() && *t.pool.name == *name,
                    TenantKey::Seat(seat) => t.pool.tag == seat & !SEAT_MASK,
                }
        })
    }

    /// Keeps `tenant`: in place of its own stale entry or of one from another engine
    /// or generation when there is one, else of the oldest.
    fn keep(&mut self, tenant: CachedTenant) {
        let stale = self.slots.iter().position(|t| match t {
            None => true,
            Some(t) => {
                Arc::ptr_eq(&t.pool, &tenant.pool)
                    || (t.engine, t.generation) != (tenant.engine, tenant.generation)
            }
        });
        let at = stale.unwrap_or(self.next % THREAD_TENANTS);
        self.slots[at] = Some(tenant);
        if stale.is_none() {
            self.next = at + 1;
        }
    }
}

impl ThreadCache {
    /// Lets go of what this thread keeps of an engine: the running one, its config and
    /// its tenants' pools (the C API's shutdown; other threads let go at their next
    /// call).
    pub(crate) fn forget_engine(&self) {
        if let Ok(mut running) = self.running.try_borrow_mut() {
            running.take();
        }
        if let Ok(mut config) = self.config.try_borrow_mut() {
            config.take();
        }
        if let Ok(mut tenants) = self.tenants.try_borrow_mut() {
            tenants.slots = [const { None }; THREAD_TENANTS];
        }
    }

    #[inline(always)]
    fn lane(&self) -> usize {
        match self.lane.get() {
            Some(lane) => lane,
            None => {
                let lane = crate::backend::next_thread_lane();
                self.lane.set(Some(lane));
                lane
            }
        }
    }
}

/// Runs `f` on the calling thread's cache; `None` while the thread is being torn
/// down. The C API looks it up once a call and passes it on
/// ([`Engine::try_acquire_cached`], [`Engine::release_cached`]).
#[inline(always)]
pub(crate) fn with_thread_cache<R>(f: impl FnOnce(&ThreadCache) -> R) -> Option<R> {
    THREAD_CACHE.try_with(f).ok()
}

/// The calling thread's lane, for the calls that do not go through
/// [`Engine::with_config`] (`None` while the thread is being torn down).
fn thread_lane() -> Option<usize> {
    with_thread_cache(ThreadCache::lane)
}

/// Limits set at run time, by (tenant, type name); `None`: the default tenant.
type RuntimeLimits = HashMap<(Option<Arc<str>>, Arc<str>), u32>;

/// The policy's state that changes over time.
struct PolicyState {
    store: Option<StateStore>,
    emergency: EmergencyState,
    /// The state file's fingerprint when last read (a change by the CLI or another
    /// process is picked up).
    stamp: Option<(SystemTime, u64)>,
    /// Whether the views carry the emergency seats.
    emergency_in_view: bool,
    /// Types seen expired already (their event went out).
    expired_seen: TypeSet,
    /// Warnings already sent (by key), and the ones in force for the report.
    warned: HashSet<String>,
    warnings: Vec<String>,
}

/// One tenant's pool: opened on first use, with a view built from the engine's config.
struct TenantPool {
    name: Arc<str>,
    /// The tenant's number, shifted into place: or-ed into every seat id it issues.
    tag: u64,
    backend: OnceLock<Box<dyn Backend>>,
    view: ArcSwapOption<TenantView>,
    /// Whether this process serves the tenant: declared in its config or given a
    /// limit here. A tenant met only in another process's handle is released here
    /// but not served: its limits were never given to this process.
    served: AtomicBool,
}

impl TenantPool {
    fn is_served(&self) -> bool {
        self.served.load(Ordering::Relaxed)
    }
}

struct TenantView {
    generation: u64,
    config: Arc<Config>,
}

/// Every tenant this engine knows: declared in the file, given limits at run time, or
/// met in a seat handle that another process sharing the table issued.
///
/// A tenant's number (its handles' top bits) comes from the backend's registry when
/// the table is shared (`shm`, `redis`), so every process gives a tenant the same number
/// whatever order it met the tenants in; a private table's engine numbers its own.
#[derive(Default)]
struct Tenants {
    by_name: DashMap<Arc<str>, Arc<TenantPool>, foldhash::fast::RandomState>,
    /// By number - 1 (`None`: a number this engine has not met).
    by_number: RwLock<Vec<Option<Arc<TenantPool>>>>,
}

impl Tenants {
    /// The pool of a tenant this process now serves, registering it when new.
    fn register(&self, backend: &dyn Backend, name: &str) -> Result<Arc<TenantPool>, Error> {
        self.register_all(backend, &[name])?;
        self.get(name).ok_or_else(|| Error::Backend(format!("internal: tenant '{name}' was not registered")))
    }

    /// Marks the tenants of `names` served, registering the new ones with one look at
    /// the backend's registry.
    fn register_all(&self, backend: &dyn Backend, names: &[&str]) -> Result<(), Error> {
        let new: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| match self.by_name.get(*n) {
                // Met in a handle before, perhaps: served from now on.
                Some(t) => {
                    t.served.store(true, Ordering::Relaxed);
                    false
                }
                None => true,
            })
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        // The shared numbers are read before the lock: the registry is a file, and
        // releases of tenants' handles read `by_number` meanwhile.
        let shared = backend.tenant_numbers(&new, MAX_TENANTS)?;
        let mut numbers = self.by_number.write().unwrap_or_else(|e| e.into_inner());
        for (i, &name) in new.iter().enumerate() {
            if let Some(t) = self.by_name.get(name) {
                t.served.store(true, Ordering::Relaxed);
                continue;
            }
            let number = match &shared {
                Some(shared) => shared.get(i).copied().unwrap_or(0) as usize,
                None if numbers.len() < MAX_TENANTS => numbers.len() + 1,
                None => {
                    return Err(Error::InvalidArgument(format!(
                        "cannot add tenant '{name}': one installation serves at most {MAX_TENANTS} tenants"
                    )));
                }
            };
            self.insert(&mut numbers, name, number, true)?;
        }
        Ok(())
    }

    /// Puts tenant `name` in place under `number`.
    fn insert(
        &self,
        numbers: &mut Vec<Option<Arc<TenantPool>>>,
        name: &str,
        number: usize,
        served: bool,
    ) -> Result<Arc<TenantPool>, Error> {
        if number == 0 || number > MAX_TENANTS {
            return Err(Error::Backend(format!(
                "tenant '{name}' has number {number} in the tenant registry, outside 1 to {MAX_TENANTS}"
            )));
        }
        if let Some(Some(other)) = numbers.get(number - 1) {
            return Err(Error::Backend(format!(
                "tenant '{name}' has number {number} in the tenant registry, which this process knows as tenant '{}': the registry was replaced while the table was in use (stop every process using the table and start them again)",
                other.name
            )));
        }
        let pool = Arc::new(TenantPool {
            name: Arc::from(name),
            tag: (number as u64) << TENANT_SHIFT,
            backend: OnceLock::new(),
            view: ArcSwapOption::empty(),
            served: AtomicBool::new(served),
        });
        if numbers.len() < number {
            numbers.resize(number, None);
        }
        numbers[number - 1] = Some(pool.clone());
        self.by_name.insert(pool.name.clone(), pool.clone());
        Ok(pool)
    }

    fn get(&self, name: &str) -> Option<Arc<TenantPool>> {
        self.by_name.get(name).map(|t| t.clone())
    }

    /// The pool of a tenant this process serves (see [`TenantPool::served`]).
    fn served(&self, name: &str) -> Option<Arc<TenantPool>> {
        self.get(name).filter(|t| t.is_served())
    }

    /// The pool whose handles carry `tag`. A number this engine has not met is looked
    /// up in the backend's registry: another process registered it (a tenant added
    /// by a reload or given a limit at run time there), and its handles are released
    /// here like any other.
    fn by_tag(&self, backend: &dyn Backend, tag: u64) -> Result<Option<Arc<TenantPool>>, Error> {
        let n = (tag >> TENANT_SHIFT) as usize;
        let Some(index) = n.checked_sub(1) else { return Ok(None) };
        if let Some(Some(pool)) = self.by_number.read().unwrap_or_else(|e| e.into_inner()).get(index) {
            return Ok(Some(pool.clone()));
        }
        let Some(name) = backend.tenant_named(n as u32)? else { return Ok(None) };
        if let Some(pool) = self.get(&name) {
            if pool.tag == tag & !SEAT_MASK {
                // Another thread registered it meanwhile.
                return Ok(Some(pool));
            }
            // Known here under another number: the registry and this process disagree.
            return Err(Error::Backend(format!(
                "seat handle names tenant number {n}, '{name}' in the tenant registry, which this process numbers {}: the registry was replaced while the table was in use",
                pool.tag >> TENANT_SHIFT
            )));
        }
        let mut numbers = self.by_number.write().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(pool)) = numbers.get(index) {
            return Ok(Some(pool.clone()));
        }
        self.insert(&mut numbers, &name, n, false).map(Some)
    }

    /// Every registered tenant, in number order.
    fn all(&self) -> Vec<Arc<TenantPool>> {
        self.by_number.read().unwrap_or_else(|e| e.into_inner()).iter().flatten().cloned().collect()
    }

    /// The tenants whose pool is open (the others hold nothing).
    fn open(&self) -> Vec<Arc<TenantPool>> {
        self.all().into_iter().filter(|t| t.backend.get().is_some()).collect()
    }
}

/// A tenant's use of its types, for the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TenantUsage {
    pub tenant: String,
    /// Per active type: name, used, limit.
    pub licenses: Vec<(String, u32, u32)>,
    pub holders: usize,
}

/// The emergency window as the report and the C API show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EmergencyStatus {
    /// "never used", "open", "ended", "available again".
    pub state: String,
    pub opened_at: Option<String>,
    pub ends_at: Option<String>,
    /// Extra seats of each affected type.
    pub seats: u32,
    pub types: Vec<String>,
    /// Extra seats in use now (use beyond the permanent limit), summed over types.
    pub in_use: u32,
    /// Whether `emergency_activate` would open a window now, and if not, why.
    pub can_activate: bool,
    pub why_not: Option<String>,
}

/// `ArcSwapOption` needs a sized type.
struct SinkBox(EventSink);

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config.load().source)
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

#[inline]
fn check_label(what: &str, value: &str) -> Result<(), Error> {
    // The common label (a user name, an extension) is printable ASCII: one pass over
    // its words decides it. Anything else takes the careful path.
    if crate::text::plain_label(value.as_bytes(), MAX_LABEL_LEN) {
        return Ok(());
    }
    check_label_slowly(what, value)
}

#[cold]
fn check_label_slowly(what: &str, value: &str) -> Result<(), Error> {
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

/// The union of the seat sets of a comma-separated list of profile or type names.
#[inline(always)]
fn resolve(config: &Config, profiles: &str) -> Result<TypeSet, Error> {
    // The common request names one profile exactly as configured (a configured name
    // has passed every check below already).
    match config.resolve_name(profiles) {
        Some(set) => Ok(set),
        None => resolve_list(config, profiles),
    }
}

/// [`resolve`] for a list, or a name not configured.
#[cold]
fn resolve_list(config: &Config, profiles: &str) -> Result<TypeSet, Error> {
    if profiles.len() > MAX_PROFILES_LEN {
        return Err(Error::InvalidArgument(format!(
            "profile list is {} bytes long; the maximum is {MAX_PROFILES_LEN}",
            profiles.len()
        )));
    }
    if has_control(profiles) {
        return Err(Error::InvalidArgument("profile list contains a control character".into()));
    }
    let mut set = TypeSet::EMPTY;
    for name in profiles.split(',') {
        let name = name.trim_matches(' ');
        if name.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "profile list '{profiles}' has an empty name; separate names with single commas"
            )));
        }
        set = set.union(config.resolve_name(name).ok_or_else(|| Error::UnknownProfile(name.to_string()))?);
    }
    Ok(set)
}

/// What an operation did, for the listener and the audit log.
#[derive(Clone, Copy)]
enum Op<'a> {
    Acquired {
        seat: SeatId,
        req: &'a Request<'a>,
        types: TypeSet,
        /// The seat's "since": its events carry this time, read once for both.
        since_ms: i64,
    },
    Denied {
        req: &'a Request<'a>,
        denial: &'a Denial,
    },
    Released,
    Reloaded {
        source: &'a str,
        summary: &'a ReloadSummary,
        crossings: &'a [(usize, EventKind)],
    },
    /// Something the policy or an admin did: an emergency window, an expiry, a
    /// warning, a limit set at run time.
    Notice {
        kind: EventKind,
        slot: Option<usize>,
        detail: &'a str,
    },
}

impl Engine {
    /// Loads and validates `path`, over the seat table its `[backend]` names (the
    /// in-memory table when it names none).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Engine, Error> {
        let config = Config::from_file(path.as_ref())?;
        let backend = crate::backend::open(&config)?;
        let engine = Engine::with_backend(config, backend)?;
        *engine.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_ref().to_path_buf());
        Ok(engine)
    }

    /// An engine over an already validated config, with the backend it names.
    pub fn open(config: Config) -> Result<Engine, Error> {
        let backend = crate::backend::open(&config)?;
        Engine::with_backend(config, backend)
    }

    /// Loads and validates `path`, over the given seat table.
    pub fn from_file_with_backend(
        path: impl AsRef<Path>,
        backend: Box<dyn Backend>,
    ) -> Result<Engine, Error> {
        let engine = Engine::with_backend(Config::from_file(path.as_ref())?, backend)?;
        *engine.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_ref().to_path_buf());
        Ok(engine)
    }

    /// An engine over an already validated config, with the memory backend.
    pub fn new(config: Config) -> Result<Engine, Error> {
        Engine::with_backend(config, Box::new(MemoryBackend::new()))
    }

    /// An engine over an already validated config and the given seat table (the
    /// backend-conformance suite builds one per backend). Reads the state file
    /// (`state_dir`) and verifies the signed license (`license_file`) when the
    /// config names them.
    pub fn with_backend(config: Config, backend: Box<dyn Backend>) -> Result<Engine, Error> {
        let store =
            config.state_dir.as_ref().filter(|_| config.emergency.is_some()).map(|d| StateStore::new(d));
        let emergency = match &store {
            Some(store) => store.load()?,
            None => EmergencyState::default(),
        };
        let stamp = store.as_ref().and_then(StateStore::stamp);
        let signed = load_signed(&config, SystemTime::now())?;
        let audit = config.audit.as_ref().map(|a| Arc::new(AuditLog::start(&a.path)));
        let base = Arc::new(config);
        let engine = Engine {
            config: ArcSwap::new(base.clone()),
            base: ArcSwap::new(base),
            path: Mutex::new(None),
            reload_lock: Mutex::new(Vec::new()),
            clock: Arc::new(SystemClock),
            system_clock: true,
            shared_backend: backend.shared(),
            observers: AtomicU32::new(if audit.is_some() { AUDITED } else { 0 }),
            mask: AtomicU32::new(EventMask::ALL.bits()),
            observers_lock: Mutex::new(()),
            sink: ArcSwapOption::empty(),
            audit: ArcSwapOption::new(audit),
            started_at: SystemTime::now(),
            peaks_reset_at: Mutex::new(None),
            reaper: Mutex::new(None),
            seen_reload: AtomicU64::new(backend.reload_epoch()),
            follow_error: Mutex::new(None),
            policy: Mutex::new(PolicyState {
                store,
                emergency,
                stamp,
                emergency_in_view: false,
                expired_seen: TypeSet::EMPTY,
                warned: HashSet::new(),
                warnings: Vec::new(),
            }),
            expired: AtomicU64::new(0),
            next_policy_at: AtomicI64::new(i64::MIN),
            signed: ArcSwapOption::new(signed.map(Arc::new)),
            runtime_limits: RwLock::new(HashMap::new()),
            view_gen: AtomicU64::new(1),
            id: NEXT_ENGINE_ID.fetch_add(1, Ordering::Relaxed),
            emergency_seats: AtomicU32::new(0),
            tenants: Tenants::default(),
            backend,
        };
        {
            let base = engine.base.load_full();
            engine.check_tenant_count(&base)?;
            let names: Vec<&str> = base.tenants.keys().map(|k| &**k).collect();
            engine.tenants.register_all(&*engine.backend, &names)?;
            let view = engine.view_of(&base, None, 0);
            engine.config.store(Arc::new(view));
        }
        Ok(engine)
    }

    /// Replaces the clock (tests use [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.system_clock = false;
        self.started_at = clock.now();
        self.clock = clock;
        // The policy's dates are looked at again with this clock.
        self.next_policy_at.store(i64::MIN, Ordering::Relaxed);
        self
    }

    /// Starts the background reaper if the config enables it and it is not running.
    /// It keeps only a weak reference: dropping the engine stops it.
    pub fn start_reaper(self: &Arc<Self>) -> std::io::Result<()> {
        let mut reaper = self.reaper.lock().unwrap_or_else(|e| e.into_inner());
        if reaper.is_none() && self.config().reaper.enabled {
            *reaper = Some(Reaper::start(Arc::downgrade(self))?);
        }
        Ok(())
    }

    /// Stops the background reaper, if it runs (a shutdown, before the engine itself
    /// goes).
    pub fn stop_reaper(&self) {
        self.reaper.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Runs `f` with the default pool's running config, from this thread's cached copy
    /// when it is current. A call made from an event callback inside `f` loads the
    /// config the ordinary way. `cache`: the thread's cache when the caller has it
    /// already (the C API's calls, see [`with_thread_cache`]); `None` looks it up.
    #[inline(always)]
    fn with_config<T>(
        &self,
        cache: Option<&ThreadCache>,
        f: impl FnOnce(&Config, Option<usize>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        // The error boxed on its way through the cache's layers: a `Result` of a seat id
        // and a box comes back in two registers, where one with an `Error` inline (72
        // bytes) is copied through memory at each layer (a store-forwarding stall
        // each time, on every call). Only a failed call pays for the box.
        self.with_config_boxed(
            cache,
            #[inline(always)]
            |config, lane| f(config, lane).map_err(Box::new),
        )
        .map_err(|e| *e)
    }

    /// [`Engine::with_config`]; `f` also gets the thread's lane, from the same lookup.
    #[inline(always)]
    fn with_config_boxed<T, F>(&self, cache: Option<&ThreadCache>, f: F) -> Result<T, Box<Error>>
    where
        F: FnOnce(&Config, Option<usize>) -> Result<T, Box<Error>>,
    {
        let generation = self.view_gen.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = match cache {
            Some(cache) => self.config_in(cache, generation, &mut f),
            None => with_thread_cache(|cache| self.config_in(cache, generation, &mut f)).flatten(),
        };
        match (cached, f) {
            (Some(result), _) => result,
            // The thread is being torn down: no lane (every count exact).
            (_, Some(f)) => f(&self.config.load(), None),
            (_, None) => Err(Box::new(Error::Backend("internal: the config was not run".into()))),
        }
    }

    /// Runs `f` (taken from its option) on the config in `cache` when it is this
    /// engine's at `generation`, else on the running config, which the cache then keeps.
    #[inline(always)]
    fn config_in<T, F>(
        &self,
        cache: &ThreadCache,
        generation: u64,
        f: &mut Option<F>,
    ) -> Option<Result<T, Box<Error>>>
    where
        F: FnOnce(&Config, Option<usize>) -> Result<T, Box<Error>>,
    {
        let lane = Some(cache.lane());
        if let Ok(c) = cache.config.try_borrow()
            && let Some((id, g, config)) = c.as_ref()
            && (*id, *g) == (self.id, generation)
        {
            return f.take().map(|f| f(config, lane));
        }
        let config = self.config.load_full();
        if let Ok(mut c) = cache.config.try_borrow_mut() {
            *c = Some((self.id, generation, config.clone()));
        }
        f.take().map(|f| f(&config, lane))
    }

    /// Whether the background reaper thread runs.
    pub fn reaper_running(&self) -> bool {
        self.reaper.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(Reaper::runs_here)
    }

    /// Installs (or with `None` removes) the event listener.
    pub fn set_event_sink(&self, sink: Option<EventSink>) {
        self.set_observers(|| self.sink.store(sink.map(|s| Arc::new(SinkBox(s)))));
    }

    /// Chooses which events the listener hears (every one until this is called).
    /// A listener that hears no acquired, normal released or threshold event leaves
    /// quiet logins and logouts as fast as with nobody listening (see [`EventMask`]).
    pub fn set_event_mask(&self, mask: EventMask) {
        self.set_observers(|| self.mask.store(mask.bits(), Ordering::Relaxed));
    }

    /// The events the listener hears.
    pub fn event_mask(&self) -> EventMask {
        EventMask::from_bits(self.mask.load(Ordering::Relaxed)).unwrap_or_default()
    }

    /// Changes the listener, its mask or the audit log, and keeps `observers` in step.
    fn set_observers(&self, change: impl FnOnce()) {
        let _serial = self.observers_lock.lock().unwrap_or_else(|e| e.into_inner());
        change();
        let listener = if self.sink.load().is_some() { self.mask.load(Ordering::Relaxed) } else { 0 };
        let audited = if self.audit.load().is_some() { AUDITED } else { 0 };
        self.observers.store(listener | audited, Ordering::Release);
    }

    /// Who hears about calls: 0 when nobody does (see `observers`).
    #[inline]
    fn observers(&self) -> u32 {
        self.observers.load(Ordering::Acquire)
    }

    /// What one call on the hot path collects: quiet unless somebody hears every login
    /// (a listener of acquired or normal released events, or an audit log), so the
    /// backend need not describe the releases it was asked for nor count every seat
    /// exactly; `thresholds` when a listener hears threshold events (changes that can
    /// cross one are counted exactly); with the calling thread's `lane` (from
    /// [`Engine::with_config`], or [`thread_lane`] on the paths that do not go through
    /// it).
    #[inline]
    fn new_changes(&self, lane: Option<usize>) -> Changes {
        let observers = self.observers();
        Changes {
            quiet: !hears_every_login(observers),
            thresholds: observers & EventMask::THRESHOLDS.bits() != 0,
            lane,
            ..Changes::default()
        }
    }

    /// The running configuration.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    pub fn lints(&self) -> Vec<Lint> {
        self.config.load().lints.clone()
    }

    pub fn backend_kind(&self) -> &'static str {
        self.backend.kind()
    }

    /// The union of the seat sets of a comma-separated list of profile or type names.
    pub fn resolve(&self, profiles: &str) -> Result<TypeSet, Error> {
        resolve(&self.config.load(), profiles)
    }

    /// Takes one seat of every license type the request's profiles imply, all or
    /// nothing, and returns a new seat handle.
    ///
    /// When a type is full, expired leases and ended linger windows are reclaimed
    /// first, so a dead holder never keeps a live user out.
    pub fn try_acquire(&self, req: &Request<'_>) -> Result<SeatId, Error> {
        self.try_acquire_from(None, req, false)
    }

    /// [`Engine::try_acquire`] with the calling thread's cache, which the caller has
    /// looked up already (the C API: one thread-local lookup a call, not two). A
    /// function of its own, so that the cache is known to be there where it is
    /// inlined (taking an `Option` here cost 50 instructions a pair).
    ///
    /// `user_is_plain`: the caller has found `req.user` a plain label already
    /// ([`crate::text::plain_label`] with [`MAX_LABEL_LEN`], as [`check_label`]
    /// tests it), so it is not tested again. The C layer tests the user name that
    /// way in place of testing it for ASCII: one pass over its bytes, not two.
    pub(crate) fn try_acquire_cached(
        &self,
        cache: &ThreadCache,
        req: &Request<'_>,
        user_is_plain: bool,
    ) -> Result<SeatId, Error> {
        self.try_acquire_from(Some(cache), req, user_is_plain)
    }

    #[inline(always)]
    fn try_acquire_from(
        &self,
        cache: Option<&ThreadCache>,
        req: &Request<'_>,
        user_is_plain: bool,
    ) -> Result<SeatId, Error> {
        if !user_is_plain {
            check_label("user name", req.user)?;
        }
        if let Some(ext) = req.extension {
            check_label("extension", ext)?;
        }
        if let Some(session) = req.session {
            check_label("session label", session)?;
        }
        self.follow_shared_reload();
        let since_ms = self.unix_ms();
        self.policy_due(since_ms);
        match req.tenant {
            // One configuration for the whole call: a reload running meanwhile is seen
            // entirely or not at all.
            None => self.with_config(
                cache,
                #[inline(always)]
                |config, lane| self.acquire_in(&*self.backend, config, 0, req, since_ms, lane),
            ),
            Some(name) => self.with_tenant(cache, TenantKey::Name(name), |pool, view, lane| {
                let backend = self.tenant_backend(pool)?;
                self.acquire_in(backend, view, pool.tag, req, since_ms, lane)
            }),
        }
    }

    #[inline(always)]
    fn acquire_in(
        &self,
        backend: &dyn Backend,
        config: &Config,
        tag: u64,
        req: &Request<'_>,
        since_ms: i64,
        lane: Option<usize>,
    ) -> Result<SeatId, Error> {
        let resolved = resolve(config, req.profiles)?;
        // The express lane: plain types, no labels. A call somebody hears is counted
        // and described there as the general path would (a test compares them).
        if config.express_types(resolved)
            && req.extension.is_none()
            && req.session.is_none()
            && resolved.intersect(TypeSet::from_bits(self.expired.load(Ordering::Relaxed))).is_empty()
        {
            let mut express = self.new_changes(lane);
            if let Some(seat) = backend.express_acquire(config, resolved, req.user, since_ms, &mut express) {
                let seat = seat | tag;
                // Only a call somebody hears, or one counted exactly near a threshold,
                // can have something to tell (publish would say the same; testing the
                // flags spares the quiet pair its load: 7 instructions).
                if !express.quiet || express.thresholds {
                    self.publish(config, &express, Op::Acquired { seat, req, types: resolved, since_ms });
                }
                // Nothing to free: no drop glue (see `holds_no_allocation`).
                if express.holds_no_allocation() {
                    std::mem::forget(express);
                }
                return Ok(seat);
            }
        }
        self.acquire_general(backend, config, tag, req, resolved, since_ms, lane)
    }

    /// [`Engine::acquire_in`] past the express lane: a call of its own, so that the
    /// express lane is inlined where it is called.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn acquire_general(
        &self,
        backend: &dyn Backend,
        config: &Config,
        tag: u64,
        req: &Request<'_>,
        resolved: TypeSet,
        since_ms: i64,
        lane: Option<usize>,
    ) -> Result<SeatId, Error> {
        let mut types = config.normalize_pools(resolved);
        // The reservations this request may draw on (their holders are not "others").
        let own_reserves = types.intersect(config.reserve_types());
        let expired = types.intersect(TypeSet::from_bits(self.expired.load(Ordering::Relaxed)));
        if !expired.is_empty() {
            // A refusal like any other: counted against the type, and heard.
            let error = self.expired_error(config, expired);
            if let Some(slot) = expired.iter().find(|&s| !config.licenses[s].is_pool()) {
                let l = &config.licenses[slot];
                let denial = Denial {
                    license: l.name.clone(),
                    used: backend.used(config, slot),
                    limit: l.limit,
                    reason: DenialReason::Expired,
                    requires: None,
                    profile: None,
                };
                backend.count_denial(config, slot);
                self.publish(config, &Changes::default(), Op::Denied { req, denial: &denial });
            }
            return Err(error);
        }
        let lease = config.lease_of(types).map_or(0, mono_ns);
        let mut seat_request = SeatRequest {
            user: req.user,
            types,
            extension: req.extension,
            session: req.session,
            since_ms,
            // Exact only where a deadline is computed from it: the lease's.
            now: &self.mono_now(backend, lease > 0),
            lease,
        };
        let mut changes = self.new_changes(lane);
        let mut reaped = false;
        let mut result = backend.try_acquire(config, &seat_request, &mut changes);
        while let Err(Error::LimitReached(denial)) = &result {
            // Reclaiming can free a full or over-limit type, never a type without
            // seats or a missing requirement.
            if !reaped && matches!(denial.reason, DenialReason::Full | DenialReason::OverLimit) {
                reaped = true;
                // The exact time: a refusal is never the floor clock's lag.
                if backend.reap(config, self.clock.monotonic(), &mut changes) > 0 {
                    result = backend.try_acquire(config, &seat_request, &mut changes);
                    continue;
                }
            }
            // A member whose reservation is full draws on the shared seats instead.
            let refused = config.slot_by_name(&denial.license);
            match refused.and_then(|slot| config.reserve_fallback(types, slot)) {
                Some(next) => {
                    types = next;
                    seat_request.types = next;
                    result = backend.try_acquire(config, &seat_request, &mut changes);
                }
                None => break,
            }
        }
        tag_released(&mut changes, tag);
        match result {
            Ok(seat) => {
                let seat = seat | tag;
                self.publish(config, &changes, Op::Acquired { seat, req, types, since_ms });
                Ok(seat)
            }
            Err(Error::LimitReached(denial)) => {
                let (denial, slot) = explain_denial(backend, config, denial, own_reserves);
                if let Some(slot) = slot {
                    backend.count_denial(config, slot);
                }
                self.publish(config, &changes, Op::Denied { req, denial: &denial });
                Err(Error::LimitReached(denial))
            }
            Err(e) => {
                self.publish(config, &changes, Op::Released);
                Err(retag(e, tag))
            }
        }
    }

    /// The error for a request naming expired types.
    fn expired_error(&self, config: &Config, expired: TypeSet) -> Error {
        let signed = self.signed.load();
        let until = signed.as_ref().and_then(|s| s.valid_until);
        let slot = expired.iter().find(|&s| !config.licenses[s].is_pool()).unwrap_or(0);
        match crate::policy::expiry_of(config, slot, until) {
            Some(e) if e.whole => Error::Expired { license: None, date: e.date },
            Some(e) => Error::Expired { license: Some(config.licenses[slot].name.clone()), date: e.date },
            None => Error::Expired {
                license: Some(config.licenses[slot].name.clone()),
                date: crate::config::Date::from_unix(0),
            },
        }
    }

    /// Gives back one seat handle (a logout). The user's `count = "user"` seats are
    /// freed with their last handle, or linger for the type's grace window.
    pub fn release(&self, seat: SeatId) -> Result<(), Error> {
        self.release_as(seat, ReleaseWhy::Normal)
    }

    /// Gives back one seat handle, recording why: [`ReleaseWhy::Normal`] (a logout) or
    /// [`ReleaseWhy::Admin`] (an admin action: nothing lingers). Handles that depended
    /// on it go too ([`ReleaseWhy::Dependency`]).
    pub fn release_as(&self, seat: SeatId, why: ReleaseWhy) -> Result<(), Error> {
        self.release_from(None, seat, why)
    }

    /// [`Engine::release`] with the calling thread's cache (see
    /// [`Engine::try_acquire_cached`]). Inline, unlike that one: `license_release`
    /// then makes one frame where it made two (26 instructions a logout); the
    /// acquire's body is larger, and inlining it there made the pair dearer.
    #[inline(always)]
    pub(crate) fn release_cached(&self, cache: &ThreadCache, seat: SeatId) -> Result<(), Error> {
        self.release_from(Some(cache), seat, ReleaseWhy::Normal)
    }

    #[inline(always)]
    fn release_from(&self, cache: Option<&ThreadCache>, seat: SeatId, why: ReleaseWhy) -> Result<(), Error> {
        check_caller_why(why)?;
        if seat == 0 {
            return Err(Error::UnknownSeat(0));
        }
        self.with_seat_pool(
            cache,
            seat,
            #[inline(always)]
            |backend, config, inner, changes| {
                if why == ReleaseWhy::Normal && backend.express_release(config, inner, changes) {
                    return Ok(());
                }
                // Exact only where a deadline is computed from it: a linger window's.
                let now = self.mono_now(backend, why.lingers() && !config.lingering_types().is_empty());
                backend.release(config, inner, why, &now, changes)
            },
        )
    }

    /// The wall clock in milliseconds since the Unix epoch.
    #[inline(always)]
    fn unix_ms(&self) -> i64 {
        if self.system_clock { SystemClock.unix_ms() } else { self.clock.unix_ms() }
    }

    /// The monotonic time for a backend call, read when the backend first needs it:
    /// exact when `deadline` (a deadline will be computed from it) or the backend
    /// asks; otherwise the cheaper floor, which only ever sees a deadline late, never
    /// early.
    #[inline]
    fn mono_now(&self, backend: &dyn Backend, deadline: bool) -> Now<'_> {
        Now::lazy(&*self.clock, deadline || backend.exact_now())
    }

    /// Runs `f` on the pool that issued `seat` (its tenant's, from the id), with the
    /// id that pool knows; events and errors carry the caller's id.
    #[inline(always)]
    fn with_seat_pool<T>(
        &self,
        cache: Option<&ThreadCache>,
        seat: SeatId,
        f: impl FnOnce(&dyn Backend, &Config, SeatId, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let tag = seat & !SEAT_MASK;
        if tag == 0 {
            // Boxed at once (see `with_config`): the result is moved past `publish`.
            return self
                .with_config_boxed(
                    cache,
                    #[inline(always)]
                    |config, lane| {
                        let mut changes = self.new_changes(lane);
                        let result = f(&*self.backend, config, seat, &mut changes).map_err(Box::new);
                        self.publish(config, &changes, Op::Released);
                        // Nothing to free: no drop glue (see `holds_no_allocation`).
                        if changes.holds_no_allocation() {
                            std::mem::forget(changes);
                        }
                        result
                    },
                )
                .map_err(|e| *e);
        }
        self.with_tenant(cache, TenantKey::Seat(seat), |pool, view, lane| {
            self.on_tenant_pool(pool, view, lane, |backend, view, changes| {
                f(backend, view, seat & SEAT_MASK, changes)
            })
        })
    }

    /// Runs `f` on a tenant's pool (opened on first use) with the changes it collects,
    /// then tells what it changed; the tenant's tag goes into the seat ids of errors
    /// and released seats.
    fn on_tenant_pool<T>(
        &self,
        pool: &TenantPool,
        view: &Config,
        lane: Option<usize>,
        f: impl FnOnce(&dyn Backend, &Config, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let backend = self.tenant_backend(pool)?;
        let mut changes = self.new_changes(lane);
        let result = f(backend, view, &mut changes).map_err(|e| retag(e, pool.tag));
        tag_released(&mut changes, pool.tag);
        self.publish(view, &changes, Op::Released);
        result
    }

    /// Runs `f` with a tenant's pool, its current view and the thread's lane: from the
    /// thread's cache when it holds them at the current `view_gen` (no lock taken and
    /// no reference counted, which every thread of the tenant would otherwise do on
    /// the same cache lines), else looked up and then kept. `cache`: as in
    /// [`Engine::with_config`], and, as there, the error boxed on its way through.
    #[inline(always)]
    fn with_tenant<T>(
        &self,
        cache: Option<&ThreadCache>,
        key: TenantKey<'_>,
        f: impl FnOnce(&TenantPool, &Config, Option<usize>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.with_tenant_boxed(
            cache,
            key,
            #[inline(always)]
            |pool, view, lane| f(pool, view, lane).map_err(Box::new),
        )
        .map_err(|e| *e)
    }

    /// [`Engine::with_tenant`]: a call of its own, laid out away from the default
    /// pool's calls (`cold`), so that theirs keep their lean frames.
    #[cold]
    #[inline(never)]
    fn with_tenant_boxed<T, F>(
        &self,
        cache: Option<&ThreadCache>,
        key: TenantKey<'_>,
        f: F,
    ) -> Result<T, Box<Error>>
    where
        F: FnOnce(&TenantPool, &Config, Option<usize>) -> Result<T, Box<Error>>,
    {
        let generation = self.view_gen.load(Ordering::Acquire);
        let mut f = Some(f);
        let cached = match cache {
            Some(cache) => Some(self.tenant_in(cache, key, generation, &mut f)),
            None => with_thread_cache(|cache| self.tenant_in(cache, key, generation, &mut f)),
        };
        match (cached, f) {
            (Some(result), _) => result,
            // The thread is being torn down: looked up, with no lane.
            (None, Some(f)) => {
                let (pool, view) = self.tenant_lookup(key)?;
                f(&pool, &view, None)
            }
            (None, None) => Err(Box::new(Error::Backend("internal: the tenant's call was not run".into()))),
        }
    }

    /// [`Engine::with_tenant`] on the thread's cache; `f` is taken from its option.
    #[inline(always)]
    fn tenant_in<T, F>(
        &self,
        cache: &ThreadCache,
        key: TenantKey<'_>,
        generation: u64,
        f: &mut Option<F>,
    ) -> Result<T, Box<Error>>
    where
        F: FnOnce(&TenantPool, &Config, Option<usize>) -> Result<T, Box<Error>>,
    {
        let lane = Some(cache.lane());
        let run = |f: &mut Option<F>, pool: &TenantPool, view: &Config| match f.take() {
            Some(f) => f(pool, view, lane),
            None => Err(Box::new(Error::Backend("internal: the tenant's call was run twice".into()))),
        };
        // Held while `f` runs: a call from an event callback finds the entry too, or
        // (when it would change the cache) looks the tenant up the ordinary way.
        if let Ok(tenants) = cache.tenants.try_borrow()
            && let Some(hit) = tenants.find(self.id, generation, key)
        {
            return run(f, &hit.pool, &hit.view);
        }
        let (pool, view) = self.tenant_lookup(key)?;
        if let Ok(mut tenants) = cache.tenants.try_borrow_mut() {
            tenants.keep(CachedTenant {
                engine: self.id,
                generation,
                pool: pool.clone(),
                view: view.clone(),
            });
        }
        run(f, &pool, &view)
    }

    /// A tenant's pool and current view, looked up: by name only a tenant this process
    /// serves, by a seat id's tag any the table numbers.
    fn tenant_lookup(&self, key: TenantKey<'_>) -> Result<(Arc<TenantPool>, Arc<Config>), Box<Error>> {
        let found = match key {
            TenantKey::Name(name) => self.tenant_scope(name),
            TenantKey::Seat(seat) => {
                self.tenants.by_tag(&*self.backend, seat & !SEAT_MASK).and_then(|pool| {
                    let pool = pool.ok_or(Error::UnknownSeat(seat))?;
                    let view = self.tenant_view(&pool);
                    Ok((pool, view))
                })
            }
        };
        found.map_err(Box::new)
    }

    /// Releases every seat handle of `user` ("log out everywhere"); returns how many.
    /// With [`ReleaseWhy::Admin`] the user's lingering seats are freed too.
    pub fn release_user(&self, user: &str, why: ReleaseWhy) -> Result<usize, Error> {
        self.release_user_in(None, user, why)
    }

    /// [`Engine::release_user`] in a tenant's pool (`None`: the default tenant).
    pub fn release_user_in(&self, tenant: Option<&str>, user: &str, why: ReleaseWhy) -> Result<usize, Error> {
        check_caller_why(why)?;
        check_label("user name", user)?;
        let now = self.clock.monotonic();
        self.with_user_pool(tenant, |backend, config, changes| {
            backend.release_user(config, user, why, now, changes)
        })
    }

    fn with_user_pool<T>(
        &self,
        tenant: Option<&str>,
        f: impl FnOnce(&dyn Backend, &Config, &mut Changes) -> Result<T, Error>,
    ) -> Result<T, Error> {
        match tenant {
            None => {
                let mut changes = self.new_changes(thread_lane());
                let config = self.config.load();
                let result = f(&*self.backend, &config, &mut changes);
                self.publish(&config, &changes, Op::Released);
                result
            }
            Some(name) => self.with_tenant(None, TenantKey::Name(name), |pool, view, lane| {
                self.on_tenant_pool(pool, view, lane, f)
            }),
        }
    }

    /// Renews the lease of one seat handle.
    pub fn touch(&self, seat: SeatId) -> Result<(), Error> {
        let now = self.clock.monotonic();
        self.with_seat_pool(None, seat, |backend, config, inner, changes| {
            backend.touch(config, inner, now, changes)
        })
    }

    /// Renews the lease of every handle of `user`; returns how many.
    pub fn touch_user(&self, user: &str) -> Result<usize, Error> {
        self.touch_user_in(None, user)
    }

    /// [`Engine::touch_user`] in a tenant's pool (`None`: the default tenant).
    pub fn touch_user_in(&self, tenant: Option<&str>, user: &str) -> Result<usize, Error> {
        check_label("user name", user)?;
        let now = self.clock.monotonic();
        self.with_user_pool(tenant, |backend, config, changes| backend.touch_user(config, user, now, changes))
    }

    /// Reclaims expired leases and ended linger windows now (in every open pool), and
    /// applies the entitlement policy (emergency window end, expiry); returns how
    /// many seats were reclaimed. The reaper thread calls this; hosts that turn the
    /// reaper off call it themselves.
    pub fn reap(&self) -> usize {
        self.policy_tick(self.clock.now());
        let now = self.clock.monotonic();
        let config = self.config.load();
        let mut changes = Changes::default();
        let mut n = self.backend.reap(&config, now, &mut changes);
        self.publish(&config, &changes, Op::Released);
        for pool in self.tenants.open() {
            let (Some(backend), view) = (pool.backend.get(), self.tenant_view(&pool)) else { continue };
            let mut changes = Changes::default();
            n += backend.reap(&view, now, &mut changes);
            tag_released(&mut changes, pool.tag);
            self.publish(&view, &changes, Op::Released);
        }
        n
    }

    /// Releases every handle with [`ReleaseWhy::Shutdown`] (events and audit lines
    /// included), in every pool; returns how many.
    pub fn release_all(&self) -> usize {
        let now = self.clock.monotonic();
        let mut n = 0;
        let mut pools: Vec<(&dyn Backend, Arc<Config>, u64)> =
            vec![(&*self.backend, self.config.load_full(), 0)];
        let open = self.tenants.open();
        for pool in &open {
            if let Some(backend) = pool.backend.get() {
                pools.push((&**backend, self.tenant_view(pool), pool.tag));
            }
        }
        for (backend, config, tag) in pools {
            let mut changes = Changes::default();
            for held in backend.own_holders(&config) {
                if backend
                    .release(&config, held.seat, ReleaseWhy::Shutdown, &Now::fixed(now), &mut changes)
                    .is_ok()
                {
                    n += 1;
                }
            }
            tag_released(&mut changes, tag);
            self.publish(&config, &changes, Op::Released);
        }
        n
    }

    /// Reads the config file again (or `path`, which then becomes the file), and swaps
    /// it in atomically with every held seat kept. On any error the running config
    /// stays as it was.
    pub fn reload(&self, path: Option<&Path>) -> Result<ReloadSummary, Error> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => self.path.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(|| {
                Error::InvalidArgument(
                    "this engine was not loaded from a file: name the file to reload".into(),
                )
            })?,
        };
        let summary = self.replace_config(|previous| Config::from_file_after(&path, previous))?;
        *self.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
        // Processes sharing the table reload the same file on their next call.
        self.seen_reload.store(self.backend.announce_reload(), Ordering::Relaxed);
        *self.follow_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(summary)
    }

    /// Reloads this engine's file when another process sharing the table reloaded
    /// (one atomic load when none did). One thread follows; the others go on with the
    /// running config meanwhile.
    #[inline]
    fn follow_shared_reload(&self) {
        if !self.shared_backend {
            return;
        }
        let epoch = self.backend.reload_epoch();
        let seen = self.seen_reload.load(Ordering::Relaxed);
        if epoch != seen {
            self.follow_reload_from(seen, epoch);
        }
    }

    #[cold]
    #[inline(never)]
    fn follow_reload_from(&self, seen: u64, epoch: u64) {
        if self.seen_reload.compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let path = self.path.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(path) = path else { return };
        let outcome = self.replace_config(|previous| Config::from_file_after(&path, previous));
        *self.follow_error.lock().unwrap_or_else(|e| e.into_inner()) = outcome.err().map(|e| {
            format!(
                "another process reloaded the shared table's config, but this process could not reload {}: {e}; it keeps its previous config",
                path.display()
            )
        });
    }

    /// Like [`Engine::reload`], from config text.
    pub fn reload_str(&self, text: &str, source: &str) -> Result<ReloadSummary, Error> {
        self.replace_config(|previous| Config::from_toml_str_after(text, source, previous))
    }

    fn replace_config(
        &self,
        load: impl FnOnce(&Previous<'_>) -> Result<Config, crate::config::ConfigError>,
    ) -> Result<ReloadSummary, Error> {
        let mut retired = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        retired.retain(|old| old.strong_count() > 0);
        let current = self.config.load_full();
        let open_tenants: Vec<(Arc<TenantPool>, Arc<Config>)> =
            self.tenants.open().into_iter().map(|t| (t.clone(), self.tenant_view(&t))).collect();
        let in_use = |slot: usize| {
            self.backend.used(&current, slot) > 0
                || open_tenants.iter().any(|(t, v)| t.backend.get().is_some_and(|b| b.used(v, slot) > 0))
        };
        let new_base = load(&Previous { config: &current, in_use: &in_use, may_free: retired.is_empty() })?;
        if new_base.backend != current.backend {
            return Err(Error::Config(crate::config::ConfigError {
                file: new_base.source.clone(),
                line: 0,
                column: 0,
                message: format!(
                    "[backend] cannot change while running (it is {} and the file now says {}): restart the host to move seats to another backend",
                    current.backend.kind(),
                    new_base.backend.kind()
                ),
            }));
        }
        // The signed license and the state file are read again with the file: a
        // vendor's new license takes effect on reload, and another process's
        // emergency window is followed.
        let signed = load_signed(&new_base, self.clock.now())?;
        if let Some(s) = &signed
            && let Some(max) = s.max_tenants
        {
            check_tenants_allowed(max, new_base.tenants.len().max(self.tenants.all().len()), &s.license_id)?;
        }
        let store =
            new_base.state_dir.as_ref().filter(|_| new_base.emergency.is_some()).map(|d| StateStore::new(d));
        let emergency = store.as_ref().map(StateStore::load).transpose()?;
        let names: Vec<&str> = new_base.tenants.keys().map(|k| &**k).collect();
        self.tenants.register_all(&*self.backend, &names)?;
        self.signed.store(signed.map(Arc::new));
        {
            let mut p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
            p.stamp = store.as_ref().and_then(StateStore::stamp);
            p.emergency = emergency.unwrap_or_default();
            p.store = store;
        }
        self.next_policy_at.store(i64::MIN, Ordering::Relaxed);
        let new = self.view_of(&new_base, None, self.emergency_seats.load(Ordering::Relaxed));
        // A slot that the running config names is counted under that name; a new
        // type's slot under the new config's.
        let used_at = |slot: usize| {
            let named = current.licenses.get(slot).is_some_and(|l| l.state != SlotState::Vacant);
            self.backend.used(if named { &current } else { &new }, slot)
        };
        let summary = summarize(&current, &new, used_at);
        // Thresholds in force before, by slot (`None`: off or not an active type).
        let old_alerts: Vec<Option<u32>> = current
            .licenses
            .iter()
            .map(|l| if l.state == SlotState::Active { l.alert_seats() } else { None })
            .collect();
        let new = Arc::new(new);
        self.base.store(Arc::new(new_base));
        let old = self.config.swap(new.clone());
        self.view_gen.fetch_add(1, Ordering::AcqRel);
        retired.push(Arc::downgrade(&old));
        drop((old, current));
        drop(retired);

        // The audit log follows the new config, and is reopened in any case (logrotate).
        match (&new.audit, self.audit.load_full()) {
            (Some(cfg), Some(log)) => log.reopen(&cfg.path),
            (Some(cfg), None) => {
                self.set_observers(|| self.audit.store(Some(Arc::new(AuditLog::start(&cfg.path)))))
            }
            (None, Some(_)) => self.set_observers(|| self.audit.store(None)),
            (None, None) => {}
        }
        let crossings: Vec<(usize, EventKind)> = new
            .active()
            .filter_map(|(slot, l)| {
                let used = self.backend.used(&new, slot);
                let was = old_alerts.get(slot).copied().flatten().is_some_and(|t| used >= t);
                let is = l.alert_seats().is_some_and(|t| used >= t);
                match (was, is) {
                    (false, true) => Some((slot, EventKind::ThresholdUp)),
                    (true, false) => Some((slot, EventKind::ThresholdDown)),
                    _ => None,
                }
            })
            .collect();
        self.publish(
            &new,
            &Changes::default(),
            Op::Reloaded { source: &new.source, summary: &summary, crossings: &crossings },
        );
        Ok(summary)
    }

    /// Current use of every active license type, in config order.
    pub fn usage(&self) -> Vec<Usage> {
        self.policy_due(self.clock.unix_ms());
        let config = self.config.load();
        config.active().map(|(slot, l)| self.usage_at(&config, slot, l)).collect()
    }

    fn usage_at(&self, config: &Config, slot: usize, l: &crate::config::LicenseType) -> Usage {
        Usage {
            name: l.name.clone(),
            used: self.backend.used(config, slot),
            limit: l.limit,
            stats: self.backend.stats(config, slot),
        }
    }

    /// Current use of one license type.
    pub fn usage_of(&self, license: &str) -> Option<Usage> {
        // Limits shown are the policy's of now (an emergency window opened before a
        // restart is in force from the first call).
        self.policy_due(self.clock.unix_ms());
        let config = self.config.load();
        let slot = config.license_index(license)?;
        Some(self.usage_at(&config, slot, &config.licenses[slot]))
    }

    /// Starts a new "peak since reset" period for every type.
    pub fn reset_peaks(&self) {
        self.backend.reset_peaks(&self.config.load());
        *self.peaks_reset_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.clock.now());
    }

    /// The audit log's counters, if one is configured.
    pub fn audit_status(&self) -> Option<AuditStatus> {
        self.audit.load().as_ref().map(|a| a.status())
    }

    /// Waits until every audit line so far is written (tests, shutdown).
    pub fn flush_audit(&self) {
        if let Some(audit) = self.audit.load_full() {
            audit.flush();
        }
    }

    /// A snapshot report of the default tenant: counts, holders (one page of them),
    /// lingering seats, orphaned types, the entitlement policy, the tenants and
    /// warnings.
    pub fn report(&self, page: Page) -> Report {
        self.policy_due(self.clock.unix_ms());
        let config = self.config.load_full();
        let tenants = self.tenant_usage();
        self.report_of(&*self.backend, &config, page, 0, tenants)
    }

    fn report_of(
        &self,
        backend: &dyn Backend,
        config: &Config,
        page: Page,
        tag: u64,
        tenants: Vec<TenantUsage>,
    ) -> Report {
        let slots: Vec<usize> = (0..config.licenses.len()).collect();
        let used: Vec<u32> = slots.iter().map(|&s| backend.used(config, s)).collect();
        let stats: Vec<TypeStats> = slots.iter().map(|&s| backend.stats(config, s)).collect();
        let mut seats = backend.holders(config);
        for s in &mut seats {
            s.seat |= tag;
        }
        let (warnings, expired) = {
            let p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
            (p.warnings.clone(), p.expired_seen)
        };
        Report::build(crate::report::Snapshot {
            config,
            backend: backend.kind(),
            used: &used,
            stats: &stats,
            seats,
            lingering: backend.lingering(config),
            backend_status: {
                let mut status = backend.status(config);
                if let Some(e) = self.follow_error.lock().unwrap_or_else(|e| e.into_inner()).clone() {
                    status.warnings.push(e);
                }
                status
            },
            now: self.clock.now(),
            now_mono: self.clock.monotonic(),
            started_at: self.started_at,
            peaks_reset_at: *self.peaks_reset_at.lock().unwrap_or_else(|e| e.into_inner()),
            audit: self.audit_status(),
            reaper_running: self.reaper_running(),
            page,
            policy: crate::report::PolicySnapshot {
                emergency: self.emergency_status(),
                signed: self.signed.load_full(),
                expired,
                warnings,
                tenants_total: if tag == 0 { self.tenant_names().len() } else { 0 },
                tenants,
            },
        })
    }

    // ---- views, tenants ----

    /// A view of `base` for a tenant (`None`: the default tenant), with run-time
    /// limits, signed caps and `emergency` extra seats.
    fn view_of(&self, base: &Config, tenant: Option<&str>, emergency: u32) -> Config {
        let signed = self.signed.load();
        let runtime = self.runtime_limits.read().unwrap_or_else(|e| e.into_inner());
        let key: Option<Arc<str>> = tenant.map(Arc::from);
        let lookup = |t: &str| {
            if runtime.is_empty() {
                return None;
            }
            runtime.get(&(key.clone(), Arc::from(t))).copied()
        };
        let def: Option<&TenantDef> = tenant.and_then(|t| base.tenants.get(t));
        let mut view = base.effective(&LimitInputs {
            tenant: def,
            runtime: &lookup,
            signed: signed.as_ref().map(|s| &s.limits),
            emergency,
        });
        if view.tenant.is_none() {
            view.tenant = key;
        }
        view
    }

    /// Builds the default tenant's view again and marks every tenant view stale.
    fn rebuild_views(&self) {
        let _serial = self.reload_lock.lock().unwrap_or_else(|e| e.into_inner());
        let base = self.base.load_full();
        let view = self.view_of(&base, None, self.emergency_seats.load(Ordering::Relaxed));
        self.config.store(Arc::new(view));
        self.view_gen.fetch_add(1, Ordering::AcqRel);
    }

    /// A tenant's pool and current view; the tenant must be known.
    fn tenant_scope(&self, name: &str) -> Result<(Arc<TenantPool>, Arc<Config>), Error> {
        let pool = self.tenants.served(name).ok_or_else(|| match check_tenant_name(name) {
            Err(e) => e,
            Ok(()) => Error::UnknownTenant(name.to_string()),
        })?;
        let view = self.tenant_view(&pool);
        Ok((pool, view))
    }

    /// The tenant's view, rebuilt when something changed since it was made.
    fn tenant_view(&self, pool: &TenantPool) -> Arc<Config> {
        let generation = self.view_gen.load(Ordering::Acquire);
        if let Some(v) = &*pool.view.load()
            && v.generation == generation
        {
            return v.config.clone();
        }
        let base = self.base.load_full();
        // Emergency seats are the installation's license, not a tenant's: they go to
        // the default pool only.
        let config = Arc::new(self.view_of(&base, Some(&pool.name), 0));
        pool.view.store(Some(Arc::new(TenantView { generation, config: config.clone() })));
        config
    }

    /// The tenant's seat pool, opened on first use.
    fn tenant_backend<'p>(&self, pool: &'p TenantPool) -> Result<&'p dyn Backend, Error> {
        if let Some(b) = pool.backend.get() {
            return Ok(&**b);
        }
        let opened = self.backend.open_tenant(&pool.name)?;
        // Two threads may open it at once: one wins, the other's is dropped.
        let _ = pool.backend.set(opened);
        pool.backend
            .get()
            .map(|b| &**b)
            .ok_or_else(|| Error::Backend(format!("tenant '{}': its seat pool did not open", pool.name)))
    }

    fn check_tenant_count(&self, base: &Config) -> Result<(), Error> {
        match self.signed.load().as_ref().and_then(|s| s.max_tenants.map(|m| (m, s.license_id.clone()))) {
            Some((max, id)) => check_tenants_allowed(max, base.tenants.len(), &id),
            None => Ok(()),
        }
    }

    /// The tenants this engine serves: declared in the file or given limits at run time.
    pub fn tenant_names(&self) -> Vec<Arc<str>> {
        self.tenants.all().iter().filter(|t| t.is_served()).map(|t| t.name.clone()).collect()
    }

    /// Sets the limit of one license type at run time, for a tenant (`None`: the
    /// default tenant), without touching the file; `None` as limit goes back to the
    /// file's. A tenant not in the file is added. Run-time limits are kept across
    /// reloads, and the report shows where each limit came from. The vendor-signed
    /// limit still caps it.
    pub fn set_limit(&self, tenant: Option<&str>, license: &str, limit: Option<u32>) -> Result<(), Error> {
        let base = self.base.load_full();
        if base.license_index(license).is_none() {
            return Err(Error::UnknownLicenseType(license.to_string()));
        }
        let tenant_key: Option<Arc<str>> = match tenant {
            None => None,
            Some(name) => {
                check_tenant_name(name)?;
                if self.tenants.get(name).is_none()
                    && let Some(s) = self.signed.load().as_ref()
                    && let Some(max) = s.max_tenants
                {
                    check_tenants_allowed(max, self.tenants.all().len() + 1, &s.license_id)?;
                }
                Some(self.tenants.register(&*self.backend, name)?.name.clone())
            }
        };
        let key = (tenant_key.clone(), Arc::from(license));
        let old = {
            let mut runtime = self.runtime_limits.write().unwrap_or_else(|e| e.into_inner());
            match limit {
                Some(n) => runtime.insert(key, n),
                None => runtime.remove(&key),
            }
        };
        if old == limit {
            return Ok(());
        }
        self.rebuild_views();
        let view = match &tenant_key {
            None => self.config.load_full(),
            Some(name) => self.tenant_scope(name)?.1,
        };
        let slot = view.license_index(license);
        let now_limit = slot.map_or(0, |s| view.licenses[s].limit);
        let place = tenant_key.as_deref().map_or(String::new(), |t| format!(" of tenant '{t}'"));
        let detail = match limit {
            Some(n) => format!("limit of '{license}'{place} set to {n} at run time (effective {now_limit})"),
            None => format!(
                "run-time limit of '{license}'{place} removed: back to the config's (effective {now_limit})"
            ),
        };
        self.publish(
            &view,
            &Changes::default(),
            Op::Notice { kind: EventKind::LimitChanged, slot, detail: &detail },
        );
        Ok(())
    }

    /// Use of every active type in every tenant whose pool is open, by tenant name.
    pub fn tenant_usage(&self) -> Vec<TenantUsage> {
        let mut out: Vec<TenantUsage> = self
            .tenants
            .open()
            .iter()
            .filter(|pool| pool.is_served())
            .filter_map(|pool| {
                let backend = pool.backend.get()?;
                let view = self.tenant_view(pool);
                Some(TenantUsage {
                    tenant: pool.name.to_string(),
                    licenses: view
                        .active()
                        .map(|(s, l)| (l.name.to_string(), backend.used(&view, s), l.limit))
                        .collect(),
                    holders: backend.holders(&view).len(),
                })
            })
            .collect();
        out.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        out
    }

    /// Use of one license type in a tenant's pool (`None`: the default tenant).
    pub fn usage_in(&self, tenant: Option<&str>, license: &str) -> Result<Usage, Error> {
        self.policy_due(self.clock.unix_ms());
        let (backend, view): (&dyn Backend, Arc<Config>) = match tenant {
            None => (&*self.backend, self.config.load_full()),
            Some(name) => {
                let (pool, view) = self.tenant_scope(name)?;
                let Some(slot) = view.license_index(license) else {
                    return Err(Error::UnknownLicenseType(license.to_string()));
                };
                return Ok(match pool.backend.get() {
                    Some(b) => self.usage_at_in(&**b, &view, slot),
                    // On a shared table other processes may hold the tenant's seats
                    // though this one never served it: its pool is opened to look.
                    None if self.backend.shared() => {
                        self.usage_at_in(self.tenant_backend(&pool)?, &view, slot)
                    }
                    None => {
                        let l = &view.licenses[slot];
                        Usage { name: l.name.clone(), used: 0, limit: l.limit, stats: TypeStats::default() }
                    }
                });
            }
        };
        let slot =
            view.license_index(license).ok_or_else(|| Error::UnknownLicenseType(license.to_string()))?;
        Ok(self.usage_at_in(backend, &view, slot))
    }

    fn usage_at_in(&self, backend: &dyn Backend, config: &Config, slot: usize) -> Usage {
        let l = &config.licenses[slot];
        Usage {
            name: l.name.clone(),
            used: backend.used(config, slot),
            limit: l.limit,
            stats: backend.stats(config, slot),
        }
    }

    /// The report of one tenant's pool.
    pub fn report_tenant(&self, tenant: &str, page: Page) -> Result<Report, Error> {
        let (pool, view) = self.tenant_scope(tenant)?;
        let backend = self.tenant_backend(&pool)?;
        Ok(self.report_of(backend, &view, page, pool.tag, Vec::new()))
    }

    // ---- entitlement policy ----

    /// Looks at the policy when its next change is due (one atomic load otherwise).
    #[inline]
    fn policy_due(&self, now_ms: i64) {
        // In milliseconds: the multiply is off the clock read's path, where a
        // division by 1000 waited for it.
        if now_ms >= self.next_policy_at.load(Ordering::Relaxed).saturating_mul(1000) {
            self.policy_tick(from_unix_ms(now_ms));
        }
    }

    /// Applies the entitlement policy at `now`: opens or closes the emergency seats,
    /// refuses expired types (and releases their holders with `revoke`), and sends
    /// each warning once.
    fn policy_tick(&self, now: SystemTime) {
        let t = unix_secs(now);
        let mut p = match self.policy.try_lock() {
            Ok(p) => p,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            // Another thread is at it.
            Err(std::sync::TryLockError::WouldBlock) => return,
        };
        // The CLI or another process may have opened a window.
        if let Some(store) = p.store.clone() {
            let stamp = store.stamp();
            if stamp != p.stamp {
                p.stamp = stamp;
                match store.load() {
                    Ok(state) => p.emergency = state,
                    Err(e) => {
                        let message = e.to_string();
                        if !p.warnings.contains(&message) {
                            p.warnings.push(message);
                        }
                    }
                }
            }
        }
        let base = self.base.load_full();
        let signed = self.signed.load_full();
        let verdict = crate::policy::evaluate(
            &base,
            t,
            signed.as_ref().and_then(|s| s.valid_until),
            signed.as_ref().and_then(|s| s.support_until),
            &p.emergency,
        );
        let mut notices: Vec<(EventKind, Option<usize>, String)> = Vec::new();
        let open = p.emergency.open_at(t);
        let mut close = false;
        let changed = open != p.emergency_in_view;
        if changed {
            p.emergency_in_view = open;
            self.emergency_seats.store(if open { p.emergency.seats } else { 0 }, Ordering::Relaxed);
            let (from, to) = (p.emergency.opened_at.unwrap_or(0), p.emergency.ends_at.unwrap_or(0));
            if open {
                notices.push((
                    EventKind::EmergencyStarted,
                    None,
                    format!(
                        "emergency window open from {} to {}: {} extra seats of {}",
                        rfc3339(from_unix_secs(from)),
                        rfc3339(from_unix_secs(to)),
                        p.emergency.seats,
                        names(&base, base.emergency.as_ref().map_or(TypeSet::EMPTY, |e| e.types)).join(", ")
                    ),
                ));
            } else {
                close = true;
                notices.push((
                    EventKind::EmergencyEnded,
                    None,
                    format!(
                        "emergency window ended at {}: holders beyond the permanent limit are released (emergency_expired)",
                        rfc3339(from_unix_secs(to))
                    ),
                ));
            }
        }
        let newly_expired = verdict.expired.minus(p.expired_seen);
        p.expired_seen = verdict.expired;
        self.expired.store(verdict.expired.bits(), Ordering::Relaxed);
        for slot in newly_expired.iter() {
            let e = crate::policy::expiry_of(&base, slot, signed.as_ref().and_then(|s| s.valid_until));
            let (date, how) =
                e.map_or((String::new(), "deny_new"), |e| (e.date.to_string(), e.on_expiry.as_str()));
            notices.push((
                EventKind::Expired,
                Some(slot),
                format!(
                    "license type '{}' expired (valid until {date}): new logins are refused (on_expiry = \"{how}\")",
                    base.licenses[slot].name
                ),
            ));
        }
        let mut in_force = Vec::new();
        for (key, message, slot) in &verdict.warnings {
            in_force.push(message.clone());
            if p.warned.insert(key.clone()) {
                notices.push((EventKind::Warning, *slot, message.clone()));
            }
        }
        p.warnings = in_force;
        // At least once a second: the state file may change under us.
        self.next_policy_at.store(verdict.next_change.min(t + 1), Ordering::Relaxed);
        drop(p);

        if changed {
            self.rebuild_views();
        }
        let view = self.config.load_full();
        for (kind, slot, detail) in &notices {
            self.publish(&view, &Changes::default(), Op::Notice { kind: *kind, slot: *slot, detail });
        }
        if close && let Some(e) = &base.emergency {
            let view = self.config.load_full();
            self.shed(&*self.backend, &view, 0, e.types, ReleaseWhy::EmergencyExpired);
        }
        if !verdict.revoke.is_empty() {
            self.shed_everywhere(verdict.revoke, ReleaseWhy::LicenseExpired);
        }
    }

    /// Releases holders of `slots` in every pool: beyond each type's limit, newest
    /// first ([`ReleaseWhy::EmergencyExpired`]), or all of them
    /// ([`ReleaseWhy::LicenseExpired`]).
    fn shed_everywhere(&self, slots: TypeSet, why: ReleaseWhy) {
        let view = self.config.load_full();
        self.shed(&*self.backend, &view, 0, slots, why);
        for pool in self.tenants.open() {
            if let Some(backend) = pool.backend.get() {
                let view = self.tenant_view(&pool);
                self.shed(&**backend, &view, pool.tag, slots, why);
            }
        }
    }

    fn shed(&self, backend: &dyn Backend, config: &Config, tag: u64, slots: TypeSet, why: ReleaseWhy) {
        let all = why == ReleaseWhy::LicenseExpired;
        let now = self.clock.monotonic();
        let mut changes = Changes::default();
        let mut holders = backend.holders(config);
        // Newest first: the last to log in are the first to go.
        holders.sort_by(|a, b| b.since.cmp(&a.since).then(b.order.cmp(&a.order)));
        let mut gone: HashSet<SeatId> = HashSet::new();
        for slot in slots.iter() {
            let Some(l) = config.licenses.get(slot) else { continue };
            let keep = if all { 0 } else { l.limit };
            while backend.used(config, slot) > keep {
                let Some(victim) = holders.iter().find(|h| h.types.contains(slot) && !gone.contains(&h.seat))
                else {
                    break;
                };
                // A per-user seat is held by all of the user's handles of the type.
                let seats: Vec<SeatId> = if l.count == CountMode::User {
                    holders
                        .iter()
                        .filter(|h| {
                            h.user == victim.user && h.types.contains(slot) && !gone.contains(&h.seat)
                        })
                        .map(|h| h.seat)
                        .collect()
                } else {
                    vec![victim.seat]
                };
                for seat in seats {
                    gone.insert(seat);
                    let _ = backend.release(config, seat, why, &Now::fixed(now), &mut changes);
                }
            }
        }
        tag_released(&mut changes, tag);
        self.publish(config, &changes, Op::Released);
    }

    /// Opens the emergency window (`[emergency]`): its extra seats are usable at once
    /// and close after its duration. Refused when a window is open, or when one was
    /// used and no affected type's permanent limit has grown since. The state file
    /// keeps this across restarts, for every process of the installation.
    pub fn emergency_activate(&self) -> Result<EmergencyStatus, Error> {
        let base = self.base.load_full();
        let Some(cfg) = base.emergency.clone() else {
            return Err(Error::Emergency(
                "no emergency seats are configured: the config has no [emergency] section".into(),
            ));
        };
        let signed = self.signed.load_full();
        let (mut seats, mut duration) = (cfg.seats, cfg.duration);
        if let Some(s) = &signed {
            if s.emergency_seats == 0 {
                return Err(Error::Emergency(format!(
                    "the signed license {} allows no emergency seats",
                    s.license_id
                )));
            }
            seats = seats.min(s.emergency_seats);
            duration = duration.min(Duration::from_secs(u64::from(s.emergency_days.max(1)) * 86_400));
        }
        let now = self.clock.now();
        let t = unix_secs(now);
        let permanent = self.permanent_limits(cfg.types);
        let store = self.policy.lock().unwrap_or_else(|e| e.into_inner()).store.clone();
        let Some(store) = store else {
            return Err(Error::Emergency("[emergency] needs state_dir".into()));
        };
        let (state, ()) = store.update(|s| {
            if s.open_at(t) {
                return Err(Error::Emergency(format!(
                    "an emergency window is already open (until {})",
                    rfc3339(from_unix_secs(s.ends_at.unwrap_or(0)))
                )));
            }
            if s.activations > 0 && !grown(&s.permanent_limits, &permanent) {
                return Err(Error::Emergency(format!(
                    "the emergency window was already used (opened {}, ended {}); it can be opened again once the permanent limit of {} grows (a new license)",
                    rfc3339(from_unix_secs(s.opened_at.unwrap_or(0))),
                    rfc3339(from_unix_secs(s.ends_at.unwrap_or(0))),
                    permanent.keys().cloned().collect::<Vec<_>>().join(" or ")
                )));
            }
            s.opened_at = Some(t);
            s.ends_at = Some(t.saturating_add(i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)));
            s.seats = seats;
            s.permanent_limits = permanent.clone();
            s.activations += 1;
            Ok(())
        })?;
        {
            let mut p = self.policy.lock().unwrap_or_else(|e| e.into_inner());
            p.emergency = state;
            p.stamp = store.stamp();
        }
        self.next_policy_at.store(i64::MIN, Ordering::Relaxed);
        self.policy_tick_blocking(now);
        // Every other process of the installation follows on its next call.
        self.seen_reload.store(self.backend.announce_reload(), Ordering::Relaxed);
        self.emergency_status().ok_or_else(|| Error::Emergency("no [emergency] section".into()))
    }

    /// Waits for a policy run in another thread, then runs it.
    fn policy_tick_blocking(&self, now: SystemTime) {
        drop(self.policy.lock().unwrap_or_else(|e| e.into_inner()));
        self.policy_tick(now);
    }

    /// The default tenant's permanent limits of `types`: the running limits without
    /// the emergency seats they carry.
    fn permanent_limits(&self, types: TypeSet) -> std::collections::BTreeMap<String, u32> {
        let view = self.config.load();
        types
            .iter()
            .filter_map(|s| view.licenses.get(s))
            .map(|l| (l.name.to_string(), l.limit.saturating_sub(l.origin.emergency)))
            .collect()
    }

    /// The emergency window for the report (`None`: no `[emergency]` configured).
    pub fn emergency_status(&self) -> Option<EmergencyStatus> {
        let base = self.base.load_full();
        let cfg = base.emergency.as_ref()?;
        let now = self.clock.now();
        let t = unix_secs(now);
        let state = self.policy.lock().unwrap_or_else(|e| e.into_inner()).emergency.clone();
        let open = state.open_at(t);
        let view = self.config.load();
        let in_use: u32 = if open {
            cfg.types
                .iter()
                .filter_map(|s| view.licenses.get(s).map(|l| (s, l)))
                .map(|(s, l)| {
                    self.backend.used(&view, s).saturating_sub(l.limit.saturating_sub(l.origin.emergency))
                })
                .sum()
        } else {
            0
        };
        let permanent = self.permanent_limits(cfg.types);
        let signed = self.signed.load();
        let why_not = if open {
            Some("a window is open".to_string())
        } else if signed.as_ref().is_some_and(|s| s.emergency_seats == 0) {
            Some("the signed license allows no emergency seats".to_string())
        } else if state.activations > 0 && !grown(&state.permanent_limits, &permanent) {
            Some("already used: a new window needs a higher permanent limit".to_string())
        } else {
            None
        };
        let stamp = |s: Option<i64>| s.map(|s| rfc3339(from_unix_secs(s)));
        Some(EmergencyStatus {
            state: match (open, state.activations) {
                (true, _) => "open",
                (false, 0) => "never used",
                (false, _) if why_not.is_none() => "available again",
                _ => "ended",
            }
            .to_string(),
            opened_at: stamp(state.opened_at),
            ends_at: stamp(state.ends_at),
            seats: if open {
                state.seats
            } else {
                cfg.seats.min(signed.as_ref().map_or(u32::MAX, |s| s.emergency_seats))
            },
            types: names(&base, cfg.types).iter().map(|s| s.to_string()).collect(),
            in_use,
            can_activate: why_not.is_none(),
            why_not,
        })
    }

    /// When the emergency window ends (Unix seconds), if one was ever opened.
    pub fn emergency_ends_unix(&self) -> Option<i64> {
        self.policy.lock().unwrap_or_else(|e| e.into_inner()).emergency.ends_at
    }

    /// The signed license's terms, when one is configured.
    pub fn signed_license(&self) -> Option<Arc<SignedLicense>> {
        self.signed.load_full()
    }

    /// Turns what an operation changed into events and audit lines, after every lock
    /// is dropped. Costs one atomic load when nobody listens, or when the listener
    /// hears nothing a quiet login or logout says (with thresholds heard: and the
    /// counts crossed none).
    #[inline(always)]
    fn publish(&self, config: &Config, changes: &Changes, op: Op<'_>) {
        let observers = self.observers();
        if observers == 0
            || (!hears_every_login(observers)
                && changes.released.is_empty()
                && matches!(op, Op::Acquired { .. } | Op::Released)
                && (observers & EventMask::THRESHOLDS.bits() == 0
                    || !changes.counts.iter().any(|c| threshold_crossed(config, c).is_some())))
        {
            return;
        }
        self.publish_observed(config, changes, op, observers);
    }

    #[inline(never)]
    fn publish_observed(&self, config: &Config, changes: &Changes, op: Op<'_>, observers: u32) {
        let time_unix_ms = match op {
            Op::Acquired { since_ms, .. } => since_ms,
            _ => self.clock.unix_ms(),
        };
        // The audit log first, then the listener: a listener that calls back into the
        // library finds every line of this change written.
        if observers & AUDITED != 0 {
            self.write_audit(config, changes, op, time_unix_ms);
        }
        let mask = EventMask::from_bits(observers & !AUDITED).unwrap_or_default();
        // Each load costs two atomic read-modify-writes: only what `observers` says is
        // there (it is kept in step with both under `observers_lock`).
        if mask != EventMask::NONE
            && let Some(sink) = self.sink.load().as_ref()
        {
            tell(config, changes, op, mask, time_unix_ms, &*self.backend, &sink.0);
        }
    }

    /// The audit log's lines for what an operation changed.
    fn write_audit(&self, config: &Config, changes: &Changes, op: Op<'_>, time_unix_ms: i64) {
        let mut guard = self.audit.load();
        if guard.as_ref().is_some_and(|log| !log.belongs_here())
            && let Some(cfg) = &config.audit
        {
            // A child forked after init: its lines get a writer of its own (O_APPEND
            // whole-line writes interleave safely with the parent's).
            self.audit.store(Some(Arc::new(AuditLog::start(&cfg.path))));
            guard = self.audit.load();
        }
        let Some(audit) = guard.as_ref() else { return };
        let stamp = rfc3339(crate::clock::from_unix_ms(time_unix_ms));
        let tenant = config.tenant.as_deref();
        // Releases first: a reclaimed seat is what made room for an acquire.
        for released in &changes.released {
            audit.log(
                json!({
                    "time": stamp, "event": "IN", "why": released.why.as_str(), "tenant": tenant, "user": &*released.user,
                    "seat": released.seat, "licenses": names(config, released.types),
                    "extension": released.extension.as_deref(), "session": released.session.as_deref(),
                })
                .to_string(),
            );
        }
        let line = match op {
            Op::Acquired { seat, req, types, .. } => json!({
                "time": stamp, "event": "OUT", "tenant": tenant, "user": req.user, "seat": seat,
                "licenses": names(config, types), "profiles": req.profiles,
                "extension": req.extension, "session": req.session,
            }),
            Op::Denied { req, denial } => json!({
                "time": stamp, "event": "DENY", "tenant": tenant, "user": req.user, "license": &*denial.license,
                "reason": denial.reason.as_str(), "used": denial.used, "limit": denial.limit,
                "requires": denial.requires.as_deref(), "profile": denial.profile.as_deref(), "profiles": req.profiles,
            }),
            Op::Released => return,
            Op::Notice { kind, slot, detail } => json!({
                "time": stamp, "event": kind.as_str().to_uppercase(), "tenant": tenant,
                "license": slot.and_then(|s| config.licenses.get(s)).map(|l| &*l.name), "detail": detail,
            }),
            Op::Reloaded { source, summary, .. } => {
                json!({ "time": stamp, "event": "RELOAD", "config": source, "changes": summary.changes })
            }
        };
        audit.log(line.to_string());
    }
}

/// Tells the listener what an operation changed, event by event as each is made: its
/// names are borrowed from `config`, the request and `changes`, and nothing is
/// collected first.
fn tell(
    config: &Config,
    changes: &Changes,
    op: Op<'_>,
    mask: EventMask,
    time_unix_ms: i64,
    backend: &dyn Backend,
    sink: &EventSink,
) {
    let deliver = |e: &Event<'_>| {
        // A listener that panics must not turn a done acquire into a failure.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sink(e)));
    };
    // `used`: the count the change left, when the caller knows it; otherwise the
    // count now (a read of the type's counter and lanes).
    let event = |kind: EventKind, slot: Option<usize>, used: Option<u32>, detail: Detail| {
        let license = slot.and_then(|s| config.licenses.get(s));
        Event {
            kind,
            why: None,
            denial: None,
            license: license.map(|l| Cow::Borrowed(&*l.name)),
            user: None,
            seat: 0,
            used: used.or_else(|| slot.map(|s| backend.used(config, s))).unwrap_or(0),
            limit: license.map_or(0, |l| l.limit),
            threshold_percent: 0,
            time_unix_ms,
            detail,
            requires: None,
            tenant: config.tenant.as_deref().map(Cow::Borrowed),
        }
    };
    let is_pool = |slot: usize| config.licenses.get(slot).is_some_and(|l| l.is_pool());

    // Releases first: a reclaimed seat is what made room for an acquire.
    for released in changes.released.iter().filter(|r| mask.hears_release(r.why)) {
        for (i, slot) in released.types.iter().enumerate() {
            if is_pool(slot) {
                continue;
            }
            // As right after this handle went, not as now.
            let mut e =
                event(EventKind::Released, Some(slot), released.used.get(i).copied(), Detail::Released);
            e.why = Some(released.why);
            e.user = Some(Cow::Borrowed(&*released.user));
            e.seat = released.seat;
            deliver(&e);
        }
    }
    match op {
        Op::Acquired { seat, req, types, .. } if mask.hears(EventKind::Acquired) => {
            for slot in types.iter().filter(|&s| !is_pool(s)) {
                let after = changes.counts.iter().rev().find(|c| c.slot == slot).map(|c| c.after);
                let mut e = event(EventKind::Acquired, Some(slot), after, Detail::Holds);
                e.user = Some(Cow::Borrowed(req.user));
                e.seat = seat;
                deliver(&e);
            }
        }
        Op::Denied { req, denial } if mask.hears(EventKind::Denied) => {
            let slot = config.license_index(&denial.license);
            let mut e = event(
                EventKind::Denied,
                slot,
                Some(denial.used),
                Detail::Text(format!("user '{}': {denial}", req.user)),
            );
            e.license = Some(Cow::Borrowed(&*denial.license));
            e.denial = Some(denial.reason);
            e.requires = denial.requires.as_deref().map(Cow::Borrowed);
            e.user = Some(Cow::Borrowed(req.user));
            e.limit = denial.limit;
            deliver(&e);
        }
        Op::Notice { kind, slot, detail } if mask.hears(kind) => {
            deliver(&event(kind, slot, None, Detail::Text(detail.to_string())));
        }
        Op::Reloaded { source, summary, crossings } => {
            if mask.hears(EventKind::Reloaded) {
                deliver(&event(
                    EventKind::Reloaded,
                    None,
                    None,
                    Detail::Text(format!("reloaded {source}: {summary}")),
                ));
            }
            // A new limit or alert_at can move a type across its threshold.
            for &(slot, kind) in crossings.iter().filter(|(_, kind)| mask.hears(*kind)) {
                let Some(license) = config.licenses.get(slot) else { continue };
                let direction =
                    if kind == EventKind::ThresholdUp { "is now at or over" } else { "is now under" };
                // One reading for the sentence and the field.
                let used = backend.used(config, slot);
                let mut e = event(
                    kind,
                    Some(slot),
                    Some(used),
                    Detail::Text(format!(
                        "license type '{}' {direction} {}% of its limit after the reload ({used}/{})",
                        license.name, license.alert_at, license.limit
                    )),
                );
                e.threshold_percent = license.alert_at;
                deliver(&e);
            }
        }
        _ => {}
    }
    if mask.hears(EventKind::ThresholdUp) || mask.hears(EventKind::ThresholdDown) {
        for change in &changes.counts {
            let Some(license) = config.licenses.get(change.slot) else { continue };
            let Some(kind) = threshold_crossed(config, change).filter(|&kind| mask.hears(kind)) else {
                continue;
            };
            let direction = if kind == EventKind::ThresholdUp { "reached" } else { "fell under" };
            let mut e = event(
                kind,
                Some(change.slot),
                Some(change.after),
                Detail::Text(format!(
                    "license type '{}' {direction} {}% of its limit ({}/{})",
                    license.name, license.alert_at, change.after, license.limit
                )),
            );
            e.threshold_percent = license.alert_at;
            deliver(&e);
        }
    }
}

fn names(config: &Config, set: TypeSet) -> Vec<&str> {
    set.iter().filter_map(|s| config.licenses.get(s)).filter(|l| !l.is_pool()).map(|l| &*l.name).collect()
}

/// Puts a tenant's tag into the ids of the seats its pool released.
fn tag_released(changes: &mut Changes, tag: u64) {
    if tag != 0 {
        for r in &mut changes.released {
            r.seat |= tag;
        }
    }
}

/// The caller's seat id in an error from a tenant's pool.
fn retag(e: Error, tag: u64) -> Error {
    match e {
        Error::UnknownSeat(s) if s != 0 => Error::UnknownSeat(s | tag),
        Error::SeatExpired(s) => Error::SeatExpired(s | tag),
        Error::SeatReleased(s, why) => Error::SeatReleased(s | tag, why),
        other => other,
    }
}

/// A denial in the admin's words: a hidden pool that refused is named by the rule it
/// carries (a reservation, a cap) and the type it belongs to. Also returns the slot
/// the denial is counted against.
fn explain_denial(
    backend: &dyn Backend,
    config: &Config,
    denial: Denial,
    own_reserves: TypeSet,
) -> (Denial, Option<usize>) {
    let Some(slot) = config.slot_by_name(&denial.license) else { return (denial, None) };
    let Some(pool) = config.licenses[slot].pool.clone() else { return (denial, Some(slot)) };
    let base = &config.licenses[pool.base];
    let explained = match pool.kind {
        PoolKind::Cap { profile, seats } => Denial {
            license: base.name.clone(),
            used: backend.used(config, slot),
            limit: seats,
            reason: DenialReason::Capped,
            requires: None,
            profile: Some(profile),
        },
        PoolKind::Shared | PoolKind::Reserve { .. } => {
            // Reservations of other profiles keep the free seats; the request's own
            // reservation was full already.
            let others: Vec<&str> = config
                .licenses
                .iter()
                .enumerate()
                .filter_map(|(s, l)| match &l.pool {
                    Some(crate::config::Pool { base: b, kind: PoolKind::Reserve { profile, .. } })
                        if *b == pool.base && l.state == SlotState::Active && !own_reserves.contains(s) =>
                    {
                        Some(&**profile)
                    }
                    _ => None,
                })
                .collect();
            let used = backend.used(config, pool.base);
            // Read after the refusal: if the type has filled meanwhile, it is full.
            if others.is_empty() || used >= base.limit {
                Denial::limit(base.name.clone(), used.max(base.limit), base.limit)
            } else {
                Denial {
                    license: base.name.clone(),
                    used,
                    limit: base.limit,
                    reason: DenialReason::Reserved,
                    requires: None,
                    profile: Some(Arc::from(others.join(", "))),
                }
            }
        }
    };
    (explained, Some(pool.base))
}

/// The backends' rule for tenant names; from a caller, a bad name is a bad argument.
fn check_tenant_name(name: &str) -> Result<(), Error> {
    crate::backend::check_tenant_name(name).map_err(|e| Error::InvalidArgument(e.to_string()))
}

fn check_tenants_allowed(max: u32, count: usize, license_id: &str) -> Result<(), Error> {
    if count > max as usize {
        return Err(Error::LicenseFile(format!(
            "the signed license {license_id} allows {max} tenants; this installation would have {count}"
        )));
    }
    Ok(())
}

/// Whether any type's permanent limit is higher now than when the last emergency
/// window opened.
fn grown(
    then: &std::collections::BTreeMap<String, u32>,
    now: &std::collections::BTreeMap<String, u32>,
) -> bool {
    now.iter().any(|(name, limit)| then.get(name).is_none_or(|old| limit > old))
}

/// The vendor-signed license the config names, verified with the trusted keys.
fn load_signed(config: &Config, now: SystemTime) -> Result<Option<SignedLicense>, Error> {
    let Some(path) = &config.license_file else { return Ok(None) };
    crate::policy::load_signed(path, now).map(Some)
}

/// Callers may only say "normal" or "admin"; the other reasons are the library's.
fn check_caller_why(why: ReleaseWhy) -> Result<(), Error> {
    match why {
        ReleaseWhy::Normal | ReleaseWhy::Admin => Ok(()),
        other => Err(Error::InvalidArgument(format!(
            "release reason '{}' is set by seatgate itself; callers release as normal or admin",
            other.as_str()
        ))),
    }
}

/// One sentence per change between two configurations.
fn summarize(old: &Config, new: &Config, used: impl Fn(usize) -> u32) -> ReloadSummary {
    let mut changes = Vec::new();
    for (slot, l) in new.active() {
        match old.licenses.get(slot).filter(|o| o.state == SlotState::Active && o.name == l.name) {
            None => changes.push(format!("added '{}' (limit {})", l.name, l.limit)),
            Some(o) => {
                if o.limit != l.limit {
                    let u = used(slot);
                    let note = if u > l.limit { format!(", over limit: {u} held") } else { String::new() };
                    changes.push(format!("'{}' limit {} -> {}{note}", l.name, o.limit, l.limit));
                }
                let window = |w: Option<std::time::Duration>| w.map_or("none".to_string(), short_duration);
                if o.lease != l.lease {
                    changes.push(format!(
                        "'{}' lease {} -> {} (for new logins)",
                        l.name,
                        window(o.lease),
                        window(l.lease)
                    ));
                }
                if o.linger != l.linger {
                    changes.push(format!("'{}' linger {} -> {}", l.name, window(o.linger), window(l.linger)));
                }
                if o.alert_at != l.alert_at {
                    changes.push(format!("'{}' alert_at {}% -> {}%", l.name, o.alert_at, l.alert_at));
                }
                if o.count != l.count {
                    changes.push(format!(
                        "'{}' count {} -> {} (for new logins)",
                        l.name,
                        o.count.as_str(),
                        l.count.as_str()
                    ));
                }
                if o.requires != l.requires {
                    let list = |c: &Config, set: TypeSet| {
                        let n = names(c, set);
                        if n.is_empty() { "nothing".to_string() } else { n.join(", ") }
                    };
                    changes.push(format!(
                        "'{}' requires {} -> {}",
                        l.name,
                        list(old, o.requires),
                        list(new, l.requires)
                    ));
                }
            }
        }
    }
    for (slot, l) in new.orphans() {
        if old.licenses.get(slot).is_some_and(|o| o.state == SlotState::Active) {
            changes.push(format!(
                "removed '{}' ({} seats still held, shown as orphaned)",
                l.name,
                used(slot)
            ));
        }
    }
    ReloadSummary { changes }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Stop the reaper before the table goes away (it holds only a weak reference).
        self.stop_reaper();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_thread_keeps_a_tenant_until_it_forgets_the_engine() {
        use super::{Engine, Request, ThreadCache, with_thread_cache};
        use crate::Config;
        use std::sync::Arc;
        let text = "[licenses.desk]\nlimit = 2\n[tenants.acme]\n";
        let engine = Engine::new(Config::from_toml_str(text, "t.toml").unwrap()).unwrap();
        let seat = engine.try_acquire(&Request::new("alice", "desk").tenant("acme")).unwrap();
        engine.release(seat).unwrap();
        let kept = || {
            with_thread_cache(|cache| {
                let tenants = cache.tenants.borrow();
                let pools: Vec<_> = tenants.slots.iter().flatten().map(|t| Arc::clone(&t.pool)).collect();
                (pools, cache.config.borrow().is_some())
            })
            .unwrap()
        };
        let (pools, _) = kept();
        assert_eq!(pools.len(), 1, "the tenant's login and logout share one entry");
        assert_eq!(&*pools[0].name, "acme");
        // Kept, it is found again: a second login adds no entry.
        engine.try_acquire(&Request::new("bob", "desk").tenant("acme")).unwrap();
        assert_eq!(kept().0.len(), 1);
        // The default pool's login keeps its config.
        engine.try_acquire(&Request::new("carol", "desk")).unwrap();
        assert!(kept().1);
        drop(pools);
        with_thread_cache(ThreadCache::forget_engine);
        let (pools, config) = kept();
        assert!(pools.is_empty() && !config, "nothing of the engine is left in this thread");
    }

    #[test]
    fn control_characters_by_bytes_match_unicode() {
        for c in (0u32..0x300).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(super::has_control(&s), c.is_control(), "U+{:04X}", c as u32);
        }
    }
    /// What each listener asks of the hot path, as (quiet, thresholds): nobody, or a
    /// listener of alerts only, leaves calls quiet with lanes; a listener of
    /// thresholds needs the changes near a threshold counted exactly but no login
    /// described; a listener of logins or of every release (and an audit log) needs
    /// every login described and counted.
    #[test]
    fn only_listeners_of_logins_are_described_and_of_thresholds_counted_near_them() {
        use crate::events::{EventKind, EventMask};
        let config = crate::Config::from_toml_str("[licenses.desk]\nlimit = 2\n", "t.toml").expect("valid");
        let engine = super::Engine::new(config).expect("engine");
        let flags = |engine: &super::Engine| {
            let changes = engine.new_changes(Some(0));
            (changes.quiet, changes.thresholds)
        };
        assert_eq!(flags(&engine), (true, false), "nobody listens");
        engine.set_event_mask(EventMask::ALERTS);
        assert_eq!(flags(&engine), (true, false), "a mask with no listener");
        engine.set_event_sink(Some(std::sync::Arc::new(|_: &crate::Event| {})));
        assert_eq!(flags(&engine), (true, false), "a listener of alerts");
        for kind in EventKind::ALL {
            let mask = EventMask::ALERTS.union(EventMask::of(kind));
            engine.set_event_mask(mask);
            assert_eq!(engine.event_mask(), mask);
            let want = match kind {
                EventKind::Acquired | EventKind::Released => (false, false),
                EventKind::ThresholdUp | EventKind::ThresholdDown => (true, true),
                _ => (true, false),
            };
            assert_eq!(flags(&engine), want, "a listener of {kind:?}");
        }
        engine.set_event_mask(EventMask::NONE);
        assert_eq!(flags(&engine), (true, false), "a listener that hears nothing");
        engine.set_event_mask(EventMask::ALL);
        assert_eq!(flags(&engine), (false, true), "a listener of every event");
        engine.set_event_sink(None);
        assert_eq!(flags(&engine), (true, false), "the listener removed");
        assert_eq!(engine.event_mask(), EventMask::ALL, "the mask stays without a listener");
        assert!(super::hears_every_login(super::AUDITED), "an audit log hears every login");
    }
}
