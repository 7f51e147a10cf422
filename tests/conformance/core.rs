// Engine behaviour from safe Rust: no pointers, as many engines as each test wants.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use seatgate::clock::ManualClock;
use seatgate::{Config, Engine, Error, Page, Request};

const CONFIG: &str = r#"
[licensee]
name = "ACME Call Center"
support_until = "2027-10-31"

[licenses.user]
limit = 4
[licenses.callcenter]
limit = 2
description = "Call-center operator"
[licenses.crm]
limit = 1
[licenses.chat]
limit = 1
[licenses.integration_1c]
limit = 2
count = "session"

[profiles.operator]
consumes = ["user", "callcenter"]
[profiles.admin]
consumes = ["user", "crm"]
[profiles.chat_team]
consumes = ["chat"]
"#;

fn engine() -> Engine {
    engine_with(CONFIG)
}

fn engine_with(text: &str) -> Engine {
    Engine::with_backend(Config::from_toml_str(text, "test.toml").expect("valid config"), new_backend())
        .expect("engine opens")
}

fn used(e: &Engine, license: &str) -> u32 {
    e.usage_of(license).expect("known type").used
}

fn all_used(e: &Engine) -> Vec<(String, u32)> {
    e.usage().into_iter().map(|u| (u.name.to_string(), u.used)).collect()
}

#[test]
fn profile_takes_every_type_it_consumes() {
    let e = engine();
    e.try_acquire(&Request::new("alice", "operator")).unwrap();
    assert_eq!(used(&e, "user"), 1);
    assert_eq!(used(&e, "callcenter"), 1);
    assert_eq!(used(&e, "crm"), 0);
}

#[test]
fn bare_license_type_is_a_profile_of_one() {
    let e = engine();
    e.try_acquire(&Request::new("alice", "crm")).unwrap();
    assert_eq!(used(&e, "crm"), 1);
    assert_eq!(used(&e, "user"), 0);
}

#[test]
fn full_type_refuses_and_names_itself() {
    let e = engine();
    e.try_acquire(&Request::new("a", "operator")).unwrap();
    e.try_acquire(&Request::new("b", "operator")).unwrap();
    let err = e.try_acquire(&Request::new("c", "operator")).unwrap_err();
    match &err {
        Error::LimitReached(d) => {
            assert_eq!(&*d.license, "callcenter");
            assert_eq!((d.used, d.limit), (2, 2));
        }
        other => panic!("expected LimitReached, got {other:?}"),
    }
    assert_eq!(err.to_string(), "license type 'callcenter' is full (2/2)");
}

#[test]
fn bundle_is_all_or_nothing() {
    let e = engine();
    e.try_acquire(&Request::new("x", "chat")).unwrap(); // chat is now full (1/1)
    let before = all_used(&e);
    // user and callcenter would fit; chat does not: nothing may be taken.
    let err = e.try_acquire(&Request::new("alice", "operator,chat_team")).unwrap_err();
    assert!(matches!(err, Error::LimitReached(ref d) if &*d.license == "chat"), "{err:?}");
    assert_eq!(all_used(&e), before, "a refused bundle leaked seats");
    assert_eq!(e.report(Page::ALL).holders.iter().filter(|h| h.user == "alice").count(), 0);
}

#[test]
fn user_count_dedupes_a_users_sessions() {
    let e = engine();
    let first = e.try_acquire(&Request::new("alice", "operator").extension("2001")).unwrap();
    let second = e.try_acquire(&Request::new("alice", "operator").extension("2001-mobile")).unwrap();
    assert_ne!(first, second, "each login gets its own handle");
    assert_eq!(used(&e, "user"), 1, "a second device takes no second seat");
    assert_eq!(used(&e, "callcenter"), 1);
    e.release(first).unwrap();
    assert_eq!(used(&e, "callcenter"), 1, "seat stays while the user still has a handle");
    e.release(second).unwrap();
    assert_eq!(used(&e, "callcenter"), 0, "freed with the last handle");
    assert_eq!(used(&e, "user"), 0);
}

#[test]
fn holder_of_operator_asking_for_chat_too_takes_only_chat() {
    let e = engine();
    e.try_acquire(&Request::new("alice", "operator")).unwrap();
    e.try_acquire(&Request::new("alice", "operator,chat_team")).unwrap();
    assert_eq!((used(&e, "user"), used(&e, "callcenter"), used(&e, "chat")), (1, 1, 1));
}

#[test]
fn dedupe_lets_a_holder_in_when_the_type_is_full() {
    let e = engine();
    e.try_acquire(&Request::new("a", "operator")).unwrap();
    e.try_acquire(&Request::new("b", "operator")).unwrap();
    // callcenter is full, but "a" already holds it: a second login must succeed.
    e.try_acquire(&Request::new("a", "operator")).unwrap();
    assert!(e.try_acquire(&Request::new("c", "operator")).is_err());
}

