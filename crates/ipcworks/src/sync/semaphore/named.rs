//! [`Semaphore`]: a semaphore in its own shared memory segment, named
//! (`/dev/shm/ipcworks.sem.NAME`) or anonymous (memfd).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::Duration;

use super::env::Futex;
use super::raw::{self, Env, MAX_HOLDERS, SemaphoreState};
use super::robust::Pool;
use super::watch::HolderWatch;
use crate::primitive::AtomicU32 as RawU32;
use crate::shm::{self, Named, Segment, SegmentOptions};
use crate::sys::futex::{self, Wake};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;
use crate::{Error, Result, name};

#[cfg(test)]
const STATE_OFF: usize = std::mem::offset_of!(Header, state);
const SLOTS_OFF: usize = 128;
/// Default holder table: the initial value, at least 64, at most 1024.
const DEFAULT_HOLDERS: (u32, u32) = (64, 1024);
/// How long a waiter sleeps at most before it looks whether the segment
/// was truncated.
const SLICE: Duration = Duration::from_millis(100);

/// The segment's first 128 bytes. `magic` is written last by the creator;
/// openers wait for it (at most 1 s) and check everything else
/// ([`shm::Named`]).
///
/// ```text
/// 0    magic, version, max_holders, layout size, initial value
/// 64   SemaphoreState (count and claim, helper lock, futex word, waiters)
/// 128  holder table: max_holders words (identity | state)
/// …    co-holder table: max_holders words (identity of a child holding
///      the slot's permit with its owner, or 0)
/// ```
#[repr(C)]
pub(crate) struct Header {
    magic: AtomicU64,
    version: AtomicU32,
    max_holders: AtomicU32,
    layout: AtomicU64,
    /// The value the semaphore was created with (its number of permits
    /// when used as a pool). Never changes.
    initial: AtomicU32,
    reserved: AtomicU32,
    _pad: [AtomicU64; 4],
    state: SemaphoreState,
}

const _: () = assert!(std::mem::offset_of!(Header, state) == 64);
const _: () = assert!(size_of::<Header>() <= SLOTS_OFF);

/// A semaphore's geometry: its holder table, and the value it was
/// created with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    holders: u32,
    initial: u32,
}

// SAFETY: `#[repr(C)]`, 8-aligned, atomics only; `magic` is the first
// field.
unsafe impl shm::Header for Header {
    const PREFIX: &'static str = "ipcworks.sem.";
    const KIND: &'static str = "semaphore";
    const ADDRESS: &'static str = "sem";
    const MAGIC: u64 = u64::from_le_bytes(*b"ipcwSEM1");
    /// Version 2: the header records the initial value, and a co-holder
    /// table follows the holder table.
    /// 3: `waiters` counts pollers too (a post wakes everyone while one
    /// is registered).
    const VERSION: u64 = 3;
    type Layout = Layout;

    fn size(l: &Layout) -> usize {
        layout_size(l.holders)
    }

    fn magic(&self) -> &AtomicU64 {
        &self.magic
    }

    fn version(&self) -> u64 {
        self.version.load(SeqCst).into()
    }

    fn init(&self, l: &Layout) -> Result<()> {
        self.version.store(Self::VERSION as u32, SeqCst);
        self.max_holders.store(l.holders, SeqCst);
        self.layout.store(layout_size(l.holders) as u64, SeqCst);
        self.initial.store(l.initial, SeqCst);
        self.state.init(l.initial)
    }

    fn validate(&self, len: usize) -> Result<Layout> {
        let n = self.max_holders.load(SeqCst);
        let layout = self.layout.load(SeqCst);
        if n == 0 || n > MAX_HOLDERS || layout != layout_size(n) as u64 {
            return Err(Error::corrupted(format!(
                "semaphore header says {n} holders in {layout} bytes, segment has {len}"
            )));
        }
        Ok(Layout {
            holders: n,
            initial: self.initial.load(SeqCst),
        })
    }
}

