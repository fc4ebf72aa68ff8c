//! Exactly-once delivery of relayed messages ([`Queue::send_relayed`]):
//! the queue remembers, in its own segment, the ids of the messages relays
//! delivered into it, and refuses one it already has — across the death
//! of whoever sent it. The table and why it is written and settled the
//! way it is are in `dedup.rs`.
//!
//! A relayed send, step by step (every step on the table under the
//! queue's robust recovery mutex):
//!
//! 1. lock; the id already in the table → [`Delivery::AlreadyDelivered`];
//!    the table full → unlock and wait (backpressure);
//! 2. unlock, claim a free slot as a plain send does (waiting for room
//!    without holding the lock: a waiter's recovery needs it);
//! 3. lock again; look again (another relay may have delivered the id
//!    meanwhile: the claimed slot is given back); write the entry
//!    *pending*, naming the slot and its receive count;
//! 4. write the message and publish it (`WRITING → READY`, the send's
//!    commit point), then mark the entry *held*; unlock.
//!
//! Killed before 3: a plain half-done send, undone by recovery. Killed
//! in 3 or 4: the lock's next holder gets `OwnerDead` and settles the
//! pending entry by the slot's word before any slot is recovered.

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use super::dedup::{self, Entries};
use super::layout::Entry;
use super::ops::{Claimed, TRY_LOCK, Want};
use super::{MessageId, Queue, Side, slots};
use crate::fault::abort_point;
use crate::message::Deadline;
use crate::sync::{Acquired, RawMutex};
use crate::{Error, Result};

/// What became of a message offered with [`Queue::send_relayed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Delivery {
    /// The message is in the queue now (exactly once).
    Delivered,
    /// The queue already had a message with this id, from an earlier
    /// relayed send (it may since have been received): nothing was sent.
    AlreadyDelivered,
}

/// Most time a relayed send sleeps between two looks at a full table.
const TABLE_POLL: Duration = Duration::from_millis(1);

impl Entries for Queue {
    fn entries(&self) -> usize {
        self.geo.window
    }
    fn origin(&self, k: usize) -> &crate::primitive::AtomicU64 {
        &self.entry(k).origin
    }
    fn seq(&self, k: usize) -> &crate::primitive::AtomicU64 {
        &self.entry(k).seq
    }
    fn via(&self, k: usize) -> &crate::primitive::AtomicU64 {
        &self.entry(k).via
    }
    fn state(&self, k: usize) -> &crate::primitive::AtomicU64 {
        &self.entry(k).state
    }
}

/// The recovery mutex, held for a step on the relayed-message table;
/// unlocked when dropped.
struct TableLock<'q>(RawMutex<'q>);

impl Drop for TableLock<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl Queue {
    /// Entry `k` of the relayed-message table; `k < window` is the
    /// caller's promise (asserted).
    fn entry(&self, k: usize) -> &Entry {
        assert!(k < self.geo.window);
        // SAFETY: k < window, so the entry lies inside `geo.size` bytes of
        // the mapping (checked against the segment's length at open);
        // entry offsets are multiples of 32 from a page boundary (the
        // header and strides are multiples of 64); Entry is atomics only.
        unsafe { &*(self.seg.as_ptr().add(self.geo.entry_off(k)) as *const Entry) }
    }

