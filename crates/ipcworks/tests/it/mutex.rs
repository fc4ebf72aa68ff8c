//! The robust mutex between real threads and real processes: exact counts,
//! kill -9 of holders and recoverers, timeouts under a storm of signals, and
//! clear errors for bad names and bad segments.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{ChildStdout, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::shm::Segment;
use ipcworks::sync::{Acquired, LockError, Mutex, MutexState, RawError, RawMutex};

use crate::support::{self, KillOnDrop, ShmCleanup};

/// Two fields that a correct writer keeps equal; a holder killed between its
/// steps leaves them unequal.
pub(crate) type Pair = [u64; 2];

const HANG: Duration = Duration::from_secs(20);

/// Where a `Mutex<T>` keeps its value in the segment (T aligned to at most
/// 64): after the 64-byte-rounded header.
const VALUE_OFFSET: usize = 64;

pub(crate) fn seg_name(name: &str) -> String {
    format!("ipcworks.mutex.{name}")
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // "NAME,COUNT": COUNT locked increments of a named Mutex<u64>.
            "inc-named" => {
                let (name, count) = arg.split_once(',').unwrap();
                let m = Mutex::<u64>::open(name).unwrap();
                for _ in 0..count.parse::<u64>().unwrap() {
                    m.lock().unwrap().update(|n| *n += 1).unwrap();
                }
            }
            // "FD,COUNT": the same on an inherited anonymous mutex.
            "inc-fd" => {
                let (fd, count) = arg.split_once(',').unwrap();
                // SAFETY: the parent passed us this open descriptor number.
                let fd = unsafe { OwnedFd::from_raw_fd(fd.parse().unwrap()) };
                let m = Mutex::<u64>::from_fd(fd).unwrap();
                for _ in 0..count.parse::<u64>().unwrap() {
                    m.lock().unwrap().update(|n| *n += 1).unwrap();
                }
            }
            // Locks normally and finds the pair consistent.
            "lock-pair" => {
                let m = Mutex::<Pair>::open(&arg).unwrap();
                let g = m.lock().unwrap();
                assert!(g.is_consistent());
                let [a, b] = g.get().unwrap();
                assert_eq!(a, b);
            }
            // Locks, breaks the invariant, says READY, and waits to be killed.
            "hold" => {
                let m = Mutex::<Pair>::open(&arg).unwrap();
                let mut g = m.lock().unwrap();
                g.update(|p| p[0] += 1).unwrap();
                println!("READY");
                std::thread::sleep(Duration::from_secs(60));
            }
            // Expects OwnerDead, says so, and dies before making it consistent.
            "recover-and-hang" => {
                let m = Mutex::<Pair>::open(&arg).unwrap();
                match m.lock() {
                    Err(LockError::OwnerDead(mut g)) => {
                        g.update(|p| p[1] = 999).unwrap(); // half a repair
                        println!("OWNERDEAD");
                        // Holding the guard: the kill comes while we recover.
                        std::thread::sleep(Duration::from_secs(60));
                    }
                    other => {
                        println!("UNEXPECTED {other:?}");
                        std::process::exit(3);
                    }
                }
                std::thread::sleep(Duration::from_secs(60));
            }
            // Locks and unlocks for ever, keeping pair[0] == pair[1] in several
            // steps (repairing after a dead predecessor).
            "churn" => {
                let m = Mutex::<Pair>::open(&arg).unwrap();
                let mut said = false;
                loop {
                    let mut g = match m.lock() {
                        Ok(g) => g,
                        Err(LockError::OwnerDead(mut g)) => {
                            g.update(|p| p[1] = p[0]).unwrap();
                            g.make_consistent();
                            g
                        }
                        Err(LockError::Failed(e)) => panic!("{e}"),
                    };
                    // Two separate writes to shared memory, with time between.
                    g.update(|p| p[0] += 1).unwrap();
                    for i in 0..200u32 {
                        std::hint::black_box(i);
                    }
                    g.update(|p| p[1] = p[0]).unwrap();
                    drop(g);
                    if !said {
                        println!("READY");
                        said = true;
                    }
                }
            }
            // "NAME,COUNT": COUNT fetch_adds on the value's first atomic,
            // without taking the lock, through a plain mapping of the segment.
            "atomic-add-unlocked" => {
                let (name, count) = arg.split_once(',').unwrap();
                let seg = Segment::open(&seg_name(name)).unwrap();
                // SAFETY: offset 64 (the value) is 8-aligned and inside the
                // mapped segment, which outlives the reference; atomics
                // tolerate the other processes' writes.
                let hits = unsafe { &*(seg.as_ptr().add(VALUE_OFFSET) as *const AtomicU64) };
                for _ in 0..count.parse::<u64>().unwrap() {
                    hits.fetch_add(1, Ordering::Relaxed);
                }
            }
            "timeout-under-signals" => timeout_under_signals(),
            other => support::unknown_role(other),
        }
    });
}

