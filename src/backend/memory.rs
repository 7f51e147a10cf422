//! The default backend: an in-process table.
//!
//! - one cache-line-padded atomic counter per license type, taken by compare-and-swap
//!   so it never exceeds the limit, not even for an instant (made in blocks of eight
//!   type slots on first use, so a small table stays small), with *lanes* of free
//!   seats parked per thread so that logins churning below the type's peak do not all
//!   write one cache line (see `memory/counter.rs`: limits, refusals and peaks stay exact);
//! - a slab of user *slots*, one per user, each behind its own spin lock: what the user
//!   holds, their handles (inline: a login allocates nothing) and their lingering
//!   seats. A seat handle is the slot's number and a login number, so a release
//!   finds its slot without hashing; an acquire finds the user's slot through an index
//!   read without locks (`UserIndex`).
//!
//! One login or logout takes one slot lock and touches each counter it needs: with one
//! type, two atomic read-modify-writes per call, the second on the thread's own lane
//! when the seat comes from or goes to one. No lock is ever held across a call into
//! C: what changed is collected into [`Changes`] and turned into events by the engine
//! after every lock is gone. Lock order: the index's writer lock, then a slot's lock,
//! then the `gone` list; `reap_lock` before all of them.
//!
//! Expiry is found without scanning on every call: `lease_hint` and `linger_hint` are
//! lower bounds of every lease and linger deadline in the table, so a reap is a load
//! and a compare until something is really due.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use smallvec::SmallVec;
use spin::mutex::{SpinMutex, SpinMutexGuard};
use spin::relax::Yield;

mod counter;

use counter::{Counter, Hold, NO_CEILING, Taken};

use super::{
    Backend, Changes, HeldSeat, LingeringSeat, ReleaseWhy, ReleasedSeat, SeatRequest, TypeStats, next_seat_id,
};
use crate::clock::{Mono, Now, from_unix_ms, mono_ns};
use crate::config::Config;
use crate::error::{Denial, DenialReason, Error};
use crate::text::NameKey;
use crate::types::{MAX_LICENSE_TYPES, SEAT_ID_BITS, SeatId, TypeSet};

/// Type slots per block of counters. A block is allocated on the first use of one of
/// its slots and lives as long as the table: a table whose types fit in one block pays
/// 512 bytes for counters, not 4 KB for all 64 (thousands of tenants' tables may live
/// in one process). A counter never moves once made, so the lock-free protocol of
/// [`counter`] is unchanged.
const COUNTER_BLOCK: usize = 8;

/// The counter of every type slot, made block by block.
struct Counters([OnceLock<Box<[Counter; COUNTER_BLOCK]>>; MAX_LICENSE_TYPES / COUNTER_BLOCK]);

impl Counters {
    fn new() -> Counters {
        Counters(std::array::from_fn(|_| OnceLock::new()))
    }

    /// The counter of `slot`, made on first use.
    #[inline]
    fn at(&self, slot: usize) -> &Counter {
        let block = self.0[slot / COUNTER_BLOCK].get_or_init(Box::default);
        &block[slot % COUNTER_BLOCK]
    }

    /// The counter of `slot` if it was ever made (none: nothing was counted there).
    #[inline]
    fn get(&self, slot: usize) -> Option<&Counter> {
        self.0.get(slot / COUNTER_BLOCK)?.get().map(|block| &block[slot % COUNTER_BLOCK])
    }

    fn iter(&self) -> impl Iterator<Item = &Counter> {
        self.0.iter().filter_map(OnceLock::get).flat_map(|block| block.iter())
    }
}

// ---- the user table ----
//
// Users live in *slots* of a slab that never moves: a slot is found by its number
// from a seat handle (release, touch) without hashing anything, and by the user's name
// through `UserIndex` (acquire). A slot has its own small lock, held only while its
// user's state is read or changed: two users never wait for each other, and a call
// takes exactly one such lock (one compare-and-swap, and a plain store to unlock).
//
// A user's slot outlives their last logout (a returning user finds it again without
// allocating anything); idle slots are swept when the slab would otherwise grow, so
// the table holds at most about twice the users active since the last sweep.

/// Slots in the first chunk of the slab; each next chunk is twice as large.
const FIRST_CHUNK: usize = 8;
/// Chunks: 8 x (2^22 - 1) slots, more than a handle can name.
const CHUNKS: usize = 22;
/// Bits of a seat handle that carry the handle's login number; the slot number
/// is above them. 24 + 24 = the 48 bits a pool's handles may use.
const SERIAL_BITS: u32 = 24;
const SERIAL_MASK: u64 = (1 << SERIAL_BITS) - 1;
/// Most slots one pool can have (slot 0 is never used, so no handle is 0).
const MAX_SLOTS: usize = 1 << (SEAT_ID_BITS - SERIAL_BITS);

/// A user's slot: their state behind a spin lock. It is held for a few dozen
/// nanoseconds, never across a call out of the library, and only by calls about this
/// user; a waiter yields its time slice rather than burning it.
#[derive(Default)]
struct Slot(SpinMutex<UserState, Yield>);

/// One seat handle, kept in its user's slot (56 bytes).
struct Handle {
    /// Process-wide login number ([`next_seat_id`]): orders logins, and its low
    /// [`SERIAL_BITS`] bits are the handle's part of the seat id.
    order: u64,
    /// Types this handle holds as `count = "user"` (one seat shared by the user's
    /// handles) and as `count = "session"` (a seat of its own).
    user_types: TypeSet,
    session_types: TypeSet,
    /// Wall-clock login time, milliseconds since the Unix epoch.
    since_ms: i64,
    /// Lease length in nanoseconds (0: none) and the monotonic deadline it runs to.
    lease: Mono,
    deadline: Mono,
    /// Extension and session labels: rare, so out of line.
    labels: Option<Box<Labels>>,
}

struct Labels {
    extension: Option<Arc<str>>,
    session: Option<Arc<str>>,
}

impl Handle {
    #[inline]
    fn types(&self) -> TypeSet {
        self.user_types.union(self.session_types)
    }

    /// Whether the lease ran out by `now` (read only for a handle with a lease).
    #[inline]
    fn expired(&self, now: &Now<'_>) -> bool {
        self.deadline != 0 && self.deadline <= now.get()
    }

    fn extension(&self) -> Option<Arc<str>> {
        self.labels.as_ref().and_then(|l| l.extension.clone())
    }

    fn session(&self) -> Option<Arc<str>> {
        self.labels.as_ref().and_then(|l| l.session.clone())
    }
}

/// What one user holds across all of their handles. Counts per type are not kept:
/// they are read off the handles (a user has one or two).
#[derive(Default)]
struct UserState {
    /// The user this slot belongs to (`None`: a free slot).
    user: Option<Arc<str>>,
    /// `count = "user"` types with a seat counted for this user.
    counted: TypeSet,
    /// Released `count = "user"` seats kept for this user: (slot, monotonic deadline).
    lingering: Lingering,
    handles: SmallVec<[Handle; 1]>,
}

impl UserState {
    /// Types any handle of the user holds (for `requires`).
    fn held(&self) -> TypeSet {
        self.handles.iter().fold(TypeSet::EMPTY, |set, h| set.union(h.types()))
    }

    fn is_idle(&self) -> bool {
        self.handles.is_empty() && self.lingering.is_empty()
    }

    /// Whether this is the slot of `user`, whose key is `key`.
    #[inline(always)]
    fn is(&self, user: &str, key: NameKey) -> bool {
        self.user.as_deref().is_some_and(|u| {
            let held = NameKey::of(u.as_bytes());
            held == key && (key.is_whole() || u == user)
        })
    }

