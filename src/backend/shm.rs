//! The `shm` backend: one seat table in a shared memory-mapped file, for every process
//! of one host (forking servers such as Kamailio, OpenSIPS, PHP-FPM, prefork CRMs).
//!
//! - The file (`[backend] path`, mode 0600) starts with a magic number and a layout
//!   version; a process built with another layout, or configured with another
//!   capacity, refuses to use it with a clear error ([`region`]).
//! - Counts and billing counters are atomics, read by anyone without a lock. Records
//!   (users, handles, lingering seats, type names) change under one process-shared,
//!   robust mutex, so no process can see or leave a half-made count: a check and the
//!   take it allows are one critical section, in any process.
//! - Every record has a commit word written last (`HandleRec.seat`, `UserRec.live`).
//!   The lists, free lists and counts are *derived* from the committed records, so a
//!   process killed anywhere, even holding the lock, costs nothing: the next locker
//!   gets the lock back from the kernel (robust futex) and rebuilds them ([`Table::recover`]).
//! - A handle records the process that took it (pid and start time, so a reused pid
//!   is not mistaken for it). A holder that dies without releasing is reclaimed
//!   through its lease, and sooner by [`Backend::reap`] once its pid is gone
//!   (`reclaim_dead_owners`).
//! - Types are matched by *name* (each process's config numbers its slots its own
//!   way): the file keeps a name per shared slot, and each process maps its config's
//!   slots to shared ones once per config.
//! - `init` before `fork` (children inherit the mapping) and `init` in each worker
//!   (each maps the same file) both work: the mutex and counts live in the file, and a
//!   child learns its own pid after fork.

mod region;
mod registry;

pub(crate) use region::own_pid;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use smallvec::SmallVec;

use self::region::{
    GONE, Guard, HandleRec, Header, LABEL, LINGER_SLOTS, Meta, OWNERS, OwnerRec, Region, ShmCounter, UserRec,
    commit_barrier,
};
use super::{
    Backend, BackendStatus, Changes, HeldSeat, LingeringSeat, ReleaseWhy, ReleasedSeat, SeatRequest,
    TypeStats,
};
use crate::clock::{Mono, Now, mono_ns};
use crate::config::{Config, ShmConfig, SlotState};
use crate::error::{Denial, DenialReason, Error};
use crate::types::{MAX_LICENSE_TYPES, SEAT_ID_BITS, SeatId, TypeSet};

/// A seat id is `generation << INDEX_BITS | record index`: the low 24 bits name the
/// handle's record (capacity is at most 2^24), the next 24 the record's *generation*,
/// which goes up by one each time the record is handed out again (kept in the record
/// while it is free). An id is accepted only while its record is live and stores
/// exactly that id, so a stale id (released, and its record reused) is unknown.
///
/// Generations run from 1 to 2^24 - 1 and then start again at 1: ids stay nonzero and
/// below 2^48, since the engine keeps the top 16 bits for its tenant tag. The price
/// of the wrap: a stale id could match again only after its record has been handed
/// out 2^24 - 1 more times, and only while that later handle is held.
///
/// A record's first generation is the file's `first_generation` (from the clock when
/// the file was made), and at least [`GENERATION_FLOOR`]: a handle this process got
/// from a table that was removed and made again is not valid in the new one.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
const GENERATIONS: u32 = (1 << (SEAT_ID_BITS - INDEX_BITS)) - 1;

/// One past the highest generation this process handed out, in any table.
static GENERATION_FLOOR: AtomicU32 = AtomicU32::new(1);
/// How often a reap looks for holders whose process is gone.
const OWNER_CHECK: Mono = 250_000_000;
const NO_SLOT: u8 = u8::MAX;

/// One process's view of the shared type slots, for one config.
struct SlotMap {
    config_id: u64,
    /// Config slot -> shared slot, and back (`NO_SLOT`: none).
    to_shared: [u8; MAX_LICENSE_TYPES],
    to_config: [u8; MAX_LICENSE_TYPES],
    /// By shared slot, from this config.
    limit: [u32; MAX_LICENSE_TYPES],
    linger: [Mono; MAX_LICENSE_TYPES],
    requires: [u64; MAX_LICENSE_TYPES],
    user_count: u64,
    requiring: u64,
}

impl SlotMap {
    fn shared(&self, set: TypeSet) -> u64 {
        set.iter().fold(0u64, |acc, slot| match self.to_shared[slot] {
            NO_SLOT => acc,
            s => acc | 1 << s,
        })
    }

    fn config_set(&self, shared: u64) -> TypeSet {
        let mut out = TypeSet::EMPTY;
        for s in bits(shared) {
            if let Some(slot) = self.config_slot(s) {
                out.insert(slot);
            }
        }
        out
    }

    fn config_slot(&self, shared: usize) -> Option<usize> {
        match self.to_config[shared] {
            NO_SLOT => None,
            slot => Some(usize::from(slot)),
        }
    }
}

fn bits(set: u64) -> impl Iterator<Item = usize> {
    let mut rest = set;
    std::iter::from_fn(move || {
        if rest == 0 {
            return None;
        }
        let bit = rest.trailing_zeros() as usize;
        rest &= rest - 1;
        Some(bit)
    })
}

/// FNV-1a: the same in every process and every build, unlike a seeded hasher.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The generation of a record handed out again after `last` (0: never handed out; it
/// then starts where the file says, and not below `floor`).
fn next_generation(last: u32, first: u64, floor: u32) -> u32 {
    match last {
        0 => ((first % u64::from(GENERATIONS)) as u32 + 1).max(floor.min(GENERATIONS)),
        last if last >= GENERATIONS => 1,
        last => last + 1,
    }
}

fn put_label(dst: &mut [u8; LABEL], text: &str) -> u16 {
    let n = text.len().min(LABEL - 1);
    dst[..n].copy_from_slice(&text.as_bytes()[..n]);
    n as u16
}

fn label(src: &[u8; LABEL], len: u16) -> Arc<str> {
    Arc::from(String::from_utf8_lossy(&src[..usize::from(len).min(LABEL)]).as_ref())
}

fn why_byte(why: ReleaseWhy) -> u8 {
    match why {
        ReleaseWhy::Normal => 1,
        ReleaseWhy::Expired => 2,
        ReleaseWhy::Admin => 3,
        ReleaseWhy::Dependency => 4,
        ReleaseWhy::Shutdown => 5,
        ReleaseWhy::OwnerGone => 6,
        ReleaseWhy::Reconciled => 7,
        ReleaseWhy::EmergencyExpired => 8,
        ReleaseWhy::LicenseExpired => 9,
    }
}

