//! What tenants cost: memory per declared tenant and per tenant with an open pool,
//! and the time of an acquire+release pair in a tenant against the default pool.
//! Run by `make bench` (`cargo run --release --example tenant_cost`).

use std::time::Instant;

use seatgate::{Config, Engine, Request};

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

fn pair_ns(engine: &Engine, tenant: Option<&str>, rounds: u32) -> f64 {
    let start = Instant::now();
    for i in 0..rounds {
        let user = if i % 2 == 0 { "a" } else { "b" };
        let mut req = Request::new(user, "agent");
        req.tenant = tenant;
        let seat = engine.try_acquire(&req).expect("acquire");
        engine.release(seat).expect("release");
    }
    start.elapsed().as_nanos() as f64 / f64::from(rounds)
}

/// Pairs a second when `threads` threads (each with 16 users of its own, in turn) log
/// in and out of the same pool at once.
fn pairs_per_s(engine: &Engine, tenant: Option<&str>, threads: usize, rounds: u32) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let users: Vec<String> = (0..16).map(|u| format!("t{t}u{u}")).collect();
                for i in 0..rounds {
                    let mut req = Request::new(&users[i as usize % 16], "agent");
                    req.tenant = tenant;
                    let seat = engine.try_acquire(&req).expect("acquire");
                    engine.release(seat).expect("release");
                }
            });
        }
    });
    threads as f64 * f64::from(rounds) / start.elapsed().as_secs_f64()
}

fn main() {
    const TENANTS: usize = 10_000;
    let mut text = String::from(
        "[licenses.users]\nlimit = 5\n[licenses.callcenter]\nlimit = 3\n[profiles.agent]\nconsumes = [\"users\", \"callcenter\"]\n",
    );
    for i in 0..TENANTS {
        text.push_str(&format!("[tenants.t{i}]\nlicenses = {{ users = {} }}\n", 2 + i % 5));
    }
    let before = rss();
    let start = Instant::now();
    let engine = Engine::new(Config::from_toml_str(&text, "tenants.toml").expect("config")).expect("engine");
    let load = start.elapsed();
    let declared = rss();
    for i in 0..TENANTS {
        let t = format!("t{i}");
        let seat = engine.try_acquire(&Request::new("u", "agent").tenant(&t)).expect("acquire");
        engine.release(seat).expect("release");
    }
    let opened = rss();
    let default_ns = pair_ns(&engine, None, 200_000);
    let tenant_ns = pair_ns(&engine, Some("t42"), 200_000);
    println!(
        "tenants: {TENANTS} declared, config parsed and engine built in {:.0} ms",
        load.as_secs_f64() * 1e3
    );
    println!(
        "memory: {:.0} bytes per declared tenant, {:.0} bytes more per tenant with an open (memory) pool",
        declared.saturating_sub(before) as f64 / TENANTS as f64,
        opened.saturating_sub(declared) as f64 / TENANTS as f64
    );
    println!(
        "acquire+release pair, 1 thread: default pool {default_ns:.0} ns, a tenant's pool {tenant_ns:.0} ns ({:.2}x)",
        tenant_ns / default_ns
    );
    // Every thread of one tenant reaches the same pool: the pairs scale with the
    // threads as the default pool's do.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 16);
    let hosted = Engine::new(
        Config::from_toml_str(
            "[licenses.callcenter]\nlimit = 1000000\n[profiles.agent]\nconsumes = [\"callcenter\"]\n[tenants.acme]\n",
            "hosted.toml",
        )
        .expect("config"),
    )
    .expect("engine");
    let one = pairs_per_s(&hosted, Some("acme"), 1, 1_000_000);
    let many = pairs_per_s(&hosted, Some("acme"), threads, 1_000_000);
    let default_many = pairs_per_s(&hosted, None, threads, 1_000_000);
    println!(
        "acquire+release pairs, {threads} threads in one tenant: {:.2}M/s ({:.2}x its 1 thread's {:.2}M/s; the default pool at {threads}: {:.2}M/s)",
        many / 1e6,
        many / one,
        one / 1e6,
        default_many / 1e6
    );
}
