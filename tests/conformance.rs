//! One behaviour, every backend: the same tests run against each seat table.
//!
//! `conformance/core.rs` holds the core behaviour (profiles, all-or-nothing bundles,
//! per-user and per-session counting, handles, the report, the concurrency invariant);
//! `conformance/lifecycle.rs` the seat lifecycle (leases and reaping, reload keeping
//! seats, admin release, dependent licenses, linger, events, the audit log, billing
//! counters), with an injected clock; `conformance/tenants.rs` the pools of a hosted
//! installation's tenants (`Backend::open_tenant`); `conformance/policy.rs` the
//! entitlement policy (emergency seats, expiry, warnings, reservations and caps,
//! tenants and run-time limits, signed licenses). Each backend gets its own module
//! running every file, built through `new_backend()`. A backend that cannot offer a
//! behaviour must
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
            mod tenants {
                use super::new_backend;
                include!("conformance/tenants.rs");
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
    Box::new(ScratchShm { pool: Box::new(backend), path, remove: false })
}

/// A shm pool whose tenants' files go away with the pools that opened them, so the
/// suite leaves nothing under /dev/shm (the main file is unlinked at once; a tenant's
/// file must outlive its first open, since opening the tenant again must find it).
/// Everything else is the shm backend's own.
struct ScratchShm {
    pool: Box<dyn seatgate::backend::Backend>,
    path: std::path::PathBuf,
    remove: bool,
}

impl Drop for ScratchShm {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_file(&self.path);
        } else {
            // The main pool's tenant registry, made when the suite's engines had tenants.
            let _ = std::fs::remove_file(format!("{}@@tenants", self.path.display()));
        }
    }
}

mod scratch {
    use seatgate::backend::{
        Backend, BackendStatus, Changes, HeldSeat, LingeringSeat, ReleaseWhy, SeatRequest, TypeStats,
    };
    use seatgate::clock::{Mono, Now};
    use seatgate::{Config, Error, SeatId};

    impl Backend for super::ScratchShm {
        fn kind(&self) -> &'static str {
            self.pool.kind()
        }
        fn try_acquire(&self, c: &Config, r: &SeatRequest<'_>, ch: &mut Changes) -> Result<SeatId, Error> {
            self.pool.try_acquire(c, r, ch)
        }
        fn release(
            &self,
            c: &Config,
            s: SeatId,
            w: ReleaseWhy,
            n: &Now<'_>,
            ch: &mut Changes,
        ) -> Result<(), Error> {
            self.pool.release(c, s, w, n, ch)
        }
        fn release_user(
            &self,
            c: &Config,
            u: &str,
            w: ReleaseWhy,
            n: Mono,
            ch: &mut Changes,
        ) -> Result<usize, Error> {
            self.pool.release_user(c, u, w, n, ch)
        }
        fn touch(&self, c: &Config, s: SeatId, n: Mono, ch: &mut Changes) -> Result<(), Error> {
            self.pool.touch(c, s, n, ch)
        }
        fn touch_user(&self, c: &Config, u: &str, n: Mono, ch: &mut Changes) -> Result<usize, Error> {
            self.pool.touch_user(c, u, n, ch)
        }
        fn reap(&self, c: &Config, n: Mono, ch: &mut Changes) -> usize {
            self.pool.reap(c, n, ch)
        }
        fn used(&self, c: &Config, slot: usize) -> u32 {
            self.pool.used(c, slot)
        }
        fn stats(&self, c: &Config, slot: usize) -> TypeStats {
            self.pool.stats(c, slot)
        }
        fn count_denial(&self, c: &Config, slot: usize) {
            self.pool.count_denial(c, slot)
        }
        fn reset_peaks(&self, c: &Config) {
            self.pool.reset_peaks(c)
        }
        fn holders(&self, c: &Config) -> Vec<HeldSeat> {
            self.pool.holders(c)
        }
        fn own_holders(&self, c: &Config) -> Vec<HeldSeat> {
            self.pool.own_holders(c)
        }
        fn lingering(&self, c: &Config) -> Vec<LingeringSeat> {
            self.pool.lingering(c)
        }
        fn reload_epoch(&self) -> u64 {
            self.pool.reload_epoch()
        }
        fn announce_reload(&self) -> u64 {
            self.pool.announce_reload()
        }
        fn status(&self, c: &Config) -> BackendStatus {
            self.pool.status(c)
        }
        fn shared(&self) -> bool {
            self.pool.shared()
        }
        fn tenant_numbers(&self, names: &[&str], max: usize) -> Result<Option<Vec<u32>>, Error> {
            self.pool.tenant_numbers(names, max)
        }
        fn tenant_named(&self, number: u32) -> Result<Option<std::sync::Arc<str>>, Error> {
            self.pool.tenant_named(number)
        }
        fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
            let pool = self.pool.open_tenant(tenant)?;
            let mut path = self.path.clone().into_os_string();
            path.push(format!("@{tenant}"));
            Ok(Box::new(super::ScratchShm { pool, path: path.into(), remove: true }))
        }
    }
}

backend_suite! {
    memory => Box::new(seatgate::backend::memory::MemoryBackend::new()),
    shm => crate::fresh_shm(),
    redis => Box::new(crate::redis_server::fresh_backend()),
}
