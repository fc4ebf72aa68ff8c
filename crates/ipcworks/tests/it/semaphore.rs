//! Native and POSIX semaphores between real processes: permits of killed
//! holders come back, concurrency never exceeds N, timeouts hold under a
//! storm of signals, squatted names are refused, C programs and Python see
//! the same POSIX counter.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::shm::Segment;
use ipcworks::sync::{PosixSemaphore, Semaphore};

use crate::support::{self, KillOnDrop, ShmCleanup};
use ipcworks_test_support::{need, require};

const HANG: Duration = Duration::from_secs(30);

fn word(seg: &Segment, i: usize) -> &AtomicU64 {
    assert!((i + 1) * 8 <= seg.len());
    // SAFETY: in bounds (checked), 8-aligned (page-aligned base), the
    // segment outlives the reference; atomics tolerate concurrent writers.
    unsafe { &*(seg.as_ptr().add(i * 8) as *const AtomicU64) }
}

/// /dev/shm entries of a native semaphore and a POSIX one of that name.
fn cleanup(names: &[&str]) -> ShmCleanup {
    ShmCleanup(
        names
            .iter()
            .flat_map(|n| {
                [
                    format!("ipcworks.sem.{n}"),
                    format!("sem.{n}"),
                    n.to_string(),
                ]
            })
            .collect(),
    )
}

/// A small xorshift, seeded from the clock (no test-only dependency).
fn rng() -> impl FnMut() -> u64 {
    let mut x = Instant::now().elapsed().as_nanos() as u64
        ^ (std::process::id() as u64) << 17
        ^ 0x9E37_79B9_7F4A_7C15;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let parts: Vec<&str> = arg.split(',').collect();
        match role {
            // Takes a permit and holds it until killed.
            "hold" => {
                let sem = Semaphore::open(parts[0]).unwrap();
                let _p = sem.acquire().unwrap();
                println!("held");
                std::thread::sleep(Duration::from_secs(60));
            }
            // Acquires and releases in a loop, counting cycles, until killed.
            "churn" => {
                let sem = Semaphore::open(parts[0]).unwrap();
                let ctr = Segment::open(parts[1]).unwrap();
                let slot: usize = parts[2].parse().unwrap();
                loop {
                    let p = sem.acquire().unwrap();
                    word(&ctr, slot).fetch_add(1, SeqCst);
                    drop(p);
                }
            }
            // K rounds of acquire; inside, count concurrency; count completions.
            "hammer" => {
                let sem = Semaphore::open(parts[0]).unwrap();
                let ctr = Segment::open(parts[1]).unwrap();
                let rounds: u64 = parts[2].parse().unwrap();
                for _ in 0..rounds {
                    let _p = sem.acquire().unwrap();
                    let now = word(&ctr, 0).fetch_add(1, SeqCst) + 1;
                    word(&ctr, 1).fetch_max(now, SeqCst);
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                    std::thread::yield_now();
                    word(&ctr, 0).fetch_sub(1, SeqCst);
                    word(&ctr, 2).fetch_add(1, SeqCst);
                }
            }
            // Uses an inherited anonymous semaphore: waits for a post, posts 3.
            "inherited" => {
                // SAFETY: the parent passed us this open descriptor number.
                let fd = unsafe { OwnedFd::from_raw_fd(parts[0].parse().unwrap()) };
                let sem = Semaphore::from_fd(fd).unwrap();
                sem.wait_timeout(HANG).unwrap();
                for _ in 0..3 {
                    sem.post().unwrap();
                }
            }
            "signals" => signal_storm(parts[0]),
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn a_killed_holders_permit_comes_back_to_a_blocked_waiter_and_to_reclaim() {
    let name = support::unique_name("semkill");
    let _clean = cleanup(&[&name]);
    let sem = Semaphore::create(&name, 1).unwrap();

    for round in 0..3 {
        let mut c = support::child("semaphore::child", "hold", &name);
        c.stdout(std::process::Stdio::piped());
        let mut holder = KillOnDrop::spawn(c);
        assert!(support::wait_until(HANG, || sem.value().unwrap() == 0));
        let h = sem.holders();
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].pid, holder.pid());
        assert!(h[0].held && h[0].alive);
        assert!(matches!(sem.try_wait(), Err(Error::WouldBlock)));

        if round == 0 {
            // A waiter already blocked in acquire gets the permit.
            std::thread::scope(|s| {
                let waiter = s.spawn(|| {
                    let t = Instant::now();
                    let p = sem.acquire_timeout(HANG).unwrap();
                    drop(p);
                    t.elapsed()
                });
                std::thread::sleep(Duration::from_millis(50));
                holder.kill9();
                let waited = waiter.join().unwrap();
                assert!(waited < HANG);
            });
        } else if round == 1 {
            // A plain waiter (wait, not acquire) gets it too; it then posts
            // the untracked permit back.
            std::thread::scope(|s| {
                let waiter = s.spawn(|| sem.wait_timeout(HANG));
                std::thread::sleep(Duration::from_millis(50));
                holder.kill9();
                waiter.join().unwrap().unwrap();
            });
            sem.post().unwrap();
        } else {
            holder.kill9();
            assert!(!sem.holders()[0].alive);
            assert_eq!(sem.value().unwrap(), 0, "no one has reclaimed yet");
            assert_eq!(sem.reclaim().unwrap(), 1);
        }
        assert_eq!(sem.value().unwrap(), 1);
        assert!(sem.holders().is_empty());
    }
}

