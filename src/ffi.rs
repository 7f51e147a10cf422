//! The C ABI. Every `extern "C"` function and every `unsafe` pointer access of the
//! crate lives in this file; the engine behind it is safe Rust.
//!
//! Conventions (after rustls-ffi and hyper's C API):
//! - every exported body runs inside [`ffi_boundary!`], so no panic crosses into C;
//! - every pointer is checked; NULL where a value is required is
//!   `LICENSE_ERR_INVALID_ARGUMENT`;
//! - out-parameters come last and are written only on success (except `needed`, which
//!   exists to say how much room a too-small buffer lacked);
//! - output strings go into caller buffers `(buf, len, needed)`, always NUL-terminated
//!   when `len > 0`, written with `copy_nonoverlapping`;
//! - the detail of each failure is kept per thread for `license_last_error`.
#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CStr, OsStr, c_char, c_void};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::backend::ReleaseWhy;
use crate::engine::{Engine, Request, ThreadCache, with_thread_cache};
use crate::error::{Denial, DenialReason, Error};
use crate::events::{Event, EventKind, EventMask, EventSink};
use crate::report::Page;
use crate::types;

/// Status codes returned by every `int32_t` function. 0 is success; errors are
/// negative. The numbers are part of the ABI: they never change and are never reused.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_status {
    /// Success.
    LICENSE_OK = 0,
    /// A license type in the request is full; nothing was taken. The type and its
    /// used/limit are in the `license_denial` of `license_try_acquire_ex` and in
    /// `license_last_error`.
    LICENSE_ERR_LIMIT_REACHED = -1,
    /// A name in the profile list is neither a profile nor a license type.
    LICENSE_ERR_UNKNOWN_PROFILE = -2,
    /// A NULL, empty, over-long, non-UTF-8 or otherwise malformed argument.
    LICENSE_ERR_INVALID_ARGUMENT = -3,
    /// `license_init` has not succeeded, or `license_shutdown` has run.
    LICENSE_ERR_NOT_INITIALIZED = -4,
    /// `license_init` was called while the library is already initialized.
    LICENSE_ERR_ALREADY_INITIALIZED = -5,
    /// The seat handle is not held: already released, never issued, or issued before
    /// a shutdown. Nothing was freed.
    LICENSE_ERR_UNKNOWN_SEAT = -6,
    /// The configuration file is unreadable or invalid; `license_last_error` gives
    /// `file:line:column: problem`.
    LICENSE_ERR_CONFIG = -7,
    /// The caller's buffer is too small; `*needed` holds the size required. When
    /// `len > 0` the buffer holds a NUL-terminated prefix of the output.
    LICENSE_ERR_BUFFER_TOO_SMALL = -8,
    /// A bug inside seatgate (a caught panic). The host keeps running; the call had
    /// no effect that the caller must undo.
    LICENSE_ERR_INTERNAL = -9,
    /// The name is not a license type of the running configuration (the queries
    /// that take one type, such as `license_usage`).
    LICENSE_ERR_UNKNOWN_LICENSE_TYPE = -10,
    /// A license type in the request requires another type (`requires = [...]`) that
    /// the user neither holds nor requests; nothing was taken. The denial names both.
    LICENSE_ERR_REQUIREMENT_MISSING = -11,
    /// The user holds no seat handle (`license_release_user`, `license_touch_user`).
    LICENSE_ERR_UNKNOWN_USER = -12,
    /// The backend could not do its part: Redis unreachable or slower than
    /// `[backend] timeout` with `on_backend_error = "deny"`, or a shared table that
    /// cannot be opened. Nothing was taken or freed; `license_last_error` says why.
    LICENSE_ERR_BACKEND = -13,
    /// The `shm` table has no room for another seat handle (`[backend] capacity`).
    /// Nothing was taken.
    LICENSE_ERR_TABLE_FULL = -14,
    /// A license type of the request, or the whole license, passed its `valid_until`
    /// date (or the signed license's). Nothing was taken; `license_last_error` names
    /// the type and the date.
    LICENSE_ERR_EXPIRED = -15,
    /// The request names a tenant that is neither declared (`[tenants.NAME]`) nor
    /// given limits with `license_set_limit`.
    LICENSE_ERR_UNKNOWN_TENANT = -16,
    /// `license_emergency_activate` cannot open a window: no `[emergency]` in the
    /// config, a window is open, or the one window allowed was used and no affected
    /// type's permanent limit has grown since. `license_last_error` says which.
    LICENSE_ERR_EMERGENCY_UNAVAILABLE = -17,
    /// The state file in `state_dir` cannot be read or written, or is corrupt.
    /// Nothing changed; `license_last_error` names the file.
    LICENSE_ERR_STATE = -18,
    /// The vendor-signed license file (`license_file`) is unreadable, tampered with,
    /// signed by a key that is not trusted, or expired; or a key passed to
    /// `license_trust_key` is malformed.
    LICENSE_ERR_LICENSE_FILE = -19,
}

/// Why a license type refused a request (`license_denial.reason`, and the `reason`
/// of a `LICENSE_EVENT_DENIED` event).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_denial_reason {
    /// Every seat of the type is taken.
    LICENSE_DENIAL_FULL = 0,
    /// The type has no seats at all (limit 0).
    LICENSE_DENIAL_NO_SEATS = 1,
    /// More seats are held than the limit, which a reload lowered; nobody was logged
    /// out, and new logins wait until use falls under the limit.
    LICENSE_DENIAL_OVER_LIMIT = 2,
    /// The type requires another type the user neither holds nor requests
    /// (`license_denial.requires` names it).
    LICENSE_DENIAL_REQUIREMENT_MISSING = 3,
    /// The free seats of the type are reserved for other profiles
    /// (`reserve = {...}`); `license_denial.profile` names them.
    LICENSE_DENIAL_RESERVED = 4,
    /// The request's profile is capped at `limit` seats of the type (`cap = {...}`)
    /// and its members hold them all; `license_denial.profile` names it, and
    /// `used`/`limit` are the cap's.
    LICENSE_DENIAL_CAPPED = 5,
    /// The type, or the whole license, passed its `valid_until`: the acquire returned
    /// `LICENSE_ERR_EXPIRED` (`license_type` names the type; empty when the whole
    /// license ended; `used` and `limit` are 0).
    LICENSE_DENIAL_EXPIRED = 6,
}

/// Why a seat was given back (`LICENSE_EVENT_RELEASED` events and the audit log).
/// Callers pass `LICENSE_RELEASE_NORMAL` or `LICENSE_RELEASE_ADMIN`; the others are
/// set by seatgate.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_release_reason {
    /// The holder logged out.
    LICENSE_RELEASE_NORMAL = 0,
    /// The lease ran out: the holder stopped calling `license_touch`.
    LICENSE_RELEASE_EXPIRED = 1,
    /// An admin released it. Nothing lingers after an admin release.
    LICENSE_RELEASE_ADMIN = 2,
    /// The user gave up the last seat of a type this seat's type requires.
    LICENSE_RELEASE_DEPENDENCY = 3,
    /// `license_shutdown`.
    LICENSE_RELEASE_SHUTDOWN = 4,
    /// The process that took it died without releasing it (`shm` backend: its pid is
    /// gone), so it was reclaimed before its lease ran out.
    LICENSE_RELEASE_OWNER_GONE = 5,
    /// Taken from this node's local share while Redis was unreachable
    /// (`on_backend_error = "allow_local"`), it did not fit into the cluster-wide
    /// limit when Redis came back. The host should log the user out.
    LICENSE_RELEASE_RECONCILED = 6,
    /// One of the extra seats of an emergency window (`license_emergency_activate`)
    /// that ended: the newest holders beyond the permanent limit are released. The
    /// host should log the user out.
    LICENSE_RELEASE_EMERGENCY_EXPIRED = 7,
    /// The license type, or the whole license, passed its `valid_until` date with
    /// `on_expiry = "revoke"`. The host should log the user out.
    LICENSE_RELEASE_LICENSE_EXPIRED = 8,
}

impl From<ReleaseWhy> for license_release_reason {
    fn from(why: ReleaseWhy) -> Self {
        use license_release_reason::*;
        match why {
            ReleaseWhy::Normal => LICENSE_RELEASE_NORMAL,
            ReleaseWhy::Expired => LICENSE_RELEASE_EXPIRED,
            ReleaseWhy::Admin => LICENSE_RELEASE_ADMIN,
            ReleaseWhy::Dependency => LICENSE_RELEASE_DEPENDENCY,
            ReleaseWhy::Shutdown => LICENSE_RELEASE_SHUTDOWN,
            ReleaseWhy::OwnerGone => LICENSE_RELEASE_OWNER_GONE,
            ReleaseWhy::Reconciled => LICENSE_RELEASE_RECONCILED,
            ReleaseWhy::EmergencyExpired => LICENSE_RELEASE_EMERGENCY_EXPIRED,
            ReleaseWhy::LicenseExpired => LICENSE_RELEASE_LICENSE_EXPIRED,
        }
    }
}

impl From<DenialReason> for license_denial_reason {
    fn from(reason: DenialReason) -> Self {
        use license_denial_reason::*;
        match reason {
            DenialReason::Full => LICENSE_DENIAL_FULL,
            DenialReason::NoSeats => LICENSE_DENIAL_NO_SEATS,
            DenialReason::OverLimit => LICENSE_DENIAL_OVER_LIMIT,
            DenialReason::MissingRequirement => LICENSE_DENIAL_REQUIREMENT_MISSING,
            DenialReason::Reserved => LICENSE_DENIAL_RESERVED,
            DenialReason::Capped => LICENSE_DENIAL_CAPPED,
            DenialReason::Expired => LICENSE_DENIAL_EXPIRED,
        }
    }
}

/// What a `license_event` reports.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_event_kind {
    /// A handle took (or, for a per-user type the user already held, joined) a seat
    /// of `license_type`. One event per type of the handle.
    LICENSE_EVENT_ACQUIRED = 1,
    /// A handle gave back its hold on `license_type`; `reason` is a
    /// `license_release_reason`. One event per type of the handle.
    LICENSE_EVENT_RELEASED = 2,
    /// `license_type` refused a request of `user`; `reason` is a
    /// `license_denial_reason`.
    LICENSE_EVENT_DENIED = 3,
    /// Use of `license_type` reached `threshold_percent` of its limit, going up.
    LICENSE_EVENT_THRESHOLD_UP = 4,
    /// Use of `license_type` fell back under `threshold_percent` of its limit.
    LICENSE_EVENT_THRESHOLD_DOWN = 5,
    /// A new configuration is running (`license_reload`); `detail` lists the changes.
    LICENSE_EVENT_RELOADED = 6,
    /// An early warning: a license type (`license_type`), the whole license or the
    /// support subscription ends soon, support has ended, or an emergency window is
    /// about to close. `detail` says which and when. Sent once per date.
    LICENSE_EVENT_WARNING = 7,
    /// `license_type` passed its `valid_until` (or the whole license did): new
    /// logins of it are refused with `LICENSE_ERR_EXPIRED`; with `on_expiry =
    /// "revoke"` its holders follow as RELEASED events (`LICENSE_RELEASE_LICENSE_EXPIRED`).
    LICENSE_EVENT_EXPIRED = 8,
    /// An emergency window opened (`license_emergency_activate`); `detail` gives
    /// its end.
    LICENSE_EVENT_EMERGENCY_STARTED = 9,
    /// The emergency window ended; holders beyond the permanent limit follow as
    /// RELEASED events (`LICENSE_RELEASE_EMERGENCY_EXPIRED`): log those users out.
    LICENSE_EVENT_EMERGENCY_ENDED = 10,
    /// A limit was set at run time (`license_set_limit`); `license_type`, `limit`
    /// (the effective one) and `tenant` say which.
    LICENSE_EVENT_LIMIT_CHANGED = 11,
}

