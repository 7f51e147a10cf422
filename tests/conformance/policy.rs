// Entitlement policy on every backend, with an injected clock: emergency seats and
// their one-shot rule (across reload and restart), expiry in both modes, early
// warnings, reservations and caps, tenants and run-time limits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seatgate::clock::ManualClock;
use seatgate::{Config, DenialReason, Engine, Error, Event, EventKind, Page, ReleaseWhy, Request};

/// 2026-11-23 12:00 UTC.
const NOW: u64 = 1_795_435_200;

/// A test's own folder for state files and licenses, removed when the test ends.
struct StateDir(PathBuf);

impl std::ops::Deref for StateDir {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn state_dir(name: &str) -> StateDir {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "seatgate-policy-{}-{name}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    StateDir(dir)
}

fn open(text: &str, clock: &Arc<ManualClock>) -> Engine {
    Engine::with_backend(Config::from_toml_str(text, "policy.toml").expect("valid config"), new_backend())
        .expect("engine opens")
        .with_clock(clock.clone())
}

fn record(e: &Engine) -> Arc<Mutex<Vec<Event<'static>>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    e.set_event_sink(Some(Arc::new(move |ev: &Event| sink.lock().unwrap().push(ev.clone().into_owned()))));
    log
}

fn of_kind(log: &Mutex<Vec<Event<'static>>>, kind: EventKind) -> Vec<Event<'static>> {
    log.lock().unwrap().iter().filter(|e| e.kind == kind).cloned().collect()
}

fn used(e: &Engine, t: &str) -> (u32, u32) {
    let u = e.usage_of(t).unwrap();
    (u.used, u.limit)
}

fn emergency_config(dir: &std::path::Path, limit: u32) -> String {
    format!(
        r#"
state_dir = "{}"
[licenses.users]
limit = {limit}
[licenses.callcenter]
limit = 10
[profiles.agent]
consumes = ["users", "callcenter"]
[profiles.viewer]
consumes = ["users"]
[emergency]
seats = 2
duration = "1h"
"#,
        dir.display()
    )
}

#[test]
fn emergency_seats_open_at_once_and_close_newest_first() {
    let dir = state_dir("open");
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&emergency_config(&dir, 2), &clock);
    let log = record(&e);
    e.try_acquire(&Request::new("a", "agent")).unwrap();
    clock.advance(Duration::from_secs(1));
    e.try_acquire(&Request::new("b", "agent")).unwrap();
    assert!(matches!(e.try_acquire(&Request::new("c", "agent")), Err(Error::LimitReached(_))));

    let status = e.emergency_activate().unwrap();
    assert_eq!(status.state, "open");
    assert_eq!(status.seats, 2);
    assert_eq!(status.types, vec!["users".to_string()], "default: the types counted per user");
    assert_eq!(used(&e, "users"), (2, 4), "the extra seats are usable at once");
    assert_eq!(of_kind(&log, EventKind::EmergencyStarted).len(), 1);
    clock.advance(Duration::from_secs(1));
    let c = e.try_acquire(&Request::new("c", "agent")).unwrap();
    clock.advance(Duration::from_secs(1));
    let d = e.try_acquire(&Request::new("d", "agent")).unwrap();
    assert!(matches!(e.try_acquire(&Request::new("e", "agent")), Err(Error::LimitReached(_))));
    let report = e.report(Page::ALL);
    let text = report.to_text();
    assert!(text.contains("Emergency: open"), "{text}");
    assert_eq!(report.emergency.as_ref().unwrap().in_use, 2, "{text}");
    assert!(report.licenses[0].limit_source.contains("+2 emergency"), "{:?}", report.licenses[0]);
    match e.emergency_activate() {
        Err(Error::Emergency(m)) => assert!(m.contains("already open"), "{m}"),
        other => panic!("a second window while one is open: {other:?}"),
    }

    // The window ends: the two newest holders go, newest first; a and b stay.
    clock.advance(Duration::from_secs(3600));
    e.reap();
    assert_eq!(used(&e, "users"), (2, 2));
    let released: Vec<(u64, ReleaseWhy)> = of_kind(&log, EventKind::Released)
        .iter()
        .filter(|ev| ev.license.as_deref() == Some("users"))
        .map(|ev| (ev.seat, ev.why.unwrap()))
        .collect();
    assert_eq!(released, vec![(d, ReleaseWhy::EmergencyExpired), (c, ReleaseWhy::EmergencyExpired)]);
    assert_eq!(of_kind(&log, EventKind::EmergencyEnded).len(), 1);
    assert!(matches!(e.release(d), Err(Error::SeatReleased(_, ReleaseWhy::EmergencyExpired))));
    assert_eq!(used(&e, "callcenter").0, 2, "the evicted handles gave back their other types too");
    assert!(matches!(e.try_acquire(&Request::new("c", "agent")), Err(Error::LimitReached(_))));
}

