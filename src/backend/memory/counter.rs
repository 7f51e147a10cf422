//! One license type's seat count in the in-process table, and its *lanes*: free seats
//! parked near the threads that use them, so that a login and logout churning below the
//! type's peak need not write the line every core shares.
//!
//! # The central word
//!
//! `seats` packs four fields into one atomic word, so that every compare-and-swap sees
//! them together:
//!
//! - bits 0..32: *committed* seats: held, plus parked in lanes;
//! - bits 32..62: *tentative* seats, held by multi-type bundles still in flight that
//!   may yet give them back;
//! - bit 62, `OPEN`: lanes may hold parked seats;
//! - bit 63, `BUSY`: one thread is opening or closing the lanes.
//!
//! Committed plus tentative never exceeds the limit, so the type is never
//! over-subscribed, not even for an instant: a parked seat is still counted, and a
//! lane hands out only seats it was given.
//!
//! # Lanes
//!
//! Each thread has a lane number (the engine numbers threads in turn and passes the
//! number in `Changes::lane`; threads beyond [`LANES`] share lanes).
//! A logout that nobody needs to see counted exactly (no listener, no audit log) parks
//! its seat in its thread's lane, while the lanes are open and the lane has fewer than
//! [`PARK_CAP`]; a login on that thread takes it back with one compare-and-swap on the
//! lane's own cache line. The central word is only read, so in the steady state it
//! stays in every core's cache. A login whose lane is empty goes to the central word,
//! and when that has no room takes a seat parked in another lane.
//!
//! # What stays exact
//!
//! - **The peaks.** While the lanes are open, committed plus tentative stays at or under
//!   the peak since the last reset: a central login that would pass it closes the lanes
//!   first. Holders never exceed the committed count, so no login served by a lane can
//!   set a new peak, and every login that does runs with the lanes closed, where the
//!   committed count *is* the holder count. `reset_peaks` closes the lanes too.
//! - **Refusals.** A refusal is decided only with the lanes closed (`OPEN` and `BUSY`
//!   clear in the word it read): then no seat is parked, so a full committed count
//!   means every seat is held, exactly as without lanes.
//! - **The counts events carry.** A caller that needs the holder count (a listener, an
//!   audit log: the engine's `Changes::quiet` is false) passes no lane: it closes the
//!   lanes if they are open and counts on the central word.
//! - **Bundles** take their seats tentatively on the central word, under the peak while
//!   open; with no room they close the lanes. Only a handle of one type parks its seat
//!   on release, so a type that bundles use does not fill with parked seats.
//!
//! # Thresholds
//!
//! A listener of threshold events must hear the moment a type's holder count reaches
//! its threshold (`alert_at`) or falls back under it, with the count. Callers then pass
//! a *ceiling*, one under the threshold, and the lanes are open only while committed
//! plus tentative seats stay at or under it:
//!
//! - a central seat taken with the lanes open must keep them there (else the lanes
//!   close first);
//! - a lane serves or parks a seat only while the central word is at or under it;
//! - a release that finds the word over it, or a close under way, counts exactly;
//! - the lanes open only with room under it (so that they do not open just to close).
//!
//! Holders never exceed the committed count, so while the lanes are open no change can
//! reach the threshold: every change that can cross it runs with the lanes closed,
//! counted exactly. A ceiling lowered at run time (a reload, a limit set) closes them
//! at the next call that finds the count over it; a release that races that very
//! close (it read the word just before the close began) may still be counted with the
//! seats parked then, once. Below the threshold, logins keep the lanes' speed.
//!
//! Closing (`close`): set `BUSY` and clear `OPEN` in one compare-and-swap, mark every
//! lane closed while taking its parked seats (one atomic OR each), then subtract them
//! and clear `BUSY` in one atomic subtraction. Opening (`maybe_open`, after a release
//! leaves room of an eighth of the peak): set `BUSY`, mark every lane open with none
//! parked, then swap `BUSY` for `OPEN`. Logins wait while `BUSY` is set (a few dozen
//! nanoseconds); logouts do not. No lock is held across either.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lanes per type: the thread-scaling target is 16 cores.
pub(super) const LANES: usize = 16;
/// Most seats one lane keeps parked.
const PARK_CAP: u64 = 8;
/// A ceiling that never closes the lanes: nobody hears the type's threshold.
pub(super) const NO_CEILING: u32 = u32::MAX;