/// One event, passed to the `license_event_callback`. Valid only during the call:
/// copy what you keep. Strings are NUL-terminated UTF-8.
#[repr(C)]
pub struct license_event {
    /// `sizeof(license_event)` of the library that built it: fields added later go at
    /// the end; read only those your header knows.
    pub size: usize,
    /// A `license_event_kind`.
    pub kind: u32,
    /// `license_release_reason` for RELEASED, `license_denial_reason` for DENIED, 0
    /// otherwise.
    pub reason: u32,
    /// The license type; NULL for RELOADED, EMERGENCY_STARTED, EMERGENCY_ENDED and
    /// for a WARNING or EXPIRED event about the whole license or support.
    pub license_type: *const c_char,
    /// The user; NULL for THRESHOLD, RELOADED and the policy events (WARNING,
    /// EXPIRED, EMERGENCY_*, LIMIT_CHANGED).
    pub user: *const c_char,
    /// The seat handle for ACQUIRED and RELEASED; 0 otherwise.
    pub seat: u64,
    /// Seats of `license_type` in use right after the change (for RELEASED: right
    /// after that handle went), and its limit.
    pub used: u32,
    pub limit: u32,
    /// The type's `alert_at` percentage, for THRESHOLD events; 0 otherwise.
    pub threshold_percent: u32,
    /// Wall-clock time of the event, milliseconds since the Unix epoch (UTC).
    pub time_unix_ms: i64,
    /// One human sentence, never NULL.
    pub detail: *const c_char,
    /// For DENIED with `LICENSE_DENIAL_REQUIREMENT_MISSING`: the missing license type;
    /// NULL otherwise.
    pub requires: *const c_char,
    /// The tenant whose pool the event is about; NULL for the default tenant and for
    /// events about the whole installation.
    pub tenant: *const c_char,
}

/// The event listener: `user_data` as given to `license_set_event_callback`, and the
/// event (valid only during the call).
///
/// Thread safety: it can be called on several threads at once; see
/// `license_set_event_callback` for which thread delivers which event.
pub type license_event_callback =
    Option<unsafe extern "C" fn(user_data: *mut c_void, event: *const license_event)>;

/// Billing counters of one license type, from `license_stats`.
#[repr(C)]
pub struct license_type_stats {
    /// Set to `sizeof(license_type_stats)` before the call; only that many bytes are
    /// written.
    pub size: usize,
    /// Seats in use now (lingering seats included), and the limit.
    pub used: u32,
    pub limit: u32,
    /// Highest use since `license_init`.
    pub peak: u32,
    /// Highest use since the last `license_stats_reset` (or since init).
    pub peak_since_reset: u32,
    /// Seats taken since init (a user's second handle of a per-user type takes none).
    pub acquired: u64,
    /// Requests this type refused since init (a refusal for a missing requirement
    /// counts against the type that requires it).
    pub denied: u64,
}

/// Formats for `license_report`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum license_report_format {
    /// The admin's text view: per-type `used/limit`, warnings, online-licenses table.
    LICENSE_REPORT_TEXT = 0,
    /// JSON: `licensee`, `licenses`, `holders`, `warnings`, `paging`, ...
    LICENSE_REPORT_JSON = 1,
    /// The Prometheus text exposition format 0.0.4 (`# HELP`, `# TYPE`, samples):
    /// `seatgate_*` gauges and `_total` counters per license type, labelled `tenant`
    /// (`""`: the default tenant) and `type`, for an HTTP endpoint to serve as
    /// `text/plain; version=0.0.4`. `license_report` adds every tenant whose pool is
    /// open; the paging arguments change nothing. The README lists the metrics.
    LICENSE_REPORT_PROMETHEUS = 2,
}

impl TryFrom<u32> for license_report_format {
    type Error = ();
    fn try_from(value: u32) -> Result<Self, ()> {
        match value {
            0 => Ok(license_report_format::LICENSE_REPORT_TEXT),
            1 => Ok(license_report_format::LICENSE_REPORT_JSON),
            2 => Ok(license_report_format::LICENSE_REPORT_PROMETHEUS),
            _ => Err(()),
        }
    }
}

/// Longest user name, extension label or session label, in bytes (without the NUL).
pub const LICENSE_MAX_LABEL_LEN: usize = 255;
/// Longest comma-separated profile list, in bytes (without the NUL).
pub const LICENSE_MAX_PROFILES_LEN: usize = 1023;
/// Longest license-type or profile name, in bytes (without the NUL).
pub const LICENSE_MAX_NAME_LEN: usize = 63;
/// Longest config path, in bytes (without the NUL).
pub const LICENSE_MAX_PATH_LEN: usize = 4095;

// cbindgen needs literals; the engine's limits are the source of truth.
const _: () = assert!(LICENSE_MAX_LABEL_LEN == types::MAX_LABEL_LEN);
const _: () = assert!(LICENSE_MAX_PROFILES_LEN == types::MAX_PROFILES_LEN);
const _: () = assert!(LICENSE_MAX_NAME_LEN == types::MAX_NAME_LEN);
const _: () = assert!(LICENSE_MAX_NAME_LEN < 64, "license_denial.license_type holds the name and its NUL");

// ---- which events the listener hears (license_set_event_mask) ----
// One bit per event kind: `1 << LICENSE_EVENT_...`.
/// `LICENSE_EVENT_ACQUIRED` events: every login (needs every login described).
pub const LICENSE_EVENTS_ACQUIRED: u32 = 0x2;
/// Every `LICENSE_EVENT_RELEASED` event, the host's own logouts included (needs every logout
/// described). To hear only the releases the host did not ask for, use
/// `LICENSE_EVENTS_RELEASED_FORCED` instead.
pub const LICENSE_EVENTS_RELEASED: u32 = 0x4;
/// `LICENSE_EVENT_DENIED` events: refusals.
pub const LICENSE_EVENTS_DENIED: u32 = 0x8;
/// `LICENSE_EVENT_THRESHOLD_UP` events (needs each type counted exactly near its
/// threshold, but no event per login).
pub const LICENSE_EVENTS_THRESHOLD_UP: u32 = 0x10;
/// `LICENSE_EVENT_THRESHOLD_DOWN` events (needs each type counted exactly near its
/// threshold, but no event per login).
pub const LICENSE_EVENTS_THRESHOLD_DOWN: u32 = 0x20;
/// `LICENSE_EVENT_RELOADED` events.
pub const LICENSE_EVENTS_RELOADED: u32 = 0x40;
/// `LICENSE_EVENT_WARNING` events.
pub const LICENSE_EVENTS_WARNING: u32 = 0x80;
/// `LICENSE_EVENT_EXPIRED` events.
pub const LICENSE_EVENTS_EXPIRED: u32 = 0x100;
/// `LICENSE_EVENT_EMERGENCY_STARTED` events.
pub const LICENSE_EVENTS_EMERGENCY_STARTED: u32 = 0x200;
/// `LICENSE_EVENT_EMERGENCY_ENDED` events.
pub const LICENSE_EVENTS_EMERGENCY_ENDED: u32 = 0x400;
/// `LICENSE_EVENT_LIMIT_CHANGED` events.
pub const LICENSE_EVENTS_LIMIT_CHANGED: u32 = 0x800;
/// `LICENSE_EVENT_RELEASED` events whose reason is not `LICENSE_RELEASE_NORMAL`: the
/// holder did not log out itself (lease expired, admin, dependency, shutdown, owner
/// gone, reconciled, emergency expired, license expired), so the host should log the
/// user out. Costs nothing on a login or a plain logout.
pub const LICENSE_EVENTS_RELEASED_FORCED: u32 = 0x1000;
/// Every event (the default).
pub const LICENSE_EVENTS_ALL: u32 = 0x1ffe;
/// What a host must act on or an admin must see, at the speed of a login nobody
/// listens to: DENIED, RELEASED_FORCED, RELOADED, WARNING, EXPIRED,
/// EMERGENCY_STARTED, EMERGENCY_ENDED and LIMIT_CHANGED.
pub const LICENSE_EVENTS_ALERTS: u32 = 0x1fc8;

// cbindgen needs literals; the engine's event kinds are the source of truth.
const _: () = assert!(LICENSE_EVENTS_ACQUIRED == EventMask::of(EventKind::Acquired).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_ACQUIRED as u32 == EventKind::Acquired.code());
const _: () = assert!(LICENSE_EVENTS_RELEASED == EventMask::of(EventKind::Released).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_RELEASED as u32 == EventKind::Released.code());
const _: () = assert!(LICENSE_EVENTS_DENIED == EventMask::of(EventKind::Denied).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_DENIED as u32 == EventKind::Denied.code());
const _: () = assert!(LICENSE_EVENTS_THRESHOLD_UP == EventMask::of(EventKind::ThresholdUp).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_THRESHOLD_UP as u32 == EventKind::ThresholdUp.code());
const _: () = assert!(LICENSE_EVENTS_THRESHOLD_DOWN == EventMask::of(EventKind::ThresholdDown).bits());
const _: () =
    assert!(license_event_kind::LICENSE_EVENT_THRESHOLD_DOWN as u32 == EventKind::ThresholdDown.code());
const _: () = assert!(LICENSE_EVENTS_RELOADED == EventMask::of(EventKind::Reloaded).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_RELOADED as u32 == EventKind::Reloaded.code());
const _: () = assert!(LICENSE_EVENTS_WARNING == EventMask::of(EventKind::Warning).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_WARNING as u32 == EventKind::Warning.code());
const _: () = assert!(LICENSE_EVENTS_EXPIRED == EventMask::of(EventKind::Expired).bits());
const _: () = assert!(license_event_kind::LICENSE_EVENT_EXPIRED as u32 == EventKind::Expired.code());
const _: () = assert!(LICENSE_EVENTS_EMERGENCY_STARTED == EventMask::of(EventKind::EmergencyStarted).bits());
const _: () =
    assert!(license_event_kind::LICENSE_EVENT_EMERGENCY_STARTED as u32 == EventKind::EmergencyStarted.code());
const _: () = assert!(LICENSE_EVENTS_EMERGENCY_ENDED == EventMask::of(EventKind::EmergencyEnded).bits());
const _: () =
    assert!(license_event_kind::LICENSE_EVENT_EMERGENCY_ENDED as u32 == EventKind::EmergencyEnded.code());
const _: () = assert!(LICENSE_EVENTS_LIMIT_CHANGED == EventMask::of(EventKind::LimitChanged).bits());
const _: () =
    assert!(license_event_kind::LICENSE_EVENT_LIMIT_CHANGED as u32 == EventKind::LimitChanged.code());
const _: () = assert!(LICENSE_EVENTS_RELEASED_FORCED == EventMask::FORCED_RELEASES.bits());
const _: () = assert!(LICENSE_EVENTS_ALL == EventMask::ALL.bits());
const _: () = assert!(LICENSE_EVENTS_ALERTS == EventMask::ALERTS.bits());

/// An extended login request for `license_try_acquire_ex`.
///
/// Set `size` to `sizeof(license_request)`: fields added in later versions go at the
/// end, and a caller compiled against an older header is served as if they were NULL.
/// Optional strings may be NULL.
#[repr(C)]
pub struct license_request {
    /// `sizeof(license_request)` as the caller compiled it.
    pub size: usize,
    /// Login name. Required; 1 to `LICENSE_MAX_LABEL_LEN` bytes of UTF-8.
    pub user: *const c_char,
    /// Comma-separated profile or license-type names, e.g. `"operator,chat_team"`.
    pub profiles: *const c_char,
    /// Optional extension or device label, shown in the report.
    pub extension: *const c_char,
    /// Optional session label (SIP Call-ID, CRM session id...), shown in the report.
    pub session: *const c_char,
    /// Optional tenant (`[tenants.NAME]`, or one given limits with
    /// `license_set_limit`) whose seat pool serves the request; NULL or "" for the
    /// default tenant. The seat handle remembers its tenant: release and touch it as
    /// any other.
    pub tenant: *const c_char,
}

/// Which license type refused a request, and why, for programs. Filled by
/// `license_try_acquire_ex` when it returns `LICENSE_ERR_LIMIT_REACHED` or
/// `LICENSE_ERR_REQUIREMENT_MISSING`.
#[repr(C)]
pub struct license_denial {
    /// Set to `sizeof(license_denial)` before the call: fields added in later versions
    /// go at the end, and only `size` bytes are ever written.
    pub size: usize,
    /// NUL-terminated name of the license type that refused.
    pub license_type: [c_char; 64],
    /// Seats of that type in use when the request was refused.
    pub used: u32,
    /// The type's limit.
    pub limit: u32,
    /// A `license_denial_reason`.
    pub reason: u32,
    /// For `LICENSE_DENIAL_REQUIREMENT_MISSING`: the NUL-terminated name of the type
    /// that is missing; empty otherwise.
    pub requires: [c_char; 64],
    /// For `LICENSE_DENIAL_CAPPED`: the capped profile. For `LICENSE_DENIAL_RESERVED`:
    /// the profiles holding the reservations, comma-separated (cut to fit). Empty
    /// otherwise.
    pub profile: [c_char; 128],
}

