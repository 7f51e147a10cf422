//! The boundary between the engine and the place where seats live.
//!
//! The engine resolves a request to a set of license types and hands the backend one
//! all-or-nothing operation; the backend owns the counts and the holders. The in-process
//! [`memory::MemoryBackend`] is the default; backends that span processes or hosts plug
//! in behind the same trait and pass the same conformance suite.

pub mod memory;
pub mod redis;
pub mod shm;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::SystemTime;

use smallvec::SmallVec;

use crate::clock::Mono;
pub use crate::clock::Now;
use crate::config::Config;
use crate::error::Error;
use crate::types::{SEAT_ID_MASK, SeatId, TypeSet};

/// Why a seat was given back. Carried by release events and the audit log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReleaseWhy {
    /// The holder released it (logout).
    Normal,
    /// Its lease ran out: the holder stopped renewing it.
    Expired,
    /// An admin released it (one seat, or every seat of a user).
    Admin,
    /// The user released the last seat of a type this one requires.
    Dependency,
    /// The library shut down.
    Shutdown,
    /// The process that took it died without releasing it (`shm` backend).
    OwnerGone,
    /// It was taken from a node's local share while Redis was unreachable, and did
    /// not fit into the cluster-wide limit when Redis came back (`redis` backend).
    Reconciled,
    /// It was one of the extra seats of an emergency window that ended: the newest
    /// holders beyond the permanent limit are released.
    EmergencyExpired,
    /// Its license type (or the whole license) passed `valid_until` with
    /// `on_expiry = "revoke"`.
    LicenseExpired,
}

impl ReleaseWhy {
    /// The stable name used in events, the audit log and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseWhy::Normal => "normal",
            ReleaseWhy::Expired => "expired",
            ReleaseWhy::Admin => "admin",
            ReleaseWhy::Dependency => "dependency",
            ReleaseWhy::Shutdown => "shutdown",
            ReleaseWhy::OwnerGone => "owner_gone",
            ReleaseWhy::Reconciled => "reconciled",
            ReleaseWhy::EmergencyExpired => "emergency_expired",
            ReleaseWhy::LicenseExpired => "license_expired",
        }
    }

    /// Whether a released `count = "user"` seat stays reserved for its user for the
    /// type's linger window. An admin action or a shutdown frees it at once.
    pub fn lingers(self) -> bool {
        // Seats taken away by policy (emergency end, expiry) never linger: a lingering
        // seat would still count against the limit it was taken away to restore.
        matches!(self, ReleaseWhy::Normal | ReleaseWhy::Expired | ReleaseWhy::Dependency)
    }
}

/// One resolved acquire: who, which license types, and the labels the report shows.
#[derive(Debug, Clone, Copy)]
pub struct SeatRequest<'a> {
    pub user: &'a str,
    /// Union of the license types of every profile named in the request.
    pub types: TypeSet,
    pub extension: Option<&'a str>,
    pub session: Option<&'a str>,
    /// Wall-clock login time, for the report, in milliseconds since the Unix epoch.
    pub since_ms: i64,
    /// Monotonic now, read when first needed. Exact ([`crate::clock::Clock::monotonic`])
    /// when the request has a lease or the backend asks for it ([`Backend::exact_now`]);
    /// otherwise possibly a floor of now ([`crate::clock::Clock::monotonic_floor`]),
    /// good only for checking whether a deadline (such as a linger window's end) has
    /// passed.
    pub now: &'a Now<'a>,
    /// The handle's lease in nanoseconds (0: none).
    pub lease: Mono,
}

/// A seat count that moved: the engine turns these into threshold events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountChange {
    pub slot: usize,
    pub before: u32,
    pub after: u32,
}

/// A handle given back, for events and the audit log.
#[derive(Debug, Clone)]
pub struct ReleasedSeat {
    pub seat: SeatId,
    pub user: Arc<str>,
    pub types: TypeSet,
    pub why: ReleaseWhy,
    pub extension: Option<Arc<str>>,
    pub session: Option<Arc<str>>,
    /// Use of each type of `types` (in order) right after this handle was dropped.
    pub used: SmallVec<[u32; 4]>,
}