/// A lane's word: parked seats in the low byte (`LANE_SHUT`: closed), and above it
/// how many logins the lane served (for the `acquired` count).
const LANE_SEATS: u64 = 0xFF;
const LANE_SHUT: u64 = 0xFF;
const LANE_SERVED: u64 = 1 << 8;

const COMMITTED: u64 = 0xFFFF_FFFF;
const TENTATIVE: u64 = 1 << 32;
const TENTATIVE_FIELD: u64 = 0x3FFF_FFFF;
const OPEN: u64 = 1 << 62;
const BUSY: u64 = 1 << 63;

/// How a seat is taken: at once for good, or tentatively as one part of a bundle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Hold {
    Committed,
    Tentative,
}

/// Where a seat came from.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Taken {
    /// The central word, with the committed count before (the holder count when the
    /// caller passed no lane).
    Central(u32),
    /// A lane: the peak cannot have moved, and no exact count was asked for.
    Parked,
}

#[repr(align(64))]
struct Lane(AtomicU64);

/// One type's seat count on its own cache line, so that types don't slow each other.
/// See the module notes for the protocol.
///
/// A request is refused only when the *committed* seats fill the limit: when the type
/// is full just because a bundle in flight holds a seat it may return, the request
/// waits the few nanoseconds until that bundle commits or rolls back. Without this, a
/// refused bundle could make a concurrent login fail while a seat was in fact free.
///
/// Deadlock freedom: a bundle takes its types in ascending index order and holds only
/// lower-indexed tentative seats while it waits, so every chain of waits climbs the
/// index and cannot close into a cycle. Opening and closing the lanes never wait.
///
/// The billing counters share the line: after a successful compare-and-swap the line
/// is already this core's, so counting costs next to nothing.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct Counter {
    seats: AtomicU64,
    peak: AtomicU32,
    peak_since_reset: AtomicU32,
    acquired: AtomicU64,
    pub(super) denied: AtomicU64,
    /// Made the first time the lanes open.
    lanes: OnceLock<Box<[Lane; LANES]>>,
}

fn split(word: u64) -> (u64, u64) {
    (word & COMMITTED, (word >> 32) & TENTATIVE_FIELD)
}

/// Whether committed plus tentative seats in `word` are over `ceiling`.
#[inline(always)]
fn over(word: u64, ceiling: u32) -> bool {
    let (committed, tentative) = split(word);
    committed + tentative > u64::from(ceiling)
}

