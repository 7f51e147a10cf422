//! The "online / licenses" report: per-type `used/limit`, who holds what since when,
//! and the warnings an admin should see. Built from a snapshot, then rendered as JSON
//! for programs or as text for people.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::audit::AuditStatus;
use crate::backend::{BackendStatus, HeldSeat, LingeringSeat, TypeStats};
use crate::clock::{Mono, countdown, rfc3339, short_duration, unix_day};
use crate::config::{Config, CountMode, PoolKind, SlotState};
use crate::types::TypeSet;

/// Which holders to show: rows `offset .. offset + max_rows` in login-time order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    /// `None` shows every holder from `offset` on.
    pub max_rows: Option<usize>,
}

impl Page {
    pub const ALL: Page = Page { offset: 0, max_rows: None };
}

/// Everything a report is built from, copied out of the engine first.
pub(crate) struct Snapshot<'a> {
    pub config: &'a Config,
    pub backend: &'static str,
    /// Use and billing counters by slot.
    pub used: &'a [u32],
    pub stats: &'a [TypeStats],
    pub seats: Vec<HeldSeat>,
    pub lingering: Vec<LingeringSeat>,
    pub backend_status: BackendStatus,
    pub now: SystemTime,
    pub now_mono: Mono,
    pub started_at: SystemTime,
    pub peaks_reset_at: Option<SystemTime>,
    pub audit: Option<AuditStatus>,
    pub reaper_running: bool,
    pub page: Page,
    /// Entitlement policy: emergency window, signed license, expiry, warnings.
    pub policy: PolicySnapshot,
}