/// Seat handle returned by the acquire functions. Never 0. The low 48 bits are the
/// handle in its pool, the high 16 bits the tenant (0: the default tenant), so any
/// function taking a handle finds its tenant by itself. A stale handle never frees
/// someone else's seat in practice, and two live handles never share a value: the
/// in-memory table's handle is the user's slot and a login number drawn process-wide,
/// so a released handle's value comes back only for a login into the same slot at
/// least 2^24 logins later; shm reuses a record's handle after 2^24 - 1 reuses; redis
/// after 2^47 handles.
pub type license_seat = u64;

// ---- global state: one engine, swapped in and out atomically ----

static ENGINE: ArcSwapOption<Engine> = ArcSwapOption::const_empty();
/// Serialises init and shutdown with each other (acquires never take it).
static LIFECYCLE: Mutex<()> = Mutex::new(());
/// Bumped (under `LIFECYCLE`) whenever `ENGINE` changes: a thread's cached engine is
/// current while this still reads what it read when it cached it.
static ENGINE_GEN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Publishes a new running engine (or none): every thread's copy goes stale.
fn set_engine(engine: Option<Arc<Engine>>) -> Option<Arc<Engine>> {
    let old = ENGINE.swap(engine);
    ENGINE_GEN.fetch_add(1, Ordering::AcqRel);
    old
}

#[cfg(test)]
thread_local! {
    static FORCE_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn set_last_error(message: String) {
    // `try_with`: during thread teardown the slot may be gone; losing the text is fine.
    let _ = LAST_ERROR.try_with(|slot| {
        if let Ok(mut slot) = slot.try_borrow_mut() {
            *slot = message;
        }
    });
}

/// Records the failure for `license_last_error` and returns its code.
#[cold]
fn fail(code: license_status, message: impl Into<String>) -> i32 {
    set_last_error(message.into());
    code as i32
}

fn error_code(error: &Error) -> license_status {
    match error {
        Error::LimitReached(d) if d.reason == DenialReason::MissingRequirement => {
            license_status::LICENSE_ERR_REQUIREMENT_MISSING
        }
        Error::LimitReached(_) => license_status::LICENSE_ERR_LIMIT_REACHED,
        Error::UnknownProfile(_) => license_status::LICENSE_ERR_UNKNOWN_PROFILE,
        Error::InvalidArgument(_) => license_status::LICENSE_ERR_INVALID_ARGUMENT,
        Error::UnknownSeat(_) | Error::SeatExpired(_) | Error::SeatReleased(..) => {
            license_status::LICENSE_ERR_UNKNOWN_SEAT
        }
        Error::UnknownUser(_) => license_status::LICENSE_ERR_UNKNOWN_USER,
        Error::Config(_) => license_status::LICENSE_ERR_CONFIG,
        Error::Backend(_) => license_status::LICENSE_ERR_BACKEND,
        Error::TableFull { .. } => license_status::LICENSE_ERR_TABLE_FULL,
        Error::Expired { .. } => license_status::LICENSE_ERR_EXPIRED,
        Error::UnknownTenant(_) => license_status::LICENSE_ERR_UNKNOWN_TENANT,
        Error::UnknownLicenseType(_) => license_status::LICENSE_ERR_UNKNOWN_LICENSE_TYPE,
        Error::Emergency(_) => license_status::LICENSE_ERR_EMERGENCY_UNAVAILABLE,
        Error::State(_) => license_status::LICENSE_ERR_STATE,
        Error::LicenseFile(_) => license_status::LICENSE_ERR_LICENSE_FILE,
    }
}

/// Maps an engine result to a status code, recording the failure's detail.
fn status_of<T>(result: &Result<T, Error>) -> i32 {
    match result {
        Ok(_) => license_status::LICENSE_OK as i32,
        Err(e) => fail_with(e),
    }
}

fn fail_with(error: &Error) -> i32 {
    fail(error_code(error), error.to_string())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("internal error in seatgate (please report it): {detail}")
}

/// Runs a function body so that a panic becomes `$fallback` instead of unwinding into
/// C. The signature stays outside the macro, where cbindgen can read it.
macro_rules! ffi_boundary {
    ($fallback:expr, $body:block) => {{
        match catch_unwind(AssertUnwindSafe(|| {
            #[cfg(test)]
            if FORCE_PANIC.with(|f| f.get()) {
                panic!("forced panic for testing");
            }
            $body
        })) {
            Ok(value) => value,
            Err(payload) => {
                set_last_error(panic_message(&*payload));
                $fallback
            }
        }
    }};
}

/// Runs `f` on the running engine, or fails with NOT_INITIALIZED. The guard is a
/// borrowed slot (no reference-count write on the hot path); a concurrent shutdown
/// waits for nothing and the engine is dropped when the last such call returns.
#[inline]
fn with_engine(f: impl FnOnce(&Engine) -> i32) -> i32 {
    with_engine_cached(|engine, _| f(engine))
}

/// [`with_engine`], with the thread's cache for the engine's call (`None` during
/// thread teardown).
///
/// The thread's copy of the running engine and the `ENGINE_GEN` it was taken at live
/// in the engine module's thread cache (`ThreadCache::running`), beside the config
/// copy and lane the engine's call needs: one thread-local lookup serves both. A call
/// that finds the generation unchanged uses the copy with no atomic read-modify-write
/// at all (loading `ENGINE` costs two: the guard's debt slot is taken and given back).
/// An old engine lives on in a thread's copy only until that thread's next call, or
/// its exit: everything a shutdown must do (release the seats, stop the reaper, flush
/// the audit log) it does itself.
#[inline(always)]
fn with_engine_cached(f: impl FnOnce(&Engine, Option<&ThreadCache>) -> i32) -> i32 {
    let generation = ENGINE_GEN.load(Ordering::Acquire);
    let mut f = Some(f);
    // The thread's copy, refreshed when stale. A call made from an event callback
    // while the copy is being refreshed (or during thread teardown) loads the engine
    // the ordinary way instead.
    let cached = with_thread_cache(|cache| {
        if let Ok(c) = cache.running.try_borrow()
            && let Some((g, engine)) = c.as_ref()
            && *g == generation
        {
            return Some(
                f.take().map_or(license_status::LICENSE_ERR_INTERNAL as i32, |f| f(engine, Some(cache))),
            );
        }
        let mut c = cache.running.try_borrow_mut().ok()?;
        *c = ENGINE.load_full().map(|engine| (generation, engine));
        let (_, engine) = c.as_ref()?;
        // Run with a clone, not the borrow: a callback may need to refresh the copy.
        let engine = engine.clone();
        drop(c);
        Some(f.take().map_or(license_status::LICENSE_ERR_INTERNAL as i32, |f| f(&engine, Some(cache))))
    });
    if let Some(Some(rc)) = cached {
        return rc;
    }
    let Some(f) = f else { return license_status::LICENSE_ERR_INTERNAL as i32 };
    let guard = ENGINE.load();
    match guard.as_deref() {
        Some(engine) => f(engine, None),
        None => fail(
            license_status::LICENSE_ERR_NOT_INITIALIZED,
            "seatgate is not initialized: call license_init first",
        ),
    }
}

macro_rules! try_c {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
}

/// Reads a required C string of at most `max` bytes, without reading past `max + 1`.
///
/// # Safety
/// `ptr` is NULL or points to memory readable up to its NUL or `max + 1` bytes.
#[inline(always)]
unsafe fn c_bytes<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<&'a [u8], i32> {
    if ptr.is_null() {
        return Err(bad_c_string(what, None, max));
    }
    // SAFETY: strnlen reads at most max + 1 bytes, within the caller's promise.
    let len = unsafe { libc::strnlen(ptr, max + 1) };
    if len == 0 || len > max {
        return Err(bad_c_string(what, Some(len), max));
    }
    // SAFETY: the `len` bytes before the NUL were just measured.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) })
}

/// The failure of a required C string that is NULL (`len` None), empty or longer
/// than `max`. Out of line: the message's arguments are then made only when it
/// fails (made in place, they were stored on every call, 10 instructions a login).
#[cold]
#[inline(never)]
fn bad_c_string(what: &str, len: Option<usize>, max: usize) -> i32 {
    let message = match len {
        None => format!("{what} is NULL"),
        Some(0) => format!("{what} is empty"),
        Some(_) => format!("{what} is longer than the maximum of {max} bytes"),
    };
    fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, message)
}

/// A required UTF-8 C string.
///
/// # Safety
/// As for [`c_bytes`].
#[inline(always)]
unsafe fn c_str<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<&'a str, i32> {
    let bytes = unsafe { c_bytes(ptr, what, max)? };
    if crate::text::is_ascii(bytes) {
        // SAFETY: ASCII is valid UTF-8 (the common case, checked a word at a time).
        return Ok(unsafe { std::str::from_utf8_unchecked(bytes) });
    }
    utf8_of(bytes, what)
}

/// `bytes` that are not all ASCII, as UTF-8 (the careful path of [`c_str`] and
/// [`c_user`]).
fn utf8_of<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, i32> {
    std::str::from_utf8(bytes)
        .map_err(|_| fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, format!("{what} is not valid UTF-8")))
}

/// The user name of `license_try_acquire` and `license_try_acquire_ex` (`what`: its
/// name in errors), and whether it is a plain label
/// ([`crate::text::plain_label`]: printable ASCII, not blank): tested that way in
/// place of the ASCII test, so that the engine need not test it again. Any other
/// name is read as [`c_str`] reads it, and the engine checks it.
///
/// # Safety
/// As for [`c_bytes`].
#[inline(always)]
unsafe fn c_user<'a>(ptr: *const c_char, what: &str) -> Result<(&'a str, bool), i32> {
    let bytes = unsafe { c_bytes(ptr, what, LICENSE_MAX_LABEL_LEN)? };
    if crate::text::plain_label(bytes, LICENSE_MAX_LABEL_LEN) {
        // SAFETY: a plain label is ASCII, which is valid UTF-8.
        return Ok((unsafe { std::str::from_utf8_unchecked(bytes) }, true));
    }
    Ok((utf8_of(bytes, what)?, false))
}

/// An optional UTF-8 C string: NULL is `None`.
///
/// # Safety
/// As for [`c_bytes`].
#[inline(always)]
unsafe fn c_str_opt<'a>(ptr: *const c_char, what: &str, max: usize) -> Result<Option<&'a str>, i32> {
    if ptr.is_null() { Ok(None) } else { unsafe { c_str(ptr, what, max).map(Some) } }
}

/// A tenant argument: NULL and "" both mean the default tenant.
///
/// # Safety
/// As for [`c_str`].
#[inline(always)]
unsafe fn c_tenant<'a>(ptr: *const c_char, what: &str) -> Result<Option<&'a str>, i32> {
    // SAFETY: the caller's promise, passed on; a non-NULL pointer is readable for
    // at least its first byte.
    if ptr.is_null() || unsafe { *ptr } == 0 {
        return Ok(None);
    }
    unsafe { c_str(ptr, what, LICENSE_MAX_NAME_LEN).map(Some) }
}

/// Copies `text` into a caller buffer: the `(buf, len, needed)` convention.
///
/// # Safety
/// `buf` is NULL or writable for `len` bytes; `needed` is NULL or writable.
unsafe fn write_out(text: &str, buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    let bytes = text.as_bytes();
    if !needed.is_null() {
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { *needed = bytes.len() + 1 };
    }
    if buf.is_null() {
        return if len == 0 {
            license_status::LICENSE_OK as i32 // a size query
        } else {
            fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "buf is NULL but len is not 0")
        };
    }
    if len == 0 {
        return fail(
            license_status::LICENSE_ERR_BUFFER_TOO_SMALL,
            format!("buffer of 0 bytes is too small: {} needed", bytes.len() + 1),
        );
    }
    // Leave room for the NUL; never cut a UTF-8 character in half.
    let mut n = bytes.len().min(len - 1);
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    // SAFETY: n + 1 <= len bytes are written into the caller's buffer; the regions
    // cannot overlap because `text` is ours.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buf.cast::<u8>(), n);
        *buf.add(n) = 0;
    }
    if n < bytes.len() {
        fail(
            license_status::LICENSE_ERR_BUFFER_TOO_SMALL,
            format!("buffer of {len} bytes is too small: {} needed", bytes.len() + 1),
        )
    } else {
        license_status::LICENSE_OK as i32
    }
}

/// Writes a count taken from the running engine to a required out-parameter.
///
/// # Safety
/// `count_out` is NULL or writable.
unsafe fn write_count(count_out: *mut u32, count: impl FnOnce(&Engine) -> usize) -> i32 {
    if count_out.is_null() {
        return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "count_out is NULL");
    }
    with_engine(|engine| {
        let n = u32::try_from(count(engine)).unwrap_or(u32::MAX);
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { count_out.write(n) };
        license_status::LICENSE_OK as i32
    })
}

