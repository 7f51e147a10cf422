//! The shared mapping under the `shm` backend: the only `unsafe` outside the C API.
//!
//! It does three things that safe Rust cannot: map a file `MAP_SHARED`, run a
//! process-shared *robust* pthread mutex that lives inside it, and hand out typed views
//! of the mapped bytes. Everything above it (`shm.rs`) is safe code over those views:
//!
//! - [`Header`] and the per-type [`ShmCounter`]s are atomics, read without the lock (the
//!   report, events, `license_usage`), and only ever seen through `&`;
//! - [`Tables`] (bookkeeping, user and handle records) are plain data, reachable only
//!   through a [`Guard`], which holds the mutex: one `&mut` at a time, in every process.
//!
//! Layout (all offsets 64-byte aligned, sizes checked at open against the file's
//! header, so a process built with another layout refuses instead of misreading):
//! `Header | mutex | ShmCounter × 64 | Meta | buckets: u32 × B | UserRec × U | HandleRec × C`.
//!
//! A process killed while it holds the mutex (kill -9) leaves it "owner dead": the
//! kernel's robust-futex list hands it to the next locker with `EOWNERDEAD`. The guard
//! then reports `recovered`, and the caller rebuilds every derived field from the
//! records before going on (see `ShmBackend::recover`).

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Error;
use crate::types::{MAX_LABEL_LEN, MAX_LICENSE_TYPES};

/// "SEATGATE" in the first eight bytes of the file.
pub const MAGIC: u64 = u64::from_le_bytes(*b"SEATGATE");
/// Bumped whenever any record below changes shape or meaning (2: seat ids carry a
/// per-record generation and stay below 2^48).
pub const LAYOUT_VERSION: u32 = 2;
/// `Header.state` once the creator has finished initialising the file.
const READY: u32 = 0x5EA7_0001;

/// Processes that may hold seats at once, each with its own row (pid and start time).
pub const OWNERS: usize = 1024;
/// Handles whose going-away reason is remembered for a holder that comes back later.
pub const GONE: usize = 1024;
/// Lingering seats one user may have at once (more are freed at release instead).
pub const LINGER_SLOTS: usize = crate::config::SHM_MAX_LINGER_TYPES;
/// Bytes of a label (user, extension, session): the C API's cap.
pub const LABEL: usize = MAX_LABEL_LEN + 1;

/// Lock-free part of the file's first page.
#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub state: AtomicU32,
    pub capacity: AtomicU32,
    pub user_capacity: AtomicU32,
    pub bucket_count: AtomicU32,
    pub header_size: AtomicU32,
    pub meta_size: AtomicU32,
    pub user_size: AtomicU32,
    pub handle_size: AtomicU32,
    pub counter_size: AtomicU32,
    pub total_len: AtomicU64,
    pub created_unix_ms: AtomicU64,
    /// Bumped by every reload in any process: the others reload on their next call.
    pub reload_seq: AtomicU64,
    /// Mirrors of the table fill, for the report (exact under the lock).
    pub handles_used: AtomicU32,
    pub users_used: AtomicU32,
    /// Times a lock was taken over from a process that died holding it.
    pub recoveries: AtomicU32,
    /// Lower bounds of every lease and linger deadline (monotonic ns; `u64::MAX`:
    /// none), and when dead owners are looked for next: a reap that is not due reads
    /// these and takes no lock. Lowered by writers under the lock; raised only by a
    /// reap's scan.
    pub lease_hint: AtomicU64,
    pub linger_hint: AtomicU64,
    pub next_owner_check: AtomicU64,
}

/// One license type's use and billing counters: written under the lock, read anywhere.
#[repr(C, align(64))]
#[derive(Default)]
pub struct ShmCounter {
    pub used: AtomicU32,
    pub peak: AtomicU32,
    pub peak_since_reset: AtomicU32,
    pub acquired: AtomicU64,
    pub denied: AtomicU64,
}

/// A process that holds seats: found again by pid, and told apart from a later process
/// with the same pid by its start time (`/proc/PID/stat`, field 22).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct OwnerRec {
    pub pid: i32,
    pub _pad: u32,
    pub start: u64,
    pub handles: u32,
    pub _pad2: u32,
}

/// A handle that went without its holder asking, and why (`ReleaseWhy` as a byte).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GoneRec {
    pub seat: u64,
    pub why: u8,
    pub _pad: [u8; 7],
}

