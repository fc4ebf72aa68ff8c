//! The operations over the slots: looking for a slot or a message,
//! claiming it with one compare-and-swap, committing, waiting, and
//! recovering dead owners' half-done operations (see the module docs of
//! [`queue`](super) for the protocol and what a crash at each step
//! leaves).

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, SeqCst};
use std::time::{Duration, Instant};

use super::slots::{self, FREE, Look, PID_LIMIT, READING, Refused, Slots, WRITING};
use super::{MAX_PRIORITY, Queue, SLICE, Side, wake};
use crate::message::Deadline;
use crate::primitive::{AtomicU32, AtomicU64};
use crate::process::watch::Watched;
use crate::sync::Acquired;
use crate::sync::semaphore::FutexEnv;
use crate::sys::proc::{self, Identity, Status};
use crate::{Error, Result};

/// Permits beyond the capacity that a semaphore may hold before it counts
/// as corrupted.
const MAX_EXCESS: usize = 1 << 16;

/// Blocking waits that skip spinning after a spin found nothing (doubling
/// up to the maximum while spins keep failing).
const SPIN_SKIP: u32 = 16;
const SPIN_SKIP_MAX: u32 = 1024;
/// CPU pauses between two looks of a spinning waiter.
const SPIN_PAUSES: u32 = 4;

/// How long a `try_` call that found only slots busy (another process
/// copying) waits for them to settle before it judges their owners: a
/// live copier of a small message finishes in well under a microsecond,
/// and judging one costs a `/proc` read.
const SETTLE: Duration = Duration::from_micros(20);

/// Payload bytes a receive prefetches before its look (see
/// `Queue::prefetch_payload`); the hardware prefetcher follows a longer
/// copy by itself.
const PREFETCH_BYTES: usize = 256;

/// Messages up to this many bytes are received *directly*: copied out
/// while READY and taken with one compare-and-swap (see
/// [`slots::claim_ready`]); their payloads are written and read with
/// 8-byte atomic stores and loads, since a refill may race with the copy
/// of a receiver that then loses. Longer ones are claimed (READING), then
/// copied with `memcpy`.
pub(super) const DIRECT_MAX: usize = 256;

/// A receive's buffer for a direct copy.
pub(super) type Scratch = [u64; DIRECT_MAX / 8];

/// What a [`claim`](Queue::claim) is for.
pub(super) enum Want<'a> {
    /// A FREE slot to write a message into.
    Send,
    /// The next message, of at most `limit` bytes (a longer one is left in
    /// place); a direct receive copies it into `scratch`. Without
    /// `direct` the message is always claimed (READING), as a two-phase
    /// receive ([`Claim`](super::Claim)) needs.
    Recv {
        limit: usize,
        scratch: &'a mut Scratch,
        direct: bool,
    },
}

impl Want<'_> {
    fn side(&self) -> Side {
        match self {
            Want::Send => Side::Send,
            Want::Recv { .. } => Side::Recv,
        }
    }
}

/// How long a call waits for the recovery lock (a `try_` call once, a
/// blocking one once per sleep slice, [`Queue::recover`] once): recovery
/// takes microseconds, so a holder that keeps it this long is stopped, or
/// the lock word is garbage.
pub(super) const TRY_LOCK: Duration = Duration::from_secs(1);

/// The calling process, as the slot words and records name it.
#[derive(Clone, Copy)]
pub(super) struct Me {
    pid: u32,
    ident: u64,
}

impl Me {
    pub(super) fn get() -> Result<Me> {
        let id = Identity::process();
        if id.id() >= PID_LIMIT {
            return Err(Error::LimitExceeded {
                limit: "process id for a native queue".into(),
                value: id.id().to_string(),
                hint: format!("queue slots record process ids below {PID_LIMIT}"),
            });
        }
        Ok(Me {
            pid: id.id(),
            ident: id.raw(),
        })
    }
}

/// A slot claimed by this process: its index, its word after the claim,
/// and (receive side) the message's priority and length.
#[derive(Debug)]
pub(super) struct Claimed {
    pub i: usize,
    pub word: u64,
    pub prio: u32,
    pub len: usize,
    /// A direct receive: the payload is already in the scratch buffer and
    /// the receive committed (`word` is the FREE word it left).
    pub direct: bool,
}