#[test]
fn kills_at_random_moments_neither_leak_nor_duplicate_permits() {
    let name = support::unique_name("semrandom");
    let ctr_name = support::unique_name("semrandom-ctr");
    let _clean = cleanup(&[&name, &ctr_name]);
    const INITIAL: u32 = 3;
    const PARALLEL: usize = 4;
    const ROUNDS: usize = 50; // 200 kills
    let sem = Semaphore::create(&name, INITIAL).unwrap();
    let ctr = Segment::create(&ctr_name, 4096).unwrap();
    let mut next = rng();
    let mut cycles = 0;
    for _ in 0..ROUNDS {
        let mut kids: Vec<KillOnDrop> = (0..PARALLEL)
            .map(|i| {
                word(&ctr, i).store(0, SeqCst);
                KillOnDrop::spawn(support::child(
                    "semaphore::child",
                    "churn",
                    &format!("{name},{ctr_name},{i}"),
                ))
            })
            .collect();
        // Kill each once it is looping, after a random extra delay.
        for (i, k) in kids.iter_mut().enumerate() {
            assert!(support::wait_until(HANG, || word(&ctr, i).load(SeqCst) > 0));
            let spin = next() % 3000;
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(spin) {
                std::hint::spin_loop();
            }
            k.kill9();
            cycles += word(&ctr, i).load(SeqCst);
        }
    }
    eprintln!("{cycles} acquire/release cycles in children killed at random moments");
    // Recovery: reclaim, then exact count and an empty table.
    sem.reclaim().unwrap();
    assert_eq!(sem.value().unwrap(), INITIAL, "after {cycles} cycles");
    assert!(sem.holders().is_empty(), "{:?}", sem.holders());
    // And it still works as a pool of exactly INITIAL.
    let permits: Vec<_> = (0..INITIAL).map(|_| sem.try_acquire().unwrap()).collect();
    assert!(matches!(sem.try_acquire(), Err(Error::WouldBlock)));
    drop(permits);
    assert_eq!(sem.value().unwrap(), INITIAL);
}

#[test]
fn many_processes_never_exceed_n_and_all_get_in() {
    let name = support::unique_name("semhammer");
    let ctr_name = support::unique_name("semhammer-ctr");
    let _clean = cleanup(&[&name, &ctr_name]);
    const N: u32 = 2;
    const PROCS: u64 = 6;
    const ROUNDS: u64 = 2000;
    let sem = Semaphore::create(&name, N).unwrap();
    let ctr = Segment::create(&ctr_name, 4096).unwrap();
    let mut kids: Vec<KillOnDrop> = (0..PROCS)
        .map(|_| {
            KillOnDrop::spawn(support::child(
                "semaphore::child",
                "hammer",
                &format!("{name},{ctr_name},{ROUNDS}"),
            ))
        })
        .collect();
    for k in &mut kids {
        assert!(k.wait_for(HANG).success());
    }
    let max = word(&ctr, 1).load(SeqCst);
    eprintln!("highest concurrency observed: {max} (N = {N})");
    assert!(max <= N as u64 && max >= 1, "max {max}");
    assert_eq!(word(&ctr, 2).load(SeqCst), PROCS * ROUNDS);
    assert_eq!(sem.value().unwrap(), N);
    assert!(sem.holders().is_empty());
}