    /// Takes the handle at `pos` out (the last handle, the usual one, is popped:
    /// cheaper than a swap with itself).
    #[inline(always)]
    fn take_handle(&mut self, pos: usize) -> Handle {
        if pos + 1 == self.handles.len()
            && let Some(handle) = self.handles.pop()
        {
            return handle;
        }
        self.handles.swap_remove(pos)
    }

    fn position(&self, serial: u64) -> Option<usize> {
        self.handles.iter().position(|h| h.order & SERIAL_MASK == serial)
    }

    /// The login number of a new handle: the next from `next` whose serial no live
    /// handle of this user has. Serials repeat every 2^24 logins of the process, and
    /// a handle held that long must not share its seat id with a new one.
    fn fresh_order(&self, mut next: impl FnMut() -> u64) -> u64 {
        loop {
            let order = next();
            if self.position(order & SERIAL_MASK).is_none() {
                return order;
            }
        }
    }

    /// Drops the linger windows that ended by `now`; returns their types, whose seats
    /// the caller gives back.
    fn end_lingering(&mut self, now: Mono) -> TypeSet {
        let mut ended = TypeSet::EMPTY;
        self.lingering.retain(|&(slot, deadline)| {
            let live = deadline > now;
            if !live {
                ended.insert(usize::from(slot));
            }
            live
        });
        ended
    }
}

/// Released `count = "user"` seats kept for a user: (type slot, monotonic deadline).
/// Out of line (one word in the slot): few users have any.
#[derive(Default)]
#[allow(clippy::box_collection, reason = "one word in every user's slot instead of a Vec's three")]
struct Lingering(Option<Box<Vec<(u8, Mono)>>>);

impl Lingering {
    fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|v| v.is_empty())
    }

    fn iter(&self) -> std::slice::Iter<'_, (u8, Mono)> {
        self.0.as_deref().map_or([].iter(), |v| v.iter())
    }

    fn push(&mut self, item: (u8, Mono)) {
        self.0.get_or_insert_default().push(item);
    }

    fn retain(&mut self, keep: impl FnMut(&(u8, Mono)) -> bool) {
        if let Some(v) = self.0.as_mut() {
            v.retain(keep);
            if v.is_empty() {
                self.0 = None;
            }
        }
    }

    fn take(&mut self) -> Vec<(u8, Mono)> {
        self.0.take().map(|v| *v).unwrap_or_default()
    }
}

/// The slab of slots, made chunk by chunk on first use; a slot never moves.
struct Slots([OnceLock<Box<[Slot]>>; CHUNKS]);

impl Slots {
    fn new() -> Slots {
        Slots(std::array::from_fn(|_| OnceLock::new()))
    }

    /// Chunk and offset of slot `index`.
    #[inline]
    fn locate(index: usize) -> (usize, usize) {
        let n = index + FIRST_CHUNK;
        let chunk = (usize::BITS - 1 - n.leading_zeros()) as usize - FIRST_CHUNK.trailing_zeros() as usize;
        (chunk, n - (FIRST_CHUNK << chunk))
    }

    /// The slot, if its chunk was ever made.
    #[inline]
    fn get(&self, index: usize) -> Option<&Slot> {
        let (chunk, offset) = Slots::locate(index);
        self.0.get(chunk)?.get().map(|c| &c[offset])
    }

    /// The slot, making its chunk when needed (under the index's writer lock).
    fn make(&self, index: usize) -> &Slot {
        let (chunk, offset) = Slots::locate(index);
        let chunk =
            self.0[chunk].get_or_init(|| (0..FIRST_CHUNK << chunk).map(|_| Slot::default()).collect());
        &chunk[offset]
    }

    /// Every slot made so far, with its number.
    fn iter(&self) -> impl Iterator<Item = (usize, &Slot)> {
        self.0.iter().enumerate().filter_map(|(c, chunk)| chunk.get().map(|slots| (c, slots))).flat_map(
            |(c, slots)| {
                let first = (FIRST_CHUNK << c) - FIRST_CHUNK;
                slots.iter().enumerate().map(move |(i, slot)| (first + i, slot))
            },
        )
    }
}

/// User name -> slot number, read without any lock or atomic read-modify-write.
///
/// Open addressing with linear probing over words `hash tag (32 bits) | slot (32)`;
/// 0 is empty, `TOMBSTONE` a removed entry. Only the writer (under `UserTable::writer`)
/// stores words. A reader's hit is only a hint: the caller checks the slot's user
/// under the slot's lock, and anything unexpected (a miss, another user there) goes
/// to the writer's path, which searches again under the writer lock. So a reader that
/// races with a removal, an insert or a rebuild is never wrong, at worst slower.
///
/// Tables grow by levels that are never freed while the table lives (a reader may
/// still be probing an old one): the levels together take at most twice the largest.
struct UserIndex {
    levels: [OnceLock<Box<[AtomicU64]>>; INDEX_LEVELS],
    /// The level in use, or `NO_LEVEL` before the first user.
    current: AtomicUsize,
}

const INDEX_LEVELS: usize = 26;
const FIRST_INDEX: usize = 16;
const NO_LEVEL: usize = usize::MAX;
const TOMBSTONE: u64 = u64::MAX;

impl UserIndex {
    fn new() -> UserIndex {
        UserIndex { levels: std::array::from_fn(|_| OnceLock::new()), current: AtomicUsize::new(NO_LEVEL) }
    }

    #[inline]
    fn table(&self) -> Option<&[AtomicU64]> {
        let level = self.current.load(Ordering::Acquire);
        self.levels.get(level)?.get().map(|t| &t[..])
    }

    #[inline]
    fn word(hash: u64, slot: usize) -> u64 {
        (hash & 0xffff_ffff_0000_0000) | slot as u64
    }

    /// The slot numbers whose tag matches `hash`, in probe order (a hint: see above).
    #[inline]
    fn candidates(&self, hash: u64) -> impl Iterator<Item = usize> + '_ {
        let table = self.table().unwrap_or(&[]);
        let mask = table.len().wrapping_sub(1);
        let start = (hash >> 32) as usize;
        (0..table.len())
            .map(move |i| table[(start.wrapping_add(i)) & mask].load(Ordering::Acquire))
            .take_while(|&w| w != 0)
            .filter(move |&w| w != TOMBSTONE && w & 0xffff_ffff_0000_0000 == hash & 0xffff_ffff_0000_0000)
            .map(|w| (w & 0xffff_ffff) as usize)
    }

    fn put(table: &[AtomicU64], word: u64) {
        let mask = table.len() - 1;
        let mut at = Self::start_of(word) & mask;
        loop {
            let w = table[at].load(Ordering::Relaxed);
            if w == 0 || w == TOMBSTONE {
                table[at].store(word, Ordering::Release);
                return;
            }
            at = (at + 1) & mask;
        }
    }

    /// Where a word's probe starts: its tag, the hash's upper half (so the index can
    /// be rebuilt from its words alone).
    fn start_of(word: u64) -> usize {
        (word >> 32) as usize
    }
}

/// What only the writer touches: the free slots and the index's bookkeeping.
struct Writer {
    /// Slots made and free, and the next slot never made.
    free: Vec<u32>,
    next: usize,
    /// Entries in the index, and tombstones.
    live: usize,
    tombstones: usize,
    /// When the slab reaches this many slots, idle users are swept first.
    sweep_at: usize,
}