/// Writes `value` through `out` if it is not NULL.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn write_opt<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: checked non-NULL; the caller promises it is writable.
        unsafe { out.write(value) };
    }
}

/// Copies a name (at most `LICENSE_MAX_NAME_LEN` bytes, checked at config load) into
/// a fixed, NUL-terminated field.
fn name_field(name: &str) -> [c_char; 64] {
    let mut out = [0 as c_char; 64];
    for (dst, &src) in out.iter_mut().zip(name.as_bytes().iter().take(63)) {
        *dst = src as c_char;
    }
    out
}

fn denial_to_c(denial: &Denial) -> license_denial {
    license_denial {
        size: std::mem::size_of::<license_denial>(),
        license_type: name_field(&denial.license),
        used: denial.used,
        limit: denial.limit,
        reason: license_denial_reason::from(denial.reason) as u32,
        requires: name_field(denial.requires.as_deref().unwrap_or("")),
        profile: text_field(denial.profile.as_deref().unwrap_or("")),
    }
}

/// A NUL-terminated copy of `text` in a fixed array, cut at a character boundary.
fn text_field<const N: usize>(text: &str) -> [c_char; N] {
    let mut out = [0 as c_char; N];
    let mut end = text.len().min(N - 1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    for (o, b) in out.iter_mut().zip(&text.as_bytes()[..end]) {
        *o = *b as c_char;
    }
    out
}

/// Smallest `size` a caller's `license_denial` may declare: up to `limit`.
const DENIAL_MIN_SIZE: usize = std::mem::offset_of!(license_denial, limit) + std::mem::size_of::<u32>();

/// Writes the first `size` bytes of `value` (a `size`-prefixed struct) to `out`,
/// keeping the caller's `size` field.
///
/// # Safety
/// `out` is writable for `size` bytes, and `size` is at least `size_of::<usize>()`.
unsafe fn write_sized<T>(out: *mut T, value: &T, size: usize) {
    let n = size.min(std::mem::size_of::<T>());
    let skip = std::mem::size_of::<usize>();
    // SAFETY: the caller's struct is `size` bytes long; ours is size_of::<T>(); both
    // start with the `size` field, which stays as the caller set it.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (value as *const T).cast::<u8>().add(skip),
            out.cast::<u8>().add(skip),
            n - skip,
        );
    }
}

/// Reads the `size` field of a caller's size-prefixed struct and checks it.
///
/// # Safety
/// `ptr` is non-NULL and points to at least a `size_t`.
unsafe fn caller_size<T>(ptr: *const T, what: &str, min: usize) -> Result<usize, i32> {
    // SAFETY: every such struct starts with its size_t `size`.
    let size = unsafe { ptr.cast::<usize>().read_unaligned() };
    if size < min {
        return Err(fail(
            license_status::LICENSE_ERR_INVALID_ARGUMENT,
            format!("{what}->size is {size}; set it to sizeof the struct before the call"),
        ));
    }
    Ok(size)
}

// ---- events: one process-wide listener, handed to every engine ----

/// The host's callback and its pointer. The pointer is the host's business: seatgate
/// only hands it back.
#[derive(Clone, Copy)]
struct HostCallback {
    call: unsafe extern "C" fn(*mut c_void, *const license_event),
    user_data: *mut c_void,
}

// SAFETY: the host promises (in the header) that its callback may be called from any
// thread with its user_data.
unsafe impl Send for HostCallback {}
unsafe impl Sync for HostCallback {}

static CALLBACK: Mutex<Option<HostCallback>> = Mutex::new(None);

/// The events the host's listener hears (`license_set_event_mask`).
static EVENT_MASK: AtomicU32 = AtomicU32::new(LICENSE_EVENTS_ALL);

/// The mask the host chose, as the engine takes it.
fn current_mask() -> EventMask {
    EventMask::from_bits(EVENT_MASK.load(Ordering::Relaxed)).unwrap_or_default()
}

/// The C strings of one event, NUL-terminated one after another in a single buffer:
/// on the stack for the usual event (a login's names and sentence), else allocated
/// once at its final size.
struct EventTexts<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// Bytes of event texts kept on the stack.
const EVENT_TEXTS_ON_STACK: usize = 256;

impl EventTexts<'_> {
    /// Appends `text` and its terminator; returns where it starts (`None`: no room,
    /// which a buffer sized for the event never lacks). Names and labels hold no NUL
    /// (C strings came in); one that did would end the host's C string there, as a
    /// cut would.
    fn push(&mut self, text: &str) -> Option<usize> {
        self.push_with(|texts| texts.write_str(text))
    }

    /// [`EventTexts::push`] of what `write` writes.
    fn push_with(&mut self, write: impl FnOnce(&mut Self) -> std::fmt::Result) -> Option<usize> {
        let at = self.len;
        if write(self).is_err() {
            self.len = at;
            return None;
        }
        *self.buf.get_mut(self.len)? = 0;
        self.len += 1;
        Some(at)
    }

    /// The C string that starts at `at` (NULL for `None`); valid while the buffer is
    /// neither changed nor dropped.
    fn ptr(&self, at: Option<usize>) -> *const c_char {
        match at {
            Some(at) if at < self.len => self.buf.as_ptr().wrapping_add(at).cast(),
            _ => std::ptr::null(),
        }
    }
}

impl std::fmt::Write for EventTexts<'_> {
    /// Appends `text` as it is (no terminator): `Err` when it does not fit.
    fn write_str(&mut self, text: &str) -> std::fmt::Result {
        let at = self.len;
        let room = self.buf.get_mut(at..).ok_or(std::fmt::Error)?;
        room.get_mut(..text.len()).ok_or(std::fmt::Error)?.copy_from_slice(text.as_bytes());
        self.len = at + text.len();
        Ok(())
    }
}

fn sink_for(host: HostCallback) -> EventSink {
    Arc::new(move |e: &Event| {
        let size = e.detail_len_bound()
            + [&e.license, &e.user, &e.requires, &e.tenant]
                .iter()
                .map(|s| s.as_deref().map_or(0, str::len))
                .sum::<usize>()
            + 5;
        let (mut stack, mut heap) = ([0u8; EVENT_TEXTS_ON_STACK], Vec::new());
        let buf = if size <= EVENT_TEXTS_ON_STACK {
            &mut stack[..]
        } else {
            heap.resize(size, 0);
            &mut heap[..]
        };
        let mut texts = EventTexts { buf, len: 0 };
        let license = e.license.as_deref().and_then(|s| texts.push(s));
        let user = e.user.as_deref().and_then(|s| texts.push(s));
        let detail = texts.push_with(|texts| e.write_detail(texts));
        let requires = e.requires.as_deref().and_then(|s| texts.push(s));
        let tenant = e.tenant.as_deref().and_then(|s| texts.push(s));
        let reason = match (e.why, e.denial) {
            (Some(why), _) => license_release_reason::from(why) as u32,
            (None, Some(denial)) => license_denial_reason::from(denial) as u32,
            (None, None) => 0,
        };
        let event = license_event {
            size: std::mem::size_of::<license_event>(),
            // Equal to license_event_kind's value (asserted where the masks are).
            kind: e.kind.code(),
            reason,
            license_type: texts.ptr(license),
            user: texts.ptr(user),
            seat: e.seat,
            used: e.used,
            limit: e.limit,
            threshold_percent: u32::from(e.threshold_percent),
            time_unix_ms: e.time_unix_ms,
            detail: texts.ptr(detail),
            requires: texts.ptr(requires),
            tenant: texts.ptr(tenant),
        };
        host.deliver(&event);
    })
}

impl HostCallback {
    fn deliver(&self, event: &license_event) {
        // SAFETY: the host registered this function for exactly this call; every
        // pointer in `event` lives until it returns.
        unsafe { (self.call)(self.user_data, event) };
    }
}

/// The listener to install into an engine, if the host registered one.
fn current_sink() -> Option<EventSink> {
    CALLBACK.lock().unwrap_or_else(|e| e.into_inner()).map(sink_for)
}

// ---- lifecycle ----

/// Loads the TOML configuration at `config_path` and starts the seat table.
///
/// Returns:
/// - `LICENSE_OK` on success (lints are warnings: see `license_lint_count`);
/// - `LICENSE_ERR_INVALID_ARGUMENT` if `config_path` is NULL, empty or longer than
///   `LICENSE_MAX_PATH_LEN`;
/// - `LICENSE_ERR_CONFIG` if the file is invalid (`license_last_error` gives
///   `file:line:column: problem`) or unreadable (`file: cannot read config file: ...`);
///   the library stays uninitialized;
/// - `LICENSE_ERR_ALREADY_INITIALIZED` if already initialized (call
///   `license_shutdown` first);
/// - `LICENSE_ERR_STATE` if the config has `[emergency]` and its `state_dir` is
///   missing or holds a corrupt state file (`license_last_error` names it);
/// - `LICENSE_ERR_LICENSE_FILE` if the config's `license_file` is unreadable,
///   tampered with, signed by a key not trusted (see `license_trust_key`) or expired;
/// - `LICENSE_ERR_BACKEND` (see "Backend errors" below);
/// - `LICENSE_ERR_INTERNAL` on an internal error.
///
/// Thread safety: safe from any thread; concurrent inits are serialised and only one
/// succeeds.
///
/// Threads: unless the config says `[reaper] enabled = false`, a background thread
/// ("seatgate-reaper") reclaims expired leases and ended linger windows every
/// `[reaper] interval` (default 1 s). With `[audit]`, a thread ("seatgate-audit")
/// writes the audit log. Both stop at `license_shutdown`.
///
/// Fork: the default `memory` backend keeps its table in this process's heap, so a
/// child forked after `license_init` would count on a private copy. Forking hosts
/// (Kamailio, OpenSIPS, PHP-FPM) configure `[backend] kind = "shm"`: every process
/// then shares one table, whether it called `license_init` before the fork (children
/// inherit it) or after (each worker maps the same file). The reaper thread runs only
/// in the process that called `license_init`; a child's seats are still reclaimed by
/// it (shared table), by `license_reap`, and by any login that finds a type full.
/// `license_shutdown` releases only the calling process's own seats.
///
/// Backend errors: `LICENSE_ERR_BACKEND` when the `shm` file cannot be opened or was
/// made by another layout or capacity, or Redis cannot be reached with
/// `on_backend_error = "deny"`; `license_last_error` names the file or server.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_init(config_path: *const c_char) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let path = try_c!(unsafe { c_bytes(config_path, "config_path", LICENSE_MAX_PATH_LEN) });
        let path = Path::new(OsStr::from_bytes(path));
        let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = ENGINE.load_full() {
            return fail(
                license_status::LICENSE_ERR_ALREADY_INITIALIZED,
                format!(
                    "seatgate is already initialized with '{}': call license_shutdown first",
                    running.config().source
                ),
            );
        }
        match Engine::from_file(path) {
            Ok(engine) => {
                engine.set_event_mask(current_mask());
                engine.set_event_sink(current_sink());
                let engine = Arc::new(engine);
                if let Err(e) = engine.start_reaper() {
                    return fail(
                        license_status::LICENSE_ERR_INTERNAL,
                        format!("cannot start the reaper thread: {e}"),
                    );
                }
                set_engine(Some(engine));
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        }
    })
}

/// Stops the library and forgets every seat. Afterwards every call except
/// `license_init`, `license_strerror`, `license_last_error` and `license_version`
/// returns `LICENSE_ERR_NOT_INITIALIZED`; seat handles issued before stay unknown
/// forever, even after a new `license_init`.
///
/// Calling it when not initialized does nothing.
///
/// Thread safety: safe from any thread, even while other threads acquire or release:
/// calls already running finish against the old table, later ones get
/// `LICENSE_ERR_NOT_INITIALIZED`. Never crashes.
///
/// Every seat still held is released with reason `LICENSE_RELEASE_SHUTDOWN`: the
/// listener gets a RELEASED event for each (and THRESHOLD_DOWN events where use
/// falls under a threshold), on the calling thread, after the library already
/// reports NOT_INITIALIZED; the audit log gets an `IN` line for each, written out
/// before this function returns.
#[unsafe(no_mangle)]
pub extern "C" fn license_shutdown() {
    ffi_boundary!((), {
        let engine = {
            let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
            set_engine(None)
        };
        // Outside the lock: a listener may call any license_* function. Other threads'
        // copies keep the engine's memory until their next call, so everything that
        // must end now ends here.
        if let Some(engine) = engine {
            engine.release_all();
            engine.stop_reaper();
            engine.flush_audit();
        }
        with_thread_cache(ThreadCache::forget_engine);
    })
}

