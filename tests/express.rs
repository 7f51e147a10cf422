//! The express lane (a login or logout of plain types, served by the memory backend
//! without the general path's machinery) must be invisible. Six engines are driven
//! through the same random calls, on one clock, and must give the same answer to every
//! call and the same counts, holders and lingering seats after each: one on a memory
//! table without the lane (`GeneralPath`, which declines every express call), whose
//! listener hears every event and which writes an audit log, and four that take the lane wherever they can: nobody
//! listening, a listener of every login and alert (which must hear exactly those
//! of the general path's events), of alerts only (`EventMask::ALERTS`) and of alerts and
//! thresholds (each must hear exactly those of the general path's events). A sixth
//! takes the lane with an audit log and nobody listening: its log must hold the
//! reference's audit lines, line for line.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seatgate::backend::memory::MemoryBackend;
use seatgate::backend::{Backend, Changes, HeldSeat, LingeringSeat, SeatRequest, TypeStats};
use seatgate::clock::{ManualClock, Mono, Now};
use seatgate::events::EventSink;
use seatgate::{Config, Engine, Error, Event, EventMask, Page, ReleaseWhy, Request, SeatId};

/// The memory table with no express lane: every call takes the general path (the
/// trait's express methods decline by default).
struct GeneralPath(MemoryBackend);

impl Backend for GeneralPath {
    fn kind(&self) -> &'static str {
        self.0.kind()
    }
    fn try_acquire(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        self.0.try_acquire(config, req, changes)
    }
    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        self.0.release(config, seat, why, now, changes)
    }
    fn release_user(
        &self,
        config: &Config,
        user: &str,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        self.0.release_user(config, user, why, now, changes)
    }
    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error> {
        self.0.touch(config, seat, now, changes)
    }
    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        self.0.touch_user(config, user, now, changes)
    }
    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        self.0.reap(config, now, changes)
    }
    fn used(&self, config: &Config, slot: usize) -> u32 {
        self.0.used(config, slot)
    }
    fn stats(&self, config: &Config, slot: usize) -> TypeStats {
        self.0.stats(config, slot)
    }
    fn count_denial(&self, config: &Config, slot: usize) {
        self.0.count_denial(config, slot)
    }
    fn reset_peaks(&self, config: &Config) {
        self.0.reset_peaks(config)
    }
    fn holders(&self, config: &Config) -> Vec<HeldSeat> {
        self.0.holders(config)
    }
    fn lingering(&self, config: &Config) -> Vec<LingeringSeat> {
        self.0.lingering(config)
    }
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        seatgate::backend::check_tenant_name(tenant)?;
        Ok(Box::new(GeneralPath(MemoryBackend::new())))
    }
}

/// Plain types (`desk` per user, `chat` per session) next to every feature the lane
/// leaves to the general path: a linger window, a lease, `requires`, a bundle, a
/// reservation and a cap, and a limit that changes at run time.
const CONFIG: &str = r#"
[licenses.desk]
limit = 3
alert_at = 60
[licenses.chat]
limit = 3
count = "session"
alert_at = 50
[licenses.crm]
limit = 2
linger = "20s"
alert_at = 50
[licenses.extension]
limit = 3
lease = "30s"
[licenses.mail]
limit = 3
requires = ["desk"]
[licenses.queue]
limit = 3
[profiles.agent]
consumes = ["desk"]
[profiles.operator]
consumes = ["desk", "chat"]
[profiles.support]
consumes = ["queue"]
reserve = { queue = 1 }
[profiles.sales]
consumes = ["queue"]
cap = { queue = 1 }
"#;

const USERS: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
const PROFILES: [&str; 13] = [
    "desk",
    "agent",
    "chat",
    "crm",
    "extension",
    "mail",
    "operator",
    "support",
    "sales",
    "queue",
    "desk,chat",
    "nope",
    "agent",
];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

/// What both engines must agree on, seat ids aside (each engine numbers its own).
fn state(e: &Engine) -> String {
    let report = e.report(Page::ALL);
    let mut out = format!("{:?}\n", e.usage());
    for h in &report.holders {
        out += &format!(
            "{} {:?} x{} since {} ext {:?} lease {:?}\n",
            h.user, h.licenses, h.sessions, h.since, h.extension, h.lease_left_seconds
        );
    }
    for l in &report.lingering {
        out += &format!("lingering {} {} {}\n", l.user, l.license, l.ends_in_seconds);
    }
    out
}

/// A call's answer, with the handle it was about (`seat`, numbered by its engine) as
/// "<seat>".
fn outcome<T>(r: &Result<T, seatgate::Error>, seat: Option<SeatId>) -> String {
    match (r, seat) {
        (Ok(_), _) => "ok".into(),
        (Err(e), Some(seat)) => format!("error: {e}").replace(&seat.to_string(), "<seat>"),
        (Err(e), None) => format!("error: {e}"),
    }
}

