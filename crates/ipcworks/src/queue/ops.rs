//! The operations over the slot table: locking with recovery, picking
//! slots, and the two phases of send and receive (see the module docs of
//! [`queue`](super) for the protocol and what a crash at each step leaves).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use super::layout::{FREE, READING, READY, Slot, WRITING};
use super::{INLINE, MAX_PRIORITY, Queue, SLICE, SPIN, Side, Until};
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

    /// Under the lock: undoes the half-done operations of dead processes.
    pub(super) fn recover_locked(&self) -> Result<()> {
        let h = self.header();
        let (mut freed, mut readied) = (0u32, 0u32);
        for i in 0..self.geo.capacity {
            let s = self.slot(i);
            match s.state() {
                FREE | READY => {}
                st @ (WRITING | READING) => {
                    if Identity::from_raw(s.owner.load(Relaxed)).is_alive() {
                        continue;
                    }
                    s.owner.store(0, Relaxed);
                    if st == WRITING {
                        s.set_state(FREE);
                        freed += 1;
                    } else {
                        s.set_state(READY);
                        readied += 1;
                    }
                }
                other => return Err(self.bad_state(i, other)),
            }
        }
        h.recovered_sends.fetch_add(freed as u64, Relaxed);
        h.recovered_recvs.fetch_add(readied as u64, Relaxed);
        // Each undone operation had consumed one permit: give it back.
        for _ in 0..freed {
            self.sem(Side::Send).post()?;
        }
        for _ in 0..readied {
            self.sem(Side::Recv).post()?;
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

    /// Takes a slot for `side` (a FREE one to write, the best READY one to
    /// read), marks it owned by this process and returns it with the
    /// message's priority and length (receive side), the lock still held.
    pub(super) fn claim(
        &self,
        side: Side,
        until: Until,
    ) -> Result<(Locked<'_>, usize, u32, usize)> {
        let sem = self.sem(side);
        let me = Identity::process().raw();
        let mut first = true;
        loop {
            // 1. A permit, or a slice without one.
            let permit = match until {
                Until::Now => sem.try_wait(),
                _ if first && self.spin(&sem) => Ok(()),
                Until::Forever | Until::At(_) => {
                    let slice = Deadline::after(SLICE);
                    sem.wait_deadline(until.deadline().map_or(slice, |d| d.min(slice)))
                }
            };
            let permit = match permit {
                Ok(()) => true,
                Err(Error::WouldBlock | Error::Timeout) => false,
                Err(e) => return Err(e),
            };
            // 2. The table decides. A try_ call waits for the lock only
            // briefly (it is held for microseconds; a holder that keeps it
            // for a second is stopped or the segment is garbage).
            let lock_until = match until {
                Until::Now => Some(Deadline::after(TRY_LOCK)),
                _ => until.deadline(),
            };
            let lock = match self.lock(lock_until) {
                Ok(l) => l,
                Err(e) => {
                    if permit {
                        let _ = sem.post();
                    }
                    return Err(match (until, e) {
                        (Until::Now, Error::Timeout) => Error::WouldBlock,
                        (_, e) => e,
                    });
                }
            };
            let pick = |q: &Self| -> Result<Option<(usize, u32, usize)>> {
                match side {
                    Side::Send => Ok(q.pick_free()?.map(|i| (i, 0, 0))),
                    Side::Recv => q.pick_ready(),
                }
            };
            let mut found = if permit { pick(self)? } else { None };
            if found.is_none() {
                self.recover_locked()?;
                found = pick(self)?;
            }
            if let Some((i, prio, len)) = found {
                let s = self.slot(i);
                s.owner.store(me, Relaxed);
                s.set_state(match side {
                    Side::Send => WRITING,
                    Side::Recv => READING,
                });
                return Ok((lock, i, prio, len));
            }
            drop(lock);
            first = false;
            // A permit without a slot was one too many; drop it and wait on.
            // Correct peers leave at most one extra permit per thread in
            // flight: a count far above the capacity is garbage, and
            // taking it one permit at a time would spin for hours.
            if permit && sem.value()? as usize > self.geo.capacity + MAX_EXCESS {
                return Err(Error::corrupted(format!(
                    "{}: a slot semaphore counts {} permits for {} slots",
                    self.what(),
                    sem.value()?,
                    self.geo.capacity
                )));
            }
            match until {
                Until::Now => return Err(Error::WouldBlock),
                Until::At(d) if d.expired() => return Err(Error::Timeout),
                _ => {}
            }
        }
    }

    /// Spins briefly for a permit before the caller sleeps: a peer running
    /// on another core usually posts within microseconds, and a permit
    /// taken while spinning costs neither side a system call (`post` wakes
    /// only sleepers). Adaptive: after a spin that found nothing, the next
    /// [`SPIN_SKIP`] waits sleep at once (twice as many after each further
    /// failed spin, up to [`SPIN_SKIP_MAX`]; a successful spin resets it),
    /// because when the peer needs this CPU (more runnable threads than
    /// cores) spinning only delays it.
    /// Never on a single CPU.
    fn spin(&self, sem: &RawSemaphore<'_>) -> bool {
        static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        if *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get())) < 2 {
            return false;
        }
        let skip = self.spin_skip.load(Relaxed);
        if skip > 0 {
            self.spin_skip.store(skip - 1, Relaxed);
            return false;
        }
        let start = Instant::now();
        loop {
            for _ in 0..64 {
                if sem.value().is_ok_and(|v| v > 0) && sem.try_wait().is_ok() {
                    self.spin_backoff.store(0, Relaxed);
                    return true;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() > SPIN {
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
        let (held, i, _, _) = self.claim(Side::Send, until)?;
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
        let lock = if msg.len() <= INLINE {
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
        drop(lock);
        self.sem(Side::Recv).post()
    }

    pub(super) fn recv_until(&self, until: Until) -> Result<(Vec<u8>, u32)> {
        let (held, i, priority, len) = self.claim(Side::Recv, until)?;
        let mut buf = vec![0u8; len];
        let mut copy = || {
            // SAFETY: slot i is READING by this process: no correct peer
            // writes its payload until we free it; len <= max_message was
            // checked, so the source lies inside the mapping.
            unsafe { std::ptr::copy_nonoverlapping(self.payload(i), buf.as_mut_ptr(), len) }
        };
        let lock = if len <= INLINE {
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
        drop(lock);
        self.sem(Side::Send).post()?;
        Ok((buf, priority))
    }
}

/// The held table lock; unlocks on drop.
pub(super) struct Locked<'a>(&'a Queue);

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.0.mutex().unlock();
    }
}