/// Reads the configuration again and swaps it in atomically, **keeping every held
/// seat**. `config_path` NULL means the file given to `license_init` (or to the last
/// successful reload); otherwise that file becomes the configuration file.
///
/// - Types are matched by name. A type whose limit drops below its current use
///   throws nobody out: new acquires of it are refused
///   (`LICENSE_DENIAL_OVER_LIMIT`) until use falls under the new limit, and the
///   report marks it "over limit".
/// - A removed type's holders keep their handles and can release them; nobody can
///   acquire it, and the report lists it as "orphaned" until its last seat is gone.
/// - Leases of seats already held keep their length; new `lease` values apply to new
///   acquires. The audit log is reopened (logrotate: rename the file, then reload).
/// - Every acquire runs entirely against the old or entirely against the new config.
///
/// Returns `LICENSE_OK` (a RELOADED event follows, on the calling thread, then a
/// THRESHOLD event for each type the new limit or `alert_at` moved across its
/// threshold); `LICENSE_ERR_CONFIG` with `file:line:column: problem` in
/// `license_last_error` (or `file: cannot read config file: ...` when the file cannot
/// be read), and the running configuration untouched; `LICENSE_ERR_STATE` or
/// `LICENSE_ERR_LICENSE_FILE` as for `license_init` (the state file and the signed
/// license are read again with the config; the running ones stay on error);
/// `LICENSE_ERR_INVALID_ARGUMENT` for an empty or over-long path;
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. Limits set with
/// `license_set_limit` are kept.
///
/// Thread safety: safe from any thread, concurrently with acquires and releases,
/// which never wait for it. Reloads are serialised with each other. It may be called
/// from an event callback.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_reload(config_path: *const c_char) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let path = if config_path.is_null() {
            None
        } else {
            let bytes = try_c!(unsafe { c_bytes(config_path, "config_path", LICENSE_MAX_PATH_LEN) });
            Some(Path::new(OsStr::from_bytes(bytes)).to_path_buf())
        };
        let Some(engine) = ENGINE.load_full() else {
            return fail(
                license_status::LICENSE_ERR_NOT_INITIALIZED,
                "seatgate is not initialized: call license_init first",
            );
        };
        match engine.reload(path.as_deref()) {
            Ok(_) => match engine.start_reaper() {
                Ok(()) => license_status::LICENSE_OK as i32,
                Err(e) => fail(
                    license_status::LICENSE_ERR_INTERNAL,
                    format!("reloaded, but cannot start the reaper thread: {e}"),
                ),
            },
            Err(e) => fail_with(&e),
        }
    })
}

/// Registers the event listener, or removes it with `callback == NULL`. It stays
/// registered across `license_shutdown` and `license_init`, so it can be set before
/// init. `user_data` is passed back untouched.
///
/// Which thread calls it:
/// - ACQUIRED, DENIED, THRESHOLD and RELEASED (normal, admin, dependency) events:
///   the thread whose `license_*` call caused them, before that call returns;
/// - RELEASED with `LICENSE_RELEASE_EXPIRED`: the reaper thread, or a thread whose
///   acquire, release, touch or `license_reap` found the lease expired;
/// - RELOADED: the thread that called `license_reload`;
/// - RELEASED with `LICENSE_RELEASE_SHUTDOWN`: the thread calling `license_shutdown`.
///
/// So the callback must be safe to run on several threads at once. It is never
/// called while seatgate holds a lock or a table guard: it may call any `license_*`
/// function (an acquire, a release, a report, a reload) without deadlock. Events of
/// one thread arrive in order; events of different threads may interleave, and each
/// carries the counts right after its own change. Keep it short: the login that
/// caused the event waits for it.
///
/// After replacing or removing the callback, a call already running on another
/// thread may still finish with the old one, so keep its `user_data` valid until
/// `license_shutdown` has returned.
///
/// A listener has a cost of its own. By default it hears every event, so every login
/// and logout is counted exactly and described, which takes four to eight times as
/// long as a login nobody listens to (hundreds of nanoseconds instead of about one
/// hundred; BENCHMARKS.md has the figures). A listener that needs only what a host
/// must act on sets `license_set_event_mask(LICENSE_EVENTS_ALERTS)` first, and
/// logins cost what they cost with nobody listening.
///
/// Returns `LICENSE_OK` or `LICENSE_ERR_INTERNAL`. Works initialized or not.
/// Thread safety: safe from any thread, including from inside a callback.
///
/// # Safety
/// `callback` is NULL or a function that may be called from any thread with
/// `user_data` until it is replaced and `license_shutdown` has returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_set_event_callback(
    callback: license_event_callback,
    user_data: *mut c_void,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        let host = callback.map(|call| HostCallback { call, user_data });
        *CALLBACK.lock().unwrap_or_else(|e| e.into_inner()) = host;
        if let Some(engine) = ENGINE.load_full() {
            engine.set_event_sink(host.map(sink_for));
        }
        license_status::LICENSE_OK as i32
    })
}

/// Chooses which events the listener hears: an OR of `LICENSE_EVENTS_*` bits
/// (`LICENSE_EVENTS_ALL`, the default, hears every event). Events outside the mask
/// are not built at all, and the audit log still records everything.
///
/// The mask decides what a login costs:
/// - ACQUIRED or RELEASED (every release, the host's own logouts included): every
///   login and logout is counted exactly and described, four to eight times the cost
///   of a login nobody listens to;
/// - THRESHOLD_UP or THRESHOLD_DOWN (without those two): no login is described,
///   and a type is counted exactly on its shared counter only from one seat under its
///   threshold up, so that each crossing is seen at its exact count; below that,
///   about the cost of a login nobody listens to, from any number of threads;
/// - only the other bits (`LICENSE_EVENTS_ALERTS`: refusals, releases the host did
///   not ask for, reloads, warnings, expiry, emergency windows, limit changes): a
///   login or logout costs what it costs with nobody listening.
///
/// In every case the events the mask keeps still arrive.
///
/// Like the callback, the mask stays across `license_shutdown` and `license_init`
/// and can be set before init. Set it before `license_set_event_callback` so that no
/// event outside it is delivered; a call already running on another thread may still
/// finish with the old mask.
///
/// Returns `LICENSE_OK`, or `LICENSE_ERR_INVALID_ARGUMENT` (the mask is left as it
/// was) when `mask` has a bit that names no event. Works initialized or not.
/// Thread safety: safe from any thread, including from inside a callback.
#[unsafe(no_mangle)]
pub extern "C" fn license_set_event_mask(mask: u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let Some(events) = EventMask::from_bits(mask) else {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                format!(
                    "event mask {mask:#x} has bits that name no event ({:#x}); use an OR of LICENSE_EVENTS_* \
                     (LICENSE_EVENTS_ALL is {LICENSE_EVENTS_ALL:#x})",
                    mask & !LICENSE_EVENTS_ALL
                ),
            );
        };
        let _lifecycle = LIFECYCLE.lock().unwrap_or_else(|e| e.into_inner());
        EVENT_MASK.store(mask, Ordering::Relaxed);
        if let Some(engine) = ENGINE.load_full() {
            engine.set_event_mask(events);
        }
        license_status::LICENSE_OK as i32
    })
}

/// Reads an event mask as a host's configuration file gives it, for
/// `license_set_event_mask`: `all`, `alerts`, `none`, or event names joined by
/// commas: `acquired`, `released`, `denied`, `threshold_up`, `threshold_down`,
/// `threshold` (both), `forced_releases`, `reloaded`, `warning`, `expired`,
/// `emergency_started`, `emergency_ended`, `limit_changed`; `all` and `alerts` may
/// be among them (`"alerts, threshold"`). Spaces around a name are ignored; names
/// are lower case. At most `LICENSE_MAX_PROFILES_LEN` bytes.
///
/// Returns `LICENSE_OK` with the mask in `*mask_out`, or
/// `LICENSE_ERR_INVALID_ARGUMENT` (`*mask_out` untouched) when `text` or `mask_out`
/// is NULL or a name is not one of these: `license_last_error` names it and lists
/// them. Works initialized or not. Thread safety: safe from any thread.
///
/// # Safety
/// `text` is NULL or NUL-terminated; `mask_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_event_mask_parse(text: *const c_char, mask_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let text = try_c!(unsafe { c_str(text, "text", LICENSE_MAX_PROFILES_LEN) });
        if mask_out.is_null() {
            return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "mask_out must not be NULL");
        }
        match EventMask::parse(text) {
            Ok(mask) => {
                // SAFETY: checked non-NULL above.
                unsafe { mask_out.write(mask.bits()) };
                license_status::LICENSE_OK as i32
            }
            Err(why) => fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, why),
        }
    })
}

// ---- acquire / release ----

/// Takes one seat of every license type that the named profiles imply, **all or
/// nothing**, and writes a new seat handle to `*seat_out`.
///
/// - `user`: login name, 1 to `LICENSE_MAX_LABEL_LEN` bytes of UTF-8, not blank, no
///   control characters. Names are compared byte for byte (`Alice` is not `alice`).
/// - `profiles`: one or more profile or license-type names separated by commas
///   (`"operator,chat_team"`); a bare license-type name is a profile of one type.
///   Spaces around a name are ignored. At most `LICENSE_MAX_PROFILES_LEN` bytes.
///
/// For `count = "user"` types a user who already holds the type takes no extra seat
/// (a second device gets a new handle for free); the seat is freed with the user's
/// last handle. For `count = "session"` types every handle takes a seat.
///
/// Returns:
/// - `LICENSE_OK`: `*seat_out` holds the handle (never 0);
/// - `LICENSE_ERR_LIMIT_REACHED`: a type is full, nothing was taken;
///   `license_last_error` says `license type 'chat' is full (0/0)`
///   (`license_try_acquire_ex` also gives it as a struct). When several types are
///   full, a type with limit 0 is named first (it can never be had), otherwise the
///   first full type in config-file order. Reservations and caps refuse with this
///   code too, the reason being `LICENSE_DENIAL_RESERVED` ("... reserved for profile
///   'support'") or `LICENSE_DENIAL_CAPPED` ("profile 'sales' is capped at 3
///   'callcenter' seats");
/// - `LICENSE_ERR_EXPIRED`: a type of the request (or the whole license) passed its
///   `valid_until`; nothing was taken, and `license_last_error` names it and the date;
/// - `LICENSE_ERR_UNKNOWN_TENANT`: `license_request.tenant` names no known tenant;
/// - `LICENSE_ERR_BACKEND`, `LICENSE_ERR_TABLE_FULL`: the shared table or Redis
///   could not take the seat (see `license_init`);
/// - `LICENSE_ERR_REQUIREMENT_MISSING`: a type in the request requires a type
///   (`requires = [...]`) that the user neither holds nor requests; nothing was
///   taken, and `license_last_error` names both;
/// - `LICENSE_ERR_UNKNOWN_PROFILE`: a name is neither a profile nor a license type;
/// - `LICENSE_ERR_INVALID_ARGUMENT`: a NULL pointer, an empty, over-long or non-UTF-8
///   string, a control character, or an empty name in the list (`"a,,b"`);
/// - `LICENSE_ERR_NOT_INITIALIZED`;
/// - `LICENSE_ERR_INTERNAL`.
///
/// `*seat_out` is written only on success.
///
/// A type is reported full only when its seats are really held: a seat that a
/// concurrent bundle holds for an instant and then gives back (because another of its
/// types was full) never causes a refusal, and no type ever has more holders than its
/// limit, not even for an instant. While such a bundle is in flight, a request for
/// its last free seats waits for it (it spins, then yields: nanoseconds, unless that
/// thread is descheduled).
///
/// Thread safety: safe from any thread, concurrently with every other call. It takes
/// no lock that is held across a call into C and never blocks for long.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_try_acquire(
    user: *const c_char,
    profiles: *const c_char,
    seat_out: *mut license_seat,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let (user, user_is_plain) = try_c!(unsafe { c_user(user, "user") });
        let profiles = try_c!(unsafe { c_str(profiles, "profiles", LICENSE_MAX_PROFILES_LEN) });
        acquire(&Request::new(user, profiles), user_is_plain, seat_out, std::ptr::null_mut())
    })
}

