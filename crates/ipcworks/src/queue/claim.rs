//! The two-phase receive: take a message without removing it
//! ([`Queue::recv_claim`]), then remove it ([`Claim::commit`]) or give it
//! back ([`Claim::release`], or drop the claim). What a store-and-forward
//! relay needs: a message leaves its source only once its destination
//! has it, and a relay killed in between leaves it in the source.

use std::sync::atomic::Ordering::Acquire;
use std::time::Duration;

use super::ops::{Claimed, DIRECT_MAX, Scratch, Want};
use super::{Queue, Side, slots};
#[cfg(doc)]
use crate::Error;
use crate::Result;
use crate::message::{Deadline, Meta, RecvTimeoutError, TryRecvError};

/// Who a message is, wherever it travels: the origin id of the native
/// queue it was first sent into (64 random bits, not 0, chosen when that
/// queue was created) and its sequence number there (the queue's commit
/// sequence, which only grows).
///
/// Both are kept in the message's slot, so they survive the death of any
/// process (not a reboot: the queue lives in `/dev/shm`); a relay that
/// takes the same message again after a crash sees the same id, and
/// [`Queue::send_relayed`] passes it on to the next queue. Within one
/// origin and one priority, later messages have larger sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId {
    /// The origin queue's id.
    pub origin: u64,
    /// The message's sequence number in its origin queue.
    pub seq: u64,
}

/// A message taken from a [`Queue`] but not removed yet (a two-phase
/// receive, see [`Queue::recv_claim`]): its copy, its priority and its
/// [`MessageId`].
///
/// The slot stays claimed (`READING`) by this process until
/// [`commit`](Self::commit) removes the message or
/// [`release`](Self::release) — or dropping the claim — gives it back. If
/// the process dies first (even by SIGKILL), the next receiver that looks
/// makes the message ready again, in its place within its priority. A
/// claim that is leaked (`mem::forget`) holds its slot until the process
/// ends.
#[derive(Debug)]
#[must_use = "a claim gives its message back when dropped: commit() removes it"]
pub struct Claim<'q> {
    q: &'q Queue,
    slot: Claimed,
    msg: Vec<u8>,
    id: MessageId,
    settled: bool,
}

impl Queue {
    /// Takes the oldest message of the highest priority without removing
    /// it, waiting while the queue is empty: the first phase of a
    /// two-phase receive. The message is copied out; the slot stays
    /// claimed by this process until the [`Claim`] is committed
    /// (removed) or released (given back).
    ///
    /// ```
    /// use ipcworks::queue::Queue;
    ///
    /// # fn main() -> ipcworks::Result<()> {
    /// let jobs = Queue::anonymous()?;
    /// jobs.send(b"resize img-1.png", 1)?;
    /// let claim = jobs.recv_claim()?; // copied out, still in the queue
    /// assert_eq!(claim.message(), b"resize img-1.png");
    /// // Hand it on here. Were this process killed now, the next receiver
    /// // would get the message.
    /// let done = claim.commit()?; // now it has left the queue
    /// assert_eq!((done.as_slice(), jobs.depth()?), (&b"resize img-1.png"[..], 0));
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// While a claim is held, other receivers take the messages behind it;
    /// a released one is again the first of its priority. They see the
    /// claimed slot busy: a `try_` receive that finds nothing else waits
    /// its 20 µs for it to settle and judges its owner (alive: left alone),
    /// which a quick commit avoids.
    #[doc(alias = "peek")]
    pub fn recv_claim(&self) -> Result<Claim<'_>> {
        self.recv_claim_until(Deadline::Never)
    }

    /// [`recv_claim`](Self::recv_claim) if a message is there now, else
    /// [`TryRecvError::Empty`].
    pub fn try_recv_claim(&self) -> Result<Claim<'_>, TryRecvError> {
        self.recv_claim_until(Deadline::Now)
            .map_err(TryRecvError::from)
    }

    /// [`recv_claim`](Self::recv_claim), waiting at most `timeout`, else
    /// [`RecvTimeoutError::Timeout`].
    pub fn recv_claim_timeout(&self, timeout: Duration) -> Result<Claim<'_>, RecvTimeoutError> {
        self.recv_claim_until(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// [`recv_claim`](Self::recv_claim) with a [`Deadline`], as the
    /// message interface's `recv_until`: [`Error::WouldBlock`] for
    /// [`Deadline::Now`] with nothing there, [`Error::Timeout`] when the
    /// instant passed.
    pub fn recv_claim_until(&self, until: Deadline) -> Result<Claim<'_>> {
        let mut scratch: Scratch = [0; DIRECT_MAX / 8];
        let want = Want::Recv {
            limit: usize::MAX,
            scratch: &mut scratch,
            direct: false,
        };
        let c = self.claim(want, until)?;
        debug_assert!(!c.direct);
        let mut msg = vec![0u8; c.len];
        // SAFETY: slot c.i is READING by this process: no correct peer
        // writes its payload until we free it; c.len <= max_message was
        // checked before the claim, so the source lies inside the mapping;
        // `msg` holds exactly c.len bytes.
        unsafe { std::ptr::copy_nonoverlapping(self.payload(c.i), msg.as_mut_ptr(), c.len) };
        let s = self.slot(c.i);
        // Written before the send's commit (release), read after our
        // claim (acquire): the message's own.
        let id = MessageId {
            origin: s.origin.load(Acquire),
            seq: s.origin_seq.load(Acquire),
        };
        let claim = Claim {
            q: self,
            slot: c,
            msg,
            id,
            settled: false,
        };
        // Zeros from pages a peer truncated away, not the message: the
        // claim's drop gives it back.
        self.seg.check_intact()?;
        Ok(claim)
    }

    /// This queue's origin id (see [`MessageId`]).
    pub fn origin(&self) -> u64 {
        self.origin
    }
}

