//! The default backend: an in-process table.
//!
//! - one cache-line-padded atomic counter per license type, taken by compare-and-swap
//!   so it never exceeds the limit, not even for an instant;
//! - `users`: per-user state (which `count = "user"` types the user holds, and by how
//!   many handles), so a user's second login takes no second seat;
//! - `seats`: handle -> what that handle holds, for release and the report.
//!
//! Lock order is `users` then `seats`, never the other way round (release removes the
//! handle from `seats` and drops that guard before it touches `users`), so the two
//! maps cannot deadlock. No guard is ever held across a call into C.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use foldhash::fast::RandomState;
use smallvec::SmallVec;

use super::{Backend, HeldSeat, SeatRequest, next_seat_id};
use crate::config::Config;
use crate::error::{Denial, Error};
use crate::types::{SeatId, TypeSet};

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
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU64);

const TENTATIVE: u64 = 1 << 32;

/// How a seat is taken: at once for good, or tentatively as one part of a bundle.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    Committed,
    Tentative,
}

impl Counter {
    /// Takes one seat if the limit allows; on refusal returns the committed count.
    #[inline]
    fn try_take(&self, limit: u32, hold: Hold) -> Result<(), u32> {
        let add = if hold == Hold::Committed { 1 } else { TENTATIVE };
        let mut current = self.0.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            let (committed, tentative) = (current as u32, (current >> 32) as u32);
            if u64::from(committed) + u64::from(tentative) < u64::from(limit) {
                match self.0.compare_exchange_weak(
                    current,
                    current + add,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(()),
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
            current = self.0.load(Ordering::Acquire);
        }
    }

    /// Turns a tentative seat into a committed one.
    #[inline]
    fn commit(&self) {
        self.0.fetch_sub(TENTATIVE - 1, Ordering::AcqRel);
    }

    /// Gives back a tentative seat.
    #[inline]
    fn cancel(&self) {
        self.0.fetch_sub(TENTATIVE, Ordering::AcqRel);
    }

    /// Gives back a committed seat.
    #[inline]
    fn give_back(&self) {
        let previous = self.0.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous as u32 > 0, "seat counter underflow");
    }

    #[inline]
    fn committed(&self) -> u32 {
        self.0.load(Ordering::Acquire) as u32
    }
}

/// What one user holds across all of their handles.
#[derive(Default)]
struct UserState {
    /// `count = "user"` types held, each with the number of handles that reference it
    /// (inline: a login allocates nothing here).
    refs: SmallVec<[(u8, u32); 6]>,
    held: TypeSet,
    handles: u32,
}

impl UserState {
    fn add_ref(&mut self, index: usize) {
        match self.refs.iter_mut().find(|(i, _)| usize::from(*i) == index) {
            Some((_, n)) => *n += 1,
            None => {
                self.refs.push((index as u8, 1));
                self.held.insert(index);
            }
        }
    }

    /// Drops one reference; true when it was the user's last one for that type.
    fn drop_ref(&mut self, index: usize) -> bool {
        let Some(pos) = self.refs.iter().position(|(i, _)| usize::from(*i) == index) else {
            debug_assert!(false, "released a type the user does not hold");
            return false;
        };
        self.refs[pos].1 -= 1;
        if self.refs[pos].1 > 0 {
            return false;
        }
        self.refs.swap_remove(pos);
        self.held = self.held.minus(TypeSet::single(index));
        true
    }
}

struct SeatRecord {
    user: Arc<str>,
    /// Types this handle references in its user's [`UserState`].
    user_types: TypeSet,
    /// Types this handle holds a seat of by itself.
    session_types: TypeSet,
    extension: Option<Arc<str>>,
    session: Option<Arc<str>>,
    since: SystemTime,
}

/// The in-process seat table.
pub struct MemoryBackend {
    counters: Box<[Counter]>,
    users: DashMap<Arc<str>, UserState, RandomState>,
    seats: DashMap<SeatId, SeatRecord, RandomState>,
}