#[test]
fn emergency_is_one_shot_until_the_permanent_limit_grows_also_across_restarts() {
    let dir = state_dir("oneshot");
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&emergency_config(&dir, 2), &clock);
    e.emergency_activate().unwrap();
    clock.advance(Duration::from_secs(2 * 3600));
    e.reap();
    match e.emergency_activate() {
        Err(Error::Emergency(m)) => assert!(m.contains("already used") && m.contains("users"), "{m}"),
        other => panic!("a used window opened again: {other:?}"),
    }
    // A restart does not forget it: the state file keeps it.
    drop(e);
    let e = open(&emergency_config(&dir, 2), &clock);
    assert!(matches!(e.emergency_activate(), Err(Error::Emergency(_))));
    let status = e.emergency_status().unwrap();
    assert!(!status.can_activate && status.state == "ended", "{status:?}");
    // A reload with the same limit changes nothing; a higher permanent limit allows
    // one more window.
    e.reload_str(&emergency_config(&dir, 2), "policy.toml").unwrap();
    assert!(matches!(e.emergency_activate(), Err(Error::Emergency(_))));
    e.reload_str(&emergency_config(&dir, 3), "policy.toml").unwrap();
    assert_eq!(e.emergency_status().unwrap().state, "available again");
    e.emergency_activate().unwrap();
    assert_eq!(used(&e, "users").1, 5);
    // ... and only one.
    clock.advance(Duration::from_secs(2 * 3600));
    e.reap();
    assert!(matches!(e.emergency_activate(), Err(Error::Emergency(_))));
}

#[test]
fn an_open_window_survives_a_restart_and_a_corrupt_state_file_is_refused() {
    let dir = state_dir("restart");
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&emergency_config(&dir, 2), &clock);
    e.emergency_activate().unwrap();
    drop(e);
    let e = open(&emergency_config(&dir, 2), &clock);
    assert_eq!(used(&e, "users").1, 4, "the open window is in force from the first call after a restart");
    drop(e);
    let path = dir.join(seatgate::policy::STATE_FILE);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("\"seats\": 2", "\"seats\": 9")).unwrap();
    match Engine::with_backend(
        Config::from_toml_str(&emergency_config(&dir, 2), "policy.toml").unwrap(),
        new_backend(),
    ) {
        Err(Error::State(m)) => assert!(m.contains("corrupt") && m.contains(&path.display().to_string()), "{m}"),
        other => panic!("an edited state file was accepted: {other:?}"),
    }
    // Config errors: an emergency needs a state_dir.
    let err = Config::from_toml_str("[licenses.users]\nlimit = 1\n[emergency]\nseats = 1\n", "x.toml").unwrap_err();
    assert!(err.message.contains("state_dir"), "{err}");
}

#[test]
fn expiry_deny_new_keeps_holders_and_refuses_new_logins() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(
        "[licenses.users]\nlimit = 5\n[licenses.chat]\nlimit = 5\nvalid_until = \"2026-11-30\"\n",
        &clock,
    );
    let log = record(&e);
    let held = e.try_acquire(&Request::new("a", "chat")).unwrap();
    clock.advance(Duration::from_secs(8 * 86_400)); // 2026-12-01
    match e.try_acquire(&Request::new("b", "users,chat")) {
        Err(Error::Expired { license: Some(t), date }) => {
            assert_eq!((&*t, date.to_string().as_str()), ("chat", "2026-11-30"))
        }
        other => panic!("an expired type took a login: {other:?}"),
    }
    assert_eq!(used(&e, "users").0, 0, "nothing was taken");
    assert_eq!(used(&e, "chat").0, 1, "the holder keeps the seat");
    e.try_acquire(&Request::new("b", "users")).unwrap();
    assert_eq!(of_kind(&log, EventKind::Expired).len(), 1);
    let denied = of_kind(&log, EventKind::Denied);
    assert_eq!(denied.len(), 1, "an expired refusal is heard like any other");
    assert_eq!((denied[0].license.as_deref(), denied[0].denial), (Some("chat"), Some(DenialReason::Expired)));
    assert_eq!(e.usage_of("chat").unwrap().stats.denied, 1);
    let report = e.report(Page::ALL);
    assert!(report.licenses[1].expired, "{:?}", report.licenses[1]);
    assert!(report.to_text().contains("EXPIRED 2026-11-30"), "{}", report.to_text());
    e.release(held).unwrap();
}