/// What one backend call changed, collected while the backend holds its locks and
/// turned into events only after every lock is dropped.
#[derive(Debug, Default)]
pub struct Changes {
    pub counts: SmallVec<[CountChange; 8]>,
    /// One release in place: a logout, described for a listener, allocates nothing.
    pub released: SmallVec<[ReleasedSeat; 1]>,
    /// Set by the engine when nobody hears every login (no audit log, and no
    /// listener of acquired or normal released events): a backend may then leave out
    /// of `released` the handles released with [`ReleaseWhy::Normal`] (every other
    /// release is still described: a listener may hear only those). Without it, every
    /// release is in `released`.
    pub quiet: bool,
    /// Set by the engine when a listener hears threshold events: a change that moves a
    /// type across its threshold (`alert_at`) must be in `counts` with exact figures.
    /// A quiet call may still leave out of `counts` the seats it moved without reading
    /// the holder count (the memory backend's lanes), but only while the type is
    /// under its threshold.
    pub thresholds: bool,
    /// The calling thread's number (from `next_thread_lane`, kept by the engine per
    /// thread; `None` while the thread is being torn down). On a quiet call a backend
    /// may keep per-thread state by it (the memory backend's lanes of free seats);
    /// otherwise it counts exactly.
    pub lane: Option<usize>,
}

impl Changes {
    #[inline]
    pub fn count(&mut self, slot: usize, before: u32, after: u32) {
        self.counts.push(CountChange { slot, before, after });
    }

    /// Whether nothing was allocated (the usual quiet call: `released` never grew,
    /// `counts` stayed inline), so that dropping `self` frees nothing and its drop
    /// glue (an out-of-line call, 31 instructions a logout) may be skipped with
    /// [`std::mem::forget`]. A field added to `Changes` that can own memory must be
    /// tested here too.
    #[inline(always)]
    pub fn holds_no_allocation(&self) -> bool {
        !self.released.spilled() && self.released.is_empty() && !self.counts.spilled()
    }
}

/// A held seat handle as seen by a report snapshot.
#[derive(Debug, Clone)]
pub struct HeldSeat {
    pub seat: SeatId,
    pub user: Arc<str>,
    /// Every license type this handle asked for (counted per user or per session).
    pub types: TypeSet,
    pub extension: Option<Arc<str>>,
    pub session: Option<Arc<str>>,
    pub since: SystemTime,
    /// Monotonic deadline of the lease (0: no lease).
    pub deadline: Mono,
    /// The node that took it (`redis` backend), or the process (`shm`: "pid 1234").
    pub node: Option<Arc<str>>,
    /// Orders handles of the same `since` by login (higher: later), where the backend
    /// knows; else the seat id.
    pub order: u64,
}

/// A released `count = "user"` seat kept for its user until `deadline`.
#[derive(Debug, Clone)]
pub struct LingeringSeat {
    pub user: Arc<str>,
    pub slot: usize,
    pub deadline: Mono,
}

/// Per-type counters for billing: kept by the backend next to the seat count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeStats {
    /// Highest use since the table started.
    pub peak: u32,
    /// Highest use since the last [`Backend::reset_peaks`] (or since start).
    pub peak_since_reset: u32,
    /// Seats taken since start (a user's second handle of a per-user type takes none).
    pub acquired: u64,
    /// Requests this type refused since start.
    pub denied: u64,
}

/// Where seats are counted. Every method is safe to call from any thread at any time,
/// and none calls out of the library.
///
/// Seats are counted per type *slot* (see [`Config::licenses`]): a reload keeps every
/// surviving type in its slot, so the table needs no rebuilding.
pub trait Backend: Send + Sync {
    /// Short name shown in reports ("memory", ...).
    fn kind(&self) -> &'static str;

    /// Whether every `now` given to this backend must be the exact monotonic time.
    /// By default the engine may pass a floor of now (cheaper to read) where nothing
    /// but deadline checks depend on it; see [`SeatRequest::now`].
    fn exact_now(&self) -> bool {
        false
    }

