//! The default backend: an in-process table.
//!
//! - one cache-line-padded atomic counter per license type, taken by compare-and-swap
//!   so it never exceeds the limit, not even for an instant (made in blocks of eight
//!   type slots on first use, so a small table stays small);
//! - `users`: per-user state (which types the user holds, and by how many handles; the
//!   user's handles; seats lingering after a logout), so a user's second login takes
//!   no second seat, and a release can find the handles that depended on it;
//! - `seats`: handle -> what that handle holds, its lease deadline, and its labels.
//!
//! Lock order is `reap_lock`, then `users`, then `seats`, never the other way round
//! (release removes the handle from `seats` and drops that guard before it touches
//! `users`), so the maps cannot deadlock. No guard is ever held across a call into C:
//! what changed is collected into [`Changes`] and turned into events by the engine
//! after every guard is gone.
//!
//! Expiry is found without scanning on every call: `lease_hint` and `linger_hint` are
//! lower bounds of every lease and linger deadline in the table, so a reap is a load
//! and a compare until something is really due.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use foldhash::fast::RandomState;
use smallvec::SmallVec;

use super::{
    Backend, Changes, HeldSeat, LingeringSeat, ReleaseWhy, ReleasedSeat, SeatRequest, TypeStats, next_seat_id,
};
use crate::clock::{Mono, mono_ns};
use crate::config::Config;
use crate::error::{Denial, DenialReason, Error};
use crate::types::{MAX_LICENSE_TYPES, SeatId, TypeSet};

/// One type's seat count on its own cache line, so that types don't slow each other.
///
/// Low 32 bits: committed seats. High 32 bits: seats held *tentatively* by multi-type
/// bundles still in flight, which may yet give them back. Their sum never exceeds the
/// limit, so the type is never over-subscribed, not even for an instant. A request is
/// refused only when the *committed* seats fill the limit: when the type is full just
/// because a bundle in flight holds a seat it may return, the request waits the few
/// nanoseconds until that bundle commits or rolls back. Without this, a refused bundle
/// could make a concurrent login fail while a seat was in fact free.
///
/// Deadlock freedom: a bundle takes its types in ascending index order and holds only
/// lower-indexed tentative seats while it waits, so every chain of waits climbs the
/// index and cannot close into a cycle. No lock is taken while tentative seats are held.
///
/// The billing counters share the line: after a successful compare-and-swap the line
/// is already this core's, so counting costs next to nothing.
#[repr(align(64))]
#[derive(Default)]
struct Counter {
    seats: AtomicU64,
    peak: AtomicU32,
    peak_since_reset: AtomicU32,
    acquired: AtomicU64,
    denied: AtomicU64,
}

const TENTATIVE: u64 = 1 << 32;

/// Type slots per block of counters. A block is allocated on the first use of one of
/// its slots and lives as long as the table: a table whose types fit in one block pays
/// 512 bytes for counters, not 4 KB for all 64 (thousands of tenants' tables may live
/// in one process). A counter never moves once made, so the lock-free protocol above
/// is unchanged.
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

/// How a seat is taken: at once for good, or tentatively as one part of a bundle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    Committed,
    Tentative,
}

