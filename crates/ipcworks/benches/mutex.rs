//! Mutex speed, each beside its baseline in the same run:
//!
//! - uncontended lock + unlock: `ipcworks::sync::Mutex` (in a memfd
//!   segment), `RawMutex` on a heap `MutexState`, `std::sync::Mutex`;
//! - contended: two threads (divan's `threads = 2`) locking, incrementing
//!   and unlocking one mutex, so most unlocks hand the lock to a waiter;
//!   beside `std::sync::Mutex` and a bare futex lock (Drepper's "mutex 3":
//!   CAS 0→1, else swap 2 and `futex_wait`; unlock swaps 0 and wakes one if
//!   it was 2), the floor any futex mutex pays;
//! - contended between two processes: the measured process locks,
//!   increments and unlocks while a peer process (this binary re-run) does
//!   the same in a loop, for our mutex and the bare futex lock (std's mutex
//!   cannot be shared between processes).
//!
//! Run: `cargo bench -p ipcworks --bench mutex`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};

use divan::Bencher;
use ipcworks::__bench::{futex_wait, futex_wake};
use ipcworks::sync::{Mutex, MutexState, RawMutex};

fn main() {
    // Re-run as the contending peer process of `contended_2_processes`.
    if let Ok(role) = std::env::var(PEER_ROLE) {
        processes::peer(&role);
    }
    divan::main();
}

const PEER_ROLE: &str = "IPCWORKS_BENCH_PEER";
const PEER_FD: &str = "IPCWORKS_BENCH_FD";

mod uncontended {
    use super::*;

    #[divan::bench]
    fn ipcworks_mutex(b: Bencher) {
        let m = Mutex::anonymous(0u64).unwrap();
        b.bench_local(|| {
            m.lock().unwrap().update(|n| *n += 1).unwrap();
        });
    }

    #[divan::bench]
    fn ipcworks_raw_mutex(b: Bencher) {
        let st = MutexState::new();
        let raw = RawMutex::new(&st);
        b.bench_local(|| {
            let _ = divan::black_box(raw.lock());
            raw.unlock();
        });
    }

    #[divan::bench]
    fn std_mutex(b: Bencher) {
        let m = std::sync::Mutex::new(0u64);
        b.bench_local(|| {
            *m.lock().unwrap() += 1;
        });
    }

    #[divan::bench]
    fn futex_lock(b: Bencher) {
        let l = FutexLock(AtomicU32::new(0));
        b.bench_local(|| {
            l.lock();
            l.unlock();
        });
    }
}

mod contended_2_threads {
    use super::*;

    static OURS: LazyLock<Mutex<u64>> = LazyLock::new(|| Mutex::anonymous(0).unwrap());
    static STD: std::sync::Mutex<u64> = std::sync::Mutex::new(0);
    static FUTEX: FutexLock = FutexLock(AtomicU32::new(0));
    static FUTEX_COUNT: AtomicU32 = AtomicU32::new(0);

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn ipcworks_mutex(b: Bencher) {
        // Made before timing starts (divan sizes samples by the first run).
        let m = LazyLock::force(&OURS);
        b.bench(|| {
            m.lock().unwrap().update(|n| *n += 1).unwrap();
        });
    }

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn std_mutex(b: Bencher) {
        b.bench(|| {
            *STD.lock().unwrap() += 1;
        });
    }

    #[divan::bench(threads = [2], sample_size = 2000)]
    fn futex_lock(b: Bencher) {
        b.bench(|| {
            FUTEX.lock();
            FUTEX_COUNT.fetch_add(1, Ordering::Relaxed);
            FUTEX.unlock();
        });
    }
}

/// Two processes: this one is measured while a peer process (this bench
/// binary re-run) locks, increments and unlocks the same mutex in a loop.
mod contended_2_processes {
    use super::*;
    use std::os::fd::AsRawFd;

    #[divan::bench]
    fn ipcworks_mutex(b: Bencher) {
        let m = Mutex::anonymous(0u64).unwrap();
        let fd = m.inheritable_fd().unwrap();
        let _peer = processes::Peer::spawn("mutex", fd.as_raw_fd());
        drop(fd);
        // Start timing once the peer contends.
        while m.lock().unwrap().get().unwrap() == 0 {
            std::thread::yield_now();
        }
        b.bench_local(|| {
            m.lock().unwrap().update(|n| *n += 1).unwrap();
        });
    }

    #[divan::bench]
    fn futex_lock(b: Bencher) {
        let seg = ipcworks::shm::Segment::anonymous(4096).unwrap();
        let (lock, count) = processes::futex_words(&seg);
        let fd = seg.inheritable_fd().unwrap();
        let _peer = processes::Peer::spawn("futex", fd.as_raw_fd());
        drop(fd);
        while count.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        b.bench_local(|| {
            lock.lock();
            count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            lock.unlock();
        });
    }
}

mod processes {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::process::{Child, Command, Stdio};

    use super::*;
    use ipcworks::shm::Segment;

    /// The futex lock and a counter at the start of a segment.
    pub fn futex_words(seg: &Segment) -> (&FutexLock, &AtomicU32) {
        assert!(seg.len() >= 8);
        // SAFETY: two 4-byte atomics at offsets 0 and 4 of a page-aligned
        // mapping that outlives the references; atomics tolerate the peer.
        unsafe {
            (
                &*(seg.as_ptr() as *const FutexLock),
                &*(seg.as_ptr().add(4) as *const AtomicU32),
            )
        }
    }

    /// The peer process, killed when dropped.
    pub struct Peer(Child);

    impl Peer {
        pub fn spawn(role: &str, fd: i32) -> Self {
            let exe = std::env::current_exe().unwrap();
            let child = Command::new(exe)
                .env(PEER_ROLE, role)
                .env(PEER_FD, fd.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            Peer(child)
        }
    }

    impl Drop for Peer {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// The peer: lock, increment, unlock, until killed.
    pub fn peer(role: &str) -> ! {
        let fd: i32 = std::env::var(PEER_FD).unwrap().parse().unwrap();
        // SAFETY: the parent left this descriptor open for us.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        match role {
            "mutex" => {
                let m = Mutex::<u64>::from_fd(fd).unwrap();
                loop {
                    m.lock().unwrap().update(|n| *n += 1).unwrap();
                }
            }
            "futex" => {
                let seg = Segment::from_fd(fd).unwrap();
                let (lock, count) = futex_words(&seg);
                loop {
                    lock.lock();
                    count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
                    lock.unlock();
                }
            }
            other => panic!("unknown peer role {other}"),
        }
    }
}

/// The bare futex lock: 0 unlocked, 1 locked, 2 locked with waiters.
struct FutexLock(AtomicU32);

impl FutexLock {
    fn lock(&self) {
        if self
            .0
            .compare_exchange(0, 1, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        while self.0.swap(2, Ordering::Acquire) != 0 {
            futex_wait(&self.0, 2);
        }
    }

    fn unlock(&self) {
        if self.0.swap(0, Ordering::Release) == 2 {
            futex_wake(&self.0, 1);
        }
    }
}