    /// Takes one seat of every type in `req.types` that the user needs, or nothing.
    ///
    /// - `count = "user"` types the user already holds take no extra seat, and a type
    ///   still lingering for the user is handed back without counting again;
    /// - `count = "session"` types take a seat for every handle;
    /// - a type whose `requires` the user neither holds nor requests refuses.
    ///
    /// On refusal returns [`Error::LimitReached`] naming the type, and every seat this
    /// call took is given back before returning.
    fn try_acquire(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error>;

    /// The express lane for the commonest login: plain types only (see
    /// [`Config::express_types`]), no extension or session label. Takes the seats and
    /// returns the new handle exactly as [`Backend::try_acquire`] would (with what it
    /// changed in `changes`, counted as `changes` asks), or returns `None` having
    /// changed nothing, and
    /// the engine takes the general path: for a refusal (which the general path
    /// explains, counts and may cure by reaping), for anything the lane does not
    /// handle (a seat lingering for the user), and by default (a backend without
    /// a lane).
    fn express_acquire(
        &self,
        _config: &Config,
        _types: TypeSet,
        _user: &str,
        _since_ms: i64,
        _changes: &mut Changes,
    ) -> Option<SeatId> {
        None
    }

    /// The express lane for the commonest logout: a [`ReleaseWhy::Normal`] release of
    /// a handle with no lease, no lingering type, and no other handle of its user that
    /// may depend on it. Gives back its seats exactly as [`Backend::release`] would
    /// (describing the release unless `changes.quiet`) and returns `true`, or returns `false`
    /// having changed nothing (an unknown handle included: the general path says why),
    /// and the engine takes the general path.
    fn express_release(&self, _config: &Config, _seat: SeatId, _changes: &mut Changes) -> bool {
        false
    }

    /// Gives back what `seat` holds, and then every handle of the same user that
    /// needed a type the user no longer holds ([`ReleaseWhy::Dependency`]). A handle
    /// is released at most once. An unknown handle is [`Error::UnknownSeat`]; a handle
    /// whose lease ran out is reclaimed as expired and is [`Error::SeatExpired`].
    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> Result<(), Error>;

    /// Releases every handle of `user` (and, for [`ReleaseWhy::Admin`], the user's
    /// lingering seats). Returns how many handles; [`Error::UnknownUser`] if nothing
    /// was released.
    fn release_user(
        &self,
        config: &Config,
        user: &str,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error>;

    /// Renews the lease of `seat`. Errors as for [`Backend::release`].
    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error>;

    /// Renews every lease of `user`; returns how many handles were renewed.
    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error>;

    /// Reclaims every expired lease and ended linger window; returns how many seats
    /// (handles and lingering seats) were reclaimed. Cheap when nothing is due.
    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize;

    /// Seats in use of the type in `slot` of `config`.
    fn used(&self, config: &Config, slot: usize) -> u32;

    /// Billing counters of the type in `slot` of `config`.
    fn stats(&self, config: &Config, slot: usize) -> TypeStats;

    /// Counts one refused request against the type in `slot` of `config`.
    fn count_denial(&self, config: &Config, slot: usize);

    /// Starts a new "peak since reset" period at the current use.
    fn reset_peaks(&self, config: &Config);

    /// A copy of every held handle, taken without blocking acquirers for long. Types
    /// are given as slots of `config`.
    fn holders(&self, config: &Config) -> Vec<HeldSeat>;

    /// The handles this engine itself took: what a shutdown gives back. For a table
    /// shared by processes or nodes, only this process's (or node's) handles, never
    /// the others'.
    fn own_holders(&self, config: &Config) -> Vec<HeldSeat> {
        self.holders(config)
    }

    /// A copy of every lingering seat.
    fn lingering(&self, config: &Config) -> Vec<LingeringSeat>;

    /// A number that every process sharing the table sees change when one of them
    /// reloads its config file (0 and constant for a private table): the others then
    /// reload the same file on their next call, so one `license_reload` (for example
    /// an RPC that reaches one Kamailio worker) applies to the whole installation.
    fn reload_epoch(&self) -> u64 {
        0
    }

    /// Tells the other processes that this one reloaded; returns the new epoch.
    fn announce_reload(&self) -> u64 {
        0
    }

    /// Whether other processes share this table (`shm`, `redis`): then a tenant's pool
    /// that this process never opened may still hold their seats.
    fn shared(&self) -> bool {
        false
    }

    /// The numbers of tenants `names`, from a registry that every process sharing
    /// this backend reads, registering the ones it does not hold yet (in the order
    /// given; at most `max` in all). A seat handle carries its tenant's number, so a
    /// handle taken in one process and released in another must name the same tenant
    /// in both. `None`: the table is this process's own (`memory`), and the engine
    /// numbers its tenants itself.
    fn tenant_numbers(&self, names: &[&str], max: usize) -> Result<Option<Vec<u32>>, Error> {
        let _ = (names, max);
        Ok(None)
    }

    /// The tenant that some process registered under `number` (see
    /// [`Backend::tenant_numbers`]); `None` when nobody did, or the table is private.
    fn tenant_named(&self, number: u32) -> Result<Option<Arc<str>>, Error> {
        let _ = number;
        Ok(None)
    }

    /// What the report says about the backend itself: where the table lives, how
    /// full it is, whether it is degraded.
    fn status(&self, config: &Config) -> BackendStatus {
        let _ = config;
        BackendStatus { kind: self.kind(), detail: String::new(), degraded: None, warnings: Vec::new() }
    }

    /// A separate pool for one tenant of a hosted installation: its own seat counts,
    /// users, holders and lingering seats, sharing nothing countable with this pool or
    /// another tenant's. `tenant` is 1 to 63 bytes of [A-Za-z0-9_.-] (the engine checks).
    /// Cheap: thousands of tenants may be opened; an idle one should cost little memory.
    ///
    /// Where the pool lives, per backend:
    /// - `memory`: a new, empty in-process table on every call (nothing to share with);
    /// - `shm`: the file `{path}@{tenant}` next to this pool's file, with the same
    ///   capacity and checks, so every process that opens the tenant maps one table;
    /// - `redis`: the keys under `{prefix}:tenant:{tenant}` on the same server, through
    ///   this pool's connections.
    ///
    /// A tenant pool reports a reload epoch of 0 and announces nothing: a reload of
    /// the installation travels through its main pool. A name outside the rules is
    /// [`Error::Backend`].
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error>;
}

/// Longest tenant name, in bytes.
pub const MAX_TENANT_LEN: usize = 63;

/// Checks a tenant name against the rules of [`Backend::open_tenant`]: it becomes part
/// of a file name (`shm`) and of Redis keys (`redis`), so nothing else may pass.
pub fn check_tenant_name(tenant: &str) -> Result<(), Error> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if tenant.is_empty() || tenant.len() > MAX_TENANT_LEN || !tenant.bytes().all(allowed) {
        return Err(Error::Backend(format!(
            "tenant name '{}' is not valid: use 1 to {MAX_TENANT_LEN} letters, digits, '_', '.' or '-'",
            tenant.escape_debug()
        )));
    }
    Ok(())
}

/// The backend's own line in the report.
#[derive(Debug, Clone, Default)]
pub struct BackendStatus {
    pub kind: &'static str,
    /// Where the table lives and how full it is ("/dev/shm/acme, 12/10000 handles").
    pub detail: String,
    /// Why the backend is degraded, when it is (Redis unreachable, serving locally).
    pub degraded: Option<String>,
    /// Things an admin should look at.
    pub warnings: Vec<String>,
}

/// Opens the backend the config names.
pub fn open(config: &Config) -> Result<Box<dyn Backend>, Error> {
    match &config.backend {
        crate::config::BackendConfig::Memory => Ok(Box::new(memory::MemoryBackend::new())),
        crate::config::BackendConfig::Shm(shm) => Ok(Box::new(shm::ShmBackend::open(shm)?)),
        crate::config::BackendConfig::Redis(r) => Ok(Box::new(redis::RedisBackend::open(r)?)),
    }
}

static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);