/// Like `license_try_acquire`, with extension and session labels, and with the
/// refusal as a struct.
///
/// - `req`: required; `req->size` must be at least the size of the fields up to
///   `profiles`. Fields past `req->size` (a caller built with an older header) count
///   as NULL and are never read; a larger `size` (a newer header) is accepted and
///   the fields this version does not know are ignored. `req->extension` and
///   `req->session` may be NULL; when set they follow the rules for `user`.
/// - `seat_out`: required; written only on success.
/// - `denial_out`: may be NULL; otherwise set `denial_out->size` first. On
///   `LICENSE_ERR_LIMIT_REACHED` or `LICENSE_ERR_REQUIREMENT_MISSING` it receives the
///   refusing license type, its used/limit, the reason and (for a missing
///   requirement) the missing type; otherwise it is left untouched. A `size` too
///   small for the fields up to `limit` is `LICENSE_ERR_INVALID_ARGUMENT`, before
///   anything is acquired.
///
/// Returns the same codes as `license_try_acquire`. Thread safety: the same.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_try_acquire_ex(
    req: *const license_request,
    seat_out: *mut license_seat,
    denial_out: *mut license_denial,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        if req.is_null() {
            return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "req is NULL");
        }
        // SAFETY: checked non-NULL. Read `size` alone first: an older caller's struct
        // may be shorter than ours.
        let size = unsafe { std::ptr::addr_of!((*req).size).read() };
        let need = std::mem::offset_of!(license_request, profiles) + std::mem::size_of::<*const c_char>();
        if size < need {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                format!("req->size is {size}; set it to sizeof(license_request)"),
            );
        }
        let field = |offset: usize| -> *const c_char {
            if size >= offset + std::mem::size_of::<*const c_char>() {
                // SAFETY: the caller's struct is `size` bytes long and covers this field.
                unsafe { req.cast::<u8>().add(offset).cast::<*const c_char>().read() }
            } else {
                std::ptr::null()
            }
        };
        let (user, user_is_plain) =
            try_c!(unsafe { c_user(field(std::mem::offset_of!(license_request, user)), "req->user") });
        let profiles = try_c!(unsafe {
            c_str(
                field(std::mem::offset_of!(license_request, profiles)),
                "req->profiles",
                LICENSE_MAX_PROFILES_LEN,
            )
        });
        let extension = try_c!(unsafe {
            c_str_opt(
                field(std::mem::offset_of!(license_request, extension)),
                "req->extension",
                LICENSE_MAX_LABEL_LEN,
            )
        });
        let session = try_c!(unsafe {
            c_str_opt(
                field(std::mem::offset_of!(license_request, session)),
                "req->session",
                LICENSE_MAX_LABEL_LEN,
            )
        });
        let tenant =
            try_c!(unsafe { c_tenant(field(std::mem::offset_of!(license_request, tenant)), "req->tenant") });
        let request = Request { user, profiles, extension, session, tenant };
        acquire(&request, user_is_plain, seat_out, denial_out)
    })
}

fn acquire(
    request: &Request<'_>,
    user_is_plain: bool,
    seat_out: *mut license_seat,
    denial_out: *mut license_denial,
) -> i32 {
    if seat_out.is_null() {
        return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "seat_out is NULL");
    }
    let denial_size = if denial_out.is_null() {
        0
    } else {
        // SAFETY: checked non-NULL; the caller's struct starts with its size.
        try_c!(unsafe { caller_size(denial_out, "denial_out", DENIAL_MIN_SIZE) })
    };
    with_engine_cached(
        #[inline(always)]
        |engine, cache| match try_acquire_on(engine, cache, request, user_is_plain) {
            Ok(seat) => {
                // SAFETY: checked non-NULL above; the caller promises it is writable.
                unsafe { seat_out.write(seat) };
                license_status::LICENSE_OK as i32
            }
            Err(e) => {
                if let (Error::LimitReached(denial), true) = (&e, denial_size > 0) {
                    // SAFETY: non-NULL, and `denial_size` bytes long by the caller's word.
                    unsafe { write_sized(denial_out, &denial_to_c(denial), denial_size) };
                }
                if let (Error::Expired { license, .. }, true) = (&e, denial_size > 0) {
                    let denial = Denial {
                        license: license.clone().unwrap_or_else(|| Arc::from("")),
                        used: 0,
                        limit: 0,
                        reason: DenialReason::Expired,
                        requires: None,
                        profile: None,
                    };
                    // SAFETY: as above.
                    unsafe { write_sized(denial_out, &denial_to_c(&denial), denial_size) };
                }
                fail_with(&e)
            }
        },
    )
}

/// Gives back a seat handle from an acquire (a logout). The user's `count = "user"`
/// seats are freed when their last handle is released (or kept for the same user
/// during the type's `linger` window); `count = "session"` seats at once.
///
/// Dependent licenses: when this was the user's last handle holding a type that
/// other handles of the user require (`requires = [...]`), those handles are released
/// too, with reason `LICENSE_RELEASE_DEPENDENCY` (whatever the reason of the release
/// that started it), and become unknown. Their seats linger exactly when the seats of
/// the release that started it do (after an admin release, nothing lingers).
///
/// Returns:
/// - `LICENSE_OK`;
/// - `LICENSE_ERR_UNKNOWN_SEAT`: 0, never issued, already released, released by a
///   dependency, issued before a shutdown, or its lease ran out (it was reclaimed, by
///   now or by this call). A double release can never free someone else's seat.
///   `license_last_error` says why when seatgate knows: "its lease ran out",
///   "released because the user gave up a license type it requires", "by an admin"
///   (for the last 4096 handles that went without their holder asking);
/// - `LICENSE_ERR_NOT_INITIALIZED` (checked first, for every handle, 0 included);
/// - `LICENSE_ERR_INTERNAL`.
///
/// Thread safety: safe from any thread; when two threads release the same handle,
/// exactly one gets `LICENSE_OK`.
#[unsafe(no_mangle)]
pub extern "C" fn license_release(seat: license_seat) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine_cached(
            #[inline(always)]
            |engine, cache| {
                status_of(&match cache {
                    Some(cache) => engine.release_cached(cache, seat),
                    None => engine.release(seat),
                })
            },
        )
    })
}

/// [`Engine::try_acquire`], with the thread's cache when there is one.
/// `user_is_plain`: see [`Engine::try_acquire_cached`].
#[inline(always)]
fn try_acquire_on(
    engine: &Engine,
    cache: Option<&ThreadCache>,
    request: &Request<'_>,
    user_is_plain: bool,
) -> Result<u64, Error> {
    match cache {
        Some(cache) => engine.try_acquire_cached(cache, request, user_is_plain),
        None => engine.try_acquire(request),
    }
}

/// Converts a caller's release reason: only NORMAL and ADMIN are the caller's to give.
fn caller_why(why: u32) -> Result<ReleaseWhy, i32> {
    match why {
        w if w == license_release_reason::LICENSE_RELEASE_NORMAL as u32 => Ok(ReleaseWhy::Normal),
        w if w == license_release_reason::LICENSE_RELEASE_ADMIN as u32 => Ok(ReleaseWhy::Admin),
        _ => Err(fail(
            license_status::LICENSE_ERR_INVALID_ARGUMENT,
            format!(
                "release reason {why} is not one a caller may give: use LICENSE_RELEASE_NORMAL or LICENSE_RELEASE_ADMIN"
            ),
        )),
    }
}

/// Like `license_release`, recording `why`: `LICENSE_RELEASE_NORMAL` (a logout) or
/// `LICENSE_RELEASE_ADMIN` (an admin kicked the seat: nothing lingers, and the
/// RELEASED events and the audit log say "admin").
///
/// Returns the codes of `license_release`, and `LICENSE_ERR_INVALID_ARGUMENT` for any
/// other `why`. Thread safety: as `license_release`.
#[unsafe(no_mangle)]
pub extern "C" fn license_release_as(seat: license_seat, why: u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let why = try_c!(caller_why(why));
        with_engine(|engine| status_of(&engine.release_as(seat, why)))
    })
}

/// Releases every seat handle of `user` ("log out everywhere"), recording `why`
/// (`LICENSE_RELEASE_NORMAL` or `LICENSE_RELEASE_ADMIN`; with ADMIN the user's
/// lingering seats are freed at once too). `*released_out` (may be NULL) receives the
/// number of handles released.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_UNKNOWN_USER` if nothing was released (the user
/// holds no handle, and with ADMIN no lingering seat either: an ADMIN call that frees
/// only lingering seats returns `LICENSE_OK` with `*released_out == 0`);
/// `LICENSE_ERR_INVALID_ARGUMENT` (bad `user` or `why`); `LICENSE_ERR_NOT_INITIALIZED`;
/// `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread; a login of the same
/// user racing with it either completes before (and is released) or after (and
/// stays).
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_release_user(user: *const c_char, why: u32, released_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let user = try_c!(unsafe { c_str(user, "user", LICENSE_MAX_LABEL_LEN) });
        let why = try_c!(caller_why(why));
        with_engine(|engine| match engine.release_user(user, why) {
            Ok(n) => {
                // SAFETY: NULL is skipped; otherwise writable by contract.
                unsafe { write_opt(released_out, u32::try_from(n).unwrap_or(u32::MAX)) };
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        })
    })
}

/// Renews the lease of one seat handle: it now runs until the handle's lease length
/// from now. Call it from the host's keep-alive (a SIP re-REGISTER, a CRM heartbeat)
/// at least once per lease, comfortably before it ends. A handle without a lease
/// (its types set no `lease`) is accepted and unchanged.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_UNKNOWN_SEAT` if the handle is not held,
/// including when its lease has already run out (the seat is reclaimed then, and the
/// holder must acquire again); `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`.
///
/// Thread safety: safe from any thread; lock-free for other users' seats.
#[unsafe(no_mangle)]
pub extern "C" fn license_touch(seat: license_seat) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| status_of(&engine.touch(seat)))
    })
}

/// Renews the lease of every seat handle of `user` at once (a keep-alive per user
/// rather than per handle). `*renewed_out` (may be NULL) receives how many handles
/// were renewed; handles whose lease had already run out are reclaimed, not renewed.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_UNKNOWN_USER` if the user holds no live
/// handle; `LICENSE_ERR_INVALID_ARGUMENT`; `LICENSE_ERR_NOT_INITIALIZED`;
/// `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_touch_user(user: *const c_char, renewed_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let user = try_c!(unsafe { c_str(user, "user", LICENSE_MAX_LABEL_LEN) });
        with_engine(|engine| match engine.touch_user(user) {
            Ok(n) => {
                // SAFETY: NULL is skipped; otherwise writable by contract.
                unsafe { write_opt(renewed_out, u32::try_from(n).unwrap_or(u32::MAX)) };
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        })
    })
}

/// Reclaims every expired lease and ended linger window now. The reaper thread does
/// this on its own; hosts that turn it off (`[reaper] enabled = false`) call this from
/// their own timer. Acquires never need it: a full type reclaims its expired seats
/// before it refuses. `*reclaimed_out` (may be NULL) receives how many seats (handles
/// and lingering seats) were reclaimed.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`.
/// Thread safety: safe from any thread. RELEASED events (reason EXPIRED) arrive on
/// the calling thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_reap(reclaimed_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| {
            let n = engine.reap();
            // SAFETY: NULL is skipped; otherwise writable by contract.
            unsafe { write_opt(reclaimed_out, u32::try_from(n).unwrap_or(u32::MAX)) };
            license_status::LICENSE_OK as i32
        })
    })
}

/// Writes the billing counters of one license type: use now, peak since init and
/// since the last `license_stats_reset`, seats acquired and requests denied since
/// init. Set `out->size = sizeof(license_type_stats)` first.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_UNKNOWN_LICENSE_TYPE`;
/// `LICENSE_ERR_INVALID_ARGUMENT` (NULL, bad name, or `out->size` too small);
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. `*out` is written only on
/// success. Thread safety: safe from any thread; lock-free.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_stats(license_type: *const c_char, out: *mut license_type_stats) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let name = try_c!(unsafe { c_str(license_type, "license_type", LICENSE_MAX_NAME_LEN) });
        if out.is_null() {
            return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "out is NULL");
        }
        let size = try_c!(unsafe { caller_size(out, "out", std::mem::size_of::<license_type_stats>()) });
        with_engine(|engine| match engine.usage_of(name) {
            Some(u) => {
                let stats = license_type_stats {
                    size: std::mem::size_of::<license_type_stats>(),
                    used: u.used,
                    limit: u.limit,
                    peak: u.stats.peak,
                    peak_since_reset: u.stats.peak_since_reset,
                    acquired: u.stats.acquired,
                    denied: u.stats.denied,
                };
                // SAFETY: non-NULL and `size` bytes long by the caller's word.
                unsafe { write_sized(out, &stats, size) };
                license_status::LICENSE_OK as i32
            }
            None => fail(
                license_status::LICENSE_ERR_UNKNOWN_LICENSE_TYPE,
                format!("unknown license type '{name}'"),
            ),
        })
    })
}