impl Slots for Queue {
    fn capacity(&self) -> usize {
        self.geo.capacity
    }
    fn word(&self, i: usize) -> &AtomicU64 {
        &self.slot(i).word
    }
    fn seq(&self, i: usize) -> &AtomicU64 {
        &self.slot(i).seq
    }
    fn priority(&self, i: usize) -> &AtomicU32 {
        &self.slot(i).priority
    }
    fn len(&self, i: usize) -> &AtomicU32 {
        &self.slot(i).len
    }
}

impl Queue {
    /// Looks for a FREE slot, starting after the last one this handle
    /// used (so one sender goes round the slots like a ring), and claims
    /// it: `FREE(c) → WRITING(me, c)`.
    fn look_free(&self, me: Me) -> Look<Claimed> {
        let start = self.next_free.load(Relaxed) % self.geo.capacity;
        match slots::claim_free(self, start, me.pid) {
            Look::Found((i, word)) => {
                // Between the claim and this store, recovery judges us by
                // the pid in the word alone.
                self.slot(i).owner.store(me.ident, Relaxed);
                self.next_free.store(i + 1, Relaxed);
                Look::Found(Claimed {
                    i,
                    word,
                    prio: 0,
                    len: 0,
                    direct: false,
                })
            }
            Look::Nothing { busy } => Look::Nothing { busy },
        }
    }

    /// Takes the message a receive gets (see [`slots::claim_ready`]): one
    /// of at most [`DIRECT_MAX`] bytes directly, copied into `scratch` and
    /// committed (`READY(c) → FREE(c + 1)`); a longer one claimed,
    /// `READY(c) → READING(me, c)`, for the caller to copy and commit. Its
    /// length was checked before either against both `limit` and the
    /// queue's maximum, on the very value returned here (what a peer
    /// writes into the record afterwards is never read), so the copy stays
    /// inside the slot and the caller's buffer.
    fn look_ready(
        &self,
        me: Me,
        limit: usize,
        scratch: &mut Scratch,
        direct: bool,
    ) -> Result<Look<Claimed>> {
        let start = self.next_ready.load(Relaxed) % self.geo.capacity;
        self.prefetch_payload(start);
        let cap = u32::try_from(limit.min(self.geo.max_message)).unwrap_or(u32::MAX);
        let copy = |c: &slots::Candidate| {
            if !direct || c.len as usize > DIRECT_MAX {
                return false;
            }
            self.load_payload(c.i, c.len as usize, scratch);
            // Zeros from pages a peer truncated away: no commit. Claim it
            // instead; `recv_with` finds the mark and gives it back.
            self.seg.check_intact().is_ok()
        };
        let (b, claimed) = match slots::claim_ready(self, start, me.pid, cap, copy) {
            Ok(Look::Found(c)) => c,
            Ok(Look::Nothing { busy }) => return Ok(Look::Nothing { busy }),
            Err(Refused::BadPriority(i, prio)) => {
                return Err(Error::corrupted(format!(
                    "{}: slot {i} holds priority {prio} (max {MAX_PRIORITY})",
                    self.what()
                )));
            }
            Err(Refused::TooLarge(i, len)) => {
                return Err(if len as usize > self.geo.max_message {
                    Error::corrupted(format!(
                        "{}: slot {i} holds a message of {len} bytes (max {})",
                        self.what(),
                        self.geo.max_message
                    ))
                } else {
                    Error::MessageTooLarge {
                        len: len as usize,
                        max: limit,
                    }
                });
            }
        };
        let direct = slots::state(claimed) == FREE;
        if !direct {
            self.slot(b.i).owner.store(me.ident, Relaxed);
        }
        self.next_ready.store(b.i + 1, Relaxed);
        Ok(Look::Found(Claimed {
            i: b.i,
            word: claimed,
            prio: b.prio,
            len: b.len as usize,
            direct,
        }))
    }

