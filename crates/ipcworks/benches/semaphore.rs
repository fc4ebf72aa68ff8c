//! Semaphores: uncontended post+wait and a two-thread hand-off (ping-pong),
//! ours beside glibc's `sem_post`/`sem_wait` in the same run.
//!
//! `cargo bench -p ipcworks --bench semaphore`

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use divan::Bencher;
use ipcworks::sync::{RawSemaphore, Semaphore, SemaphoreState};

fn main() {
    divan::main();
}

/// An unnamed POSIX semaphore (`sem_init`, pshared = 1) in this process.
struct LibcSem(Box<UnsafeCell<libc::sem_t>>);

// SAFETY: sem_t is made for concurrent use through sem_* calls.
unsafe impl Send for LibcSem {}
// SAFETY: as above.
unsafe impl Sync for LibcSem {}

impl LibcSem {
    fn new(value: u32) -> Self {
        // SAFETY: zeroed memory is a fine argument for sem_init to set up.
        let s = LibcSem(Box::new(UnsafeCell::new(unsafe { std::mem::zeroed() })));
        // SAFETY: a valid, boxed (stable address) sem_t.
        assert_eq!(unsafe { libc::sem_init(s.0.get(), 1, value) }, 0);
        s
    }
    fn post(&self) {
        // SAFETY: initialized by sem_init, alive while self is.
        unsafe { libc::sem_post(self.0.get()) };
    }
    fn wait(&self) {
        // SAFETY: as above; EINTR does not happen here (no signal handlers).
        unsafe { libc::sem_wait(self.0.get()) };
    }
}

impl Drop for LibcSem {
    fn drop(&mut self) {
        // SAFETY: initialized, and nobody waits on it any more.
        unsafe { libc::sem_destroy(self.0.get()) };
    }
}

mod uncontended {
    use super::*;

    #[divan::bench]
    fn libc_sem_post_wait(b: Bencher) {
        let s = LibcSem::new(0);
        b.bench_local(|| {
            s.post();
            s.wait();
        });
    }

    #[divan::bench]
    fn raw_semaphore_post_wait(b: Bencher) {
        let st = SemaphoreState::new(0);
        let s = RawSemaphore::new(&st);
        b.bench_local(|| {
            s.post().unwrap();
            s.wait().unwrap();
        });
    }

    #[divan::bench]
    fn semaphore_in_segment_post_wait(b: Bencher) {
        let s = Semaphore::anonymous(0).unwrap();
        b.bench_local(|| {
            s.post().unwrap();
            s.wait().unwrap();
        });
    }

    #[divan::bench]
    fn semaphore_acquire_release_permit(b: Bencher) {
        let s = Semaphore::anonymous(1).unwrap();
        b.bench_local(|| drop(s.acquire().unwrap()));
    }
}

mod handoff {
    use super::*;

    /// One round trip: post A, the other thread waits A and posts B, we
    /// wait B.
    fn ping_pong<S: Send + Sync + 'static>(b: Bencher, a: S, bb: S, post: fn(&S), wait: fn(&S)) {
        let pair = Arc::new((a, bb, AtomicBool::new(false)));
        let p2 = pair.clone();
        let t = std::thread::spawn(move || {
            loop {
                wait(&p2.0);
                if p2.2.load(Ordering::Acquire) {
                    break;
                }
                post(&p2.1);
            }
        });
        b.bench_local(|| {
            post(&pair.0);
            wait(&pair.1);
        });
        pair.2.store(true, Ordering::Release);
        post(&pair.0);
        t.join().unwrap();
    }

    #[divan::bench(sample_count = 50, sample_size = 200)]
    fn libc_sem(b: Bencher) {
        ping_pong(
            b,
            LibcSem::new(0),
            LibcSem::new(0),
            LibcSem::post,
            LibcSem::wait,
        );
    }

    #[divan::bench(sample_count = 50, sample_size = 200)]
    fn semaphore_in_segment(b: Bencher) {
        ping_pong(
            b,
            Semaphore::anonymous(0).unwrap(),
            Semaphore::anonymous(0).unwrap(),
            |s| s.post().unwrap(),
            |s| s.wait().unwrap(),
        );
    }
}
