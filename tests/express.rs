//! The express lane (a quiet login or logout of one plain type, served by the memory
//! backend without the general path's machinery) must be invisible: an engine nobody
//! listens to (which takes the lane wherever it can) and one with a listener (which
//! never does) are driven through the same random calls, on one clock, and must give
//! the same answer to every call and the same counts, holders and lingering seats
//! after each.

use std::sync::Arc;
use std::time::Duration;

use seatgate::clock::ManualClock;
use seatgate::{Config, Engine, Event, Page, ReleaseWhy, Request, SeatId};

/// Plain types (`desk` per user, `chat` per session) next to every feature the lane
/// leaves to the general path: a linger window, a lease, `requires`, a bundle, a
/// reservation and a cap, and a limit that changes at run time.
const CONFIG: &str = r#"
[licenses.desk]
limit = 3
[licenses.chat]
limit = 3
count = "session"
[licenses.crm]
limit = 2
linger = "20s"
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

#[test]
fn quiet_calls_on_the_express_lane_match_the_general_path_call_for_call() {
    for seed in 1..=25u64 {
        let clock = Arc::new(ManualClock::at_unix(1_790_000_000));
        let open = || {
            Engine::new(Config::from_toml_str(CONFIG, "express.toml").expect("valid config"))
                .expect("engine opens")
                .with_clock(clock.clone())
        };
        let (quiet, heard) = (open(), open());
        heard.set_event_sink(Some(Arc::new(|_: &Event| {})));
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        // Handles of both engines, pair by pair, including released ones.
        let mut handles: Vec<(SeatId, SeatId)> = Vec::new();
        for step in 0..600 {
            let at = format!("seed {seed} step {step}");
            let (a, b) = match rng.below(20) {
                0..=8 => {
                    let (user, profiles) = (rng.pick(&USERS), rng.pick(&PROFILES));
                    let labelled = rng.below(8) == 0;
                    let req = |r: Request<'static>| if labelled { r.extension("2001") } else { r };
                    let (a, b) = (
                        quiet.try_acquire(&req(Request::new(user, profiles))),
                        heard.try_acquire(&req(Request::new(user, profiles))),
                    );
                    if let (Ok(x), Ok(y)) = (&a, &b) {
                        handles.push((*x, *y));
                    }
                    (outcome(&a, None), outcome(&b, None))
                }
                9..=15 if !handles.is_empty() => {
                    let (x, y) = handles[rng.below(handles.len() as u64) as usize];
                    (outcome(&quiet.release(x), Some(x)), outcome(&heard.release(y), Some(y)))
                }
                16 => {
                    let user = rng.pick(&USERS);
                    let why = if rng.below(2) == 0 { ReleaseWhy::Normal } else { ReleaseWhy::Admin };
                    (
                        outcome(&quiet.release_user(user, why), None),
                        outcome(&heard.release_user(user, why), None),
                    )
                }
                17 => {
                    let limit = Some(rng.below(4) as u32);
                    let license = rng.pick(&["desk", "chat"]);
                    (
                        outcome(&quiet.set_limit(None, license, limit), None),
                        outcome(&heard.set_limit(None, license, limit), None),
                    )
                }
                _ => {
                    clock.advance(Duration::from_secs(rng.below(15)));
                    (format!("{}", quiet.reap()), format!("{}", heard.reap()))
                }
            };
            assert_eq!(a, b, "{at}: the answers differ");
            assert_eq!(state(&quiet), state(&heard), "{at}: the tables differ");
        }
    }
}