/// Bookkeeping, under the lock.
#[repr(C, align(64))]
pub struct Meta {
    /// Set when the derived fields must be rebuilt before use (fresh file, dead lock
    /// owner, a panic under the lock).
    pub needs_recovery: u32,
    pub free_handle: u32,
    pub free_user: u32,
    pub gone_head: u32,
    /// Records at and past these were never used (and are all zeros): a table costs
    /// memory for the seats it held, not for its capacity.
    pub handle_hwm: u32,
    pub user_hwm: u32,
    /// Where a record handed out for the first time starts its generation (set from
    /// the clock when the file is made, so that a table removed and made again does
    /// not start its ids where the old one did).
    pub first_generation: u64,
    /// Type names by shared slot (`len` byte, then the bytes; len 0: free).
    pub type_names: [[u8; 64]; MAX_LICENSE_TYPES],
    pub owners: [OwnerRec; OWNERS],
    pub gone: [GoneRec; GONE],
}

/// One user: found by hash in `buckets`, chained through `next`.
#[repr(C)]
pub struct UserRec {
    /// 1 while in use: the commit point of a new user.
    pub live: u32,
    pub next: u32,
    pub hash: u64,
    /// First handle of this user (index + 1; 0: none), chained through `HandleRec.next`.
    pub head: u32,
    pub name_len: u16,
    pub _pad: u16,
    /// Per shared slot: how many of the user's handles hold it as `count = "user"`
    /// and as `count = "session"`, and the same as sets (derived from the handles).
    pub held: u64,
    pub counted: u64,
    pub user_refs: [u32; MAX_LICENSE_TYPES],
    pub session_refs: [u32; MAX_LICENSE_TYPES],
    /// Lingering seats: shared slot + 1 (0: empty), and their monotonic deadlines.
    pub linger_slot: [u8; LINGER_SLOTS],
    pub linger_deadline: [u64; LINGER_SLOTS],
    pub name: [u8; LABEL],
}

/// One seat handle.
#[repr(C)]
pub struct HandleRec {
    /// The handle's id; 0 while the record is free. Written last: the commit point.
    pub seat: u64,
    /// Its user (index + 1).
    pub user: u32,
    /// Next handle of the same user, or next free record (index + 1; 0: end).
    pub next: u32,
    /// Previous handle of the same user (index + 1; 0: first).
    pub prev: u32,
    /// How many times this record was handed out, wrapping (0: never): the high bits
    /// of `seat`, kept while the record is free so its next id differs.
    pub generation: u32,
    /// Shared slots held as `count = "user"` (one seat per user) and as
    /// `count = "session"` (one seat per handle).
    pub user_types: u64,
    pub session_types: u64,
    pub lease: u64,
    pub deadline: u64,
    pub since_unix_ns: u64,
    /// Row in `Meta.owners` + 1 (0: none known).
    pub owner: u32,
    pub ext_len: u16,
    pub session_len: u16,
    /// Bit 0: has an extension; bit 1: has a session label.
    pub flags: u32,
    pub _pad: u32,
    pub extension: [u8; LABEL],
    pub session: [u8; LABEL],
}

/// The views a [`Guard`] hands out.
pub struct Tables<'a> {
    pub meta: &'a mut Meta,
    pub buckets: &'a mut [u32],
    pub users: &'a mut [UserRec],
    pub handles: &'a mut [HandleRec],
}

const fn align64(n: usize) -> usize {
    (n + 63) & !63
}

const MUTEX_SPACE: usize = 64;
/// Tries before a locker sleeps.
const LOCK_SPINS: u32 = 100;
const _: () = assert!(std::mem::size_of::<libc::pthread_mutex_t>() <= MUTEX_SPACE);
const _: () = assert!(std::mem::size_of::<Header>() <= 4096);
const _: () = assert!(std::mem::size_of::<ShmCounter>() == 64);

/// Byte offsets of each region for a given capacity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    mutex: usize,
    counters: usize,
    meta: usize,
    buckets: usize,
    users: usize,
    handles: usize,
    len: usize,
    capacity: usize,
    user_capacity: usize,
    bucket_count: usize,
}

impl Layout {
    fn new(capacity: u32) -> Layout {
        let capacity = capacity as usize;
        // A user can linger without a handle: room for as many users as handles, and
        // twice as many buckets, so chains stay short.
        let user_capacity = capacity;
        let bucket_count = (user_capacity * 2).next_power_of_two();
        let mutex = align64(std::mem::size_of::<Header>());
        let counters = align64(mutex + MUTEX_SPACE);
        let meta = align64(counters + std::mem::size_of::<ShmCounter>() * MAX_LICENSE_TYPES);
        let buckets = align64(meta + std::mem::size_of::<Meta>());
        let users = align64(buckets + 4 * bucket_count);
        let handles = align64(users + std::mem::size_of::<UserRec>() * user_capacity);
        let len = align64(handles + std::mem::size_of::<HandleRec>() * capacity);
        Layout { mutex, counters, meta, buckets, users, handles, len, capacity, user_capacity, bucket_count }
    }
}

