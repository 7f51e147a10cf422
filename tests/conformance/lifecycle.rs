// The seat lifecycle from safe Rust, with an injected clock: leases and the reaper,
// hot reload, admin release, dependent licenses, linger windows, events, the audit
// log and the billing counters. Nothing here sleeps to wait for time to pass.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use seatgate::clock::ManualClock;
use seatgate::{Config, DenialReason, Engine, Error, Event, EventKind, Page, ReleaseWhy, Request};

fn engine_at(text: &str) -> (Engine, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::at_unix(1_790_000_000));
    let engine = Engine::with_backend(Config::from_toml_str(text, "test.toml").expect("valid config"), new_backend())
        .expect("engine opens")
        .with_clock(clock.clone());
    (engine, clock)
}

fn used(e: &Engine, license: &str) -> u32 {
    e.usage_of(license).expect("known type").used
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// Records every event.
fn record(e: &Engine) -> Arc<Mutex<Vec<Event<'static>>>> {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    e.set_event_sink(Some(Arc::new(move |ev: &Event| sink.lock().unwrap().push(ev.clone().into_owned()))));
    log
}

fn kinds(log: &Mutex<Vec<Event<'static>>>, kind: EventKind) -> Vec<Event<'static>> {
    log.lock().unwrap().iter().filter(|e| e.kind == kind).cloned().collect()
}

const LEASED: &str = r#"
[defaults]
lease = "90s"
[licenses.extension]
limit = 2
[licenses.crm]
limit = 5
lease = "0"
[licenses.callcenter]
limit = 3
lease = "30s"
[profiles.phone]
consumes = ["extension"]
[profiles.agent]
consumes = ["extension", "callcenter"]
"#;

#[test]
fn a_lease_not_renewed_is_reclaimed_and_its_handle_becomes_unknown() {
    let (e, clock) = engine_at(LEASED);
    let a = e.try_acquire(&Request::new("alice", "phone")).unwrap();
    let b = e.try_acquire(&Request::new("bob", "phone")).unwrap();
    assert!(matches!(e.try_acquire(&Request::new("carol", "phone")), Err(Error::LimitReached(_))));

    // Renewed in time, alice keeps her seat however long she stays.
    for _ in 0..5 {
        clock.advance(secs(60));
        e.touch(a).unwrap();
    }
    // Bob stopped renewing 300 s ago: the full type reclaims him before refusing.
    let c = e.try_acquire(&Request::new("carol", "phone")).unwrap();
    assert_eq!(e.touch(b), Err(Error::SeatExpired(b)), "reclaimed by carol's acquire, and says so");
    assert_eq!(e.release(b), Err(Error::SeatExpired(b)));
    assert!(Error::SeatExpired(b).to_string().contains("lease ran out"));
    assert_eq!(used(&e, "extension"), 2);

    // Exactly at the deadline the lease is over; a nanosecond before it is not.
    clock.advance(Duration::from_secs(90) - Duration::from_nanos(1));
    e.touch(c).unwrap();
    clock.advance(secs(90));
    assert_eq!(e.release(a), Err(Error::SeatExpired(a)), "alice's lease ran out at +90 s");
    assert_eq!(used(&e, "extension"), 1);
}

#[test]
fn a_handle_takes_the_shortest_lease_of_its_types_and_no_lease_means_forever() {
    let (e, clock) = engine_at(LEASED);
    let agent = e.try_acquire(&Request::new("alice", "agent")).unwrap(); // 90 s and 30 s: 30 s
    let crm = e.try_acquire(&Request::new("bob", "crm")).unwrap(); // lease "0": none
    clock.advance(secs(31));
    assert_eq!(e.reap(), 1);
    assert_eq!(e.touch(agent), Err(Error::SeatExpired(agent)), "the handle says why it is gone");
    assert_eq!((used(&e, "extension"), used(&e, "callcenter")), (0, 0));
    clock.advance(secs(10 * 365 * 86_400));
    assert_eq!(e.reap(), 0);
    e.touch(crm).unwrap();
    e.release(crm).unwrap();
}

#[test]
fn the_reaper_reclaims_without_any_acquire_traffic_and_reports_expired() {
    let (e, clock) = engine_at(LEASED);
    let log = record(&e);
    let a = e.try_acquire(&Request::new("alice", "phone")).unwrap();
    e.try_acquire(&Request::new("bob", "phone")).unwrap();
    clock.advance(secs(60));
    assert_eq!(e.touch_user("bob"), Ok(1));
    assert_eq!(e.reap(), 0, "nothing is due yet");
    clock.advance(secs(31));
    assert_eq!(e.reap(), 1, "alice is 91 s old, bob 31 s since his touch");
    assert_eq!(used(&e, "extension"), 1);
    let expired: Vec<_> = kinds(&log, EventKind::Released);
    assert_eq!(expired.len(), 1);
    assert_eq!((expired[0].seat, expired[0].why), (a, Some(ReleaseWhy::Expired)));
    assert_eq!(expired[0].user.as_deref(), Some("alice"));
    assert_eq!(e.touch_user("alice"), Err(Error::UnknownUser("alice".into())));
    let report = e.report(Page::ALL).to_text();
    assert!(report.contains("bob") && !report.contains("alice"), "{report}");
}

#[test]
fn a_real_reaper_thread_runs_and_stops_with_its_engine() {
    let text = "[licenses.x]\nlimit = 1\nlease = \"50ms\"\n[reaper]\ninterval = \"10ms\"\n";
    let engine = Arc::new(Engine::with_backend(Config::from_toml_str(text, "t.toml").unwrap(), new_backend()).unwrap());
    engine.start_reaper().unwrap();
    assert!(engine.reaper_running());
    engine.try_acquire(&Request::new("a", "x")).unwrap();
    // Real time: wait (bounded) for the thread to reclaim the seat on its own.
    let start = std::time::Instant::now();
    while used(&engine, "x") > 0 {
        assert!(start.elapsed() < secs(10), "the reaper never reclaimed the seat");
        std::thread::sleep(Duration::from_millis(5));
    }
    let weak = Arc::downgrade(&engine);
    drop(engine);
    assert!(weak.upgrade().is_none(), "the reaper must not keep the engine alive");
}

#[test]
fn leases_can_be_turned_off_per_reaper_config_and_still_never_keep_a_login_out() {
    let (e, clock) = engine_at("[licenses.x]\nlimit = 1\nlease = \"1m\"\n[reaper]\nenabled = false\n");
    assert!(e.lints().iter().any(|l| l.code == "reaper-disabled"));
    e.try_acquire(&Request::new("a", "x")).unwrap();
    clock.advance(secs(61));
    e.try_acquire(&Request::new("b", "x")).unwrap();
}

const RELOAD_V1: &str = r#"
[licenses.user]
limit = 5
[licenses.callcenter]
limit = 3
[licenses.chat]
limit = 2
[profiles.operator]
consumes = ["user", "callcenter"]
"#;

#[test]
fn reload_keeps_every_held_seat_and_raises_a_limit_at_once() {
    let (e, _clock) = engine_at(RELOAD_V1);
    let log = record(&e);
    let held: Vec<_> =
        (0..3).map(|i| e.try_acquire(&Request::new(&format!("op{i}"), "operator")).unwrap()).collect();
    assert!(e.try_acquire(&Request::new("op3", "operator")).is_err());

    // Types reordered and one added: every surviving type keeps its count by name.
    let v2 = RELOAD_V1.replace("limit = 3", "limit = 4") + "[licenses.email]\nlimit = 1\n";
    let v2 = v2.replace("[licenses.user]\nlimit = 5\n", "") + "[licenses.user]\nlimit = 5\n";
    let summary = e.reload_str(&v2, "v2.toml").unwrap();
    assert!(summary.to_string().contains("'callcenter' limit 3 -> 4"), "{summary}");
    assert!(summary.to_string().contains("added 'email'"), "{summary}");
    assert_eq!((used(&e, "user"), used(&e, "callcenter"), used(&e, "email")), (3, 3, 0));
    let names: Vec<String> = e.usage().iter().map(|u| u.name.to_string()).collect();
    assert_eq!(names, ["callcenter", "chat", "email", "user"], "file order of the new config");
    e.try_acquire(&Request::new("op3", "operator")).unwrap();
    for seat in held {
        e.release(seat).unwrap();
    }
    assert_eq!(used(&e, "callcenter"), 1);
    assert_eq!(kinds(&log, EventKind::Reloaded).len(), 1);
}

#[test]
fn a_lowered_limit_throws_nobody_out_and_refuses_until_use_falls_under_it() {
    let (e, _clock) = engine_at(RELOAD_V1);
    let seats: Vec<_> =
        (0..3).map(|i| e.try_acquire(&Request::new(&format!("op{i}"), "operator")).unwrap()).collect();
    e.reload_str(&RELOAD_V1.replace("limit = 3", "limit = 1"), "v2.toml").unwrap();
    assert_eq!(used(&e, "callcenter"), 3);
    let Err(Error::LimitReached(d)) = e.try_acquire(&Request::new("late", "operator")) else { panic!() };
    assert_eq!((d.reason, d.used, d.limit), (DenialReason::OverLimit, 3, 1));
    let report = e.report(Page::ALL);
    assert_eq!(report.licenses.iter().find(|l| l.name == "callcenter").unwrap().status, "over limit");
    assert!(report.warnings.iter().any(|w| w.contains("over its limit")), "{:?}", report.warnings);
    e.release(seats[0]).unwrap();
    e.release(seats[1]).unwrap();
    assert!(e.try_acquire(&Request::new("late", "operator")).is_err(), "1/1 is full");
    e.release(seats[2]).unwrap();
    e.try_acquire(&Request::new("late", "operator")).unwrap();
}

#[test]
fn a_removed_type_is_orphaned_while_held_and_its_holders_can_release() {
    let (e, _clock) = engine_at(RELOAD_V1);
    let chat = e.try_acquire(&Request::new("alice", "chat")).unwrap();
    let without_chat = RELOAD_V1.replace("[licenses.chat]\nlimit = 2\n", "");
    let summary = e.reload_str(&without_chat, "v2.toml").unwrap();
    assert!(summary.to_string().contains("removed 'chat' (1 seats still held"), "{summary}");
    assert!(matches!(e.try_acquire(&Request::new("bob", "chat")), Err(Error::UnknownProfile(_))));
    let report = e.report(Page::ALL);
    let row = report.licenses.iter().find(|l| l.name == "chat").expect("orphan listed");
    assert_eq!((row.status, row.used), ("orphaned", 1));
    assert!(report.to_text().contains("orphaned"));
    assert!(e.usage_of("chat").is_none(), "not a type of the running config");
    e.release(chat).unwrap();
    assert!(!e.report(Page::ALL).licenses.iter().any(|l| l.name == "chat"), "gone once free");

    // Two reloads later the slot is reused by a new type, which starts empty.
    e.reload_str(&without_chat, "v3.toml").unwrap();
    e.reload_str(&(without_chat.clone() + "[licenses.video]\nlimit = 1\n"), "v4.toml").unwrap();
    assert_eq!(used(&e, "video"), 0);
    e.try_acquire(&Request::new("carol", "video")).unwrap();
}

#[test]
fn a_broken_reload_changes_nothing() {
    let (e, _clock) = engine_at(RELOAD_V1);
    let seat = e.try_acquire(&Request::new("alice", "operator")).unwrap();
    let before = e.report(Page::ALL).to_json();
    for (bad, needle) in [
        ("[licenses.user]\nlimit = -1\n", "test-bad.toml:2:9: limit of license type 'user' is negative"),
        ("[licenses.user]\nlimit = 1\nleash = \"1s\"\n", "test-bad.toml:3:1: unknown field `leash`"),
        ("[licenses.user]\nlimit = 1\nlease = \"soon\"\n", "is not a duration"),
        ("[licenses.a]\nlimit = 1\nrequires = [\"b\"]\n", "requires unknown license type 'b'"),
        (
            "[licenses.a]\nlimit = 1\ncount = \"session\"\nlinger = \"5s\"\n",
            "applies only to count = \"user\"",
        ),
        ("this is not toml", "test-bad.toml:1:"),
    ] {
        let err = e.reload_str(bad, "test-bad.toml").unwrap_err();
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    assert!(matches!(e.reload(Some(std::path::Path::new("/nonexistent/seats.toml"))), Err(Error::Config(_))));
    assert!(matches!(e.reload(None), Err(Error::InvalidArgument(_))), "no file to reread");
    let strip = |s: String| s.lines().filter(|l| !l.contains("generated_at")).collect::<Vec<_>>().join("\n");
    assert_eq!(strip(before), strip(e.report(Page::ALL).to_json()));
    e.release(seat).unwrap();
}

#[test]
fn acquires_during_reloads_see_one_config_and_never_overfill() {
    // Limits swing between 2 and 6 while eight threads hammer the type. The table may
    // sit over a *lowered* limit (that is the documented behaviour), but no acquire may
    // ever succeed above the limit of the config it ran against: so at any instant use
    // stays within the largest limit ever configured, and every handle stays valid.
    let e = Arc::new(engine_at("[licenses.pool]\nlimit = 4\n").0);
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU32::new(0));
    let shadow = Arc::new(AtomicU32::new(0));
    let workers: Vec<_> = (0..8)
        .map(|t| {
            let (e, stop, peak, shadow) = (e.clone(), stop.clone(), peak.clone(), shadow.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("u{t}-{}", n % 3);
                    if let Ok(seat) = e.try_acquire(&Request::new(&user, "pool")) {
                        let now = shadow.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        shadow.fetch_sub(1, Ordering::SeqCst);
                        e.release(seat).unwrap();
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for round in 0..200 {
        let limit = [2, 6, 3, 5][round % 4];
        e.reload_str(&format!("[licenses.pool]\nlimit = {limit}\n"), "r.toml").unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 6, "peak {}", peak.load(Ordering::SeqCst));
    assert_eq!(used(&e, "pool"), 0);
}

const DEPENDENT: &str = r#"
[licenses.connect]
limit = 10
[licenses.callcenter]
limit = 10
requires = ["connect"]
[licenses.supervisor]
limit = 10
requires = ["callcenter"]
[licenses.calls]
limit = 10
count = "session"
[profiles.agent]
consumes = ["connect", "callcenter"]
"#;

#[test]
fn a_dependent_license_needs_its_requirement_held_or_requested() {
    let (e, _clock) = engine_at(DEPENDENT);
    let log = record(&e);
    let Err(Error::LimitReached(d)) = e.try_acquire(&Request::new("alice", "callcenter")) else { panic!() };
    assert_eq!(d.reason, DenialReason::MissingRequirement);
    let denied = kinds(&log, EventKind::Denied);
    assert_eq!(denied[0].requires.as_deref(), Some("connect"));
    assert_eq!(denied[0].license.as_deref(), Some("callcenter"));
    assert_eq!(d.requires.as_deref(), Some("connect"));
    assert!(d.to_string().contains("requires 'connect'"), "{d}");
    assert_eq!(used(&e, "callcenter"), 0, "nothing taken");
    e.try_acquire(&Request::new("alice", "agent")).unwrap(); // both in one request
    e.try_acquire(&Request::new("bob", "connect")).unwrap();
    e.try_acquire(&Request::new("bob", "callcenter")).unwrap(); // already holds connect
    assert_eq!(used(&e, "callcenter"), 2);
}

#[test]
fn releasing_the_last_required_seat_cascades_through_dependents() {
    let (e, _clock) = engine_at(DEPENDENT);
    let log = record(&e);
    let connect1 = e.try_acquire(&Request::new("alice", "connect")).unwrap();
    let connect2 = e.try_acquire(&Request::new("alice", "connect,calls")).unwrap();
    let cc = e.try_acquire(&Request::new("alice", "callcenter")).unwrap();
    let sup = e.try_acquire(&Request::new("alice", "supervisor")).unwrap();
    let other = e.try_acquire(&Request::new("bob", "agent")).unwrap();

    e.release(connect1).unwrap();
    assert_eq!(used(&e, "callcenter"), 2, "alice still holds connect through another handle");
    e.release(connect2).unwrap();
    // connect gone -> callcenter handle released -> supervisor handle released.
    assert_eq!((used(&e, "connect"), used(&e, "callcenter"), used(&e, "supervisor")), (1, 1, 0));
    assert_eq!(used(&e, "calls"), 0);
    assert_eq!(e.release(cc), Err(Error::SeatReleased(cc, ReleaseWhy::Dependency)));
    assert_eq!(e.touch(sup), Err(Error::SeatReleased(sup, ReleaseWhy::Dependency)));
    let why = e.release(sup).unwrap_err().to_string();
    assert!(why.contains("gave up a license type it requires"), "{why}");
    assert_eq!(e.release(987_654_321), Err(Error::UnknownSeat(987_654_321)), "never issued");
    let deps: Vec<_> = kinds(&log, EventKind::Released)
        .into_iter()
        .filter(|ev| ev.why == Some(ReleaseWhy::Dependency))
        .map(|ev| (ev.seat, ev.license.unwrap().to_string()))
        .collect();
    assert_eq!(deps, [(cc, "callcenter".to_string()), (sup, "supervisor".to_string())]);
    e.release(other).unwrap();
}

#[test]
fn release_user_logs_out_everywhere_and_admin_release_is_recorded() {
    let (e, _clock) = engine_at(&(DEPENDENT.to_string() + "[licenses.seat]\nlimit = 1\nlinger = \"1h\"\n"));
    let log = record(&e);
    for _ in 0..3 {
        e.try_acquire(&Request::new("alice", "agent,calls")).unwrap();
    }
    let s = e.try_acquire(&Request::new("alice", "seat")).unwrap();
    e.release(s).unwrap();
    assert_eq!(used(&e, "seat"), 1, "lingering for alice");
    assert_eq!(used(&e, "calls"), 3);
    assert_eq!(e.release_user("alice", ReleaseWhy::Admin), Ok(3));
    assert_eq!(
        (used(&e, "connect"), used(&e, "calls"), used(&e, "seat")),
        (0, 0, 0),
        "admin ends lingering too"
    );
    assert_eq!(e.release_user("alice", ReleaseWhy::Admin), Err(Error::UnknownUser("alice".into())));
    assert!(
        kinds(&log, EventKind::Released)
            .iter()
            .filter(|ev| ev.seat != s)
            .all(|ev| ev.why == Some(ReleaseWhy::Admin))
    );
    assert!(matches!(e.release_as(1, ReleaseWhy::Expired), Err(Error::InvalidArgument(_))));
    let one = e.try_acquire(&Request::new("bob", "connect")).unwrap();
    e.release_as(one, ReleaseWhy::Admin).unwrap();
}

const LINGER: &str = r#"
[licenses.extension]
limit = 1
linger = "30s"
[licenses.calls]
limit = 5
count = "session"
"#;

#[test]
fn a_lingering_seat_returns_to_its_user_and_to_nobody_else_until_the_window_ends() {
    let (e, clock) = engine_at(LINGER);
    let a = e.try_acquire(&Request::new("alice", "extension")).unwrap();
    e.release(a).unwrap();
    assert_eq!(used(&e, "extension"), 1, "counted while lingering");
    let report = e.report(Page::ALL);
    assert_eq!(report.lingering.len(), 1);
    assert_eq!(report.licenses[0].lingering, 1);
    assert!(report.to_text().contains("Lingering seats"));
    assert!(matches!(e.try_acquire(&Request::new("bob", "extension")), Err(Error::LimitReached(_))));
    clock.advance(secs(29));
    let acquired_before = e.usage_of("extension").unwrap().stats.acquired;
    let again = e.try_acquire(&Request::new("alice", "extension")).unwrap(); // the phone re-registers
    assert_eq!(e.usage_of("extension").unwrap().stats.acquired, acquired_before, "same seat, not a new one");
    e.release(again).unwrap();
    clock.advance(secs(29));
    assert!(e.try_acquire(&Request::new("bob", "extension")).is_err(), "a new window started at the release");
    clock.advance(secs(1));
    e.try_acquire(&Request::new("bob", "extension")).unwrap();
}

#[test]
fn linger_ends_are_reaped_and_admin_and_expired_releases_behave() {
    let (e, clock) = engine_at(&LINGER.replace("linger = \"30s\"", "linger = \"30s\"\nlease = \"60s\""));
    let log = record(&e);
    let a = e.try_acquire(&Request::new("alice", "extension")).unwrap();
    clock.advance(secs(61));
    assert_eq!(e.reap(), 1, "the lease ran out");
    assert_eq!(used(&e, "extension"), 1, "an expired seat lingers too (network blip)");
    clock.advance(secs(30));
    assert_eq!(e.reap(), 1, "the linger window ended");
    assert_eq!(used(&e, "extension"), 0);
    assert_eq!(e.touch(a), Err(Error::SeatExpired(a)));
    let b = e.try_acquire(&Request::new("bob", "extension")).unwrap();
    e.release_as(b, ReleaseWhy::Admin).unwrap();
    assert_eq!(used(&e, "extension"), 0, "an admin release does not linger");
    assert!(kinds(&log, EventKind::Released).iter().any(|ev| ev.why == Some(ReleaseWhy::Expired)));
}

#[test]
fn threshold_events_fire_once_per_crossing_in_each_direction() {
    let (e, _clock) = engine_at("[licenses.pool]\nlimit = 10\nalert_at = 80\n");
    let log = record(&e);
    let mut seats: Vec<_> =
        (0..7).map(|i| e.try_acquire(&Request::new(&format!("u{i}"), "pool")).unwrap()).collect();
    assert!(kinds(&log, EventKind::ThresholdUp).is_empty());
    seats.push(e.try_acquire(&Request::new("u7", "pool")).unwrap()); // 8/10 = 80 %
    seats.push(e.try_acquire(&Request::new("u8", "pool")).unwrap());
    let up = kinds(&log, EventKind::ThresholdUp);
    assert_eq!(up.len(), 1);
    assert_eq!((up[0].used, up[0].limit, up[0].threshold_percent), (8, 10, 80));
    assert_eq!(up[0].license.as_deref(), Some("pool"));
    e.release(seats.pop().unwrap()).unwrap(); // 8: still at the threshold
    assert!(kinds(&log, EventKind::ThresholdDown).is_empty());
    e.release(seats.pop().unwrap()).unwrap(); // 7
    let down = kinds(&log, EventKind::ThresholdDown);
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].used, 7);
}

/// Logins and logouts from several threads with nobody listening (the memory
/// backend then parks freed seats per thread), then a listener: the counts, the peak,
/// the seats taken and the threshold events stay exact throughout.
#[test]
fn counts_and_peaks_stay_exact_across_threads_and_a_listener_attached_later() {
    let (e, _clock) = engine_at("[licenses.pool]\nlimit = 10\nalert_at = 50\n");
    let login = |user: &str| e.try_acquire(&Request::new(user, "pool")).unwrap();
    // Each phase on a thread of its own, one after the other, so the counts are known.
    let (u1, u2, u3) = std::thread::scope(|s| s.spawn(|| (login("u1"), login("u2"), login("u3"))).join().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            e.release(u2).unwrap();
            e.release(u3).unwrap(); // may wait in this thread's lane
            let again = login("u2");
            e.release(again).unwrap();
        });
    });
    assert_eq!(used(&e, "pool"), 1);
    let (u4, u5) = std::thread::scope(|s| s.spawn(|| (login("u4"), login("u5"))).join().unwrap());
    assert_eq!(used(&e, "pool"), 3);
    assert_eq!(e.usage_of("pool").unwrap().stats.peak, 3, "3 held at most so far");
    let u6 = std::thread::scope(|s| s.spawn(|| login("u6")).join().unwrap());
    let usage = e.usage_of("pool").unwrap();
    assert_eq!((usage.used, usage.stats.peak, usage.stats.acquired), (4, 4, 7), "a new peak, counted exactly");

    let log = record(&e);
    let u7 = login("u7"); // 5/10 = 50 %
    let up = kinds(&log, EventKind::ThresholdUp);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].used, 5);
    e.release(u7).unwrap();
    let down = kinds(&log, EventKind::ThresholdDown);
    assert_eq!(down.len(), 1);
    assert_eq!(down[0].used, 4);
    let released = kinds(&log, EventKind::Released);
    assert_eq!(released.last().map(|ev| ev.used), Some(4));
    for seat in [u1, u4, u5, u6] {
        e.release(seat).unwrap();
    }
    assert_eq!(used(&e, "pool"), 0);
    assert_eq!(e.usage_of("pool").unwrap().stats.peak, 5);
}