/// The users: slab, index and writer.
struct UserTable {
    slots: Slots,
    index: UserIndex,
    writer: Mutex<Writer>,
    /// Hashes names longer than 16 bytes (their keys leave out their middles).
    hasher: RandomState,
    /// Hashes the keys of names of up to 16 bytes: random per table, as `hasher` is.
    seed: [u64; 2],
}

impl UserTable {
    fn new() -> UserTable {
        UserTable {
            slots: Slots::new(),
            index: UserIndex::new(),
            writer: Mutex::new(Writer { free: Vec::new(), next: 1, live: 0, tombstones: 0, sweep_at: 1024 }),
            hasher: RandomState::default(),
            seed: {
                let random = RandomState::default();
                [random.hash_one(1u64), random.hash_one(2u64)]
            },
        }
    }

    /// The hash of `user`, whose key is `key`.
    #[inline(always)]
    fn hash(&self, user: &str, key: NameKey) -> u64 {
        // The tag (and probe start) is the upper half, every bit of it: no word is 0
        // all the same, since slot 0 is never used, and none is TOMBSTONE, since a slot
        // number fits in 24 bits. (Setting a bit of the tag to keep words off 0 made
        // every probe start at an odd position: pairs of positions filled like one
        // bucket of two, and entries sat half as far again from their starts.)
        if key.is_whole() { key.hash(self.seed) } else { self.hasher.hash_one(user) }
    }

    /// The user's slot, locked: found through the index without locks, or made under
    /// the writer lock. `Err` when the table is full.
    #[inline(always)]
    fn lock_user(&self, user: &str) -> Result<(usize, Locked<'_>), Error> {
        let key = NameKey::of(user.as_bytes());
        let hash = self.hash(user, key);
        if let Some(i) = self.index.candidates(hash).next()
            && let Some(slot) = self.slots.get(i)
        {
            let guard = slot.0.lock();
            if guard.is(user, key) {
                return Ok((i, guard));
            }
        }
        self.lock_user_slow(user, key, hash)
    }

    #[cold]
    fn lock_user_slow(&self, user: &str, key: NameKey, hash: u64) -> Result<(usize, Locked<'_>), Error> {
        let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = self.search(user, key, hash) {
            return Ok(found);
        }
        if w.free.is_empty() && w.next >= w.sweep_at {
            self.sweep(&mut w);
        }
        let index = match w.free.pop() {
            Some(i) => i as usize,
            None if w.next < MAX_SLOTS => {
                w.next += 1;
                w.next - 1
            }
            None => {
                return Err(Error::Backend(format!(
                    "the in-memory table holds its maximum of {} users",
                    MAX_SLOTS - 1
                )));
            }
        };
        let slot = self.slots.make(index);
        let mut guard = slot.0.lock();
        guard.user = Some(Arc::from(user));
        self.insert(&mut w, hash, index);
        Ok((index, guard))
    }

    /// Adds `hash -> slot` to the index, growing or rebuilding it first when full.
    fn insert(&self, w: &mut Writer, hash: u64, slot: usize) {
        let cap = self.index.table().map_or(0, <[AtomicU64]>::len);
        if (w.live + 1) * 2 > cap {
            let level = match self.index.current.load(Ordering::Relaxed) {
                NO_LEVEL => 0,
                l => l + 1,
            };
            self.rebuild(w, level);
        } else if (w.live + w.tombstones + 1) * 4 > cap * 3 {
            self.rebuild(w, self.index.current.load(Ordering::Relaxed));
        }
        if let Some(table) = self.index.table() {
            UserIndex::put(table, UserIndex::word(hash, slot));
        }
        w.live += 1;
    }

    /// Copies the live entries into level `level` (made if new, cleared if in use).
    fn rebuild(&self, w: &mut Writer, level: usize) {
        let old: Vec<u64> = self
            .index
            .table()
            .map(|t| {
                t.iter().map(|a| a.load(Ordering::Relaxed)).filter(|&x| x != 0 && x != TOMBSTONE).collect()
            })
            .unwrap_or_default();
        let table = self.index.levels[level]
            .get_or_init(|| (0..FIRST_INDEX << level).map(|_| AtomicU64::new(0)).collect());
        for word in table.iter() {
            word.store(0, Ordering::Release);
        }
        for word in old {
            UserIndex::put(table, word);
        }
        self.index.current.store(level, Ordering::Release);
        w.tombstones = 0;
    }

    /// Removes every idle user (no handle, nothing lingering), freeing their slots.
    fn sweep(&self, w: &mut Writer) {
        let mut live = 0;
        for (index, slot) in self.slots.iter() {
            let mut state = slot.0.lock();
            let Some(user) = state.user.clone() else { continue };
            if !state.is_idle() {
                live += 1;
                continue;
            }
            state.user = None;
            drop(state);
            self.remove_from_index(w, self.hash(&user, NameKey::of(user.as_bytes())), index);
            w.free.push(index as u32);
        }
        w.sweep_at = (2 * live).max(1024).max(w.next + 1);
    }

    fn remove_from_index(&self, w: &mut Writer, hash: u64, slot: usize) {
        let Some(table) = self.index.table() else { return };
        let word = UserIndex::word(hash, slot);
        let mask = table.len() - 1;
        let mut at = UserIndex::start_of(word) & mask;
        for _ in 0..table.len() {
            match table[at].load(Ordering::Relaxed) {
                0 => return,
                x if x == word => {
                    table[at].store(TOMBSTONE, Ordering::Release);
                    w.live -= 1;
                    w.tombstones += 1;
                    return;
                }
                _ => at = (at + 1) & mask,
            }
        }
    }

    /// The slot a seat handle names, and the handle's serial.
    #[inline]
    fn slot_of(&self, seat: SeatId) -> Option<(&Slot, u64)> {
        let index = (seat >> SERIAL_BITS) as usize;
        if index == 0 || index >= MAX_SLOTS {
            return None;
        }
        self.slots.get(index).map(|slot| (slot, seat & SERIAL_MASK))
    }

    /// Every slot the index names for `hash`, checked under its lock.
    fn search(&self, user: &str, key: NameKey, hash: u64) -> Option<(usize, Locked<'_>)> {
        self.index.candidates(hash).find_map(|i| {
            let guard = self.slots.get(i)?.0.lock();
            guard.is(user, key).then_some((i, guard))
        })
    }

    /// The user's slot locked, if the user is in the table.
    fn find(&self, user: &str) -> Option<(usize, Locked<'_>)> {
        let key = NameKey::of(user.as_bytes());
        let hash = self.hash(user, key);
        if let Some(found) = self.search(user, key, hash) {
            return Some(found);
        }
        // A writer may be rebuilding the index: ask again under its lock.
        let _w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        self.search(user, key, hash)
    }
}

/// A user's slot, locked.
type Locked<'a> = SpinMutexGuard<'a, UserState>;

/// The calling thread's lane when nobody needs every seat counted exactly from this
/// call (no audit log, no listener of logins); `None`: count on the central word with
/// the lanes closed.
#[inline]
fn quiet_lane(changes: &Changes) -> Option<usize> {
    if changes.quiet { changes.lane } else { None }
}

/// The most seats of type `slot` its lanes may be open at: one under its threshold
/// when somebody hears thresholds (so every change that can cross it is counted
/// exactly, with the lanes closed), else no limit.
#[inline(always)]
fn lane_ceiling(config: &Config, slot: usize, changes: &Changes) -> u32 {
    // A call with no lane (`quiet_lane`) counts exactly anyway.
    if !changes.thresholds || !changes.quiet {
        return NO_CEILING;
    }
    config.licenses.get(slot).and_then(|l| l.alert_seats()).map_or(NO_CEILING, |seats| seats - 1)
}

