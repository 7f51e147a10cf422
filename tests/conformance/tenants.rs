// The pools of a hosted installation's tenants (`Backend::open_tenant`): each counts
// its own seats for its own users, and shares nothing countable with the main pool or
// another tenant's; a shared table (shm, redis) gives every open of one tenant the
// same pool.

use std::collections::HashSet;
use std::sync::Arc;

use seatgate::backend::Backend;
use seatgate::clock::ManualClock;
use seatgate::types::SEAT_ID_BITS;
use seatgate::{Config, Engine, Error, Page, Request};

const POOL: &str = r#"
[licenses.crm]
limit = 2
[licenses.chat]
limit = 3
count = "session"
[licenses.phone]
limit = 1
linger = "60s"
"#;

fn engine_on(backend: Box<dyn Backend>, clock: &Arc<ManualClock>) -> Engine {
    Engine::with_backend(Config::from_toml_str(POOL, "tenants.toml").expect("valid config"), backend)
        .expect("engine opens")
        .with_clock(clock.clone())
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::at_unix(1_790_000_000))
}

fn used(e: &Engine, license: &str) -> u32 {
    e.usage_of(license).expect("known type").used
}

fn holders(e: &Engine) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<_> = e
        .report(Page::ALL)
        .holders
        .into_iter()
        .map(|h| (h.user, h.seats.iter().map(|s| s.seat).collect::<Vec<_>>()))
        .collect();
    out.sort();
    out
}

fn lingering(e: &Engine) -> Vec<(String, String)> {
    e.report(Page::ALL).lingering.into_iter().map(|l| (l.user, l.license)).collect()
}

/// A pool of a backend that shares its table between opens (shm, redis): the memory
/// backend's table lives in one engine only, so each open is a new pool.
fn shared_table(backend: &dyn Backend) -> bool {
    backend.kind() != "memory"
}

#[test]
fn tenant_pools_count_their_own_seats_for_their_own_users() {
    let clock = clock();
    let main = new_backend();
    let a = engine_on(main.open_tenant("A").expect("tenant A opens"), &clock);
    let b = engine_on(main.open_tenant("B").expect("tenant B opens"), &clock);
    let main = engine_on(main, &clock);

    // Fill crm in A, and give alice a lingering phone seat there.
    let a_alice = a.try_acquire(&Request::new("alice", "crm")).unwrap();
    let a_bob = a.try_acquire(&Request::new("bob", "crm")).unwrap();
    let a_phone = a.try_acquire(&Request::new("alice", "phone")).unwrap();
    a.release(a_phone).unwrap();
    match a.try_acquire(&Request::new("carol", "crm")) {
        Err(Error::LimitReached(d)) => assert_eq!((&*d.license, d.used, d.limit), ("crm", 2, 2)),
        other => panic!("tenant A's crm is full, got {other:?}"),
    }
    assert_eq!(used(&a, "phone"), 1, "lingering for alice in A");

    // The same user names and types are free in B and in the main pool.
    let fill = |e: &Engine| {
        assert_eq!((used(e, "crm"), used(e, "phone")), (0, 0), "nothing of A's shows");
        let mut seats = Vec::new();
        for user in ["alice", "bob"] {
            seats.push(e.try_acquire(&Request::new(user, "crm")).unwrap());
        }
        // A's lingering phone seat is alice's in A only: here it is anybody's.
        seats.push(e.try_acquire(&Request::new("dave", "phone")).unwrap());
        assert!(e.try_acquire(&Request::new("alice", "phone")).is_err(), "one phone seat here");
        assert_eq!((used(e, "crm"), used(e, "phone")), (2, 1));
        seats
    };
    let mut b_seats = fill(&b);
    let main_seats = fill(&main);
    b_seats.push(b.try_acquire(&Request::new("erin", "chat")).unwrap());
    assert_eq!((used(&a, "crm"), used(&a, "phone"), used(&a, "chat")), (2, 1, 0));
    assert_eq!(used(&main, "chat"), 0);
    assert_eq!(used(&b, "chat"), 1);

    // Holders, lingering seats and billing counters: each pool's own.
    assert_eq!(holders(&a), vec![("alice".into(), vec![a_alice]), ("bob".into(), vec![a_bob])]);
    let b_holders: Vec<u64> = holders(&b).into_iter().flat_map(|(_, s)| s).collect();
    let main_holders: Vec<u64> = holders(&main).into_iter().flat_map(|(_, s)| s).collect();
    assert_eq!(b_holders.iter().copied().collect::<HashSet<_>>(), b_seats.iter().copied().collect());
    assert_eq!(main_holders.iter().copied().collect::<HashSet<_>>(), main_seats.iter().copied().collect());
    assert_eq!(lingering(&a), vec![("alice".to_string(), "phone".to_string())]);
    assert!(lingering(&b).is_empty() && lingering(&main).is_empty());
    let crm = |e: &Engine| e.usage_of("crm").unwrap().stats;
    assert_eq!((crm(&a).acquired, crm(&a).denied, crm(&a).peak), (2, 1, 2));
    assert_eq!((crm(&b).acquired, crm(&b).denied), (2, 0));
    assert_eq!((crm(&main).acquired, crm(&main).denied), (2, 0));
    assert_eq!(b.usage_of("phone").unwrap().stats.denied, 1);

    // A release in A frees A's seat only.
    a.release(a_alice).unwrap();
    assert_eq!((used(&a, "crm"), used(&b, "crm"), used(&main, "crm")), (1, 2, 2));
    a.try_acquire(&Request::new("carol", "crm")).unwrap();
    assert!(b.try_acquire(&Request::new("carol", "crm")).is_err(), "B is still full");
    assert_eq!(a.release_user("bob", seatgate::ReleaseWhy::Admin).unwrap(), 1);
    assert_eq!((used(&a, "crm"), used(&b, "crm"), used(&main, "crm")), (1, 2, 2));
    // Handles, users and everything else of A are unknown elsewhere.
    assert!(b.release_user("carol", seatgate::ReleaseWhy::Admin).is_err());
    assert!(a.release_user("erin", seatgate::ReleaseWhy::Admin).is_err());
    assert_eq!(used(&b, "chat"), 1);

    // Shutting a pool down gives back its own handles only.
    assert_eq!(b.release_all(), b_seats.len());
    assert_eq!((used(&b, "crm"), used(&b, "chat")), (0, 0));
    assert_eq!((used(&a, "crm"), used(&main, "crm")), (1, 2));
    main.release_all();
    a.release_all();
}