#[test]
fn session_count_takes_a_seat_per_handle() {
    let e = engine();
    let s1 = e.try_acquire(&Request::new("erp", "integration_1c")).unwrap();
    let _s2 = e.try_acquire(&Request::new("erp", "integration_1c")).unwrap();
    assert_eq!(used(&e, "integration_1c"), 2);
    let err = e.try_acquire(&Request::new("erp", "integration_1c")).unwrap_err();
    assert!(matches!(err, Error::LimitReached(ref d) if &*d.license == "integration_1c"));
    e.release(s1).unwrap();
    assert_eq!(used(&e, "integration_1c"), 1);
    e.try_acquire(&Request::new("other", "integration_1c")).unwrap();
}

#[test]
fn handles_are_unique_and_never_reused() {
    let mut seen = HashSet::new();
    for _round in 0..3 {
        let e = engine(); // a new engine is like a new init: handles keep counting up
        for i in 0..50 {
            let seat = e.try_acquire(&Request::new(&format!("u{}", i % 3), "user")).unwrap();
            assert_ne!(seat, 0);
            assert!(seen.insert(seat), "handle {seat} issued twice");
            e.release(seat).unwrap();
        }
    }
}

#[test]
fn double_release_and_stale_handles_free_nothing() {
    let e = engine();
    let a = e.try_acquire(&Request::new("alice", "admin")).unwrap();
    e.release(a).unwrap();
    let b = e.try_acquire(&Request::new("bob", "admin")).unwrap();
    assert_eq!(e.release(a), Err(Error::UnknownSeat(a)));
    assert_eq!(e.release(0), Err(Error::UnknownSeat(0)));
    assert_eq!(e.release(u64::MAX), Err(Error::UnknownSeat(u64::MAX)));
    assert_eq!(used(&e, "crm"), 1, "bob's seat survived the stale release");
    e.release(b).unwrap();
    // A handle from another engine (an earlier init) is unknown here.
    let other = engine();
    let foreign = other.try_acquire(&Request::new("carol", "user")).unwrap();
    assert_eq!(e.release(foreign), Err(Error::UnknownSeat(foreign)));
}

#[test]
fn bad_requests_are_refused_with_their_reason() {
    let e = engine();
    let unknown = e.try_acquire(&Request::new("alice", "operator,nope")).unwrap_err();
    assert_eq!(unknown, Error::UnknownProfile("nope".into()));
    assert!(matches!(e.try_acquire(&Request::new("", "user")), Err(Error::InvalidArgument(_))));
    assert!(matches!(e.try_acquire(&Request::new("a", "user,,crm")), Err(Error::InvalidArgument(_))));
    assert!(matches!(e.try_acquire(&Request::new("a", "")), Err(Error::InvalidArgument(_))));
    assert!(matches!(e.try_acquire(&Request::new("a\n", "user")), Err(Error::InvalidArgument(_))));
    let long = "x".repeat(256);
    assert!(matches!(e.try_acquire(&Request::new(&long, "user")), Err(Error::InvalidArgument(_))));
    assert!(e.try_acquire(&Request::new(&long[..255], "user")).is_ok(), "exactly at the cap is fine");
    assert!(matches!(
        e.try_acquire(&Request::new("a", "user").extension("")),
        Err(Error::InvalidArgument(_))
    ));
    // Spaces around names are tolerated.
    assert!(e.try_acquire(&Request::new("b", " operator , chat_team ")).is_ok());
    // Nothing leaked from the refused ones.
    assert_eq!(used(&e, "crm"), 0);
}

