//! The real surroundings of the protocol: futexes, `/proc` liveness.

use std::time::{Duration, Instant};

use super::raw::Env;
use crate::primitive::AtomicU32;
use crate::sys::futex::{self, Wake};
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;

/// How long a sleeper sleeps before it looks again while permits are
/// recorded in a holder table (their holders may die).
const SLICE: Duration = Duration::from_millis(100);
/// How often a waiter scans the holder table for dead holders.
const SCAN_EVERY: Duration = Duration::from_millis(100);

/// Futex sleeps, `/proc` liveness, the calling process's identity.
pub(crate) struct Futex;

impl Env for Futex {
    fn me(&self) -> u64 {
        Identity::process().raw()
    }

    fn is_alive(&self, ident: u64) -> bool {
        Identity::from_raw(ident).is_alive()
    }

    fn sleep(&self, word: &AtomicU32, expected: u32, deadline: Deadline, watch: bool) -> bool {
        // An untimed futex wait is cheaper (no timer to arm): use it when
        // nobody needs watching.
        let woke = if watch {
            futex::wait_slice(word, expected, deadline, SLICE)
        } else {
            futex::wait(word, expected, deadline)
        };
        !matches!(woke, Wake::TimedOut)
    }

    fn wake(&self, word: &AtomicU32) {
        futex::wake(word, 1);
    }

    fn wake_all(&self, word: &AtomicU32) {
        futex::wake_all(word);
    }

    fn pause(&self, round: u32) {
        if round < 100 {
            std::hint::spin_loop();
        } else if round < 200 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn scan_due(&self, last: &mut Option<Instant>) -> bool {
        let now = Instant::now();
        match *last {
            Some(t) if now.duration_since(t) < SCAN_EVERY => false,
            _ => {
                *last = Some(now);
                true
            }
        }
    }
}