#[inline]
fn seat_of(index: usize, order: u64) -> SeatId {
    ((index as u64) << SERIAL_BITS) | (order & SERIAL_MASK)
}

/// The in-process seat table.
pub struct MemoryBackend {
    counters: Counters,
    users: UserTable,
    /// Lower bounds of every lease deadline and every linger deadline in the table
    /// (`u64::MAX`: none). Lowered lock-free by acquires; raised only by a reap scan,
    /// under `reap_lock`, so that a reap never misses a deadline.
    lease_hint: AtomicU64,
    linger_hint: AtomicU64,
    reap_lock: Mutex<()>,
    /// The last handles that went without their holder asking (expired, dependency,
    /// admin), so a holder that comes back with one learns why. A leaf lock, taken only
    /// on those paths, never on a normal release.
    gone: Mutex<VecDeque<(SeatId, ReleaseWhy)>>,
}

/// How many such handles `gone` remembers.
const GONE_REMEMBERED: usize = 4096;

impl MemoryBackend {
    /// An empty table. Every part of it is made on first use (counters by blocks of
    /// 8 types, user slots from a chunk of 8, the index from 16 entries), so the same
    /// table serves the main pool and each of the thousands of tenant pools a hosted
    /// installation may keep, most of them idle (`tests/tenant_memory.rs` counts the
    /// bytes).
    pub fn new() -> MemoryBackend {
        MemoryBackend {
            counters: Counters::new(),
            users: UserTable::new(),
            lease_hint: AtomicU64::new(u64::MAX),
            linger_hint: AtomicU64::new(u64::MAX),
            reap_lock: Mutex::new(()),
            gone: Mutex::new(VecDeque::new()),
        }
    }

    /// Gives back a seat of `slot`; `lane`: the caller's [`quiet_lane`]; `park`: the
    /// seat may wait there for the thread's next login (a handle of one type).
    #[inline(always)]
    fn give_back(
        &self,
        config: &Config,
        slot: usize,
        lane: Option<usize>,
        park: bool,
        changes: &mut Changes,
    ) {
        let ceiling = lane_ceiling(config, slot, changes);
        if let Some(before) = self.counters.at(slot).give_back(lane, park, ceiling) {
            changes.count(slot, before, before - 1);
        }
    }

    fn refuse(&self, config: &Config, slot: usize, used: u32) -> Error {
        let license = &config.licenses[slot];
        Error::LimitReached(Denial::limit(license.name.clone(), used, license.limit))
    }

    /// Runs with the user's slot locked: takes what is missing, all or nothing.
    fn acquire_locked(
        &self,
        config: &Config,
        index: usize,
        state: &mut UserState,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let user_types = req.types.intersect(config.user_count_types());
        let session_types = req.types.minus(user_types);

        // Dependent licenses: each required type must be held already or come along.
        let dependent = req.types.intersect(config.requiring_types());
        if !dependent.is_empty() {
            let available = req.types.union(state.held());
            for slot in dependent.iter() {
                let license = &config.licenses[slot];
                if let Some(missing) = license.requires.minus(available).iter().next() {
                    return Err(Error::LimitReached(Denial {
                        license: license.name.clone(),
                        used: self.used(config, slot),
                        limit: license.limit,
                        reason: DenialReason::MissingRequirement,
                        requires: Some(config.licenses[missing].name.clone()),
                        profile: None,
                    }));
                }
            }
        }

        // Seats lingering for this user: an ended window is freed now; a live one is
        // handed back below without counting again.
        let mut reuse = TypeSet::EMPTY;
        if !state.lingering.is_empty() {
            let lane = quiet_lane(changes);
            for slot in state.end_lingering(req.now.get()).iter() {
                self.give_back(config, slot, lane, true, changes);
            }
            for &(slot, _) in state.lingering.iter() {
                if user_types.contains(usize::from(slot)) {
                    reuse.insert(usize::from(slot));
                }
            }
        }

        let needed = user_types.minus(state.counted).minus(reuse).union(session_types);
        // A type with no seats at all can never be had: name it rather than whichever
        // other type happens to be full right now.
        if let Some(slot) = needed.iter().find(|&i| config.licenses[i].limit == 0) {
            return Err(self.refuse(config, slot, self.used(config, slot)));
        }
        if let Err((slot, used)) = self.take_needed(config, needed, changes) {
            return Err(self.refuse(config, slot, used));
        }
        if !reuse.is_empty() {
            state.lingering.retain(|&(slot, _)| !reuse.contains(usize::from(slot)));
        }
        let deadline = if req.lease > 0 { req.now.get().saturating_add(req.lease) } else { 0 };
        let labels = (req.extension.is_some() || req.session.is_some()).then(|| {
            Box::new(Labels { extension: req.extension.map(Arc::from), session: req.session.map(Arc::from) })
        });
        let seat = Self::add_handle(
            index,
            state,
            user_types,
            session_types,
            req.since_ms,
            req.lease,
            deadline,
            labels,
        );
        // After the handle is in: a reap scan that starts later sees it; one that
        // started earlier keeps this lower bound.
        if deadline != 0 {
            self.lease_hint.fetch_min(deadline, Ordering::SeqCst);
        }
        Ok(seat)
    }

    /// Takes one seat of every type in `needed`, all or nothing; `Err`: the first
    /// full type and the holders seen there (every seat taken is given back first).
    #[inline(always)]
    fn take_needed(
        &self,
        config: &Config,
        needed: TypeSet,
        changes: &mut Changes,
    ) -> Result<(), (usize, u32)> {
        let lane = quiet_lane(changes);
        if let Some(slot) = needed.only() {
            let counter = self.counters.at(slot);
            let ceiling = lane_ceiling(config, slot, changes);
            match counter.try_take(config.licenses[slot].limit, Hold::Committed, lane, ceiling) {
                Ok(Taken::Central(before)) => {
                    counter.note_taken(before + 1);
                    changes.count(slot, before, before + 1);
                }
                // Nobody needs the count, and the peak cannot have moved.
                Ok(Taken::Parked) => {}
                Err(used) => return Err((slot, used)),
            }
            return Ok(());
        }
        // A bundle: each seat tentatively, then all committed (see `counter`).
        let mut taken = TypeSet::EMPTY;
        for slot in needed.iter() {
            let ceiling = lane_ceiling(config, slot, changes);
            if let Err(used) =
                self.counters.at(slot).try_take(config.licenses[slot].limit, Hold::Tentative, lane, ceiling)
            {
                for undo in taken.iter() {
                    self.counters.at(undo).cancel();
                }
                return Err((slot, used));
            }
            taken.insert(slot);
        }
        for slot in taken.iter() {
            let counter = self.counters.at(slot);
            let before = counter.commit();
            counter.note_taken(before + 1);
            changes.count(slot, before, before + 1);
        }
        Ok(())
    }

