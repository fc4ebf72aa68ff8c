//! The operations over the slot table: locking with recovery, picking
//! slots, and the two phases of send and receive (see the module docs of
//! [`queue`](super) for the protocol and what a crash at each step leaves).

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::layout::{FREE, READING, READY, Slot, WRITING};
use super::{INLINE, MAX_PRIORITY, Queue, SLICE, Side, Until};
use crate::sync::{Acquired, RawSemaphore};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// Permits beyond the capacity that a semaphore may hold before it counts
/// as corrupted.
const MAX_EXCESS: usize = 1 << 16;

/// Blocking waits that skip spinning after a spin found nothing (doubling
/// up to the maximum while spins keep failing).
const SPIN_SKIP: u32 = 16;
const SPIN_SKIP_MAX: u32 = 1024;

/// How long a `try_` call waits for the table lock.
const TRY_LOCK: std::time::Duration = std::time::Duration::from_secs(1);

impl Queue {
    /// Locks the slot table; after a dead holder, recovers first.
    pub(super) fn lock(&self, deadline: Option<Deadline>) -> Result<Locked<'_>> {
        let m = self.mutex();
        match m.lock_until(deadline) {
            Ok(Acquired::Consistent) => Ok(Locked(self)),
            Ok(Acquired::OwnerDead) => match self.recover_locked() {
                Ok(()) => {
                    m.make_consistent();
                    Ok(Locked(self))
                }
                Err(e) => {
                    // Unrepairable: unlocking unrepaired makes the mutex
                    // not recoverable, so everyone learns it.
                    m.unlock();
                    Err(e)
                }
            },
            Err(e) => Err(e.into_error(&self.what())),
        }
    }

    /// Under the lock: undoes the half-done operations of dead processes,
    /// recounts the counters from the slot table (the truth) and wakes
    /// sleepers for what became available.
    pub(super) fn recover_locked(&self) -> Result<()> {
        let h = self.header();
        let (mut freed, mut readied) = (0u32, 0u32);
        let (mut ready, mut free, mut busy) = (0u32, 0u32, 0u32);
        for i in 0..self.geo.capacity {
            let s = self.slot(i);
            match s.state() {
                FREE => free += 1,
                READY => ready += 1,
                st @ (WRITING | READING) => {
                    if Identity::from_raw(s.owner.load(Relaxed)).is_alive() {
                        busy += 1;
                        continue;
                    }
                    s.owner.store(0, Relaxed);
                    if st == WRITING {
                        s.set_state(FREE);
                        freed += 1;
                        free += 1;
                    } else {
                        s.set_state(READY);
                        readied += 1;
                        ready += 1;
                    }
                }
                other => return Err(self.bad_state(i, other)),
            }
        }
        h.ready.store(ready, Relaxed);
        h.free_slots.store(free, Relaxed);
        h.busy.store(busy, Relaxed);
        h.recovered_sends.fetch_add(freed as u64, Relaxed);
        h.recovered_recvs.fetch_add(readied as u64, Relaxed);
        // Slots and messages came back: wake that many sleepers.
        for _ in 0..freed {
            self.wake(Side::Send)?;
        }
        for _ in 0..readied {
            self.wake(Side::Recv)?;
        }
        Ok(())
    }

    /// Under the lock: posts a wake-up permit for `side`'s sleepers if one
    /// is registered and not every registered sleeper has a permit yet.
    /// The register is untrusted: an absurd one wakes nobody (sleepers
    /// still look every slice).
    pub(super) fn wake(&self, side: Side) -> Result<()> {
        if let Some(sem) = self.wake_needed(side) {
            sem.post()?;
        }
        Ok(())
    }

    /// Under the lock: the semaphore to post after unlocking, if any.
    pub(super) fn wake_needed(&self, side: Side) -> Option<RawSemaphore<'_>> {
        let sleepers = self.sleepers(side).load(Relaxed);
        if sleepers == 0 || sleepers as usize > MAX_EXCESS {
            return None;
        }
        let sem = self.sem(side);
        match sem.value() {
            Ok(v) if v < sleepers => Some(sem),
            _ => None,
        }
    }

    /// Fails when `side`'s semaphore holds far more permits than sleepers
    /// could ever be given: correct peers post one per registered sleeper
    /// at most, so a count far above that is garbage.
    pub(super) fn check_permits(&self, side: Side) -> Result<()> {
        let sem = self.sem(side);
        let v = sem.value()?;
        if v as usize > self.geo.capacity + MAX_EXCESS {
            return Err(Error::corrupted(format!(
                "{}: a wake-up semaphore counts {v} permits for {} slots",
                self.what(),
                self.geo.capacity
            )));
        }
        Ok(())
    }

    pub(super) fn bad_state(&self, i: usize, st: u32) -> Error {
        Error::corrupted(format!("{}: slot {i} has unknown state {st}", self.what()))
    }

    /// Under the lock: a FREE slot.
    pub(super) fn pick_free(&self) -> Result<Option<usize>> {
        for i in 0..self.geo.capacity {
            match self.slot(i).state() {
                FREE => return Ok(Some(i)),
                WRITING | READY | READING => {}
                other => return Err(self.bad_state(i, other)),
            }
        }
        Ok(None)
    }

    /// Under the lock: the READY slot of highest priority, lowest sequence,
    /// with its priority and length (checked).
    pub(super) fn pick_ready(&self) -> Result<Option<(usize, u32, usize)>> {
        let mut best: Option<(usize, u32, u64, usize)> = None;
        for i in 0..self.geo.capacity {
            let s = self.slot(i);
            match s.state() {
                READY => {
                    let prio = s.priority.load(Relaxed);
                    let len = s.len.load(Relaxed) as usize;
                    let seq = s.seq.load(Relaxed);
                    if prio > MAX_PRIORITY || len > self.geo.max_message {
                        return Err(Error::corrupted(format!(
                            "{}: slot {i} holds priority {prio}, length {len} (max {MAX_PRIORITY}, {})",
                            self.what(),
                            self.geo.max_message
                        )));
                    }
                    let better = match best {
                        None => true,
                        Some((_, bp, bs, _)) => prio > bp || (prio == bp && seq < bs),
                    };
                    if better {
                        best = Some((i, prio, seq, len));
                    }
                }
                FREE | WRITING | READING => {}
                other => return Err(self.bad_state(i, other)),
            }
        }
        Ok(best.map(|(i, p, _, l)| (i, p, l)))
    }

    /// Whether a look under the lock may find something for `side` (read
    /// without the lock: a hint). Something to take, or a slot busy
    /// outside the lock whose owner may have died.
    fn worth_locking(&self, side: Side) -> bool {
        let h = self.header();
        let avail = match side {
            Side::Send => h.free_slots.load(Relaxed),
            Side::Recv => h.ready.load(Relaxed),
        };
        avail != 0 || h.busy.load(Relaxed) != 0
    }

    /// Takes a slot for `side` (a FREE one to write, the best READY one to
    /// read), marks it owned by this process and returns it with the
    /// message's priority and length (receive side), the lock still held.
    /// `send_inline`: a sender copies under this same lock hold (a
    /// receiver does when the message is at most [`INLINE`] bytes).
    pub(super) fn claim(
        &self,
        side: Side,
        until: Until,
        send_inline: bool,
    ) -> Result<(Locked<'_>, usize, u32, usize)> {
        let me = Identity::process().raw();
        let h = self.header();
        // Whether we may spin (once per call, before the first sleep),
        // whether we are counted in the sleepers register, and whether a
        // sleep slice passed (then look for dead owners).
        let (mut may_spin, mut registered, mut slice_passed) = (true, false, false);
        loop {
            // A try_ call on an empty (full) queue does not touch the lock:
            // polling receivers would otherwise take the line the sender
            // needs.
            if matches!(until, Until::Now) && !self.worth_locking(side) {
                self.check_permits(side)?;
                return Err(Error::WouldBlock);
            }
            // A try_ call waits for the lock only briefly (it is held for
            // microseconds; a holder that keeps it for a second is stopped
            // or the segment is garbage).
            let lock_until = match until {
                Until::Now => Some(Deadline::after(TRY_LOCK)),
                _ => until.deadline(),
            };
            let lock = match self.lock(lock_until) {
                Ok(l) => l,
                // (A registration we could not undo only costs later
                // commits a useless post; it is bounded by `wake_needed`.)
                Err(e) => {
                    return Err(match (until, e) {
                        (Until::Now, Error::Timeout) => Error::WouldBlock,
                        (_, e) => e,
                    });
                }
            };
            if registered {
                let n = self.sleepers(side);
                n.store(n.load(Relaxed).saturating_sub(1), Relaxed);
                registered = false;
            }
            let pick = |q: &Self| -> Result<Option<(usize, u32, usize)>> {
                match side {
                    Side::Send => Ok(q.pick_free()?.map(|i| (i, 0, 0))),
                    Side::Recv => q.pick_ready(),
                }
            };
            let mut found = pick(self)?;
            // Nothing: a dead owner may hold what we need. Look when some
            // slot is busy outside the lock (at once for a try_ call, after
            // a sleep slice for a waiter, so a live copier is not
            // needlessly judged through /proc), or after a slice anyway.
            if found.is_none()
                && (slice_passed || (h.busy.load(Relaxed) != 0 && matches!(until, Until::Now)))
            {
                self.recover_locked()?;
                found = pick(self)?;
            }
            if let Some((i, prio, len)) = found {
                let s = self.slot(i);
                s.owner.store(me, Relaxed);
                match side {
                    Side::Send => {
                        s.set_state(WRITING);
                        dec(&h.free_slots);
                    }
                    Side::Recv => {
                        s.set_state(READING);
                        dec(&h.ready);
                    }
                }
                let inline = match side {
                    Side::Send => send_inline,
                    Side::Recv => len <= INLINE,
                };
                if !inline {
                    inc(&h.busy);
                }
                return Ok((lock, i, prio, len));
            }
            self.check_permits(side)?;
            match until {
                Until::Now => return Err(Error::WouldBlock),
                Until::At(d) if d.expired() => return Err(Error::Timeout),
                _ => {}
            }
            if may_spin {
                may_spin = false;
                drop(lock);
                self.spin(side, until);
                continue;
            }
            // Register as a sleeper under the lock: a commit after this
            // sees us and posts a permit, so no wake-up is lost.
            let n = self.sleepers(side);
            n.store(n.load(Relaxed).wrapping_add(1), Relaxed);
            registered = true;
            drop(lock);
            let slice = Deadline::after(SLICE);
            let sem = self.sem(side);
            slice_passed = match sem.wait_deadline(until.deadline().map_or(slice, |d| d.min(slice)))
            {
                Ok(()) => false,
                Err(Error::Timeout | Error::WouldBlock) => true,
                Err(e) => return Err(e),
            };
        }
    }

    /// Spins briefly, watching (without the lock) for something `side`
    /// can take, before the caller registers and sleeps: a peer running on
    /// another core usually answers within microseconds, and catching it
    /// spinning costs neither side a system call (commits post only to
    /// registered sleepers). Adaptive: after a spin that found nothing,
    /// the next [`SPIN_SKIP`] waits sleep at once (twice as many after
    /// each further failed spin, up to [`SPIN_SKIP_MAX`]; a successful
    /// spin resets it), because when the peer needs this CPU (more
    /// runnable threads than cores) spinning only delays it. Never on a
    /// single-CPU machine, never past the caller's deadline.
    fn spin(&self, side: Side, until: Until) -> bool {
        static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        // Online CPUs, not this thread's affinity: a process pinned to one
        // core has its peer on another.
        if self.spin.is_zero() || *CPUS.get_or_init(crate::sys::proc::online_cpus) < 2 {
            return false;
        }
        let skip = self.spin_skip.load(Relaxed);
        if skip > 0 {
            self.spin_skip.store(skip - 1, Relaxed);
            return false;
        }
        let start = Instant::now();
        let limit = match until.deadline() {
            Some(d) => d.remaining().unwrap_or_default().min(self.spin),
            None => self.spin,
        };
        loop {
            for _ in 0..64 {
                if self.worth_locking(side) {
                    self.spin_backoff.store(0, Relaxed);
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() > limit {
                // Back off: 16, 32, … up to 1024 waits without spinning
                // while spins keep failing.
                let backoff = (self.spin_backoff.load(Relaxed) * 2).clamp(SPIN_SKIP, SPIN_SKIP_MAX);
                self.spin_backoff.store(backoff, Relaxed);
                self.spin_skip.store(backoff, Relaxed);
                return false;
            }
        }
    }

    /// Under the lock: checks that slot `i` is still ours in state `st`.
    pub(super) fn still_mine(&self, i: usize, st: u32) -> Result<&Slot> {
        let s = self.slot(i);
        if s.state() != st || s.owner.load(Relaxed) != Identity::process().raw() {
            return Err(Error::corrupted(format!(
                "{}: slot {i} was taken from a live process mid-operation",
                self.what()
            )));
        }
        Ok(s)
    }

    pub(super) fn send_until(&self, msg: &[u8], priority: u32, until: Until) -> Result<()> {
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
        let inline = msg.len() <= INLINE;
        let (held, i, _, _) = self.claim(Side::Send, until, inline)?;
        let copy = || {
            // SAFETY: slot i is WRITING by this process: no correct peer
            // reads or writes its payload until we mark it READY; the
            // payload area holds max_message >= msg.len() bytes inside the
            // mapping.
            unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.payload(i), msg.len()) }
        };
        // Small messages are copied under the lock (one critical section
        // instead of two); large ones outside it. A death mid-copy is
        // recovered the same way in both cases.
        let lock = if inline {
            copy();
            held
        } else {
            drop(held);
            copy();
            self.lock(None)?
        };
        let s = self.still_mine(i, WRITING)?;
        let h = self.header();
        let seq = h.next_seq.load(Relaxed);
        h.next_seq.store(seq.wrapping_add(1), Relaxed);
        s.seq.store(seq, Relaxed);
        s.priority.store(priority, Relaxed);
        s.len.store(msg.len() as u32, Relaxed);
        s.owner.store(0, Relaxed);
        // The commit point: the message exists from this store on.
        s.set_state(READY);
        inc(&h.ready);
        if !inline {
            dec(&h.busy);
        }
        let wake = self.wake_needed(Side::Recv);
        drop(lock);
        match wake {
            Some(sem) => sem.post(),
            None => Ok(()),
        }
    }

    pub(super) fn recv_until(&self, until: Until) -> Result<(Vec<u8>, u32)> {
        let (held, i, priority, len) = self.claim(Side::Recv, until, false)?;
        let h = self.header();
        let inline = len <= INLINE;
        let mut buf = vec![0u8; len];
        let mut copy = || {
            // SAFETY: slot i is READING by this process: no correct peer
            // writes its payload until we free it; len <= max_message was
            // checked, so the source lies inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(self.payload(i), buf.as_mut_ptr(), len) }
        };
        let lock = if inline {
            copy();
            held
        } else {
            drop(held);
            copy();
            self.lock(None)?
        };
        let s = self.still_mine(i, READING)?;
        s.owner.store(0, Relaxed);
        // The commit point: the message is received from this store on
        // (the slot's receive count goes up in the same store).
        s.commit_receive();
        inc(&h.free_slots);
        if !inline {
            dec(&h.busy);
        }
        let wake = self.wake_needed(Side::Send);
        drop(lock);
        if let Some(sem) = wake {
            sem.post()?;
        }
        Ok((buf, priority))
    }
}

/// Under the lock: counter + 1 (a plain load and store: the lock orders
/// them; lock-free readers only take it as a hint).
fn inc(c: &AtomicU32) {
    c.store(c.load(Relaxed).wrapping_add(1), Relaxed);
}

/// Under the lock: counter - 1, never below 0 (a scribbled counter is
/// recounted by the next recovery).
fn dec(c: &AtomicU32) {
    c.store(c.load(Relaxed).saturating_sub(1), Relaxed);
}

/// The held table lock; unlocks on drop.
pub(super) struct Locked<'a>(&'a Queue);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.mutex().unlock();
    }
}
