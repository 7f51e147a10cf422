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
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::SystemTime;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::{Backend, HeldSeat, SeatRequest, next_seat_id};
use crate::config::Config;
use crate::error::{Denial, Error};
use crate::types::{SeatId, TypeSet};

/// One type's seat count on its own cache line, so that types don't slow each other.
#[repr(align(64))]
#[derive(Default)]
struct Counter(AtomicU32);

impl Counter {
    /// Takes one seat if fewer than `limit` are used; on refusal returns the count seen.
    #[inline]
    fn try_take(&self, limit: u32) -> Result<(), u32> {
        self.0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| (used < limit).then(|| used + 1))
            .map(|_| ())
    }

    #[inline]
    fn give_back(&self) {
        let previous = self.0.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(previous > 0, "seat counter underflow");
    }
}

/// What one user holds across all of their handles.
#[derive(Default)]
struct UserState {
    /// `count = "user"` types held, each with the number of handles that reference it.
    refs: Vec<(u8, u32)>,
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
        self.held = TypeSet::from_bits(self.held.bits() & !(1u64 << index));
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
    users: DashMap<Arc<str>, UserState>,
    seats: DashMap<SeatId, SeatRecord>,
}

impl MemoryBackend {
    /// A table for `license_types` types, every count at zero.
    pub fn new(license_types: usize) -> MemoryBackend {
        MemoryBackend {
            counters: (0..license_types).map(|_| Counter::default()).collect(),
            users: DashMap::new(),
            seats: DashMap::new(),
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

        let mut taken = TypeSet::EMPTY;
        for index in needed.iter() {
            let license = &config.licenses[index];
            if let Err(used) = self.counters[index].try_take(license.limit) {
                for undo in taken.iter() {
                    self.counters[undo].give_back();
                }
                return Err(Error::LimitReached(Denial {
                    license: license.name.clone(),
                    used,
                    limit: license.limit,
                }));
            }
            taken.insert(index);
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
        if let Some(mut state) = self.users.get_mut(req.user) {
            let key = state.key().clone();
            return self.acquire_locked(config, &key, &mut state, req);
        }
        match self.users.entry(Arc::from(req.user)) {
            Entry::Occupied(mut entry) => {
                let key = entry.key().clone();
                self.acquire_locked(config, &key, entry.get_mut(), req)
            }
            Entry::Vacant(entry) => {
                // Only a user who got a seat handle is remembered.
                let key = entry.key().clone();
                let mut state = UserState::default();
                let seat = self.acquire_locked(config, &key, &mut state, req)?;
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
        let last_handle = {
            let Some(mut state) = self.users.get_mut(&*record.user) else {
                debug_assert!(false, "seat without user state");
                return Ok(());
            };
            for index in record.user_types.iter() {
                if state.drop_ref(index) {
                    self.counters[index].give_back();
                }
            }
            state.handles -= 1;
            state.handles == 0
        };
        if last_handle {
            // Re-checked under the shard lock: a login may have come in meanwhile.
            self.users.remove_if(&*record.user, |_, state| state.handles == 0);
        }
        Ok(())
    }

    #[inline]
    fn used(&self, index: usize) -> u32 {
        self.counters.get(index).map_or(0, |c| c.0.load(Ordering::Acquire))
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