/// Reads the child's stdout until a line equal to `want` (the test harness
/// prints its own lines too).
fn wait_line(out: &mut BufReader<ChildStdout>, want: &str) {
    let mut line = String::new();
    loop {
        line.clear();
        let n = out.read_line(&mut line).expect("read child stdout");
        assert!(n > 0, "child ended before saying {want}");
        if line.trim() == want {
            return;
        }
        assert!(!line.starts_with("UNEXPECTED"), "child: {line}");
    }
}

/// Spawns a child role with its stdout piped, and waits for `want`.
pub(crate) fn spawn_and_wait(role: &str, arg: &str, want: &str) -> KillOnDrop {
    let mut cmd = support::child("mutex::child", role, arg);
    cmd.stdout(Stdio::piped());
    let mut c = KillOnDrop::spawn(cmd);
    let out = c.0.as_mut().unwrap().stdout.take().unwrap();
    let mut out = BufReader::new(out);
    wait_line(&mut out, want);
    // Keep draining so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while out.read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
    });
    c
}

#[test]
fn threads_count_exactly() {
    let m = Mutex::anonymous(0u64).unwrap();
    const THREADS: u64 = 4;
    const EACH: u64 = 5_000;
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..EACH {
                    let mut g = m.lock().unwrap();
                    // A read, a pause and a write: lost updates show if two
                    // threads get in at once.
                    let v = g.get().unwrap();
                    std::hint::black_box(&v);
                    g.set(v + 1).unwrap();
                }
            });
        }
    });
    assert_eq!(m.lock().unwrap().get().unwrap(), THREADS * EACH);
}

/// The guard works on copies: `update`'s closure sees a private copy that
/// an unlocked writer (a buggy peer, here our own second mapping of the
/// segment) cannot change under it, and the copy is what lands back.
#[test]
fn the_guard_copies_in_and_out() {
    let name = support::unique_name("mtx-copy");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64; 4]).unwrap();
    let other = Segment::open(&seg_name(&name)).unwrap();
    let scribble = |v: [u64; 4]| {
        // SAFETY: the value's 32 bytes at offset 64 of a mapping that
        // outlives this call; a raw volatile write, as a peer's would be.
        unsafe { std::ptr::write_volatile(other.as_ptr().add(VALUE_OFFSET) as *mut [u64; 4], v) }
    };
    let mut g = m.lock().unwrap();
    let seen = g
        .update(|v| {
            *v = [1, 2, 3, 4];
            scribble([9; 4]);
            *v
        })
        .unwrap();
    assert_eq!(seen, [1, 2, 3, 4], "the closure's copy is private");
    assert_eq!(g.get().unwrap(), [1, 2, 3, 4], "the copy is written back");
    scribble([7; 4]);
    assert_eq!(g.get().unwrap(), [7; 4], "get copies what is there now");
    g.set([5, 6, 7, 8]).unwrap();
    // SAFETY: as above, a raw read.
    let there = unsafe { std::ptr::read_volatile(g.as_ptr()) };
    assert_eq!(there, [5, 6, 7, 8]);
    // A panicking closure leaves the value as it was and the lock free.
    drop(g);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        m.lock()
            .unwrap()
            .update(|v| {
                v[0] = 100;
                panic!("inside update");
            })
            .unwrap()
    }));
    assert!(r.is_err());
    assert_eq!(m.lock_timeout(HANG).unwrap().get().unwrap(), [5, 6, 7, 8]);
}

