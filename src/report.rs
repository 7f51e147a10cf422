//! The "online / licenses" report: per-type `used/limit`, who holds what since when,
//! and the warnings an admin should see. Built from a snapshot, then rendered as JSON
//! for programs or as text for people.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use crate::backend::HeldSeat;
use crate::clock::{rfc3339, unix_day};
use crate::config::{Config, CountMode};
use crate::engine::Usage;
use crate::types::TypeSet;

/// Days before `support_until` from which the report warns.
const SUPPORT_WARNING_DAYS: i64 = 30;

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

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub backend: &'static str,
    pub config: String,
    pub licensee: LicenseeRow,
    pub licenses: Vec<LicenseRow>,
    pub holders: Vec<HolderRow>,
    pub warnings: Vec<String>,
    /// "showing `first` to `last` of `total`" (1-based; 0 to 0 when empty).
    pub paging: Paging,
}

#[derive(Debug, Clone, Serialize)]
pub struct LicenseeRow {
    pub name: Option<String>,
    pub support_until: Option<String>,
    pub support_days_left: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LicenseRow {
    pub name: String,
    pub limit: u32,
    pub used: u32,
    pub free: u32,
    pub count: &'static str,
    pub description: Option<String>,
    /// "ok", "full" or "over limit".
    pub status: &'static str,
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
    pub seats: Vec<SeatRow>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SeatRow {
    pub seat: u64,
    pub since: String,
    pub licenses: Vec<String>,
    pub extension: Option<String>,
    pub session: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Paging {
    pub first: usize,
    pub last: usize,
    pub total: usize,
}

fn names(config: &Config, set: TypeSet) -> Vec<String> {
    set.iter().map(|i| config.licenses[i].name.to_string()).collect()
}

fn status(used: u32, limit: u32) -> &'static str {
    match used.cmp(&limit) {
        std::cmp::Ordering::Less => "ok",
        std::cmp::Ordering::Equal => "full",
        std::cmp::Ordering::Greater => "over limit",
    }
}

impl Report {
    pub(crate) fn build(
        config: &Config,
        backend: &'static str,
        usage: &[Usage],
        mut seats: Vec<HeldSeat>,
        now: SystemTime,
        page: Page,
    ) -> Report {
        let licenses = config
            .licenses
            .iter()
            .zip(usage)
            .map(|(l, u)| LicenseRow {
                name: l.name.to_string(),
                limit: l.limit,
                used: u.used,
                free: l.limit.saturating_sub(u.used),
                count: l.count.as_str(),
                description: l.description.clone(),
                status: status(u.used, l.limit),
            })
            .collect();

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
                    seats: handles
                        .iter()
                        .map(|s| SeatRow {
                            seat: s.seat,
                            since: rfc3339(s.since),
                            licenses: names(config, s.types),
                            extension: s.extension.as_deref().map(str::to_string),
                            session: s.session.as_deref().map(str::to_string),
                        })
                        .collect(),
                }
            })
            .collect();

        let mut warnings: Vec<String> = config.lints.iter().map(|l| l.to_string()).collect();
        let support_days_left = config.licensee.support_until.map(|d| d.days_since_epoch() - unix_day(now));
        if let (Some(date), Some(left)) = (config.licensee.support_until, support_days_left) {
            if left < 0 {
                warnings.push(format!(
                    "support ended on {date}: logins are not affected, renew to keep updates and help"
                ));
            } else if left <= SUPPORT_WARNING_DAYS {
                warnings.push(format!("support ends on {date}, in {left} days"));
            }
        }

        Report {
            generated_at: rfc3339(now),
            backend,
            config: config.source.clone(),
            licensee: LicenseeRow {
                name: config.licensee.name.clone(),
                support_until: config.licensee.support_until.map(|d| d.to_string()),
                support_days_left,
            },
            licenses,
            holders,
            warnings,
            paging: if end > offset {
                Paging { first: offset + 1, last: end, total }
            } else {
                Paging { first: 0, last: 0, total }
            },
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// The admin's view: summary per type, warnings, then the online-licenses table.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seatgate license report, generated {}", self.generated_at);
        if let Some(name) = &self.licensee.name {
            let _ = writeln!(out, "Licensee: {name}");
        }
        if let (Some(until), Some(left)) = (&self.licensee.support_until, self.licensee.support_days_left) {
            let when =
                if left >= 0 { format!("{left} days left") } else { format!("ended {} days ago", -left) };
            let _ = writeln!(out, "Support until: {until} ({when})");
        }
        let _ = writeln!(out, "Config: {} (backend: {})", self.config, self.backend);

        let _ = writeln!(out, "\nLicenses");
        let name_w = self.licenses.iter().map(|l| l.name.len()).max().unwrap_or(0).max(4);
        let ratio: Vec<String> = self.licenses.iter().map(|l| format!("{}/{}", l.used, l.limit)).collect();
        let ratio_w = ratio.iter().map(String::len).max().unwrap_or(0).max(10);
        let _ = writeln!(
            out,
            "  {:<name_w$}  {:>ratio_w$}  {:>6}  {:<7}  {:<10}  description",
            "type", "used/limit", "free", "count", "status"
        );
        for (l, r) in self.licenses.iter().zip(&ratio) {
            let line = format!(
                "  {:<name_w$}  {:>ratio_w$}  {:>6}  {:<7}  {:<10}  {}",
                l.name,
                r,
                l.free,
                l.count,
                l.status,
                l.description.as_deref().unwrap_or("")
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
        let mut header = format!(
            "  {:<20}  {:<user_w$}  {:<ext_w$}  {:>8}",
            "login time (UTC)", "user", "extension", "sessions"
        );
        for l in &self.licenses {
            let _ = write!(header, "  {}", l.name);
        }
        let _ = writeln!(out, "{header}");
        for h in &self.holders {
            let mut row = format!(
                "  {:<20}  {:<user_w$}  {:<ext_w$}  {:>8}",
                h.since.replace('T', " ").trim_end_matches('Z'),
                h.user,
                h.extension.as_deref().unwrap_or("-"),
                h.sessions
            );
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
        out
    }
}
