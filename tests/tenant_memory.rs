//! What a tenant's pool of the memory backend costs on the heap, counted by the global
//! allocator: a hosted installation keeps one pool per tenant, thousands of them in one
//! process, most of them idle. (Not a timing: byte counts, the same on every run.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use seatgate::backend::memory::MemoryBackend;
use seatgate::backend::{Backend, Changes, ReleaseWhy, SeatRequest};
use seatgate::{Config, TypeSet};

/// The system allocator, counting the bytes in use.
struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; the counter is
// the only addition.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const TENANTS: usize = 10_000;

/// Heap bytes per item that `make` keeps alive, over `TENANTS` items.
fn bytes_each<T>(mut make: impl FnMut(usize) -> T) -> isize {
    let mut kept = Vec::with_capacity(TENANTS);
    let before = IN_USE.load(Ordering::Relaxed);
    for i in 0..TENANTS {
        kept.push(make(i));
    }
    let after = IN_USE.load(Ordering::Relaxed);
    drop(kept);
    (after - before) / TENANTS as isize
}

// One test in this binary: no other test thread allocates while it counts.
#[test]
fn an_idle_tenant_pool_costs_a_few_kilobytes() {
    let config = Config::from_toml_str("[licenses.crm]\nlimit = 5\n", "tenants.toml").unwrap();
    let main = MemoryBackend::new();
    let empty = bytes_each(|i| main.open_tenant(&format!("t{i}")).unwrap());

    // Idle after use: one login and its logout, then nothing.
    let used_once = bytes_each(|i| {
        let pool = main.open_tenant(&format!("t{i}")).unwrap();
        let req = SeatRequest {
            user: "alice",
            types: TypeSet::single(0),
            extension: None,
            session: None,
            since_ms: 0,
            now: &seatgate::clock::Now::fixed(1),
            lease: 0,
        };
        let mut changes = Changes::default();
        let seat = pool.try_acquire(&config, &req, &mut changes).unwrap();
        pool.release(&config, seat, ReleaseWhy::Normal, &seatgate::clock::Now::fixed(2), &mut changes)
            .unwrap();
        pool
    });
    let main_pool = bytes_each(|_| Box::new(MemoryBackend::new()));
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    println!(
        "memory backend, heap bytes per pool over {TENANTS}: tenant pool empty {empty}, \
         after one login and logout {used_once}; a main pool ({cores} cores) {main_pool}"
    );
    // Empty: the struct and 2 x 4 padded shards (1,280 bytes when this was written).
    // After a login: one block of 8 counters (512), and the maps' first tables.
    assert!(empty <= 2 * 1024, "an empty tenant pool costs {empty} bytes");
    assert!(used_once <= 4 * 1024, "a tenant pool idle after one login costs {used_once} bytes");
}
