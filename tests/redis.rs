// What only the redis backend does: several nodes sharing one table, one round trip
// per acquire, leases on an injected clock across nodes, Redis dying under load and
// coming back empty (deny and allow_local), and clear errors for a wrong password or
// an unreachable server. Every server here is a throwaway redis-server on 127.0.0.1.

#[path = "support/redis_server.rs"]
mod redis_server;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_server::{CountingProxy, RedisServer, settings, unique_prefix};
use seatgate::backend::redis::{LOCAL_SEAT_BIT, RedisBackend};
use seatgate::clock::ManualClock;
use seatgate::config::{OnBackendError, RedisConfig};
use seatgate::{Config, Engine, Error, Event, EventKind, Page, ReleaseWhy, Request};

fn engine(text: &str, settings: &RedisConfig) -> Engine {
    let backend = RedisBackend::open(settings).unwrap_or_else(|e| panic!("open {}: {e}", settings.url));
    Engine::with_backend(Config::from_toml_str(text, "t.toml").expect("valid config"), Box::new(backend))
        .expect("engine opens")
}

fn used(e: &Engine, license: &str) -> u32 {
    e.usage_of(license).expect("known type").used
}

fn node_settings(url: &str, prefix: &str, node: &str) -> RedisConfig {
    settings(url, prefix, node)
}

/// Settings for the failure tests: short timeouts, quick retries.
fn failing_settings(url: &str, prefix: &str, node: &str, mode: OnBackendError, share: u8) -> RedisConfig {
    RedisConfig {
        connect_timeout: Duration::from_millis(500),
        timeout: Duration::from_millis(500),
        retry_interval: Duration::from_millis(100),
        on_backend_error: mode,
        local_share: share,
        ..settings(url, prefix, node)
    }
}

/// Node "pbx-a" under `allow_local` with a 50 % local share, as a bare backend.
fn allow_local_node(server: &RedisServer, prefix: &str) -> RedisBackend {
    RedisBackend::open(&failing_settings(&server.url(), prefix, "pbx-a", OnBackendError::AllowLocal, 50))
        .unwrap()
}

/// Polls the node (a reap drives the retry) until it is no longer degraded.
fn wait_recovered(e: &Engine) {
    let start = Instant::now();
    while e.report(Page::ALL).degraded.is_some() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the node never reconciled: {:?}",
            e.report(Page::ALL).degraded
        );
        e.reap();
        std::thread::sleep(Duration::from_millis(20));
    }
}

const SHARED: &str = r#"
[licenses.pool]
limit = 5
[licenses.calls]
limit = 3
count = "session"
[profiles.team]
consumes = ["pool", "calls"]
"#;