    /// The 8-byte words covering slot `i`'s first `len` (`<= DIRECT_MAX`)
    /// payload bytes.
    fn payload_words(&self, i: usize, len: usize) -> &[AtomicU64] {
        debug_assert!(len <= DIRECT_MAX && len <= self.geo.max_message);
        // Both callers checked len already; the clamp keeps the slice in
        // the slot whatever a future caller passes.
        let words = len.min(DIRECT_MAX).min(self.geo.max_message).div_ceil(8);
        // SAFETY: the payload starts 8-byte aligned (the mapping is page
        // aligned; HEADER_SIZE, RECORD_SIZE and the stride are multiples
        // of 8), and the slot's payload area runs to the end of its
        // stride: at least max_message bytes rounded up to 8, so `words`
        // words lie inside the slot. Peers write them only with atomic
        // stores while the slot is theirs (WRITING), as `store_payload`
        // does.
        unsafe { std::slice::from_raw_parts(self.payload(i) as *const AtomicU64, words) }
    }

    /// Copies slot `i`'s first `len` (`<= DIRECT_MAX`) payload bytes into
    /// `scratch` with atomic loads (a direct receive's copy, which a refill
    /// of the slot may race with).
    fn load_payload(&self, i: usize, len: usize, scratch: &mut Scratch) {
        for (dst, w) in scratch.iter_mut().zip(self.payload_words(i, len)) {
            *dst = w.load(Relaxed);
        }
    }

    /// Writes `msg` as slot `i`'s payload: a message a receive may take
    /// directly (`<= DIRECT_MAX` bytes) with 8-byte atomic stores (the
    /// last word padded with zeros), a longer one with `memcpy`.
    fn store_payload(&self, i: usize, msg: &[u8]) {
        if msg.len() <= DIRECT_MAX {
            let words = self.payload_words(i, msg.len());
            let chunks = msg.chunks_exact(8);
            let tail = chunks.remainder();
            for (w, chunk) in words.iter().zip(chunks) {
                let b: [u8; 8] = chunk.try_into().unwrap_or_default();
                w.store(u64::from_ne_bytes(b), Relaxed);
            }
            if !tail.is_empty() {
                let mut b = [0u8; 8];
                b[..tail.len()].copy_from_slice(tail);
                words[msg.len() / 8].store(u64::from_ne_bytes(b), Relaxed);
            }
            return;
        }
        // SAFETY: slot i is WRITING by this process: no correct peer reads
        // or writes its payload until we mark it READY (a message this
        // long is never read directly); the payload area holds
        // max_message >= msg.len() bytes inside the mapping.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(i), msg.len()) };
    }

    /// Starts pulling slot `i`'s payload lines after its record's line (at
    /// most [`PREFETCH_BYTES`] of payload) toward this core, for a receive
    /// about to look: with one sender going round, `i` is where the next
    /// message is, and its payload then crosses between the cores while
    /// the look reads the slot words, not after the claim. The record's
    /// own line, which also holds the payload's first bytes, the look reads
    /// anyway. (It shortened the 64 B poll round trip by about 8% in
    /// paired scratch runs; figures in the issue notes, no benchmark kept
    /// here compares with and without.)
    fn prefetch_payload(&self, i: usize) {
        let p = self.payload(i) as usize;
        let end = p + self.geo.max_message.min(PREFETCH_BYTES);
        let mut line = (p & !63) + 64;
        while line < end {
            crate::sys::mem::prefetch_read(line as *const u8);
            line += 64;
        }
    }

    fn look(&self, want: &mut Want<'_>, me: Me) -> Result<Look<Claimed>> {
        match want {
            Want::Send => Ok(self.look_free(me)),
            Want::Recv {
                limit,
                scratch,
                direct,
            } => self.look_ready(me, *limit, scratch, *direct),
        }
    }

    /// Whether a free slot (send) or a ready message (receive) is there,
    /// without claiming: what spinning watches.
    pub(super) fn anything(&self, side: Side) -> bool {
        let want = side.takes();
        (0..self.geo.capacity).any(|i| slots::state(self.slot(i).word.load(Relaxed)) == want)
    }

    /// Claims a slot for `want` (a FREE one to write, the best READY one
    /// to read), waiting as `until` says. [`Error::Truncated`] in place of
    /// any other failure once the segment is found truncated.
    pub(super) fn claim(&self, want: Want<'_>, until: Deadline) -> Result<Claimed> {
        let r = self.claim_inner(want, until);
        self.or_truncated(r)
    }