/// Starts a new "peak since reset" period for every type, at the current use (for a
/// billing period). Peaks since init and the totals are not reset.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`.
/// Thread safety: safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn license_stats_reset() -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| {
            engine.reset_peaks();
            license_status::LICENSE_OK as i32
        })
    })
}

// ---- entitlement policy and tenants ----

/// Trusts a vendor's public key for signed license files (`license_file` in the
/// config), in the text form `seatgate keygen` writes (`seatgate-ed25519-public:...`).
/// Call it before `license_init` (or before a reload that brings a new license). Keys
/// compiled into the library at build time (`SEATGATE_VENDOR_KEYS`) are trusted
/// without it. Keys are only ever added: a config file cannot replace them.
///
/// With a signed license configured, each type's effective limit is the smaller of
/// the config's and the signed one (a type the license does not list gets 0), and
/// the license's dates and emergency allowance apply. A tampered, expired or
/// wrongly-signed file makes `license_init` fail with `LICENSE_ERR_LICENSE_FILE`.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_INVALID_ARGUMENT` for NULL or an over-long
/// string; `LICENSE_ERR_LICENSE_FILE` for a malformed key (`license_last_error` says
/// why); `LICENSE_ERR_INTERNAL`. Works whether or not the library is initialized.
/// Thread safety: safe from any thread.
///
/// # Safety
/// `public_key` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_trust_key(public_key: *const c_char) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let text = try_c!(unsafe { c_str(public_key, "public_key", 256) });
        match crate::signed::VendorKey::parse(text) {
            Ok(key) => {
                crate::signed::trust_key(key);
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail(license_status::LICENSE_ERR_LICENSE_FILE, e.to_string()),
        }
    })
}

/// Sets the limit of `license_type` at run time, for `tenant` (NULL or "" for the
/// default tenant), without touching the config file: a hosted provider's own
/// database drives its tenants' limits. `limit < 0` removes the run-time limit (back
/// to the config's). A tenant not in the config is added (its other types keep the
/// global limits). Run-time limits are kept across `license_reload`, and the report
/// shows where each limit came from. A vendor-signed license still caps the limit.
///
/// Lowering a limit under the seats in use logs nobody out: new logins of the type
/// wait until use falls under it. Raising it lets waiting logins in at once.
///
/// Multi-process backends (`shm`, `redis`): the limit applies in the calling process;
/// give every process (or node) the same settings, as with the config file.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_INVALID_ARGUMENT` for a NULL or malformed name,
/// a tenant name not of `[A-Za-z0-9_.-]{1,63}`, or a limit over `UINT32_MAX`;
/// `LICENSE_ERR_UNKNOWN_LICENSE_TYPE`; `LICENSE_ERR_LICENSE_FILE` if the signed
/// license caps the number of tenants and this one would exceed it;
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. A `LICENSE_EVENT_LIMIT_CHANGED`
/// event follows. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_set_limit(
    tenant: *const c_char,
    license_type: *const c_char,
    limit: i64,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let tenant = try_c!(unsafe { c_tenant(tenant, "tenant") });
        let name = try_c!(unsafe { c_str(license_type, "license_type", LICENSE_MAX_NAME_LEN) });
        let limit = match limit {
            n if n < 0 => None,
            n => match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    return fail(
                        license_status::LICENSE_ERR_INVALID_ARGUMENT,
                        format!("limit {n} is too large; the maximum is {}", u32::MAX),
                    );
                }
            },
        };
        with_engine(|engine| status_of(&engine.set_limit(tenant, name, limit)))
    })
}

/// Like `license_usage`, in a tenant's pool (`tenant` NULL or "": the default
/// tenant). Returns `LICENSE_ERR_UNKNOWN_TENANT` for a tenant that is neither
/// declared nor given limits; otherwise as `license_usage`. On the `memory` backend
/// a tenant whose pool has not opened yet (nobody logged in there) shows 0 used; on a
/// shared table (`shm`, `redis`) the pool is opened to read it, since other processes
/// may hold its seats. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_usage_in(
    tenant: *const c_char,
    license_type: *const c_char,
    used_out: *mut u32,
    limit_out: *mut u32,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let tenant = try_c!(unsafe { c_tenant(tenant, "tenant") });
        let name = try_c!(unsafe { c_str(license_type, "license_type", LICENSE_MAX_NAME_LEN) });
        if used_out.is_null() || limit_out.is_null() {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                "used_out and limit_out must not be NULL",
            );
        }
        with_engine(|engine| match engine.usage_in(tenant, name) {
            Ok(usage) => {
                // SAFETY: both checked non-NULL above.
                unsafe {
                    used_out.write(usage.used);
                    limit_out.write(usage.limit);
                }
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        })
    })
}

/// Opens the emergency window of `[emergency]`: its extra seats (for example 10
/// more users) are usable at once, for its duration (default 30 days). The report
/// shows the window and the emergency use. When the window ends, holders beyond the
/// permanent limit are released, newest first, as `LICENSE_RELEASE_EMERGENCY_EXPIRED`
/// events: log those users out.
///
/// One window per permanent limit: once used, it can be opened again only after the
/// permanent limit of an affected type has grown (a reload with a higher limit or a
/// new signed license). That is kept in the state file in `state_dir`, across
/// restarts and for every process of the installation (they follow within a second).
/// `ends_unix_out` (may be NULL) receives the window's end, seconds since the epoch.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_EMERGENCY_UNAVAILABLE` (no `[emergency]`, a
/// window is open, or the window was used; `license_last_error` says which);
/// `LICENSE_ERR_STATE` if the state file cannot be written (nothing was opened);
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. Thread safety: safe from
/// any thread.
///
/// # Safety
/// `ends_unix_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_emergency_activate(ends_unix_out: *mut i64) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| match engine.emergency_activate() {
            Ok(status) => {
                if !ends_unix_out.is_null() {
                    let end = engine.emergency_ends_unix().unwrap_or(0);
                    // SAFETY: checked non-NULL; the caller promises it is writable.
                    unsafe { ends_unix_out.write(end) };
                }
                let _ = status;
                license_status::LICENSE_OK as i32
            }
            Err(e) => fail_with(&e),
        })
    })
}

/// Like `license_report_page`, for one tenant's pool. Returns
/// `LICENSE_ERR_UNKNOWN_TENANT` for a tenant that is neither declared nor given
/// limits; otherwise as `license_report`. Thread safety: safe from any thread, as
/// `license_report`.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_report_tenant(
    tenant: *const c_char,
    format: u32,
    first_row: usize,
    max_rows: usize,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let tenant = try_c!(unsafe { c_str(tenant, "tenant", LICENSE_MAX_NAME_LEN) });
        let page = Page { offset: first_row, max_rows: (max_rows > 0).then_some(max_rows) };
        unsafe { report_in(Some(tenant), format, page, buf, len, needed) }
    })
}

// ---- queries ----

/// Writes the usage of one license type: seats in use and its limit.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_INVALID_ARGUMENT` for a NULL or malformed
/// argument; `LICENSE_ERR_UNKNOWN_LICENSE_TYPE` if `license_type` is not a license type;
/// `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`. Outputs are written only on
/// success. Thread safety: safe from any thread; lock-free.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_usage(
    license_type: *const c_char,
    used_out: *mut u32,
    limit_out: *mut u32,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let name = try_c!(unsafe { c_str(license_type, "license_type", LICENSE_MAX_NAME_LEN) });
        if used_out.is_null() || limit_out.is_null() {
            return fail(
                license_status::LICENSE_ERR_INVALID_ARGUMENT,
                "used_out and limit_out must not be NULL",
            );
        }
        with_engine(|engine| match engine.usage_of(name) {
            Some(usage) => {
                // SAFETY: both checked non-NULL above.
                unsafe {
                    used_out.write(usage.used);
                    limit_out.write(usage.limit);
                }
                license_status::LICENSE_OK as i32
            }
            None => fail(
                license_status::LICENSE_ERR_UNKNOWN_LICENSE_TYPE,
                format!("unknown license type '{name}'"),
            ),
        })
    })
}

/// Writes the number of license types in the running configuration to `*count_out`.
/// Types are numbered 0 to count - 1 in config-file order (see `license_type_name`).
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_INVALID_ARGUMENT` (NULL `count_out`),
/// `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`. Thread safety: safe from
/// any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_type_count(count_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { write_count(count_out, |engine| engine.config().order.len()) }
    })
}

/// Writes the name of license type number `index` (0-based, config-file order), with
/// the buffer convention of `license_report`. Names are at most `LICENSE_MAX_NAME_LEN`
/// bytes, so a buffer of `LICENSE_MAX_NAME_LEN + 1` always suffices. Pass the name to
/// `license_usage` for its counts.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (index out of range, or `buf == NULL` with `len > 0`), `LICENSE_ERR_NOT_INITIALIZED`
/// or `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_type_name(
    index: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| {
            let config = engine.config();
            match config.order.get(index as usize) {
                Some(&slot) => unsafe { write_out(&config.licenses[slot].name, buf, len, needed) },
                None => fail(
                    license_status::LICENSE_ERR_INVALID_ARGUMENT,
                    format!("license type index {index} is out of range ({} types)", config.order.len()),
                ),
            }
        })
    })
}

/// Writes the whole report (every holder) in `format` (`LICENSE_REPORT_TEXT`,
/// `LICENSE_REPORT_JSON`, or `LICENSE_REPORT_PROMETHEUS`: the default tenant's metrics
/// and those of every tenant whose pool is open) into `buf`.
///
/// Buffer convention: `*needed` (if `needed` is not NULL) receives the size required,
/// NUL included. `buf == NULL, len == 0` is a size query and returns `LICENSE_OK`.
/// Output is always NUL-terminated when `len > 0`. The report can grow between a size
/// query and the next call: leave some room, or retry on
/// `LICENSE_ERR_BUFFER_TOO_SMALL`.
///
/// Returns `LICENSE_OK`; `LICENSE_ERR_BUFFER_TOO_SMALL` (a NUL-terminated prefix is in
/// `buf`); `LICENSE_ERR_INVALID_ARGUMENT` for an unknown format or `buf == NULL` with
/// `len > 0`; `LICENSE_ERR_NOT_INITIALIZED`; `LICENSE_ERR_INTERNAL`.
///
/// Thread safety: safe from any thread. It works from a snapshot and never blocks
/// acquirers for more than the copy of one shard of the table.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_report(
    format: u32,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { report_in(None, format, Page::ALL, buf, len, needed) }
    })
}

/// Like `license_report`, showing only holders `first_row .. first_row + max_rows - 1`
/// (0-based, in login-time order); `max_rows == 0` means all from `first_row` on. A
/// holder (one row) is one user with all of that user's seat handles. The counts and
/// warnings cover everything; the footer "showing A to B of N" counts holders, and a
/// page past the end shows "showing 0 to 0 of N".
///
/// Returns and thread safety: as `license_report`.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_report_page(
    format: u32,
    first_row: usize,
    max_rows: usize,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let page = Page { offset: first_row, max_rows: (max_rows > 0).then_some(max_rows) };
        unsafe { report_in(None, format, page, buf, len, needed) }
    })
}