    /// Adds a handle to the user's state (locked by the caller), counting its
    /// `count = "user"` types for the user; returns its seat id.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn add_handle(
        index: usize,
        state: &mut UserState,
        user_types: TypeSet,
        session_types: TypeSet,
        since_ms: i64,
        lease: Mono,
        deadline: Mono,
        labels: Option<Box<Labels>>,
    ) -> SeatId {
        state.counted = state.counted.union(user_types);
        let order = state.fresh_order(next_seat_id);
        state.handles.push(Handle { order, user_types, session_types, since_ms, lease, deadline, labels });
        seat_of(index, order)
    }

    /// Takes the handle at `pos` out of its user's state (locked by the caller) and
    /// gives back its seats, or keeps `count = "user"` seats lingering when `lingers`.
    #[allow(clippy::too_many_arguments)]
    fn drop_handle(
        &self,
        config: &Config,
        index: usize,
        state: &mut UserState,
        pos: usize,
        why: ReleaseWhy,
        lingers: bool,
        now: &Now<'_>,
        changes: &mut Changes,
    ) {
        let handle = state.take_handle(pos);
        let seat = seat_of(index, handle.order);
        // A `count = "user"` seat goes with the user's last handle holding its type.
        let kept = state.handles.iter().fold(TypeSet::EMPTY, |set, h| set.union(h.user_types));
        let freed = handle.user_types.minus(kept);
        state.counted = state.counted.minus(freed);
        // Which of them linger: a bit test against the config's set, so a type that
        // does not linger never has its settings read.
        let linger = if lingers { freed.intersect(config.lingering_types()) } else { TypeSet::EMPTY };
        // A bundle's seats go back to the central word, so that a type bundles use
        // does not fill its lanes with seats the bundles cannot take from there.
        let (lane, park) = (quiet_lane(changes), handle.types().len() == 1);
        for slot in handle.session_types.union(freed.minus(linger)).iter() {
            self.give_back(config, slot, lane, park, changes);
        }
        for slot in linger.iter() {
            match config.licenses.get(slot).and_then(|l| l.linger) {
                Some(window) => {
                    let deadline = now.get().saturating_add(mono_ns(window));
                    state.lingering.push((slot as u8, deadline));
                    self.linger_hint.fetch_min(deadline, Ordering::SeqCst);
                }
                None => self.give_back(config, slot, lane, park, changes),
            }
        }
        if matches!(
            why,
            ReleaseWhy::Expired
                | ReleaseWhy::Dependency
                | ReleaseWhy::Admin
                | ReleaseWhy::EmergencyExpired
                | ReleaseWhy::LicenseExpired
        ) {
            let mut gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
            if gone.len() == GONE_REMEMBERED {
                gone.pop_front();
            }
            gone.push_back((seat, why));
        }
        self.describe_release(config, &state.user, seat, &handle, why, changes);
    }

    /// Puts a released handle in `changes.released` (with each type's count right
    /// after it), unless the call is quiet and the release is one the caller asked
    /// for. A quiet call still describes a release nobody asked for (the listener may
    /// hear only those: the host must log such a user out).
    #[inline(always)]
    fn describe_release(
        &self,
        config: &Config,
        user: &Option<Arc<str>>,
        seat: SeatId,
        handle: &Handle,
        why: ReleaseWhy,
        changes: &mut Changes,
    ) {
        if changes.quiet && why == ReleaseWhy::Normal {
            return;
        }
        let types = handle.types();
        changes.released.push(ReleasedSeat {
            seat,
            user: user.clone().unwrap_or_else(|| Arc::from("")),
            types,
            why,
            extension: handle.extension(),
            session: handle.session(),
            used: types.iter().map(|slot| self.used(config, slot)).collect(),
        });
    }

    /// Releases, with the user's slot locked, every handle that holds a type whose
    /// `requires` the user no longer holds, until none is left. They linger exactly
    /// when the release that started the cascade does (an admin release frees all).
    fn cascade(
        &self,
        config: &Config,
        index: usize,
        state: &mut UserState,
        lingers: bool,
        now: &Now<'_>,
        changes: &mut Changes,
    ) {
        let dependent = config.requiring_types();
        if dependent.is_empty() {
            return;
        }
        loop {
            let held = state.held();
            let victim = state.handles.iter().position(|h| {
                h.types().intersect(dependent).iter().any(|d| !held.contains_all(config.licenses[d].requires))
            });
            let Some(pos) = victim else { return };
            let why =
                if state.handles[pos].expired(now) { ReleaseWhy::Expired } else { ReleaseWhy::Dependency };
            self.drop_handle(config, index, state, pos, why, lingers, now, changes);
        }
    }

    /// Releases the handle at `pos` and what depended on it.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn settle(
        &self,
        config: &Config,
        index: usize,
        state: &mut UserState,
        pos: usize,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) {
        self.drop_handle(config, index, state, pos, why, why.lingers(), now, changes);
        // Most configs have no `requires`: no call then.
        if !config.requiring_types().is_empty() {
            self.cascade(config, index, state, why.lingers(), now, changes);
        }
    }

    /// Releases, with the user's slot locked, every handle of the user whose lease ran
    /// out by `now` (and what depended on it); returns how many expired.
    fn settle_expired(
        &self,
        config: &Config,
        index: usize,
        state: &mut UserState,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> usize {
        let mut expired = 0;
        while let Some(pos) = state.handles.iter().position(|h| h.expired(now)) {
            self.settle(config, index, state, pos, ReleaseWhy::Expired, now, changes);
            expired += 1;
        }
        expired
    }

    /// The error for a handle that is not in the table: why it went, when known.
    fn not_held(&self, seat: SeatId) -> Error {
        let gone = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        match gone.iter().rev().find(|(s, _)| *s == seat) {
            Some((_, ReleaseWhy::Expired)) => Error::SeatExpired(seat),
            Some(&(_, why)) => Error::SeatReleased(seat, why),
            None => Error::UnknownSeat(seat),
        }
    }

    fn reap_leases(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        if now < self.lease_hint.load(Ordering::SeqCst) {
            return 0;
        }
        // From here until the scan's result is folded back in, acquires lower the hint
        // for any handle the scan may not see.
        self.lease_hint.swap(u64::MAX, Ordering::SeqCst);
        let mut next = u64::MAX;
        let mut reclaimed = 0;
        let at = Now::fixed(now);
        for (index, slot) in self.users.slots.iter() {
            let mut state = slot.0.lock();
            reclaimed += self.settle_expired(config, index, &mut state, &at, changes);
            for h in &state.handles {
                if h.deadline != 0 {
                    next = next.min(h.deadline);
                }
            }
        }
        self.lease_hint.fetch_min(next, Ordering::SeqCst);
        reclaimed
    }

    fn reap_lingers(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        if now < self.linger_hint.load(Ordering::SeqCst) {
            return 0;
        }
        self.linger_hint.swap(u64::MAX, Ordering::SeqCst);
        let (mut next, mut freed, lane) = (u64::MAX, 0, quiet_lane(changes));
        for (_, slot) in self.users.slots.iter() {
            let mut state = slot.0.lock();
            if state.lingering.is_empty() {
                continue;
            }
            for slot in state.end_lingering(now).iter() {
                self.give_back(config, slot, lane, true, changes);
                freed += 1;
            }
            for &(_, deadline) in state.lingering.iter() {
                next = next.min(deadline);
            }
        }
        self.linger_hint.fetch_min(next, Ordering::SeqCst);
        freed
    }

    /// Runs `f` on the handle `seat` names, with its user's slot locked; an expired
    /// handle is reclaimed first (and is [`Error::SeatExpired`]).
    fn with_handle<T>(
        &self,
        config: &Config,
        seat: SeatId,
        now: &Now<'_>,
        changes: &mut Changes,
        f: impl FnOnce(&mut UserState, usize, &mut Changes) -> T,
    ) -> Result<T, Error> {
        let Some((slot, serial)) = self.users.slot_of(seat) else { return Err(self.not_held(seat)) };
        let index = (seat >> SERIAL_BITS) as usize;
        let mut state = slot.0.lock();
        let Some(pos) = state.position(serial) else {
            drop(state);
            return Err(self.not_held(seat));
        };
        if state.handles[pos].expired(now) {
            self.settle(config, index, &mut state, pos, ReleaseWhy::Expired, now, changes);
            return Err(Error::SeatExpired(seat));
        }
        Ok(f(&mut state, pos, changes))
    }

    fn held_seat(index: usize, user: &Arc<str>, h: &Handle) -> HeldSeat {
        HeldSeat {
            seat: seat_of(index, h.order),
            user: user.clone(),
            types: h.types(),
            extension: h.extension(),
            session: h.session(),
            since: from_unix_ms(h.since_ms),
            deadline: h.deadline,
            node: None,
            order: h.order,
        }
    }
}

