//! The real surroundings of the mutex protocol ([`Host`]): futex system
//! calls, `/proc` liveness, and the holder's pidfd watched while a sleeper
//! waits on it.

use std::time::Duration;

use super::raw::Host;
use crate::primitive::AtomicU64;
use crate::sys::futex::Wake;
use crate::sys::time::Deadline;

/// The real host: futex system calls and `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Kernel;

/// How often a sleeper checks on the holder.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(15);

impl Host for Kernel {
    const SPIN: u32 = 100;

    fn slice(&self) -> Option<Duration> {
        Some(LIVENESS_SLICE)
    }

    fn wait(&self, word: &AtomicU64, expected: u64, until: Deadline) -> Wake {
        crate::sys::futex::wait_low(word, expected as u32, until)
    }

    fn wake(&self, word: &AtomicU64, all: bool) {
        crate::sys::futex::wake_low(word, if all { i32::MAX as u32 } else { 1 });
    }

    fn owner_dead(&self, ident: u64) -> bool {
        // Id and start time: a reused id cannot pass for the holder.
        // Unknown (hidden /proc) counts as alive.
        !crate::sys::proc::Identity::from_raw(ident).is_alive()
    }

    type Watch = crate::process::watch::Watched;

    /// A millisecond: a holder that keeps the lock longer is watched (a
    /// pidfd, about 10 µs to set up), so a kill is judged within about a
    /// millisecond instead of the next [`LIVENESS_SLICE`].
    const WATCH_AFTER: Option<Duration> = Some(Duration::from_millis(1));

    unsafe fn watch_holder<'a>(
        &self,
        ident: u64,
        word: &'a AtomicU64,
        dead: &'a std::sync::atomic::AtomicBool,
    ) -> Option<Self::Watch> {
        use crate::process::watch::{self, Outcome};
        use std::sync::atomic::Ordering::SeqCst;
        let on_exit: std::sync::Arc<dyn Fn() + Send + Sync + 'a> = std::sync::Arc::new(move || {
            dead.store(true, SeqCst);
            crate::sys::futex::wake_low(word, i32::MAX as u32);
        });
        // SAFETY: the caller keeps the registration from outliving 'a.
        match unsafe {
            watch::watch_thread_scoped(crate::sys::proc::Identity::from_raw(ident), on_exit)
        } {
            Outcome::Watching(w) => Some(w),
            Outcome::Dead => {
                dead.store(true, SeqCst);
                None
            }
            Outcome::Unwatchable => None,
        }
    }
}