/// An event as two engines must agree on it: everything but its seat id (each engine
/// numbers its own), its detail (which names the seat) and its time.
fn summary(e: &Event) -> String {
    format!(
        "{:?} why {:?} denial {:?} {:?} user {:?} used {} limit {} at {}% requires {:?} tenant {:?}",
        e.kind,
        e.why,
        e.denial,
        e.license,
        e.user,
        e.used,
        e.limit,
        e.threshold_percent,
        e.requires,
        e.tenant
    )
}

/// A fresh directory for one seed's audit logs.
fn audit_dir(seed: u64) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seatgate-{}-express-audit-{seed}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// An audit log's lines, with each seat id (numbered by the engine at `column` of
/// `handles`) written as "login <n>": the number of the login that took it.
fn audit_lines(path: &std::path::Path, handles: &[[SeatId; 6]], column: usize) -> Vec<String> {
    let login: std::collections::HashMap<SeatId, usize> =
        handles.iter().enumerate().map(|(n, h)| (h[column], n)).collect();
    std::fs::read_to_string(path)
        .expect("audit log written")
        .lines()
        .map(|line| {
            let mut v: serde_json::Value = serde_json::from_str(line).expect("one JSON object a line");
            if let Some(seat) = v.get("seat").and_then(serde_json::Value::as_u64) {
                let n = login.get(&seat).unwrap_or_else(|| panic!("seat {seat} was no login's: {line}"));
                v["seat"] = format!("login {n}").into();
            }
            v.to_string()
        })
        .collect()
}

/// A listener that keeps every event it hears.
fn recorder() -> (Arc<Mutex<Vec<Event<'static>>>>, EventSink) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let keep = heard.clone();
    (heard, Arc::new(move |e: &Event| keep.lock().unwrap().push(e.clone().into_owned())))
}