/// # Safety
/// As for [`write_out`].
unsafe fn report_in(
    tenant: Option<&str>,
    format: u32,
    page: Page,
    buf: *mut c_char,
    len: usize,
    needed: *mut usize,
) -> i32 {
    let Ok(format) = license_report_format::try_from(format) else {
        return fail(
            license_status::LICENSE_ERR_INVALID_ARGUMENT,
            format!(
                "unknown report format {format}: use LICENSE_REPORT_TEXT, LICENSE_REPORT_JSON or LICENSE_REPORT_PROMETHEUS"
            ),
        );
    };
    if buf.is_null() && len > 0 {
        return fail(license_status::LICENSE_ERR_INVALID_ARGUMENT, "buf is NULL but len is not 0");
    }
    // Render outside the engine guard: only the snapshot needs the engine.
    let mut text = None;
    let code = with_engine(|engine| {
        let report = match tenant {
            None => engine.report(page),
            Some(t) => match engine.report_tenant(t, page) {
                Ok(r) => r,
                Err(e) => return fail_with(&e),
            },
        };
        text = Some(match format {
            license_report_format::LICENSE_REPORT_TEXT => report.to_text(),
            license_report_format::LICENSE_REPORT_JSON => report.to_json(),
            license_report_format::LICENSE_REPORT_PROMETHEUS => {
                // One exposition for the installation: the default pool, then each
                // open tenant pool (a tenant that went away meanwhile is left out).
                let tenants: Vec<crate::report::Report> = match tenant {
                    Some(_) => Vec::new(),
                    None => report
                        .tenants
                        .iter()
                        .filter_map(|t| engine.report_tenant(&t.tenant, Page::ALL).ok())
                        .collect(),
                };
                let all: Vec<&crate::report::Report> = std::iter::once(&report).chain(&tenants).collect();
                crate::report::to_prometheus(&all)
            }
        });
        license_status::LICENSE_OK as i32
    });
    match text {
        Some(text) => unsafe { write_out(&text, buf, len, needed) },
        None => code,
    }
}

/// Writes the number of configuration lints (warnings found at load) to `*count_out`.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_INVALID_ARGUMENT` (NULL `count_out`),
/// `LICENSE_ERR_NOT_INITIALIZED` or `LICENSE_ERR_INTERNAL`. Thread safety: safe from
/// any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_lint_count(count_out: *mut u32) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        unsafe { write_count(count_out, |engine| engine.lints().len()) }
    })
}

/// Writes lint number `index` (0-based) as one line,
/// `file:line: warning[code]: sentence`, with the buffer convention of
/// `license_report`.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (index out of range, or `buf == NULL` with `len > 0`), `LICENSE_ERR_NOT_INITIALIZED`
/// or `LICENSE_ERR_INTERNAL`. Thread safety: safe from any thread.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_lint(index: u32, buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        with_engine(|engine| {
            let lints = engine.lints();
            match lints.get(index as usize) {
                Some(lint) => unsafe { write_out(&lint.to_string(), buf, len, needed) },
                None => fail(
                    license_status::LICENSE_ERR_INVALID_ARGUMENT,
                    format!("lint index {index} is out of range ({} lints)", lints.len()),
                ),
            }
        })
    })
}

// ---- errors and version ----

/// A static, NUL-terminated English name for a status code, e.g.
/// `"license type is full"`. Unknown codes give `"unknown status code"`. Never NULL;
/// the string must not be freed.
///
/// Thread safety: safe from any thread, initialized or not.
#[unsafe(no_mangle)]
pub extern "C" fn license_strerror(code: i32) -> *const c_char {
    ffi_boundary!(c"internal error".as_ptr(), {
        let text: &'static CStr = match code {
            0 => c"success",
            -1 => c"license type is full",
            -2 => c"unknown profile or license type",
            -3 => c"invalid argument",
            -4 => c"seatgate is not initialized",
            -5 => c"seatgate is already initialized",
            -6 => c"unknown seat handle",
            -7 => c"invalid configuration",
            -8 => c"buffer too small",
            -9 => c"internal error",
            -10 => c"unknown license type",
            -11 => c"a required license type is missing",
            -12 => c"user holds no seat",
            -13 => c"backend unavailable",
            -14 => c"seat table full",
            -15 => c"license expired",
            -16 => c"unknown tenant",
            -17 => c"emergency window unavailable",
            -18 => c"state file error",
            -19 => c"license file invalid",
            _ => c"unknown status code",
        };
        text.as_ptr()
    })
}

/// Writes the detail of the calling thread's most recent failure (for example
/// `license type 'chat' is full (0/0)` or `seats.toml:12:1: unknown field ...`), with
/// the buffer convention of `license_report`. An empty string if this thread has had
/// no failure. Success does not clear it.
///
/// Returns `LICENSE_OK`, `LICENSE_ERR_BUFFER_TOO_SMALL`, `LICENSE_ERR_INVALID_ARGUMENT`
/// (`buf == NULL` with `len > 0`) or `LICENSE_ERR_INTERNAL`. Calling it never changes
/// the stored detail. Works initialized or not.
///
/// Thread safety: per thread; each thread sees only its own failures.
///
/// # Safety
/// Each pointer is NULL or valid: strings NUL-terminated, outputs writable for their size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn license_last_error(buf: *mut c_char, len: usize, needed: *mut usize) -> i32 {
    ffi_boundary!(license_status::LICENSE_ERR_INTERNAL as i32, {
        let message = LAST_ERROR.try_with(|slot| slot.borrow().clone()).unwrap_or_default();
        // A too-small buffer must not replace the detail the caller is trying to read.
        let code = unsafe { write_out(&message, buf, len, needed) };
        set_last_error(message);
        code
    })
}

/// The library version, e.g. `"0.1.0"`, as a static NUL-terminated string (the same
/// as the `SEATGATE_VERSION` macro of the header it was built with). Thread safety:
/// safe from any thread.
#[unsafe(no_mangle)]
pub extern "C" fn license_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Detail;
    use std::borrow::Cow;
    use std::ffi::CString;

    /// What a host callback saw: each string field read back as Rust text.
    #[derive(Debug, Default, PartialEq)]
    struct SeenTexts {
        license: Option<String>,
        user: Option<String>,
        detail: Option<String>,
        requires: Option<String>,
        tenant: Option<String>,
    }

    unsafe extern "C" fn record_texts(user_data: *mut c_void, event: *const license_event) {
        let read = |p: *const c_char| {
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        let e = unsafe { &*event };
        let seen = unsafe { &mut *user_data.cast::<SeenTexts>() };
        *seen = SeenTexts {
            license: read(e.license_type),
            user: read(e.user),
            detail: read(e.detail),
            requires: read(e.requires),
            tenant: read(e.tenant),
        };
    }

    #[test]
    fn an_events_c_strings_are_whole_on_the_stack_and_on_the_heap() {
        let deliver = |e: &Event| {
            let mut seen = SeenTexts::default();
            let host = HostCallback { call: record_texts, user_data: (&raw mut seen).cast() };
            sink_for(host)(e);
            seen
        };
        let event = |detail: String, requires: Option<&str>, tenant: Option<&str>| Event {
            kind: EventKind::Denied,
            why: None,
            denial: None,
            license: Some("callcenter".into()),
            user: Some("alice".into()),
            seat: 0,
            used: 0,
            limit: 0,
            threshold_percent: 0,
            time_unix_ms: 0,
            detail: Detail::Text(detail),
            requires: requires.map(|r| Cow::Owned(r.to_string())),
            tenant: tenant.map(|t| Cow::Owned(t.to_string())),
        };
        let want = |detail: &str, requires: Option<&str>, tenant: Option<&str>| SeenTexts {
            license: Some("callcenter".into()),
            user: Some("alice".into()),
            detail: Some(detail.into()),
            requires: requires.map(String::from),
            tenant: tenant.map(String::from),
        };
        // Fits the stack buffer; absent fields stay NULL.
        assert_eq!(deliver(&event("short".into(), None, None)), want("short", None, None));
        // Just at and just over the stack buffer's size: every byte of every string.
        for extra in [0, 1, 2, 400] {
            let long = "x".repeat(EVENT_TEXTS_ON_STACK - "callcenter alice crm acme".len() - 5 + extra);
            assert_eq!(
                deliver(&event(long.clone(), Some("crm"), Some("acme"))),
                want(&long, Some("crm"), Some("acme")),
                "{} bytes of detail",
                long.len()
            );
        }
        // A NUL ends the C string where it is (C strings came in, so none should be there).
        assert_eq!(deliver(&event("before\0after".into(), None, None)), want("before", None, None));

        // A login's and a logout's sentences are written from the event's fields
        // straight into the buffer: the same words as `Event::detail`, on the stack
        // and, for names too long for it, on the heap.
        for user in ["alice".to_string(), "u".repeat(LICENSE_MAX_LABEL_LEN)] {
            for (kind, detail, why) in [
                (EventKind::Acquired, Detail::Holds, None),
                (EventKind::Released, Detail::Released, Some(ReleaseWhy::EmergencyExpired)),
            ] {
                let e = Event {
                    kind,
                    why,
                    user: Some(user.as_str().into()),
                    seat: u64::MAX,
                    detail,
                    ..event(String::new(), None, None)
                };
                let sentence = e.detail().into_owned();
                assert!(sentence.len() <= e.detail_len_bound(), "{sentence}");
                let expected = match kind {
                    EventKind::Acquired => {
                        format!("user '{user}' holds 'callcenter' through seat {}", u64::MAX)
                    }
                    _ => format!(
                        "user '{user}' released seat {} of 'callcenter' (emergency_expired)",
                        u64::MAX
                    ),
                };
                assert_eq!(sentence, expected);
                let seen = deliver(&e);
                assert_eq!((seen.user.as_deref(), seen.detail.as_deref()), (Some(&*user), Some(&*expected)));
            }
        }
    }

    /// Tests here share the one global engine.
    static GLOBAL: Mutex<()> = Mutex::new(());

    fn last_error() -> String {
        let mut buf = [0 as c_char; 512];
        assert_eq!(unsafe { license_last_error(buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) }, 0);
        unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
    }

    fn write_config(text: &str) -> (tempdir::Dir, CString) {
        let dir = tempdir::Dir::new();
        let path = dir.path.join("seats.toml");
        std::fs::write(&path, text).unwrap();
        let c = CString::new(path.to_str().unwrap()).unwrap();
        (dir, c)
    }

    mod tempdir {
        pub struct Dir {
            pub path: std::path::PathBuf,
        }
        impl Dir {
            pub fn new() -> Dir {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let path = std::env::temp_dir().join(format!(
                    "seatgate-ffi-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::create_dir_all(&path).unwrap();
                Dir { path }
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.path);
            }
        }
    }

    #[test]
    fn forced_panic_comes_back_as_internal_error() {
        let _g = GLOBAL.lock().unwrap_or_else(|e| e.into_inner());
        let (_dir, path) = write_config("[licenses.user]\nlimit = 1\n");
        assert_eq!(unsafe { license_init(path.as_ptr()) }, 0);

        FORCE_PANIC.with(|f| f.set(true));
        let mut seat = 0;
        let code = unsafe { license_try_acquire(c"alice".as_ptr(), c"user".as_ptr(), &mut seat) };
        let release = license_release(1);
        license_shutdown(); // must not unwind either
        FORCE_PANIC.with(|f| f.set(false));

        assert_eq!(code, license_status::LICENSE_ERR_INTERNAL as i32);
        assert_eq!(release, license_status::LICENSE_ERR_INTERNAL as i32);
        assert_eq!(seat, 0, "out-parameter written on failure");
        assert!(last_error().contains("forced panic for testing"), "{}", last_error());
        // The library still works after the panic: the panic left no lock poisoned.
        license_shutdown();
        assert_eq!(unsafe { license_init(path.as_ptr()) }, 0);
        assert_eq!(unsafe { license_try_acquire(c"alice".as_ptr(), c"user".as_ptr(), &mut seat) }, 0);
        assert_eq!(license_release(seat), 0);
        license_shutdown();
    }

    #[test]
    fn buffer_convention() {
        let mut needed = 0usize;
        let text = "héllo";
        // size query
        assert_eq!(unsafe { write_out(text, std::ptr::null_mut(), 0, &mut needed) }, 0);
        assert_eq!(needed, text.len() + 1);
        // NULL buf with len > 0
        assert_eq!(unsafe { write_out(text, std::ptr::null_mut(), 4, &mut needed) }, -3);
        // too small: NUL-terminated prefix, never half a character
        let mut buf = [b'#' as c_char; 3];
        assert_eq!(unsafe { write_out(text, buf.as_mut_ptr(), buf.len(), &mut needed) }, -8);
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_bytes(), b"h");
        // exact fit
        let mut buf = [0 as c_char; 7];
        assert_eq!(unsafe { write_out(text, buf.as_mut_ptr(), buf.len(), std::ptr::null_mut()) }, 0);
        assert_eq!(unsafe { CStr::from_ptr(buf.as_ptr()) }.to_str().unwrap(), text);
    }

    #[test]
    fn every_status_has_a_distinct_name() {
        let codes = -14..=0;
        let names: std::collections::HashSet<_> = codes
            .clone()
            .map(|c| unsafe { CStr::from_ptr(license_strerror(c)) }.to_bytes().to_vec())
            .collect();
        assert_eq!(names.len(), codes.count());
        assert_eq!(unsafe { CStr::from_ptr(license_strerror(-1000)) }.to_bytes(), b"unknown status code");
    }
}
