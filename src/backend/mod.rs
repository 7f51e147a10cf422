//! The boundary between the engine and the place where seats live.
//!
//! The engine resolves a request to a set of license types and hands the backend one
//! all-or-nothing operation; the backend owns the counts and the holders. The in-process
//! [`memory::MemoryBackend`] is the default; backends that span processes or hosts plug
//! in behind the same trait and pass the same conformance suite.

pub mod memory;

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::config::Config;
use crate::error::Error;
use crate::types::{SeatId, TypeSet};

/// One resolved acquire: who, which license types, and the labels the report shows.
#[derive(Debug, Clone, Copy)]
pub struct SeatRequest<'a> {
    pub user: &'a str,
    /// Union of the license types of every profile named in the request.
    pub types: TypeSet,
    pub extension: Option<&'a str>,
    pub session: Option<&'a str>,
    pub since: SystemTime,
}

/// A held seat handle as seen by a report snapshot.
#[derive(Debug, Clone)]
pub struct HeldSeat {
    pub seat: SeatId,
    pub user: Arc<str>,
    /// Every license type this handle asked for (counted per user or per session).
    pub types: TypeSet,
    pub extension: Option<Arc<str>>,
    pub session: Option<Arc<str>>,
    pub since: SystemTime,
}

/// Where seats are counted. Every method is safe to call from any thread at any time.
pub trait Backend: Send + Sync {
    /// Short name shown in reports ("memory", ...).
    fn kind(&self) -> &'static str;

    /// Takes one seat of every type in `req.types` that the user needs, or nothing.
    ///
    /// - `count = "user"` types the user already holds take no extra seat;
    /// - `count = "session"` types take a seat for every handle.
    ///
    /// On a full type returns [`Error::LimitReached`] naming it, and every seat this
    /// call took is given back before returning.
    fn try_acquire(&self, config: &Config, req: &SeatRequest<'_>) -> Result<SeatId, Error>;

    /// Gives back what `seat` holds. A handle is released at most once: a second
    /// release, or an unknown handle, is [`Error::UnknownSeat`].
    fn release(&self, seat: SeatId) -> Result<(), Error>;

    /// Seats in use of the license type at `index`.
    fn used(&self, index: usize) -> u32;

    /// A copy of every held handle, taken without blocking acquirers for long.
    fn holders(&self) -> Vec<HeldSeat>;
}

/// Process-wide handle counter: handles are never reused while the library is loaded,
/// even across shutdown and a new init, so a stale handle can never free someone
/// else's seat.
static NEXT_SEAT: AtomicU64 = AtomicU64::new(1);

/// Each thread takes handles from a block of its own, so threads don't contend on one
/// counter's cache line for every login.
const SEAT_BLOCK: u64 = 1024;

thread_local! {
    /// The calling thread's block: next handle to give, and the end of the block.
    static SEAT_IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[inline]
pub(crate) fn next_seat_id() -> SeatId {
    SEAT_IDS
        .try_with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = NEXT_SEAT.fetch_add(SEAT_BLOCK, Ordering::Relaxed);
                end = next + SEAT_BLOCK;
            }
            ids.set((next + 1, end));
            next
        })
        // During thread teardown the block is gone: take a single handle.
        .unwrap_or_else(|_| NEXT_SEAT.fetch_add(1, Ordering::Relaxed))
}
