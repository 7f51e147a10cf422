//! One behaviour, every backend: the same tests run against each seat table.
//!
//! `conformance/core.rs` holds the core behaviour (profiles, all-or-nothing bundles,
//! per-user and per-session counting, handles, the report, the concurrency invariant);
//! `conformance/lifecycle.rs` the seat lifecycle (leases and reaping, reload keeping
//! seats, admin release, dependent licenses, linger, events, the audit log, billing
//! counters), with an injected clock. Each backend gets its own module running both
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
        }
    )*};
}

backend_suite! {
    memory => Box::new(seatgate::backend::memory::MemoryBackend::new()),
    redis => Box::new(crate::redis_server::fresh_backend()),
}