#[test]
fn nodes_on_one_server_share_one_limit_under_contention() {
    let server = RedisServer::start();
    let prefix = unique_prefix("shared");
    let nodes: Vec<Arc<Engine>> = (0..3)
        .map(|n| Arc::new(engine(SHARED, &node_settings(&server.url(), &prefix, &format!("pbx-{n}")))))
        .collect();
    let limits = [5u32, 3];
    let shadow: Arc<[AtomicU32; 2]> = Arc::new(Default::default());
    let violation = Arc::new(AtomicBool::new(false));
    let granted = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let e = nodes[t % 3].clone();
            let (shadow, violation, granted) = (shadow.clone(), violation.clone(), granted.clone());
            std::thread::spawn(move || {
                for i in 0..400 {
                    let user = format!("t{t}-{}", i % 4);
                    let (profile, types): (&str, &[usize]) =
                        if i % 2 == 0 { ("pool", &[0]) } else { ("team", &[0, 1]) };
                    match e.try_acquire(&Request::new(&user, profile)) {
                        Ok(seat) => {
                            granted.fetch_add(1, Ordering::Relaxed);
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
                        Err(Error::LimitReached(_)) => {}
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert!(!violation.load(Ordering::SeqCst), "more holders than the limit at some instant");
    assert!(granted.load(Ordering::Relaxed) > 0);
    for e in &nodes {
        assert_eq!((used(e, "pool"), used(e, "calls")), (0, 0), "every node sees the same empty table");
        assert!(e.report(Page::ALL).holders.is_empty());
    }
    // The billing counters are the cluster's, not one node's.
    let stats: Vec<_> = nodes.iter().map(|e| e.usage_of("pool").unwrap().stats).collect();
    assert!(stats.windows(2).all(|w| w[0] == w[1]), "{stats:?}");
    assert!(stats[0].peak <= 5 && stats[0].acquired > 0);
}

#[test]
fn a_user_counted_type_takes_one_seat_whichever_node_the_user_logs_in_on() {
    let server = RedisServer::start();
    let prefix = unique_prefix("dedupe");
    let a = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-a"));
    let b = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-b"));
    let desk = a.try_acquire(&Request::new("alice", "pool").extension("2001")).unwrap();
    let mobile = b.try_acquire(&Request::new("alice", "pool").extension("2001-mobile")).unwrap();
    assert_eq!((used(&a, "pool"), used(&b, "pool")), (1, 1));
    a.release(desk).unwrap();
    assert_eq!(used(&b, "pool"), 1, "alice still holds it on the other node");
    // An admin on node A logs alice out everywhere; node B's holder learns why.
    assert_eq!(a.release_user("alice", ReleaseWhy::Admin), Ok(1));
    assert_eq!(b.release(mobile), Err(Error::SeatReleased(mobile, ReleaseWhy::Admin)));
    assert_eq!(used(&b, "pool"), 0);
}

#[test]
fn a_node_that_shuts_down_gives_back_its_own_seats_only() {
    let server = RedisServer::start();
    let prefix = unique_prefix("shutdown");
    let a = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-a"));
    let b = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-b"));
    a.try_acquire(&Request::new("alice", "team")).unwrap();
    a.try_acquire(&Request::new("carol", "pool")).unwrap();
    let bob = b.try_acquire(&Request::new("bob", "team")).unwrap();
    assert_eq!(a.report(Page::ALL).holders.len(), 3, "the report shows every node's holders");
    assert_eq!(a.release_all(), 2, "but a shutdown releases this node's");
    assert_eq!((used(&b, "pool"), used(&b, "calls")), (1, 1));
    b.release(bob).unwrap();
}

#[test]
fn an_acquire_is_one_round_trip() {
    let server = RedisServer::start();
    let proxy = CountingProxy::start(server.port);
    let e = engine(
        "[licenses.a]\nlimit = 10\n[licenses.b]\nlimit = 10\nrequires = [\"a\"]\n[licenses.c]\nlimit = 10\ncount = \"session\"\n\
         [profiles.all]\nconsumes = [\"a\", \"b\", \"c\"]\n",
        &node_settings(&proxy.url(), &unique_prefix("trips"), "pbx-1"),
    );
    // The first call loads the script (a Redis 7 function) and fills the pool.
    let warm = e.try_acquire(&Request::new("warm", "all")).unwrap();
    // Redis 7 and later: an FCALL; before: an EVALSHA.
    let call = script_command(&server);
    let calls_before = commandstat(&server, call);
    let before = proxy.round_trips();
    let seat = e.try_acquire(&Request::new("alice", "all").extension("2001")).unwrap();
    assert_eq!(proxy.round_trips() - before, 1, "a three-type bundle with a requirement is one round trip");
    assert_eq!(commandstat(&server, call) - calls_before, 1, "as one {call}");
    let before = proxy.round_trips();
    e.release(seat).unwrap();
    assert_eq!(proxy.round_trips() - before, 1, "and so is a release");
    let before = proxy.round_trips();
    assert!(e.try_acquire(&Request::new("bob", "b")).is_err(), "missing requirement");
    // A refusal: the refused call, and the engine's count_denial (no reap: nothing
    // was full).
    assert_eq!(proxy.round_trips() - before, 2);
    e.release(warm).unwrap();
}

/// How the script runs on this server: "fcall" on Redis 7 and later, else "evalsha".
fn script_command(server: &RedisServer) -> &'static str {
    let info = server.command(&["INFO", "server"]);
    let major = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .and_then(|v| v.split('.').next()?.trim().parse::<u32>().ok())
        .expect("INFO server names redis_version");
    if major >= 7 { "fcall" } else { "evalsha" }
}

fn commandstat(server: &RedisServer, command: &str) -> u64 {
    let info = server.command(&["INFO", "commandstats"]);
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("cmdstat_{command}:calls=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The script runs as a Redis 7 function where it may, and with EVALSHA where the
/// server or its ACL does not allow functions; both give the same answers, and a
/// server that lost its functions gets them again.
#[test]
fn the_script_runs_as_a_function_or_with_evalsha_where_functions_are_not_allowed() {
    const TYPES: &str = "[licenses.a]\nlimit = 2\n[licenses.b]\nlimit = 5\nrequires = [\"a\"]\n\
                         [profiles.both]\nconsumes = [\"a\", \"b\"]\n";
    let server = RedisServer::start();
    assert_eq!(
        script_command(&server),
        "fcall",
        "this test needs Redis 7 or later (functions); scripts/setup.sh installs Debian's"
    );
    // A user whose ACL allows everything but functions, as some installations set it.
    server.command(&[
        "ACL",
        "SETUSER",
        "nofunctions",
        "on",
        ">pw",
        "~*",
        "&*",
        "+@all",
        "-fcall",
        "-function",
    ]);
    let prefix = unique_prefix("modes");
    let by_function = engine(TYPES, &node_settings(&server.url(), &prefix, "pbx-f"));
    let url = format!("redis://nofunctions:pw@127.0.0.1:{}/", server.port);
    let by_eval = engine(TYPES, &node_settings(&url, &prefix, "pbx-e"));
    let (fcall, evalsha) = (commandstat(&server, "fcall"), commandstat(&server, "evalsha"));

    // The same table through both: the limit of `a` holds across them.
    let f1 = by_function.try_acquire(&Request::new("alice", "both")).unwrap();
    let e1 = by_eval.try_acquire(&Request::new("bob", "both")).unwrap();
    let refused = by_eval.try_acquire(&Request::new("carol", "both")).unwrap_err();
    assert!(refused.to_string().contains("'a' is full (2/2)"), "{refused}");
    let refused = by_function.try_acquire(&Request::new("carol", "both")).unwrap_err();
    assert!(refused.to_string().contains("'a' is full (2/2)"), "{refused}");
    let missing = by_eval.try_acquire(&Request::new("dave", "b")).unwrap_err();
    assert!(missing.to_string().contains("requires"), "{missing}");
    assert!(commandstat(&server, "fcall") >= fcall + 3, "the default user's calls are FCALLs");
    assert!(commandstat(&server, "evalsha") >= evalsha + 2, "the restricted user's calls are EVALSHAs");
    for (e, how) in [(&by_function, "FCALL"), (&by_eval, "EVALSHA")] {
        let detail = e.report(Page::ALL).backend_detail;
        assert!(detail.ends_with(&format!("script by {how}")), "{detail}");
    }

    // A server that loses its functions (FUNCTION FLUSH, or a restart without
    // persistence) gets them back on the next call.
    server.command(&["FUNCTION", "FLUSH"]);
    by_function.release(f1).unwrap();
    by_eval.release(e1).unwrap();
    assert_eq!((used(&by_function, "a"), used(&by_eval, "b")), (0, 0));
    let again = by_function.try_acquire(&Request::new("erin", "both")).unwrap();
    assert_eq!(used(&by_eval, "a"), 1);
    by_function.release(again).unwrap();
}

/// Under FCALL the script keeps the type table it parsed from one call to the next
/// (the same function serves every node): calls that alternate between nodes whose
/// configurations differ must each be judged by their own node's limits and
/// requirements, never by the table the previous call left behind.
#[test]
fn calls_alternating_between_nodes_with_different_types_each_use_their_own() {
    const STRICT: &str = "[licenses.agent]\nlimit = 1\n[licenses.chat]\nlimit = 4\nrequires = [\"agent\"]\n";
    const LOOSE: &str = "[licenses.agent]\nlimit = 3\n[licenses.chat]\nlimit = 4\n";
    let server = RedisServer::start();
    let command = script_command(&server);
    let prefix = unique_prefix("types");
    let strict = engine(STRICT, &node_settings(&server.url(), &prefix, "pbx-strict"));
    let loose = engine(LOOSE, &node_settings(&server.url(), &prefix, "pbx-loose"));
    let calls = commandstat(&server, command);

    let a1 = loose.try_acquire(&Request::new("u1", "agent")).unwrap();
    // The previous call parsed `agent` with 3 seats; this node has 1, held.
    let refused = strict.try_acquire(&Request::new("u2", "agent")).unwrap_err();
    assert!(refused.to_string().contains("'agent' is full (1/1)"), "{refused}");
    // And back: the loose node's 3 seats, after a call that parsed 1.
    let a2 = loose.try_acquire(&Request::new("u2", "agent")).unwrap();
    // Only the strict node has chat require agent.
    let missing = strict.try_acquire(&Request::new("u3", "chat")).unwrap_err();
    assert!(missing.to_string().contains("requires"), "{missing}");
    let chat = loose.try_acquire(&Request::new("u3", "chat")).unwrap();
    let refused = strict.try_acquire(&Request::new("u4", "agent")).unwrap_err();
    assert!(refused.to_string().contains("'agent' is full (2/1)"), "{refused}");
    let a3 = loose.try_acquire(&Request::new("u4", "agent")).unwrap();
    assert!(loose.try_acquire(&Request::new("u5", "agent")).is_err(), "3 of 3");
    assert_eq!((used(&strict, "agent"), used(&loose, "chat")), (3, 1));
    assert!(commandstat(&server, command) >= calls + 8, "every call went through the script");

    for seat in [a1, a2, a3, chat] {
        loose.release(seat).unwrap();
    }
    assert_eq!((used(&strict, "agent"), used(&strict, "chat")), (0, 0));
}

const LEASED: &str = r#"
[licenses.extension]
limit = 2
lease = "30s"
"#;

#[test]
fn leases_run_on_the_callers_clock_across_nodes() {
    let server = RedisServer::start();
    let prefix = unique_prefix("lease");
    let clock = Arc::new(ManualClock::at_unix(1_790_000_000));
    let a = engine(LEASED, &node_settings(&server.url(), &prefix, "pbx-a")).with_clock(clock.clone());
    let b = engine(LEASED, &node_settings(&server.url(), &prefix, "pbx-b")).with_clock(clock.clone());
    let alice = a.try_acquire(&Request::new("alice", "extension")).unwrap();
    let bob = b.try_acquire(&Request::new("bob", "extension")).unwrap();
    assert!(matches!(b.try_acquire(&Request::new("carol", "extension")), Err(Error::LimitReached(_))));
    let lease_left = a.report(Page::ALL).holders[0].lease_left_seconds.unwrap();
    assert!((29.0..=30.0).contains(&lease_left), "{lease_left}");

    clock.advance(Duration::from_secs(20));
    a.touch(alice).unwrap();
    clock.advance(Duration::from_secs(20));
    // Bob's lease ran out 10 s ago: node A's full type reclaims node B's holder.
    let carol = a.try_acquire(&Request::new("carol", "extension")).unwrap();
    assert_eq!(b.touch(bob), Err(Error::SeatExpired(bob)), "node B's holder learns why");
    assert_eq!(used(&b, "extension"), 2);
    // Nothing is reaped before its deadline, everything after it.
    assert_eq!(b.reap(), 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(b.reap(), 2, "alice and carol, both taken on node A, reaped by node B");
    assert_eq!(a.release(carol), Err(Error::SeatExpired(carol)));
    assert_eq!(used(&a, "extension"), 0);
}

#[test]
fn the_report_shows_the_holders_of_every_node() {
    let server = RedisServer::start();
    let prefix = unique_prefix("report");
    let a = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-a"));
    let b = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-b"));
    a.try_acquire(&Request::new("alice", "team").extension("2001")).unwrap();
    b.try_acquire(&Request::new("bob", "pool").extension("2002")).unwrap();
    b.try_acquire(&Request::new("alice", "pool").extension("2001-mobile")).unwrap();
    let report = a.report(Page::ALL);
    let nodes: Vec<(String, Vec<String>)> =
        report.holders.iter().map(|h| (h.user.clone(), h.nodes.clone())).collect();
    assert_eq!(
        nodes,
        [
            (
                "alice".to_string(),
                vec![
                    format!("pbx-a pid {}", std::process::id()),
                    format!("pbx-b pid {}", std::process::id())
                ]
            ),
            ("bob".to_string(), vec![format!("pbx-b pid {}", std::process::id())])
        ]
    );
    assert_eq!(report.backend, "redis");
    let expected = format!(
        "redis://127.0.0.1:{} db 0 prefix '{prefix}', node 'pbx-a pid {}', script by {}",
        server.port,
        std::process::id(),
        script_command(&server).to_uppercase()
    );
    assert_eq!(report.backend_detail, expected);
    let text = report.to_text();
    assert!(text.contains("pbx-b") && text.contains("node"), "{text}");
    assert_eq!(report.licenses.iter().find(|l| l.name == "pool").unwrap().used, 2);
}

#[test]
fn a_wrong_password_or_an_unreachable_server_is_a_clear_error_within_the_connect_timeout() {
    let server = RedisServer::start_with_password("s3cret");
    let connect_timeout = Duration::from_millis(500);
    let base = RedisConfig { connect_timeout, ..settings(&server.url(), &unique_prefix("auth"), "pbx-1") };

    let start = Instant::now();
    let wrong =
        RedisBackend::open(&RedisConfig { password: Some("nope".into()), ..base.clone() }).unwrap_err();
    assert!(start.elapsed() < connect_timeout + Duration::from_millis(500), "{:?}", start.elapsed());
    let text = wrong.to_string();
    assert!(matches!(wrong, Error::Backend(_)), "{wrong:?}");
    assert!(text.contains(&format!("redis at redis://127.0.0.1:{} db 0 unreachable", server.port)), "{text}");
    assert!(text.contains("the server refused the login"), "names the refused login: {text}");
    assert!(text.contains("on_backend_error = \"deny\""), "{text}");
    assert!(!text.contains("nope"), "never shows the password: {text}");

    let missing = RedisBackend::open(&base).unwrap_err().to_string();
    assert!(missing.contains("NOAUTH") || missing.contains("uthentication"), "{missing}");

    // The password from the config, or from the URL.
    RedisBackend::open(&RedisConfig { password: Some("s3cret".into()), ..base.clone() }).unwrap();
    let in_url = format!("redis://:s3cret@127.0.0.1:{}/0", server.port);
    RedisBackend::open(&RedisConfig { url: in_url, ..base.clone() }).unwrap();

    // Nothing listens on this port.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let start = Instant::now();
    let err = RedisBackend::open(&RedisConfig { url: format!("redis://127.0.0.1:{closed}"), ..base.clone() })
        .unwrap_err();
    assert!(start.elapsed() < connect_timeout + Duration::from_millis(500), "{:?}", start.elapsed());
    assert!(
        err.to_string().contains(&format!("redis at redis://127.0.0.1:{closed} db 0 unreachable")),
        "{err}"
    );

    // allow_local opens anyway, degraded, and says so.
    let degraded = RedisBackend::open(&RedisConfig {
        url: format!("redis://127.0.0.1:{closed}"),
        on_backend_error: OnBackendError::AllowLocal,
        local_share: 50,
        ..base.clone()
    })
    .unwrap();
    assert!(degraded.is_degraded());
}

#[test]
fn engine_open_builds_the_redis_backend_from_the_config_file() {
    let server = RedisServer::start();
    let text = format!(
        "[licenses.x]\nlimit = 1\n[backend]\nkind = \"redis\"\nurl = \"{}\"\nprefix = \"{}\"\nnode = \"pbx-9\"\n",
        server.url(),
        unique_prefix("open")
    );
    let e = Engine::open(Config::from_toml_str(&text, "seats.toml").unwrap()).unwrap();
    assert_eq!(e.backend_kind(), "redis");
    let seat = e.try_acquire(&Request::new("alice", "x")).unwrap();
    // The node's name, and the process on it (each process's handles are its own).
    assert_eq!(e.report(Page::ALL).holders[0].nodes, [format!("pbx-9 pid {}", std::process::id())]);
    e.release(seat).unwrap();

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let text = format!(
        "[licenses.x]\nlimit = 1\n[backend]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:{closed}\"\nconnect_timeout = \"300ms\"\n"
    );
    let err = Engine::open(Config::from_toml_str(&text, "seats.toml").unwrap()).unwrap_err();
    assert!(matches!(err, Error::Backend(ref m) if m.contains("logins are refused")), "{err:?}");
}

const POOL: &str = "[licenses.agent]\nlimit = 4\n";

/// deny: while Redis is dead every call is a clean `Error::Backend` within the timeout
/// that took nothing; Redis restarted empty gets the nodes' handles back, and the
/// counts are right.
#[test]
fn deny_refuses_cleanly_while_redis_is_dead_and_counts_are_right_after_it_restarts_empty() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("deny");
    let node = |name: &str| {
        Arc::new(engine(POOL, &failing_settings(&server.url(), &prefix, name, OnBackendError::Deny, 0)))
    };
    let nodes = [node("pbx-a"), node("pbx-b")];
    let bound = Duration::from_millis(500 + 500 + 1500); // connect_timeout + timeout + a loaded machine
    let stop = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let e = nodes[t % 2].clone();
            let (stop, refused, slowest) = (stop.clone(), refused.clone(), slowest.clone());
            std::thread::spawn(move || {
                // Handles whose release failed while Redis was away: released later.
                let mut owed: Vec<u64> = Vec::new();
                let mut i = 0u64;
                let timed = |f: &mut dyn FnMut() -> Result<(), Error>| {
                    let start = Instant::now();
                    let r = f();
                    let took = start.elapsed();
                    let mut s = slowest.lock().unwrap();
                    *s = (*s).max(took);
                    r
                };
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let mut seat = 0;
                    let r = timed(&mut || {
                        seat = e.try_acquire(&Request::new(&format!("u{t}-{}", i % 3), "agent"))?;
                        Ok(())
                    });
                    match r {
                        Ok(()) => {
                            if let Err(err) = timed(&mut || e.release(seat)) {
                                assert!(matches!(err, Error::Backend(_)), "{err:?}");
                                owed.push(seat);
                            }
                        }
                        Err(Error::LimitReached(_)) => {}
                        Err(Error::Backend(msg)) => {
                            assert!(
                                msg.contains("unreachable")
                                    && msg.contains("logins are refused (on_backend_error = \"deny\")"),
                                "{msg}"
                            );
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(other) => panic!("{other:?}"),
                    }
                }
                owed
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.stop();
    std::thread::sleep(Duration::from_millis(400));
    // While it is dead: a clean refusal that took nothing.
    let start = Instant::now();
    let err = nodes[0].try_acquire(&Request::new("late", "agent")).unwrap_err();
    assert!(start.elapsed() < bound);
    assert!(
        matches!(err, Error::Backend(ref m) if m.contains(&format!("redis at redis://127.0.0.1:{} db 0 unreachable", server.port))),
        "{err:?}"
    );
    let degraded = nodes[0].report(Page::ALL).degraded.expect("reported as degraded");
    assert!(degraded.contains("logins are refused"), "{degraded}");
    // The workers stop while Redis is still dead: the seats they owe are then all the
    // pool holds. (Left running, a worker of the node that recovers first could take a
    // seat before the other node takes its owed handles back, and with the pool full
    // one of those would rightly not fit: a race in the test, not a lost handle.)
    stop.store(true, Ordering::Relaxed);
    let owed: Vec<Vec<u64>> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    server.restart();
    std::thread::sleep(Duration::from_millis(400));
    assert!(refused.load(Ordering::Relaxed) > 0, "the workers never saw Redis down");
    let slowest = *slowest.lock().unwrap();
    assert!(slowest < bound, "a call took {slowest:?}");
    for e in &nodes {
        wait_recovered(e);
    }
    // Redis came back empty: the handles whose release failed were taken again.
    let held: usize = owed.iter().map(Vec::len).sum();
    let holders = nodes[0].report(Page::ALL).holders.iter().map(|h| h.sessions).sum::<usize>();
    assert_eq!(holders, held, "every handle a host still holds is held in Redis again");
    let users: HashSet<String> = nodes[0].report(Page::ALL).holders.iter().map(|h| h.user.clone()).collect();
    assert_eq!(used(&nodes[0], "agent") as usize, users.len());
    for (t, seats) in owed.iter().enumerate() {
        for &seat in seats {
            nodes[t % 2].release(seat).unwrap();
        }
    }
    assert_eq!((used(&nodes[0], "agent"), used(&nodes[1], "agent")), (0, 0));
    assert!(nodes[0].report(Page::ALL).holders.is_empty());
    assert!(
        nodes[0].report(Page::ALL).warnings.iter().any(|w| w.contains("redis lost its data")),
        "{:?}",
        nodes[0].report(Page::ALL).warnings
    );
}

/// allow_local, step by step: each node serves its share while Redis is dead, and on
/// return the local handles move into Redis; what no longer fits is released as
/// `Reconciled`, and the counts add up.
#[test]
fn allow_local_serves_its_share_and_reconciles_when_redis_is_back() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("local");
    let node = |name: &str| {
        engine(POOL, &failing_settings(&server.url(), &prefix, name, OnBackendError::AllowLocal, 50))
    };
    let (a, b) = (node("pbx-a"), node("pbx-b"));
    let events: Arc<Mutex<Vec<Event<'static>>>> = Arc::default();
    let sink = events.clone();
    b.set_event_sink(Some(Arc::new(move |ev: &Event| sink.lock().unwrap().push(ev.clone().into_owned()))));

    let a1 = a.try_acquire(&Request::new("a1", "agent")).unwrap();
    let b1 = b.try_acquire(&Request::new("b1", "agent")).unwrap();
    let b2 = b.try_acquire(&Request::new("b2", "agent")).unwrap();
    assert_eq!(used(&a, "agent"), 3);
    server.stop();

    // Each node hands out at most 50 % of 4 = 2 seats on its own.
    let a2 = a.try_acquire(&Request::new("a2", "agent")).unwrap();
    assert!(a2 & LOCAL_SEAT_BIT != 0, "a local handle");
    let a3 = a.try_acquire(&Request::new("a3", "agent")).unwrap();
    let Err(Error::LimitReached(d)) = a.try_acquire(&Request::new("a4", "agent")) else {
        panic!("over the share")
    };
    assert_eq!((d.used, d.limit), (2, 2));
    let b3 = b.try_acquire(&Request::new("b3", "agent")).unwrap();
    let b4 = b.try_acquire(&Request::new("b4", "agent")).unwrap();
    assert!(b.try_acquire(&Request::new("b5", "agent")).is_err());
    let status = a.report(Page::ALL);
    let degraded = status.degraded.expect("degraded");
    assert!(
        degraded.contains(&format!("redis at redis://127.0.0.1:{} db 0 unreachable since", server.port)),
        "{degraded}"
    );
    assert!(degraded.contains("serving 50% of each limit locally"), "{degraded}");
    // The report shows what this node holds: its local handles and its Redis one.
    let seats: HashSet<u64> = status.holders.iter().flat_map(|h| h.seats.iter().map(|s| s.seat)).collect();
    assert_eq!(seats, HashSet::from([a1, a2, a3]));
    // Operations follow the handle: a Redis handle released now is released in Redis
    // when it is back; a local one at once.
    a.release(a1).unwrap();
    a.touch(a2).unwrap();

    server.restart(); // empty: Redis lost everything
    std::thread::sleep(Duration::from_millis(150));
    wait_recovered(&a);
    // Node A came first: its two local handles moved, a1 is gone for good.
    assert_eq!(used(&a, "agent"), 2);
    wait_recovered(&b);
    // Node B's Redis handles came back first, then its local ones, which no longer fit.
    assert_eq!(used(&b, "agent"), 4);
    let reconciled: Vec<u64> = events
        .lock()
        .unwrap()
        .iter()
        .filter(|ev| ev.kind == EventKind::Released && ev.why == Some(ReleaseWhy::Reconciled))
        .map(|ev| ev.seat)
        .collect();
    assert_eq!(reconciled, [b3, b4]);
    assert_eq!(b.release(b3), Err(Error::SeatReleased(b3, ReleaseWhy::Reconciled)));
    assert!(Error::SeatReleased(b3, ReleaseWhy::Reconciled).to_string().contains("did not fit"));
    let warnings = b.report(Page::ALL).warnings;
    assert!(
        warnings.iter().any(|w| w.contains("0 local handles moved to redis, 2 released")),
        "{warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("redis lost its data: 2 handles of this node taken again")),
        "{warnings:?}"
    );
    let warnings = a.report(Page::ALL).warnings;
    assert!(
        warnings.iter().any(|w| w.contains("2 local handles moved to redis, 0 released")),
        "{warnings:?}"
    );
    // Moved handles keep their ids and work from either node.
    let report = a.report(Page::ALL);
    let held: HashSet<u64> = report.holders.iter().flat_map(|h| h.seats.iter().map(|s| s.seat)).collect();
    assert_eq!(held, HashSet::from([a2, a3, b1, b2]));
    assert_eq!(a.release(a1), Err(Error::UnknownSeat(a1)));
    for (e, seat) in [(&a, a2), (&b, a3), (&b, b1), (&a, b2)] {
        e.release(seat).unwrap();
    }
    assert_eq!((used(&a, "agent"), used(&b, "agent")), (0, 0));
    assert!(a.report(Page::ALL).degraded.is_none() && a.report(Page::ALL).holders.is_empty());
}

/// allow_local under load: threads on two nodes log in and out while Redis dies and
/// comes back empty. No node ever holds more than its share locally, and once both
/// have reconciled the table holds exactly the handles the hosts still hold.
#[test]
fn allow_local_under_load_never_exceeds_the_share_and_reconciles_the_counts() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("load");
    let node = |name: &str| {
        Arc::new(engine(
            "[licenses.agent]\nlimit = 6\n",
            &failing_settings(&server.url(), &prefix, name, OnBackendError::AllowLocal, 50),
        ))
    };
    let nodes = [node("pbx-a"), node("pbx-b")];
    let share = 3u32;
    let local_held: Arc<[AtomicU32; 2]> = Arc::new(Default::default());
    let violation = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let local_grants = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let e = nodes[t % 2].clone();
            let (local_held, violation, stop, local_grants) =
                (local_held.clone(), violation.clone(), stop.clone(), local_grants.clone());
            std::thread::spawn(move || {
                let mut held: Vec<u64> = Vec::new();
                let mut reconciled = 0usize;
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    match e.try_acquire(&Request::new(&format!("u{t}-{i}"), "agent")) {
                        Ok(seat) => {
                            if seat & LOCAL_SEAT_BIT != 0 {
                                local_grants.fetch_add(1, Ordering::Relaxed);
                                if local_held[t % 2].fetch_add(1, Ordering::SeqCst) + 1 > share {
                                    violation.store(true, Ordering::SeqCst);
                                }
                            }
                            held.push(seat);
                        }
                        Err(Error::LimitReached(_)) => {}
                        Err(other) => panic!("allow_local never refuses for the backend: {other:?}"),
                    }
                    // Keep one or two handles; give back the oldest.
                    if held.len() > 1 + (i as usize % 2) {
                        let seat = held.remove(0);
                        if seat & LOCAL_SEAT_BIT != 0 {
                            local_held[t % 2].fetch_sub(1, Ordering::SeqCst);
                        }
                        match e.release(seat) {
                            Ok(()) => {}
                            Err(Error::SeatReleased(_, ReleaseWhy::Reconciled)) => reconciled += 1,
                            Err(other) => panic!("release {seat}: {other:?}"),
                        }
                    }
                }
                (held, reconciled)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    server.stop();
    std::thread::sleep(Duration::from_millis(500));
    server.restart();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let results: Vec<(Vec<u64>, usize)> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(!violation.load(Ordering::SeqCst), "a node held more than its share locally");
    assert!(local_grants.load(Ordering::Relaxed) > 0, "no login was served locally");
    for e in &nodes {
        wait_recovered(e);
    }
    // What the hosts still hold is what Redis holds, within the limit.
    let mut still_held = 0;
    let mut released_reconciled = 0;
    for (t, (held, _)) in results.iter().enumerate() {
        for &seat in held {
            match nodes[t % 2].touch(seat) {
                Ok(()) => still_held += 1,
                Err(Error::SeatReleased(_, ReleaseWhy::Reconciled)) => released_reconciled += 1,
                Err(other) => panic!("{seat}: {other:?}"),
            }
        }
    }
    let report = nodes[0].report(Page::ALL);
    let in_redis: usize = report.holders.iter().map(|h| h.sessions).sum();
    assert_eq!(
        in_redis, still_held,
        "Redis holds exactly the live handles ({released_reconciled} reconciled away)"
    );
    assert_eq!(used(&nodes[0], "agent") as usize, still_held);
    assert!(still_held <= 6);
    for (t, (held, _)) in results.iter().enumerate() {
        for &seat in held {
            let _ = nodes[t % 2].release(seat);
        }
    }
    assert_eq!((used(&nodes[0], "agent"), used(&nodes[1], "agent")), (0, 0));
}

/// Tenants' pools on one server: one client and one set of connections for all of
/// them, keys under `{prefix}:tenant:<name>`, and each pool's own seats, holders and
/// shutdown, also across nodes.
#[test]
fn tenant_pools_share_the_connections_and_keep_their_keys_apart() {
    use seatgate::backend::Backend;

    let server = RedisServer::start();
    let prefix = unique_prefix("tenants");
    let config = || Config::from_toml_str(SHARED, "t.toml").unwrap();
    let main_a = RedisBackend::open(&node_settings(&server.url(), &prefix, "pbx-a")).unwrap();
    let main_b = RedisBackend::open(&node_settings(&server.url(), &prefix, "pbx-b")).unwrap();
    let clients_before: u64 = info_field(&server, "clients", "connected_clients");

    // Forty tenants of node A, each used once: no connection of their own.
    let tenants: Vec<Engine> = (0..40)
        .map(|i| Engine::with_backend(config(), main_a.open_tenant(&format!("t{i}")).unwrap()).unwrap())
        .collect();
    let seats: Vec<u64> =
        tenants.iter().map(|e| e.try_acquire(&Request::new("alice", "team")).unwrap()).collect();
    let clients = info_field(&server, "clients", "connected_clients");
    assert!(clients <= clients_before + 2, "{clients_before} connections before, {clients} with 40 tenants");
    for (e, seat) in tenants.iter().zip(&seats) {
        assert!(*seat != 0 && *seat < LOCAL_SEAT_BIT, "{seat:#x}");
        assert_eq!((used(e, "pool"), used(e, "calls")), (1, 1));
    }

    // The keys: each tenant's under its own prefix, nothing in the main pool's.
    let key = |rest: &str| format!("{{{prefix}}}:{rest}");
    assert_eq!(server.command(&["HGET", &key("tenant:t7:t:pool"), "used"]), "1");
    assert_eq!(server.command(&["EXISTS", &key("tenant:t7:epoch")]), "1");
    assert_eq!(server.command(&["EXISTS", &key("t:pool")]), "0");
    assert_eq!(server.command(&["ZCARD", &key("tenant:t7:handles")]), "1");

    // Node B opens tenant t7 too: the same pool, with both nodes' holders.
    let b7 = Engine::with_backend(config(), main_b.open_tenant("t7").unwrap()).unwrap();
    assert_eq!(used(&b7, "pool"), 1);
    b7.try_acquire(&Request::new("bob", "pool")).unwrap();
    assert_eq!(used(&tenants[7], "pool"), 2);
    assert_eq!(tenants[7].report(Page::ALL).holders.len(), 2);
    // A shutdown of B's tenant pool gives back B's handles only, in t7 only.
    assert_eq!(b7.release_all(), 1);
    assert_eq!((used(&tenants[7], "pool"), used(&tenants[8], "pool")), (1, 1));
    let main = Engine::with_backend(config(), Box::new(main_a)).unwrap();
    assert_eq!(used(&main, "pool"), 0);
    assert!(main.report(Page::ALL).holders.is_empty());
    for e in &tenants {
        assert_eq!(e.release_all(), 1);
    }
}

/// Seat ids from the Redis sequence stay below 2^47 (local handles use bit 47, the
/// engine the 16 above): a sequence at the end refuses logins clearly, taking nothing.
#[test]
fn the_id_sequence_stays_below_2_pow_47_and_refuses_clearly_at_its_end() {
    let server = RedisServer::start();
    let prefix = unique_prefix("idspace");
    let e = engine(SHARED, &node_settings(&server.url(), &prefix, "pbx-1"));
    let seq_key = format!("{{{prefix}}}:seq");
    let start: u64 = server.command(&["GET", &seq_key]).parse().expect("a new data set starts the sequence");
    assert!(start > 0 && start < 1 << 46, "starts at {start}: 64 per millisecond since 2024");

    server.command(&["SET", &seq_key, &((1u64 << 47) - 2).to_string()]);
    let last = e.try_acquire(&Request::new("alice", "team")).unwrap();
    assert_eq!(last, (1 << 47) - 1, "the highest id the sequence hands out");
    match e.try_acquire(&Request::new("bob", "team")) {
        Err(Error::Backend(msg)) => {
            assert!(msg.contains(&seq_key) && msg.contains("past 2^47 - 1"), "{msg}");
        }
        other => panic!("expected a clear refusal, got {other:?}"),
    }
    assert_eq!((used(&e, "pool"), used(&e, "calls")), (1, 1), "the refused login took nothing");
    assert!(e.report(Page::ALL).degraded.is_none(), "Redis is fine: not degraded");
    e.release(last).unwrap();
    // The way out the message gives.
    server.command(&["SET", &seq_key, "0"]);
    assert_eq!(e.try_acquire(&Request::new("bob", "team")).unwrap(), 1);
}

fn info_field(server: &RedisServer, section: &str, field: &str) -> u64 {
    server
        .command(&["INFO", section])
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

/// The tenant registry's two refusals reach the caller as what they are, told apart by
/// their error codes: a full registry is the caller's error, a registry that
/// contradicts this node's numbers a backend error. Neither is taken for Redis being
/// unreachable, which under `allow_local` would number the tenants on this node alone.
#[test]
fn the_tenant_registrys_refusals_keep_their_kind_under_allow_local() {
    use seatgate::backend::Backend;

    let server = RedisServer::start();
    let prefix = unique_prefix("registry");
    let node = allow_local_node(&server, &prefix);
    assert_eq!(node.tenant_numbers(&["a", "b"], 2).unwrap(), Some(vec![1, 2]));
    match node.tenant_numbers(&["c"], 2) {
        Err(Error::InvalidArgument(msg)) => {
            assert!(msg.contains("cannot add tenant c: one installation serves at most 2 tenants"), "{msg}")
        }
        other => panic!("a full registry is the caller's error, got {other:?}"),
    }
    // Somebody renumbers tenant `a` in Redis by hand: this node's own number for it (1)
    // is contradicted, and numbering anything else is refused.
    server.command(&["HSET", &format!("{{{prefix}}}:tenants"), "a", "7"]);
    match node.tenant_numbers(&["d"], 10) {
        Err(Error::Backend(msg)) => {
            assert!(msg.contains("the tenant registry disagrees with this node"), "{msg}")
        }
        other => panic!("a contradicted number is a backend error, got {other:?}"),
    }
    assert_eq!(server.command(&["HEXISTS", &format!("{{{prefix}}}:tenants"), "d"]), "0", "nothing numbered");
    let config = Config::from_toml_str(POOL, "t.toml").unwrap();
    assert!(node.status(&config).degraded.is_none(), "Redis answered: not degraded");
}

/// A tenant's pool under `allow_local`: its own local share while Redis is down, local
/// ids within the backend's bits, and its own reconcile when Redis is back.
#[test]
fn a_tenant_pool_serves_its_own_local_share_and_reconciles_on_its_own() {
    use seatgate::backend::Backend;

    let mut server = RedisServer::start();
    let prefix = unique_prefix("tenant-local");
    let config = || Config::from_toml_str(POOL, "t.toml").unwrap();
    let main = allow_local_node(&server, &prefix);
    let tenant = Engine::with_backend(config(), main.open_tenant("acme").unwrap()).unwrap();
    let main = Engine::with_backend(config(), Box::new(main)).unwrap();
    let kept = tenant.try_acquire(&Request::new("t1", "agent")).unwrap();
    server.stop();

    // Each pool has a local share of its own: 50 % of 4.
    let mut local = Vec::new();
    for user in ["t2", "t3"] {
        let seat = tenant.try_acquire(&Request::new(user, "agent")).unwrap();
        assert!(seat & LOCAL_SEAT_BIT != 0 && seat >> 48 == 0, "a local id: {seat:#x}");
        local.push(seat);
    }
    assert!(tenant.try_acquire(&Request::new("t4", "agent")).is_err(), "over the tenant's share");
    for user in ["m1", "m2"] {
        main.try_acquire(&Request::new(user, "agent")).unwrap();
    }
    assert!(tenant.report(Page::ALL).degraded.is_some());
    assert!(tenant.report(Page::ALL).backend_detail.contains("tenant 'acme'"));

    server.restart(); // empty
    std::thread::sleep(Duration::from_millis(150));
    wait_recovered(&tenant);
    // The tenant's Redis handle came back, and its local ones moved, under their ids.
    assert_eq!(used(&tenant, "agent"), 3);
    let held: HashSet<u64> =
        tenant.report(Page::ALL).holders.iter().flat_map(|h| h.seats.iter().map(|s| s.seat)).collect();
    assert_eq!(held, HashSet::from([kept, local[0], local[1]]));
    assert_eq!(server.command(&["HGET", &format!("{{{prefix}}}:tenant:acme:t:agent"), "used"]), "3");
    // The main pool reconciles its own handles, into its own keys.
    assert!(main.report(Page::ALL).degraded.is_some(), "not reconciled by the tenant's recovery");
    wait_recovered(&main);
    assert_eq!((used(&main, "agent"), used(&tenant, "agent")), (2, 3));
    for seat in local {
        tenant.release(seat).unwrap();
    }
    assert_eq!(tenant.release_all(), 1);
    assert_eq!(main.release_all(), 2);
}

/// A tenant's number travels in its handles: nodes that met the installation's
/// tenants in other orders (one given a tenant's limit at run time, one started
/// with a config that names one more) still read every handle as the same tenant.
#[test]
fn a_tenants_handle_names_the_same_tenant_on_every_node() {
    let server = RedisServer::start();
    let prefix = unique_prefix("registry");
    let text = format!("{SHARED}[tenants.globex]\n[tenants.initech]\n");
    let a = engine(&text, &node_settings(&server.url(), &prefix, "pbx-a"));
    a.set_limit(Some("acme"), "pool", Some(2)).unwrap();
    let b = engine(&text, &node_settings(&server.url(), &prefix, "pbx-b"));
    // c's config names a tenant that sorts before the others: c meets it first.
    let c = engine(&format!("{text}[tenants.aardvark]\n"), &node_settings(&server.url(), &prefix, "pbx-c"));

    let acme = a.try_acquire(&Request::new("alice", "pool").tenant("acme")).unwrap();
    b.release(acme).unwrap();
    assert_eq!(a.usage_in(Some("acme"), "pool").unwrap().used, 0, "b released acme's seat");
    // b releases acme's handles but serves no acme logins: it was never given acme's limit.
    assert!(matches!(
        b.try_acquire(&Request::new("carol", "pool").tenant("acme")),
        Err(Error::UnknownTenant(_))
    ));

    let globex = a.try_acquire(&Request::new("bob", "pool").tenant("globex")).unwrap();
    let aardvark = c.try_acquire(&Request::new("bob", "pool").tenant("aardvark")).unwrap();
    c.release(globex).unwrap();
    assert_eq!(a.usage_in(Some("globex"), "pool").unwrap().used, 0, "c released globex's seat");
    assert_eq!(c.usage_in(Some("aardvark"), "pool").unwrap().used, 1, "and not aardvark's");
    a.release(aardvark).unwrap();
    assert_eq!(c.usage_in(Some("aardvark"), "pool").unwrap().used, 0, "a released aardvark's seat");

    // The registry: numbers in the order tenants first came, both ways.
    let key = |rest: &str| format!("{{{prefix}}}:{rest}");
    for (number, name) in [(1, "globex"), (2, "initech"), (3, "acme"), (4, "aardvark")] {
        assert_eq!(server.command(&["HGET", &key("tenants"), name]), number.to_string());
        assert_eq!(server.command(&["HGET", &key("tenant-names"), &number.to_string()]), name);
    }
    assert_eq!((acme >> 48, aardvark >> 48), (3, 4));
    // A number nobody registered is an unknown handle.
    assert!(matches!(b.release((9 << 48) | 1), Err(Error::UnknownSeat(_))));
}

/// With Redis unreachable, `deny` refuses to start with tenants it cannot number;
/// `allow_local` numbers them on this node from the top, where no registered
/// number reaches.
#[test]
fn tenants_that_cannot_be_registered_are_refused_under_deny_and_numbered_from_the_top_under_allow_local() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("redis://127.0.0.1:{closed}");
    let text = format!("{SHARED}[tenants.globex]\n[tenants.initech]\n");
    let config = || Config::from_toml_str(&text, "t.toml").unwrap();

    let local =
        failing_settings(&url, &unique_prefix("unregistered"), "pbx-a", OnBackendError::AllowLocal, 50);
    let e = Engine::with_backend(config(), Box::new(RedisBackend::open(&local).unwrap())).unwrap();
    let seat = e.try_acquire(&Request::new("alice", "pool").tenant("initech")).unwrap();
    assert_eq!(seat >> 48, 65_534, "initech, the second tenant met, numbered from the top: {seat:#x}");
    e.release(seat).unwrap();
    assert_eq!(e.usage_in(Some("initech"), "pool").unwrap().used, 0);

    // deny: the backend does not open at all while Redis is unreachable, and a main
    // pool opened while Redis answered, asked to number a tenant once it is gone,
    // refuses clearly.
    let server = RedisServer::start();
    let deny =
        failing_settings(&server.url(), &unique_prefix("deny-registry"), "pbx-b", OnBackendError::Deny, 0);
    let backend = RedisBackend::open(&deny).unwrap();
    drop(server);
    use seatgate::backend::Backend;
    let err = backend.tenant_numbers(&["globex"], 65_535).unwrap_err().to_string();
    assert!(err.contains("unreachable") && err.contains("cannot be numbered"), "{err}");
}

/// Redis restarted empty forgets the tenants' numbers, not the nodes: a node puts
/// the numbers its handles carry back before it numbers anything new, and when it
/// reconciles, so a tenant numbered afterwards by any node never gets one of them.
#[test]
fn after_redis_restarts_empty_a_node_claims_its_tenants_numbers_back() {
    let mut server = RedisServer::start();
    let prefix = unique_prefix("reclaim");
    let key = |rest: &str| format!("{{{prefix}}}:{rest}");
    let text = format!("{SHARED}[tenants.globex]\n[tenants.initech]\n");
    let a = engine(&text, &failing_settings(&server.url(), &prefix, "pbx-a", OnBackendError::Deny, 0));
    let initech = a.try_acquire(&Request::new("alice", "pool").tenant("initech")).unwrap();
    assert_eq!(initech >> 48, 2);

    // Claimed back with the next registration.
    server.stop();
    server.restart();
    assert_eq!(server.command(&["HLEN", &key("tenants")]), "0", "the restart emptied the registry");
    a.set_limit(Some("late"), "pool", Some(1)).unwrap();
    for (number, name) in [(1, "globex"), (2, "initech"), (3, "late")] {
        assert_eq!(server.command(&["HGET", &key("tenant-names"), &number.to_string()]), name);
    }

    // Claimed back when the main pool reconciles.
    server.stop();
    server.restart();
    a.try_acquire(&Request::new("bob", "pool")).unwrap();
    assert_eq!(server.command(&["HLEN", &key("tenants")]), "3", "a's three tenants are back");
    // A node that knows only a new tenant numbers it after them.
    let b = engine(
        &format!("{SHARED}[tenants.newco]\n"),
        &failing_settings(&server.url(), &prefix, "pbx-b", OnBackendError::Deny, 0),
    );
    let newco = b.try_acquire(&Request::new("carol", "pool").tenant("newco")).unwrap();
    assert_eq!(newco >> 48, 4, "newco must not take a number a's handles carry");
    // a's initech handle still means initech to b, once a's initech pool has taken
    // its handles back (on its next call there).
    a.try_acquire(&Request::new("dave", "pool").tenant("initech")).unwrap();
    assert_eq!(a.usage_in(Some("initech"), "pool").unwrap().used, 2, "alice taken back, and dave");
    b.release(initech).unwrap_or_else(|e| panic!("b releases a's initech handle: {e}"));
    assert_eq!(a.usage_in(Some("initech"), "pool").unwrap().used, 1, "dave's is left");
}