/// A value made of atomics is lent in place: a child process adding
/// without the lock and this one adding under it both count exactly.
#[test]
fn atomics_are_lent_in_place_and_count_beside_unlocked_writers() {
    let name = support::unique_name("mtx-atomics");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [AtomicU64::new(0), AtomicU64::new(0)]).unwrap();
    const EACH: u64 = 20_000;
    let mut kid = KillOnDrop::spawn(support::child(
        "mutex::child",
        "atomic-add-unlocked",
        &format!("{name},{EACH}"),
    ));
    for _ in 0..EACH {
        let g = m.lock().unwrap();
        g.atomics()[0].fetch_add(1, Ordering::Relaxed);
        g.atomics()[1].fetch_add(1, Ordering::Relaxed);
    }
    assert!(kid.wait_for(HANG).success());
    let g = m.lock().unwrap();
    let [a, b] = g.get().unwrap().map(AtomicU64::into_inner);
    assert_eq!((a, b), (2 * EACH, EACH));
}

#[test]
fn a_thread_that_exits_holding_the_lock_is_a_dead_holder() {
    let m = Mutex::anonymous([3u64, 3]).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut g = m.lock().unwrap();
            g.update(|p| p[0] = 4).unwrap();
            std::mem::forget(g); // the thread ends still holding the lock
        });
    });
    assert!(m.is_locked());
    match m.lock_timeout(HANG) {
        Err(LockError::OwnerDead(mut g)) => {
            assert_eq!(g.get().unwrap(), [4, 3]);
            g.set([4, 4]).unwrap();
            g.make_consistent();
        }
        other => panic!("expected OwnerDead, got {other:?}"),
    }
    assert_eq!(m.lock().unwrap().get().unwrap(), [4, 4]);
}

#[test]
fn processes_count_exactly() {
    let name = support::unique_name("mtx-procs");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, 0u64).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm/{}", seg_name(&name)))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    const EACH: u64 = 3_000;
    let mut kids: Vec<_> = (0..3)
        .map(|_| {
            KillOnDrop::spawn(support::child(
                "mutex::child",
                "inc-named",
                &format!("{name},{EACH}"),
            ))
        })
        .collect();
    // The parent competes too.
    for _ in 0..EACH {
        m.lock().unwrap().update(|n| *n += 1).unwrap();
    }
    for k in &mut kids {
        assert!(k.wait_for(HANG).success());
    }
    assert_eq!(m.lock().unwrap().get().unwrap(), 4 * EACH);
    drop(m);
    assert!(!std::path::Path::new(&format!("/dev/shm/{}", seg_name(&name))).exists());
}

#[test]
fn anonymous_mutex_is_inherited_by_children() {
    let m = Mutex::anonymous(0u64).unwrap();
    let fd = m.inheritable_fd().unwrap();
    let arg = format!("{},2000", fd.as_raw_fd());
    let mut kids: Vec<_> = (0..2)
        .map(|_| KillOnDrop::spawn(support::child("mutex::child", "inc-fd", &arg)))
        .collect();
    drop(fd);
    for k in &mut kids {
        assert!(k.wait_for(HANG).success());
    }
    assert_eq!(m.lock().unwrap().get().unwrap(), 4000);
}

