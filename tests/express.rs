//! The express lane (a quiet login or logout of one plain type, served by the memory
//! backend without the general path's machinery) must be invisible: an engine nobody
//! listens to (which takes the lane wherever it can) and one with a listener (which
//! never does) are driven through the same random calls, on one clock, and must give
//! the same answer to every call and the same counts, holders and lingering seats
//! after each. A third engine whose listener hears only alerts (`EventMask::ALERTS`)
//! stays quiet too, and must hear exactly the alerts among the second's events; a
//! fourth hears alerts and thresholds (express lane with exact counts) and must hear
//! exactly those.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seatgate::clock::ManualClock;
use seatgate::events::EventSink;
use seatgate::{Config, Engine, Event, EventMask, Page, ReleaseWhy, Request, SeatId};

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

/// A listener that keeps every event it hears.
fn recorder() -> (Arc<Mutex<Vec<Event>>>, EventSink) {
    let heard = Arc::new(Mutex::new(Vec::new()));
    let keep = heard.clone();
    (heard, Arc::new(move |e: &Event| keep.lock().unwrap().push(e.clone())))
}

/// Four engines go through the same random calls: one nobody listens to (it takes
/// the express lane and the lanes wherever it can), one whose listener hears every
/// event (it never does), one whose listener hears only [`EventMask::ALERTS`] (quiet,
/// like the first), and one that hears alerts and thresholds (the express lane with
/// exact counts, no thread lanes). All four give the same answers and tables; each
/// masked listener hears exactly the second's events that its mask keeps.
#[test]
fn quiet_calls_on_the_express_lane_match_the_general_path_call_for_call() {
    // What the masked listeners heard over every seed: the calls must reach each kind.
    let mut kinds_heard = std::collections::BTreeSet::new();
    let mut thresholds_heard = std::collections::BTreeSet::new();
    let with_thresholds = EventMask::ALERTS.union(EventMask::THRESHOLDS);
    for seed in 1..=25u64 {
        let clock = Arc::new(ManualClock::at_unix(1_790_000_000));
        let open = || {
            Engine::new(Config::from_toml_str(CONFIG, "express.toml").expect("valid config"))
                .expect("engine opens")
                .with_clock(clock.clone())
        };
        let (quiet, heard, alerted, counted) = (open(), open(), open(), open());
        let (every_event, sink) = recorder();
        heard.set_event_sink(Some(sink));
        let (alerts, sink) = recorder();
        alerted.set_event_mask(EventMask::ALERTS);
        alerted.set_event_sink(Some(sink));
        let (alerts_and_thresholds, sink) = recorder();
        counted.set_event_mask(with_thresholds);
        counted.set_event_sink(Some(sink));
        let engines = [&quiet, &heard, &alerted, &counted];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        // Handles of the engines, one per engine for each login, including released ones.
        let mut handles: Vec<[SeatId; 4]> = Vec::new();
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
                    if let [Ok(w), Ok(x), Ok(y), Ok(z)] = results[..] {
                        handles.push([w, x, y, z]);
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
            let table = state(&quiet);
            assert_eq!(table, state(&heard), "{at}: the tables differ (quiet, every event heard)");
            assert_eq!(table, state(&alerted), "{at}: the tables differ (quiet, alerts heard)");
            assert_eq!(
                table,
                state(&counted),
                "{at}: the tables differ (quiet, alerts and thresholds heard)"
            );
            let every_event = std::mem::take(&mut *every_event.lock().unwrap());
            let kept = |mask: EventMask| -> Vec<String> {
                every_event.iter().filter(|e| mask.hears_event(e)).map(summary).collect()
            };
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