impl Counter {
    /// Takes one seat if the limit allows and returns the committed count before; on
    /// refusal returns the committed count.
    #[inline]
    fn try_take(&self, limit: u32, hold: Hold) -> Result<u32, u32> {
        let add = if hold == Hold::Committed { 1 } else { TENTATIVE };
        let mut current = self.seats.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            let (committed, tentative) = (current as u32, (current >> 32) as u32);
            if u64::from(committed) + u64::from(tentative) < u64::from(limit) {
                match self.seats.compare_exchange_weak(
                    current,
                    current + add,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(committed),
                    Err(now) => current = now,
                }
                continue;
            }
            if committed >= limit {
                return Err(committed);
            }
            // Full only because of bundles in flight: wait for them to settle.
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
            current = self.seats.load(Ordering::Acquire);
        }
    }

    /// Turns a tentative seat into a committed one; returns the committed count before.
    #[inline]
    fn commit(&self) -> u32 {
        self.seats.fetch_sub(TENTATIVE - 1, Ordering::AcqRel) as u32
    }

    /// Gives back a tentative seat.
    #[inline]
    fn cancel(&self) {
        self.seats.fetch_sub(TENTATIVE, Ordering::AcqRel);
    }

    /// Gives back a committed seat; returns the committed count before.
    #[inline]
    fn give_back(&self) -> u32 {
        let previous = self.seats.fetch_sub(1, Ordering::AcqRel) as u32;
        debug_assert!(previous > 0, "seat counter underflow");
        previous
    }

    #[inline]
    fn committed(&self) -> u32 {
        self.seats.load(Ordering::Acquire) as u32
    }

    /// Books a seat taken, with the committed count after it.
    #[inline]
    fn note_taken(&self, after: u32) {
        self.acquired.fetch_add(1, Ordering::Relaxed);
        if after > self.peak_since_reset.load(Ordering::Relaxed) {
            self.peak_since_reset.fetch_max(after, Ordering::Relaxed);
            self.peak.fetch_max(after, Ordering::Relaxed);
        }
    }
}

/// How many handles of one user hold one type.
#[derive(Clone, Copy)]
struct TypeHold {
    slot: u8,
    /// Handles that hold it as a `count = "user"` type (they share one counted seat).
    user_refs: u32,
    /// Handles that hold it as a `count = "session"` type (one seat each).
    session_refs: u32,
}

/// What one user holds across all of their handles (inline: a login allocates nothing
/// here).
#[derive(Default)]
struct UserState {
    holds: SmallVec<[TypeHold; 6]>,
    /// Types any handle of the user holds (for `requires`).
    held: TypeSet,
    /// `count = "user"` types with a seat counted for this user.
    counted: TypeSet,
    /// Released `count = "user"` seats kept for this user: (slot, monotonic deadline).
    lingering: SmallVec<[(u8, Mono); 1]>,
    /// The user's handles and the types each holds.
    handles: SmallVec<[(SeatId, TypeSet); 2]>,
}

impl UserState {
    fn hold_mut(&mut self, slot: usize) -> &mut TypeHold {
        let pos = match self.holds.iter().position(|h| usize::from(h.slot) == slot) {
            Some(pos) => pos,
            None => {
                self.holds.push(TypeHold { slot: slot as u8, user_refs: 0, session_refs: 0 });
                self.holds.len() - 1
            }
        };
        &mut self.holds[pos]
    }

    fn refresh_held(&mut self) {
        self.holds.retain(|h| h.user_refs + h.session_refs > 0);
        self.held = TypeSet::EMPTY;
        for h in &self.holds {
            self.held.insert(usize::from(h.slot));
        }
    }

    fn is_empty(&self) -> bool {
        self.handles.is_empty() && self.lingering.is_empty()
    }

    /// Drops the linger windows that ended by `now`; returns their types, whose seats
    /// the caller gives back.
    fn end_lingering(&mut self, now: Mono) -> TypeSet {
        let mut ended = TypeSet::EMPTY;
        self.lingering.retain(|&mut (slot, deadline)| {
            let live = deadline > now;
            if !live {
                ended.insert(usize::from(slot));
            }
            live
        });
        ended
    }
}

struct SeatRecord {
    user: Arc<str>,
    /// Types this handle references in its user's [`UserState`] (one shared seat).
    user_types: TypeSet,
    /// Types this handle holds a seat of by itself.
    session_types: TypeSet,
    extension: Option<Arc<str>>,
    session: Option<Arc<str>>,
    since: SystemTime,
    /// Lease length in nanoseconds (0: none) and the monotonic deadline it runs to.
    lease: Mono,
    deadline: Mono,
}

impl SeatRecord {
    #[inline]
    fn expired(&self, now: Mono) -> bool {
        self.deadline != 0 && self.deadline <= now
    }

    fn released(&self, seat: SeatId, why: ReleaseWhy) -> ReleasedSeat {
        ReleasedSeat {
            seat,
            user: self.user.clone(),
            types: self.user_types.union(self.session_types),
            why,
            extension: self.extension.clone(),
            session: self.session.clone(),
            used: SmallVec::new(),
        }
    }
}