/// With a listener of thresholds only on a type of `limit` seats (threshold at half),
/// `base` seats held, four threads each run `round(engine, thread, round)` 400 times
/// at once; then the base seats go. Checks that every crossing was heard once at the
/// exact count (as many up, each at the threshold, as down, each one under) and no
/// other event; returns the engine, its log and how many crossings went up.
fn churn_across_threshold(
    limit: u32,
    base: usize,
    round: impl Fn(&Engine, usize, usize) + Sync,
) -> (Engine, Arc<Mutex<Vec<Event<'static>>>>, usize) {
    let (e, _clock) = engine_at(&format!("[licenses.pool]\nlimit = {limit}\nalert_at = 50\n"));
    let log = record(&e);
    e.set_event_mask(seatgate::EventMask::THRESHOLDS);
    let held: Vec<_> =
        (0..base).map(|i| e.try_acquire(&Request::new(&format!("base{i}"), "pool")).unwrap()).collect();
    let start = std::sync::Barrier::new(4);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (e, start, round) = (&e, &start, &round);
            s.spawn(move || {
                start.wait();
                for n in 0..400 {
                    round(e, t, n);
                }
            });
        }
    });
    for seat in held {
        e.release(seat).unwrap();
    }
    assert_eq!(used(&e, "pool"), 0);
    let events = log.lock().unwrap().clone();
    let up = events.iter().filter(|ev| ev.kind == EventKind::ThresholdUp).count();
    let down = events.iter().filter(|ev| ev.kind == EventKind::ThresholdDown).count();
    assert_eq!(up, down, "{up} crossings up, {down} down: one was missed or heard twice");
    let threshold = limit / 2;
    for ev in &events {
        match ev.kind {
            EventKind::ThresholdUp => assert_eq!((ev.used, ev.limit), (threshold, limit)),
            EventKind::ThresholdDown => assert_eq!((ev.used, ev.limit), (threshold - 1, limit)),
            other => panic!("a listener of thresholds heard {other:?}"),
        }
    }
    (e, log, up)
}