#[test]
fn timeouts_and_try_give_their_errors() {
    let sem = Semaphore::anonymous(0).unwrap();
    assert!(matches!(sem.try_wait(), Err(Error::WouldBlock)));
    assert!(matches!(sem.try_acquire(), Err(Error::WouldBlock)));
    let t = Instant::now();
    assert!(matches!(
        sem.wait_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(matches!(
        sem.acquire_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    sem.post().unwrap();
    sem.wait_timeout(Duration::from_millis(50)).unwrap();
    assert_eq!(sem.value().unwrap(), 0);

    let name = support::unique_name("posixto");
    let _clean = cleanup(&[&name]);
    let p = PosixSemaphore::create(&name, 0).unwrap();
    assert!(matches!(p.try_wait(), Err(Error::WouldBlock)));
    assert!(matches!(
        p.wait_timeout(Duration::from_millis(50)),
        Err(Error::Timeout)
    ));
}

static SIGNALS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn on_alarm(_: libc::c_int) {
    SIGNALS.fetch_add(1, SeqCst);
}

/// In a child: a signal every millisecond aimed at this thread (handler
/// without SA_RESTART, so every blocking call sees EINTR); the waits must
/// neither fail early nor overrun.
fn signal_storm(posix_name: &str) {
    // SAFETY: plain libc calls with valid, zero-initialized structs; the
    // handler only touches an atomic (async-signal-safe).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        sa.sa_flags = 0; // no SA_RESTART
        assert_eq!(libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut()), 0);
        // A timer that signals *this* thread (setitimer's signal could land
        // on another thread of the test harness).
        let mut sev: libc::sigevent = std::mem::zeroed();
        sev.sigev_notify = libc::SIGEV_THREAD_ID;
        sev.sigev_signo = libc::SIGALRM;
        sev.sigev_notify_thread_id = libc::gettid();
        let mut timer: libc::timer_t = std::mem::zeroed();
        assert_eq!(
            libc::timer_create(libc::CLOCK_MONOTONIC, &mut sev, &mut timer),
            0
        );
        let ms = libc::timespec {
            tv_sec: 0,
            tv_nsec: 1_000_000,
        };
        let spec = libc::itimerspec {
            it_interval: ms,
            it_value: ms,
        };
        assert_eq!(
            libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()),
            0
        );
    }
    let sem = Semaphore::anonymous(0).unwrap();
    let posix = PosixSemaphore::open(posix_name).unwrap();
    for (what, r) in [
        ("wait_timeout", {
            let t = Instant::now();
            (sem.wait_timeout(Duration::from_millis(300)), t.elapsed())
        }),
        ("acquire_timeout", {
            let t = Instant::now();
            (
                sem.acquire_timeout(Duration::from_millis(300)).map(drop),
                t.elapsed(),
            )
        }),
        ("posix wait_timeout", {
            let t = Instant::now();
            (posix.wait_timeout(Duration::from_millis(300)), t.elapsed())
        }),
    ] {
        let (res, took) = r;
        assert!(matches!(res, Err(Error::Timeout)), "{what}: {res:?}");
        assert!(
            took >= Duration::from_millis(300),
            "{what} returned early: {took:?}"
        );
        assert!(took < Duration::from_secs(10), "{what} overran: {took:?}");
    }
    // A wait that a post ends, while signals keep coming.
    let sem2 = std::sync::Arc::new(sem);
    let s2 = sem2.clone();
    let poster = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        s2.post().unwrap();
    });
    sem2.wait().unwrap();
    poster.join().unwrap();
    let n = SIGNALS.load(SeqCst);
    println!("signals: {n}");
    assert!(n > 100, "only {n} signals arrived");
}

#[test]
fn waits_survive_a_signal_every_millisecond() {
    let name = support::unique_name("semsig");
    let _clean = cleanup(&[&name]);
    let _p = PosixSemaphore::create(&name, 0).unwrap();
    let mut c = KillOnDrop::spawn(support::child("semaphore::child", "signals", &name));
    assert!(c.wait_for(HANG).success());
}