/// The in-process seat table.
pub struct MemoryBackend {
    counters: Counters,
    users: DashMap<Arc<str>, UserState, RandomState>,
    seats: DashMap<SeatId, SeatRecord, RandomState>,
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

/// Shards of each map of a tenant's pool (see [`MemoryBackend::for_tenant`]).
const TENANT_SHARDS: usize = 4;

impl MemoryBackend {
    /// An empty table with a counter for every possible type slot.
    pub fn new() -> MemoryBackend {
        MemoryBackend::with_shards(None)
    }

    /// An empty table for one tenant of a hosted installation, where thousands of such
    /// tables may live in one process, most of them idle: its maps have
    /// 4 shards (`TENANT_SHARDS`) instead of dashmap's default of four per core rounded
    /// up to a power of two (each shard is a 128-byte padded lock: 64 per map on 16
    /// cores). Measured by `tests/tenant_memory.rs` (counting allocator, 10,000 tables):
    /// 1,280 heap bytes for an empty one (the struct and 2 x 4 shards), 3,048 once it
    /// had one login and its logout (a block of counters, and the first tables of both
    /// maps, which they keep); [`MemoryBackend::new`] costs 2,304 on 2 cores and
    /// about 16.6 KB on 16.
    pub fn for_tenant() -> MemoryBackend {
        MemoryBackend::with_shards(Some(TENANT_SHARDS))
    }

    fn with_shards(shards: Option<usize>) -> MemoryBackend {
        // foldhash: a per-process random seed, and several times cheaper than SipHash
        // on short keys such as user names and seat handles.
        fn map<K: Eq + std::hash::Hash, V>(shards: Option<usize>) -> DashMap<K, V, RandomState> {
            match shards {
                Some(n) => DashMap::with_hasher_and_shard_amount(RandomState::default(), n),
                None => DashMap::with_hasher(RandomState::default()),
            }
        }
        MemoryBackend {
            counters: Counters::new(),
            users: map(shards),
            seats: map(shards),
            lease_hint: AtomicU64::new(u64::MAX),
            linger_hint: AtomicU64::new(u64::MAX),
            reap_lock: Mutex::new(()),
            gone: Mutex::new(VecDeque::new()),
        }
    }

    #[inline]
    fn give_back(&self, slot: usize, changes: &mut Changes) {
        let before = self.counters.at(slot).give_back();
        changes.count(slot, before, before - 1);
    }

    fn refuse(&self, config: &Config, slot: usize, used: u32) -> Error {
        let license = &config.licenses[slot];
        Error::LimitReached(Denial::limit(license.name.clone(), used, license.limit))
    }