/// A listener of thresholds only (no event per login, so the memory backend serves
/// logins on its express lane): with 3 of 8 seats held (the threshold is 4), four
/// threads log in and out at once, so use goes from 3 up and back. Every crossing is
/// heard exactly once, at the exact count, at least one (the first login from 3).
#[test]
fn a_listener_of_thresholds_alone_hears_every_crossing_under_contention() {
    let (_e, _log, up) = churn_across_threshold(8, 3, |e, t, _| {
        let seat = e.try_acquire(&Request::new(&format!("t{t}"), "pool")).unwrap();
        e.release(seat).unwrap();
    });
    assert!(up > 0, "the first login from 3 of 8 crossed 4 and was not heard");
}

/// The same with use moving well below the threshold and back over it: 4 of 16 seats
/// held (the threshold is 8), four threads each holding one or two seats at a time.
/// Below the threshold the memory backend's logins may use its per-thread lanes; every
/// crossing must still be heard, at the exact count.
#[test]
fn a_listener_of_thresholds_hears_every_crossing_when_use_falls_well_below_it() {
    let (e, log, _) = churn_across_threshold(16, 4, |e, t, n| {
        let a = e.try_acquire(&Request::new(&format!("t{t}a"), "pool")).unwrap();
        if (n + t) % 3 != 0 {
            let b = e.try_acquire(&Request::new(&format!("t{t}b"), "pool")).unwrap();
            e.release(b).unwrap();
        }
        e.release(a).unwrap();
    });
    // Alone, one thread takes use from 0 to 8 and back: heard once each way.
    let before = log.lock().unwrap().len();
    let seats: Vec<_> = (0..8).map(|i| e.try_acquire(&Request::new(&format!("solo{i}"), "pool")).unwrap()).collect();
    for seat in seats {
        e.release(seat).unwrap();
    }
    let events = log.lock().unwrap().clone();
    let kinds: Vec<_> = events[before..].iter().map(|ev| (ev.kind, ev.used)).collect();
    assert_eq!(kinds, [(EventKind::ThresholdUp, 8), (EventKind::ThresholdDown, 7)]);
}