#[test]
fn anonymous_semaphore_is_shared_with_a_child() {
    let sem = Semaphore::anonymous(0).unwrap();
    let fd = sem.inheritable_fd().unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "semaphore::child",
        "inherited",
        &fd.as_raw_fd().to_string(),
    ));
    drop(fd);
    sem.post().unwrap();
    assert!(c.wait_for(HANG).success());
    assert_eq!(sem.value().unwrap(), 3);
}

#[test]
fn names_modes_and_missing_objects_give_clear_errors() {
    for bad in ["", "a/b", ".."] {
        assert!(matches!(
            Semaphore::create(bad, 1),
            Err(Error::NameInvalid { .. })
        ));
        assert!(matches!(
            PosixSemaphore::create(bad, 1),
            Err(Error::NameInvalid { .. })
        ));
    }
    let missing = support::unique_name("missing");
    let e = Semaphore::open(&missing).unwrap_err();
    assert!(
        matches!(
            e,
            Error::NotFound {
                kind: "semaphore",
                ..
            }
        ),
        "{e}"
    );
    let e = PosixSemaphore::open(&missing).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(matches!(
        Semaphore::create(&missing, u32::MAX),
        Err(Error::InvalidArgument(_))
    ));

    let name = support::unique_name("semmode");
    let _clean = cleanup(&[&name]);
    let s = Semaphore::options().mode(0o640).create(&name, 1).unwrap();
    let mode = std::fs::metadata(format!("/dev/shm/ipcworks.sem.{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let e = Semaphore::open(&name).unwrap_err();
    assert!(e.to_string().contains("0640"), "{e}");
    assert!(Semaphore::options().mode(0o640).open(&name).is_ok());
    assert!(matches!(
        Semaphore::create(&name, 1),
        Err(Error::AlreadyExists {
            kind: "semaphore",
            ..
        })
    ));
    drop(s);
    assert!(!std::path::Path::new(&format!("/dev/shm/ipcworks.sem.{name}")).exists());

    let p = PosixSemaphore::options()
        .mode(0o640)
        .create(&name, 1)
        .unwrap();
    let mode = std::fs::metadata(format!("/dev/shm/sem.{name}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640, "exactly the mode asked for");
    let e = PosixSemaphore::open(&name).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(PosixSemaphore::options().mode(0o640).open(&name).is_ok());
    drop(p);
}

#[test]
fn squatted_names_are_refused() {
    let name = support::unique_name("squat");
    let target = support::unique_name("squat-target");
    let _clean = cleanup(&[&name, &target]);
    // Looser mode, pre-created by "someone".
    for file in [format!("ipcworks.sem.{name}"), format!("sem.{name}")] {
        let path = format!("/dev/shm/{file}");
        std::fs::write(&path, vec![0u8; 4096]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let e = Semaphore::open(&name).unwrap_err();
    assert!(
        matches!(e, Error::Refused { .. }) && e.to_string().contains("0666"),
        "{e}"
    );
    let e = PosixSemaphore::open(&name).unwrap_err();
    assert!(
        matches!(e, Error::Refused { .. }) && e.to_string().contains("0666"),
        "{e}"
    );
    // Right mode but not a semaphore (never initialized): refused, no hang.
    let path = format!("/dev/shm/ipcworks.sem.{name}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = Semaphore::open(&name).unwrap_err();
    assert!(e.to_string().contains("never initialized"), "{e}");
    std::fs::write(&path, vec![0x5Au8; 4096]).unwrap();
    let e = Semaphore::open(&name).unwrap_err();
    assert!(e.to_string().contains("not an ipcworks semaphore"), "{e}");
    // Symlinks.
    for file in [format!("ipcworks.sem.{name}"), format!("sem.{name}")] {
        std::fs::remove_file(format!("/dev/shm/{file}")).unwrap();
    }
    std::fs::write(format!("/dev/shm/{target}"), vec![0u8; 4096]).unwrap();
    for file in [format!("ipcworks.sem.{name}"), format!("sem.{name}")] {
        symlink(format!("/dev/shm/{target}"), format!("/dev/shm/{file}")).unwrap();
    }
    let e = Semaphore::open(&name).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
    let e = PosixSemaphore::open(&name).unwrap_err();
    assert!(e.to_string().contains("symbolic link"), "{e}");
}

const C_CLIENT: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    char name[300];
    snprintf(name, sizeof name, "/%s", argv[2]);
    sem_t *s;
    if (strcmp(argv[1], "create") == 0)
        s = sem_open(name, O_CREAT | O_EXCL, 0600, (unsigned)atoi(argv[3]));
    else
        s = sem_open(name, 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    if (strcmp(argv[1], "post3") == 0)
        for (int i = 0; i < 3; i++) if (sem_post(s)) { perror("sem_post"); return 1; }
    if (strcmp(argv[1], "take") == 0 && sem_trywait(s)) { perror("sem_trywait"); return 1; }
    int v = -1;
    if (sem_getvalue(s, &v)) { perror("sem_getvalue"); return 1; }
    printf("%d\n", v);
    sem_close(s);
    return 0;
}
"#;

/// Compiles the C client into a temporary directory (removed on drop).
fn c_client() -> (std::path::PathBuf, impl Drop) {
    struct Dir(std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(support::unique_name("cclient"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("client.c");
    std::fs::write(&src, C_CLIENT).unwrap();
    let exe = dir.join("client");
    let out = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-pthread")
        .output()
        .expect("cc (gcc) must be installed: .ci/run installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (exe, Dir(dir))
}

fn run_c(exe: &std::path::Path, args: &[&str]) -> i64 {
    let out = Command::new(exe).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn a_c_program_shares_the_posix_counter_both_ways() {
    require!(need::CC);
    let (exe, _dir) = c_client();
    let name = support::unique_name("csem");
    let _clean = cleanup(&[&name]);
    // We create, C posts 3 and reads the value, we agree.
    let ours = PosixSemaphore::create(&name, 0).unwrap();
    assert_eq!(run_c(&exe, &["post3", &name]), 3);
    assert_eq!(ours.value().unwrap(), 3);
    ours.wait().unwrap();
    assert_eq!(run_c(&exe, &["take", &name]), 1);
    assert_eq!(ours.value().unwrap(), 1);
    drop(ours);
    assert!(!std::path::Path::new(&format!("/dev/shm/sem.{name}")).exists());

    // C creates with 5, we open it, take one, post two; C reads 6.
    assert_eq!(run_c(&exe, &["create", &name, "5"]), 5);
    let theirs = PosixSemaphore::open(&name).unwrap();
    assert_eq!(theirs.value().unwrap(), 5);
    theirs.try_wait().unwrap();
    theirs.post().unwrap();
    theirs.post().unwrap();
    assert_eq!(run_c(&exe, &["value", &name]), 6);
    PosixSemaphore::remove(&name).unwrap();
}

#[test]
fn python_posix_ipc_shares_the_posix_counter() {
    require!(need::PYTHON_IPC);
    let name = support::unique_name("pysem");
    let _clean = cleanup(&[&name]);
    let ours = PosixSemaphore::create(&name, 1).unwrap();
    let script = format!(
        "import posix_ipc\ns = posix_ipc.Semaphore('/{name}')\ns.release()\ns.release()\nprint(s.value)\ns.close()"
    );
    let out = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert_eq!(ours.value().unwrap(), 3);
}

#[test]
fn open_or_create_persist_and_remove() {
    let name = support::unique_name("semooc");
    let _clean = cleanup(&[&name]);
    let (a, created) = Semaphore::open_or_create(&name, 4).unwrap();
    assert!(created);
    let (b, created) = Semaphore::open_or_create(&name, 9).unwrap();
    assert!(!created);
    assert_eq!(b.value().unwrap(), 4, "opened, not re-initialized");
    assert_eq!(b.name(), Some(name.as_str()));
    assert_eq!(a.max_holders(), 64);
    drop((a, b));
    assert!(matches!(
        Semaphore::open(&name),
        Err(Error::NotFound { .. })
    ));

    let mut p = Semaphore::options()
        .persist(true)
        .max_holders(5)
        .create(&name, 1)
        .unwrap();
    drop(Semaphore::binary(&name).unwrap_err());
    p.persist();
    drop(p);
    let again = Semaphore::open(&name).unwrap();
    assert_eq!(again.max_holders(), 5);
    assert_eq!(again.value().unwrap(), 1);
    Semaphore::remove(&name).unwrap();
    assert!(matches!(
        Semaphore::remove(&name),
        Err(Error::NotFound { .. })
    ));
}