#[test]
fn killed_holder_is_reported_to_a_blocked_waiter_and_to_a_fresh_locker() {
    let name = support::unique_name("mtx-kill");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [7u64, 7]).unwrap();

    // 1. A waiter already blocked in lock() when the holder is killed.
    let mut holder = spawn_and_wait("hold", &name, "READY");
    assert!(m.is_locked());
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|s| {
        s.spawn(|| {
            let started = Instant::now();
            let r = m.lock();
            let took = started.elapsed();
            match r {
                Err(LockError::OwnerDead(mut g)) => {
                    assert!(!g.is_consistent());
                    assert_eq!(
                        g.get().unwrap(),
                        [8, 7],
                        "the dead holder's half-done update"
                    );
                    g.update(|p| p[1] = p[0]).unwrap();
                    g.make_consistent();
                    assert!(g.is_consistent());
                    tx.send(Ok(took)).unwrap();
                }
                other => tx.send(Err(format!("{other:?}"))).unwrap(),
            }
        });
        std::thread::sleep(Duration::from_millis(100));
        assert!(rx.try_recv().is_err(), "the waiter must still be blocked");
        holder.kill9();
        let took = rx.recv_timeout(HANG).expect("waiter never woke");
        assert!(took.is_ok(), "waiter got {took:?}");
    });
    assert_eq!(m.lock().expect("consistent again").get().unwrap(), [8, 8]);

    // 2. A fresh locker after the holder was killed.
    let mut holder = spawn_and_wait("hold", &name, "READY");
    holder.kill9();
    let started = Instant::now();
    match m.lock() {
        Err(LockError::OwnerDead(mut g)) => {
            assert_eq!(g.get().unwrap(), [9, 8]);
            g.update(|p| p[1] = p[0]).unwrap();
            g.make_consistent();
        }
        other => panic!("expected OwnerDead, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));

    // 3. try_lock also notices a dead holder instead of failing for ever.
    let mut holder = spawn_and_wait("hold", &name, "READY");
    holder.kill9();
    match m.try_lock() {
        Err(LockError::OwnerDead(mut g)) => {
            g.update(|p| p[1] = p[0]).unwrap();
            g.make_consistent();
        }
        other => panic!("expected OwnerDead from try_lock, got {other:?}"),
    }

    // Later lockers, here and in other processes, proceed normally.
    let mut c = KillOnDrop::spawn(support::child("mutex::child", "lock-pair", &name));
    assert!(c.wait_for(HANG).success());
    let g = m.lock().expect("normal lock after repair");
    assert!(g.is_consistent());
    assert_eq!(g.get().unwrap(), [10, 10]);
}

/// A timeout shorter than the waiters' liveness period (zero, as `ipcworks
/// lock -n` asks, or a few milliseconds) still looks at the holder once
/// before giving up: a dead holder's lock is taken over, not reported as a
/// timeout for ever.
#[test]
fn short_timeouts_take_over_from_a_dead_holder() {
    let name = support::unique_name("mtx-short");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64, 0]).unwrap();
    for timeout in [Duration::ZERO, Duration::from_millis(3)] {
        let mut holder = spawn_and_wait("hold", &name, "READY");
        holder.kill9();
        match m.lock_timeout(timeout) {
            Err(LockError::OwnerDead(mut g)) => {
                g.update(|p| p[1] = p[0]).unwrap();
                g.make_consistent();
            }
            other => panic!("lock_timeout({timeout:?}) on a dead holder's mutex: {other:?}"),
        }
    }
    // A live holder still makes them time out.
    let _holder = spawn_and_wait("hold", &name, "READY");
    for timeout in [Duration::ZERO, Duration::from_millis(3)] {
        let e: Error = m.lock_timeout(timeout).map(drop).unwrap_err().into();
        assert!(matches!(e, Error::Timeout), "{e:?}");
    }
}

#[test]
fn unrepaired_owner_dead_makes_the_mutex_not_recoverable() {
    let name = support::unique_name("mtx-nr");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64, 0]).unwrap();
    let mut holder = spawn_and_wait("hold", &name, "READY");
    holder.kill9();
    let g = match m.lock() {
        Err(LockError::OwnerDead(g)) => g,
        other => panic!("expected OwnerDead, got {other:?}"),
    };
    std::thread::scope(|s| {
        // A waiter blocked while the recoverer gives up learns it too.
        let waiter = s.spawn(|| match m.lock() {
            Err(LockError::Failed(Error::NotRecoverable { .. })) => Ok(()),
            other => Err(format!("{other:?}")),
        });
        std::thread::sleep(Duration::from_millis(50));
        drop(g); // without make_consistent
        assert_eq!(waiter.join().unwrap(), Ok(()));
    });
    for r in [
        m.lock().map(drop),
        m.try_lock().map(drop),
        m.lock_timeout(Duration::from_millis(10)).map(drop),
    ] {
        let e: Error = r.unwrap_err().into();
        assert!(matches!(e, Error::NotRecoverable { .. }), "{e:?}");
        assert!(e.to_string().contains("not recoverable"), "{e}");
    }
    // Another process sees the same.
    let other = Mutex::<Pair>::open(&name).unwrap();
    assert!(matches!(
        other.lock().map(drop).map_err(Error::from),
        Err(Error::NotRecoverable { .. })
    ));
}

