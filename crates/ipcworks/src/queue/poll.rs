//! The queue's side of a [`WaitSet`](crate::waitset::WaitSet) (a helper
//! thread that waits, registered as a *poller*, until a message is
//! there, taking nothing: see `wake.rs`), and the pidfd watch of a busy
//! slot's owner that lets a sleeper recover a killed claimant's slot at
//! once.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, SeqCst};

use super::{Queue, Side, slots, wake};
use crate::process::watch::{self, Outcome, Watched};
use crate::sync::semaphore::raw;
use crate::sys::futex::{self, Wake};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;

impl Queue {
    /// Whether a message is there to receive now, or the segment is
    /// found truncated (the owner's own call reports that): the
    /// non-consuming look a [`WaitSet`](crate::waitset::WaitSet) makes
    /// (its helper before each sleep, and `wait` itself before it
    /// blocks). A hint: another receiver may take the message first.
    pub(crate) fn poll_ready(&self) -> bool {
        self.anything(Side::Recv) || self.seg.check_intact().is_err()
    }

    /// A [`WaitSet`](crate::waitset::WaitSet) helper's wait: registers as
    /// a poller (so the next commit wakes it, and every post on `filled`
    /// wakes every sleeper), looks, and sleeps on `filled`'s futex word
    /// until a message is there (`true`, nothing taken: neither the
    /// message nor a wake-up permit, which are the receivers') or `stop`
    /// is set and [`poll_interrupt`](Self::poll_interrupt) called
    /// (`false`). A truncated segment ends it with `true` (noticed within
    /// a `raw::POLL_SLICE`): the owner's own call reports it.
    ///
    /// A commit that finds the helper registered wakes every sleeper, so
    /// the helper never takes the wake-up of another process's blocked
    /// `recv`; and a message left where it is makes the helper report at
    /// once each time it is armed (level-triggered), with no CPU used
    /// in between (it rests until the set's next `wait`).
    pub(crate) fn poll_wait(&self, stop: &AtomicBool) -> bool {
        self.poll_wait_side(Side::Recv, stop)
    }

    /// [`poll_wait`](Self::poll_wait) on `side`: registered as a poller of
    /// the receivers' `filled` or the senders' `free`.
    fn poll_wait_side(&self, side: Side, stop: &AtomicBool) -> bool {
        let h = self.header();
        let (sleepers, sem) = match side {
            Side::Recv => (&h.recv_sleepers, &h.filled),
            Side::Send => (&h.send_sleepers, &h.free),
        };
        wake::poll_wait(
            sleepers,
            sem,
            stop,
            || self.anything(side) || self.seg.check_intact().is_err(),
            |word, v| match futex::wait(word, v, Deadline::after(raw::POLL_SLICE)) {
                Wake::Fault => false,
                // A cut wakes no futex (and a sleeper on a page it took
                // away cannot be interrupted): look at the size now and
                // then, and at `stop` (the loop does).
                // Waiting for room, a slot may stay claimed by a process
                // killed mid-send, which no commit will free: report each
                // slice, so the sender's own call looks (and recovers it).
                Wake::TimedOut if side == Side::Send => false,
                Wake::TimedOut => self.seg.check_size().is_ok(),
                Wake::Retry => self.seg.check_intact().is_ok(),
            },
        )
    }

    /// Ends a [`poll_wait`](Self::poll_wait) whose `stop` was set.
    pub(crate) fn poll_interrupt(&self) {
        raw::interrupt(&self.header().filled);
    }

    /// Whether a slot is free to send into now (or the segment is found
    /// truncated): the non-consuming look of a helper that an async send
    /// parks on while the queue is full. A hint, as
    /// [`poll_ready`](Self::poll_ready).
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_room_ready(&self) -> bool {
        self.anything(Side::Send) || self.seg.check_intact().is_err()
    }

    /// [`poll_wait`](Self::poll_wait) for room: registered as a poller on
    /// the senders' side (`free`, `send_sleepers`), so a receive's commit
    /// wakes it (and, while it is registered, every blocked `send` of
    /// any process, so it never takes theirs), taking nothing.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_room_wait(&self, stop: &AtomicBool) -> bool {
        self.poll_wait_side(Side::Send, stop)
    }

    /// Ends a [`poll_room_wait`](Self::poll_room_wait) whose `stop` was set.
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_room_interrupt(&self) {
        raw::interrupt(&self.header().free);
    }

    /// Before a sleep with slot `i` busy (word `w`): watches its owner's
    /// pidfd, once per (slot, word), so that the owner's death posts a
    /// wake-up to `side`'s semaphore and sets `dead`: the sleeper then
    /// recovers the slot at once instead of after a [`SLICE`](super::SLICE) (a slot
    /// claimed by a process killed before it committed).
    ///
    /// The extra permit may wake another sleeper for nothing later (it
    /// looks and sleeps again); one per death, so the count stays bounded.
    pub(super) fn watch_busy<'a>(
        &'a self,
        side: Side,
        key: (usize, u64),
        dead: &'a std::sync::atomic::AtomicBool,
        watched: &mut Option<((usize, u64), Option<Watched>)>,
    ) {
        if watched.as_ref().is_some_and(|(k, _)| *k == key) {
            return;
        }
        *watched = None;
        let (i, w) = key;
        let pid = slots::pid(w);
        let record = Identity::from_raw(self.slot(i).owner.load(Acquire));
        // The full identity only when the record names the word's pid (a
        // claim whose record is not stored yet is judged by the slice).
        if record.is_none() || record.id() != pid {
            *watched = Some((key, None));
            return;
        }
        let sem = self.sem(side);
        let on_exit: std::sync::Arc<dyn Fn() + Send + Sync + 'a> = std::sync::Arc::new(move || {
            dead.store(true, SeqCst);
            let _ = sem.post();
        });
        // SAFETY: the registration is kept in `watched`, a local of
        // `claim_inner` that is dropped (never leaked) when that call
        // returns, while `self` and `dead` are still borrowed.
        let reg = match unsafe { watch::watch_scoped(record, on_exit) } {
            Outcome::Watching(reg) => Some(reg),
            Outcome::Dead => {
                dead.store(true, SeqCst);
                None
            }
            Outcome::Unwatchable => None,
        };
        *watched = Some((key, reg));
    }
}