    /// `r`, with `Truncated` for its error if the segment is broken.
    #[inline]
    pub(super) fn or_truncated<T>(&self, r: Result<T>) -> Result<T> {
        r.map_err(|e| self.seg.explain(e))
    }

    fn claim_inner(&self, mut want: Want<'_>, until: Deadline) -> Result<Claimed> {
        let side = want.side();
        if let (Side::Recv, Deadline::Now) = (side, until)
            && self.still_empty()
        {
            return Err(Error::WouldBlock);
        }
        let me = Me::get()?;
        // Whether we may still spin (once per call, before the first
        // sleep), settle busy slots (try_ calls), recover (once per sleep
        // slice, or once in a try_ call).
        let (mut may_spin, mut may_settle, mut may_recover) = (true, true, false);
        // While sleeping with a slot busy: its owner's pidfd, watched, so
        // that its death wakes us to recover the slot at once rather than
        // after a slice (see `watch_busy`). Declared before the loop and
        // dropped when this call returns: the closure it runs borrows
        // `self`.
        let dead = std::sync::atomic::AtomicBool::new(false);
        let mut watched: Option<((usize, u64), Option<Watched>)> = None;
        loop {
            // Read before the look (see `still_empty`).
            let seq = match (side, until) {
                (Side::Recv, Deadline::Now) => Some(self.header().next_seq.load(Acquire)),
                _ => None,
            };
            let busy = match self.look(&mut want, me)? {
                Look::Found(c) => {
                    if seq.is_some() {
                        self.quiet.store(0, Relaxed);
                    }
                    return Ok(c);
                }
                Look::Nothing { busy } => busy,
            };
            // Nothing to take: the slots may be zeros of a truncated
            // segment (a look faults on a lost page, which marks it).
            self.seg.check_intact()?;
            if let Some(seq) = seq {
                // No message and no slot busy: every slot was free.
                let quiet = if busy.is_none() {
                    seq.wrapping_add(1)
                } else {
                    0
                };
                self.quiet.store(quiet, Relaxed);
                self.quiet_polls.store(0, Relaxed);
            }
            self.check_permits(side)?;
            if until.is_now() {
                if let (Some((i, w)), true) = (busy, may_settle) {
                    // Someone copies: give them a moment, then judge them.
                    may_settle = false;
                    may_recover = true;
                    self.settle(i, w);
                    continue;
                }
                if busy.is_some() && may_recover {
                    may_recover = false;
                    // A recoverer that holds the lock for a second is
                    // stopped or the segment is garbage: don't wait on.
                    match self.recover_until(Deadline::after(TRY_LOCK)) {
                        Ok((0, 0)) => {}
                        Ok(_) => continue,
                        Err(Error::Timeout) => return Err(Error::WouldBlock),
                        Err(e) => return Err(e),
                    }
                }
                return Err(Error::WouldBlock);
            }
            if busy.is_some() && may_recover {
                // A sleep slice passed and slots are still busy: their
                // owners may be dead. The wait for the recovery lock is
                // bounded: a holder that never lets go (stopped, or a lock
                // word a peer scribbled) must not keep this call from the
                // messages or slots that come meanwhile; the next slice
                // tries again.
                may_recover = false;
                match self.recover_until(until.min(Deadline::after(TRY_LOCK))) {
                    Ok((0, 0)) | Err(Error::Timeout) => {}
                    Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
            if until.expired() {
                return Err(Error::Timeout);
            }
            if may_spin {
                may_spin = false;
                self.spin(side, until);
                continue;
            }
            if let Some((i, w)) = busy {
                self.watch_busy(side, (i, w), &dead, &mut watched);
            }
            may_recover = self.sleep(side, until)? || dead.swap(false, SeqCst);
        }
    }

    /// Whether a `try_` receive may answer "empty" without looking at the
    /// slots: this handle's last look found every slot free, and no send
    /// has taken a sequence number since it read `next_seq` just before.
    ///
    /// Why that proves the queue empty: a message needs a claim, then a
    /// sequence number (`fetch_add`, release), then its commit. A send
    /// whose number was taken before our read (acquire) had claimed its
    /// slot before, so our look, made after the read, saw that slot
    /// WRITING or later — not free. A send whose number comes after our
    /// read changes `next_seq`. A message can also come back to READY
    /// from a receiver that died mid-receive (recovery's undo), but only
    /// from a slot that was READY or READING during the look, which then
    /// was not all free either. So an unchanged `next_seq` means nothing
    /// is ready — and the poll costs one load of a line that changes once
    /// per message, instead of reading every slot's line (which also pulls
    /// each line away from a sender writing it).
    ///
    /// Every 64th poll looks anyway: slot words written by a peer that
    /// does not follow the protocol are then reported (or delivered) as a
    /// full look would; and a sender killed in the few instructions
    /// between its claim and its number leaves a WRITING slot that only a
    /// look sees, so that look recovers it.
    fn still_empty(&self) -> bool {
        let quiet = self.quiet.load(Relaxed);
        if quiet == 0 {
            return false;
        }
        if self.header().next_seq.load(Acquire).wrapping_add(1) != quiet {
            return false;
        }
        let polls = self.quiet_polls.load(Relaxed).wrapping_add(1);
        self.quiet_polls.store(polls, Relaxed);
        !polls.is_multiple_of(64)
    }

    /// Waits (at most [`SETTLE`]) for busy slot `i`, seen as word `w`, to
    /// change.
    fn settle(&self, i: usize, w: u64) {
        let s = self.slot(i);
        // The clock only once the copier did not finish at once (it
        // usually does, within a few pauses).
        let mut t: Option<Instant> = None;
        loop {
            for _ in 0..16 {
                if s.word.load(Relaxed) != w {
                    return;
                }
                std::hint::spin_loop();
            }
            match t {
                None => t = Some(Instant::now()),
                Some(t) if t.elapsed() >= SETTLE => return,
                Some(_) => {}
            }
        }
    }

    /// Registers as a sleeper, looks once more, and sleeps on `side`'s
    /// semaphore for one slice at most. Returns whether the slice passed
    /// without a wake-up.
    fn sleep(&self, side: Side, until: Deadline) -> Result<bool> {
        let n = self.sleepers(side);
        // Dekker with `wake`: either a commit after this fence sees us
        // registered, or our look below sees that commit.
        wake::register(n);
        let res = match self.anything(side) {
            true => Ok(false),
            false => {
                match self
                    .sem(side)
                    .wait_deadline(until.min(Deadline::after(SLICE)))
                {
                    Ok(()) => Ok(false),
                    // A slice without a wake-up: a cut that removed no
                    // page we touch faults nowhere, so look at the size.
                    Err(Error::Timeout | Error::WouldBlock) => self.seg.check_size().map(|()| true),
                    Err(e) => Err(e),
                }
            }
        };
        wake::deregister(n);
        res
    }

    /// After a commit: posts a wake-up permit for `side`'s sleepers if one
    /// is registered and not every registered sleeper has a permit yet,
    /// and wakes the pollers (WaitSet helpers) that may be asleep,
    /// posting nothing for them (see `wake.rs`). Never fails the
    /// operation that committed: a broken semaphore is reported to the
    /// sleepers themselves (`check_permits`), which also look at the
    /// slots every slice.
    #[inline]
    pub(super) fn wake(&self, side: Side) {
        // Every caller has just made its change with a SeqCst CAS, and the
        // register's load is SeqCst too; the sleeper's side has a SeqCst
        // RMW and a SeqCst fence before its look. In the single total
        // order of these operations, the commit comes before the
        // register's load, the sleeper's fence before its look; if our
        // load missed the registration and its look missed our commit,
        // the order would have a cycle. So one of the two sees the other.
        let h = self.header();
        let sem = match side {
            Side::Send => &h.free,
            Side::Recv => &h.filled,
        };
        wake::wake(self.sleepers(side), sem, &FutexEnv);
    }

    /// Fails when `side`'s semaphore holds far more permits than sleepers
    /// could ever be given: correct peers post about one per registered
    /// sleeper, so a count far above that is garbage.
    pub(super) fn check_permits(&self, side: Side) -> Result<()> {
        let v = self.sem(side).value()?;
        if v as usize > self.geo.capacity + MAX_EXCESS {
            return Err(Error::corrupted(format!(
                "{}: a wake-up semaphore counts {v} permits for {} slots",
                self.what(),
                self.geo.capacity
            )));
        }
        Ok(())
    }

    /// Spins briefly, watching for something `side` can take, before the
    /// caller registers and sleeps: a peer running on another core
    /// usually answers within microseconds, and catching it spinning costs
    /// neither side a system call (commits post only to registered
    /// sleepers). Adaptive: after a spin that found nothing, the next
    /// [`SPIN_SKIP`] waits sleep at once (twice as many after each further
    /// failed spin, up to [`SPIN_SKIP_MAX`]; a successful spin resets it),
    /// because when the peer needs this CPU (more runnable threads than
    /// cores) spinning only delays it. Never on a single-CPU machine,
    /// never past the caller's deadline.
    fn spin(&self, side: Side, until: Deadline) {
        static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        // Online CPUs, not this thread's affinity: a process pinned to one
        // core has its peer on another.
        if self.spin.is_zero() || *CPUS.get_or_init(proc::online_cpus) < 2 {
            return;
        }
        let skip = self.spin_skip.load(Relaxed);
        if skip > 0 {
            self.spin_skip.store(skip - 1, Relaxed);
            return;
        }
        let start = Instant::now();
        let limit = until
            .remaining()
            .map_or(self.spin, |left| left.min(self.spin));
        // Mostly watch the one slot most likely to change (with one sender
        // going round, the next one to fill or to free), and all of them
        // every 16th turn: reading every slot's line on every turn would
        // pull each line away from the peer between its claim and its
        // commit.
        //
        // A sender on a full queue watches the slot half the queue ahead of
        // the next one it fills: with one receiver emptying slots in order,
        // it wakes when half the slots are free and fills them while the
        // receiver empties the other half, instead of fighting over the
        // one line the receiver works on.
        let cap = self.geo.capacity;
        let watched = self.slot(match side {
            Side::Send => (self.next_free.load(Relaxed) + cap / 2) % cap,
            Side::Recv => self.next_ready.load(Relaxed) % cap,
        });
        let want = side.takes();
        loop {
            for _ in 0..15 {
                if slots::state(watched.word.load(Relaxed)) == want {
                    self.spin_backoff.store(0, Relaxed);
                    return;
                }
                // Look every few pauses, not at once: each look pulls the
                // line from a peer that may be writing it.
                for _ in 0..SPIN_PAUSES {
                    std::hint::spin_loop();
                }
            }
            if self.anything(side) {
                self.spin_backoff.store(0, Relaxed);
                return;
            }
            if start.elapsed() > limit {
                // Back off: 16, 32, … up to 1024 waits without spinning
                // while spins keep failing.
                let backoff = (self.spin_backoff.load(Relaxed) * 2).clamp(SPIN_SKIP, SPIN_SKIP_MAX);
                self.spin_backoff.store(backoff, Relaxed);
                self.spin_skip.store(backoff, Relaxed);
                return;
            }
        }
    }

    /// Commits a claimed slot: `from → to` in one compare-and-swap (which
    /// also publishes our payload writes), failing if somebody took the
    /// slot from us (only recovery does, and only from the dead).
    pub(super) fn commit(&self, c: &Claimed, to: u64) -> Result<()> {
        self.slot(c.i).owner.store(0, Relaxed);
        if !slots::commit(self, c.i, c.word, to) {
            return Err(self.stolen(c.i));
        }
        Ok(())
    }

    fn stolen(&self, i: usize) -> Error {
        Error::corrupted(format!(
            "{}: slot {i} was taken from a live process mid-operation",
            self.what()
        ))
    }

    /// The one send: every send method and the message interface's
    /// `send_until` are this with a deadline.
    pub(super) fn send_at(&self, msg: &[u8], priority: u32, until: Deadline) -> Result<()> {
        self.send_from(msg, priority, None, until)
    }

    /// [`send_at`](Self::send_at), recording `from` as the message's
    /// origin (a relayed message keeps its source's), or this queue's
    /// origin and the message's own sequence number when `None`.
    pub(super) fn send_from(
        &self,
        msg: &[u8],
        priority: u32,
        from: Option<super::MessageId>,
        until: Deadline,
    ) -> Result<()> {
        self.check_send(msg, priority)?;
        let c = self.claim(Want::Send, until)?;
        self.write_message(&c, msg, priority, from);
        self.publish(&c)
    }

    /// Refuses a message too large or a priority out of range.
    pub(super) fn check_send(&self, msg: &[u8], priority: u32) -> Result<()> {
        if msg.len() > self.geo.max_message {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.geo.max_message,
            });
        }
        if priority > MAX_PRIORITY {
            return Err(Error::InvalidArgument(format!(
                "{}: priority {priority} is above the maximum {MAX_PRIORITY}",
                self.what()
            )));
        }
        Ok(())
    }