impl Claim<'_> {
    /// The message (a copy: the slot's bytes stay in the queue).
    pub fn message(&self) -> &[u8] {
        &self.msg
    }

    /// The message's priority.
    pub fn priority(&self) -> u32 {
        self.slot.prio
    }

    /// The priority as [`Meta`], for a [`MessageSender`](crate::message::MessageSender).
    pub fn meta(&self) -> Meta {
        Meta::with_priority(self.slot.prio)
    }

    /// The message's identity (origin queue and sequence there), the same
    /// each time the message is claimed.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// Removes the message from the queue (`READING → FREE` in one
    /// compare-and-swap, the receive's commit) and returns its bytes. From
    /// here on the message is received, whatever happens to this process.
    ///
    /// [`Error::Corrupted`] if the slot was taken from this live process
    /// (only a peer that breaks the protocol does that).
    pub fn commit(mut self) -> Result<Vec<u8>> {
        self.settled = true;
        let r = self.q.commit(&self.slot, slots::received(self.slot.word));
        self.q.or_truncated(r)?;
        self.q.wake(Side::Send);
        Ok(std::mem::take(&mut self.msg))
    }

    /// Gives the message back (`READING → READY`, its sequence kept): it
    /// is again the first of its priority for the next receiver. Dropping
    /// the claim does the same, ignoring errors.
    pub fn release(mut self) -> Result<()> {
        self.settled = true;
        self.give_back()
    }

    fn give_back(&self) -> Result<()> {
        let r = self.q.commit(&self.slot, slots::released(self.slot.word));
        self.q.or_truncated(r)?;
        self.q.wake(Side::Recv);
        Ok(())
    }
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::SeqCst;
    use std::time::Duration;

    use super::*;
    use crate::Error;
    use crate::message::{MessageReceiver, TryRecvError};
    use crate::sys::proc::Identity;

    fn small(cap: usize, max: usize) -> Queue {
        Queue::options()
            .capacity(cap)
            .max_message(max)
            .anonymous()
            .unwrap()
    }

    /// Claim, then commit: the message is gone only at the commit, and
    /// meanwhile the slot is claimed (READING) and counted in the stats.
    #[test]
    fn a_claim_removes_its_message_only_when_committed() {
        let q = small(4, 512);
        q.send(&[1; 300], 2).unwrap(); // longer than a direct receive
        q.send(b"short", 2).unwrap();
        let c = q.try_recv_claim().unwrap();
        assert_eq!((c.message(), c.priority()), (&[1u8; 300][..], 2));
        let s = q.stats().unwrap();
        assert_eq!((s.depth, s.reading, s.received), (1, 1, 0));
        // Others take what is behind it.
        assert_eq!(q.try_recv().unwrap(), (b"short".to_vec(), 2));
        assert_eq!(c.commit().unwrap(), vec![1u8; 300]);
        let s = q.stats().unwrap();
        assert_eq!((s.depth, s.reading, s.received, s.sent), (0, 0, 2, 2));
        assert!(matches!(q.try_recv_claim(), Err(TryRecvError::Empty)));
    }

    /// Released or dropped, a claimed message is again the first of its
    /// priority (ahead of later ones sent meanwhile), with its id.
    #[test]
    fn a_released_or_dropped_claim_is_first_in_line_again() {
        let q = small(4, 64);
        q.send(b"first", 3).unwrap();
        let c = q.recv_claim().unwrap();
        let id = c.id();
        assert_eq!(id.origin, q.origin());
        q.send(b"second", 3).unwrap();
        q.send(b"low", 1).unwrap();
        c.release().unwrap();
        let c = q.recv_claim_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!((c.message(), c.id()), (&b"first"[..], id));
        drop(c);
        assert_eq!(q.recv().unwrap(), (b"first".to_vec(), 3));
        let second = q.recv_claim().unwrap();
        assert!(second.id().seq > id.seq);
        assert_eq!(second.commit().unwrap(), b"second");
        assert_eq!(q.recv().unwrap(), (b"low".to_vec(), 1));
        assert_eq!(q.stats().unwrap().received, 3);
    }

    /// A claim of a process that died (here: a record naming a dead
    /// identity) is recovered: the message is ready again, first of its
    /// priority, with its id.
    #[test]
    fn a_dead_claimants_message_comes_back() {
        let q = small(2, 64);
        q.send(b"job", 4).unwrap();
        let c = q.try_recv_claim().unwrap();
        let (i, id) = (c.slot.i, c.id());
        // Forget the claim as a killed process would; then make its
        // record say "dead" (our pid, a start time that never was).
        std::mem::forget(c);
        let me = Identity::process();
        q.slot(i)
            .owner
            .store(Identity::new(me.id(), 1).raw(), SeqCst);
        assert_eq!(q.recover().unwrap(), (0, 1));
        let c = q.try_recv_claim().unwrap();
        assert_eq!((c.message(), c.id()), (&b"job"[..], id));
        c.commit().unwrap();
    }

    /// A message relayed into another queue keeps its id there; a plain
    /// send gets a new one from the receiving queue.
    #[test]
    fn relayed_messages_keep_their_id() {
        let (a, b) = (small(2, 64), small(2, 64));
        assert_ne!(a.origin(), b.origin());
        assert_ne!(a.origin(), 0);
        a.send(b"m", 9).unwrap();
        let c = a.recv_claim().unwrap();
        let d = b.send_relayed(c.message(), c.priority(), c.id(), a.origin(), Deadline::Now);
        assert_eq!(d.unwrap(), crate::queue::Delivery::Delivered);
        let id = c.id();
        c.commit().unwrap();
        b.send(b"plain", 0).unwrap();
        let got = b.recv_claim().unwrap();
        assert_eq!(
            (got.message(), got.priority(), got.id()),
            (&b"m"[..], 9, id)
        );
        got.commit().unwrap();
        let plain = b.recv_claim().unwrap();
        assert_eq!(plain.id().origin, b.origin());
        plain.commit().unwrap();
    }

    /// A blocked claim wakes for a message sent by another thread, and
    /// the message interface's receive skips nothing around claims.
    #[test]
    fn a_blocked_claim_wakes_and_plain_receives_agree() {
        let q = std::sync::Arc::new(small(2, 64));
        let q2 = q.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            q2.send(b"late", 0).unwrap();
        });
        let c = q.recv_claim_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(c.message(), b"late");
        c.release().unwrap();
        t.join().unwrap();
        let mut q = std::sync::Arc::try_unwrap(q).unwrap();
        assert_eq!(MessageReceiver::try_recv(&mut q).unwrap(), b"late");
        assert!(matches!(
            q.recv_claim_until(Deadline::after(Duration::from_millis(5))),
            Err(Error::Timeout)
        ));
    }

    /// A slot another process took from a live claimant (a peer breaking
    /// the protocol) fails the commit with `Corrupted`, never a panic.
    #[test]
    fn a_stolen_claim_fails_its_commit() {
        let q = small(2, 64);
        q.send(b"x", 0).unwrap();
        let c = q.try_recv_claim().unwrap();
        let s = q.slot(c.slot.i);
        s.word.store(slots::released(c.slot.word), SeqCst);
        assert!(matches!(c.commit(), Err(Error::Corrupted { .. })));
        assert_eq!(q.try_recv().unwrap(), (b"x".to_vec(), 0));
    }
}