/// A listener of alerts only: the host's own logins and logouts say nothing (a backend
/// may leave them undescribed), and every release the host did not ask for still
/// arrives, with its reason, user, seat and the count right after it.
#[test]
fn a_listener_of_alerts_hears_forced_releases_and_not_the_hosts_own_logouts() {
    let (e, clock) = engine_at(LEASED);
    let log = record(&e);
    e.set_event_mask(seatgate::EventMask::ALERTS);
    let alice = e.try_acquire(&Request::new("alice", "phone")).unwrap();
    e.release(alice).unwrap();
    let bob = e.try_acquire(&Request::new("bob", "phone")).unwrap();
    let carol = e.try_acquire(&Request::new("carol", "agent")).unwrap();
    e.release_as(bob, ReleaseWhy::Admin).unwrap();
    clock.advance(secs(31));
    assert_eq!(e.reap(), 1, "carol's 30 s lease ran out");
    let dave = e.try_acquire(&Request::new("dave", "crm")).unwrap();
    e.release(dave).unwrap();
    let heard: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .map(|ev| (ev.kind, ev.why, ev.user.as_deref().unwrap_or("").to_string(), ev.seat, ev.license.as_deref().unwrap_or("").to_string(), ev.used))
        .collect();
    assert_eq!(
        heard,
        [
            (EventKind::Released, Some(ReleaseWhy::Admin), "bob".into(), bob, "extension".into(), 1),
            (EventKind::Released, Some(ReleaseWhy::Expired), "carol".into(), carol, "extension".into(), 0),
            (EventKind::Released, Some(ReleaseWhy::Expired), "carol".into(), carol, "callcenter".into(), 0),
        ]
    );
    assert_eq!((used(&e, "extension"), used(&e, "callcenter"), used(&e, "crm")), (0, 0, 0));
}