fn layout_size(holders: u32) -> usize {
    SLOTS_OFF + 16 * holders as usize
}

/// Where the co-holder table starts.
fn co_off(holders: usize) -> usize {
    SLOTS_OFF + 8 * holders
}

/// A counting semaphore that lives in shared memory, usable between threads
/// and processes, robust when used as a pool.
///
/// - `wait` (P) / `post` (V) / `try_wait` / `wait_timeout` / `value`: the
///   classic semaphore, for signalling (a producer posts, a consumer
///   waits). Not tracked: a permit taken by `wait` is just gone.
/// - [`acquire`](Self::acquire) / [`try_acquire`](Self::try_acquire) /
///   [`acquire_timeout`](Self::acquire_timeout): take a permit as a
///   [`Permit`] guard, recorded in the segment's holder table under this
///   process (pid and start time), given back on drop. If the process dies
///   holding it, even by SIGKILL, the permit comes back: a waiter that finds
///   the count at 0 scans the table, and so does [`reclaim`](Self::reclaim).
///   There is no moment at which a kill leaks or duplicates a permit (see
///   the protocol in `sync/semaphore/raw.rs`). A child command run under a
///   permit ([`process::spawn_holding`](crate::process::spawn_holding))
///   holds it too: it comes back only once the holder and the child are
///   both dead.
///
/// A *binary* semaphore is one created with value 1
/// ([`Semaphore::binary`]).
///
/// Named semaphores live in `/dev/shm/ipcworks.sem.NAME`, mode 0600 unless
/// asked otherwise; the creator removes the name when dropped unless told
/// to persist. All processes using one must share a pid namespace (liveness
/// is judged through `/proc`).
///
/// # Truncation
///
/// A process that truncates the segment under this one (`ftruncate` of
/// `/dev/shm/ipcworks.sem.NAME`) gets every later call here
/// [`Error::Truncated`], never a `SIGBUS`: a call that touches a lost page
/// finds out at once, a waiter within 100 ms (it looks at the segment's
/// size between sleeps). A cut inside the segment's last page loses no
/// page, only the bytes past the new end, which read as zeros from then
/// on: to calls that do not wait that is a peer writing zeros over the
/// count and the holder table (a wrong value, never a crash), and
/// [`holders`](Self::holders), which returns no `Result`, cannot report
/// it.
#[derive(Debug)]
pub struct Semaphore {
    seg: Named<Header>,
    holders: usize,
}

/// Options for creating or opening a [`Semaphore`].
#[derive(Debug, Clone)]
pub struct SemaphoreOptions {
    mode: u32,
    persist: bool,
    max_holders: Option<u32>,
}

impl Default for SemaphoreOptions {
    fn default() -> Self {
        SemaphoreOptions {
            mode: 0o600,
            persist: false,
            max_holders: None,
        }
    }
}

impl SemaphoreOptions {
    /// Permission bits of a semaphore to create (exactly, whatever the
    /// umask; default 0600). When opening, one whose mode grants more is
    /// refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the name after the creator drops it (default: remove).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// Size of the holder table: how many [`Permit`]s can be out at once
    /// (default: the initial value, at least 64, at most 1024; at most
    /// [`MAX_HOLDERS`]).
    pub fn max_holders(&mut self, n: u32) -> &mut Self {
        self.max_holders = Some(n);
        self
    }

    fn holders_for(&self, value: u32) -> Result<u32> {
        let n = self
            .max_holders
            .unwrap_or_else(|| value.clamp(DEFAULT_HOLDERS.0, DEFAULT_HOLDERS.1));
        if n == 0 || n > MAX_HOLDERS {
            return Err(Error::InvalidArgument(format!(
                "max_holders {n} must be between 1 and {MAX_HOLDERS}"
            )));
        }
        Ok(n)
    }

    fn segment(&self) -> SegmentOptions {
        let mut o = Segment::options();
        o.mode(self.mode).persist(self.persist);
        o
    }

