//! One engine value: a validated config, a seat table behind the backend boundary, a
//! clock, and the lifecycle around them (leases and the reaper, hot reload, events and
//! the audit log). The C API keeps one in a global; Rust code builds as many as it likes.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::SystemTime;

use arc_swap::{ArcSwap, ArcSwapOption};
use serde_json::json;

use crate::audit::{AuditLog, AuditStatus};
use crate::backend::memory::MemoryBackend;
use crate::backend::{Backend, Changes, ReleaseWhy, SeatRequest, TypeStats};
use crate::clock::{Clock, SystemClock, mono_ns, rfc3339, short_duration};
use crate::config::{Config, Lint, Previous, SlotState};
use crate::error::{Denial, DenialReason, Error};
use crate::events::{Event, EventKind, EventSink};
use crate::reaper::Reaper;
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
    config: ArcSwap<Config>,
    /// The file `reload(None)` reads again.
    path: Mutex<Option<PathBuf>>,
    /// Serialises reloads; holds the configurations replaced so far that someone may
    /// still be acquiring through (their orphaned slots are not reused until none is).
    reload_lock: Mutex<Vec<Weak<Config>>>,
    backend: Box<dyn Backend>,
    clock: Arc<dyn Clock>,
    sink: ArcSwapOption<SinkBox>,
    audit: ArcSwapOption<AuditLog>,
    started_at: SystemTime,
    peaks_reset_at: Mutex<Option<SystemTime>>,
    reaper: Mutex<Option<Reaper>>,
    /// The backend's reload epoch this engine's config matches (see
    /// [`Backend::reload_epoch`]), and why following another process's reload
    /// failed, if it did.
    seen_reload: AtomicU64,
    follow_error: Mutex<Option<String>>,
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

/// The union of the seat sets of a comma-separated list of profile or type names.
fn resolve(config: &Config, profiles: &str) -> Result<TypeSet, Error> {
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
    if let Some(set) = config.resolve_name(profiles) {
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
        set = set.union(config.resolve_name(name).ok_or_else(|| Error::UnknownProfile(name.to_string()))?);
    }
    Ok(set)
}

