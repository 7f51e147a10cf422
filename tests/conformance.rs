//! One behaviour, every backend: the same tests run against each seat table.
//!
//! `conformance/core.rs` holds the core behaviour (profiles, all-or-nothing bundles,
//! per-user and per-session counting, handles, the report, the concurrency invariant);
//! `conformance/lifecycle.rs` the seat lifecycle (leases and reaping, reload keeping
//! seats, admin release, dependent licenses, linger, events, the audit log, billing
//! counters), with an injected clock; `conformance/policy.rs` the entitlement policy
//! (emergency seats, expiry, warnings, reservations and caps, tenants). Each backend gets its own module running both
//! files, built through `new_backend()`. A backend that cannot offer a behaviour must
//! refuse it at config load, never pass here by differing silently.

#[path = "support/redis_server.rs"]
mod redis_server;

macro_rules! backend_suite {
    ($($name:ident => $make:expr),* $(,)?) => {$(
        mod $name {
            /// A fresh, empty seat table of this backend.
            pub fn new_backend() -> Box<dyn seatgate::backend::Backend> {
                $make
            }
            mod core {
                use super::new_backend;
                include!("conformance/core.rs");
            }
            mod lifecycle {
                use super::new_backend;
                include!("conformance/lifecycle.rs");
            }
            mod policy {
                use super::new_backend;
                include!("conformance/policy.rs");
            }
        }
    )*};
}

/// A fresh shared table in its own file, unlinked at once: the mapping lives on with
/// the backend, and nothing is left behind under /dev/shm.
fn fresh_shm() -> Box<dyn seatgate::backend::Backend> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir =
        if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
    let path = dir.join(format!(
        "seatgate-conformance-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let config =
        seatgate::config::ShmConfig { path: path.clone(), capacity: 50_000, reclaim_dead_owners: true };
    let backend = seatgate::backend::shm::ShmBackend::open(&config).expect("shared table opens");
    std::fs::remove_file(&path).expect("unlink the table file");
    Box::new(backend)
}

backend_suite! {
    memory => Box::new(seatgate::backend::memory::MemoryBackend::new()),
    shm => crate::fresh_shm(),
    redis => Box::new(crate::redis_server::fresh_backend()),
}