#[test]
fn report_shows_counts_holders_and_paging() {
    let clock = Arc::new(ManualClock::at_unix(1_795_000_000)); // 2026-11-18T09:46:40Z
    let e = engine().with_clock(clock.clone());
    e.try_acquire(&Request::new("alice", "operator").extension("2001").session("sip-1")).unwrap();
    clock.advance(Duration::from_secs(60));
    e.try_acquire(&Request::new("bob", "operator").extension("2002")).unwrap();
    clock.advance(Duration::from_secs(60));
    e.try_acquire(&Request::new("alice", "chat_team")).unwrap();
    e.try_acquire(&Request::new("erp", "integration_1c")).unwrap();

    let report = e.report(Page::ALL);
    let cc = report.licenses.iter().find(|l| l.name == "callcenter").unwrap();
    assert_eq!((cc.used, cc.limit, cc.free, cc.status), (2, 2, 0, "full"));
    assert_eq!(cc.description.as_deref(), Some("Call-center operator"));
    assert_eq!(report.holders.len(), 3);
    let alice = &report.holders[0];
    assert_eq!(alice.user, "alice");
    assert_eq!(alice.since, "2026-11-18T11:06:40Z", "earliest login");
    assert_eq!(alice.sessions, 2);
    assert_eq!(alice.licenses, vec!["user", "callcenter", "chat"]);
    assert_eq!(alice.extension.as_deref(), Some("2001"));
    assert_eq!(alice.seats[0].session.as_deref(), Some("sip-1"));
    assert_eq!(report.holders[1].user, "bob");
    assert_eq!(report.licensee.name.as_deref(), Some("ACME Call Center"));
    assert_eq!(report.licensee.support_until.as_deref(), Some("2027-10-31"));
    assert_eq!(report.licensee.support_days_left, Some(347));

    let text = report.to_text();
    assert!(text.contains("ACME Call Center"), "{text}");
    let cc_line = text.lines().find(|l| l.trim_start().starts_with("callcenter")).unwrap();
    assert!(cc_line.contains("2/2") && cc_line.contains("full"), "{cc_line}");
    assert!(text.contains("Online licenses"));
    assert!(text.contains("2026-11-18 11:06:40"));
    assert!(text.contains("showing 1 to 3 of 3"), "{text}");

    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["licenses"][1]["name"], "callcenter");
    assert_eq!(json["licenses"][1]["used"], 2);
    assert_eq!(json["holders"][0]["since"], "2026-11-18T11:06:40Z");
    assert_eq!(json["holders"][0]["extension"], "2001");
    assert!(json["warnings"].is_array());

    let page = e.report(Page { offset: 1, max_rows: Some(1) });
    assert_eq!(page.holders.len(), 1);
    assert_eq!(page.holders[0].user, "bob");
    assert!(page.to_text().contains("showing 2 to 2 of 3"));
    let past_end = e.report(Page { offset: 10, max_rows: Some(5) });
    assert!(past_end.holders.is_empty());
    assert!(past_end.to_text().contains("showing 0 to 0 of 3"), "{}", past_end.to_text());
}

#[test]
fn support_warning_appears_near_and_after_the_end() {
    let cfg = Config::from_toml_str(
        "[licensee]\nsupport_until = 2026-12-01\n[licenses.user]\nlimit = 1\n",
        "t.toml",
    )
    .unwrap();
    let clock = Arc::new(ManualClock::at_unix(1_795_000_000)); // 2026-11-18
    let e = Engine::with_backend(cfg, new_backend()).unwrap().with_clock(clock.clone());
    let r = e.report(Page::ALL);
    assert_eq!(r.licensee.support_days_left, Some(13));
    assert!(
        r.warnings.iter().any(|w| w.contains("support ends on 2026-12-01, in 13 days")),
        "{:?}",
        r.warnings
    );
    clock.advance(Duration::from_secs(20 * 86_400));
    let r = e.report(Page::ALL);
    assert!(r.warnings.iter().any(|w| w.contains("support ended on 2026-12-01")), "{:?}", r.warnings);
}

/// The invariant from many threads on one engine: at no instant more holders than the
/// limit, checked by an independent shadow count; every count back to zero at the end.
#[test]
fn concurrent_acquires_never_oversubscribe() {
    let e = Arc::new(engine_with(
        "[licenses.pool]\nlimit = 3\n[licenses.bundle_a]\nlimit = 2\n[licenses.sess]\nlimit = 2\ncount = \"session\"\n\
         [profiles.team]\nconsumes = [\"pool\", \"bundle_a\", \"sess\"]\n",
    ));
    let shadow: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let limits = [3u32, 2, 2];
    let violation = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (e, shadow, violation) = (e.clone(), shadow.clone(), violation.clone());
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let user = format!("t{t}-{i}");
                    let (profile, types): (&str, &[usize]) =
                        if i % 2 == 0 { ("pool", &[0]) } else { ("team", &[0, 1, 2]) };
                    if let Ok(seat) = e.try_acquire(&Request::new(&user, profile)) {
                        for &ty in types {
                            if shadow[ty].fetch_add(1, Ordering::SeqCst) + 1 > limits[ty] {
                                violation.store(true, Ordering::SeqCst);
                            }
                        }
                        for &ty in types {
                            shadow[ty].fetch_sub(1, Ordering::SeqCst);
                        }
                        e.release(seat).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!violation.load(Ordering::SeqCst), "more holders than the limit at some instant");
    assert!(e.usage().iter().all(|u| u.used == 0), "{:?}", e.usage());
    assert!(e.report(Page::ALL).holders.is_empty());
}