    /// Writes a checked message into the slot `c` this process claimed
    /// for sending: its sequence number, record and payload.
    pub(super) fn write_message(
        &self,
        c: &Claimed,
        msg: &[u8],
        priority: u32,
        from: Option<super::MessageId>,
    ) {
        let s = self.slot(c.i);
        // The sequence number (release: a receiver that reads the new
        // `next_seq` sees the slot claimed, which is what lets polling
        // receivers trust an unchanged `next_seq`, see `still_empty`; and
        // a receiver that polls sees this send, and a sender killed
        // mid-copy, at once). A plain send takes it at once after its
        // claim.
        //
        // An atomic add, not a load and a store: with a plain store, a
        // sender delayed between its load and its store writes back a
        // stale, smaller number, and a sender's *next* message could then
        // get a lower number than its previous one and overtake it (the
        // 4x4 stress test caught exactly that). The add keeps every
        // sender's numbers increasing, and those of sends ordered by
        // anything else.
        let seq = self.header().next_seq.fetch_add(1, AcqRel);
        // The record first, while the claim still holds the slot's first
        // line here; then the payload.
        s.seq.store(seq, Relaxed);
        s.priority.store(priority, Relaxed);
        s.len.store(msg.len() as u32, Relaxed);
        let from = from.unwrap_or(super::MessageId {
            origin: self.origin,
            seq,
        });
        s.origin.store(from.origin, Relaxed);
        s.origin_seq.store(from.seq, Relaxed);
        self.store_payload(c.i, msg);
    }

