//! The queue's side of a [`WaitSet`](crate::waitset::WaitSet): a helper
//! thread that waits, as one more registered receive sleeper, until a
//! message may be there.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};

use super::{Queue, Side};
use crate::primitive::fence;
use crate::sync::semaphore::raw;

impl Queue {
    /// A [`WaitSet`](crate::waitset::WaitSet) helper's wait: registers as
    /// a receive sleeper (so every commit posts a wake-up permit for it,
    /// as for any sleeper), looks, and sleeps on the `filled` semaphore
    /// until it takes a permit (`true`: a message was committed since, a
    /// hint: another receiver may take it first) or `stop` is set and
    /// [`poll_interrupt`](Self::poll_interrupt) called (`false`).
    ///
    /// A helper is a sleeper like a blocked `recv`, and takes its wake-up
    /// like one: a commit wakes one sleeper per message, so when the
    /// helper took the permit its owner is the one told (and another
    /// process's blocked `recv` sleeps on until the next commit, or its
    /// 50 ms slice, if the owner leaves the message where it is).
    pub(crate) fn poll_wait(&self, stop: &AtomicBool) -> bool {
        let n = self.sleepers(Side::Recv);
        n.fetch_add(1, SeqCst);
        // Dekker with `wake`, as in `sleep`.
        fence(SeqCst);
        // A broken semaphore counts as ready: the owner's own call
        // reports it.
        let ready = self.anything(Side::Recv)
            || raw::wait_or_stop(
                &self.header().filled,
                &crate::sync::semaphore::FutexEnv,
                stop,
            )
            .unwrap_or(true);
        let _ = n.fetch_update(SeqCst, Relaxed, |v| Some(v.saturating_sub(1)));
        ready
    }

    /// Ends a [`poll_wait`](Self::poll_wait) whose `stop` was set.
    pub(crate) fn poll_interrupt(&self) {
        raw::interrupt(&self.header().filled);
    }
}