    /// The layout of a semaphore of initial value `value`.
    fn layout(&self, value: u32) -> Result<Layout> {
        raw::check_value(value)?;
        Ok(Layout {
            holders: self.holders_for(value)?,
            initial: value,
        })
    }

    /// Creates a named semaphore of initial value `value`; fails with
    /// [`Error::AlreadyExists`] if the name is taken.
    #[doc(alias = "sem_open")]
    pub fn create(&self, name: &str, value: u32) -> Result<Semaphore> {
        name::validate(name)?;
        let l = self.layout(value)?;
        Named::create(&self.segment(), name, l, |_| Ok(())).map(Semaphore::new)
    }

    /// Opens an existing named semaphore, after the checks of
    /// [`SegmentOptions::open`] (regular file, ours, no looser mode).
    #[doc(alias = "sem_open")]
    pub fn open(&self, name: &str) -> Result<Semaphore> {
        Named::open(&self.segment(), name, shm::PUBLISH_WAIT).map(Semaphore::new)
    }

    /// Opens the named semaphore, or creates it with `value`. Returns it and
    /// whether this call created it.
    pub fn open_or_create(&self, name: &str, value: u32) -> Result<(Semaphore, bool)> {
        name::validate(name)?;
        let l = self.layout(value)?;
        let (seg, created) = Named::open_or_create(&self.segment(), name, l, |_| Ok(()))?;
        Ok((Semaphore::new(seg), created))
    }

    /// Creates an anonymous semaphore (memfd), for threads or for child
    /// processes that inherit it ([`Semaphore::inheritable_fd`]).
    #[doc(alias = "sem_init")]
    pub fn anonymous(&self, value: u32) -> Result<Semaphore> {
        let l = self.layout(value)?;
        Named::anonymous(&self.segment(), l, |_| Ok(())).map(Semaphore::new)
    }
}

impl Semaphore {
    /// Options for creating or opening a semaphore.
    pub fn options() -> SemaphoreOptions {
        SemaphoreOptions::default()
    }

    /// Creates a named semaphore of value `value`, mode 0600, removed when
    /// dropped.
    pub fn create(name: &str, value: u32) -> Result<Semaphore> {
        Self::options().create(name, value)
    }

    /// Creates a named binary semaphore (value 1).
    pub fn binary(name: &str) -> Result<Semaphore> {
        Self::create(name, 1)
    }

    /// Opens an existing named semaphore (mode at most 0600).
    pub fn open(name: &str) -> Result<Semaphore> {
        Self::options().open(name)
    }

    /// Opens or creates a named semaphore.
    pub fn open_or_create(name: &str, value: u32) -> Result<(Semaphore, bool)> {
        Self::options().open_or_create(name, value)
    }

    /// Creates an anonymous semaphore.
    pub fn anonymous(value: u32) -> Result<Semaphore> {
        Self::options().anonymous(value)
    }

    /// Maps a semaphore from an inherited descriptor (see
    /// [`inheritable_fd`](Self::inheritable_fd)).
    pub fn from_fd(fd: OwnedFd) -> Result<Semaphore> {
        Named::from_fd(fd).map(Semaphore::new)
    }