#[test]
fn expiry_revoke_releases_holders_and_the_whole_license_can_end() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(
        "[licensee]\nvalid_until = \"2027-01-31\"\n[licenses.users]\nlimit = 5\n[licenses.chat]\nlimit = 5\nvalid_until = \"2026-11-30\"\non_expiry = \"revoke\"\n",
        &clock,
    );
    let log = record(&e);
    let a = e.try_acquire(&Request::new("a", "users,chat")).unwrap();
    e.try_acquire(&Request::new("b", "chat")).unwrap();
    clock.advance(Duration::from_secs(8 * 86_400));
    e.reap();
    assert_eq!(used(&e, "chat").0, 0, "revoke releases every holder");
    assert_eq!(used(&e, "users").0, 0, "with the rest of their handle");
    let whys: Vec<ReleaseWhy> = of_kind(&log, EventKind::Released).iter().map(|ev| ev.why.unwrap()).collect();
    assert!(!whys.is_empty() && whys.iter().all(|w| *w == ReleaseWhy::LicenseExpired), "{whys:?}");
    assert!(matches!(e.release(a), Err(Error::SeatReleased(_, ReleaseWhy::LicenseExpired))));
    // The whole license ends on 2027-01-31: every type refuses after it.
    e.try_acquire(&Request::new("c", "users")).unwrap();
    clock.advance(Duration::from_secs(62 * 86_400));
    match e.try_acquire(&Request::new("d", "users")) {
        Err(Error::Expired { license: None, date }) => assert_eq!(date.to_string(), "2027-01-31"),
        other => panic!("{other:?}"),
    }
    assert_eq!(used(&e, "users").0, 1, "deny_new (the default) keeps the holder");
}

#[test]
fn early_warnings_come_once_as_events_and_stay_in_the_report() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(
        "[licensee]\nsupport_until = \"2027-01-31\"\nwarn_before = \"14d\"\n[licenses.users]\nlimit = 5\nvalid_until = \"2026-12-31\"\n",
        &clock,
    );
    let log = record(&e);
    e.reap();
    assert!(of_kind(&log, EventKind::Warning).is_empty(), "38 days before: no warning yet");
    clock.advance(Duration::from_secs(25 * 86_400)); // 2026-12-18: 13 days left
    e.reap();
    e.reap();
    let warnings = of_kind(&log, EventKind::Warning);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].detail().contains("'users' ends on 2026-12-31, in 13 days"), "{}", warnings[0].detail());
    assert!(e.report(Page::ALL).warnings.iter().any(|w| w.contains("ends on 2026-12-31")));
    // Support ends later: a warning, nothing blocked.
    clock.advance(Duration::from_secs(60 * 86_400));
    e.reap();
    let text = e.report(Page::ALL).to_text();
    assert!(text.contains("support ended on 2027-01-31"), "{text}");
}

const TEAMS: &str = r#"
[licenses.users]
limit = 10
[licenses.callcenter]
limit = 3
[profiles.support]
consumes = ["users", "callcenter"]
reserve = { callcenter = 2 }
[profiles.sales]
consumes = ["users", "callcenter"]
cap = { callcenter = 2 }
[profiles.backoffice]
consumes = ["users", "callcenter"]
"#;

#[test]
fn reserved_seats_are_only_for_members_and_the_refusal_says_so() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(TEAMS, &clock);
    e.try_acquire(&Request::new("b1", "backoffice")).unwrap();
    match e.try_acquire(&Request::new("b2", "backoffice")) {
        Err(Error::LimitReached(d)) => {
            assert_eq!((d.reason, &*d.license, d.profile.as_deref()), (DenialReason::Reserved, "callcenter", Some("support")));
            assert!(d.to_string().contains("reserved for profile 'support'"), "{d}");
        }
        other => panic!("a non-member took a reserved seat: {other:?}"),
    }
    assert_eq!(used(&e, "users").0, 1, "all or nothing");
    e.try_acquire(&Request::new("s1", "support")).unwrap();
    e.try_acquire(&Request::new("s2", "support")).unwrap();
    assert_eq!(used(&e, "callcenter"), (3, 3));
    assert!(matches!(e.try_acquire(&Request::new("s3", "support")), Err(Error::LimitReached(_))));
    let report = e.report(Page::ALL);
    let pools = &report.licenses[1].pools;
    assert!(pools.iter().any(|p| p.kind == "reserved" && p.profile == "support" && p.used == 2 && p.seats == 2), "{pools:?}");
    assert!(report.to_text().contains("reserved for support: 2/2"), "{}", report.to_text());
    assert!(!report.to_text().contains('~'), "hidden pools never show by name");
}