impl Default for MemoryBackend {
    fn default() -> Self {
        MemoryBackend::new()
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn try_acquire(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let (index, mut state) = self.users.lock_user(req.user)?;
        self.acquire_locked(config, index, &mut state, req, changes)
    }

    fn express_acquire(
        &self,
        config: &Config,
        types: TypeSet,
        user: &str,
        since_ms: i64,
        changes: &mut Changes,
    ) -> Option<SeatId> {
        let (index, mut state) = self.users.lock_user(user).ok()?;
        // A seat lingering for the user is handed back by the general path.
        if !state.lingering.is_empty() {
            return None;
        }
        let user_types = types.intersect(config.user_count_types());
        let session_types = types.minus(user_types);
        // A `count = "user"` type the user holds already takes no seat.
        self.take_needed(config, user_types.minus(state.counted).union(session_types), changes).ok()?;
        Some(Self::add_handle(index, &mut state, user_types, session_types, since_ms, 0, 0, None))
    }

    fn express_release(&self, config: &Config, seat: SeatId, changes: &mut Changes) -> bool {
        let Some((slot, serial)) = self.users.slot_of(seat) else { return false };
        let mut state = slot.0.lock();
        let Some(pos) = state.position(serial) else { return false };
        let handle = &state.handles[pos];
        // A lease (it may have run out), a lingering type, or a handle of the user that
        // requires a type (it may need what this one frees): the general path.
        let requiring = config.requiring_types();
        if handle.deadline != 0
            || !handle.user_types.intersect(config.lingering_types()).is_empty()
            || (!requiring.is_empty()
                && state.handles.iter().any(|h| !h.types().intersect(requiring).is_empty()))
        {
            return false;
        }
        let handle = state.take_handle(pos);
        let (user_types, session_types) = (handle.user_types, handle.session_types);
        let kept = state.handles.iter().fold(TypeSet::EMPTY, |set, h| set.union(h.user_types));
        let freed = user_types.minus(kept);
        state.counted = state.counted.minus(freed);
        let types = user_types.union(session_types);
        let (lane, park) = (quiet_lane(changes), types.len() == 1);
        for slot in session_types.union(freed).iter() {
            self.give_back(config, slot, lane, park, changes);
        }
        // Somebody hears every logout: described as the general path describes it.
        self.describe_release(config, &state.user, seat, &handle, ReleaseWhy::Normal, changes);
        // The labels tested here, inline: dropping the whole handle was a call (7 % of
        // this function) for a field only a login with an extension or session label
        // fills.
        if let Some(labels) = handle.labels {
            drop(labels);
        }
        true
    }

    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        let index = (seat >> SERIAL_BITS) as usize;
        // Under the slot's lock: a second or concurrent release of the same handle
        // finds nothing.
        self.with_handle(config, seat, now, changes, |state, pos, changes| {
            self.settle(config, index, state, pos, why, now, changes)
        })
    }