/// A number for a thread's first call, given in turn (the engine keeps it per thread
/// and passes it in [`Changes::lane`]).
pub(crate) fn next_thread_lane() -> usize {
    NEXT_LANE.fetch_add(1, Ordering::Relaxed)
}

/// Process-wide handle counter: handles are not reused while the library is loaded,
/// even across shutdown and a new init, so a stale handle cannot free someone else's
/// seat. Ids are the counter's low [`SEAT_ID_BITS`](crate::types::SEAT_ID_BITS) bits (the engine owns the rest),
/// skipping the value 0: they would repeat only after 2^48 - 1 handles, which at ten
/// million handles a second takes 325 days, and only a handle still held from that
/// long ago could then be confused with a new one.
static NEXT_SEAT: AtomicU64 = AtomicU64::new(1);

/// Each thread takes handles from a block of its own, so threads don't contend on one
/// counter's cache line for every login.
const SEAT_BLOCK: u64 = 1024;

thread_local! {
    /// The calling thread's block: next handle to give, and the end of the block.
    static SEAT_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[inline]
pub(crate) fn next_seat_id() -> SeatId {
    loop {
        let raw = SEAT_IDS
            .try_with(|ids| {
                let (mut next, mut end) = ids.get();
                if next == end {
                    next = NEXT_SEAT.fetch_add(SEAT_BLOCK, Ordering::Relaxed);
                    end = next + SEAT_BLOCK;
                }
                ids.set((next + 1, end));
                next
            })
            // During thread teardown the block is gone: take a single handle.
            .unwrap_or_else(|_| NEXT_SEAT.fetch_add(1, Ordering::Relaxed));
        // 0 only once every 2^48 handles: take the next one then.
        let seat = raw & SEAT_ID_MASK;
        if seat != 0 {
            return seat;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_say_whether_they_allocated() {
        // `holds_no_allocation` lets the engine forget a quiet call's `Changes`
        // instead of dropping it: it must be false whenever dropping would free.
        let mut changes = Changes::default();
        assert!(changes.holds_no_allocation());
        for slot in 0..8 {
            changes.count(slot, 0, 1);
        }
        assert!(changes.holds_no_allocation(), "eight counts stay inline");
        changes.count(8, 0, 1);
        assert!(!changes.holds_no_allocation(), "a ninth spills to the heap");
        let release = |seat: SeatId| ReleasedSeat {
            seat,
            user: Arc::from("alice"),
            types: TypeSet::single(0),
            why: ReleaseWhy::Normal,
            extension: None,
            session: None,
            used: SmallVec::new(),
        };
        let mut changes = Changes::default();
        changes.released.push(release(1));
        assert!(!changes.holds_no_allocation(), "a described release, held in place, holds its user's name");
        changes.released.clear();
        assert!(changes.holds_no_allocation(), "one release is held in place: cleared, nothing is left");
        changes.released.push(release(1));
        changes.released.push(release(2));
        changes.released.clear();
        assert!(
            !changes.holds_no_allocation(),
            "a second spills: emptied, the vector still holds its buffer"
        );
    }

    #[test]
    fn tenant_names_follow_the_rules() {
        for good in ["A", "acme-1", "pbx_2.example", &"x".repeat(MAX_TENANT_LEN)] {
            assert!(check_tenant_name(good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "..\\x", "a b", "caf\u{e9}", "a@b", "a:b", &"x".repeat(MAX_TENANT_LEN + 1)] {
            match check_tenant_name(bad) {
                Err(Error::Backend(msg)) => assert!(msg.contains("is not valid"), "{msg}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn memory_ids_are_nonzero_and_within_the_backends_bits() {
        for _ in 0..3 * SEAT_BLOCK {
            let seat = next_seat_id();
            assert!(seat != 0 && seat <= SEAT_ID_MASK);
        }
    }
}