    /// Commits a written slot (`WRITING → READY`, the send's commit
    /// point: the message exists from this CAS on) and wakes a receiver.
    pub(super) fn publish(&self, c: &Claimed) -> Result<()> {
        self.published(self.commit(c, slots::commit_ready(c.word)))
    }

    /// After a send's commit `r`: its error explained, a receiver woken,
    /// and the segment checked (a copy or a commit into pages a peer
    /// truncated reached nobody).
    pub(super) fn published(&self, r: Result<()>) -> Result<()> {
        self.or_truncated(r)?;
        self.wake(Side::Recv);
        self.seg.check_intact()
    }

    /// The one receive into a new vector.
    pub(super) fn recv_at(&self, until: Deadline) -> Result<(Vec<u8>, u32)> {
        let mut buf = Vec::new();
        let prio = self.recv_vec_at(&mut buf, until)?;
        Ok((buf, prio))
    }

    /// The one receive into a caller's vector, resized to the message's
    /// length (only the part beyond its old length is zeroed first).
    pub(super) fn recv_vec_at(&self, buf: &mut Vec<u8>, until: Deadline) -> Result<u32> {
        self.recv_with(until, usize::MAX, |len| {
            buf.resize(len, 0);
            &mut buf[..]
        })
    }

    /// The one receive into a caller's slice.
    pub(super) fn recv_slice_at(&self, buf: &mut [u8], until: Deadline) -> Result<(usize, u32)> {
        let mut n = 0;
        // A message longer than `buf` is refused before it is claimed
        // (MessageTooLarge), and stays first in line.
        let prio = self.recv_with(until, buf.len(), |len| {
            n = len;
            &mut buf[..len]
        })?;
        Ok((n, prio))
    }