#[test]
fn killed_recoverer_passes_owner_dead_on() {
    let name = support::unique_name("mtx-rec");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64, 0]).unwrap();
    let mut holder = spawn_and_wait("hold", &name, "READY");
    holder.kill9();
    let mut recoverer = spawn_and_wait("recover-and-hang", &name, "OWNERDEAD");
    recoverer.kill9();
    match m.lock() {
        Err(LockError::OwnerDead(mut g)) => {
            assert_eq!(g.get().unwrap(), [1, 999]);
            g.update(|p| p[1] = p[0]).unwrap();
            g.make_consistent();
        }
        other => panic!("expected OwnerDead again, got {other:?}"),
    }
    assert_eq!(m.lock().unwrap().get().unwrap(), [1, 1]);
}

/// xorshift64*, seeded from the clock; the seed is printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn kill_at_random_moments() {
    let name = support::unique_name("mtx-random");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, [0u64, 0]).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let (mut dead, mut clean) = (0, 0);
    for i in 0..200 {
        let mut c = spawn_and_wait("churn", &name, "READY");
        let delay = Duration::from_micros(rng.next() % 3000);
        std::thread::sleep(delay);
        c.kill9();
        match m.lock_timeout(HANG) {
            Ok(g) => {
                let [a, b] = g.get().unwrap();
                assert_eq!(a, b, "iteration {i}, seed {seed}: torn pair");
                clean += 1;
            }
            Err(LockError::OwnerDead(mut g)) => {
                let [a, b] = g.get().unwrap();
                assert!(a == b || a == b + 1, "seed {seed}: {:?}", [a, b]);
                g.set([a, a]).unwrap();
                g.make_consistent();
                dead += 1;
            }
            Err(LockError::Failed(e)) => panic!("iteration {i}, seed {seed}: {e}"),
        }
    }
    eprintln!("kill_at_random_moments: {dead} holders died holding, {clean} did not");
    assert!(dead > 0, "seed {seed}: no kill landed inside the lock");
    let g = m.lock().unwrap();
    let [a, b] = g.get().unwrap();
    assert_eq!(a, b);
    assert!(a >= 200);
}

#[test]
fn try_lock_and_lock_timeout() {
    let m = Mutex::anonymous(0u32).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            let _g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(HANG);
        });
        held_rx.recv().unwrap();
        let e: Error = m.try_lock().map(drop).unwrap_err().into();
        assert!(matches!(e, Error::WouldBlock), "{e:?}");
        let start = Instant::now();
        let e: Error = m
            .lock_timeout(Duration::from_millis(120))
            .map(drop)
            .unwrap_err()
            .into();
        assert!(matches!(e, Error::Timeout), "{e:?}");
        assert!(start.elapsed() >= Duration::from_millis(120));
        done_tx.send(()).unwrap();
    });
    assert!(m.try_lock().is_ok());
    assert!(m.lock_timeout(Duration::ZERO).is_ok());

    // Locking again from the holding thread is an error, not a hang.
    let g = m.lock().unwrap();
    let e: Error = m.lock().map(drop).unwrap_err().into();
    assert!(
        matches!(&e, Error::InvalidArgument(msg) if msg.contains("already locked by this thread")),
        "{e:?}"
    );
    assert!(matches!(
        m.try_lock().map(drop).map_err(Error::from),
        Err(Error::WouldBlock)
    ));
    drop(g);
}

static ALARMS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    ALARMS.fetch_add(1, Ordering::Relaxed);
}