/// What an operation did, for the listener and the audit log.
enum Op<'a> {
    Acquired { seat: SeatId, req: &'a Request<'a>, types: TypeSet },
    Denied { req: &'a Request<'a>, denial: &'a Denial },
    Released,
    Reloaded { source: &'a str, summary: &'a ReloadSummary, crossings: &'a [(usize, EventKind)] },
}

impl Engine {
    /// Loads and validates `path`, over the seat table its `[backend]` names (the
    /// in-memory table when it names none).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Engine, Error> {
        let config = Config::from_file(path.as_ref())?;
        let backend = crate::backend::open(&config)?;
        let engine = Engine::with_backend(config, backend);
        *engine.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_ref().to_path_buf());
        Ok(engine)
    }

    /// An engine over an already validated config, with the backend it names.
    pub fn open(config: Config) -> Result<Engine, Error> {
        let backend = crate::backend::open(&config)?;
        Ok(Engine::with_backend(config, backend))
    }

    /// Loads and validates `path`, over the given seat table.
    pub fn from_file_with_backend(
        path: impl AsRef<Path>,
        backend: Box<dyn Backend>,
    ) -> Result<Engine, Error> {
        let engine = Engine::with_backend(Config::from_file(path.as_ref())?, backend);
        *engine.path.lock().unwrap_or_else(|e| e.into_inner()) = Some(path.as_ref().to_path_buf());
        Ok(engine)
    }

    /// An engine over an already validated config, with the memory backend.
    pub fn new(config: Config) -> Engine {
        Engine::with_backend(config, Box::new(MemoryBackend::new()))
    }

    /// An engine over an already validated config and the given seat table (the
    /// backend-conformance suite builds one per backend).
    pub fn with_backend(config: Config, backend: Box<dyn Backend>) -> Engine {
        let audit = config.audit.as_ref().map(|a| Arc::new(AuditLog::start(&a.path)));
        Engine {
            config: ArcSwap::from_pointee(config),
            path: Mutex::new(None),
            reload_lock: Mutex::new(Vec::new()),
            clock: Arc::new(SystemClock),
            sink: ArcSwapOption::empty(),
            audit: ArcSwapOption::new(audit),
            started_at: SystemTime::now(),
            peaks_reset_at: Mutex::new(None),
            reaper: Mutex::new(None),
            seen_reload: AtomicU64::new(backend.reload_epoch()),
            follow_error: Mutex::new(None),
            backend,
        }
    }

    /// Replaces the clock (tests use [`crate::clock::ManualClock`]).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Engine {
        self.started_at = clock.now();
        self.clock = clock;
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

    /// Whether the background reaper thread runs.
    pub fn reaper_running(&self) -> bool {
        self.reaper.lock().unwrap_or_else(|e| e.into_inner()).as_ref().is_some_and(Reaper::runs_here)
    }

    /// Installs (or with `None` removes) the event listener.
    pub fn set_event_sink(&self, sink: Option<EventSink>) {
        self.sink.store(sink.map(|s| Arc::new(SinkBox(s))));
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
        check_label("user name", req.user)?;
        if let Some(ext) = req.extension {
            check_label("extension", ext)?;
        }
        if let Some(session) = req.session {
            check_label("session label", session)?;
        }
        self.follow_shared_reload();
        // One configuration for the whole call: a reload running meanwhile is seen
        // entirely or not at all.
        let config = self.config.load();
        let types = resolve(&config, req.profiles)?;
        let seat_request = SeatRequest {
            user: req.user,
            types,
            extension: req.extension,
            session: req.session,
            since: self.clock.now(),
            now: self.clock.monotonic(),
            lease: config.lease_of(types).map_or(0, mono_ns),
        };
        let mut changes = Changes::default();
        let mut result = self.backend.try_acquire(&config, &seat_request, &mut changes);
        // Reclaiming can free a full or over-limit type, never a type without seats or
        // a missing requirement.
        let reclaimable = |r: &Result<SeatId, Error>| matches!(r, Err(Error::LimitReached(d)) if matches!(d.reason, DenialReason::Full | DenialReason::OverLimit));
        if reclaimable(&result) && self.backend.reap(&config, seat_request.now, &mut changes) > 0 {
            result = self.backend.try_acquire(&config, &seat_request, &mut changes);
        }
        match &result {
            Ok(seat) => self.publish(&config, &changes, Op::Acquired { seat: *seat, req, types }),
            Err(Error::LimitReached(denial)) => {
                if let Some(slot) = config.license_index(&denial.license) {
                    self.backend.count_denial(&config, slot);
                }
                self.publish(&config, &changes, Op::Denied { req, denial });
            }
            Err(_) => self.publish(&config, &changes, Op::Released),
        }
        result
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
        check_caller_why(why)?;
        if seat == 0 {
            return Err(Error::UnknownSeat(0));
        }
        let config = self.config.load();
        let mut changes = Changes::default();
        let result = self.backend.release(&config, seat, why, self.clock.monotonic(), &mut changes);
        self.publish(&config, &changes, Op::Released);
        result
    }

    /// Releases every seat handle of `user` ("log out everywhere"); returns how many.
    /// With [`ReleaseWhy::Admin`] the user's lingering seats are freed too.
    pub fn release_user(&self, user: &str, why: ReleaseWhy) -> Result<usize, Error> {
        check_caller_why(why)?;
        check_label("user name", user)?;
        let config = self.config.load();
        let mut changes = Changes::default();
        let result = self.backend.release_user(&config, user, why, self.clock.monotonic(), &mut changes);
        self.publish(&config, &changes, Op::Released);
        result
    }

    /// Renews the lease of one seat handle.
    pub fn touch(&self, seat: SeatId) -> Result<(), Error> {
        let config = self.config.load();
        let mut changes = Changes::default();
        let result = self.backend.touch(&config, seat, self.clock.monotonic(), &mut changes);
        self.publish(&config, &changes, Op::Released);
        result
    }

    /// Renews the lease of every handle of `user`; returns how many.
    pub fn touch_user(&self, user: &str) -> Result<usize, Error> {
        check_label("user name", user)?;
        let config = self.config.load();
        let mut changes = Changes::default();
        let result = self.backend.touch_user(&config, user, self.clock.monotonic(), &mut changes);
        self.publish(&config, &changes, Op::Released);
        result
    }

    /// Reclaims expired leases and ended linger windows now; returns how many seats.
    /// The reaper thread calls this; hosts that turn the reaper off call it themselves.
    pub fn reap(&self) -> usize {
        let config = self.config.load();
        let mut changes = Changes::default();
        let n = self.backend.reap(&config, self.clock.monotonic(), &mut changes);
        self.publish(&config, &changes, Op::Released);
        n
    }

    /// Releases every handle with [`ReleaseWhy::Shutdown`] (events and audit lines
    /// included); returns how many.
    pub fn release_all(&self) -> usize {
        let config = self.config.load();
        let now = self.clock.monotonic();
        let mut changes = Changes::default();
        let mut n = 0;
        for held in self.backend.own_holders(&config) {
            if self.backend.release(&config, held.seat, ReleaseWhy::Shutdown, now, &mut changes).is_ok() {
                n += 1;
            }
        }
        self.publish(&config, &changes, Op::Released);
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
        let epoch = self.backend.reload_epoch();
        let seen = self.seen_reload.load(Ordering::Relaxed);
        if epoch == seen
            || self.seen_reload.compare_exchange(seen, epoch, Ordering::Relaxed, Ordering::Relaxed).is_err()
        {
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
        let in_use = |slot: usize| self.backend.used(&current, slot) > 0;
        let new = load(&Previous { config: &current, in_use: &in_use, may_free: retired.is_empty() })?;
        if new.backend != current.backend {
            return Err(Error::Config(crate::config::ConfigError {
                file: new.source.clone(),
                line: 0,
                column: 0,
                message: format!(
                    "[backend] cannot change while running (it is {} and the file now says {}): restart the host to move seats to another backend",
                    current.backend.kind(),
                    new.backend.kind()
                ),
            }));
        }
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
        let old = self.config.swap(new.clone());
        retired.push(Arc::downgrade(&old));
        drop((old, current));
        drop(retired);

        // The audit log follows the new config, and is reopened in any case (logrotate).
        match (&new.audit, self.audit.load_full()) {
            (Some(cfg), Some(log)) => log.reopen(&cfg.path),
            (Some(cfg), None) => self.audit.store(Some(Arc::new(AuditLog::start(&cfg.path)))),
            (None, Some(_)) => self.audit.store(None),
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

    /// A snapshot report: counts, holders (one page of them), lingering seats, orphaned
    /// types and warnings.
    pub fn report(&self, page: Page) -> Report {
        let config = self.config.load_full();
        let slots: Vec<usize> = (0..config.licenses.len()).collect();
        let used: Vec<u32> = slots.iter().map(|&s| self.backend.used(&config, s)).collect();
        let stats: Vec<TypeStats> = slots.iter().map(|&s| self.backend.stats(&config, s)).collect();
        Report::build(crate::report::Snapshot {
            config: &config,
            backend: self.backend.kind(),
            used: &used,
            stats: &stats,
            seats: self.backend.holders(&config),
            lingering: self.backend.lingering(&config),
            backend_status: {
                let mut status = self.backend.status(&config);
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
        })
    }

    /// Turns what an operation changed into events and audit lines, after every lock
    /// is dropped. Costs two atomic loads when nobody listens.
    fn publish(&self, config: &Config, changes: &Changes, op: Op<'_>) {
        let sink = self.sink.load();
        let mut audit = self.audit.load();
        if sink.is_none() && audit.is_none() {
            return;
        }
        if audit.as_ref().is_some_and(|log| !log.belongs_here())
            && let Some(cfg) = &config.audit
        {
            // A child forked after init: its lines get a writer of its own (O_APPEND
            // whole-line writes interleave safely with the parent's).
            self.audit.store(Some(Arc::new(AuditLog::start(&cfg.path))));
            audit = self.audit.load();
        }
        let time = self.clock.now();
        let stamp = rfc3339(time);
        let name = |slot: usize| config.licenses.get(slot).map(|l| l.name.clone());
        let mut events: Vec<Event> = Vec::new();
        let listening = sink.is_some();
        let event = |kind: EventKind, slot: Option<usize>, detail: String| Event {
            kind,
            why: None,
            denial: None,
            license: slot.and_then(name),
            user: None,
            seat: 0,
            used: slot.map_or(0, |s| self.backend.used(config, s)),
            limit: slot.and_then(|s| config.licenses.get(s)).map_or(0, |l| l.limit),
            threshold_percent: 0,
            time,
            detail,
            requires: None,
        };

        // Releases first: a reclaimed seat is what made room for an acquire.
        for released in &changes.released {
            if let Some(audit) = audit.as_ref() {
                audit.log(
                    json!({
                        "time": stamp, "event": "IN", "why": released.why.as_str(), "user": &*released.user,
                        "seat": released.seat, "licenses": names(config, released.types),
                        "extension": released.extension.as_deref(), "session": released.session.as_deref(),
                    })
                    .to_string(),
                );
            }
            if listening {
                for (i, slot) in released.types.iter().enumerate() {
                    let mut e = event(
                        EventKind::Released,
                        Some(slot),
                        format!(
                            "user '{}' released seat {} of '{}' ({})",
                            released.user,
                            released.seat,
                            config.licenses.get(slot).map_or("?", |l| &*l.name),
                            released.why.as_str()
                        ),
                    );
                    e.why = Some(released.why);
                    e.user = Some(released.user.clone());
                    e.seat = released.seat;
                    if let Some(&used) = released.used.get(i) {
                        e.used = used; // as right after this handle went, not as now
                    }
                    events.push(e);
                }
            }
        }
        match op {
            Op::Acquired { seat, req, types } => {
                if let Some(audit) = audit.as_ref() {
                    audit.log(
                        json!({
                            "time": stamp, "event": "OUT", "user": req.user, "seat": seat,
                            "licenses": names(config, types), "profiles": req.profiles,
                            "extension": req.extension, "session": req.session,
                        })
                        .to_string(),
                    );
                }
                if listening {
                    let user: Arc<str> = Arc::from(req.user);
                    for slot in types.iter() {
                        let mut e = event(
                            EventKind::Acquired,
                            Some(slot),
                            format!(
                                "user '{}' holds '{}' through seat {seat}",
                                req.user,
                                config.licenses.get(slot).map_or("?", |l| &*l.name)
                            ),
                        );
                        e.user = Some(user.clone());
                        e.seat = seat;
                        if let Some(change) = changes.counts.iter().rev().find(|c| c.slot == slot) {
                            e.used = change.after;
                        }
                        events.push(e);
                    }
                }
            }
            Op::Denied { req, denial } => {
                if let Some(audit) = audit.as_ref() {
                    audit.log(
                        json!({
                            "time": stamp, "event": "DENY", "user": req.user, "license": &*denial.license,
                            "reason": denial.reason.as_str(), "used": denial.used, "limit": denial.limit,
                            "requires": denial.requires.as_deref(), "profiles": req.profiles,
                        })
                        .to_string(),
                    );
                }
                if listening {
                    let slot = config.license_index(&denial.license);
                    let mut e = event(EventKind::Denied, slot, format!("user '{}': {denial}", req.user));
                    e.license = Some(denial.license.clone());
                    e.denial = Some(denial.reason);
                    e.requires = denial.requires.clone();
                    e.user = Some(Arc::from(req.user));
                    e.used = denial.used;
                    e.limit = denial.limit;
                    events.push(e);
                }
            }
            Op::Released => {}
            Op::Reloaded { source, summary, crossings } => {
                if let Some(audit) = audit.as_ref() {
                    audit.log(
                        json!({ "time": stamp, "event": "RELOAD", "config": source, "changes": summary.changes })
                            .to_string(),
                    );
                }
                if listening {
                    events.push(event(EventKind::Reloaded, None, format!("reloaded {source}: {summary}")));
                    // A new limit or alert_at can move a type across its threshold.
                    for &(slot, kind) in crossings {
                        let Some(license) = config.licenses.get(slot) else { continue };
                        let direction =
                            if kind == EventKind::ThresholdUp { "is now at or over" } else { "is now under" };
                        let mut e = event(
                            kind,
                            Some(slot),
                            format!(
                                "license type '{}' {direction} {}% of its limit after the reload ({}/{})",
                                license.name,
                                license.alert_at,
                                self.backend.used(config, slot),
                                license.limit
                            ),
                        );
                        e.threshold_percent = license.alert_at;
                        events.push(e);
                    }
                }
            }
        }
        if listening {
            for change in &changes.counts {
                let Some(license) = config.licenses.get(change.slot) else { continue };
                let Some(threshold) = license.alert_seats() else { continue };
                let kind = if change.before < threshold && change.after >= threshold {
                    EventKind::ThresholdUp
                } else if change.before >= threshold && change.after < threshold {
                    EventKind::ThresholdDown
                } else {
                    continue;
                };
                let direction = if kind == EventKind::ThresholdUp { "reached" } else { "fell under" };
                let mut e = event(
                    kind,
                    Some(change.slot),
                    format!(
                        "license type '{}' {direction} {}% of its limit ({}/{})",
                        license.name, license.alert_at, change.after, license.limit
                    ),
                );
                e.used = change.after;
                e.threshold_percent = license.alert_at;
                events.push(e);
            }
        }
        drop(audit);
        if let Some(sink) = sink.as_ref() {
            for e in &events {
                // A listener that panics must not turn a done acquire into a failure.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (sink.0)(e)));
            }
        }
    }
}

fn names(config: &Config, set: TypeSet) -> Vec<&str> {
    set.iter().filter_map(|s| config.licenses.get(s)).map(|l| &*l.name).collect()
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
        self.reaper.get_mut().unwrap_or_else(|e| e.into_inner()).take();
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
