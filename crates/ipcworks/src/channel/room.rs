//! A sender's watch for room: the producers' side of a
//! [`WaitSet`](crate::waitset::WaitSet)-style helper, which an async send
//! that found the ring full parks on (feature `tokio`).
//!
//! The helper sleeps on the producers' futex word (`wait.tx`) exactly as
//! a blocked [`Sender::send`](super::Sender::send) does: it sets the
//! "someone sleeps" bit
//! ([`Ring::prepare_tx_wait`](super::ring::Ring::prepare_tx_wait)), looks
//! whether a record of the wanted length fits now
//! ([`Ring::room_for`](super::ring::Ring::room_for)), and sleeps.
//! The receiver's release of a record clears the bit and wakes every
//! sleeper on the word (`advance`), the helper among them: the
//! receiver's fast path is unchanged (no system call while nobody
//! sleeps), and the helper takes nothing, so it never eats a blocked
//! sender's wake-up. A receiver that closes kicks the word; one killed
//! with SIGKILL is seen through its pidfd (the process watcher kicks the
//! word), and a segment cut short within a `POLL_SLICE` by its size.

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

use super::shared::{RX_CLOSED, Shared};
use crate::process::watch::{self, Outcome, Watched};
use crate::sys::proc::Identity;

/// The room a sender waits for, and its receiver's pidfd watch; shared by
/// an async sender and its helper thread.
pub(crate) struct RoomWatch {
    shared: Arc<Shared>,
    /// The payload length the waiting send needs.
    want: AtomicU64,
    /// Set when the watched receiver exits.
    dead_seen: Arc<AtomicBool>,
    /// The receiver identity watched, and its registration.
    watching: Mutex<Option<(u64, Option<Watched>)>>,
}

impl RoomWatch {
    pub(crate) fn new(shared: Arc<Shared>) -> Arc<RoomWatch> {
        Arc::new(RoomWatch {
            shared,
            want: AtomicU64::new(0),
            dead_seen: Arc::new(AtomicBool::new(false)),
            watching: Mutex::new(None),
        })
    }

    /// The length the next wait is for (set before arming the helper).
    pub(crate) fn want(&self, len: usize) {
        self.want.store(len as u64, SeqCst);
    }

    /// Watches the current receiver's pidfd (once per receiver): its exit
    /// sets `dead_seen` and kicks the producers' word.
    fn watch_receiver(&self) {
        let rx = self.shared.header().peers.0.receiver.load(Acquire);
        let mut w = self.watching.lock().unwrap_or_else(|p| p.into_inner());
        if rx == 0 || rx == RX_CLOSED || w.as_ref().is_some_and(|(id, _)| *id == rx) {
            return;
        }
        let (shared, flag) = (self.shared.clone(), self.dead_seen.clone());
        let on_exit: watch::OnExit = Arc::new(move || {
            flag.store(true, SeqCst);
            super::watch::kick(&shared.header().control.wait.tx.0);
        });
        // Untrusted: a garbage identity is reported dead, and the send's
        // own look at the receiver then judges it.
        let reg = match watch::watch(Identity::from_raw(rx), on_exit) {
            Outcome::Watching(reg) => Some(reg),
            Outcome::Dead => {
                self.dead_seen.store(true, SeqCst);
                None
            }
            Outcome::Unwatchable => None,
        };
        *w = Some((rx, reg));
    }

    /// Whether a send of the wanted length may go through now, or must
    /// learn something (the receiver closed or died, the segment is
    /// broken): a hint, read-only.
    pub(crate) fn ready(&self) -> bool {
        if self.dead_seen.load(SeqCst) {
            return true;
        }
        if self.shared.header().peers.0.receiver.load(Acquire) == RX_CLOSED {
            return true;
        }
        match self.shared.looking() {
            Ok(ring) => ring.room_for(self.want.load(SeqCst)),
            Err(_) => true,
        }
    }

    /// The helper's wait: announces a sleeper on the producers' word,
    /// looks ([`ready`](Self::ready)), sleeps until a release, the
    /// receiver's close or death wakes it (`true`), or `stop` is set and
    /// [`poll_interrupt`](Self::poll_interrupt) called (`false`).
    pub(crate) fn poll_wait(&self, stop: &AtomicBool) -> bool {
        super::watch::helper_wait(
            &self.shared,
            &self.shared.header().control.wait.tx.0,
            stop,
            || self.watch_receiver(),
            |ring| ring.prepare_tx_wait(),
            || self.ready(),
        )
    }

    /// Ends a [`poll_wait`](Self::poll_wait) whose `stop` was set.
    pub(crate) fn poll_interrupt(&self) {
        super::watch::kick(&self.shared.header().control.wait.tx.0);
    }

    /// Whether the watched receiver was reported dead (not cleared).
    pub(crate) fn receiver_died(&self) -> bool {
        self.dead_seen.load(Relaxed)
    }
}