/// In a child (it changes process-wide signal state): SIGALRM every
/// millisecond, handler installed without SA_RESTART, so every futex wait is
/// interrupted with EINTR again and again.
fn timeout_under_signals() {
    // SAFETY: a zeroed sigaction is valid; the handler only touches an
    // atomic (async-signal-safe); no SA_RESTART, on purpose.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        sa.sa_flags = 0;
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
        let tick = libc::timeval {
            tv_sec: 0,
            tv_usec: 1000,
        };
        let it = libc::itimerval {
            it_interval: tick,
            it_value: tick,
        };
        assert_eq!(
            libc::setitimer(libc::ITIMER_REAL, &it, std::ptr::null_mut()),
            0
        );
    }
    let m = Mutex::anonymous(0u64).unwrap();
    let (held_tx, held_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            let _g = m.lock().unwrap();
            held_tx.send(()).unwrap();
            let _ = done_rx.recv_timeout(HANG);
        });
        held_rx.recv().unwrap();
        for _ in 0..3 {
            let start = Instant::now();
            let timeout = Duration::from_millis(150);
            match m.lock_timeout(timeout) {
                Err(LockError::Failed(Error::Timeout)) => {}
                other => panic!("expected Timeout, got {other:?}"),
            }
            let took = start.elapsed();
            assert!(took >= timeout, "returned early after {took:?}");
        }
        // A blocking lock() rides through the signals until the holder lets go.
        let before = ALARMS.load(Ordering::Relaxed);
        let releaser = s.spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            done_tx.send(()).unwrap();
        });
        m.lock()
            .expect("lock under signals")
            .update(|n| *n += 1)
            .unwrap();
        releaser.join().unwrap();
        assert!(
            ALARMS.load(Ordering::Relaxed) > before + 10,
            "signals did arrive"
        );
    });
    println!("alarms: {}", ALARMS.load(Ordering::Relaxed));
}

#[test]
fn lock_timeout_meets_its_deadline_under_a_signal_storm() {
    let mut c = KillOnDrop::spawn(support::child("mutex::child", "timeout-under-signals", ""));
    assert!(c.wait_for(HANG).success());
}