/// A mapped table. Unmapped on drop; the file stays for the other processes. It holds
/// no file descriptor (the mapping outlives it), so a process may map thousands of
/// tenants' tables without running out of descriptors.
pub struct Region {
    base: *mut u8,
    layout: Layout,
    path: PathBuf,
}

// SAFETY: the mapping is shared memory meant for concurrent use: the header and the
// counters are atomics, and the tables are reached only through the process-shared
// mutex (`Guard`).
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

/// The one message for a table this process cannot use as it is laid out.
fn another_layout(path: &Path, capacity: u32, found: &str) -> Error {
    Error::Backend(format!(
        "shared seat table {} was made by another seatgate layout or capacity ({found}); this process has layout version {LAYOUT_VERSION} and [backend] capacity = {capacity}. Stop every process using it and remove the file, or make the configs agree",
        path.display()
    ))
}

fn backend_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("shared seat table {}: {what}: {e}", path.display()))
}

impl Region {
    /// Maps the table at `path`, creating and initialising it (mode 0600) when it does
    /// not exist or was never finished. An existing table must have this build's
    /// layout and the configured capacity.
    pub fn open(path: &Path, capacity: u32) -> Result<Region, Error> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|e| backend_error(path, "cannot open or create it", e))?;
        // Openers take turns: the first one sizes and initialises the file while the
        // others wait here, and a creator that died half-way leaves a file the next
        // opener initialises again (state is not READY).
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| backend_error(path, "cannot lock it", e))?;
        let result = Region::map_locked(&file, path, capacity);
        // Unlock explicitly: the mapping keeps the open file (and so its lock) alive
        // after the descriptor is closed. On failure the mapping is gone already.
        let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
        result
    }

    fn map_locked(file: &File, path: &Path, capacity: u32) -> Result<Region, Error> {
        let layout = Layout::new(capacity);
        let size = file.metadata().map_err(|e| backend_error(path, "cannot stat it", e))?.len();
        let not_ours = || {
            Error::Backend(format!(
                "{} is not a seatgate table (wrong magic number or size); point [backend] path at another file or remove it",
                path.display()
            ))
        };
        // Only an empty file, or one of ours that its creator never finished (its full
        // size, no READY), is (re)initialised. Anything else is refused and left alone.
        let fresh = if size == 0 {
            true
        } else {
            let mut head = [0u8; 16];
            std::os::unix::fs::FileExt::read_exact_at(file, &mut head, 0).map_err(|_| not_ours())?;
            let magic = u64::from_le_bytes(head[0..8].try_into().unwrap_or_default());
            let state = u32::from_le_bytes(head[12..16].try_into().unwrap_or_default());
            if magic != MAGIC && magic != 0 {
                return Err(not_ours());
            }
            match (state == READY, size == layout.len as u64) {
                (false, true) => true,
                (false, false) => return Err(not_ours()),
                (true, true) => false,
                (true, false) => {
                    return Err(another_layout(
                        path,
                        capacity,
                        &format!("it is {size} bytes; this process needs {}", layout.len),
                    ));
                }
            }
        };
        if fresh {
            // A fresh table is all zeros, which every record reads as empty.
            file.set_len(0)
                .and_then(|()| file.set_len(layout.len as u64))
                .map_err(|e| backend_error(path, &format!("cannot size it to {} bytes", layout.len), e))?;
            // An empty file made by someone else may have looser permissions.
            file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .map_err(|e| backend_error(path, "cannot make it private (mode 0600)", e))?;
        }
        let region = Region::map(file, path, layout)?;
        if fresh {
            region.initialise(capacity)?;
        } else {
            region.check(capacity)?;
        }
        Ok(region)
    }

    fn map(file: &File, path: &Path, layout: Layout) -> Result<Region, Error> {
        // SAFETY: a fresh shared mapping of `layout.len` bytes of an open file at least
        // that long; nothing else in this process aliases it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                layout.len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(backend_error(path, "cannot map it", std::io::Error::last_os_error()));
        }
        Ok(Region { base: base.cast(), layout, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn capacity(&self) -> usize {
        self.layout.capacity
    }

    pub fn header(&self) -> &Header {
        // SAFETY: the header is at offset 0 of a live mapping, aligned (page), made of
        // atomics only.
        unsafe { &*self.base.cast::<Header>() }
    }

    pub fn counters(&self) -> &[ShmCounter] {
        // SAFETY: 64 counters at an aligned offset inside the mapping, atomics only.
        unsafe {
            std::slice::from_raw_parts(
                self.base.add(self.layout.counters).cast::<ShmCounter>(),
                MAX_LICENSE_TYPES,
            )
        }
    }

    fn mutex(&self) -> *mut libc::pthread_mutex_t {
        // SAFETY: in bounds, aligned; only ever used through pthread calls.
        unsafe { self.base.add(self.layout.mutex).cast::<libc::pthread_mutex_t>() }
    }

    /// Lays out a zeroed file: the mutex, then the header, READY last.
    fn initialise(&self, capacity: u32) -> Result<(), Error> {
        // SAFETY: standard initialisation of a process-shared, robust mutex in memory
        // nobody else uses yet (we hold the file lock and state is not READY).
        let rc = unsafe {
            let mut attr = std::mem::MaybeUninit::<libc::pthread_mutexattr_t>::uninit();
            let mut rc = libc::pthread_mutexattr_init(attr.as_mut_ptr());
            if rc == 0 {
                rc = libc::pthread_mutexattr_setpshared(attr.as_mut_ptr(), libc::PTHREAD_PROCESS_SHARED);
            }
            if rc == 0 {
                rc = libc::pthread_mutexattr_setrobust(attr.as_mut_ptr(), libc::PTHREAD_MUTEX_ROBUST);
            }
            if rc == 0 {
                rc = libc::pthread_mutex_init(self.mutex(), attr.as_ptr());
            }
            libc::pthread_mutexattr_destroy(attr.as_mut_ptr());
            rc
        };
        if rc != 0 {
            return Err(backend_error(
                &self.path,
                "cannot set up its lock",
                std::io::Error::from_raw_os_error(rc),
            ));
        }
        let l = &self.layout;
        let h = self.header();
        h.version.store(LAYOUT_VERSION, Ordering::Relaxed);
        h.capacity.store(capacity, Ordering::Relaxed);
        h.user_capacity.store(l.user_capacity as u32, Ordering::Relaxed);
        h.bucket_count.store(l.bucket_count as u32, Ordering::Relaxed);
        h.header_size.store(std::mem::size_of::<Header>() as u32, Ordering::Relaxed);
        h.meta_size.store(std::mem::size_of::<Meta>() as u32, Ordering::Relaxed);
        h.user_size.store(std::mem::size_of::<UserRec>() as u32, Ordering::Relaxed);
        h.handle_size.store(std::mem::size_of::<HandleRec>() as u32, Ordering::Relaxed);
        h.counter_size.store(std::mem::size_of::<ShmCounter>() as u32, Ordering::Relaxed);
        h.total_len.store(l.len as u64, Ordering::Relaxed);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        h.created_unix_ms.store(now_ms, Ordering::Relaxed);
        // SAFETY: nobody else can hold a view yet (file lock held, not READY).
        let meta = unsafe { &mut *self.base.add(l.meta).cast::<Meta>() };
        meta.needs_recovery = 1;
        // Handle ids from a new file should not repeat an old file's: records start
        // their generations from the clock (seconds).
        meta.first_generation = now_ms / 1000;
        h.magic.store(MAGIC, Ordering::Relaxed);
        h.state.store(READY, Ordering::Release);
        Ok(())
    }

    fn mismatch(&self, capacity: u32) -> Error {
        let h = self.header();
        let found = format!(
            "it has layout version {} and capacity {}",
            h.version.load(Ordering::Relaxed),
            h.capacity.load(Ordering::Relaxed)
        );
        another_layout(&self.path, capacity, &found)
    }

    fn check(&self, capacity: u32) -> Result<(), Error> {
        let h = self.header();
        let l = &self.layout;
        let same = h.state.load(Ordering::Acquire) == READY
            && h.magic.load(Ordering::Relaxed) == MAGIC
            && h.version.load(Ordering::Relaxed) == LAYOUT_VERSION
            && h.capacity.load(Ordering::Relaxed) == capacity
            && h.user_capacity.load(Ordering::Relaxed) as usize == l.user_capacity
            && h.bucket_count.load(Ordering::Relaxed) as usize == l.bucket_count
            && h.header_size.load(Ordering::Relaxed) as usize == std::mem::size_of::<Header>()
            && h.meta_size.load(Ordering::Relaxed) as usize == std::mem::size_of::<Meta>()
            && h.user_size.load(Ordering::Relaxed) as usize == std::mem::size_of::<UserRec>()
            && h.handle_size.load(Ordering::Relaxed) as usize == std::mem::size_of::<HandleRec>()
            && h.counter_size.load(Ordering::Relaxed) as usize == std::mem::size_of::<ShmCounter>()
            && h.total_len.load(Ordering::Relaxed) as usize == l.len;
        if same { Ok(()) } else { Err(self.mismatch(capacity)) }
    }

    /// Takes the table's mutex, waiting for other threads and processes.
    pub fn lock(&self) -> Result<Guard<'_>, Error> {
        // Critical sections are a few hundred nanoseconds: spin on trylock a little
        // before sleeping in the kernel, as glibc's adaptive mutexes do (robust ones
        // cannot be adaptive).
        let mut rc = libc::EBUSY;
        for _ in 0..LOCK_SPINS {
            // SAFETY: the mutex was initialised before READY was published.
            rc = unsafe { libc::pthread_mutex_trylock(self.mutex()) };
            if rc != libc::EBUSY {
                break;
            }
            for _ in 0..16 {
                std::hint::spin_loop();
            }
        }
        if rc == libc::EBUSY {
            // SAFETY: as above.
            rc = unsafe { libc::pthread_mutex_lock(self.mutex()) };
        }
        let recovered = match rc {
            0 => false,
            libc::EOWNERDEAD => {
                // The last owner died inside: take over, mark the mutex usable again,
                // and have the caller rebuild the derived fields before anything else.
                // SAFETY: we own the mutex (EOWNERDEAD hands it over locked).
                unsafe { libc::pthread_mutex_consistent(self.mutex()) };
                self.header().recoveries.fetch_add(1, Ordering::Relaxed);
                true
            }
            rc => {
                return Err(backend_error(
                    &self.path,
                    "cannot take its lock",
                    std::io::Error::from_raw_os_error(rc),
                ));
            }
        };
        let mut guard = Guard { region: self };
        if recovered {
            guard.tables().meta.needs_recovery = 1;
        }
        Ok(guard)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping; every view borrows `self`, so none is alive.
        unsafe { libc::munmap(self.base.cast(), self.layout.len) };
    }
}