#[test]
fn a_member_beyond_the_reservation_shares_the_rest() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(TEAMS, &clock);
    for u in ["s1", "s2", "s3"] {
        e.try_acquire(&Request::new(u, "support")).unwrap();
    }
    assert_eq!(used(&e, "callcenter"), (3, 3));
    match e.try_acquire(&Request::new("x", "sales")) {
        Err(Error::LimitReached(d)) => assert_eq!(d.reason, DenialReason::Full, "{d}"),
        other => panic!("{other:?}"),
    }
    // A member's second login takes no second seat of anything.
    e.try_acquire(&Request::new("s1", "support")).unwrap();
    assert_eq!(used(&e, "callcenter").0, 3);
}

#[test]
fn a_capped_profile_is_refused_at_its_cap_and_others_go_on() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let text = TEAMS.replace("reserve = { callcenter = 2 }", "").replace("limit = 3", "limit = 5");
    let e = open(&text, &clock);
    e.try_acquire(&Request::new("a", "sales")).unwrap();
    e.try_acquire(&Request::new("b", "sales")).unwrap();
    match e.try_acquire(&Request::new("c", "sales")) {
        Err(Error::LimitReached(d)) => {
            assert_eq!((d.reason, d.used, d.limit), (DenialReason::Capped, 2, 2));
            assert!(d.to_string().contains("profile 'sales' is capped at 2 'callcenter' seats"), "{d}");
        }
        other => panic!("{other:?}"),
    }
    e.try_acquire(&Request::new("c", "support")).unwrap();
    assert_eq!(used(&e, "callcenter"), (3, 5));
    assert!(e.report(Page::ALL).to_text().contains("sales capped: 2/2"));
}

