//! The queue's side of a [`WaitSet`](crate::waitset::WaitSet) (a helper
//! thread that waits, as one more registered receive sleeper, until a
//! message may be there), and the pidfd watch of a busy slot's owner that
//! lets a sleeper recover a killed claimant's slot at once.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};

use super::{Queue, Side, slots};
use crate::primitive::fence;
use crate::process::watch::{self, Outcome, Watched};
use crate::sync::semaphore::raw;
use crate::sys::proc::Identity;

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
