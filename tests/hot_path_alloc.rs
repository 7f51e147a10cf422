//! The login path allocates nothing once a user has been seen: a returning user's
//! login and logout, through the engine and through the C ABI, count zero heap
//! allocations on the calling thread. (Not a timing: allocation counts, the same on
//! every run.) A user's first login makes their slot and keeps their name; a refusal
//! builds its message; neither is the hot path.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::CString;

use seatgate::ffi::{license_init, license_release, license_shutdown, license_try_acquire};
use seatgate::{Config, Engine, Request};

/// The system allocator, counting the allocations of the thread that asks.
struct Counting;

thread_local! {
    /// Whether this thread counts, and how many allocations it made meanwhile.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // `try_with`: a thread being torn down has no counter, and counts nothing.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is passed on to the system allocator unchanged; the counter is
// the only addition, and touching it allocates nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many allocations `f` made on this thread.
fn allocations_of(f: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get)
}

const CONFIG: &str = r#"
[licenses.user]
limit = 100

[licenses.callcenter]
limit = 100

[licenses.extension]
limit = 100

[profiles.operator]
consumes = ["user", "callcenter", "extension"]
"#;

#[test]
fn a_returning_users_login_and_logout_allocate_nothing() {
    // Through the engine.
    let engine =
        Engine::new(Config::from_toml_str(CONFIG, "alloc.toml").expect("valid config")).expect("engine");
    for profile in ["callcenter", "operator"] {
        // The first login makes the user's slot and keeps the name.
        let first = engine.try_acquire(&Request::new("agent-007", profile)).expect("first login");
        engine.release(first).expect("first logout");
        let n = allocations_of(|| {
            for _ in 0..1000 {
                let seat = engine.try_acquire(&Request::new("agent-007", profile)).expect("login");
                engine.release(seat).expect("logout");
            }
        });
        assert_eq!(n, 0, "engine, profile {profile}: {n} allocations in 1000 logins and logouts");
    }
    // A counted allocation is seen (the counter works): a refusal builds its message.
    let n = allocations_of(|| {
        assert!(engine.try_acquire(&Request::new("agent-007", "no-such-profile")).is_err());
    });
    assert!(n > 0, "the refusal's message was not counted");

    // Through the C ABI, as a host calls it.
    let dir = std::env::temp_dir().join(format!("seatgate-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("alloc.toml");
    std::fs::write(&path, CONFIG).expect("config written");
    let path_c = CString::new(path.to_str().expect("utf-8 path")).expect("no NUL");
    // SAFETY: a NUL-terminated path.
    assert_eq!(unsafe { license_init(path_c.as_ptr()) }, 0, "license_init");
    let user = c"agent-007";
    for profile in [c"callcenter", c"operator"] {
        let mut seat = 0u64;
        // SAFETY: NUL-terminated strings and a writable seat.
        assert_eq!(unsafe { license_try_acquire(user.as_ptr(), profile.as_ptr(), &mut seat) }, 0);
        assert_eq!(license_release(seat), 0);
        let n = allocations_of(|| {
            for _ in 0..1000 {
                // SAFETY: as above.
                assert_eq!(unsafe { license_try_acquire(user.as_ptr(), profile.as_ptr(), &mut seat) }, 0);
                assert_eq!(license_release(seat), 0);
            }
        });
        assert_eq!(n, 0, "C ABI, profile {profile:?}: {n} allocations in 1000 logins and logouts");
    }
    license_shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