/// What the entitlement policy adds to a report.
#[derive(Default)]
pub(crate) struct PolicySnapshot {
    pub emergency: Option<crate::engine::EmergencyStatus>,
    pub signed: Option<Arc<crate::signed::SignedLicense>>,
    /// Types refusing new logins now.
    pub expired: TypeSet,
    pub warnings: Vec<String>,
    /// Tenants with an open pool (the default tenant's report only), and how many
    /// tenants there are in all.
    pub tenants: Vec<crate::engine::TenantUsage>,
    pub tenants_total: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub backend: &'static str,
    /// Where the seat table lives and how full it is (empty for `memory`).
    pub backend_detail: String,
    /// Why the backend is degraded (Redis unreachable, serving a local share), if it is.
    pub degraded: Option<String>,
    pub config: String,
    pub licensee: LicenseeRow,
    /// When counting started (peaks and totals are since then).
    pub started_at: String,
    /// When `peak_since_reset` was last reset (`None`: never, it runs since start).
    pub peaks_reset_at: Option<String>,
    /// The active types in config order, then orphaned types still held.
    pub licenses: Vec<LicenseRow>,
    pub holders: Vec<HolderRow>,
    /// Released seats kept for their user during the type's linger window.
    pub lingering: Vec<LingerRow>,
    /// "every 1s", "off (config)" or "not running".
    pub reaper: String,
    pub audit: Option<AuditStatus>,
    pub warnings: Vec<String>,
    /// "showing `first` to `last` of `total`" (1-based; 0 to 0 when empty).
    pub paging: Paging,
    /// The tenant this report is about (`None`: the default tenant).
    pub tenant: Option<String>,
    /// The vendor-signed license in force, when one is configured.
    pub signed_license: Option<SignedRow>,
    /// The emergency window, when `[emergency]` is configured.
    pub emergency: Option<crate::engine::EmergencyStatus>,
    /// Tenants whose pool is open (default tenant's report), and the number of
    /// tenants in all.
    pub tenants: Vec<crate::engine::TenantUsage>,
    pub tenants_total: usize,
    /// Seat handles held in this pool (every page), for the holders' sessions count.
    pub handles_total: usize,
    /// Set by `seatgate report`, which reads a live `shm` or `redis` table from outside
    /// the hosts: `reaper`, `started_at` and `peaks_reset_at` then describe that
    /// reading process, not the hosts (the counters themselves are the table's).
    pub read_from_outside: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignedRow {
    pub license_id: String,
    pub licensee: String,
    pub key_id: String,
    pub valid_until: Option<String>,
    pub support_until: Option<String>,
}

/// A reservation or cap of one license type.
#[derive(Debug, Clone, Serialize)]
pub struct PoolRow {
    /// "reserved" or "cap".
    pub kind: &'static str,
    pub profile: String,
    pub used: u32,
    pub seats: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct LicenseeRow {
    pub name: Option<String>,
    pub support_until: Option<String>,
    pub support_days_left: Option<i64>,
    /// The whole license ends after this day (the config's or the signed license's).
    pub valid_until: Option<String>,
    pub valid_days_left: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LicenseRow {
    pub name: String,
    pub limit: u32,
    pub used: u32,
    pub free: u32,
    pub count: &'static str,
    pub description: Option<String>,
    /// "ok", "full", "over limit", or "orphaned" (removed by a reload, still held).
    pub status: &'static str,
    /// Highest use since start, and since the last reset.
    pub peak: u32,
    pub peak_since_reset: u32,
    /// Seats taken since start.
    pub acquired: u64,
    /// Requests this type refused since start.
    pub denied: u64,
    /// Seats of `used` that are lingering (released, kept for their user).
    pub lingering: u32,
    pub lease_seconds: Option<f64>,
    pub linger_seconds: Option<f64>,
    pub requires: Vec<String>,
    /// Alert threshold in percent of the limit (`None`: off).
    pub alert_at: Option<u8>,
    /// Where the limit came from: "config", "tenant config", "set at run time",
    /// with the signed cap and emergency seats when they apply.
    pub limit_source: String,
    /// The extra seats of an open emergency window included in `limit`.
    pub emergency_seats: u32,
    /// The type (or the license) ends after this day.
    pub valid_until: Option<String>,
    pub days_left: Option<i64>,
    /// Past `valid_until`: new logins are refused.
    pub expired: bool,
    /// Reservations and caps of profiles on this type.
    pub pools: Vec<PoolRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LingerRow {
    pub user: String,
    pub license: String,
    /// Seconds until the seat is freed for everybody.
    pub ends_in_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HolderRow {
    pub user: String,
    /// License types the user holds through any handle, in config order.
    pub licenses: Vec<String>,
    /// Number of seat handles (logins, devices, sessions) the user holds.
    pub sessions: usize,
    /// Earliest login among the user's handles, RFC 3339 UTC.
    pub since: String,
    /// Extension of the earliest handle that has one.
    pub extension: Option<String>,
    /// Nodes (redis) or processes (shm) holding the user's handles.
    pub nodes: Vec<String>,
    /// Seconds left on the user's soonest-ending lease (`None`: no lease).
    pub lease_left_seconds: Option<f64>,
    pub seats: Vec<SeatRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeatRow {
    pub seat: u64,
    pub since: String,
    /// Seconds left on the lease (`None`: no lease). 0 means expired, not yet reclaimed.
    pub lease_left_seconds: Option<f64>,
    pub licenses: Vec<String>,
    pub extension: Option<String>,
    pub session: Option<String>,
    /// The node (redis) or process (shm) that took it.
    pub node: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Paging {
    pub first: usize,
    pub last: usize,
    pub total: usize,
}

fn names(config: &Config, set: TypeSet) -> Vec<String> {
    set.minus(config.pool_types()).iter().map(|i| config.licenses[i].name.to_string()).collect()
}

fn limit_source(l: &crate::config::LicenseType) -> String {
    let o = l.origin;
    let mut s = format!("{} {}", o.source.as_str(), o.base);
    if let Some(cap) = o.signed_cap {
        if cap < o.base {
            let _ = write!(s, ", signed license caps it at {cap}");
        } else {
            let _ = write!(s, ", within the signed {cap}");
        }
    }
    if o.emergency > 0 {
        let _ = write!(s, ", +{} emergency", o.emergency);
    }
    s
}

fn status(used: u32, limit: u32, state: SlotState) -> &'static str {
    if state == SlotState::Orphaned {
        return "orphaned";
    }
    match used.cmp(&limit) {
        std::cmp::Ordering::Less => "ok",
        std::cmp::Ordering::Equal => "full",
        std::cmp::Ordering::Greater => "over limit",
    }
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn left(deadline: Mono, now: Mono) -> Option<f64> {
    (deadline != 0).then(|| Duration::from_nanos(deadline.saturating_sub(now)).as_secs_f64())
}

impl Report {
    pub(crate) fn build(snap: Snapshot<'_>) -> Report {
        let Snapshot { config, backend, used, stats, mut seats, lingering, now, now_mono, page, .. } = snap;
        let policy = &snap.policy;
        let signed_until = policy.signed.as_ref().and_then(|s| s.valid_until);
        let today = unix_day(now);
        let slot_used = |s: usize| used.get(s).copied().unwrap_or(0);
        let lingering_of = |s: usize| lingering.iter().filter(|l| l.slot == s).count() as u32;
        let orphans_held = config.orphans().filter(|(s, _)| slot_used(*s) > 0);
        let licenses: Vec<LicenseRow> = config
            .active()
            .chain(orphans_held)
            .map(|(slot, l)| {
                let u = slot_used(slot);
                let st = stats.get(slot).copied().unwrap_or_default();
                LicenseRow {
                    name: l.name.to_string(),
                    limit: l.limit,
                    used: u,
                    free: if l.state == SlotState::Active { l.limit.saturating_sub(u) } else { 0 },
                    count: l.count.as_str(),
                    description: l.description.clone(),
                    status: status(u, l.limit, l.state),
                    peak: st.peak,
                    peak_since_reset: st.peak_since_reset,
                    acquired: st.acquired,
                    denied: st.denied,
                    lingering: lingering_of(slot),
                    lease_seconds: secs(l.lease),
                    linger_seconds: secs(l.linger),
                    requires: names(config, l.requires),
                    alert_at: (l.alert_at > 0).then_some(l.alert_at),
                    limit_source: limit_source(l),
                    emergency_seats: l.origin.emergency,
                    valid_until: crate::policy::expiry_of(config, slot, signed_until)
                        .map(|e| e.date.to_string()),
                    days_left: crate::policy::expiry_of(config, slot, signed_until)
                        .map(|e| e.date.days_since_epoch() - today),
                    expired: policy.expired.contains(slot),
                    pools: config
                        .licenses
                        .iter()
                        .enumerate()
                        .filter_map(|(s, p)| {
                            let pool = p.pool.as_ref().filter(|p| p.base == slot)?;
                            match &pool.kind {
                                PoolKind::Reserve { profile, seats } => Some(PoolRow {
                                    kind: "reserved",
                                    profile: profile.to_string(),
                                    used: slot_used(s),
                                    seats: *seats,
                                }),
                                PoolKind::Cap { profile, seats } => Some(PoolRow {
                                    kind: "cap",
                                    profile: profile.to_string(),
                                    used: slot_used(s),
                                    seats: *seats,
                                }),
                                PoolKind::Shared => None,
                            }
                        })
                        .collect(),
                }
            })
            .collect();

        let handles_total = seats.len();
        // Group handles by user, earliest login first.
        seats.sort_by(|a, b| a.since.cmp(&b.since).then(a.seat.cmp(&b.seat)));
        let mut order: Vec<Arc<str>> = Vec::new();
        let mut by_user: HashMap<Arc<str>, Vec<HeldSeat>> = HashMap::new();
        for seat in seats {
            by_user
                .entry(seat.user.clone())
                .or_insert_with(|| {
                    order.push(seat.user.clone());
                    Vec::new()
                })
                .push(seat);
        }
        let total = order.len();
        let offset = page.offset.min(total);
        let end = page.max_rows.map_or(total, |n| offset.saturating_add(n).min(total));
        let holders = order[offset..end]
            .iter()
            .map(|user| {
                let handles = &by_user[user];
                let union = handles.iter().fold(TypeSet::EMPTY, |acc, s| acc.union(s.types));
                HolderRow {
                    user: user.to_string(),
                    licenses: names(config, union),
                    sessions: handles.len(),
                    since: rfc3339(handles[0].since),
                    extension: handles.iter().find_map(|s| s.extension.as_deref().map(str::to_string)),
                    nodes: {
                        let mut nodes: Vec<String> =
                            handles.iter().filter_map(|s| s.node.as_deref().map(str::to_string)).collect();
                        nodes.dedup();
                        nodes.sort();
                        nodes.dedup();
                        nodes
                    },
                    lease_left_seconds: handles
                        .iter()
                        .filter_map(|s| left(s.deadline, now_mono))
                        .min_by(|a, b| a.total_cmp(b)),
                    seats: handles
                        .iter()
                        .map(|s| SeatRow {
                            seat: s.seat,
                            since: rfc3339(s.since),
                            lease_left_seconds: left(s.deadline, now_mono),
                            licenses: names(config, s.types),
                            extension: s.extension.as_deref().map(str::to_string),
                            session: s.session.as_deref().map(str::to_string),
                            node: s.node.as_deref().map(str::to_string),
                        })
                        .collect(),
                }
            })
            .collect();

        let mut lingering_rows: Vec<LingerRow> = lingering
            .iter()
            .map(|l| LingerRow {
                user: l.user.to_string(),
                license: config.licenses.get(l.slot).map_or_else(String::new, |t| t.name.to_string()),
                ends_in_seconds: left(l.deadline, now_mono).unwrap_or(0.0),
            })
            .collect();
        lingering_rows
            .sort_by(|a, b| a.ends_in_seconds.total_cmp(&b.ends_in_seconds).then(a.user.cmp(&b.user)));

        let mut warnings: Vec<String> = config.lints.iter().map(|l| l.to_string()).collect();
        if let Some(why) = &snap.backend_status.degraded {
            warnings.push(format!("backend degraded: {why}"));
        }
        warnings.extend(snap.backend_status.warnings.iter().cloned());
        let support_until =
            [config.licensee.support_until, policy.signed.as_ref().and_then(|s| s.support_until)]
                .into_iter()
                .flatten()
                .min();
        let support_days_left = support_until.map(|d| d.days_since_epoch() - today);
        let valid_until = [config.licensee.valid_until, signed_until].into_iter().flatten().min();
        warnings.extend(policy.warnings.iter().cloned());
        for l in &licenses {
            if l.expired {
                warnings.push(format!(
                    "license type '{}' expired (valid until {}): new logins of it are refused",
                    l.name,
                    l.valid_until.as_deref().unwrap_or("?")
                ));
            }
        }
        if let Some(e) = &policy.emergency
            && e.state == "open"
        {
            warnings.push(format!(
                "emergency window open until {}: {} extra seats in use; they are released when it ends",
                e.ends_at.as_deref().unwrap_or("?"),
                e.in_use
            ));
        }
        for l in &licenses {
            if l.status == "over limit" {
                warnings.push(format!(
                    "license type '{}' is over its limit ({}/{}) since the limit was lowered: nobody was logged out; new logins of it are refused until use falls under {}",
                    l.name, l.used, l.limit, l.limit
                ));
            } else if l.status == "orphaned" {
                warnings.push(format!(
                    "license type '{}' was removed from the config, but {} seats of it are still held: they can be released, not acquired",
                    l.name, l.used
                ));
            }
        }
        if let Some(a) = &snap.audit
            && a.failed + a.dropped > 0
        {
            warnings.push(format!(
                "audit log {}: {} lines lost ({} to write errors, {} to a full queue){}",
                a.path,
                a.failed + a.dropped,
                a.failed,
                a.dropped,
                a.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default()
            ));
        }
        let reaper = if !config.reaper.enabled {
            "off (config)".to_string()
        } else if snap.reaper_running {
            format!("every {}", short_duration(config.reaper.interval))
        } else {
            "not running (expired seats are reclaimed when an acquire needs them)".to_string()
        };

        Report {
            generated_at: rfc3339(now),
            backend,
            backend_detail: snap.backend_status.detail.clone(),
            degraded: snap.backend_status.degraded.clone(),
            config: config.source.clone(),
            licensee: LicenseeRow {
                name: config.licensee.name.clone(),
                support_until: support_until.map(|d| d.to_string()),
                support_days_left,
                valid_until: valid_until.map(|d| d.to_string()),
                valid_days_left: valid_until.map(|d| d.days_since_epoch() - today),
            },
            started_at: rfc3339(snap.started_at),
            peaks_reset_at: snap.peaks_reset_at.map(rfc3339),
            licenses,
            holders,
            lingering: lingering_rows,
            reaper,
            audit: snap.audit,
            warnings,
            paging: if end > offset {
                Paging { first: offset + 1, last: end, total }
            } else {
                Paging { first: 0, last: 0, total }
            },
            tenant: config.tenant.as_deref().map(str::to_string),
            signed_license: policy.signed.as_ref().map(|s| SignedRow {
                license_id: s.license_id.clone(),
                licensee: s.licensee.clone(),
                key_id: s.key_id.clone(),
                valid_until: s.valid_until.map(|d| d.to_string()),
                support_until: s.support_until.map(|d| d.to_string()),
            }),
            emergency: policy.emergency.clone(),
            tenants: policy.tenants.clone(),
            tenants_total: policy.tenants_total,
            handles_total,
            read_from_outside: false,
        }
    }

    /// This report alone in the Prometheus text format; see [`to_prometheus`].
    pub fn to_prometheus(&self) -> String {
        to_prometheus(&[self])
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The admin's view: summary per type, warnings, then the online-licenses table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seatgate license report, generated {}", self.generated_at);
        if let Some(t) = &self.tenant {
            let _ = writeln!(out, "Tenant: {t}");
        }
        if let Some(name) = &self.licensee.name {
            let _ = writeln!(out, "Licensee: {name}");
        }
        if let Some(s) = &self.signed_license {
            let _ = writeln!(
                out,
                "Signed license: {} for {} (vendor key {}): limits are capped at the signed ones",
                s.license_id, s.licensee, s.key_id
            );
        }
        if let (Some(until), Some(left)) = (&self.licensee.valid_until, self.licensee.valid_days_left) {
            let when = if left >= 0 { format!("{left} days left") } else { "EXPIRED".to_string() };
            let _ = writeln!(out, "License valid until: {until} ({when})");
        }
        if let (Some(until), Some(left)) = (&self.licensee.support_until, self.licensee.support_days_left) {
            let when =
                if left >= 0 { format!("{left} days left") } else { format!("ended {} days ago", -left) };
            let _ = writeln!(out, "Support until: {until} ({when})");
        }
        let backend = if self.backend_detail.is_empty() {
            self.backend.to_string()
        } else {
            format!("{} {}", self.backend, self.backend_detail)
        };
        let _ = writeln!(out, "Config: {} (backend: {backend}, reaper: {})", self.config, self.reaper);
        if let Some(why) = &self.degraded {
            let _ = writeln!(out, "DEGRADED: {why}");
        }
        if let Some(e) = &self.emergency {
            let window = match (&e.opened_at, &e.ends_at) {
                (Some(from), Some(to)) => format!(" {} to {}", from, to),
                _ => String::new(),
            };
            let use_now = if e.state == "open" {
                format!(", in use {}/{} per type", e.in_use, e.seats)
            } else {
                String::new()
            };
            let next = if e.can_activate {
                "can be activated".to_string()
            } else {
                e.why_not.clone().unwrap_or_default()
            };
            let _ = writeln!(
                out,
                "Emergency: {}{window} ({} extra seats of {}{use_now}; {next})",
                e.state,
                e.seats,
                e.types.join(", ")
            );
        }
        if self.read_from_outside {
            let _ = writeln!(
                out,
                "Read from outside the hosts: peaks and totals count since the table was made (peak since reset: since a host last reset it)"
            );
        } else {
            let since_reset = match &self.peaks_reset_at {
                Some(at) => format!("peak since reset at {at}"),
                None => "no reset yet".to_string(),
            };
            let _ = writeln!(out, "Counting since {} ({since_reset})", self.started_at);
        }

        let _ = writeln!(out, "\nLicenses");
        let name_w = self.licenses.iter().map(|l| l.name.len()).max().unwrap_or(0).max(4);
        let ratio: Vec<String> = self.licenses.iter().map(|l| format!("{}/{}", l.used, l.limit)).collect();
        let ratio_w = ratio.iter().map(String::len).max().unwrap_or(0).max(10);
        let window =
            |s: Option<f64>| s.map_or("-".to_string(), |s| short_duration(Duration::from_secs_f64(s)));
        let _ = writeln!(
            out,
            "  {:<name_w$}  {:>ratio_w$}  {:>5}  {:>5}  {:>8}  {:>6}  {:<7}  {:<6}  {:<6}  {:<10}  description",
            "type", "used/limit", "free", "peak", "acquired", "denied", "count", "lease", "linger", "status"
        );
        for (l, r) in self.licenses.iter().zip(&ratio) {
            let mut notes = Vec::new();
            if let Some(d) = &l.description {
                notes.push(d.clone());
            }
            if l.lingering > 0 {
                notes.push(format!("{} lingering", l.lingering));
            }
            if !l.requires.is_empty() {
                notes.push(format!("requires {}", l.requires.join(", ")));
            }
            if let Some(p) = l.alert_at {
                notes.push(format!("alert at {p}%"));
            }
            if l.limit_source != format!("config {}", l.limit) {
                notes.push(format!("limit: {}", l.limit_source));
            }
            if let (Some(until), Some(days)) = (&l.valid_until, l.days_left) {
                notes.push(if l.expired {
                    format!("EXPIRED {until}")
                } else {
                    format!("until {until} ({days} days)")
                });
            }
            for p in &l.pools {
                notes.push(match p.kind {
                    "reserved" => format!("reserved for {}: {}/{}", p.profile, p.used, p.seats),
                    _ => format!("{} capped: {}/{}", p.profile, p.used, p.seats),
                });
            }
            let line = format!(
                "  {:<name_w$}  {:>ratio_w$}  {:>5}  {:>5}  {:>8}  {:>6}  {:<7}  {:<6}  {:<6}  {:<10}  {}",
                l.name,
                r,
                l.free,
                l.peak,
                l.acquired,
                l.denied,
                l.count,
                window(l.lease_seconds),
                window(l.linger_seconds),
                l.status,
                notes.join("; ")
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }

        if !self.warnings.is_empty() {
            let _ = writeln!(out, "\nWarnings ({})", self.warnings.len());
            for w in &self.warnings {
                let _ = writeln!(out, "  - {w}");
            }
        }

        let _ = writeln!(out, "\nOnline licenses");
        let user_w = self.holders.iter().map(|h| h.user.chars().count()).max().unwrap_or(0).max(4);
        let ext_w = self
            .holders
            .iter()
            .map(|h| h.extension.as_deref().map_or(1, |e| e.chars().count()))
            .max()
            .unwrap_or(0)
            .max(9);
        let with_nodes = self.holders.iter().any(|h| !h.nodes.is_empty());
        let node_cell = |h: &HolderRow| if h.nodes.is_empty() { "-".to_string() } else { h.nodes.join(",") };
        let node_w = self.holders.iter().map(|h| node_cell(h).chars().count()).max().unwrap_or(0).max(4);
        let mut header = format!(
            "  {:<20}  {:<user_w$}  {:<ext_w$}  {:>8}  {:>10}",
            "login time (UTC)", "user", "extension", "sessions", "lease left"
        );
        if with_nodes {
            let _ = write!(header, "  {:<node_w$}", "node");
        }
        for l in &self.licenses {
            let _ = write!(header, "  {}", l.name);
        }
        let _ = writeln!(out, "{header}");
        for h in &self.holders {
            let mut row = format!(
                "  {:<20}  {:<user_w$}  {:<ext_w$}  {:>8}  {:>10}",
                h.since.replace('T', " ").trim_end_matches('Z'),
                h.user,
                h.extension.as_deref().unwrap_or("-"),
                h.sessions,
                h.lease_left_seconds.map_or("-".to_string(), countdown),
            );
            if with_nodes {
                let _ = write!(row, "  {:<node_w$}", node_cell(h));
            }
            for l in &self.licenses {
                let cell = if !h.licenses.contains(&l.name) {
                    "-".to_string()
                } else if l.count == CountMode::Session.as_str() {
                    h.seats.iter().filter(|s| s.licenses.contains(&l.name)).count().to_string()
                } else {
                    "x".to_string()
                };
                let _ = write!(row, "  {:<w$}", cell, w = l.name.len());
            }
            let _ = writeln!(out, "{}", row.trim_end());
        }
        let _ =
            writeln!(out, "showing {} to {} of {}", self.paging.first, self.paging.last, self.paging.total);

        if !self.lingering.is_empty() {
            let _ = writeln!(out, "\nLingering seats (released, kept for the same user)");
            for l in &self.lingering {
                let _ = writeln!(
                    out,
                    "  {:<user_w$}  {}  free for everyone in {}",
                    l.user,
                    l.license,
                    countdown(l.ends_in_seconds)
                );
            }
        }
        if self.tenants_total > 0 {
            let _ = writeln!(
                out,
                "\nTenants: {} in all, {} with an open pool",
                self.tenants_total,
                self.tenants.len()
            );
            for t in &self.tenants {
                let cells: Vec<String> = t.licenses.iter().map(|(n, u, l)| format!("{n} {u}/{l}")).collect();
                let handles =
                    if t.holders == 1 { "1 handle".to_string() } else { format!("{} handles", t.holders) };
                let _ = writeln!(out, "  {:<20}  {}  ({handles})", t.tenant, cells.join("  "));
            }
        }
        if let Some(a) = &self.audit {
            let _ = writeln!(
                out,
                "\nAudit log: {} ({} lines written, {} lost)",
                a.path,
                a.written,
                a.failed + a.dropped
            );
        }
        out
    }
}

// ---- Prometheus ----

/// The content type of [`to_prometheus`]'s output, for an HTTP exporter.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders reports (the default tenant's and any tenants') as one Prometheus text
/// exposition, format 0.0.4: each metric family once, with `# HELP` and `# TYPE`, then
/// its samples from every report, labelled `tenant` (`""` for the default tenant, which
/// Prometheus treats as no label) and, per license type, `type`. Installation-wide
/// families (`seatgate_info`, dates, the emergency window, the audit log, the tenant
/// count) come from the first report. Hidden reservation and cap slots are not types
/// of their own: they are `seatgate_license_pool_*`. Families without samples are left
/// out. Timestamps are gauges in Unix seconds; a date `D` ("valid until D") becomes
/// the instant it ends, 00:00 UTC the day after.
pub fn to_prometheus(reports: &[&Report]) -> String {
    let mut m = Metrics::default();
    if let Some(first) = reports.first() {
        installation_metrics(&mut m, first);
    }
    for r in reports {
        pool_metrics(&mut m, r);
    }
    m.render()
}

fn installation_metrics(m: &mut Metrics, r: &Report) {
    m.gauge(
        "seatgate_info",
        "seatgate library version, backend, licensee and signed license id (empty: none); always 1",
        &[
            ("version", env!("CARGO_PKG_VERSION")),
            ("backend", r.backend),
            ("licensee", r.licensee.name.as_deref().unwrap_or("")),
            ("signed_license", r.signed_license.as_ref().map_or("", |s| s.license_id.as_str())),
        ],
        1,
    );
    if let Some(t) = r.licensee.valid_until.as_deref().and_then(date_end_unix) {
        m.gauge(
            "seatgate_valid_until_timestamp_seconds",
            "When the whole license ends (the instant after its valid_until day, UTC); new logins are refused from then on",
            &[],
            t,
        );
    }
    if let Some(t) = r.licensee.support_until.as_deref().and_then(date_end_unix) {
        m.gauge(
            "seatgate_support_until_timestamp_seconds",
            "When the support subscription ends (the instant after its support_until day, UTC)",
            &[],
            t,
        );
    }
    if let Some(e) = &r.emergency {
        for state in ["never used", "open", "ended", "available again"] {
            m.gauge(
                "seatgate_emergency_state",
                "The emergency window's state: 1 for the current one",
                &[("state", state)],
                i64::from(e.state == state),
            );
        }
        m.gauge(
            "seatgate_emergency_seats",
            "Extra seats of each affected type while the emergency window is open",
            &[],
            i64::from(e.seats),
        );
        m.gauge(
            "seatgate_emergency_seats_in_use",
            "Seats in use beyond the permanent limits, summed over the emergency types",
            &[],
            i64::from(e.in_use),
        );
        m.gauge(
            "seatgate_emergency_can_activate",
            "1 when `seatgate emergency activate` (license_emergency_activate) would open a window now",
            &[],
            i64::from(e.can_activate),
        );
        if let Some(t) = e.opened_at.as_deref().and_then(rfc3339_unix) {
            m.gauge(
                "seatgate_emergency_opened_timestamp_seconds",
                "When the last emergency window opened",
                &[],
                t,
            );
        }
        if let Some(t) = e.ends_at.as_deref().and_then(rfc3339_unix) {
            m.gauge(
                "seatgate_emergency_ends_timestamp_seconds",
                "When the last emergency window ends or ended: its extra seats are released then",
                &[],
                t,
            );
        }
    }
    if r.tenant.is_none() {
        m.gauge(
            "seatgate_tenants",
            "Tenants of the installation: declared in the config or given limits at run time",
            &[],
            count(r.tenants_total as u64),
        );
    }
    if let Some(a) = &r.audit {
        m.counter(
            "seatgate_audit_lines_written_total",
            "Lines written to the audit log by this process",
            &[("path", &a.path)],
            count(a.written),
        );
        m.counter(
            "seatgate_audit_lines_lost_total",
            "Audit lines this process lost: write errors and a full queue",
            &[("path", &a.path)],
            count(a.failed.saturating_add(a.dropped)),
        );
    }
}

/// The per-type samples that are one number of the row: name, kind, help, value.
type PerType = (&'static str, &'static str, &'static str, fn(&LicenseRow) -> i64);
const PER_TYPE: &[PerType] = &[
    ("seatgate_license_seats_used", "gauge", "Seats of the type in use now, lingering seats included", |l| {
        i64::from(l.used)
    }),
    (
        "seatgate_license_seats_limit",
        "gauge",
        "The type's limit now: config, tenant or run-time limit, capped by the signed license, plus open emergency seats",
        |l| i64::from(l.limit),
    ),
    ("seatgate_license_seats_peak", "gauge", "Highest use of the type since counting started", |l| {
        i64::from(l.peak)
    }),
    (
        "seatgate_license_seats_peak_since_reset",
        "gauge",
        "Highest use of the type since the last license_stats_reset",
        |l| i64::from(l.peak_since_reset),
    ),
    (
        "seatgate_license_seats_lingering",
        "gauge",
        "Seats of the type released by their user and kept for them (linger)",
        |l| i64::from(l.lingering),
    ),
    (
        "seatgate_license_emergency_seats",
        "gauge",
        "Extra seats of an open emergency window included in the limit",
        |l| i64::from(l.emergency_seats),
    ),
    // Counters: the name ends in `_total`, which is also the sample's name.
    ("seatgate_license_acquired_total", "counter", "Seats of the type taken since counting started", |l| {
        count(l.acquired)
    }),
    ("seatgate_license_denied_total", "counter", "Requests the type refused since counting started", |l| {
        count(l.denied)
    }),
];

fn pool_metrics(m: &mut Metrics, r: &Report) {
    let tenant = r.tenant.as_deref().unwrap_or("");
    for l in &r.licenses {
        let labels = [("tenant", tenant), ("type", l.name.as_str())];
        m.gauge(
            "seatgate_license_info",
            "A license type: how it counts (user or session) and its description; always 1",
            &[
                ("tenant", tenant),
                ("type", &l.name),
                ("count", l.count),
                ("description", l.description.as_deref().unwrap_or("")),
            ],
            1,
        );
        for &(name, kind, help, value) in PER_TYPE {
            m.sample(name, help, kind, &labels, value(l));
        }
        for status in ["ok", "full", "over limit", "orphaned"] {
            m.gauge(
                "seatgate_license_status",
                "The type's status: 1 for the current one (over limit: a reload lowered the limit; orphaned: removed, still held)",
                &[("tenant", tenant), ("type", &l.name), ("status", status)],
                i64::from(l.status == status),
            );
        }
        m.gauge(
            "seatgate_license_expired",
            "1 when the type (or the whole license) is past its valid_until: new logins of it are refused",
            &labels,
            i64::from(l.expired),
        );
        if let Some(t) = l.valid_until.as_deref().and_then(date_end_unix) {
            m.gauge(
                "seatgate_license_valid_until_timestamp_seconds",
                "When the type ends (the instant after its valid_until day, UTC)",
                &labels,
                t,
            );
        }
        for p in &l.pools {
            let pool =
                [("tenant", tenant), ("type", l.name.as_str()), ("profile", &p.profile), ("kind", p.kind)];
            m.gauge(
                "seatgate_license_pool_seats_used",
                "Seats of a profile's reservation (kind=reserved) or cap (kind=cap) of the type in use",
                &pool,
                i64::from(p.used),
            );
            m.gauge(
                "seatgate_license_pool_seats",
                "Seats of a profile's reservation (kind=reserved) or cap (kind=cap) of the type",
                &pool,
                i64::from(p.seats),
            );
        }
    }
    let labels = [("tenant", tenant)];
    m.gauge("seatgate_holders", "Users holding at least one seat", &labels, count(r.paging.total as u64));
    m.gauge(
        "seatgate_seat_handles",
        "Seat handles held (logins, devices, sessions)",
        &labels,
        count(r.handles_total as u64),
    );
    m.gauge(
        "seatgate_backend_degraded",
        "1 when the seat table is degraded (Redis unreachable: serving a local share)",
        &labels,
        i64::from(r.degraded.is_some()),
    );
    m.gauge(
        "seatgate_warnings",
        "Warnings the report lists (lints, dates, backend)",
        &labels,
        count(r.warnings.len() as u64),
    );
}

fn count(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The instant after the day `YYYY-MM-DD` (UTC), in Unix seconds.
fn date_end_unix(date: &str) -> Option<i64> {
    crate::config::Date::parse(date).map(|d| d.end_unix())
}

fn rfc3339_unix(text: &str) -> Option<i64> {
    humantime::parse_rfc3339(text).ok().map(crate::clock::unix_secs)
}

/// Metric families in the order first seen, each with its samples.
#[derive(Default)]
struct Metrics {
    families: Vec<Family>,
}

struct Family {
    name: &'static str,
    help: &'static str,
    kind: &'static str,
    samples: String,
}

impl Metrics {
    fn gauge(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: i64) {
        self.sample(name, help, "gauge", labels, value);
    }

    /// `name` ends in `_total`, which is also the sample's name.
    fn counter(&mut self, name: &'static str, help: &'static str, labels: &[(&str, &str)], value: i64) {
        self.sample(name, help, "counter", labels, value);
    }

    fn sample(
        &mut self,
        name: &'static str,
        help: &'static str,
        kind: &'static str,
        labels: &[(&str, &str)],
        value: i64,
    ) {
        let index = match self.families.iter().position(|f| f.name == name) {
            Some(i) => i,
            None => {
                self.families.push(Family { name, help, kind, samples: String::new() });
                self.families.len() - 1
            }
        };
        let out = &mut self.families[index].samples;
        out.push_str(name);
        if !labels.is_empty() {
            out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{label}=\"{}\"", escape_label(value));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {value}");
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            out.push_str(&f.samples);
        }
        out
    }
}

/// A label value in the text format: backslash, double quote and line feed escaped.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A `# HELP` text: backslash and line feed escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod prometheus_tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label("line1\nline2"), "line1\\nline2");
        assert_eq!(escape_label("plain é"), "plain é");
        assert_eq!(escape_help("x\\y\nz"), "x\\\\y\\nz");
    }

    #[test]
    fn families_are_grouped_once_with_help_and_type() {
        let mut m = Metrics::default();
        m.gauge("seatgate_a", "A", &[("tenant", "")], 1);
        m.counter("seatgate_b_total", "B", &[], 2);
        m.gauge("seatgate_a", "A", &[("tenant", "t1")], 3);
        assert_eq!(
            m.render(),
            "# HELP seatgate_a A\n# TYPE seatgate_a gauge\nseatgate_a{tenant=\"\"} 1\nseatgate_a{tenant=\"t1\"} 3\n\
             # HELP seatgate_b_total B\n# TYPE seatgate_b_total counter\nseatgate_b_total 2\n"
        );
    }

    #[test]
    fn dates_become_the_instant_they_end() {
        assert_eq!(date_end_unix("1970-01-01"), Some(86_400));
        assert_eq!(date_end_unix("not a date"), None);
        assert_eq!(rfc3339_unix("1970-01-02T00:00:10Z"), Some(86_410));
    }
}