/// Many threads logging the same few users in and out: a user's second handle must
/// never take a second seat, so with limit == number of users nobody is ever refused.
#[test]
fn concurrent_same_user_logins_take_one_seat() {
    let e = Arc::new(engine_with("[licenses.agent]\nlimit = 4\n"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                for i in 0..20_000 {
                    let user = ["a", "b", "c", "d"][(t + i) % 4];
                    let seat =
                        e.try_acquire(&Request::new(user, "agent")).expect("dedupe failed under contention");
                    assert!(e.usage_of("agent").unwrap().used <= 4);
                    e.release(seat).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.usage_of("agent").unwrap().used, 0);
}

/// A bundle that is refused holds the seats it took first only tentatively: a
/// concurrent login must never be refused because of them while a seat is free.
#[test]
fn refused_bundles_never_refuse_a_free_seat() {
    let e = Arc::new(engine_with("[licenses.callcenter]\nlimit = 1\n[licenses.chat]\nlimit = 1\n"));
    e.try_acquire(&Request::new("chat-holder", "chat")).unwrap(); // chat stays full
    let stop = Arc::new(AtomicBool::new(false));
    let doomed: Vec<_> = (0..2)
        .map(|t| {
            let (e, stop) = (e.clone(), stop.clone());
            std::thread::spawn(move || {
                let user = format!("bob{t}");
                let mut refusals = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Takes callcenter first (unless an operator holds it), then finds
                    // chat full and gives callcenter back.
                    let err = e.try_acquire(&Request::new(&user, "callcenter,chat")).unwrap_err();
                    if matches!(err, Error::LimitReached(ref d) if &*d.license == "chat") {
                        refusals += 1;
                    }
                }
                refusals
            })
        })
        .collect();
    // One operator at a time: the callcenter seat is always free for them.
    for i in 0..100_000 {
        let user = ["alice", "carol", "dave", "erin"][i % 4];
        let seat = e
            .try_acquire(&Request::new(user, "callcenter"))
            .unwrap_or_else(|err| panic!("login {i} refused while the seat was free: {err}"));
        e.release(seat).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let refusals: u64 = doomed.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(refusals > 0, "the competing bundles never ran");
    assert_eq!(used(&e, "callcenter"), 0);
}

#[test]
fn a_type_with_no_seats_is_named_first() {
    let e = engine_with("[licenses.callcenter]\nlimit = 1\n[licenses.chat]\nlimit = 0\n");
    e.try_acquire(&Request::new("a", "callcenter")).unwrap();
    let err = e.try_acquire(&Request::new("b", "callcenter,chat")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "license type 'chat' is full (0/0): no seats are licensed",
        "the type that can never be had"
    );
}

#[test]
fn handles_from_many_threads_are_unique() {
    let e = Arc::new(engine_with("[licenses.s]\nlimit = 100000\ncount = \"session\"\n"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                (0..5_000)
                    .map(|i| {
                        e.try_acquire(&Request::new(&format!("t{t}"), "s"))
                            .unwrap_or_else(|err| panic!("{i}: {err}"))
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let all: Vec<u64> = threads.into_iter().flat_map(|t| t.join().unwrap()).collect();
    let unique: HashSet<u64> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len(), "a handle was issued twice");
    assert!(!unique.contains(&0));
    assert_eq!(used(&e, "s"), 40_000);
    for seat in all {
        e.release(seat).unwrap();
    }
    assert_eq!(used(&e, "s"), 0);
}

/// Every id a backend hands out is nonzero and below 2^48 (the engine's tenant tag
/// takes the top 16 bits), and no id is handed out twice: not among handles held at
/// once, nor when a handle's place in the table is used again and again.
#[test]
fn handles_are_nonzero_within_48_bits_and_never_repeat() {
    let e = engine_with("[licenses.s]\nlimit = 1000\ncount = \"session\"\n[licenses.u]\nlimit = 50\n");
    let within = |seat: u64| seat != 0 && seat >> seatgate::types::SEAT_ID_BITS == 0;
    let mut seen = HashSet::new();
    for round in 0..4 {
        let held: Vec<u64> = (0..400)
            .map(|i| e.try_acquire(&Request::new(&format!("user{}", i % 40), "s,u")).unwrap())
            .collect();
        for &seat in &held {
            assert!(within(seat), "round {round}: {seat:#x}");
            assert!(seen.insert(seat), "round {round}: {seat:#x} was handed out before");
        }
        for seat in held {
            e.release(seat).unwrap();
        }
    }
    // One place in the table, taken and given back over and over.
    for i in 0..1_000 {
        let seat = e.try_acquire(&Request::new("alice", "u")).unwrap();
        assert!(within(seat), "{i}: {seat:#x}");
        assert!(seen.insert(seat), "{i}: {seat:#x} was handed out before");
        e.release(seat).unwrap();
    }
    assert_eq!((used(&e, "s"), used(&e, "u")), (0, 0));
}