fn why_of(byte: u8) -> Option<ReleaseWhy> {
    Some(match byte {
        1 => ReleaseWhy::Normal,
        2 => ReleaseWhy::Expired,
        3 => ReleaseWhy::Admin,
        4 => ReleaseWhy::Dependency,
        5 => ReleaseWhy::Shutdown,
        6 => ReleaseWhy::OwnerGone,
        7 => ReleaseWhy::Reconciled,
        8 => ReleaseWhy::EmergencyExpired,
        9 => ReleaseWhy::LicenseExpired,
        _ => return None,
    })
}

/// Start time of a process in clock ticks since boot (`/proc/PID/stat` field 22): with
/// the pid, it names one process for good.
fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that owned a row is gone (dead, or its pid reused).
fn owner_gone(owner: &OwnerRec) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(owner.pid) else { return true };
    match rustix::process::test_kill_process(pid) {
        Err(rustix::io::Errno::SRCH) => true,
        // EPERM: alive, under another user. Other errors: assume alive.
        Err(_) => false,
        Ok(()) => start_time(owner.pid).is_some_and(|start| owner.start != 0 && start != owner.start),
    }
}

/// The shared seat table.
pub struct ShmBackend {
    region: Region,
    capacity: u32,
    reclaim_dead_owners: bool,
    /// A tenant's pool ([`Backend::open_tenant`]): it follows the installation's
    /// reloads, it does not carry them.
    tenant: bool,
    /// The installation's tenant numbers (the main table's only).
    registry: Option<registry::TenantRegistry>,
    map: ArcSwapOption<SlotMap>,
    /// This process's row in `Meta.owners`: `pid << 32 | row + 1` (0: not known yet).
    owner: AtomicU64,
}

impl ShmBackend {
    /// Maps (creating when needed) the table `config` names.
    pub fn open(config: &ShmConfig) -> Result<ShmBackend, Error> {
        ShmBackend::open_pool(config, false)
    }

    /// The file of `tenant`'s pool: `{path}@{tenant}`, next to this table's.
    pub fn tenant_path(&self, tenant: &str) -> std::path::PathBuf {
        let mut path = self.region.path().as_os_str().to_owned();
        path.push("@");
        path.push(tenant);
        path.into()
    }

    fn open_pool(config: &ShmConfig, tenant: bool) -> Result<ShmBackend, Error> {
        let backend = ShmBackend {
            region: Region::open(&config.path, config.capacity)?,
            capacity: config.capacity,
            reclaim_dead_owners: config.reclaim_dead_owners,
            tenant,
            registry: (!tenant).then(|| registry::TenantRegistry::beside(&config.path)),
            map: ArcSwapOption::empty(),
            owner: AtomicU64::new(0),
        };
        // A fresh file (or one whose last lock owner died) is made consistent now.
        drop(backend.lock()?);
        Ok(backend)
    }

    /// Takes the lock, first rebuilding derived fields if the table needs it.
    fn lock(&self) -> Result<Guard<'_>, Error> {
        let mut guard = self.region.lock()?;
        if guard.tables().meta.needs_recovery != 0 {
            self.table(&mut guard).recover();
        }
        Ok(guard)
    }

    fn table<'g>(&'g self, guard: &'g mut Guard<'_>) -> Table<'g> {
        let tables = guard.tables();
        Table {
            meta: tables.meta,
            buckets: tables.buckets,
            users: tables.users,
            handles: tables.handles,
            counters: self.region.counters(),
            header: self.region.header(),
        }
    }

    /// The slot map for `config`, built under the lock the first time.
    fn map_for(&self, config: &Config, table: &mut Table<'_>) -> Result<Arc<SlotMap>, Error> {
        if let Some(map) = self.map.load_full().filter(|m| m.config_id == config.id) {
            return Ok(map);
        }
        let map = Arc::new(table.build_map(config, self.region.path())?);
        self.map.store(Some(map.clone()));
        Ok(map)
    }

    /// The map for `config` without holding the lock (queries).
    fn map_unlocked(&self, config: &Config) -> Option<Arc<SlotMap>> {
        if let Some(map) = self.map.load_full().filter(|m| m.config_id == config.id) {
            return Some(map);
        }
        let mut guard = self.lock().ok()?;
        let mut table = self.table(&mut guard);
        self.map_for(config, &mut table).ok()
    }

    fn counter(&self, config: &Config, slot: usize) -> Option<&ShmCounter> {
        let map = self.map_unlocked(config)?;
        match map.to_shared.get(slot).copied() {
            Some(NO_SLOT) | None => None,
            Some(s) => self.region.counters().get(usize::from(s)),
        }
    }

    /// This process's owner row (+ 1), registering it on first use after start or fork.
    fn owner_row(&self, table: &mut Table<'_>) -> u32 {
        let pid = own_pid();
        let cached = self.owner.load(Ordering::Relaxed);
        if cached >> 32 == u64::from(pid as u32) && cached as u32 != 0 {
            let row = cached as u32;
            if table.meta.owners[(row - 1) as usize].pid == pid {
                return row;
            }
        }
        let start = start_time(pid).unwrap_or(0);
        let owners = &mut table.meta.owners;
        let row = owners
            .iter()
            .position(|o| o.pid == pid && o.start == start)
            .or_else(|| owners.iter().position(|o| o.pid == 0));
        match row {
            Some(i) => {
                if owners[i].pid != pid {
                    owners[i] = OwnerRec { pid, _pad: 0, start, handles: 0, _pad2: 0 };
                }
                let row = i as u32 + 1;
                self.owner.store(u64::from(pid as u32) << 32 | u64::from(row), Ordering::Relaxed);
                row
            }
            // More live processes than rows: this one's handles end by lease only.
            None => 0,
        }
    }

    /// Runs `f` on the locked table with the slot map of `config`.
    fn with_table<T>(
        &self,
        config: &Config,
        f: impl FnOnce(&mut Table<'_>, &SlotMap) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut guard = self.lock()?;
        let mut table = self.table(&mut guard);
        let map = self.map_for(config, &mut table)?;
        f(&mut table, &map)
    }
}

/// The locked table: every operation's logic, in safe code over the mapped records.
struct Table<'a> {
    meta: &'a mut Meta,
    buckets: &'a mut [u32],
    users: &'a mut [UserRec],
    handles: &'a mut [HandleRec],
    counters: &'a [ShmCounter],
    header: &'a Header,
}