    /// Runs with the user's state locked: takes what is missing, all or nothing.
    fn acquire_locked(
        &self,
        config: &Config,
        user_key: &Arc<str>,
        state: &mut UserState,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let user_types = req.types.intersect(config.user_count_types());
        let session_types = req.types.minus(user_types);

        // Dependent licenses: each required type must be held already or come along.
        let dependent = req.types.intersect(config.requiring_types());
        if !dependent.is_empty() {
            let available = req.types.union(state.held);
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
            for slot in state.end_lingering(req.now).iter() {
                self.give_back(slot, changes);
            }
            for &(slot, _) in &state.lingering {
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
        if needed.len() == 1 {
            let slot = needed.iter().next().unwrap_or_default();
            let counter = self.counters.at(slot);
            match counter.try_take(config.licenses[slot].limit, Hold::Committed) {
                Ok(before) => {
                    counter.note_taken(before + 1);
                    changes.count(slot, before, before + 1);
                }
                Err(used) => return Err(self.refuse(config, slot, used)),
            }
        } else if !needed.is_empty() {
            let mut taken = TypeSet::EMPTY;
            for slot in needed.iter() {
                if let Err(used) =
                    self.counters.at(slot).try_take(config.licenses[slot].limit, Hold::Tentative)
                {
                    for undo in taken.iter() {
                        self.counters.at(undo).cancel();
                    }
                    return Err(self.refuse(config, slot, used));
                }
                taken.insert(slot);
            }
            for slot in taken.iter() {
                let counter = self.counters.at(slot);
                let before = counter.commit();
                counter.note_taken(before + 1);
                changes.count(slot, before, before + 1);
            }
        }

        if !reuse.is_empty() {
            state.lingering.retain(|&mut (slot, _)| !reuse.contains(usize::from(slot)));
        }
        for slot in user_types.iter() {
            state.hold_mut(slot).user_refs += 1;
        }
        for slot in session_types.iter() {
            state.hold_mut(slot).session_refs += 1;
        }
        state.counted = state.counted.union(user_types);
        state.held = state.held.union(req.types);
        let seat = next_seat_id();
        state.handles.push((seat, req.types));
        let deadline = if req.lease > 0 { req.now.saturating_add(req.lease) } else { 0 };
        self.seats.insert(
            seat,
            SeatRecord {
                user: user_key.clone(),
                user_types,
                session_types,
                extension: req.extension.map(Arc::from),
                session: req.session.map(Arc::from),
                since: req.since,
                lease: req.lease,
                deadline,
            },
        );
        // After the insert: a reap scan that starts later sees the record; one that
        // started earlier keeps this lower bound.
        if deadline != 0 {
            self.lease_hint.fetch_min(deadline, Ordering::SeqCst);
        }
        Ok(seat)
    }

    /// Takes a removed handle out of its user's state (locked by the caller) and gives
    /// back its seats, or keeps `count = "user"` seats lingering when `lingers`.
    #[allow(clippy::too_many_arguments)]
    fn drop_handle(
        &self,
        config: &Config,
        state: &mut UserState,
        seat: SeatId,
        record: &SeatRecord,
        why: ReleaseWhy,
        lingers: bool,
        now: Mono,
        changes: &mut Changes,
    ) {
        if let Some(pos) = state.handles.iter().position(|&(h, _)| h == seat) {
            state.handles.swap_remove(pos);
        }
        for slot in record.session_types.iter() {
            self.give_back(slot, changes);
            state.hold_mut(slot).session_refs -= 1;
        }
        for slot in record.user_types.iter() {
            let hold = state.hold_mut(slot);
            hold.user_refs -= 1;
            if hold.user_refs > 0 {
                continue;
            }
            state.counted = state.counted.minus(TypeSet::single(slot));
            let linger = config.licenses.get(slot).and_then(|l| l.linger).filter(|_| lingers);
            match linger {
                Some(window) => {
                    let deadline = now.saturating_add(mono_ns(window));
                    state.lingering.push((slot as u8, deadline));
                    self.linger_hint.fetch_min(deadline, Ordering::SeqCst);
                }
                None => self.give_back(slot, changes),
            }
        }
        state.refresh_held();
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
        let mut released = record.released(seat, why);
        released.used = released.types.iter().map(|slot| self.used(config, slot)).collect();
        changes.released.push(released);
    }

    /// Releases, with the user's state locked, every handle that holds a type whose
    /// `requires` the user no longer holds, until none is left. They linger exactly
    /// when the release that started the cascade does (an admin release frees all).
    fn cascade(
        &self,
        config: &Config,
        state: &mut UserState,
        lingers: bool,
        now: Mono,
        changes: &mut Changes,
    ) {
        let dependent = config.requiring_types();
        if dependent.is_empty() {
            return;
        }
        loop {
            let held = state.held;
            let victims: SmallVec<[SeatId; 4]> = state
                .handles
                .iter()
                .filter(|(_, types)| {
                    types.intersect(dependent).iter().any(|d| !held.contains_all(config.licenses[d].requires))
                })
                .map(|&(h, _)| h)
                .collect();
            let mut progressed = false;
            for victim in victims {
                // A handle another thread is releasing right now is settled by that
                // thread, which runs this cascade again under the same lock.
                if let Some((_, record)) = self.seats.remove(&victim) {
                    let why = if record.expired(now) { ReleaseWhy::Expired } else { ReleaseWhy::Dependency };
                    self.drop_handle(config, state, victim, &record, why, lingers, now, changes);
                    progressed = true;
                }
            }
            if !progressed {
                return;
            }
        }
    }

    /// Finishes the release of a handle already removed from `seats`.
    fn settle(
        &self,
        config: &Config,
        seat: SeatId,
        record: SeatRecord,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) {
        // The user's state exists: a handle is inserted while its user's entry is
        // locked, and that entry outlives its handles.
        self.users.remove_if_mut(&*record.user, |_, state| {
            self.drop_handle(config, state, seat, &record, why, why.lingers(), now, changes);
            self.cascade(config, state, why.lingers(), now, changes);
            state.is_empty()
        });
    }

    /// Removes `seat` if it is expired, settling it as expired.
    fn reclaim_if_expired(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> bool {
        match self.seats.remove_if(&seat, |_, r| r.expired(now)) {
            Some((_, record)) => {
                self.settle(config, seat, record, ReleaseWhy::Expired, now, changes);
                true
            }
            None => false,
        }
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
        // for any record the scan may not see.
        self.lease_hint.swap(u64::MAX, Ordering::SeqCst);
        let mut next = u64::MAX;
        let mut due: Vec<SeatId> = Vec::new();
        for entry in self.seats.iter() {
            let deadline = entry.value().deadline;
            if deadline == 0 {
                continue;
            }
            if deadline <= now {
                due.push(*entry.key());
            } else {
                next = next.min(deadline);
            }
        }
        self.lease_hint.fetch_min(next, Ordering::SeqCst);
        due.into_iter().filter(|&seat| self.reclaim_if_expired(config, seat, now, changes)).count()
    }

    fn reap_lingers(&self, now: Mono, changes: &mut Changes) -> usize {
        if now < self.linger_hint.load(Ordering::SeqCst) {
            return 0;
        }
        self.linger_hint.swap(u64::MAX, Ordering::SeqCst);
        let mut next = u64::MAX;
        let mut due: Vec<Arc<str>> = Vec::new();
        for entry in self.users.iter() {
            let mut is_due = false;
            for &(_, deadline) in &entry.value().lingering {
                if deadline <= now {
                    is_due = true;
                } else {
                    next = next.min(deadline);
                }
            }
            if is_due {
                due.push(entry.key().clone());
            }
        }
        self.linger_hint.fetch_min(next, Ordering::SeqCst);
        let mut freed = 0;
        for user in due {
            self.users.remove_if_mut(&*user, |_, state| {
                for slot in state.end_lingering(now).iter() {
                    self.give_back(slot, changes);
                    freed += 1;
                }
                state.is_empty()
            });
        }
        freed
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
        // Fast path: a known user is found by &str, with no allocation.
        if let Some(mut guard) = self.users.get_mut(req.user) {
            let (key, state) = guard.pair_mut();
            let result = self.acquire_locked(config, key, state, req, changes);
            let forget = result.is_err() && state.is_empty();
            drop(guard);
            if forget {
                // Only lingering seats kept this user known, and they just ended.
                self.users.remove_if(req.user, |_, state| state.is_empty());
            }
            return result;
        }
        match self.users.entry(Arc::from(req.user)) {
            Entry::Occupied(entry) => {
                let mut guard = entry.into_ref();
                let (key, state) = guard.pair_mut();
                self.acquire_locked(config, key, state, req, changes)
            }
            Entry::Vacant(entry) => {
                // Only a user who got a seat handle is remembered.
                let mut state = UserState::default();
                let seat = self.acquire_locked(config, entry.key(), &mut state, req, changes)?;
                entry.insert(state);
                Ok(seat)
            }
        }
    }

    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        // Removal is the single point that decides who releases a handle: a second or
        // concurrent release of the same handle finds nothing.
        match self.seats.remove_if(&seat, |_, r| !r.expired(now)) {
            Some((_, record)) => {
                self.settle(config, seat, record, why, now, changes);
                Ok(())
            }
            None if self.reclaim_if_expired(config, seat, now, changes) => Err(Error::SeatExpired(seat)),
            None => Err(self.not_held(seat)),
        }
    }

    fn release_user(
        &self,
        config: &Config,
        user: &str,
        why: ReleaseWhy,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let mut released = 0;
        let mut freed_lingering = false;
        self.users.remove_if_mut(user, |_, state| {
            if !why.lingers() {
                for (slot, _) in std::mem::take(&mut state.lingering) {
                    self.give_back(usize::from(slot), changes);
                    freed_lingering = true;
                }
            }
            let handles: SmallVec<[SeatId; 4]> = state.handles.iter().map(|&(h, _)| h).collect();
            for seat in handles {
                if let Some((_, record)) = self.seats.remove(&seat) {
                    let why = if record.expired(now) { ReleaseWhy::Expired } else { why };
                    self.drop_handle(config, state, seat, &record, why, why.lingers(), now, changes);
                    released += 1;
                }
            }
            state.is_empty()
        });
        if released > 0 || freed_lingering { Ok(released) } else { Err(Error::UnknownUser(user.to_string())) }
    }

    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error> {
        match self.seats.get_mut(&seat) {
            Some(mut record) if !record.expired(now) => {
                if record.lease > 0 {
                    record.deadline = now.saturating_add(record.lease);
                }
                Ok(())
            }
            Some(record) => {
                drop(record);
                self.reclaim_if_expired(config, seat, now, changes);
                Err(Error::SeatExpired(seat))
            }
            None => Err(self.not_held(seat)),
        }
    }

    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        let handles: SmallVec<[SeatId; 4]> = match self.users.get(user) {
            Some(state) => state.handles.iter().map(|&(h, _)| h).collect(),
            None => SmallVec::new(),
        };
        let renewed =
            handles.into_iter().filter(|&seat| self.touch(config, seat, now, changes).is_ok()).count();
        if renewed == 0 { Err(Error::UnknownUser(user.to_string())) } else { Ok(renewed) }
    }

    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        let _scan = self.reap_lock.lock().unwrap_or_else(|e| e.into_inner());
        self.reap_leases(config, now, changes) + self.reap_lingers(now, changes)
    }