/// Waits a little for a thread that holds `BUSY` or a tentative seat.
fn back_off(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

impl Counter {
    /// Takes one seat if the limit allows. `lane`: the caller's lane, or `None` when
    /// the caller needs the exact holder count; `ceiling`: the most seats the lanes
    /// may be open at (see "Thresholds" in the module notes; [`NO_CEILING`]: none). On
    /// refusal returns the committed count, which is then the holder count.
    #[inline(always)]
    pub(super) fn try_take(
        &self,
        limit: u32,
        hold: Hold,
        lane: Option<usize>,
        ceiling: u32,
    ) -> Result<Taken, u32> {
        if let (Some(lane), Hold::Committed) = (lane, hold)
            && self.take_parked(lane, limit, ceiling)
        {
            return Ok(Taken::Parked);
        }
        let add = if hold == Hold::Committed { 1 } else { TENTATIVE };
        let cap = u64::from(limit);
        let mut current = self.seats.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            if current & BUSY != 0 {
                current = self.settled(&mut spins);
            }
            let (committed, tentative) = split(current);
            let open = current & OPEN != 0;
            // With the lanes open, a central seat must keep the count under the peak
            // and the ceiling, and an exact caller takes none before closing them.
            let room = match (open, lane) {
                (false, _) => cap,
                (true, Some(_)) => {
                    cap.min(u64::from(self.peak_since_reset.load(Ordering::Relaxed))).min(u64::from(ceiling))
                }
                (true, None) => 0,
            };
            if committed + tentative < room {
                match self.seats.compare_exchange_weak(
                    current,
                    current + add,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return Ok(Taken::Central(committed as u32)),
                    Err(now) => current = now,
                }
                continue;
            }
            if open {
                if lane.is_some() && hold == Hold::Committed && self.take_parked_anywhere(limit, ceiling) {
                    return Ok(Taken::Parked);
                }
                self.close();
                current = self.seats.load(Ordering::Acquire);
                continue;
            }
            if committed >= cap {
                return Err(committed as u32);
            }
            // Full only because of bundles in flight: wait for them to settle.
            back_off(&mut spins);
            current = self.seats.load(Ordering::Acquire);
        }
    }

    /// The central word once no thread is opening or closing the lanes.
    fn settled(&self, spins: &mut u32) -> u64 {
        loop {
            back_off(spins);
            let current = self.seats.load(Ordering::Acquire);
            if current & BUSY == 0 {
                return current;
            }
        }
    }

    /// Takes a seat parked in `lane`, if the committed count is within `limit` (a
    /// limit lowered at run time) and, with the tentative seats, within `ceiling`.
    #[inline]
    fn take_parked(&self, lane: usize, limit: u32, ceiling: u32) -> bool {
        let Some(lanes) = self.lanes.get() else { return false };
        let lane = &lanes[lane % LANES].0;
        let mut word = lane.load(Ordering::Relaxed);
        loop {
            let parked = word & LANE_SEATS;
            if parked == 0 || parked == LANE_SHUT {
                return false;
            }
            let central = self.seats.load(Ordering::Relaxed);
            if central & COMMITTED > u64::from(limit) || (ceiling != NO_CEILING && over(central, ceiling)) {
                return false;
            }
            match lane.compare_exchange_weak(
                word,
                word - 1 + LANE_SERVED,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Takes a seat parked in any lane (the caller's own had none).
    fn take_parked_anywhere(&self, limit: u32, ceiling: u32) -> bool {
        (0..LANES).any(|lane| self.take_parked(lane, limit, ceiling))
    }

    /// Turns a tentative seat into a committed one; returns the committed count before.
    #[inline]
    pub(super) fn commit(&self) -> u32 {
        self.seats.fetch_sub(TENTATIVE - 1, Ordering::AcqRel) as u32
    }

    /// Gives back a tentative seat.
    #[inline]
    pub(super) fn cancel(&self) {
        self.seats.fetch_sub(TENTATIVE, Ordering::AcqRel);
    }

    /// Gives back a committed seat: parks it in `lane` if there is one, `park` allows
    /// it and the lanes are open, else on the central word. Returns the committed
    /// count before, exact when the caller passed no lane or the count was over
    /// `ceiling` (the lanes are closed first then); `None` when the seat was parked.
    #[inline(always)]
    pub(super) fn give_back(&self, lane: Option<usize>, park: bool, ceiling: u32) -> Option<u32> {
        let Some(lane) = lane else { return Some(self.give_back_exact()) };
        let word = self.seats.load(Ordering::Relaxed);
        if word & (OPEN | BUSY) != 0 {
            // Someone hears the threshold, and the count is over the ceiling (lowered
            // while the lanes were open) or is being changed by a close (its parked
            // seats not yet taken out): this release is counted exactly.
            if ceiling != NO_CEILING && (word & BUSY != 0 || over(word, ceiling)) {
                return Some(self.give_back_exact());
            }
            if park && word & BUSY == 0 && self.park(lane) {
                return None;
            }
        }
        let before = self.seats.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(before & COMMITTED > 0, "seat counter underflow");
        if before & (OPEN | BUSY) == 0 {
            self.maybe_open(before - 1, ceiling);
        }
        Some(before as u32)
    }

    /// Gives back a seat on the central word with the lanes closed.
    fn give_back_exact(&self) -> u32 {
        let before = self.update_closed(|word| {
            debug_assert!(word & COMMITTED > 0, "seat counter underflow");
            word - 1
        });
        before as u32
    }

    /// Closes the lanes if they are open, then changes the central word with `change`
    /// in one compare-and-swap made while they are closed; returns the word before.
    fn update_closed(&self, change: impl Fn(u64) -> u64) -> u64 {
        let mut current = self.seats.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            if current & BUSY != 0 {
                current = self.settled(&mut spins);
            }
            if current & OPEN != 0 {
                self.close();
                current = self.seats.load(Ordering::Acquire);
                continue;
            }
            match self.seats.compare_exchange_weak(
                current,
                change(current),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return current,
                Err(now) => current = now,
            }
        }
    }

    #[inline]
    fn park(&self, lane: usize) -> bool {
        let Some(lanes) = self.lanes.get() else { return false };
        let lane = &lanes[lane % LANES].0;
        let mut word = lane.load(Ordering::Relaxed);
        loop {
            // A shut lane's byte (0xFF) is over the cap too.
            if word & LANE_SEATS >= PARK_CAP {
                return false;
            }
            match lane.compare_exchange_weak(word, word + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => word = now,
            }
        }
    }

    /// Opens the lanes after a release on the closed central word left `after`, if an
    /// eighth of the peak (at least one seat) is free under the peak and the ceiling.
    fn maybe_open(&self, after: u64, ceiling: u32) {
        let peak = u64::from(self.peak_since_reset.load(Ordering::Relaxed));
        let top = peak.min(u64::from(ceiling));
        let mut current = after;
        loop {
            if current & (OPEN | BUSY) != 0 {
                return;
            }
            let (committed, tentative) = split(current);
            if committed + tentative + (peak / 8).max(1) > top {
                return;
            }
            match self.seats.compare_exchange_weak(
                current,
                current | BUSY,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let lanes =
            self.lanes.get_or_init(|| Box::new(std::array::from_fn(|_| Lane(AtomicU64::new(LANE_SHUT)))));
        for lane in lanes.iter() {
            lane.0.fetch_and(!LANE_SEATS, Ordering::AcqRel);
        }
        // BUSY is set and OPEN clear: one XOR swaps them, whatever the counts did meanwhile.
        self.seats.fetch_xor(BUSY | OPEN, Ordering::AcqRel);
    }

    /// Closes the lanes: afterwards the committed count is the holder count again.
    fn close(&self) {
        let mut current = self.seats.load(Ordering::Acquire);
        let mut spins = 0u32;
        loop {
            if current & BUSY != 0 {
                current = self.settled(&mut spins);
            }
            if current & OPEN == 0 {
                return;
            }
            match self.seats.compare_exchange_weak(
                current,
                (current & !OPEN) | BUSY,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(now) => current = now,
            }
        }
        let mut freed = 0;
        if let Some(lanes) = self.lanes.get() {
            for lane in lanes.iter() {
                let parked = lane.0.fetch_or(LANE_SHUT, Ordering::AcqRel) & LANE_SEATS;
                if parked != LANE_SHUT {
                    freed += parked;
                }
            }
        }
        // BUSY is set: subtracting it clears it, in the same step as the freed seats.
        self.seats.fetch_sub(freed + BUSY, Ordering::AcqRel);
    }

    /// Seats parked in lanes now.
    fn parked(&self) -> u64 {
        self.lanes.get().map_or(0, |lanes| {
            lanes
                .iter()
                .map(|lane| lane.0.load(Ordering::Acquire) & LANE_SEATS)
                .filter(|&parked| parked != LANE_SHUT)
                .sum()
        })
    }

    /// Seats held now (committed, less those parked in lanes).
    pub(super) fn held(&self) -> u32 {
        let parked = self.parked();
        ((self.seats.load(Ordering::Acquire) & COMMITTED).saturating_sub(parked)) as u32
    }

    /// Books a seat taken from the central word, with the committed count after it.
    /// With the lanes open that count is at most the peak, so the peaks stay as they are.
    #[inline]
    pub(super) fn note_taken(&self, after: u32) {
        self.acquired.fetch_add(1, Ordering::Relaxed);
        if after > self.peak_since_reset.load(Ordering::Relaxed) {
            self.peak_since_reset.fetch_max(after, Ordering::Relaxed);
            self.peak.fetch_max(after, Ordering::Relaxed);
        }
    }

    /// All-time peak, peak since the last reset, seats ever taken.
    pub(super) fn totals(&self) -> (u32, u32, u64) {
        let served: u64 = self
            .lanes
            .get()
            .map_or(0, |lanes| lanes.iter().map(|lane| lane.0.load(Ordering::Relaxed) / LANE_SERVED).sum());
        (
            self.peak.load(Ordering::Relaxed),
            self.peak_since_reset.load(Ordering::Relaxed),
            self.acquired.load(Ordering::Relaxed) + served,
        )
    }

    /// Starts a new "peak since reset" at the holder count: the lanes are closed and
    /// kept closed (`BUSY`) while it is read and stored.
    pub(super) fn reset_peak(&self) {
        self.update_closed(|word| word | BUSY);
        let held = self.seats.load(Ordering::Acquire) & COMMITTED;
        self.peak_since_reset.store(held as u32, Ordering::Relaxed);
        self.seats.fetch_sub(BUSY, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;
    use std::sync::{Arc, Barrier};

    use super::*;

    /// A small deterministic generator (xorshift), so a failure repeats.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }

        fn lane(&mut self) -> Option<usize> {
            // Mostly lanes (quiet callers), sometimes an exact caller.
            if self.below(5) == 0 { None } else { Some(self.below(4) as usize) }
        }
    }

    fn taken_from_lane(taken: Result<Taken, u32>) -> bool {
        taken == Ok(Taken::Parked)
    }

    /// A login of one type, booked as the memory backend books it.
    fn take(c: &Counter, limit: u32, lane: Option<usize>) -> Result<Taken, u32> {
        let taken = c.try_take(limit, Hold::Committed, lane, NO_CEILING);
        if let Ok(Taken::Central(before)) = taken {
            c.note_taken(before + 1);
        }
        taken
    }

    /// `taken` logins on lanes 0, 1, ...; then lane 0's release (which opens the
    /// lanes, there being room under the peak) and the releases of lanes 1 to
    /// `parked`, each of which waits in its lane.
    fn with_parked(limit: u32, taken: usize, parked: usize) -> Counter {
        let c = Counter::default();
        for lane in 0..taken {
            assert!(take(&c, limit, Some(lane)).is_ok());
        }
        c.give_back(Some(0), true, NO_CEILING);
        for lane in 1..=parked {
            assert_eq!(c.give_back(Some(lane), true, NO_CEILING), None, "parked in lane {lane}");
        }
        c
    }

    #[test]
    fn lanes_open_after_a_release_below_the_peak_and_serve_the_next_login() {
        let c = Counter::default();
        assert_eq!(take(&c, 5, Some(0)), Ok(Taken::Central(0)));
        assert_eq!(take(&c, 5, Some(1)), Ok(Taken::Central(1)));
        // Room under the peak of 2: the lanes open, then the next release parks.
        assert_eq!(c.give_back(Some(0), true, NO_CEILING), Some(2));
        assert_eq!(c.give_back(Some(1), true, NO_CEILING), None);
        assert_eq!(c.held(), 0);
        assert!(taken_from_lane(take(&c, 5, Some(1))));
        assert_eq!(c.held(), 1);
        assert_eq!(c.totals(), (2, 2, 3));
    }

    #[test]
    fn a_full_type_takes_the_seats_parked_in_other_lanes_before_it_refuses() {
        let c = with_parked(3, 3, 2);
        // Lane 3 has nothing parked, yet all three seats are free: it gets all three.
        for _ in 0..3 {
            assert!(take(&c, 3, Some(3)).is_ok());
        }
        assert_eq!(c.held(), 3);
        // Now the type is really full, and the refusal counts the holders.
        assert_eq!(take(&c, 3, Some(3)), Err(3));
        assert_eq!(take(&c, 3, None), Err(3));
    }

    #[test]
    fn an_exact_caller_closes_the_lanes_and_counts_holders() {
        let c = with_parked(10, 4, 2);
        assert_eq!(c.held(), 1);
        // One holder left (lane 3's): the exact release says 1 before, not 3.
        assert_eq!(c.give_back(None, true, NO_CEILING), Some(1));
        assert_eq!(c.held(), 0);
        assert_eq!(take(&c, 10, None), Ok(Taken::Central(0)));
    }

    #[test]
    fn a_lowered_limit_is_kept_even_with_seats_parked() {
        let c = with_parked(4, 4, 3);
        assert!(taken_from_lane(take(&c, 4, Some(1))));
        assert!(taken_from_lane(take(&c, 4, Some(2))));
        // The limit drops to 1 with 2 held and 1 parked: the lane must not serve.
        assert_eq!(take(&c, 1, Some(3)), Err(2));
        assert_eq!(c.held(), 2);
    }

    #[test]
    fn resetting_the_peaks_starts_from_the_holders_not_the_parked_seats() {
        let c = with_parked(9, 4, 2);
        assert_eq!(c.held(), 1);
        c.reset_peak();
        assert_eq!(c.totals().1, 1);
        assert_eq!(c.totals().0, 4);
        // A second holder is a new peak since the reset, recorded exactly.
        assert!(take(&c, 9, Some(1)).is_ok());
        assert_eq!(c.totals().1, 2);
    }

    /// Random calls from one thread against a plain model: every refusal comes exactly
    /// when the type is full, and every figure (holders, both peaks, seats taken)
    /// matches, whatever lanes the calls came from.
    #[test]
    fn random_calls_match_a_model_without_lanes() {
        for seed in 1..=40u64 {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
            let c = Counter::default();
            let (mut limit, mut holders, mut peak, mut since_reset, mut acquired) =
                (4u32, 0u32, 0u32, 0u32, 0u64);
            let mut served_by_lane = 0;
            for step in 0..3000 {
                let at = format!("seed {seed} step {step}");
                match rng.below(12) {
                    0..=4 => {
                        let lane = rng.lane();
                        let taken = c.try_take(limit, Hold::Committed, lane, NO_CEILING);
                        if holders < limit {
                            let taken = taken.unwrap_or_else(|e| panic!("{at}: refused at {e}/{limit}"));
                            if let Taken::Central(before) = taken {
                                c.note_taken(before + 1);
                                if lane.is_none() {
                                    assert_eq!(before, holders, "{at}: exact count");
                                }
                            } else {
                                served_by_lane += 1;
                            }
                            holders += 1;
                            acquired += 1;
                        } else {
                            assert_eq!(taken, Err(holders), "{at}: refusal");
                        }
                    }
                    5 => {
                        // A bundle's seat: tentative, then committed or given back.
                        let lane = rng.lane();
                        match c.try_take(limit, Hold::Tentative, lane, NO_CEILING) {
                            Ok(_) => {
                                assert!(holders < limit, "{at}: tentative seat past the limit");
                                if rng.below(2) == 0 {
                                    let before = c.commit();
                                    c.note_taken(before + 1);
                                    holders += 1;
                                    acquired += 1;
                                } else {
                                    c.cancel();
                                }
                            }
                            Err(used) => {
                                assert!(holders >= limit, "{at}: bundle refused at {holders}/{limit}");
                                assert_eq!(used, holders, "{at}");
                            }
                        }
                    }
                    6..=9 if holders > 0 => {
                        let lane = rng.lane();
                        let before = c.give_back(lane, rng.below(4) != 0, NO_CEILING);
                        if lane.is_none() {
                            assert_eq!(before, Some(holders), "{at}: exact release count");
                        }
                        holders -= 1;
                    }
                    10 => {
                        limit = rng.below(7) as u32;
                    }
                    11 if rng.below(8) == 0 => {
                        c.reset_peak();
                        since_reset = holders;
                    }
                    _ => {}
                }
                peak = peak.max(holders);
                since_reset = since_reset.max(holders);
                assert_eq!(c.held(), holders, "{at}: holders");
                assert_eq!(c.totals(), (peak, since_reset, acquired), "{at}: peaks and seats taken");
            }
            assert!(served_by_lane > 0, "seed {seed}: no login was served by a lane");
        }
    }

    /// With a ceiling (one under a threshold someone listens to), random calls from
    /// one thread: every change that can reach the threshold or leave it (the holders
    /// before or after at or over it) reports the exact holder count, as a listener
    /// must hear it; below it the lanes still serve. The threshold moves now and then,
    /// as a reload or a new limit moves it.
    #[test]
    fn with_a_ceiling_every_change_at_the_threshold_is_counted_exactly() {
        for seed in 1..=40u64 {
            let mut rng = Rng(0x51ED_2701_F00D ^ seed);
            let c = Counter::default();
            let (limit, mut holders, mut ceiling) = (12u32, 0u32, 5u32);
            let (mut from_lanes, mut at_threshold) = (0u32, 0u32);
            for step in 0..4000 {
                let at = format!("seed {seed} step {step} ceiling {ceiling}");
                let lane = Some(rng.below(4) as usize);
                match rng.below(12) {
                    0..=4 => {
                        let taken = c.try_take(limit, Hold::Committed, lane, ceiling);
                        if holders >= limit {
                            assert_eq!(taken, Err(holders), "{at}: refusal");
                            continue;
                        }
                        let reaches = holders + 1 > ceiling;
                        match taken.unwrap_or_else(|e| panic!("{at}: refused at {e}")) {
                            Taken::Central(before) => {
                                c.note_taken(before + 1);
                                if reaches {
                                    assert_eq!(before, holders, "{at}: a login reaching the threshold");
                                    at_threshold += 1;
                                }
                            }
                            Taken::Parked => {
                                assert!(!reaches, "{at}: a lane served a login at the threshold");
                                from_lanes += 1;
                            }
                        }
                        holders += 1;
                    }
                    5 => {
                        // A bundle's seat: tentative, then committed.
                        if c.try_take(limit, Hold::Tentative, lane, ceiling).is_err() {
                            assert!(holders >= limit, "{at}: bundle refused at {holders}");
                            continue;
                        }
                        let before = c.commit();
                        c.note_taken(before + 1);
                        if holders + 1 > ceiling {
                            assert_eq!(before, holders, "{at}: a bundle reaching the threshold");
                        }
                        holders += 1;
                    }
                    6..=10 if holders > 0 => {
                        let before = c.give_back(lane, rng.below(4) != 0, ceiling);
                        if holders > ceiling {
                            assert_eq!(before, Some(holders), "{at}: a logout from the threshold");
                            at_threshold += 1;
                        }
                        holders -= 1;
                    }
                    11 => ceiling = rng.below(10) as u32,
                    _ => {}
                }
                assert_eq!(c.held(), holders, "{at}: holders");
            }
            assert!(from_lanes > 0, "seed {seed}: no login was served by a lane");
            assert!(at_threshold > 0, "seed {seed}: the threshold was never reached");
        }
    }

    /// Threads that each hold at most one seat, with a limit of one seat per thread,
    /// must never be refused: a refusal would mean a seat parked in another lane was
    /// taken for held. Nor may they ever be more holders than the limit.
    #[test]
    fn threads_never_exceed_the_limit_and_are_never_refused_while_a_seat_is_free() {
        const THREADS: usize = 6;
        let c = Arc::new(Counter::default());
        let inside = Arc::new(AtomicU32::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let start = Arc::new(Barrier::new(THREADS));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (c, inside, over, start) = (c.clone(), inside.clone(), over.clone(), start.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0xDEAD_BEEF ^ (t as u64 + 1));
                    let (mut refused, mut from_lanes) = (0u32, 0u32);
                    start.wait();
                    for _ in 0..40_000 {
                        // Lanes shared by two threads each, and now and then an exact caller.
                        let lane = if rng.below(16) == 0 { None } else { Some(t % 3) };
                        let hold = if rng.below(8) == 0 { Hold::Tentative } else { Hold::Committed };
                        match c.try_take(THREADS as u32, hold, lane, NO_CEILING) {
                            Ok(taken) => {
                                if hold == Hold::Tentative {
                                    let before = c.commit();
                                    c.note_taken(before + 1);
                                } else if let Taken::Central(before) = taken {
                                    c.note_taken(before + 1);
                                } else {
                                    from_lanes += 1;
                                }
                                if inside.fetch_add(1, Ordering::SeqCst) >= THREADS as u32 {
                                    over.store(true, Ordering::SeqCst);
                                }
                                inside.fetch_sub(1, Ordering::SeqCst);
                                c.give_back(lane, rng.below(4) != 0, NO_CEILING);
                            }
                            Err(_) => refused += 1,
                        }
                    }
                    (refused, from_lanes)
                })
            })
            .collect();
        let (refused, from_lanes) =
            workers.into_iter().map(|w| w.join().unwrap()).fold((0, 0), |(r, l), (a, b)| (r + a, l + b));
        assert!(from_lanes > 0, "no login was served by a lane");
        assert!(!over.load(Ordering::SeqCst), "more holders than the limit");
        assert_eq!(refused, 0, "refused while a seat was free");
        assert_eq!(c.held(), 0);
        let (peak, _, acquired) = c.totals();
        assert!(peak <= THREADS as u32);
        assert_eq!(acquired, THREADS as u64 * 40_000);
        // No seat was lost in a lane: one caller gets every seat, and then no more.
        for _ in 0..THREADS {
            assert!(c.try_take(THREADS as u32, Hold::Committed, Some(0), NO_CEILING).is_ok());
        }
        assert_eq!(c.try_take(THREADS as u32, Hold::Committed, None, NO_CEILING), Err(THREADS as u32));
    }

    /// Many threads on a small limit: never more holders than the limit, and every
    /// seat comes back.
    #[test]
    fn contended_threads_never_exceed_a_small_limit() {
        const THREADS: usize = 8;
        const LIMIT: u32 = 3;
        let c = Arc::new(Counter::default());
        let inside = Arc::new(AtomicU32::new(0));
        let over = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (c, inside, over) = (c.clone(), inside.clone(), over.clone());
                std::thread::spawn(move || {
                    let mut rng = Rng(0xC0FFEE ^ (t as u64 + 1));
                    for _ in 0..40_000 {
                        let lane = if rng.below(10) == 0 { None } else { Some(t) };
                        match c.try_take(LIMIT, Hold::Committed, lane, NO_CEILING) {
                            Err(used) => {
                                assert!(used <= LIMIT);
                                continue;
                            }
                            Ok(Taken::Central(before)) => c.note_taken(before + 1),
                            Ok(Taken::Parked) => {}
                        }
                        if inside.fetch_add(1, Ordering::SeqCst) >= LIMIT {
                            over.store(true, Ordering::SeqCst);
                        }
                        inside.fetch_sub(1, Ordering::SeqCst);
                        c.give_back(lane, true, NO_CEILING);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        assert!(!over.load(Ordering::SeqCst), "more holders than the limit");
        assert_eq!(c.held(), 0);
        assert!(c.totals().0 <= LIMIT);
        for _ in 0..LIMIT {
            assert!(c.try_take(LIMIT, Hold::Committed, Some(5), NO_CEILING).is_ok());
        }
        assert_eq!(c.try_take(LIMIT, Hold::Committed, Some(5), NO_CEILING), Err(LIMIT));
    }
}