#[test]
fn events_carry_type_user_seat_counts_and_reasons() {
    let (e, _clock) = engine_at(
        "[licenses.a]\nlimit = 1\n[licenses.b]\nlimit = 2\n[profiles.p]\nconsumes = [\"a\", \"b\"]\n",
    );
    let log = record(&e);
    let seat = e.try_acquire(&Request::new("alice", "p")).unwrap();
    let _ = e.try_acquire(&Request::new("bob", "p"));
    e.release(seat).unwrap();
    let events = log.lock().unwrap().clone();
    let summary: Vec<_> = events
        .iter()
        .map(|ev| {
            (
                ev.kind,
                ev.license.as_deref().unwrap_or("").to_string(),
                ev.user.as_deref().unwrap_or("").to_string(),
                ev.used,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (EventKind::Acquired, "a".into(), "alice".into(), 1),
            (EventKind::Acquired, "b".into(), "alice".into(), 1),
            (EventKind::Denied, "a".into(), "bob".into(), 1),
            (EventKind::Released, "a".into(), "alice".into(), 0),
            (EventKind::Released, "b".into(), "alice".into(), 0),
        ]
    );
    assert_eq!(events[2].denial, Some(DenialReason::Full));
    assert!(events.iter().filter(|ev| ev.kind != EventKind::Denied).all(|ev| ev.seat == seat));
    assert_eq!(events[3].why, Some(ReleaseWhy::Normal));
}

#[test]
fn a_listener_may_call_back_into_the_engine_without_deadlock() {
    let (e, _clock) = engine_at("[licenses.x]\nlimit = 100\nalert_at = 50\n[licenses.y]\nlimit = 1\n");
    let e = Arc::new(e);
    let weak: Weak<Engine> = Arc::downgrade(&e);
    let nested = Arc::new(AtomicU32::new(0));
    let counter = nested.clone();
    e.set_event_sink(Some(Arc::new(move |ev: &Event| {
        let Some(e) = weak.upgrade() else { return };
        if ev.kind == EventKind::Acquired && ev.user.as_deref().is_some_and(|u| u.starts_with("outer")) {
            // Everything a listener might do: report, acquire, release, reload.
            let _ = e.report(Page::ALL).to_text();
            let inner = e.try_acquire(&Request::new(&format!("inner-{}", ev.seat), "x")).unwrap();
            e.release(inner).unwrap();
            e.touch(ev.seat).unwrap();
            counter.fetch_add(1, Ordering::SeqCst);
        }
        if ev.kind == EventKind::Denied {
            e.reload_str("[licenses.x]\nlimit = 100\nalert_at = 50\n[licenses.y]\nlimit = 1\n", "again.toml")
                .unwrap();
        }
    })));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let s = e.try_acquire(&Request::new(&format!("outer-{t}-{i}"), "x")).unwrap();
                    let _ = e.try_acquire(&Request::new(&format!("y-{t}-{i}"), "y")).map(|s| e.release(s));
                    e.release(s).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(nested.load(Ordering::SeqCst), 200);
    assert_eq!(used(&e, "x"), 0);
}

#[test]
fn a_panicking_listener_does_not_fail_the_login() {
    let (e, _clock) = engine_at("[licenses.x]\nlimit = 1\n");
    e.set_event_sink(Some(Arc::new(|_: &Event| panic!("listener bug"))));
    let seat = e.try_acquire(&Request::new("a", "x")).unwrap();
    e.release(seat).unwrap();
}

#[test]
fn billing_counters_count_peaks_acquisitions_and_denials() {
    let (e, _clock) = engine_at("[licenses.x]\nlimit = 2\n[licenses.s]\nlimit = 3\ncount = \"session\"\n");
    let a = e.try_acquire(&Request::new("a", "x")).unwrap();
    let a2 = e.try_acquire(&Request::new("a", "x")).unwrap(); // same user: no new seat
    let b = e.try_acquire(&Request::new("b", "x")).unwrap();
    assert!(e.try_acquire(&Request::new("c", "x")).is_err());
    assert!(e.try_acquire(&Request::new("d", "x")).is_err());
    for seat in [a, a2, b] {
        e.release(seat).unwrap();
    }
    let x = e.usage_of("x").unwrap();
    assert_eq!(
        (x.used, x.stats.peak, x.stats.peak_since_reset, x.stats.acquired, x.stats.denied),
        (0, 2, 2, 2, 2)
    );
    let s1 = e.try_acquire(&Request::new("a", "s")).unwrap();
    e.reset_peaks();
    let s = e.usage_of("s").unwrap().stats;
    assert_eq!((s.peak, s.peak_since_reset), (1, 1));
    assert_eq!(e.usage_of("x").unwrap().stats.peak_since_reset, 0);
    e.release(s1).unwrap();
    let report = e.report(Page::ALL);
    assert!(report.peaks_reset_at.is_some());
    let text = report.to_text();
    assert!(text.contains("peak") && text.contains("acquired") && text.contains("denied"), "{text}");
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "seatgate-{}-{}-{name}",
        std::process::id(),
        module_path!().replace("::", "-")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn or invalid line {l:?}: {e}")))
        .collect()
}

#[test]
fn the_audit_log_records_out_in_deny_and_reload_and_follows_logrotate() {
    let dir = temp_dir("audit");
    let config = dir.join("seats.toml");
    let text = "[licenses.x]\nlimit = 1\n[audit]\npath = \"audit.jsonl\"\n";
    std::fs::write(&config, text).unwrap();
    let e = Engine::from_file_with_backend(&config, new_backend()).unwrap();
    let seat = e.try_acquire(&Request::new("alice", "x").extension("101")).unwrap();
    assert!(e.try_acquire(&Request::new("bob", "x")).is_err());
    e.release(seat).unwrap();
    e.flush_audit();
    let log = dir.join("audit.jsonl");
    let got = lines(&log);
    let events: Vec<&str> = got.iter().map(|l| l["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["OUT", "DENY", "IN"]);
    assert_eq!(got[0]["user"], "alice");
    assert_eq!(got[0]["extension"], "101");
    assert_eq!(got[1]["reason"], "full");
    assert_eq!(got[1]["license"], "x");
    assert_eq!(got[2]["why"], "normal");
    assert_eq!(got[2]["seat"], seat);

    // logrotate: rename, then reload; new lines go to a new file.
    std::fs::rename(&log, dir.join("audit.jsonl.1")).unwrap();
    e.reload(None).unwrap();
    e.try_acquire(&Request::new("carol", "x")).unwrap();
    e.flush_audit();
    let rotated: Vec<String> =
        lines(&dir.join("audit.jsonl.1")).iter().map(|l| l["event"].to_string()).collect();
    assert_eq!(rotated.len(), 3, "nothing more went to the rotated file: {rotated:?}");
    let fresh: Vec<String> = lines(&log).iter().map(|l| l["event"].as_str().unwrap().to_string()).collect();
    assert_eq!(fresh, ["RELOAD", "OUT"]);
    assert_eq!(e.audit_status().unwrap().written, 5);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_disk_error_never_fails_a_login_and_is_counted_and_reported() {
    // /dev/full accepts the open and fails every write with ENOSPC.
    let (e, _clock) = engine_at("[licenses.x]\nlimit = 100\n[audit]\npath = \"/dev/full\"\n");
    for i in 0..50 {
        let seat = e.try_acquire(&Request::new(&format!("u{i}"), "x")).unwrap();
        e.release(seat).unwrap();
    }
    e.flush_audit();
    let status = e.audit_status().unwrap();
    assert_eq!(status.written, 0);
    assert_eq!(status.failed + status.dropped, 100);
    assert!(status.errors >= 1);
    assert!(status.last_error.as_deref().unwrap_or("").contains("No space left"), "{status:?}");
    let report = e.report(Page::ALL);
    assert!(
        report.warnings.iter().any(|w| w.contains("audit log /dev/full: 100 lines lost")),
        "{:?}",
        report.warnings
    );
}

#[test]
fn lifecycle_config_is_validated_with_lines() {
    for (text, needle) in [
        ("[defaults]\nlease = \"forever\"\n", "t.toml:2:9: [defaults] lease 'forever' is not a duration"),
        (
            "[licenses.a]\nlimit = 1\nalert_at = 120\n",
            "t.toml:3:12: alert_at of license type 'a' must be a whole percentage",
        ),
        ("[licenses.a]\nlimit = 1\nrequires = [\"a\"]\n", "t.toml:3:13: license type 'a' requires itself"),
        ("[licenses.a]\nlimit = 1\nlease = \"400d\"\n", "longer than the maximum of 366 days"),
        ("[reaper]\ninterval = \"0\"\n", "[reaper] interval must be more than 0"),
        ("[audit]\npath = \"\"\n", "[audit] path is empty"),
    ] {
        let err = Config::from_toml_str(text, "t.toml").unwrap_err();
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    let c = Config::from_toml_str(
        "[licenses.a]\nlimit = 0\n[licenses.b]\nlimit = 1\nrequires = [\"a\"]\n",
        "t.toml",
    )
    .unwrap();
    assert!(c.lints.iter().any(|l| l.code == "unreachable-requirement"), "{:?}", c.lints);
}

#[test]
fn an_admin_release_cascades_as_dependency_and_nothing_lingers() {
    let text = DEPENDENT.replace(
        "[licenses.callcenter]\nlimit = 10\n",
        "[licenses.callcenter]\nlimit = 10\nlinger = \"1h\"\n",
    );
    let (e, _clock) = engine_at(&text);
    let log = record(&e);
    let connect = e.try_acquire(&Request::new("alice", "connect")).unwrap();
    let cc = e.try_acquire(&Request::new("alice", "callcenter")).unwrap();
    e.release_as(connect, ReleaseWhy::Admin).unwrap();
    let released: Vec<_> = kinds(&log, EventKind::Released).into_iter().map(|ev| (ev.seat, ev.why)).collect();
    assert_eq!(released, [(connect, Some(ReleaseWhy::Admin)), (cc, Some(ReleaseWhy::Dependency))]);
    assert_eq!(used(&e, "callcenter"), 0, "an admin release frees everything it started at once");
}

#[test]
fn release_events_carry_the_count_right_after_their_own_handle() {
    let (e, _clock) = engine_at("[licenses.calls]\nlimit = 5\ncount = \"session\"\n");
    let log = record(&e);
    for _ in 0..3 {
        e.try_acquire(&Request::new("carol", "calls")).unwrap();
    }
    let acquired: Vec<u32> = kinds(&log, EventKind::Acquired).iter().map(|ev| ev.used).collect();
    assert_eq!(acquired, [1, 2, 3]);
    assert_eq!(e.release_user("carol", ReleaseWhy::Normal), Ok(3));
    let mut released: Vec<u32> = kinds(&log, EventKind::Released).iter().map(|ev| ev.used).collect();
    released.sort_unstable();
    assert_eq!(released, [0, 1, 2]);
}

#[test]
fn a_reload_that_moves_a_type_across_its_threshold_says_so() {
    let (e, _clock) = engine_at("[licenses.x]\nlimit = 10\nalert_at = 50\n");
    let log = record(&e);
    let seat = e.try_acquire(&Request::new("a", "x")).unwrap();
    e.reload_str("[licenses.x]\nlimit = 2\nalert_at = 50\n", "v2.toml").unwrap();
    let up = kinds(&log, EventKind::ThresholdUp);
    assert_eq!(up.len(), 1, "1/2 is 50 %");
    assert_eq!((up[0].used, up[0].limit), (1, 2));
    e.release(seat).unwrap();
    assert_eq!(kinds(&log, EventKind::ThresholdDown).len(), 1, "down matches the up");
}

#[test]
fn release_user_with_only_lingering_seats_frees_them_as_admin_and_is_unknown_otherwise() {
    let (e, _clock) = engine_at(LINGER);
    let seat = e.try_acquire(&Request::new("alice", "extension")).unwrap();
    e.release(seat).unwrap();
    assert_eq!(e.release_user("alice", ReleaseWhy::Normal), Err(Error::UnknownUser("alice".into())));
    assert_eq!(used(&e, "extension"), 1);
    assert_eq!(e.release_user("alice", ReleaseWhy::Admin), Ok(0));
    assert_eq!(used(&e, "extension"), 0);
    assert_eq!(e.release_user("alice", ReleaseWhy::Admin), Err(Error::UnknownUser("alice".into())));
}

/// A clock whose cheap floor lags the exact time, as `CLOCK_MONOTONIC_COARSE` lags
/// `CLOCK_MONOTONIC` by up to a kernel tick.
struct LaggingFloor {
    exact: Arc<ManualClock>,
    lag: seatgate::clock::Mono,
}

impl seatgate::clock::Clock for LaggingFloor {
    fn now(&self) -> std::time::SystemTime {
        seatgate::clock::Clock::now(&*self.exact)
    }
    fn monotonic(&self) -> seatgate::clock::Mono {
        seatgate::clock::Clock::monotonic(&*self.exact)
    }
    fn monotonic_floor(&self) -> seatgate::clock::Mono {
        seatgate::clock::Clock::monotonic(&*self.exact).saturating_sub(self.lag)
    }
}

#[test]
fn a_lagging_floor_clock_never_shortens_a_lease_or_a_linger_window() {
    let exact = Arc::new(ManualClock::at_unix(1_790_000_000));
    let lagging = Arc::new(LaggingFloor { exact: exact.clone(), lag: 4_000_000 }); // a 4 ms tick
    let text = LEASED.to_string() + "[licenses.desk]\nlimit = 1\nlinger = \"30s\"\nlease = \"0\"\n";
    let e = Engine::with_backend(Config::from_toml_str(&text, "test.toml").expect("valid config"), new_backend())
        .expect("engine opens")
        .with_clock(lagging);

    // Deadlines come from the exact time: the whole lease is left right after login.
    let a = e.try_acquire(&Request::new("alice", "agent")).unwrap();
    let report = e.report(Page::ALL);
    assert_eq!(report.holders[0].lease_left_seconds, Some(30.0), "the lease starts at the exact now");
    // A millisecond before the end the handle is live for every call.
    exact.advance(Duration::from_millis(29_999));
    assert_eq!(e.reap(), 0);
    e.touch(a).expect("still live a millisecond before its lease ends");
    exact.advance(secs(30));
    assert_eq!(e.reap(), 1, "the renewed lease ends 30 s after the touch");

    // A linger window is 30 s from the exact release time, never from the lagging floor.
    let d = e.try_acquire(&Request::new("carol", "desk")).unwrap();
    e.release(d).unwrap();
    let report = e.report(Page::ALL);
    assert_eq!(report.lingering.len(), 1);
    assert_eq!(report.lingering[0].ends_in_seconds, 30.0, "the window starts at the exact now");
    exact.advance(Duration::from_millis(29_999));
    assert!(
        matches!(e.try_acquire(&Request::new("dave", "desk")), Err(Error::LimitReached(_))),
        "still lingering for carol a millisecond before the window ends"
    );
    assert_eq!(e.reap(), 0);
    exact.advance(Duration::from_millis(1));
    e.try_acquire(&Request::new("dave", "desk")).expect("the window ended");
}