/// Six engines go through the same random calls: one on the memory table without
/// the express lane, whose listener hears every event and which writes an audit log
/// (the reference), and five that take the lane wherever they can: nobody listening, a
/// listener of every login and alert, of [`EventMask::ALERTS`], of alerts and
/// thresholds, and an audit log with nobody listening. All six give the same answers
/// and tables; each listener hears exactly the reference's events that its mask keeps,
/// and the two audit logs hold the same lines (seat ids aside).
#[test]
fn calls_on_the_express_lane_match_the_general_path_call_for_call() {
    // What the masked listeners heard over every seed: the calls must reach each kind.
    let mut kinds_heard = std::collections::BTreeSet::new();
    let mut thresholds_heard = std::collections::BTreeSet::new();
    let with_thresholds = EventMask::ALERTS.union(EventMask::THRESHOLDS);
    let logins_and_alerts = EventMask::ALERTS.union(EventMask::EVERY_LOGIN);
    for seed in 1..=25u64 {
        let clock = Arc::new(ManualClock::at_unix(1_790_000_000));
        let open = || {
            Engine::new(Config::from_toml_str(CONFIG, "express.toml").expect("valid config"))
                .expect("engine opens")
                .with_clock(clock.clone())
        };
        // The reference and the sixth engine write audit logs, to be compared.
        let logs = audit_dir(seed);
        let with_audit = |log: &str| {
            let path = logs.join(log);
            Config::from_toml_str(
                &format!("{CONFIG}\n[audit]\npath = {:?}\n", path.display().to_string()),
                "express.toml",
            )
            .expect("valid config")
        };
        let general =
            Engine::with_backend(with_audit("general.jsonl"), Box::new(GeneralPath(MemoryBackend::new())))
                .expect("engine opens")
                .with_clock(clock.clone());
        let (every_event, sink) = recorder();
        general.set_event_sink(Some(sink));
        let (quiet, heard, alerted, counted) = (open(), open(), open(), open());
        // Every login and every alert, but no threshold (that is the fourth's): the
        // lane must publish what it did because logins are heard, not for thresholds.
        let (heard_on_the_lane, sink) = recorder();
        heard.set_event_mask(logins_and_alerts);
        heard.set_event_sink(Some(sink));
        let (alerts, sink) = recorder();
        alerted.set_event_mask(EventMask::ALERTS);
        alerted.set_event_sink(Some(sink));
        let (alerts_and_thresholds, sink) = recorder();
        counted.set_event_mask(with_thresholds);
        counted.set_event_sink(Some(sink));
        let audited = Engine::new(with_audit("lane.jsonl")).expect("engine opens").with_clock(clock.clone());
        let engines = [&general, &quiet, &heard, &alerted, &counted, &audited];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        // Handles of the engines, one per engine for each login, including released ones.
        let mut handles: Vec<[SeatId; 6]> = Vec::new();
        for step in 0..600 {
            let at = format!("seed {seed} step {step}");
            let answers: Vec<String> = match rng.below(20) {
                0..=8 => {
                    let (user, profiles) = (rng.pick(&USERS), rng.pick(&PROFILES));
                    let labelled = rng.below(8) == 0;
                    let req = || {
                        let r = Request::new(user, profiles);
                        if labelled { r.extension("2001") } else { r }
                    };
                    let results: Vec<_> = engines.iter().map(|e| e.try_acquire(&req())).collect();
                    if let [Ok(u), Ok(v), Ok(w), Ok(x), Ok(y), Ok(z)] = results[..] {
                        handles.push([u, v, w, x, y, z]);
                    }
                    results.iter().map(|r| outcome(r, None)).collect()
                }
                9..=15 if !handles.is_empty() => {
                    let seats = handles[rng.below(handles.len() as u64) as usize];
                    engines.iter().zip(seats).map(|(e, seat)| outcome(&e.release(seat), Some(seat))).collect()
                }
                16 => {
                    let user = rng.pick(&USERS);
                    let why = if rng.below(2) == 0 { ReleaseWhy::Normal } else { ReleaseWhy::Admin };
                    engines.iter().map(|e| outcome(&e.release_user(user, why), None)).collect()
                }
                17 => {
                    let limit = Some(rng.below(4) as u32);
                    let license = rng.pick(&["desk", "chat"]);
                    engines.iter().map(|e| outcome(&e.set_limit(None, license, limit), None)).collect()
                }
                _ => {
                    clock.advance(Duration::from_secs(rng.below(15)));
                    engines.iter().map(|e| format!("{}", e.reap())).collect()
                }
            };
            assert!(answers.iter().all(|a| *a == answers[0]), "{at}: the answers differ: {answers:?}");
            let table = state(&general);
            assert_eq!(table, state(&quiet), "{at}: the tables differ (general path, quiet)");
            assert_eq!(table, state(&heard), "{at}: the tables differ (general path, logins heard)");
            assert_eq!(table, state(&alerted), "{at}: the tables differ (general path, alerts heard)");
            assert_eq!(
                table,
                state(&counted),
                "{at}: the tables differ (general path, alerts and thresholds heard)"
            );
            assert_eq!(table, state(&audited), "{at}: the tables differ (general path, audited)");
            let every_event = std::mem::take(&mut *every_event.lock().unwrap());
            let kept = |mask: EventMask| -> Vec<String> {
                every_event.iter().filter(|e| mask.hears_event(e)).map(summary).collect()
            };
            let got: Vec<String> =
                std::mem::take(&mut *heard_on_the_lane.lock().unwrap()).iter().map(summary).collect();
            assert_eq!(got, kept(logins_and_alerts), "{at}: the listener of logins heard other events");
            let got = std::mem::take(&mut *alerts.lock().unwrap());
            kinds_heard.extend(got.iter().map(|e| format!("{:?} {:?}", e.kind, e.why)));
            let got: Vec<String> = got.iter().map(summary).collect();
            assert_eq!(
                got,
                kept(EventMask::ALERTS),
                "{at}: the alerts listener heard other events than the mask keeps"
            );
            let got = std::mem::take(&mut *alerts_and_thresholds.lock().unwrap());
            thresholds_heard.extend(got.iter().map(|e| format!("{:?}", e.kind)));
            let got: Vec<String> = got.iter().map(summary).collect();
            assert_eq!(
                got,
                kept(with_thresholds),
                "{at}: the alerts-and-thresholds listener heard other events than the mask keeps"
            );
        }
        // The audit logs, each engine's seat ids written as the login's number.
        general.flush_audit();
        audited.flush_audit();
        let reference = audit_lines(&logs.join("general.jsonl"), &handles, 0);
        let lane = audit_lines(&logs.join("lane.jsonl"), &handles, 5);
        for event in ["\"OUT\"", "\"IN\"", "\"DENY\""] {
            assert!(
                reference.iter().any(|l| l.contains(&format!("\"event\":{event}"))),
                "seed {seed}: no {event} line in the reference's audit log"
            );
        }
        assert_eq!(lane.len(), reference.len(), "seed {seed}: the audit logs differ in length");
        for (i, (got, want)) in lane.iter().zip(&reference).enumerate() {
            assert_eq!(got, want, "seed {seed}: audit line {i} differs (lane, general path)");
        }
        let _ = std::fs::remove_dir_all(&logs);
    }
    for kind in [
        "Denied None",
        "LimitChanged None",
        "Released Some(Expired)",
        "Released Some(Admin)",
        "Released Some(Dependency)",
    ] {
        assert!(kinds_heard.contains(kind), "no '{kind}' event reached the alerts listener: {kinds_heard:?}");
    }
    assert!(
        !kinds_heard
            .iter()
            .any(|k| k.starts_with("Acquired") || k.contains("Normal") || k.starts_with("Threshold")),
        "the alerts listener heard a login, a logout or a threshold: {kinds_heard:?}"
    );
    for kind in ["ThresholdUp", "ThresholdDown"] {
        assert!(
            thresholds_heard.contains(kind),
            "no {kind} event reached the thresholds listener: {thresholds_heard:?}"
        );
    }
}