#[test]
fn bad_names_missing_mutexes_and_bad_segments_give_clear_errors() {
    // Bad names.
    for bad in ["", "a/b", ".."] {
        let e = Mutex::<u64>::open(bad).unwrap_err();
        assert!(matches!(e, Error::NameInvalid { .. }), "{bad:?}: {e:?}");
        let e = Mutex::create(bad, 0u64).unwrap_err();
        assert!(matches!(e, Error::NameInvalid { .. }), "{bad:?}: {e:?}");
    }
    // Missing.
    let missing = support::unique_name("mtx-missing");
    let e = Mutex::<u64>::open(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::NotFound { kind: "mutex", name } if *name == missing),
        "{e:?}"
    );
    assert!(matches!(
        Mutex::<u64>::remove(&missing),
        Err(Error::NotFound { .. })
    ));

    // Exists already; a different type; remove.
    let name = support::unique_name("mtx-dup");
    let _clean = ShmCleanup(vec![seg_name(&name)]);
    let m = Mutex::create(&name, 5u64).unwrap();
    assert!(matches!(
        Mutex::create(&name, 1u64),
        Err(Error::AlreadyExists { kind: "mutex", .. })
    ));
    let (again, created) = Mutex::open_or_create(&name, 1u64).unwrap();
    assert!(!created);
    assert_eq!(again.lock().unwrap().get().unwrap(), 5);
    let e = Mutex::<[u64; 4]>::open(&name).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { reason, .. } if reason.contains("different type")),
        "{e:?}"
    );

    // Garbage in the lock state: an unknown state is Corrupted, a lock word
    // naming a thread that does not exist is a dead holder.
    let raw = Segment::open(&seg_name(&name)).unwrap();
    // SAFETY: offsets 24 (the 64-bit lock word) and 32 (state) are inside
    // the header of a mapped, page-aligned segment that outlives these
    // references.
    let (word, state) = unsafe {
        (
            &*(raw.as_ptr().add(24) as *const AtomicU64),
            &*(raw.as_ptr().add(32) as *const AtomicU32),
        )
    };
    state.store(77, Ordering::SeqCst);
    let e: Error = m.lock().map(drop).unwrap_err().into();
    assert!(matches!(e, Error::Corrupted { .. }), "{e:?}");
    assert!(m.try_lock().is_err());
    state.store(0, Ordering::SeqCst);
    // Thread id 0x7FFF_FFFE (above any pid_max), WAITERS, start time 0.
    word.store(0x7FFF_FFFE | (1 << 31), Ordering::SeqCst);
    match m.lock_timeout(HANG) {
        Err(LockError::OwnerDead(mut g)) => g.make_consistent(),
        other => panic!("expected OwnerDead for a nonexistent holder, got {other:?}"),
    }
    assert_eq!(m.lock().unwrap().get().unwrap(), 5);
    drop((raw, again));
    Mutex::<u64>::remove(&name).unwrap();
    drop(m);

    // A segment under the mutex's name that is not a mutex.
    let junk = support::unique_name("mtx-junk");
    let _clean2 = ShmCleanup(vec![seg_name(&junk)]);
    let seg = Segment::create(&seg_name(&junk), 4096).unwrap();
    // SAFETY: the segment is 4096 bytes, mapped, ours.
    unsafe { std::ptr::write_bytes(seg.as_ptr(), 0xA5, 4096) };
    let e = Mutex::<u64>::open(&junk).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { reason, .. } if reason.contains("not an ipcworks mutex")),
        "{e:?}"
    );
    // One that was never initialized (all zero) is refused after a moment.
    // SAFETY: as above.
    unsafe { std::ptr::write_bytes(seg.as_ptr(), 0, 4096) };
    let e = Mutex::<u64>::open(&junk).unwrap_err();
    assert!(
        matches!(&e, Error::Refused { reason, .. } if reason.contains("never initialized")),
        "{e:?}"
    );
    // One too small for a header.
    drop(seg);
    let tiny = Segment::create(&seg_name(&junk), 8).unwrap();
    let e = Mutex::<u64>::open(&junk).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e:?}");
    drop(tiny);
}

#[test]
fn raw_mutex_embedded_in_a_segment() {
    // The native queue's way: a MutexState at some offset of its own segment.
    let seg = Segment::anonymous(4096).unwrap();
    // SAFETY: offset 64 is 8-aligned and inside the zero-filled mapping,
    // which outlives the reference; MutexState is atomics only.
    let st = unsafe { &*(seg.as_ptr().add(64) as *const MutexState) };
    let counter = std::sync::atomic::AtomicU64::new(0);
    let raw = RawMutex::new(st);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..2000 {
                    assert_eq!(raw.lock(), Ok(Acquired::Consistent));
                    let v = counter.load(Ordering::Relaxed);
                    counter.store(v + 1, Ordering::Relaxed);
                    raw.unlock();
                }
            });
        }
    });
    assert_eq!(counter.load(Ordering::Relaxed), 6000);
    assert!(!raw.is_locked());

    // A holder thread that ends holding it: OwnerDead, repaired.
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(raw.lock(), Ok(Acquired::Consistent)));
    });
    // (lock, not try_lock: a joined thread can linger in /proc for a moment
    // after join returns, and try_lock would rightly say WouldBlock then.)
    assert_eq!(raw.lock_timeout(HANG), Ok(Acquired::OwnerDead));
    assert!(raw.make_consistent());
    raw.unlock();
    assert_eq!(raw.lock_timeout(HANG), Ok(Acquired::Consistent));
    raw.unlock();

    // Not repaired: not recoverable for everyone.
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(raw.lock(), Ok(Acquired::Consistent)));
    });
    assert_eq!(raw.lock(), Ok(Acquired::OwnerDead));
    raw.unlock();
    assert_eq!(raw.lock(), Err(RawError::NotRecoverable));
    assert_eq!(raw.try_lock(), Err(RawError::NotRecoverable));
    assert!(!raw.make_consistent());
}