#[test]
fn reservations_and_caps_hold_under_contention() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let text = TEAMS.replace("limit = 3", "limit = 6").replace("cap = { callcenter = 2 }", "cap = { callcenter = 3 }");
    let e = Arc::new(open(&text, &clock));
    // Shadow counts of holders of callcenter per profile, checked at every success.
    let shadow: Arc<[AtomicU32; 3]> = Arc::new([AtomicU32::new(0), AtomicU32::new(0), AtomicU32::new(0)]);
    let max_seen = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let profiles = ["support", "sales", "backoffice"];
    // Two non-members hold seats throughout, so even threads that happen to run one
    // after another reach the rules: the unreserved seats run out at 4.
    let resident: Vec<u64> = (0..2)
        .map(|i| e.try_acquire(&Request::new(&format!("resident-{i}"), "backoffice")).unwrap())
        .collect();
    shadow[2].store(2, Ordering::SeqCst);
    // Rounds until the threads really overlapped (a loaded machine can run them one
    // after another); the invariants are checked at every success of every round.
    for _round in 0..10 {
        let start = Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|t| {
                let (e, shadow, max_seen) = (e.clone(), shadow.clone(), max_seen.clone());
                let (refused, start) = (refused.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    // Each thread holds up to two logins at a time, so the pools fill.
                    let mut held: std::collections::VecDeque<(usize, u64)> = Default::default();
                    for i in 0..400 {
                        let p = (t + i) % 3;
                        let user = format!("u{t}-{i}");
                        if let Ok(seat) = e.try_acquire(&Request::new(&user, profiles[p])) {
                            let mine = shadow[p].fetch_add(1, Ordering::SeqCst) + 1;
                            let all: u32 = shadow.iter().map(|s| s.load(Ordering::SeqCst)).sum();
                            assert!(all <= 6, "callcenter over its limit: {all}");
                            if p == 1 {
                                assert!(mine <= 3, "sales over its cap: {mine}");
                            }
                            // Non-members may never hold support's 2 reserved seats.
                            let others = shadow[1].load(Ordering::SeqCst) + shadow[2].load(Ordering::SeqCst);
                            assert!(others <= 4, "non-members hold {others} of the 4 unreserved seats");
                            max_seen.fetch_max(u64::from(all), Ordering::SeqCst);
                            held.push_back((p, seat));
                        } else {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        if held.len() > 2 || (i % 7 == 0 && !held.is_empty()) {
                            let (p, seat) = held.pop_front().unwrap();
                            shadow[p].fetch_sub(1, Ordering::SeqCst);
                            e.release(seat).unwrap();
                        }
                    }
                    for (p, seat) in held {
                        shadow[p].fetch_sub(1, Ordering::SeqCst);
                        e.release(seat).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        if max_seen.load(Ordering::SeqCst) >= 4 && refused.load(Ordering::Relaxed) > 0 {
            break;
        }
    }
    for seat in resident {
        shadow[2].fetch_sub(1, Ordering::SeqCst);
        e.release(seat).unwrap();
    }
    assert!(
        max_seen.load(Ordering::SeqCst) >= 4 && refused.load(Ordering::Relaxed) > 0,
        "the stress reached contention: max {} held, {} refused",
        max_seen.load(Ordering::SeqCst),
        refused.load(Ordering::Relaxed)
    );
    assert_eq!(used(&e, "callcenter").0, 0);
    assert_eq!(used(&e, "users").0, 0);
}

#[test]
fn reservations_beyond_the_limit_are_linted_and_bad_rules_refused() {
    let c = Config::from_toml_str(&TEAMS.replace("reserve = { callcenter = 2 }", "reserve = { callcenter = 4 }"), "t.toml").unwrap();
    assert!(c.lints.iter().any(|l| l.code == "reservations-exceed-limit"), "{:?}", c.lints);
    let err = Config::from_toml_str(&TEAMS.replace("reserve = { callcenter = 2 }", "reserve = { chat = 2 }"), "t.toml").unwrap_err();
    assert!(err.message.contains("unknown license type 'chat'"), "{err}");
    let err = Config::from_toml_str(
        "[licenses.users]\nlimit = 1\n[licenses.crm]\nlimit = 1\n[profiles.p]\nconsumes = [\"users\"]\ncap = { crm = 1 }\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(err.message.contains("does not consume it") || err.message.contains("which it does not consume"), "{err}");
}

const HOSTED: &str = r#"
[licenses.users]
limit = 3
[licenses.callcenter]
limit = 5
[profiles.agent]
consumes = ["users", "callcenter"]
[tenants.acme]
licenses = { users = 1 }
[tenants.globex]
[tenants.initech.profiles.desk]
consumes = ["users"]
"#;

#[test]
fn tenants_have_their_own_pools_and_users() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(HOSTED, &clock);
    let a = e.try_acquire(&Request::new("alice", "agent").tenant("acme")).unwrap();
    e.try_acquire(&Request::new("alice", "agent").tenant("acme")).unwrap();
    match e.try_acquire(&Request::new("bob", "agent").tenant("acme")) {
        Err(Error::LimitReached(d)) => assert_eq!((&*d.license, d.used, d.limit), ("users", 1, 1)),
        other => panic!("{other:?}"),
    }
    // Another tenant, and the default one, are untouched by acme's use.
    e.try_acquire(&Request::new("bob", "agent").tenant("globex")).unwrap();
    e.try_acquire(&Request::new("alice", "agent")).unwrap();
    assert_eq!(used(&e, "users"), (1, 3));
    assert_eq!(e.usage_in(Some("globex"), "users").unwrap().used, 1);
    assert_eq!(e.usage_in(Some("acme"), "users").unwrap().used, 1);
    // Own profiles: "desk" exists only in initech, "agent" not there.
    e.try_acquire(&Request::new("carol", "desk").tenant("initech")).unwrap();
    assert!(matches!(e.try_acquire(&Request::new("carol", "agent").tenant("initech")), Err(Error::UnknownProfile(_))));
    assert!(matches!(e.try_acquire(&Request::new("x", "desk")), Err(Error::UnknownProfile(_))));
    assert!(matches!(e.try_acquire(&Request::new("x", "agent").tenant("nope")), Err(Error::UnknownTenant(_))));
    assert!(matches!(e.try_acquire(&Request::new("x", "agent").tenant("bad name")), Err(Error::InvalidArgument(_))));
    // A seat id finds its tenant: release, touch and errors all work by id alone.
    assert_ne!(a >> 48, 0, "a tenant seat carries its tenant");
    e.touch(a).unwrap();
    e.release(a).unwrap();
    assert!(matches!(e.release(a), Err(Error::UnknownSeat(s)) if s == a));
    let report = e.report(Page::ALL);
    assert_eq!(report.tenants_total, 3);
    assert!(report.tenants.iter().any(|t| t.tenant == "globex" && t.licenses[0] == ("users".into(), 1, 3)), "{:?}", report.tenants);
    let acme = e.report_tenant("acme", Page::ALL).unwrap();
    assert_eq!(acme.tenant.as_deref(), Some("acme"));
    assert_eq!(acme.holders.len(), 1, "alice's second handle");
}

#[test]
fn run_time_limits_apply_at_once_survive_reload_and_show_their_source() {
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(HOSTED, &clock);
    let log = record(&e);
    e.try_acquire(&Request::new("alice", "agent").tenant("acme")).unwrap();
    assert!(e.try_acquire(&Request::new("bob", "agent").tenant("acme")).is_err());
    e.set_limit(Some("acme"), "users", Some(2)).unwrap();
    e.try_acquire(&Request::new("bob", "agent").tenant("acme")).unwrap();
    assert_eq!(of_kind(&log, EventKind::LimitChanged).len(), 1);
    // A tenant the file does not know, set up from the provider's database.
    e.set_limit(Some("hooli"), "users", Some(1)).unwrap();
    e.try_acquire(&Request::new("dan", "agent").tenant("hooli")).unwrap();
    assert!(e.try_acquire(&Request::new("eve", "agent").tenant("hooli")).is_err());
    // The default tenant too.
    e.set_limit(None, "users", Some(7)).unwrap();
    assert_eq!(used(&e, "users").1, 7);
    assert!(matches!(e.set_limit(None, "nope", Some(1)), Err(Error::UnknownLicenseType(_))));
    e.reload_str(&HOSTED.replace("limit = 3", "limit = 4"), "policy.toml").unwrap();
    assert_eq!(used(&e, "users").1, 7, "run-time limits are kept across a reload");
    assert_eq!(e.usage_in(Some("acme"), "users").unwrap().limit, 2);
    assert_eq!(e.usage_in(Some("globex"), "users").unwrap().limit, 4, "file limits follow the reload");
    let row = &e.report(Page::ALL).licenses[0];
    assert!(row.limit_source.starts_with("set at run time 7"), "{row:?}");
    assert!(e.report_tenant("acme", Page::ALL).unwrap().to_text().contains("set at run time 2"));
    e.set_limit(None, "users", None).unwrap();
    assert_eq!(used(&e, "users").1, 4, "back to the file's");
}

/// Six tenants, `t0` to `t5`, whose `users` limit is their number + 1 (`scale` times).
fn six_tenants(scale: u32) -> String {
    let mut text = String::from("[licenses.users]\nlimit = 50\n[profiles.agent]\nconsumes = [\"users\"]\n");
    for t in 0..6 {
        text.push_str(&format!("[tenants.t{t}]\nlicenses = {{ users = {} }}\n", (t + 1) * scale));
    }
    text
}

#[test]
fn tenants_a_thread_keeps_follow_every_change_and_never_mix() {
    // A thread keeps the pools and views of the last four tenants it served; six in
    // turn, three rounds: each tenant still counts only its own seats.
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&six_tenants(1), &clock);
    let tenant_used = |e: &Engine, t: usize| e.usage_in(Some(&format!("t{t}")), "users").unwrap();
    let login = |e: &Engine, user: &str, t: usize| e.try_acquire(&Request::new(user, "agent").tenant(&format!("t{t}")));
    let mut seats = Vec::new();
    for round in 0..3 {
        for t in 0..6 {
            match login(&e, &format!("u{round}"), t) {
                Ok(seat) if round <= t => seats.push(seat),
                Err(Error::LimitReached(d)) if round > t => assert_eq!((d.used, d.limit), (t as u32 + 1, t as u32 + 1)),
                other => panic!("round {round}, t{t}: {other:?}"),
            }
        }
    }
    for t in 0..6 {
        assert_eq!(tenant_used(&e, t).used, (t as u32 + 1).min(3), "t{t}");
    }
    assert_eq!(used(&e, "users").0, 0, "the default pool holds none of theirs");

    // Another engine on this thread, with the same tenant names: its own pools.
    let other = open(&six_tenants(1), &clock);
    let theirs = login(&other, "u0", 5).unwrap();
    assert_eq!((tenant_used(&other, 5).used, tenant_used(&e, 5).used), (1, 3));
    other.release(theirs).unwrap();
    assert_eq!(tenant_used(&e, 5).used, 3, "the other engine's handle freed nothing here");

    // A limit set at run time, and a reload, reach the tenant this thread just used
    // at its next call.
    assert!(login(&e, "late", 0).is_err());
    e.set_limit(Some("t0"), "users", Some(2)).unwrap();
    seats.push(login(&e, "late", 0).unwrap());
    assert!(login(&e, "later", 1).is_err(), "t1 is full at 2");
    e.reload_str(&six_tenants(2), "policy.toml").unwrap();
    seats.push(login(&e, "later", 1).unwrap());
    assert_eq!(tenant_used(&e, 1).limit, 4);

    // A listener that logs somebody into another tenant while a tenant's login is
    // being told (the thread's tenants are in use then): both counted where they belong.
    let inner = Arc::new(Mutex::new(Vec::new()));
    let e = Arc::new(e);
    let (engine, kept) = (Arc::downgrade(&e), inner.clone());
    e.set_event_sink(Some(Arc::new(move |ev: &Event| {
        if ev.kind == EventKind::Acquired
            && ev.user.as_deref() == Some("outer")
            && let Some(e) = engine.upgrade()
        {
            kept.lock().unwrap().push(e.try_acquire(&Request::new("inner", "agent").tenant("t4")).unwrap());
        }
    })));
    let before = (tenant_used(&e, 2).used, tenant_used(&e, 4).used);
    seats.push(login(&e, "outer", 2).unwrap());
    assert_eq!((tenant_used(&e, 2).used, tenant_used(&e, 4).used), (before.0 + 1, before.1 + 1));
    e.set_event_sink(None);
    seats.extend(inner.lock().unwrap().drain(..));

    // Another thread releases them all: each seat id finds its tenant there.
    let e2 = e.clone();
    std::thread::spawn(move || {
        for seat in seats {
            e2.release(seat).unwrap();
        }
    })
    .join()
    .unwrap();
    for t in 0..6 {
        assert_eq!(tenant_used(&e, t).used, 0, "t{t}");
    }
}

#[test]
fn ten_thousand_tenants_load_and_stay_apart() {
    let mut text = String::from("[licenses.users]\nlimit = 2\n[profiles.agent]\nconsumes = [\"users\"]\n");
    for i in 0..10_000 {
        text.push_str(&format!("[tenants.t{i}]\nlicenses = {{ users = {} }}\n", 1 + i % 3));
    }
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&text, &clock);
    assert_eq!(e.tenant_names().len(), 10_000);
    for t in ["t0", "t1", "t9999"] {
        e.try_acquire(&Request::new("same-user", "agent").tenant(t)).unwrap();
    }
    assert!(e.try_acquire(&Request::new("other", "agent").tenant("t0")).is_err(), "t0 has 1 seat");
    e.try_acquire(&Request::new("other", "agent").tenant("t1")).unwrap();
    assert_eq!(e.usage_in(Some("t2"), "users").unwrap().used, 0);
    assert_eq!(used(&e, "users").0, 0, "the default pool is untouched");
    let report = e.report(Page::ALL);
    // Asking about t2 opens its pool only where other processes could hold its seats.
    let opened_to_look = usize::from(e.backend_kind() != "memory");
    assert_eq!((report.tenants_total, report.tenants.len()), (10_000, 3 + opened_to_look));
}

fn signed_license(dir: &std::path::Path, seed: u8, body: &str) -> (PathBuf, seatgate::signed::VendorSigningKey) {
    let key = seatgate::signed::VendorSigningKey::from_seed(&[seed; 32]);
    let text = format!(
        "[license]\nformat = 1\nlicensee = \"Acme Call Center\"\nlicense_id = \"ACME-{seed}\"\nissued = \"2020-01-01\"\n{body}\n"
    );
    let signed = seatgate::signed::sign_text(&text, "acme.license", &key).unwrap();
    let path = dir.join(format!("acme-{seed}.license"));
    std::fs::write(&path, signed).unwrap();
    (path, key)
}

fn with_license(dir: &std::path::Path, license: &std::path::Path) -> String {
    format!(
        "state_dir = \"{}\"\nlicense_file = \"{}\"\n[licenses.users]\nlimit = 10\n[licenses.callcenter]\nlimit = 5\n[licenses.chat]\nlimit = 4\n[profiles.agent]\nconsumes = [\"users\", \"callcenter\"]\n[emergency]\nseats = 5\ntypes = [\"users\"]\n",
        dir.display(),
        license.display()
    )
}

#[test]
fn a_signed_license_caps_the_configured_limits() {
    let dir = state_dir("signed");
    let (path, key) = signed_license(
        &dir,
        41,
        "valid_until = \"2099-12-31\"\nemergency_seats = 2\n[license.limits]\nusers = 3\ncallcenter = 8\n",
    );
    seatgate::signed::trust_key(key.public_key());
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&with_license(&dir, &path), &clock);
    assert_eq!(used(&e, "users").1, 3, "min(config 10, signed 3)");
    assert_eq!(used(&e, "callcenter").1, 5, "min(config 5, signed 8)");
    assert_eq!(used(&e, "chat").1, 0, "a type the license does not list has no seats");
    let report = e.report(Page::ALL);
    assert!(report.licenses[0].limit_source.contains("signed license caps it at 3"), "{:?}", report.licenses[0]);
    assert_eq!(report.signed_license.as_ref().unwrap().license_id, "ACME-41");
    assert!(report.to_text().contains("Signed license: ACME-41"), "{}", report.to_text());
    // The signed emergency allowance caps the config's 5 seats.
    assert_eq!(e.emergency_activate().unwrap().seats, 2);
    assert_eq!(used(&e, "users").1, 5);
}