#[test]
fn the_same_tenant_opened_twice_is_one_pool_on_a_shared_table() {
    let clock = clock();
    let main = new_backend();
    let shared = shared_table(main.as_ref());
    let first = engine_on(main.open_tenant("acme.example-1").unwrap(), &clock);
    let again = engine_on(main.open_tenant("acme.example-1").unwrap(), &clock);
    let other = engine_on(main.open_tenant("acme.example-2").unwrap(), &clock);

    let seat = first.try_acquire(&Request::new("alice", "crm")).unwrap();
    first.try_acquire(&Request::new("bob", "crm")).unwrap();
    if shared {
        // One table: the second open sees the seats, the holders and the limit.
        assert_eq!(used(&again, "crm"), 2);
        assert_eq!(holders(&again), holders(&first));
        assert!(again.try_acquire(&Request::new("carol", "crm")).is_err());
        // alice is one user whichever open she comes through.
        again.try_acquire(&Request::new("alice", "crm")).unwrap();
        assert_eq!(used(&first, "crm"), 2);
        again.release(seat).unwrap();
        assert!(matches!(first.release(seat), Err(Error::UnknownSeat(_) | Error::SeatReleased(..))));
    } else {
        // An in-process table: every open is a pool of its own, empty.
        assert_eq!(used(&again, "crm"), 0);
        again.try_acquire(&Request::new("carol", "crm")).unwrap();
        assert_eq!(used(&first, "crm"), 2);
    }
    // Another tenant is another pool either way.
    assert_eq!(used(&other, "crm"), 0);
    assert!(holders(&other).is_empty());
    // A tenant's pool follows the installation's reloads; it announces none.
    let fresh = main.open_tenant("acme.example-3").unwrap();
    assert_eq!((fresh.reload_epoch(), fresh.announce_reload(), fresh.reload_epoch()), (0, 0, 0));
    first.release_all();
    again.release_all();
}

#[test]
fn a_tenant_name_outside_the_rules_is_refused_clearly() {
    let main = new_backend();
    for bad in ["", "a/b", "../x", "a b", "a:b", "a@b", "{x}", "\u{e9}", &"x".repeat(64)] {
        match main.open_tenant(bad) {
            Err(Error::Backend(msg)) => assert!(msg.contains("tenant name"), "{bad:?}: {msg}"),
            Err(other) => panic!("{bad:?}: {other}"),
            Ok(_) => panic!("{bad:?} was accepted"),
        }
    }
    assert!(main.open_tenant(&"x".repeat(63)).is_ok());
}

#[test]
fn tenant_handles_are_nonzero_and_within_the_backends_bits() {
    let clock = clock();
    let main = new_backend();
    let tenant = engine_on(main.open_tenant("ids").unwrap(), &clock);
    let mut seen = HashSet::new();
    for i in 0..300 {
        let seat = tenant.try_acquire(&Request::new(&format!("u{}", i % 7), "chat")).unwrap();
        assert!(seat != 0 && seat >> SEAT_ID_BITS == 0, "{seat:#x}");
        assert!(seen.insert(seat), "{seat:#x} twice");
        tenant.release(seat).unwrap();
    }
}