    fn release_user(
        &self,
        config: &Config,
        user: &str,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let Some((index, mut state)) = self.users.find(user) else {
            return Err(Error::UnknownUser(user.to_string()));
        };
        let now = &Now::fixed(now);
        let mut freed_lingering = false;
        if !why.lingers() {
            let lane = quiet_lane(changes);
            for (slot, _) in state.lingering.take() {
                self.give_back(config, usize::from(slot), lane, true, changes);
                freed_lingering = true;
            }
        }
        let mut released = 0;
        while !state.handles.is_empty() {
            let last = state.handles.len() - 1;
            let why = if state.handles[last].expired(now) { ReleaseWhy::Expired } else { why };
            self.drop_handle(config, index, &mut state, last, why, why.lingers(), now, changes);
            released += 1;
        }
        if released > 0 || freed_lingering { Ok(released) } else { Err(Error::UnknownUser(user.to_string())) }
    }

    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error> {
        self.with_handle(config, seat, &Now::fixed(now), changes, |state, pos, _| {
            let h = &mut state.handles[pos];
            if h.lease > 0 {
                h.deadline = now.saturating_add(h.lease);
            }
        })
    }

    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let Some((index, mut state)) = self.users.find(user) else {
            return Err(Error::UnknownUser(user.to_string()));
        };
        self.settle_expired(config, index, &mut state, &Now::fixed(now), changes);
        let mut renewed = 0;
        for h in state.handles.iter_mut() {
            if h.lease > 0 {
                h.deadline = now.saturating_add(h.lease);
            }
            renewed += 1;
        }
        if renewed == 0 { Err(Error::UnknownUser(user.to_string())) } else { Ok(renewed) }
    }

    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        let _scan = self.reap_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.reap_leases(config, now, changes) + self.reap_lingers(config, now, changes)
    }

    #[inline]
    fn used(&self, _config: &Config, slot: usize) -> u32 {
        self.counters.get(slot).map_or(0, Counter::held)
    }

    fn stats(&self, _config: &Config, slot: usize) -> TypeStats {
        self.counters.get(slot).map_or_else(TypeStats::default, |c| {
            let (peak, peak_since_reset, acquired) = c.totals();
            TypeStats { peak, peak_since_reset, acquired, denied: c.denied.load(Ordering::Relaxed) }
        })
    }

    fn count_denial(&self, _config: &Config, slot: usize) {
        if slot < MAX_LICENSE_TYPES {
            self.counters.at(slot).denied.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset_peaks(&self, _config: &Config) {
        for c in self.counters.iter() {
            c.reset_peak();
        }
    }

    fn holders(&self, _config: &Config) -> Vec<HeldSeat> {
        // Each slot is locked only while its handles are copied (refcount bumps).
        let mut out = Vec::new();
        for (index, slot) in self.users.slots.iter() {
            let state = slot.0.lock();
            if let Some(user) = &state.user {
                out.extend(state.handles.iter().map(|h| MemoryBackend::held_seat(index, user, h)));
            }
        }
        out
    }

    fn lingering(&self, _config: &Config) -> Vec<LingeringSeat> {
        let mut out = Vec::new();
        for (_, slot) in self.users.slots.iter() {
            let state = slot.0.lock();
            if let Some(user) = &state.user {
                for &(slot, deadline) in state.lingering.iter() {
                    out.push(LingeringSeat { user: user.clone(), slot: usize::from(slot), deadline });
                }
            }
        }
        out
    }

    /// A new, empty table on every call: an
    /// in-process table has nobody to share a tenant's pool with, so the engine keeps
    /// the one it opened.
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        super::check_tenant_name(tenant)?;
        Ok(Box::new(MemoryBackend::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_small() {
        // What one user costs in the slab (the name and the index come on top).
        assert!(std::mem::size_of::<Slot>() <= 104, "{}", std::mem::size_of::<Slot>());
        assert!(std::mem::size_of::<Handle>() <= 56, "{}", std::mem::size_of::<Handle>());
    }

    /// Counts the monotonic reads: exact and floor.
    #[derive(Default)]
    struct CountingClock {
        exact: std::sync::atomic::AtomicUsize,
        floor: std::sync::atomic::AtomicUsize,
    }

    impl crate::clock::Clock for CountingClock {
        fn now(&self) -> std::time::SystemTime {
            std::time::UNIX_EPOCH
        }
        fn monotonic(&self) -> Mono {
            self.exact.fetch_add(1, Ordering::Relaxed);
            5_000_000_000
        }
        fn monotonic_floor(&self) -> Mono {
            self.floor.fetch_add(1, Ordering::Relaxed);
            5_000_000_000
        }
    }

    #[test]
    fn a_login_and_logout_with_no_deadline_read_no_clock() {
        let config = Config::from_toml_str(
            "[licenses.crm]\nlimit = 10\n[licenses.desk]\nlimit = 10\nlease = \"1m\"\n",
            "t.toml",
        )
        .unwrap();
        let clock = CountingClock::default();
        let reads = |c: &CountingClock| (c.exact.load(Ordering::Relaxed), c.floor.load(Ordering::Relaxed));
        let table = MemoryBackend::new();
        let mut changes = Changes::default();

        // No lease, no linger: neither call looks at the time.
        let now = Now::lazy(&clock, false);
        let seat = table.try_acquire(&config, &request("alice", &now), &mut changes).unwrap();
        table.release(&config, seat, ReleaseWhy::Normal, &Now::lazy(&clock, false), &mut changes).unwrap();
        assert_eq!(reads(&clock), (0, 0));

        // A leased type: its deadline comes from one exact read; the release checks it
        // against one floor read.
        let now = Now::lazy(&clock, true);
        let req = SeatRequest { types: TypeSet::single(1), lease: 60_000_000_000, ..request("bob", &now) };
        let seat = table.try_acquire(&config, &req, &mut changes).unwrap();
        assert_eq!(reads(&clock), (1, 0));
        table.release(&config, seat, ReleaseWhy::Normal, &Now::lazy(&clock, false), &mut changes).unwrap();
        assert_eq!(reads(&clock), (1, 1));
        assert_eq!((table.used(&config, 0), table.used(&config, 1)), (0, 0));
    }

    #[test]
    fn one_now_is_read_at_most_once() {
        let clock = CountingClock::default();
        let now = Now::lazy(&clock, false);
        assert_eq!((now.get(), now.get()), (5_000_000_000, 5_000_000_000));
        assert_eq!(clock.floor.load(Ordering::Relaxed), 1);
        assert_eq!(clock.exact.load(Ordering::Relaxed), 0);
        assert_eq!(Now::fixed(7).get(), 7);
    }

    #[test]
    fn slot_numbers_map_onto_chunks_one_to_one() {
        let mut expect = (0, 0);
        for index in 0..100_000 {
            let (chunk, offset) = Slots::locate(index);
            assert_eq!((chunk, offset), expect, "slot {index}");
            expect = if offset + 1 == FIRST_CHUNK << chunk { (chunk + 1, 0) } else { (chunk, offset + 1) };
        }
        let (last, _) = Slots::locate(MAX_SLOTS - 1);
        assert!(last < CHUNKS);
    }

    const AT: u64 = 1;

    fn request<'a>(user: &'a str, now: &'a Now<'a>) -> SeatRequest<'a> {
        SeatRequest {
            user,
            types: TypeSet::single(0),
            extension: None,
            session: None,
            since_ms: 0,
            now,
            lease: 0,
        }
    }

    #[test]
    fn the_express_lane_serves_plain_calls_and_declines_the_rest_untouched() {
        let config = Config::from_toml_str(
            "[licenses.desk]\nlimit = 2\n[licenses.chat]\nlimit = 5\ncount = \"session\"\n\
             [licenses.crm]\nlimit = 5\nlinger = \"1m\"\n[licenses.mail]\nlimit = 5\nrequires = [\"chat\"]\n",
            "t.toml",
        )
        .unwrap();
        let (desk, chat, crm, mail) = (0, 1, 2, 3);
        let table = MemoryBackend::new();
        let quiet = || Changes { quiet: true, lane: Some(0), ..Changes::default() };

        // A per-user type: the first handle takes the seat, a second one shares it.
        let a1 =
            table.express_acquire(&config, TypeSet::single(desk), "alice", 7, &mut quiet()).expect("served");
        let a2 =
            table.express_acquire(&config, TypeSet::single(desk), "alice", 8, &mut quiet()).expect("served");
        assert_eq!(table.used(&config, desk), 1);
        let holders = table.holders(&config);
        assert_eq!(holders.len(), 2);
        assert!(holders.iter().all(|h| &*h.user == "alice" && h.types == TypeSet::single(desk)));
        // Full: declined with nothing changed (the general path refuses and says why).
        table.express_acquire(&config, TypeSet::single(desk), "bob", 9, &mut quiet()).expect("served");
        assert_eq!(table.express_acquire(&config, TypeSet::single(desk), "carol", 9, &mut quiet()), None);
        assert_eq!((table.used(&config, desk), table.holders(&config).len()), (2, 3));
        // A bundle is all or nothing: with desk full, chat is not taken either.
        let bundle = TypeSet::single(desk).union(TypeSet::single(chat));
        assert_eq!(table.express_acquire(&config, bundle, "carol", 9, &mut quiet()), None);
        assert_eq!((table.used(&config, chat), table.holders(&config).len()), (0, 3));
        // Somebody hears every login: served too, counted exactly (the change is in
        // `counts`), and the logout described as the general path describes it.
        let mut heard = Changes::default();
        let h =
            table.express_acquire(&config, TypeSet::single(chat), "alice", 9, &mut heard).expect("served");
        let counted: Vec<_> = heard.counts.iter().map(|c| (c.slot, c.before, c.after)).collect();
        assert_eq!(counted, [(chat, 0, 1)]);
        let mut heard = Changes::default();
        assert!(table.express_release(&config, h, &mut heard));
        let counted: Vec<_> = heard.counts.iter().map(|c| (c.slot, c.before, c.after)).collect();
        assert_eq!(counted, [(chat, 1, 0)]);
        let described: Vec<_> =
            heard.released.iter().map(|r| (r.seat, &*r.user, r.types, r.why, r.used.to_vec())).collect();
        assert_eq!(described, [(h, "alice", TypeSet::single(chat), ReleaseWhy::Normal, vec![0])]);
        assert_eq!(table.used(&config, chat), 0);

        // Release: the per-user seat goes with the user's last handle.
        assert!(table.express_release(&config, a1, &mut quiet()));
        assert_eq!(table.used(&config, desk), 2);
        assert!(!table.express_release(&config, a1, &mut quiet()), "a handle is released once");
        assert!(table.express_release(&config, a2, &mut quiet()));
        assert_eq!(table.used(&config, desk), 1);
        // A session type takes a seat per handle.
        let c1 =
            table.express_acquire(&config, TypeSet::single(chat), "dave", 1, &mut quiet()).expect("served");
        let c2 =
            table.express_acquire(&config, TypeSet::single(chat), "dave", 1, &mut quiet()).expect("served");
        assert_eq!(table.used(&config, chat), 2);

        // What the lane leaves to the general path, untouched: a handle with a lingering
        // type, another handle that may require what is freed (heard or not).
        let now = Now::fixed(AT);
        let mut changes = quiet();
        let req = |user, slot| SeatRequest { types: TypeSet::single(slot), ..request(user, &now) };
        let lingers = table.try_acquire(&config, &req("erin", crm), &mut changes).unwrap();
        assert!(!table.express_release(&config, lingers, &mut quiet()));
        let needs = table.try_acquire(&config, &req("dave", mail), &mut changes).unwrap();
        assert!(!table.express_release(&config, c1, &mut quiet()));
        assert!(!table.express_release(&config, c2, &mut Changes::default()));
        assert_eq!(
            (table.used(&config, chat), table.used(&config, crm), table.used(&config, mail)),
            (2, 1, 1)
        );
        // A seat lingering for the user: the general path hands it back.
        table.release(&config, lingers, ReleaseWhy::Normal, &now, &mut changes).unwrap();
        assert_eq!(table.express_acquire(&config, TypeSet::single(desk), "erin", 1, &mut quiet()), None);
        table.release(&config, needs, ReleaseWhy::Normal, &now, &mut changes).unwrap();
        assert!(table.express_release(&config, c1, &mut quiet()));
        assert!(table.express_release(&config, c2, &mut quiet()));
        assert_eq!(table.used(&config, chat), 0);
        // A bundle with room takes a seat of each type, and gives each back.
        let b = table.express_acquire(&config, bundle, "frank", 1, &mut quiet()).expect("served");
        assert_eq!((table.used(&config, desk), table.used(&config, chat)), (2, 1));
        assert!(table.express_release(&config, b, &mut quiet()));
        assert_eq!((table.used(&config, desk), table.used(&config, chat)), (1, 0));
    }

    #[test]
    fn a_new_handle_never_shares_its_serial_with_a_live_handle_of_the_user() {
        let mut state = UserState::default();
        let held = 7 | (3 << SERIAL_BITS);
        state.handles.push(Handle {
            order: held,
            user_types: TypeSet::single(0),
            session_types: TypeSet::EMPTY,
            since_ms: 0,
            lease: 0,
            deadline: 0,
            labels: None,
        });
        // 2^24 logins later the counter comes round to the held handle's serial.
        let mut offered = [held + (1 << SERIAL_BITS), held + (1 << SERIAL_BITS) + 1].into_iter();
        let order = state.fresh_order(|| offered.next().expect("a second number"));
        assert_eq!(order, held + (1 << SERIAL_BITS) + 1, "the colliding serial was skipped");
        assert_eq!(state.position(7), Some(0), "the held handle keeps its id");
    }

    #[test]
    fn idle_users_are_swept_and_everyone_is_still_found() {
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 100000\n", "t.toml").unwrap();
        let table = MemoryBackend::new();
        let mut changes = Changes::default();
        // Users who stay, across every sweep and index rebuild below.
        let stay: Vec<SeatId> = (0..300)
            .map(|i| {
                table
                    .try_acquire(&config, &request(&format!("stay-{i}"), &Now::fixed(AT)), &mut changes)
                    .unwrap()
            })
            .collect();
        for i in 0..20_000 {
            let seat = table
                .try_acquire(&config, &request(&format!("passer-{i}"), &Now::fixed(AT)), &mut changes)
                .unwrap();
            table.release(&config, seat, ReleaseWhy::Normal, &Now::fixed(AT), &mut changes).unwrap();
        }
        let made = table.users.writer.lock().unwrap().next;
        assert!(made < 3_000, "the slab grew to {made} slots for 300 users holding seats");
        assert_eq!(table.used(&config, 0), 300);
        // A second login of a staying user finds their slot: no second seat.
        for (i, &held) in stay.iter().enumerate() {
            let again = table
                .try_acquire(&config, &request(&format!("stay-{i}"), &Now::fixed(AT)), &mut changes)
                .unwrap();
            assert_eq!(again >> SERIAL_BITS, held >> SERIAL_BITS, "stay-{i} has one slot");
            table.release(&config, again, ReleaseWhy::Normal, &Now::fixed(AT), &mut changes).unwrap();
        }
        assert_eq!(table.used(&config, 0), 300);
        for seat in stay {
            table.release(&config, seat, ReleaseWhy::Normal, &Now::fixed(AT), &mut changes).unwrap();
        }
        assert_eq!(table.used(&config, 0), 0);
        assert!(table.holders(&config).is_empty());
    }

    #[test]
    fn users_sit_close_to_where_their_probe_starts() {
        // The index's linear probing: with every position a start, 20,000 users in
        // 65,536 positions (31 % full) sit (1 / (1 - 0.31) - 1) / 2 = 0.22 positions
        // from their start on average. (When the hash's tag had a bit forced on, only
        // odd positions were starts, and they sat 0.33 away.)
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 100000\n", "t.toml").unwrap();
        let table = MemoryBackend::new();
        let mut changes = Changes::default();
        for i in 0..20_000 {
            table.try_acquire(&config, &request(&format!("{i}"), &Now::fixed(AT)), &mut changes).unwrap();
        }
        let index = table.users.index.table().unwrap();
        let mask = index.len() - 1;
        let (mut entries, mut distance) = (0usize, 0usize);
        for (at, word) in index.iter().enumerate() {
            let w = word.load(Ordering::Relaxed);
            if w != 0 && w != TOMBSTONE {
                entries += 1;
                distance += at.wrapping_sub(UserIndex::start_of(w)) & mask;
            }
        }
        assert_eq!((entries, index.len()), (20_000, 65_536));
        let mean = distance as f64 / entries as f64;
        assert!(mean < 0.3, "entries sit {mean:.2} positions from their start on average");
    }

    #[test]
    fn names_that_share_their_first_and_last_bytes_are_different_users() {
        // Keys hold a name's first and last 8 bytes: longer names that differ only in
        // the middle share a key, and must still be told apart (and found again).
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 100\n", "t.toml").unwrap();
        let table = MemoryBackend::new();
        let mut changes = Changes::default();
        let names: Vec<String> = (0..40).map(|i| format!("agent---{i:02}--night@pbx")).collect();
        let key = NameKey::of(names[0].as_bytes());
        assert!(names.iter().all(|n| n.len() > 16 && NameKey::of(n.as_bytes()) == key), "one key");
        // A name of exactly 16 bytes against one of 15 with the same ends, too.
        let short = ["1234567-89abcdef".to_string(), "1234567-9abcdef".to_string()];
        let everyone: Vec<&String> = names.iter().chain(short.iter()).collect();
        let seats: Vec<SeatId> = everyone
            .iter()
            .map(|n| table.try_acquire(&config, &request(n, &Now::fixed(AT)), &mut changes).unwrap())
            .collect();
        assert_eq!(table.used(&config, 0), everyone.len() as u32, "one seat each");
        let slots: std::collections::HashSet<u64> = seats.iter().map(|s| s >> SERIAL_BITS).collect();
        assert_eq!(slots.len(), everyone.len(), "a slot each");
        // Each is found again: a second login shares the user's slot and seat.
        for (n, &held) in everyone.iter().zip(&seats) {
            let again = table.try_acquire(&config, &request(n, &Now::fixed(AT)), &mut changes).unwrap();
            assert_eq!(again >> SERIAL_BITS, held >> SERIAL_BITS, "{n} has one slot");
            table.release(&config, again, ReleaseWhy::Normal, &Now::fixed(AT), &mut changes).unwrap();
        }
        assert_eq!(table.used(&config, 0), everyone.len() as u32);
        let holders: std::collections::HashSet<String> =
            table.holders(&config).iter().map(|h| h.user.to_string()).collect();
        assert_eq!(holders, everyone.iter().map(|n| n.to_string()).collect());
        // The slot's own test, which a collision of their hashes would come down to.
        let state = UserState { user: Some(Arc::from(names[1].as_str())), ..UserState::default() };
        assert!(state.is(&names[1], NameKey::of(names[1].as_bytes())));
        assert!(!state.is(&names[2], NameKey::of(names[2].as_bytes())), "same key, another name");
        assert!(!UserState::default().is(&names[1], NameKey::of(names[1].as_bytes())), "a free slot");
    }
}