impl MemoryBackend {
    /// A table for `license_types` types, every count at zero.
    pub fn new(license_types: usize) -> MemoryBackend {
        MemoryBackend {
            counters: (0..license_types).map(|_| Counter::default()).collect(),
            // foldhash: a per-process random seed, and several times cheaper than SipHash
            // on short keys such as user names and seat handles.
            users: DashMap::with_hasher(RandomState::default()),
            seats: DashMap::with_hasher(RandomState::default()),
        }
    }

    /// Runs with the user's state locked: takes what is missing, all or nothing.
    fn acquire_locked(
        &self,
        config: &Config,
        user_key: &Arc<str>,
        state: &mut UserState,
        req: &SeatRequest<'_>,
    ) -> Result<SeatId, Error> {
        let user_types = req.types.intersect(config.user_count_types());
        let session_types = req.types.minus(user_types);
        let needed = user_types.minus(state.held).union(session_types);

        let refuse = |index: usize, used: u32| {
            let license = &config.licenses[index];
            Err(Error::LimitReached(Denial { license: license.name.clone(), used, limit: license.limit }))
        };
        // A type with no seats at all can never be had: name it rather than whichever
        // other type happens to be full right now.
        if let Some(index) = needed.iter().find(|&i| config.licenses[i].limit == 0) {
            return refuse(index, self.counters[index].committed());
        }

        if needed.len() == 1 {
            let index = needed.iter().next().unwrap_or_default();
            if let Err(used) = self.counters[index].try_take(config.licenses[index].limit, Hold::Committed) {
                return refuse(index, used);
            }
        } else {
            let mut taken = TypeSet::EMPTY;
            for index in needed.iter() {
                if let Err(used) =
                    self.counters[index].try_take(config.licenses[index].limit, Hold::Tentative)
                {
                    for undo in taken.iter() {
                        self.counters[undo].cancel();
                    }
                    return refuse(index, used);
                }
                taken.insert(index);
            }
            for index in taken.iter() {
                self.counters[index].commit();
            }
        }

        for index in user_types.iter() {
            state.add_ref(index);
        }
        state.handles += 1;
        let seat = next_seat_id();
        self.seats.insert(
            seat,
            SeatRecord {
                user: user_key.clone(),
                user_types,
                session_types,
                extension: req.extension.map(Arc::from),
                session: req.session.map(Arc::from),
                since: req.since,
            },
        );
        Ok(seat)
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn try_acquire(&self, config: &Config, req: &SeatRequest<'_>) -> Result<SeatId, Error> {
        // Fast path: a known user is found by &str, with no allocation.
        if let Some(mut guard) = self.users.get_mut(req.user) {
            let (key, state) = guard.pair_mut();
            return self.acquire_locked(config, key, state, req);
        }
        match self.users.entry(Arc::from(req.user)) {
            Entry::Occupied(entry) => {
                let mut guard = entry.into_ref();
                let (key, state) = guard.pair_mut();
                self.acquire_locked(config, key, state, req)
            }
            Entry::Vacant(entry) => {
                // Only a user who got a seat handle is remembered.
                let mut state = UserState::default();
                let seat = self.acquire_locked(config, entry.key(), &mut state, req)?;
                entry.insert(state);
                Ok(seat)
            }
        }
    }

    fn release(&self, seat: SeatId) -> Result<(), Error> {
        // Removal is the single point that decides who releases a handle: a second or
        // concurrent release of the same handle finds nothing.
        let (_, record) = self.seats.remove(&seat).ok_or(Error::UnknownSeat(seat))?;
        for index in record.session_types.iter() {
            self.counters[index].give_back();
        }
        // One shard lock: update the user's state, and forget the user with their last
        // handle.
        self.users.remove_if_mut(&*record.user, |_, state| {
            for index in record.user_types.iter() {
                if state.drop_ref(index) {
                    self.counters[index].give_back();
                }
            }
            state.handles -= 1;
            state.handles == 0
        });
        Ok(())
    }

    #[inline]
    fn used(&self, index: usize) -> u32 {
        self.counters.get(index).map_or(0, Counter::committed)
    }

    fn holders(&self) -> Vec<HeldSeat> {
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
                }
            })
            .collect()
    }
}