    /// Removes a named semaphore by name; processes that have it open keep
    /// using it.
    #[doc(alias = "sem_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        Named::<Header>::remove(name)
    }

    /// A semaphore over a published, checked segment.
    fn new(seg: Named<Header>) -> Semaphore {
        let holders = seg.layout().holders as usize;
        Semaphore { seg, holders }
    }

    fn header(&self) -> &Header {
        self.seg.header()
    }

    fn state(&self) -> &SemaphoreState {
        &self.header().state
    }

    fn pool(&self) -> Pool<'_> {
        // SAFETY: SLOTS_OFF + 16 * holders <= len (`Named` checked the
        // segment's length against the layout, whose `holders` this is):
        // both tables are in bounds, 8-aligned;
        // AtomicU64 tolerates concurrent writers and any bit pattern.
        let (slots, co) = unsafe {
            (
                std::slice::from_raw_parts(
                    self.seg.as_ptr().add(SLOTS_OFF) as *const AtomicU64,
                    self.holders,
                ),
                std::slice::from_raw_parts(
                    self.seg.as_ptr().add(co_off(self.holders)) as *const AtomicU64,
                    self.holders,
                ),
            )
        };
        Pool {
            st: self.state(),
            slots,
            co,
        }
    }

    /// A [`WaitSet`](crate::waitset::WaitSet) helper's wait: until a
    /// permit is there (`true`, nothing taken) or `stop` is set and
    /// [`poll_interrupt`](Self::poll_interrupt) called (`false`). A
    /// truncated segment ends it with `true` (noticed within a
    /// `raw::POLL_SLICE`): the owner's `try_wait` reports it.
    ///
    /// It watches the holders' pidfds as a sleeping `acquire` does: a
    /// holder killed with its permit ends the wait with `true` at once
    /// (the owner's `try_acquire` then gives the permit back and takes
    /// it), where a plain futex sleep would wait for a post that never
    /// comes.
    pub(crate) fn poll_wait(&self, stop: &std::sync::atomic::AtomicBool) -> bool {
        let holders = HolderWatch::new(self.state(), self.pool().slots);
        super::raw::poll_wait(
            self.state(),
            stop,
            || self.poll_ready(),
            |word, v| {
                if holders.take_dead() {
                    return false;
                }
                let until = Deadline::after(super::raw::POLL_SLICE).min(holders.before_sleep());
                match futex::wait(word, v, until) {
                    Wake::Fault => false,
                    _ if holders.take_dead() => false,
                    // A cut wakes no futex: look at the size now and then.
                    Wake::TimedOut => self.seg.check_size().is_ok(),
                    Wake::Retry => self.seg.check_intact().is_ok(),
                }
            },
        )
    }

    /// Whether a permit is there now (a hint: nothing taken), or the
    /// segment is found truncated (the owner's `try_wait` reports that):
    /// the look a [`WaitSet`](crate::waitset::WaitSet) makes, its helper
    /// before each sleep and `wait` itself before it blocks.
    pub(crate) fn poll_ready(&self) -> bool {
        super::raw::poll_ready(self.state()) || self.seg.check_intact().is_err()
    }

    /// Ends a [`poll_wait`](Self::poll_wait) whose `stop` was set.
    pub(crate) fn poll_interrupt(&self) {
        super::raw::interrupt(self.state());
    }

    /// The protocol's surroundings for this semaphore: futexes, with
    /// sleeps that look at the segment.
    fn env(&self) -> Watching<'_> {
        Watching {
            seg: &self.seg,
            holders: HolderWatch::new(self.state(), self.pool().slots),
        }
    }

    /// P: takes a permit, sleeping while there is none (plain, not
    /// tracked). Signals do not interrupt it.
    #[doc(alias = "sem_wait")]
    #[doc(alias = "P")]
    pub fn wait(&self) -> Result<()> {
        self.seg
            .checked(self.pool().wait(&self.env(), Deadline::Never))
    }

    /// Takes a permit if one is there, else [`Error::WouldBlock`].
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
        self.seg.checked(raw::try_wait(self.state()))
    }

    /// P with a timeout: [`Error::Timeout`] if no permit came in time. A
    /// signal does not cut it short (the wait goes on with the time left).
    #[doc(alias = "sem_timedwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        let r = self.pool().wait(&self.env(), Deadline::after(timeout));
        self.seg.checked(r)
    }

    /// V: gives a permit (count + 1) and wakes one sleeper. Fails rather
    /// than wrap past [`MAX_VALUE`](super::MAX_VALUE).
    #[doc(alias = "sem_post")]
    #[doc(alias = "V")]
    pub fn post(&self) -> Result<()> {
        self.seg.checked(raw::post(self.state(), &Futex))
    }

    /// Permits available now (`sem_getvalue`). Does not reclaim; see
    /// [`reclaim`](Self::reclaim).
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<u32> {
        self.seg.checked(self.state().value())
    }

    /// Takes a permit as a [`Permit`] guard, recorded under this process,
    /// sleeping while there is none.
    pub fn acquire(&self) -> Result<Permit<'_>> {
        self.acquire_inner(Deadline::Never, false)
    }

    /// Takes a permit if one is there (after giving back dead holders'
    /// permits), else [`Error::WouldBlock`].
    pub fn try_acquire(&self) -> Result<Permit<'_>> {
        self.acquire_inner(Deadline::Never, true)
    }

    /// Takes a permit, waiting at most `timeout` ([`Error::Timeout`]).
    pub fn acquire_timeout(&self, timeout: Duration) -> Result<Permit<'_>> {
        self.acquire_inner(Deadline::after(timeout), false)
    }

    fn acquire_inner(&self, deadline: Deadline, try_only: bool) -> Result<Permit<'_>> {
        let slot = self.pool().acquire(&self.env(), deadline, try_only);
        // A permit taken in a truncated segment is no permit: no Permit to
        // give it back either (the segment is unusable).
        let slot = self.seg.checked(slot)?;
        Ok(Permit { sem: self, slot })
    }

    /// Gives back the permits of holders that died, and finishes what a
    /// killed process left half done. Returns how many permits came back.
    pub fn reclaim(&self) -> Result<u32> {
        self.seg.checked(self.pool().reclaim(&self.env()))
    }

    /// The processes recorded in the holder table now.
    pub fn holders(&self) -> Vec<Holder> {
        self.pool()
            .holders()
            .into_iter()
            .map(|(ident, held, co)| {
                let id = Identity::from_raw(ident);
                let co = Identity::from_raw(co);
                Holder {
                    pid: id.id(),
                    held,
                    alive: id.is_alive(),
                    co_holder: (!co.is_none()).then(|| CoHolder {
                        pid: co.id(),
                        alive: co.is_alive(),
                    }),
                }
            })
            .collect()
    }

    /// The value the semaphore was created with: its number of permits
    /// when used as a pool (`ipcworks sem run -j N` compares it with N).
    /// It does not change with `wait`/`post`; see [`value`](Self::value)
    /// for the permits available now.
    pub fn initial_value(&self) -> u32 {
        self.header().initial.load(SeqCst)
    }

    /// The size of the holder table.
    pub fn max_holders(&self) -> usize {
        self.holders
    }

    /// The name (without prefix), or `None` when anonymous.
    pub fn name(&self) -> Option<&str> {
        self.seg.bare_name()
    }

    /// Keeps the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.seg.persist();
    }

    /// Removes the name now; the semaphore stays usable through open
    /// handles.
    pub fn unlink(&mut self) -> Result<()> {
        self.seg.unlink()
    }

    /// A descriptor without close-on-exec for a child process to inherit
    /// (it calls [`Semaphore::from_fd`]).
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        self.seg.inheritable_fd()
    }
}