impl Table<'_> {
    fn build_map(&mut self, config: &Config, path: &std::path::Path) -> Result<SlotMap, Error> {
        let mut map = SlotMap {
            config_id: config.id,
            to_shared: [NO_SLOT; MAX_LICENSE_TYPES],
            to_config: [NO_SLOT; MAX_LICENSE_TYPES],
            limit: [0; MAX_LICENSE_TYPES],
            linger: [0; MAX_LICENSE_TYPES],
            requires: [0; MAX_LICENSE_TYPES],
            user_count: 0,
            requiring: 0,
        };
        for (slot, license) in config.licenses.iter().enumerate() {
            if license.state == SlotState::Vacant {
                continue;
            }
            let name = license.name.as_bytes();
            let names = &mut self.meta.type_names;
            let shared = names
                .iter()
                .position(|n| usize::from(n[0]) == name.len() && &n[1..=name.len()] == name)
                .or_else(|| {
                    // Names are never reused for another type: a process may still map
                    // the old one. 64 names over the file's life is the cap.
                    let free = names.iter().position(|n| n[0] == 0)?;
                    names[free][0] = name.len() as u8;
                    names[free][1..=name.len()].copy_from_slice(name);
                    Some(free)
                })
                .ok_or_else(|| {
                    Error::Backend(format!(
                        "shared seat table {} already names {MAX_LICENSE_TYPES} license types and cannot add '{}': stop every process and remove the file to start it afresh",
                        path.display(),
                        license.name
                    ))
                })?;
            map.to_shared[slot] = shared as u8;
            map.to_config[shared] = slot as u8;
        }
        for (slot, license) in config.licenses.iter().enumerate() {
            let shared = match map.to_shared[slot] {
                NO_SLOT => continue,
                s => usize::from(s),
            };
            map.limit[shared] = if license.state == SlotState::Active { license.limit } else { 0 };
            map.linger[shared] = license.linger.map_or(0, mono_ns);
            map.requires[shared] = map.shared(license.requires);
            if config.user_count_types().contains(slot) {
                map.user_count |= 1 << shared;
            }
            if !license.requires.is_empty() {
                map.requiring |= 1 << shared;
            }
        }
        Ok(map)
    }

    // ---- records ----

    /// Records past these were never used.
    fn handle_end(&self) -> usize {
        (self.meta.handle_hwm as usize).min(self.handles.len())
    }

    fn user_end(&self) -> usize {
        (self.meta.user_hwm as usize).min(self.users.len())
    }

    fn bucket(&self, hash: u64) -> usize {
        (hash as usize) & (self.buckets.len() - 1)
    }

    fn find_user(&self, name: &str, hash: u64) -> Option<usize> {
        let mut next = self.buckets[self.bucket(hash)];
        while next != 0 {
            let i = (next - 1) as usize;
            let u = self.users.get(i)?;
            if u.live == 1 && u.hash == hash && &u.name[..usize::from(u.name_len)] == name.as_bytes() {
                return Some(i);
            }
            next = u.next;
        }
        None
    }

    fn new_user(&mut self, name: &str, hash: u64) -> Option<usize> {
        let i = match self.meta.free_user {
            0 if (self.meta.user_hwm as usize) < self.users.len() => {
                self.meta.user_hwm += 1;
                self.meta.user_hwm as usize - 1
            }
            0 => return None,
            head => {
                let i = (head - 1) as usize;
                self.meta.free_user = self.users[i].next;
                i
            }
        };
        let bucket = self.bucket(hash);
        let u = &mut self.users[i];
        u.hash = hash;
        u.name_len = put_label(&mut u.name, name);
        u.head = 0;
        u.held = 0;
        u.counted = 0;
        u.user_refs = [0; MAX_LICENSE_TYPES];
        u.session_refs = [0; MAX_LICENSE_TYPES];
        u.linger_slot = [0; LINGER_SLOTS];
        u.next = self.buckets[bucket];
        commit_barrier();
        u.live = 1;
        self.buckets[bucket] = i as u32 + 1;
        self.header.users_used.fetch_add(1, Ordering::Relaxed);
        Some(i)
    }

    fn free_user(&mut self, i: usize) {
        let bucket = self.bucket(self.users[i].hash);
        let target = i as u32 + 1;
        if self.buckets[bucket] == target {
            self.buckets[bucket] = self.users[i].next;
        } else {
            let mut at = self.buckets[bucket];
            while at != 0 {
                let prev = (at - 1) as usize;
                if self.users[prev].next == target {
                    self.users[prev].next = self.users[i].next;
                    break;
                }
                at = self.users[prev].next;
            }
        }
        let u = &mut self.users[i];
        u.live = 0;
        u.next = self.meta.free_user;
        self.meta.free_user = target;
        self.header.users_used.fetch_sub(1, Ordering::Relaxed);
    }

    fn forget_if_empty(&mut self, user: usize) {
        let u = &self.users[user];
        if u.live == 1 && u.head == 0 && u.linger_slot.iter().all(|&s| s == 0) {
            self.free_user(user);
        }
    }

    /// Handles of a user, in chain order.
    fn handles_of(&self, user: usize) -> SmallVec<[usize; 8]> {
        let mut out = SmallVec::new();
        let mut next = self.users[user].head;
        while next != 0 && out.len() <= self.handles.len() {
            let i = (next - 1) as usize;
            out.push(i);
            next = self.handles[i].next;
        }
        out
    }

    /// (types the user holds through any handle, user-count types counted by handles).
    fn user_holds(&self, user: usize) -> (u64, u64) {
        (self.users[user].held, self.users[user].counted)
    }

    /// Adds (or with `remove`, takes away) one handle's types to its user's counts.
    fn count_handle(&mut self, user: usize, user_types: u64, session_types: u64, remove: bool) {
        let u = &mut self.users[user];
        for s in bits(user_types) {
            u.user_refs[s] = if remove { u.user_refs[s].saturating_sub(1) } else { u.user_refs[s] + 1 };
        }
        for s in bits(session_types) {
            u.session_refs[s] =
                if remove { u.session_refs[s].saturating_sub(1) } else { u.session_refs[s] + 1 };
        }
        for s in bits(user_types | session_types) {
            let bit = 1u64 << s;
            if u.user_refs[s] > 0 {
                u.counted |= bit
            } else {
                u.counted &= !bit
            }
            if u.user_refs[s] + u.session_refs[s] > 0 { u.held |= bit } else { u.held &= !bit }
        }
    }

    /// Puts handle `i` first in its user's chain.
    fn link_handle(&mut self, user: usize, i: usize) {
        let head = self.users[user].head;
        self.handles[i].prev = 0;
        self.handles[i].next = head;
        if head != 0 {
            self.handles[(head - 1) as usize].prev = i as u32 + 1;
        }
        self.users[user].head = i as u32 + 1;
    }

    fn lingering_set(&self, user: usize) -> u64 {
        self.users[user].linger_slot.iter().filter(|&&s| s != 0).fold(0, |acc, &s| acc | 1 << (s - 1))
    }

    // ---- counts ----

    fn take(&self, shared: usize, map: &SlotMap, changes: &mut Changes) {
        let c = &self.counters[shared];
        let before = c.used.load(Ordering::Relaxed);
        c.used.store(before + 1, Ordering::Release);
        c.acquired.fetch_add(1, Ordering::Relaxed);
        c.peak.fetch_max(before + 1, Ordering::Relaxed);
        c.peak_since_reset.fetch_max(before + 1, Ordering::Relaxed);
        if let Some(slot) = map.config_slot(shared) {
            changes.count(slot, before, before + 1);
        }
    }

    fn give_back(&self, shared: usize, map: &SlotMap, changes: &mut Changes) {
        let c = &self.counters[shared];
        let before = c.used.load(Ordering::Relaxed);
        let after = before.saturating_sub(1);
        c.used.store(after, Ordering::Release);
        if let Some(slot) = map.config_slot(shared) {
            changes.count(slot, before, after);
        }
    }

    fn used(&self, shared: usize) -> u32 {
        self.counters[shared].used.load(Ordering::Relaxed)
    }

    /// Frees the user's linger windows that ended by `now`.
    fn end_lingering(&mut self, user: usize, now: Mono, map: &SlotMap, changes: &mut Changes) -> usize {
        let mut freed = 0;
        for k in 0..LINGER_SLOTS {
            let slot = self.users[user].linger_slot[k];
            if slot != 0 && self.users[user].linger_deadline[k] <= now {
                self.users[user].linger_slot[k] = 0;
                self.give_back(usize::from(slot - 1), map, changes);
                freed += 1;
            }
        }
        freed
    }

    // ---- operations ----

    fn refuse(&self, config: &Config, map: &SlotMap, shared: usize) -> Error {
        match map.config_slot(shared).and_then(|slot| config.licenses.get(slot)) {
            Some(license) => {
                Error::LimitReached(Denial::limit(license.name.clone(), self.used(shared), license.limit))
            }
            None => Error::Backend("a license type of the request has no shared slot".into()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn acquire(
        &mut self,
        config: &Config,
        map: &SlotMap,
        req: &SeatRequest<'_>,
        owner: u32,
        path: &std::path::Path,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let types = map.shared(req.types);
        let user_types = types & map.user_count;
        let session_types = types & !map.user_count;
        let hash = name_hash(req.user);
        let user = self.find_user(req.user, hash);
        let (held, counted) = user.map_or((0, 0), |u| self.user_holds(u));

        let dependent = types & map.requiring;
        if dependent != 0 {
            let available = types | held;
            for s in bits(dependent) {
                let missing = map.requires[s] & !available;
                if missing != 0 {
                    let name = |s: usize| map.config_slot(s).map(|slot| config.licenses[slot].name.clone());
                    let (Some(license), Some(slot)) = (name(s), map.config_slot(s)) else { continue };
                    return Err(Error::LimitReached(Denial {
                        license,
                        used: self.used(s),
                        limit: config.licenses[slot].limit,
                        reason: DenialReason::MissingRequirement,
                        requires: name(missing.trailing_zeros() as usize),
                        profile: None,
                    }));
                }
            }
        }

        let mut reuse = 0;
        if let Some(u) = user {
            self.end_lingering(u, req.now.get(), map, changes);
            reuse = self.lingering_set(u) & user_types;
        }
        let needed = (user_types & !counted & !reuse) | session_types;
        let refused = bits(needed)
            .find(|&s| map.limit[s] == 0)
            .or_else(|| bits(needed).find(|&s| self.used(s) >= map.limit[s]));
        if let Some(s) = refused {
            if let Some(u) = user {
                self.forget_if_empty(u);
            }
            return Err(self.refuse(config, map, s));
        }
        let capacity = self.handles.len() as u32;
        let full = || Error::TableFull { capacity, path: path.display().to_string() };
        if self.meta.free_handle == 0 && self.meta.handle_hwm as usize >= self.handles.len() {
            return Err(full());
        }
        let user = match user {
            Some(u) => u,
            None => self.new_user(req.user, hash).ok_or_else(full)?,
        };

        for s in bits(needed) {
            self.take(s, map, changes);
        }
        if reuse != 0 {
            let u = &mut self.users[user];
            for k in 0..LINGER_SLOTS {
                if u.linger_slot[k] != 0 && reuse & 1 << (u.linger_slot[k] - 1) != 0 {
                    u.linger_slot[k] = 0;
                }
            }
        }

        let i = match self.meta.free_handle {
            0 => {
                self.meta.handle_hwm += 1;
                self.meta.handle_hwm as usize - 1
            }
            head => {
                let i = (head - 1) as usize;
                self.meta.free_handle = self.handles[i].next;
                i
            }
        };
        let floor = GENERATION_FLOOR.load(Ordering::Relaxed);
        let generation = next_generation(self.handles[i].generation, self.meta.first_generation, floor);
        GENERATION_FLOOR.fetch_max((generation + 1).min(GENERATIONS), Ordering::Relaxed);
        let seat = u64::from(generation) << INDEX_BITS | i as u64;
        let deadline = if req.lease > 0 { req.now.get().saturating_add(req.lease) } else { 0 };
        let h = &mut self.handles[i];
        h.generation = generation;
        h.user = user as u32 + 1;
        h.user_types = user_types;
        h.session_types = session_types;
        h.lease = req.lease;
        h.deadline = deadline;
        h.since_unix_ns = u64::try_from(req.since_ms).map_or(0, |ms| ms.saturating_mul(1_000_000));
        h.owner = owner;
        h.flags = 0;
        if let Some(ext) = req.extension {
            h.ext_len = put_label(&mut h.extension, ext);
            h.flags |= 1;
        }
        if let Some(session) = req.session {
            h.session_len = put_label(&mut h.session, session);
            h.flags |= 2;
        }
        commit_barrier();
        h.seat = seat;
        self.link_handle(user, i);
        self.count_handle(user, user_types, session_types, false);
        if owner != 0 {
            self.meta.owners[(owner - 1) as usize].handles += 1;
        }
        self.header.handles_used.fetch_add(1, Ordering::Relaxed);
        if deadline != 0 {
            self.header.lease_hint.fetch_min(deadline, Ordering::SeqCst);
        }
        Ok(seat)
    }

    /// The live handle record of `seat`, if any: the record the id names, holding
    /// this very id (not an earlier or later generation).
    fn handle_of(&self, seat: SeatId) -> Option<usize> {
        let i = (seat & INDEX_MASK) as usize;
        (seat != 0 && self.handles.get(i).is_some_and(|h| h.seat == seat)).then_some(i)
    }

    fn expired(&self, i: usize, now: Mono) -> bool {
        let d = self.handles[i].deadline;
        d != 0 && d <= now
    }

    fn not_held(&self, seat: SeatId) -> Error {
        let gone = self.meta.gone.iter().find(|g| g.seat == seat && seat != 0);
        match gone.and_then(|g| why_of(g.why)) {
            Some(ReleaseWhy::Expired) => Error::SeatExpired(seat),
            Some(why) => Error::SeatReleased(seat, why),
            None => Error::UnknownSeat(seat),
        }
    }

    /// Gives back what handle `i` holds (or keeps user-count seats lingering).
    fn drop_handle(
        &mut self,
        map: &SlotMap,
        i: usize,
        why: ReleaseWhy,
        lingers: bool,
        now: Mono,
        changes: &mut Changes,
    ) {
        let seat = self.handles[i].seat;
        let user = (self.handles[i].user - 1) as usize;
        let (user_types, session_types) = (self.handles[i].user_types, self.handles[i].session_types);
        let h = &self.handles[i];
        // A quiet call leaves out the logouts it was asked for (see `Changes::quiet`).
        let described = (!changes.quiet || why != ReleaseWhy::Normal).then(|| ReleasedSeat {
            seat,
            user: label(&self.users[user].name, self.users[user].name_len),
            types: map.config_set(user_types | session_types),
            why,
            extension: (h.flags & 1 != 0).then(|| label(&h.extension, h.ext_len)),
            session: (h.flags & 2 != 0).then(|| label(&h.session, h.session_len)),
            used: SmallVec::new(),
        });
        let owner = h.owner;

        // The release's commit point, then the derived fields.
        self.handles[i].seat = 0;
        let target = i as u32 + 1;
        let (prev, next) = (self.handles[i].prev, self.handles[i].next);
        match prev {
            0 => self.users[user].head = next,
            p => self.handles[(p - 1) as usize].next = next,
        }
        if next != 0 {
            self.handles[(next - 1) as usize].prev = prev;
        }
        self.count_handle(user, user_types, session_types, true);
        self.handles[i].prev = 0;
        self.handles[i].next = self.meta.free_handle;
        self.meta.free_handle = target;
        self.header.handles_used.fetch_sub(1, Ordering::Relaxed);
        if owner != 0 {
            let row = &mut self.meta.owners[(owner - 1) as usize];
            row.handles = row.handles.saturating_sub(1);
        }

        for s in bits(session_types) {
            self.give_back(s, map, changes);
        }
        let (_, still_counted) = self.user_holds(user);
        for s in bits(user_types & !still_counted) {
            let window = if lingers { map.linger[s] } else { 0 };
            let free = self.users[user].linger_slot.iter().position(|&k| k == 0);
            match (window, free) {
                (w, Some(k)) if w > 0 => {
                    let deadline = now.saturating_add(w);
                    let u = &mut self.users[user];
                    u.linger_deadline[k] = deadline;
                    commit_barrier();
                    u.linger_slot[k] = s as u8 + 1;
                    self.header.linger_hint.fetch_min(deadline, Ordering::SeqCst);
                }
                _ => self.give_back(s, map, changes),
            }
        }
        if matches!(
            why,
            ReleaseWhy::Expired
                | ReleaseWhy::Dependency
                | ReleaseWhy::Admin
                | ReleaseWhy::OwnerGone
                | ReleaseWhy::EmergencyExpired
                | ReleaseWhy::LicenseExpired
        ) {
            let k = self.meta.gone_head as usize % GONE;
            self.meta.gone[k].seat = seat;
            self.meta.gone[k].why = why_byte(why);
            self.meta.gone_head = ((k + 1) % GONE) as u32;
        }
        if let Some(mut released) = described {
            released.used = released
                .types
                .iter()
                .map(|slot| match map.to_shared[slot] {
                    NO_SLOT => 0,
                    s => self.used(usize::from(s)),
                })
                .collect();
            changes.released.push(released);
        }
    }

    /// Releases the user's handles whose `requires` the user no longer holds.
    fn cascade(&mut self, map: &SlotMap, user: usize, lingers: bool, now: Mono, changes: &mut Changes) {
        if map.requiring == 0 {
            return;
        }
        loop {
            let (held, _) = self.user_holds(user);
            let victims: SmallVec<[usize; 4]> = self
                .handles_of(user)
                .into_iter()
                .filter(|&i| {
                    let h = &self.handles[i];
                    bits((h.user_types | h.session_types) & map.requiring)
                        .any(|d| map.requires[d] & !held != 0)
                })
                .collect();
            if victims.is_empty() {
                return;
            }
            for i in victims {
                let why = if self.expired(i, now) { ReleaseWhy::Expired } else { ReleaseWhy::Dependency };
                self.drop_handle(map, i, why, lingers, now, changes);
            }
        }
    }

    fn settle(&mut self, map: &SlotMap, i: usize, why: ReleaseWhy, now: Mono, changes: &mut Changes) {
        let user = (self.handles[i].user - 1) as usize;
        self.drop_handle(map, i, why, why.lingers(), now, changes);
        self.cascade(map, user, why.lingers(), now, changes);
        self.forget_if_empty(user);
    }

    fn reap(&mut self, map: &SlotMap, now: Mono, owners: bool, changes: &mut Changes) -> usize {
        let mut reclaimed = 0;
        if now >= self.header.lease_hint.load(Ordering::SeqCst) {
            let mut next = u64::MAX;
            let mut due: Vec<usize> = Vec::new();
            for (i, h) in self.handles[..self.handle_end()].iter().enumerate() {
                if h.seat == 0 || h.deadline == 0 {
                    continue;
                }
                if h.deadline <= now {
                    due.push(i);
                } else {
                    next = next.min(h.deadline);
                }
            }
            self.header.lease_hint.store(next, Ordering::SeqCst);
            for i in due {
                if self.handles[i].seat != 0 {
                    self.settle(map, i, ReleaseWhy::Expired, now, changes);
                    reclaimed += 1;
                }
            }
        }
        if now >= self.header.linger_hint.load(Ordering::SeqCst) {
            let mut next = u64::MAX;
            for user in 0..self.user_end() {
                if self.users[user].live != 1 {
                    continue;
                }
                reclaimed += self.end_lingering(user, now, map, changes);
                let u = &self.users[user];
                for k in 0..LINGER_SLOTS {
                    if u.linger_slot[k] != 0 {
                        next = next.min(u.linger_deadline[k]);
                    }
                }
                self.forget_if_empty(user);
            }
            self.header.linger_hint.store(next, Ordering::SeqCst);
        }
        if owners && now >= self.header.next_owner_check.load(Ordering::SeqCst) {
            self.header.next_owner_check.store(now.saturating_add(OWNER_CHECK), Ordering::SeqCst);
            for row in 0..OWNERS {
                let owner = self.meta.owners[row];
                if owner.pid == 0 || !owner_gone(&owner) {
                    continue;
                }
                let mark = row as u32 + 1;
                let theirs: Vec<usize> = (0..self.handle_end())
                    .filter(|&i| self.handles[i].seat != 0 && self.handles[i].owner == mark)
                    .collect();
                for i in theirs {
                    if self.handles[i].seat != 0 {
                        let why =
                            if self.expired(i, now) { ReleaseWhy::Expired } else { ReleaseWhy::OwnerGone };
                        self.settle(map, i, why, now, changes);
                        reclaimed += 1;
                    }
                }
                self.meta.owners[row] = OwnerRec { pid: 0, _pad: 0, start: 0, handles: 0, _pad2: 0 };
            }
        }
        reclaimed
    }

    /// Rebuilds everything derived from the committed records: user buckets and free
    /// list, each user's handle chain, the handle free list, every count, the owners'
    /// handle counts and the hints. Runs on a fresh file and after a process died
    /// holding the lock.
    fn recover(&mut self) {
        // Buckets are written only for users; a table that never had one (a fresh
        // file) has all of them zero still, and leaving them untouched keeps their
        // pages unallocated: an idle tenant's table costs a few pages, not its buckets.
        if self.meta.user_hwm != 0 {
            self.buckets.fill(0);
        }
        self.meta.free_user = 0;
        let mut users_used = 0;
        self.meta.user_hwm = self.user_end() as u32;
        self.meta.handle_hwm = self.handle_end() as u32;
        for i in (0..self.user_end()).rev() {
            self.users[i].head = 0;
            self.users[i].held = 0;
            self.users[i].counted = 0;
            self.users[i].user_refs = [0; MAX_LICENSE_TYPES];
            self.users[i].session_refs = [0; MAX_LICENSE_TYPES];
            let u = &self.users[i];
            let valid = u.live == 1 && usize::from(u.name_len) < LABEL && u.name_len > 0;
            let name = String::from_utf8_lossy(&u.name[..usize::from(u.name_len).min(LABEL)]).into_owned();
            if valid && self.find_user(&name, u.hash).is_none() && name_hash(&name) == u.hash {
                let bucket = self.bucket(u.hash);
                self.users[i].next = self.buckets[bucket];
                self.buckets[bucket] = i as u32 + 1;
                users_used += 1;
            } else {
                self.users[i].live = 0;
                self.users[i].next = self.meta.free_user;
                self.meta.free_user = i as u32 + 1;
            }
        }
        self.meta.free_handle = 0;
        for owner in self.meta.owners.iter_mut().filter(|o| o.pid != 0 || o.handles != 0) {
            owner.handles = 0;
        }
        let mut handles_used = 0;
        let mut lease_hint = u64::MAX;
        for i in (0..self.handle_end()).rev() {
            let h = &self.handles[i];
            let user = h.user.wrapping_sub(1) as usize;
            let generation = h.seat >> INDEX_BITS;
            let live = h.seat != 0
                && (h.seat & INDEX_MASK) as usize == i
                && (1..=u64::from(GENERATIONS)).contains(&generation)
                && self.users.get(user).is_some_and(|u| u.live == 1);
            if live {
                self.handles[i].generation = generation as u32;
                let h = &self.handles[i];
                if h.deadline != 0 {
                    lease_hint = lease_hint.min(h.deadline);
                }
                let (owner, user_types, session_types) = (h.owner, h.user_types, h.session_types);
                self.link_handle(user, i);
                self.count_handle(user, user_types, session_types, false);
                handles_used += 1;
                if let Some(row) = owner.checked_sub(1).and_then(|r| self.meta.owners.get_mut(r as usize)) {
                    row.handles += 1;
                }
            } else {
                self.handles[i].seat = 0;
                self.handles[i].next = self.meta.free_handle;
                self.meta.free_handle = i as u32 + 1;
            }
        }
        let mut used = [0u32; MAX_LICENSE_TYPES];
        let mut linger_hint = u64::MAX;
        for user in 0..self.user_end() {
            if self.users[user].live != 1 {
                continue;
            }
            let (_, counted) = self.user_holds(user);
            for s in bits(counted) {
                used[s] += 1;
            }
            for k in 0..LINGER_SLOTS {
                let slot = self.users[user].linger_slot[k];
                if slot == 0 {
                    continue;
                }
                let s = usize::from(slot - 1);
                if s >= MAX_LICENSE_TYPES || counted & 1 << s != 0 {
                    // Counted by a handle already (or garbage): not lingering.
                    self.users[user].linger_slot[k] = 0;
                } else {
                    used[s] += 1;
                    linger_hint = linger_hint.min(self.users[user].linger_deadline[k]);
                }
            }
            for (n, refs) in used.iter_mut().zip(self.users[user].session_refs) {
                *n += refs;
            }
            if self.users[user].head == 0 && self.users[user].linger_slot.iter().all(|&s| s == 0) {
                self.free_user(user);
                users_used -= 1;
                // free_user decremented the mirror; it is set below.
            }
        }
        for (c, n) in self.counters.iter().zip(used) {
            c.used.store(n, Ordering::Release);
        }
        self.header.handles_used.store(handles_used, Ordering::Relaxed);
        self.header.users_used.store(users_used, Ordering::Relaxed);
        self.header.lease_hint.store(lease_hint, Ordering::SeqCst);
        self.header.linger_hint.store(linger_hint, Ordering::SeqCst);
        self.header.next_owner_check.store(0, Ordering::SeqCst);
        self.meta.needs_recovery = 0;
    }
}

impl Backend for ShmBackend {
    fn kind(&self) -> &'static str {
        "shm"
    }

    fn try_acquire(
        &self,
        config: &Config,
        req: &SeatRequest<'_>,
        changes: &mut Changes,
    ) -> Result<SeatId, Error> {
        let mut guard = self.lock()?;
        let mut table = self.table(&mut guard);
        let map = self.map_for(config, &mut table)?;
        let owner = self.owner_row(&mut table);
        table.acquire(config, &map, req, owner, self.region.path(), changes)
    }

    fn release(
        &self,
        config: &Config,
        seat: SeatId,
        why: ReleaseWhy,
        now: &Now<'_>,
        changes: &mut Changes,
    ) -> Result<(), Error> {
        let now = now.get();
        self.with_table(config, |table, map| match table.handle_of(seat) {
            Some(i) if table.expired(i, now) => {
                table.settle(map, i, ReleaseWhy::Expired, now, changes);
                Err(Error::SeatExpired(seat))
            }
            Some(i) => {
                table.settle(map, i, why, now, changes);
                Ok(())
            }
            None => Err(table.not_held(seat)),
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
        self.with_table(config, |table, map| {
            let Some(u) = table.find_user(user, name_hash(user)) else {
                return Err(Error::UnknownUser(user.to_string()));
            };
            let mut freed_lingering = false;
            if !why.lingers() {
                for k in 0..LINGER_SLOTS {
                    let slot = table.users[u].linger_slot[k];
                    if slot != 0 {
                        table.users[u].linger_slot[k] = 0;
                        table.give_back(usize::from(slot - 1), map, changes);
                        freed_lingering = true;
                    }
                }
            }
            let mut released = 0;
            for i in table.handles_of(u) {
                if table.handles[i].seat == 0 {
                    continue;
                }
                let why = if table.expired(i, now) { ReleaseWhy::Expired } else { why };
                table.drop_handle(map, i, why, why.lingers(), now, changes);
                released += 1;
            }
            table.forget_if_empty(u);
            if released > 0 || freed_lingering {
                Ok(released)
            } else {
                Err(Error::UnknownUser(user.to_string()))
            }
        })
    }

    fn touch(&self, config: &Config, seat: SeatId, now: Mono, changes: &mut Changes) -> Result<(), Error> {
        self.with_table(config, |table, map| match table.handle_of(seat) {
            Some(i) if table.expired(i, now) => {
                table.settle(map, i, ReleaseWhy::Expired, now, changes);
                Err(Error::SeatExpired(seat))
            }
            Some(i) => {
                let h = &mut table.handles[i];
                if h.lease > 0 {
                    h.deadline = now.saturating_add(h.lease);
                }
                Ok(())
            }
            None => Err(table.not_held(seat)),
        })
    }

    fn touch_user(
        &self,
        config: &Config,
        user: &str,
        now: Mono,
        changes: &mut Changes,
    ) -> Result<usize, Error> {
        self.with_table(config, |table, map| {
            let Some(u) = table.find_user(user, name_hash(user)) else {
                return Err(Error::UnknownUser(user.to_string()));
            };
            let mut renewed = 0;
            for i in table.handles_of(u) {
                if table.handles[i].seat == 0 {
                    continue;
                }
                if table.expired(i, now) {
                    table.settle(map, i, ReleaseWhy::Expired, now, changes);
                } else {
                    let h = &mut table.handles[i];
                    if h.lease > 0 {
                        h.deadline = now.saturating_add(h.lease);
                    }
                    renewed += 1;
                }
            }
            if let Some(u) = table.find_user(user, name_hash(user)) {
                table.forget_if_empty(u);
            }
            if renewed == 0 { Err(Error::UnknownUser(user.to_string())) } else { Ok(renewed) }
        })
    }

    fn reap(&self, config: &Config, now: Mono, changes: &mut Changes) -> usize {
        let h = self.region.header();
        let owners = self.reclaim_dead_owners;
        let due = now >= h.lease_hint.load(Ordering::SeqCst)
            || now >= h.linger_hint.load(Ordering::SeqCst)
            || (owners && now >= h.next_owner_check.load(Ordering::SeqCst));
        if !due {
            return 0;
        }
        self.with_table(config, |table, map| Ok(table.reap(map, now, owners, changes))).unwrap_or(0)
    }

    fn used(&self, config: &Config, slot: usize) -> u32 {
        self.counter(config, slot).map_or(0, |c| c.used.load(Ordering::Acquire))
    }

    fn stats(&self, config: &Config, slot: usize) -> TypeStats {
        self.counter(config, slot).map_or_else(TypeStats::default, |c| TypeStats {
            peak: c.peak.load(Ordering::Relaxed),
            peak_since_reset: c.peak_since_reset.load(Ordering::Relaxed),
            acquired: c.acquired.load(Ordering::Relaxed),
            denied: c.denied.load(Ordering::Relaxed),
        })
    }

    fn count_denial(&self, config: &Config, slot: usize) {
        if let Some(c) = self.counter(config, slot) {
            c.denied.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn reset_peaks(&self, _config: &Config) {
        for c in self.region.counters() {
            c.peak_since_reset.store(c.used.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    fn holders(&self, config: &Config) -> Vec<HeldSeat> {
        self.with_table(config, |table, map| {
            let mut out = Vec::with_capacity(table.header.handles_used.load(Ordering::Relaxed) as usize);
            for h in table.handles[..table.handle_end()].iter().filter(|h| h.seat != 0) {
                let Some(u) = table.users.get((h.user - 1) as usize) else { continue };
                let pid =
                    h.owner.checked_sub(1).and_then(|r| table.meta.owners.get(r as usize)).map(|o| o.pid);
                out.push(HeldSeat {
                    seat: h.seat,
                    user: label(&u.name, u.name_len),
                    types: map.config_set(h.user_types | h.session_types),
                    extension: (h.flags & 1 != 0).then(|| label(&h.extension, h.ext_len)),
                    session: (h.flags & 2 != 0).then(|| label(&h.session, h.session_len)),
                    since: UNIX_EPOCH + Duration::from_nanos(h.since_unix_ns),
                    deadline: h.deadline,
                    node: pid.filter(|&p| p != 0).map(|p| Arc::from(format!("pid {p}"))),
                    order: h.seat,
                });
            }
            Ok(out)
        })
        .unwrap_or_default()
    }

    fn own_holders(&self, config: &Config) -> Vec<HeldSeat> {
        let me = Some(Arc::<str>::from(format!("pid {}", own_pid())));
        self.holders(config).into_iter().filter(|h| h.node == me).collect()
    }

    fn lingering(&self, config: &Config) -> Vec<LingeringSeat> {
        self.with_table(config, |table, map| {
            let mut out = Vec::new();
            for u in table.users[..table.user_end()].iter().filter(|u| u.live == 1) {
                for k in 0..LINGER_SLOTS {
                    let slot = u.linger_slot[k];
                    if slot == 0 {
                        continue;
                    }
                    if let Some(slot) = map.config_slot(usize::from(slot - 1)) {
                        out.push(LingeringSeat {
                            user: label(&u.name, u.name_len),
                            slot,
                            deadline: u.linger_deadline[k],
                        });
                    }
                }
            }
            Ok(out)
        })
        .unwrap_or_default()
    }

    fn reload_epoch(&self) -> u64 {
        if self.tenant {
            return 0;
        }
        self.region.header().reload_seq.load(Ordering::Acquire)
    }

    fn announce_reload(&self) -> u64 {
        if self.tenant {
            return 0;
        }
        self.region.header().reload_seq.fetch_add(1, Ordering::AcqRel) + 1
    }

    fn shared(&self) -> bool {
        true
    }

    /// The numbers from the file `{path}@@tenants`, which every process mapping the
    /// table shares (see `registry`).
    fn tenant_numbers(&self, names: &[&str], max: usize) -> Result<Option<Vec<u32>>, Error> {
        self.registry.as_ref().map(|r| r.numbers(names, max)).transpose()
    }

    fn tenant_named(&self, number: u32) -> Result<Option<Arc<str>>, Error> {
        Ok(self.registry.as_ref().map(|r| r.name_of(number)).transpose()?.flatten())
    }

    /// Maps `{path}@{tenant}` ([`ShmBackend::tenant_path`]) with this table's capacity
    /// and `reclaim_dead_owners`, creating it (mode 0600) on first use and checking it
    /// as the main file is checked: every process of the host that opens the tenant
    /// maps the same table, with its own slot map and owner row there.
    fn open_tenant(&self, tenant: &str) -> Result<Box<dyn Backend>, Error> {
        super::check_tenant_name(tenant)?;
        let config = ShmConfig {
            path: self.tenant_path(tenant),
            capacity: self.capacity,
            reclaim_dead_owners: self.reclaim_dead_owners,
        };
        Ok(Box::new(ShmBackend::open_pool(&config, true)?))
    }

    fn status(&self, _config: &Config) -> BackendStatus {
        let h = self.region.header();
        let handles = h.handles_used.load(Ordering::Relaxed);
        let capacity = self.region.capacity();
        let mut warnings = Vec::new();
        let recoveries = h.recoveries.load(Ordering::Relaxed);
        if recoveries > 0 {
            warnings.push(format!(
                "shared seat table {}: taken over {recoveries} times from a process that died holding its lock (counts were rebuilt from the seat records)",
                self.region.path().display()
            ));
        }
        if handles as usize * 10 >= capacity * 9 {
            warnings.push(format!(
                "shared seat table {} is {}% full ({handles}/{capacity} handles): raise [backend] capacity",
                self.region.path().display(),
                handles as usize * 100 / capacity.max(1)
            ));
        }
        if !self.reclaim_dead_owners {
            warnings.push(
                "[backend] reclaim_dead_owners = false: seats of a process that dies are reclaimed only when their lease runs out"
                    .to_string(),
            );
        }
        let created = UNIX_EPOCH + Duration::from_millis(h.created_unix_ms.load(Ordering::Relaxed));
        BackendStatus {
            kind: "shm",
            detail: format!(
                "{}, {handles}/{capacity} handles, created {}",
                self.region.path().display(),
                crate::clock::rfc3339(created)
            ),
            degraded: None,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, Request};

    fn table_path(name: &str) -> std::path::PathBuf {
        let dir =
            if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm".into() } else { std::env::temp_dir() };
        dir.join(format!("seatgate-unit-{name}-{}", std::process::id()))
    }

    #[test]
    fn generations_wrap_within_24_bits_and_a_stale_id_stays_stale() {
        assert_eq!(next_generation(GENERATIONS - 1, 0, 1), GENERATIONS);
        assert_eq!(next_generation(GENERATIONS, 0, 1), 1, "wraps to 1, never 0");
        assert_eq!(next_generation(0, u64::from(GENERATIONS) - 1, 1), GENERATIONS);
        assert_eq!(next_generation(0, u64::from(GENERATIONS), 1), 1);
        assert_eq!(next_generation(0, 5, 100), 100, "not below what this process handed out");
        assert_eq!(next_generation(0, 5, u32::MAX), GENERATIONS);
        let highest = u64::from(GENERATIONS) << INDEX_BITS | INDEX_MASK;
        assert_eq!(highest, crate::types::SEAT_ID_MASK, "the highest id is 2^48 - 1");

        let path = table_path("wrap");
        let _ = std::fs::remove_file(&path);
        let shm = ShmConfig { path: path.clone(), capacity: 4, reclaim_dead_owners: true };
        let backend = ShmBackend::open(&shm).unwrap();
        let _ = std::fs::remove_file(&path);
        // Record 0 was handed out all but once of its generations.
        backend.region.lock().unwrap().tables().handles[0].generation = GENERATIONS - 1;
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 2\n", "t.toml").unwrap();
        let engine = Engine::with_backend(config, Box::new(backend)).unwrap();
        let last = engine.try_acquire(&Request::new("alice", "crm")).unwrap();
        assert_eq!(last, u64::from(GENERATIONS) << INDEX_BITS);
        engine.release(last).unwrap();
        let wrapped = engine.try_acquire(&Request::new("alice", "crm")).unwrap();
        assert_eq!(wrapped, 1 << INDEX_BITS, "generation 1 of record 0");
        // The stale id names the same record, but not this generation: unknown.
        assert!(matches!(engine.release(last), Err(Error::UnknownSeat(_))));
        assert_eq!(engine.usage_of("crm").unwrap().used, 1);
        engine.release(wrapped).unwrap();
    }

    #[test]
    fn a_lock_owner_that_dies_mid_change_costs_nothing() {
        let path = table_path("dead-owner");
        let _ = std::fs::remove_file(&path);
        let shm = ShmConfig { path: path.clone(), capacity: 64, reclaim_dead_owners: true };
        let config = Config::from_toml_str("[licenses.crm]\nlimit = 2\n", "t.toml").unwrap();
        let engine = Engine::with_backend(config, Box::new(ShmBackend::open(&shm).unwrap())).unwrap();
        engine.try_acquire(&Request::new("alice", "crm")).unwrap();

        // Another "process" takes the lock, tears a count and a free list, and dies
        // holding it (a thread that exits without unlocking: the same robust-futex path).
        let other = ShmBackend::open(&shm).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut guard = other.region.lock().unwrap();
                other.region.counters()[0].used.store(77, Ordering::Relaxed);
                guard.tables().meta.free_handle = 0;
                std::mem::forget(guard);
            });
        });
        let _ = std::fs::remove_file(&path);

        // The next locker takes over and rebuilds from the records.
        engine.try_acquire(&Request::new("bob", "crm")).unwrap();
        assert_eq!(engine.usage_of("crm").unwrap().used, 2);
        assert!(engine.try_acquire(&Request::new("carol", "crm")).is_err());
        let report = engine.report(crate::report::Page::ALL);
        assert!(report.warnings.iter().any(|w| w.contains("taken over 1 times")), "{:?}", report.warnings);
    }
}