    /// Takes the recovery mutex for a step on the table, settling what a
    /// dead holder left (see `dedup.rs`). A `Now` deadline waits up to
    /// [`TRY_LOCK`] (holders keep it for microseconds) and reports
    /// `WouldBlock` after that.
    fn lock_table(&self, until: Deadline) -> Result<TableLock<'_>> {
        let wait = match until {
            Deadline::Now => Deadline::after(TRY_LOCK),
            d => d,
        };
        let m = self.mutex();
        let acquired = m
            .lock_until(wait)
            .map_err(|e| match (e.into_error(&self.what()), until) {
                (Error::Timeout, Deadline::Now) => Error::WouldBlock,
                (e, _) => e,
            });
        let lock = TableLock(self.mutex());
        match self.or_truncated(acquired) {
            Ok(Acquired::Consistent) => Ok(lock),
            Ok(Acquired::OwnerDead) => {
                self.resolve_relayed();
                m.make_consistent();
                Ok(lock)
            }
            Err(e) => {
                std::mem::forget(lock);
                Err(e)
            }
        }
    }

    /// Settles the pending entries of a relayed send killed while it held
    /// the recovery mutex (its holder calls this after `OwnerDead`).
    pub(super) fn resolve_relayed(&self) {
        dedup::resolve(self, self);
    }

    /// Gives back a slot claimed for sending and not written.
    fn unclaim(&self, c: &Claimed) {
        if let Some(back) = slots::undone(c.word) {
            let _ = self.commit(c, back);
            self.wake(Side::Send);
        }
    }

    /// Sends `msg` as [`send`](Self::send) does, waiting at most until
    /// `until` for room, recording `id` as the message's identity instead
    /// of a new one — unless this queue already received a message with
    /// that id from a relayed send: then nothing is sent and the answer is
    /// [`Delivery::AlreadyDelivered`]. Exactly once, also when the caller
    /// is killed (SIGKILL) at any instruction and calls again after: the
    /// id is remembered in the queue's segment, in the same step that
    /// publishes the message (see the module docs of `dedup.rs` in the
    /// source). What a relay does with a message it took from another
    /// native queue ([`Claim::id`](super::Claim::id)).
    ///
    /// `via` names the stream the message came through: the origin id of
    /// the queue the relay takes from ([`Queue::origin`]), so that a relay
    /// restarted over that queue can forget what it no longer needs
    /// ([`forget_relayed_from`](Self::forget_relayed_from)).
    ///
    /// Ids are remembered until [`forget_relayed`](Self::forget_relayed)
    /// (a relay calls it once the message left its source). The table
    /// holds [`QueueOptions::relay_window`](super::QueueOptions::relay_window)
    /// ids; while it is full, this waits (never forgets one to make
    /// room): [`Error::WouldBlock`] for [`Deadline::Now`],
    /// [`Error::Timeout`] once `until` passes.
    ///
    /// ```
    /// use ipcworks::message::Deadline;
    /// use ipcworks::queue::{Delivery, Queue};
    ///
    /// # fn main() -> ipcworks::Result<()> {
    /// let (from, to) = (Queue::anonymous()?, Queue::anonymous()?);
    /// from.send(b"job", 1)?;
    /// let claim = from.recv_claim()?;
    /// let send = || to.send_relayed(claim.message(), 1, claim.id(), from.origin(), Deadline::Never);
    /// assert_eq!(send()?, Delivery::Delivered);
    /// // Sent again (a relay restarted before its commit): refused.
    /// assert_eq!(send()?, Delivery::AlreadyDelivered);
    /// let id = claim.id();
    /// claim.commit()?;
    /// assert_eq!(to.forget_relayed(&[id])?, 1);
    /// assert_eq!(to.depth()?, 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn send_relayed(
        &self,
        msg: &[u8],
        priority: u32,
        id: MessageId,
        via: u64,
        until: Deadline,
    ) -> Result<Delivery> {
        self.check_send(msg, priority)?;
        loop {
            // A first look, before claiming a slot: delivered already, or
            // (waiting while the table is full) there is an entry for it.
            if self.lock_free_entry(id, until)?.is_none() {
                return Ok(Delivery::AlreadyDelivered);
            }
            let c = self.claim(Want::Send, until)?;
            let t = match self.lock_table(until) {
                Ok(t) => t,
                Err(e) => {
                    self.unclaim(&c);
                    return Err(e);
                }
            };
            let k = match dedup::lookup(self, id.origin, id.seq) {
                Ok(_) => {
                    drop(t);
                    self.unclaim(&c);
                    return Ok(Delivery::AlreadyDelivered);
                }
                Err(Some(k)) => k,
                Err(None) => {
                    drop(t);
                    self.unclaim(&c);
                    self.wait_for_entry(until)?;
                    continue;
                }
            };
            let pending = dedup::pending(c.i, slots::count(c.word));
            dedup::enter(self, k, (id.origin, id.seq), via, pending);
            abort_point("relayed-pending");
            self.write_message(&c, msg, priority, Some(id));
            // The commit point of the send, and of the entry.
            let r = self.commit(&c, slots::commit_ready(c.word));
            abort_point("relayed-published");
            self.entry(k)
                .state
                .store(if r.is_ok() { dedup::HELD } else { dedup::EMPTY }, SeqCst);
            drop(t);
            self.published(r)?;
            return Ok(Delivery::Delivered);
        }
    }

    /// Locks the table and looks `id` up, waiting (unlocked) while the
    /// table is full: `None` when the table holds `id` already, else the
    /// lock, held, and the free entry `id` would take.
    fn lock_free_entry(
        &self,
        id: MessageId,
        until: Deadline,
    ) -> Result<Option<(TableLock<'_>, usize)>> {
        loop {
            let t = self.lock_table(until)?;
            match dedup::lookup(self, id.origin, id.seq) {
                Ok(_) => return Ok(None),
                Err(Some(k)) => return Ok(Some((t, k))),
                Err(None) => {
                    drop(t);
                    self.wait_for_entry(until)?;
                }
            }
        }
    }

    /// Waits a moment for a table entry to be forgotten, or fails as the
    /// deadline says.
    fn wait_for_entry(&self, until: Deadline) -> Result<()> {
        if until.is_now() {
            return Err(Error::WouldBlock);
        }
        if until.expired() {
            return Err(Error::Timeout);
        }
        let nap = until.remaining().map_or(TABLE_POLL, |r| r.min(TABLE_POLL));
        std::thread::sleep(nap);
        Ok(())
    }

    /// Forgets the given relayed ids: what a relay calls once those
    /// messages left its source (committed there), so they will never be
    /// offered again. Returns how many the table held. Waits for the
    /// recovery mutex at most a second ([`Error::Timeout`]).
    pub fn forget_relayed(&self, ids: &[MessageId]) -> Result<usize> {
        let _t = self.lock_table(Deadline::after(TRY_LOCK))?;
        let mut n = 0;
        for id in ids {
            if let Some(k) = dedup::find(self, id.origin, id.seq) {
                self.entry(k).state.store(dedup::EMPTY, SeqCst);
                n += 1;
            }
        }
        Ok(n)
    }

    /// The relayed ids this queue remembers that came through `via` (the
    /// origin id of a relay's source queue).
    pub fn relayed_via(&self, via: u64) -> Result<Vec<MessageId>> {
        let _t = self.lock_table(Deadline::after(TRY_LOCK))?;
        let mut ids = Vec::new();
        for k in 0..self.geo.window {
            let e = self.entry(k);
            if e.state.load(SeqCst) == dedup::HELD && e.via.load(SeqCst) == via {
                ids.push(MessageId {
                    origin: e.origin.load(SeqCst),
                    seq: e.seq.load(SeqCst),
                });
            }
        }
        drop(_t);
        self.seg.check_intact()?;
        Ok(ids)
    }

    /// The ids of the messages in the queue now: ready, or claimed by a
    /// receiver (a snapshot, one slot at a time; a message stays in its
    /// slot until it is received, so one present throughout is seen).
    pub fn message_ids(&self) -> Result<Vec<MessageId>> {
        let mut ids = Vec::new();
        for i in 0..self.geo.capacity {
            let s = self.slot(i);
            let w = s.word.load(SeqCst);
            if !matches!(slots::state(w), slots::READY | slots::READING) {
                continue;
            }
            let id = MessageId {
                origin: s.origin.load(SeqCst),
                seq: s.origin_seq.load(SeqCst),
            };
            // Same trip of the slot: the record belongs to that message.
            if slots::count(s.word.load(SeqCst)) == slots::count(w) {
                ids.push(id);
            }
        }
        self.seg.check_intact()?;
        Ok(ids)
    }

    /// Forgets the relayed ids that came through `source` (see
    /// [`send_relayed`](Self::send_relayed)) and are no longer in it: a
    /// relay killed between its commit and its
    /// [`forget_relayed`](Self::forget_relayed) left them behind. What a
    /// relay from `source` into this queue does when it starts. Returns
    /// how many were forgotten.
    pub fn forget_relayed_from(&self, source: &Queue) -> Result<usize> {
        let gone = source.absent(&self.relayed_via(source.origin())?)?;
        if gone.is_empty() {
            return Ok(0);
        }
        self.forget_relayed(&gone)
    }

    /// Those of `ids` that no message in this queue carries (none looked
    /// for, and no slot read, when `ids` is empty): what a relay from this
    /// queue remembered delivering and has since committed.
    pub(crate) fn absent(&self, ids: &[MessageId]) -> Result<Vec<MessageId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let present: std::collections::HashSet<MessageId> =
            self.message_ids()?.into_iter().collect();
        Ok(ids
            .iter()
            .copied()
            .filter(|id| !present.contains(id))
            .collect())
    }

    /// Whether the relayed-message table holds `id` (delivered by
    /// [`send_relayed`](Self::send_relayed), or recorded by
    /// [`remember_relayed`](Self::remember_relayed)).
    pub fn relayed_contains(&self, id: MessageId) -> Result<bool> {
        let _t = self.lock_table(Deadline::after(TRY_LOCK))?;
        Ok(dedup::find(self, id.origin, id.seq).is_some())
    }

    /// Records `id` (come through `via`) in the relayed-message table
    /// without sending anything: for a relay that delivers into something
    /// that keeps no ids (a POSIX or System V queue) and keeps them here,
    /// in a queue of its own. Does nothing if the id is there already.
    /// Waits while the table is full, as
    /// [`send_relayed`](Self::send_relayed) does.
    pub fn remember_relayed(&self, id: MessageId, via: u64, until: Deadline) -> Result<()> {
        if let Some((_t, k)) = self.lock_free_entry(id, until)? {
            dedup::enter(self, k, (id.origin, id.seq), via, dedup::HELD);
        }
        Ok(())
    }

    /// Entries of the relayed-message table (see
    /// [`QueueOptions::relay_window`](super::QueueOptions::relay_window)).
    pub fn relay_window(&self) -> usize {
        self.geo.window
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small(cap: usize, window: usize) -> Queue {
        Queue::options()
            .capacity(cap)
            .max_message(512)
            .relay_window(window)
            .anonymous()
            .unwrap()
    }

    fn id(seq: u64) -> MessageId {
        MessageId { origin: 77, seq }
    }

    /// The same id twice: delivered once, also after it was received; a
    /// forgotten id is delivered again.
    #[test]
    fn a_relayed_id_is_delivered_once_until_forgotten() {
        let q = small(4, 4);
        let send = |s| q.send_relayed(&[s as u8; 300], 2, id(s), 9, Deadline::Now);
        assert_eq!(send(1).unwrap(), Delivery::Delivered);
        assert_eq!(send(1).unwrap(), Delivery::AlreadyDelivered);
        assert_eq!(q.recv().unwrap(), (vec![1; 300], 2));
        assert_eq!(send(1).unwrap(), Delivery::AlreadyDelivered);
        assert_eq!(q.relayed_via(9).unwrap(), [id(1)]);
        assert!(q.relayed_via(8).unwrap().is_empty());
        assert_eq!(q.forget_relayed(&[id(1), id(2)]).unwrap(), 1);
        assert_eq!(send(1).unwrap(), Delivery::Delivered);
        assert_eq!(q.depth().unwrap(), 1);
    }

    /// A full table is backpressure: the send fails at its deadline and
    /// nothing is forgotten to make room.
    #[test]
    fn a_full_table_waits_and_forgets_nothing() {
        let q = small(8, 2);
        for s in 0..2 {
            assert_eq!(
                q.send_relayed(b"m", 0, id(s), 9, Deadline::Now).unwrap(),
                Delivery::Delivered
            );
        }
        assert!(matches!(
            q.send_relayed(b"m", 0, id(2), 9, Deadline::Now),
            Err(Error::WouldBlock)
        ));
        let t = Deadline::after(Duration::from_millis(5));
        assert!(matches!(
            q.send_relayed(b"m", 0, id(2), 9, t),
            Err(Error::Timeout)
        ));
        // Both still refused as duplicates, nothing extra sent.
        for s in 0..2 {
            let d = q.send_relayed(b"m", 0, id(s), 9, Deadline::Now).unwrap();
            assert_eq!(d, Delivery::AlreadyDelivered);
        }
        assert_eq!(q.depth().unwrap(), 2);
        q.forget_relayed(&[id(0)]).unwrap();
        let d = q.send_relayed(b"m", 0, id(2), 9, Deadline::Now).unwrap();
        assert_eq!(d, Delivery::Delivered);
    }

    /// A relay's leftovers: ids remembered via a source that no longer
    /// holds them are forgotten, those it still holds are kept.
    #[test]
    fn leftovers_of_a_source_are_forgotten_what_it_holds_is_kept() {
        let (a, b) = (small(4, 4), small(4, 4));
        a.send(b"x", 1).unwrap();
        a.send(b"y", 1).unwrap();
        for _ in 0..2 {
            let c = a.recv_claim().unwrap();
            let d = b.send_relayed(c.message(), 1, c.id(), a.origin(), Deadline::Now);
            assert_eq!(d.unwrap(), Delivery::Delivered);
            if c.message() == b"x" {
                c.commit().unwrap(); // and "killed" before its forget
            } else {
                drop(c); // "killed" before its commit
            }
        }
        let d = b.send_relayed(b"z", 0, id(5), 1234, Deadline::Now);
        assert_eq!(d.unwrap(), Delivery::Delivered);
        assert_eq!(b.forget_relayed_from(&a).unwrap(), 1);
        let left = b.relayed_via(a.origin()).unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(b.relayed_via(1234).unwrap(), [id(5)]);
        // y is still in a, and still a duplicate for b.
        let c = a.recv_claim().unwrap();
        assert_eq!(c.id(), left[0]);
        let d = b.send_relayed(c.message(), 1, c.id(), a.origin(), Deadline::Now);
        assert_eq!(d.unwrap(), Delivery::AlreadyDelivered);
    }

    /// A pending entry left by a dead lock holder is settled by its
    /// slot's word when the lock is next taken: published → held,
    /// unpublished → dropped (and the slot recovered).
    #[test]
    fn a_dead_holders_pending_entry_is_settled_by_the_slot() {
        use crate::sys::proc::Identity;
        let q = small(4, 4);
        // Published: the message is READY, the entry still pending.
        let d = q.send_relayed(b"a", 0, id(1), 9, Deadline::Now);
        assert_eq!(d.unwrap(), Delivery::Delivered);
        let k = dedup::find(&q, 77, 1).unwrap();
        let i = (0..4)
            .find(|&i| slots::state(q.slot(i).word.load(SeqCst)) == slots::READY)
            .unwrap();
        let c = slots::count(q.slot(i).word.load(SeqCst));
        q.entry(k).state.store(dedup::pending(i, c), SeqCst);
        // Unpublished: a slot WRITING by a dead process, its entry pending.
        let dead = Identity::new(Identity::process().id(), 1);
        let j = (i + 1) % 4;
        let wj = slots::word(slots::WRITING, dead.id(), 0);
        q.slot(j).word.store(wj, SeqCst);
        q.slot(j).owner.store(dead.raw(), SeqCst);
        dedup::enter(&q, (k + 1) % 4, (77, 2), 9, dedup::pending(j, 0));
        // The lock of a dead holder.
        q.header().mutex.word.store(dead.raw(), SeqCst);
        assert_eq!(q.recover().unwrap(), (1, 0));
        assert_eq!(q.relayed_via(9).unwrap(), [id(1)]);
        let d = q.send_relayed(b"a", 0, id(1), 9, Deadline::Now).unwrap();
        assert_eq!(d, Delivery::AlreadyDelivered);
        let d = q.send_relayed(b"b", 0, id(2), 9, Deadline::Now).unwrap();
        assert_eq!(d, Delivery::Delivered);
        assert_eq!(q.depth().unwrap(), 2);
    }
}