impl AsFd for Semaphore {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.seg.as_fd()
    }
}

/// One entry of a semaphore's holder table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Holder {
    /// The holder's process id.
    pub pid: u32,
    /// Whether it holds a permit (false: in the middle of taking or giving
    /// one back).
    pub held: bool,
    /// Whether that process still runs (same pid and start time).
    pub alive: bool,
    /// A child command holding the permit with it (run with
    /// [`process::spawn_holding`](crate::process::spawn_holding)): the
    /// permit comes back only when both are dead.
    pub co_holder: Option<CoHolder>,
}

/// A process holding a semaphore permit together with its [`Holder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CoHolder {
    /// Its process id.
    pub pid: u32,
    /// Whether it still runs (same pid and start time).
    pub alive: bool,
}

/// A permit taken by [`Semaphore::acquire`]: recorded under this process in
/// the semaphore's holder table, given back (V) when dropped.
#[derive(Debug)]
#[must_use = "the permit is given back as soon as it is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
    slot: usize,
}

impl Permit<'_> {
    /// Gives the permit back now, reporting errors that drop ignores
    /// (corrupted shared memory).
    pub fn release(self) -> Result<()> {
        let me = std::mem::ManuallyDrop::new(self);
        me.sem
            .seg
            .checked(me.sem.pool().release(&me.sem.env(), me.slot))
    }
}