    #[inline]
    fn used(&self, _config: &Config, slot: usize) -> u32 {
        self.counters.get(slot).map_or(0, Counter::committed)
    }

    fn stats(&self, _config: &Config, slot: usize) -> TypeStats {
        self.counters.get(slot).map_or_else(TypeStats::default, |c| TypeStats {
            peak: c.peak.load(Ordering::Relaxed),
            peak_since_reset: c.peak_since_reset.load(Ordering::Relaxed),
            acquired: c.acquired.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
        })
    }

    fn count_denial(&self, _config: &Config, slot: usize) {
        if slot < MAX_LICENSE_TYPES {
            self.counters.at(slot).denied.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset_peaks(&self, _config: &Config) {
        for c in self.counters.iter() {
            c.peak_since_reset.store(c.committed(), Ordering::Relaxed);
        }
    }

    fn holders(&self, _config: &Config) -> Vec<HeldSeat> {
        // Each shard is read-locked only while its entries are copied (refcount bumps).
        self.seats
            .iter()
            .map(|entry| {
                let r = entry.value();
                HeldSeat {
                    seat: *entry.key(),
                    user: r.user.clone(),
                    types: r.user_types.union(r.session_types),
                    extension: r.extension.clone(),
                    session: r.session.clone(),
                    since: r.since,
                    deadline: r.deadline,
                    node: None,
                }
            })
            .collect()
    }

    fn lingering(&self, _config: &Config) -> Vec<LingeringSeat> {
        let mut out = Vec::new();
        for entry in self.users.iter() {
            for &(slot, deadline) in &entry.value().lingering {
                out.push(LingeringSeat { user: entry.key().clone(), slot: usize::from(slot), deadline });
            }
        }
        out
    }

    /// A new, empty table ([`MemoryBackend::for_tenant`]) on every call: an
    /// in-process table has nobody to share a tenant's pool with, so the engine keeps
    /// the one it opened.
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        super::check_tenant_name(tenant)?;
        Ok(Box::new(MemoryBackend::for_tenant()))
    }
}