#[test]
fn a_tampered_untrusted_or_expired_license_is_refused() {
    let dir = state_dir("badlicense");
    let (path, key) = signed_license(&dir, 42, "[license.limits]\nusers = 3\ncallcenter = 3\nchat = 1\n");
    seatgate::signed::trust_key(key.public_key());
    let load = |license: &std::path::Path| {
        Engine::with_backend(Config::from_toml_str(&with_license(&dir, license), "p.toml").unwrap(), new_backend())
    };
    assert!(load(&path).is_ok());
    let tampered = dir.join("tampered.license");
    std::fs::write(&tampered, std::fs::read_to_string(&path).unwrap().replace("users = 3", "users = 9")).unwrap();
    match load(&tampered) {
        Err(Error::LicenseFile(m)) => assert!(m.contains("signature"), "{m}"),
        other => panic!("a tampered license loaded: {other:?}"),
    }
    // Signed by a key nobody trusted.
    let (foreign, _) = signed_license(&dir, 43, "[license.limits]\nusers = 3\n");
    match load(&foreign) {
        Err(Error::LicenseFile(m)) => assert!(m.contains("not trusted") || m.contains("trusted"), "{m}"),
        other => panic!("an untrusted license loaded: {other:?}"),
    }
    let (old, key) = signed_license(&dir, 44, "valid_until = \"2020-12-31\"\n[license.limits]\nusers = 3\n");
    seatgate::signed::trust_key(key.public_key());
    match load(&old) {
        Err(Error::LicenseFile(m)) => assert!(m.contains("expired") && m.contains("2020-12-31"), "{m}"),
        other => panic!("an expired license loaded: {other:?}"),
    }
    match load(&dir.join("missing.license")) {
        Err(Error::LicenseFile(m)) => assert!(m.contains("missing.license"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_tenant_with_its_own_profiles_keeps_no_seats_for_profiles_it_lacks_and_gets_no_emergency_seats() {
    let dir = state_dir("tenantrules");
    let text = format!(
        "{}state_dir = \"{}\"\n[emergency]\nseats = 2\ntypes = [\"callcenter\"]\n[tenants.solo]\nlicenses = {{ callcenter = 2 }}\n[tenants.solo.profiles.desk]\nconsumes = [\"users\", \"callcenter\"]\n[tenants.shared]\n",
        "",
        dir.display()
    );
    let text = format!("{text}{}", TEAMS);
    let clock = Arc::new(ManualClock::at_unix(NOW));
    let e = open(&text, &clock);
    // "support" reserves 2 globally; "solo" has no support profile, so both of its
    // seats are for its own desk profile.
    e.try_acquire(&Request::new("a", "desk").tenant("solo")).unwrap();
    e.try_acquire(&Request::new("b", "desk").tenant("solo")).unwrap();
    // A tenant that inherits the profiles keeps the reservation.
    e.try_acquire(&Request::new("a", "backoffice").tenant("shared")).unwrap();
    assert!(matches!(
        e.try_acquire(&Request::new("b", "backoffice").tenant("shared")),
        Err(Error::LimitReached(d)) if d.reason == DenialReason::Reserved
    ));
    // The emergency window is the installation's: the default pool grows, tenants do not.
    e.emergency_activate().unwrap();
    assert_eq!(used(&e, "callcenter").1, 5);
    assert_eq!(e.usage_in(Some("solo"), "callcenter").unwrap().limit, 2);
    assert_eq!(e.usage_in(Some("shared"), "callcenter").unwrap().limit, 3);
}