impl crate::process::child::sealed::Sealed for Permit<'_> {
    fn co_holder(&self) -> &AtomicU64 {
        &self.sem.pool().co[self.slot]
    }
}

/// A child command can hold the permit together with this process: see
/// [`process::spawn_holding`](crate::process::spawn_holding).
impl crate::process::Hold for Permit<'_> {}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let _ = self.sem.pool().release(&self.sem.env(), self.slot);
    }
}

/// The protocol's surroundings for a semaphore in a segment: [`Futex`],
/// except that every sleep lasts one slice at most, after which (and after
/// a futex call that cannot read its word, `EFAULT`) the segment's size is
/// checked. A waiter on a semaphore whose segment another process
/// truncated is woken by nobody; this is how it finds out.
///
/// While holders are recorded, a sleeper also has them watched
/// ([`HolderWatch`]): a holder killed with its permit wakes it, and the
/// scan that gives the permit back runs at once.
struct Watching<'a> {
    seg: &'a Segment,
    holders: HolderWatch<'a>,
}

impl Env for Watching<'_> {
    fn me(&self) -> u64 {
        Futex.me()
    }

    fn is_alive(&self, ident: u64) -> bool {
        Futex.is_alive(ident)
    }

    /// Returns false, as if the deadline had passed, once the segment is
    /// broken: the protocol stops waiting, and the semaphore reports
    /// [`Error::Truncated`] instead of what the protocol returns.
    fn sleep(&self, word: &RawU32, expected: u32, deadline: Deadline, watch: bool) -> bool {
        let mut until = deadline.min(Deadline::after(SLICE));
        if watch {
            until = until.min(self.holders.before_sleep());
        }
        match futex::wait(word, expected, until) {
            Wake::TimedOut if deadline.expired() => false,
            Wake::TimedOut | Wake::Fault => self.seg.check_size().is_ok(),
            Wake::Retry => self.seg.check_intact().is_ok(),
        }
    }

    fn wake(&self, word: &RawU32) {
        Futex.wake(word);
    }

    fn wake_all(&self, word: &RawU32) {
        Futex.wake_all(word);
    }

    fn pause(&self, round: u32) {
        Futex.pause(round);
    }

    fn scan_due(&self, last: &mut Option<std::time::Instant>) -> bool {
        if self.holders.take_dead() {
            *last = Some(std::time::Instant::now());
            return true;
        }
        Futex.scan_due(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn permits_between_threads_never_exceed_the_value() {
        let sem = std::sync::Arc::new(Semaphore::anonymous(2).unwrap());
        let inside = std::sync::Arc::new(AtomicU32::new(0));
        let max = std::sync::Arc::new(AtomicU32::new(0));
        let ts: Vec<_> = (0..4)
            .map(|_| {
                let (sem, inside, max) = (sem.clone(), inside.clone(), max.clone());
                std::thread::spawn(move || {
                    for _ in 0..300 {
                        let _p = sem.acquire().unwrap();
                        let now = inside.fetch_add(1, SeqCst) + 1;
                        max.fetch_max(now, SeqCst);
                        std::hint::spin_loop();
                        inside.fetch_sub(1, SeqCst);
                    }
                })
            })
            .collect();
        for t in ts {
            t.join().unwrap();
        }
        assert!(max.load(SeqCst) <= 2);
        assert_eq!(sem.value().unwrap(), 2);
        assert!(sem.holders().is_empty());
    }

    #[test]
    fn holder_table_limit_is_a_clear_error() {
        let sem = Semaphore::options().max_holders(1).anonymous(3).unwrap();
        let _a = sem.acquire().unwrap();
        let e = sem.try_acquire().unwrap_err();
        assert!(matches!(e, Error::LimitExceeded { .. }), "{e}");
        assert!(matches!(
            Semaphore::options().max_holders(0).anonymous(1),
            Err(Error::InvalidArgument(_))
        ));
    }

    #[test]
    fn garbage_claim_is_corrupted_not_a_panic() {
        let sem = Semaphore::anonymous(1).unwrap();
        // A hostile peer writes a claim naming slot 60000 of 64.
        // SAFETY: test-only write through the segment's atomics.
        let word = unsafe { &*(sem.seg.as_ptr().add(STATE_OFF) as *const AtomicU64) };
        word.store((60_000u64 << 32) | 1, SeqCst);
        assert!(matches!(sem.try_acquire(), Err(Error::Corrupted { .. })));
        // A claim naming a free slot, for good.
        word.store((1u64 << 32) | 1, SeqCst);
        assert!(matches!(
            sem.acquire_timeout(Duration::from_secs(20)),
            Err(Error::Corrupted { .. })
        ));
    }

    fn claim_word() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        let count = prop_oneof![
            0u64..4,
            Just(0x7FFF_FFFF),
            Just(0x8000_0000),
            any::<u32>().prop_map(u64::from)
        ];
        let claim = prop_oneof![
            Just(0u64),
            1u64..6,
            (1u64..6).prop_map(|c| c | 0x8000_0000),
            any::<u32>().prop_map(u64::from),
        ];
        (count, claim).prop_map(|(c, k)| (k << 32) | c)
    }

    fn slot_word() -> impl proptest::strategy::Strategy<Value = u64> {
        use proptest::prelude::*;
        let me = Identity::process().raw();
        prop_oneof![
            Just(0u64),
            (0u64..4).prop_map(|st| (st << 62) | (99_999_999u64 << 32)),
            (0u64..4).prop_map(move |st| (st << 62) | me),
            any::<u64>(),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 32,
            failure_persistence: None,
            ..Default::default()
        })]

        /// Whatever a hostile peer writes into the count, claim, holder
        /// table and co-holder table, every call returns (an error at worst) without panicking,
        /// indexing out of bounds or hanging.
        #[test]
        fn garbage_in_shared_memory_never_panics_or_hangs(
            word in claim_word(),
            slots in proptest::collection::vec(slot_word(), 4),
            co in proptest::collection::vec(slot_word(), 4),
            helper in proptest::prop_oneof![proptest::strategy::Just(0u64), proptest::prelude::any::<u64>()],
        ) {
            let sem = Semaphore::options().max_holders(4).anonymous(1).unwrap();
            let base = sem.seg.as_ptr();
            // SAFETY: test-only writes through atomics inside the segment
            // (state at STATE_OFF, tables of 4 slots at SLOTS_OFF and
            // co_off(4)).
            unsafe {
                (*(base.add(STATE_OFF) as *const AtomicU64)).store(word, SeqCst);
                (*(base.add(STATE_OFF + 8) as *const AtomicU64)).store(helper, SeqCst);
                for (i, v) in slots.iter().enumerate() {
                    (*(base.add(SLOTS_OFF + 8 * i) as *const AtomicU64)).store(*v, SeqCst);
                }
                for (i, v) in co.iter().enumerate() {
                    (*(base.add(co_off(4) + 8 * i) as *const AtomicU64)).store(*v, SeqCst);
                }
            }
            let t = Instant::now();
            let _ = sem.value();
            let _ = sem.try_wait();
            let _ = sem.post();
            let _ = sem.reclaim();
            if let Ok(p) = sem.try_acquire() {
                let _ = p.release();
            }
            let _ = sem.wait_timeout(Duration::from_millis(1));
            let _ = sem.acquire_timeout(Duration::from_millis(1)).map(Permit::release);
            let _ = sem.holders();
            proptest::prop_assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
        }
    }
}