    /// Receives a message of at most `limit` bytes (a longer one is left
    /// in place: `MessageTooLarge`) into the buffer `sink` returns for the
    /// message's length (at most `limit`: checked before the claim).
    fn recv_with<'b>(
        &self,
        until: Deadline,
        limit: usize,
        sink: impl FnOnce(usize) -> &'b mut [u8],
    ) -> Result<u32> {
        let mut scratch: Scratch = [0; DIRECT_MAX / 8];
        let want = Want::Recv {
            limit,
            scratch: &mut scratch,
            direct: true,
        };
        let c = self.claim(want, until)?;
        let dst = sink(c.len);
        debug_assert_eq!(dst.len(), c.len);
        if c.direct {
            // Copied and committed by the look: the scratch's first c.len
            // (<= DIRECT_MAX) bytes are the message, in native byte order
            // as they were stored.
            dst.copy_from_slice(&zerocopy::IntoBytes::as_bytes(&scratch)[..c.len]);
            self.wake(Side::Send);
            return Ok(c.prio);
        }
        // SAFETY: slot i is READING by this process: no correct peer
        // writes its payload until we free it; c.len <= max_message was
        // checked before the claim, so the source lies inside the mapping;
        // `dst` holds exactly c.len bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.payload(c.i), dst.as_mut_ptr(), c.len) };
        if let Err(e) = self.seg.check_intact() {
            // Zeros from pages a peer truncated away, not the message:
            // leave it (READING → READY) and say why.
            if let Some(back) = slots::undone(c.word) {
                let _ = self.commit(&c, back);
            }
            return Err(e);
        }
        // The commit point: the message is received from this CAS on (the
        // slot's receive count goes up in the same word).
        let r = self.commit(&c, slots::received(c.word));
        self.or_truncated(r)?;
        self.wake(Side::Send);
        Ok(c.prio)
    }

    /// Undoes the half-done operations of dead processes (under the
    /// recovery mutex, so two recoverers never judge the same slot at
    /// once), then wakes sleepers for what came back. Returns how many
    /// sends and receives were undone.
    pub(super) fn recover_until(&self, deadline: Deadline) -> Result<(u64, u64)> {
        let m = self.mutex();
        let repaired = match m.lock_until(deadline) {
            Ok(Acquired::Consistent) => false,
            // A recoverer died mid-way: every step below is one CAS and
            // idempotent, so running it again repairs whatever it left.
            Ok(Acquired::OwnerDead) => true,
            Err(e) => return Err(e.into_error(&self.what())),
        };
        // A relayed send killed holding the lock left its table entry
        // pending: settle it by its slot's word before any slot is undone
        // (see `dedup.rs`).
        if repaired {
            self.resolve_relayed();
        }
        let res = self.recover_slots();
        if repaired && res.is_ok() {
            m.make_consistent();
        }
        m.unlock();
        let (freed, readied) = res?;
        for _ in 0..freed {
            self.wake(Side::Send);
        }
        for _ in 0..readied {
            self.wake(Side::Recv);
        }
        Ok((freed, readied))
    }

    fn recover_slots(&self) -> Result<(u64, u64)> {
        let h = self.header();
        let (mut freed, mut readied) = (0u64, 0u64);
        for i in 0..self.geo.capacity {
            let s = self.slot(i);
            let w = s.word.load(Acquire);
            let st = slots::state(w);
            if st != WRITING && st != READING {
                continue;
            }
            if owner_alive(slots::pid(w), s.owner.load(Acquire)) {
                continue;
            }
            // WRITING: that send never committed, the half-written message
            // is dropped. READING: that receive never committed, the
            // message (its record untouched by the receiver) is ready
            // again with its original sequence.
            let Some(to) = slots::undone(w) else { continue };
            s.owner.store(0, Relaxed);
            if slots::commit(self, i, w, to) {
                if st == WRITING {
                    freed += 1;
                } else {
                    readied += 1;
                }
            }
        }
        h.recovered_sends.fetch_add(freed, Relaxed);
        h.recovered_recvs.fetch_add(readied, Relaxed);
        Ok((freed, readied))
    }
}

/// Whether the owner of a busy slot still runs: by its full identity
/// (pid and start time, which a reused pid cannot fake) when the record
/// names the same pid as the word, else — in the instant between a claim
/// and its record store, or a record cleared before a commit — by the pid
/// alone. `/proc` that cannot tell means alive (recovering a live owner's
/// slot would break exactly-once; keeping a dead one's only delays).
fn owner_alive(pid: u32, record: u64) -> bool {
    let ident = Identity::from_raw(record);
    if !ident.is_none() && ident.id() == pid {
        return ident.is_alive();
    }
    !matches!(proc::status(pid), Status::Dead)
}