/// The table's mutex, held. The tables are reachable only through it.
pub struct Guard<'a> {
    region: &'a Region,
}

impl Guard<'_> {
    /// The lock-protected records.
    pub fn tables(&mut self) -> Tables<'_> {
        let l = &self.region.layout;
        let base = self.region.base;
        // SAFETY: the mutex is held (by this guard, in this process), so no other view
        // of these regions exists in any process; the regions are disjoint, aligned and
        // inside the mapping; every bit pattern is a valid value of these plain types.
        unsafe {
            Tables {
                meta: &mut *base.add(l.meta).cast::<Meta>(),
                buckets: std::slice::from_raw_parts_mut(base.add(l.buckets).cast::<u32>(), l.bucket_count),
                users: std::slice::from_raw_parts_mut(base.add(l.users).cast::<UserRec>(), l.user_capacity),
                handles: std::slice::from_raw_parts_mut(base.add(l.handles).cast::<HandleRec>(), l.capacity),
            }
        }
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A bug under the lock may have left a record half-changed: rebuild first.
            self.tables().meta.needs_recovery = 1;
        }
        // SAFETY: this guard holds the mutex.
        unsafe { libc::pthread_mutex_unlock(self.region.mutex()) };
    }
}

/// A compiler barrier before a commit store: a process killed at any instruction leaves
/// every earlier store of the record in memory before the commit word (x86 and ARM
/// drain a killed thread's stores; only the compiler could reorder them).
#[inline]
pub fn commit_barrier() {
    std::sync::atomic::compiler_fence(Ordering::Release);
}

/// This process's pid, without a system call per acquire: cached, and forgotten in a
/// child right after `fork` (a `pthread_atfork` handler), since a forked worker is a
/// new seat owner.
pub fn own_pid() -> i32 {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| {
        extern "C" fn forget_in_child() {
            OWN_PID.store(0, Ordering::Relaxed);
        }
        // SAFETY: registers a handler that only stores to an atomic (async-signal-safe).
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    });
    match OWN_PID.load(Ordering::Relaxed) {
        0 => {
            let pid = rustix::process::getpid().as_raw_nonzero().get();
            OWN_PID.store(pid as u32, Ordering::Relaxed);
            pid
        }
        pid => pid as i32,
    }
}

static OWN_PID: AtomicU32 = AtomicU32::new(0);

// The record sizes are part of the file layout: changing one means bumping
// LAYOUT_VERSION (and the README's memory figures).
const _: () = assert!(std::mem::size_of::<HandleRec>() == 592);
const _: () = assert!(std::mem::size_of::<UserRec>() == 880);
