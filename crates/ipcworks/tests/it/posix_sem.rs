//! POSIX named semaphores against a hostile file at `/dev/shm/sem.NAME`:
//! empty, short, scribbled before or after opening. Each case runs in a
//! child process, so a crash (SIGBUS, glibc's abort) fails the test by its
//! signal instead of taking the test binary down. Errors, never a crash.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use ipcworks::Error;
use ipcworks::sync::PosixSemaphore;

use crate::support::{self, KillOnDrop, ShmCleanup};

const HANG: Duration = Duration::from_secs(30);

/// glibc's `sem_t` on 64-bit Linux: a 64-bit word holding the value (low
/// half) and the waiter count (high half), then the futex flag `private`
/// (128, `FUTEX_PRIVATE_FLAG`, for a process-shared semaphore), in 32
/// bytes.
const SEM_SIZE: usize = 32;

fn sem_bytes(value: u32, waiters: u32, private: i32) -> Vec<u8> {
    let mut b = vec![0u8; SEM_SIZE];
    b[..8].copy_from_slice(&(u64::from(waiters) << 32 | u64::from(value)).to_ne_bytes());
    b[8..12].copy_from_slice(&private.to_ne_bytes());
    b
}

/// Every operation on an opened semaphore; each must fail with
/// `Corrupted`, none may crash, hang or succeed.
fn every_op_is_refused(s: &PosixSemaphore) {
    let results = [
        ("value", s.value().map(drop)),
        ("post", s.post()),
        ("try_wait", s.try_wait()),
        ("wait_timeout", s.wait_timeout(Duration::from_millis(10))),
        ("wait", s.wait()),
    ];
    for (op, r) in results {
        match r {
            Err(Error::Corrupted { .. }) => {}
            other => panic!("{op}: expected Corrupted, got {other:?}"),
        }
    }
}

#[test]
fn child() {
    support::as_child!(|role, name| {
        match role {
            // The file is bad before we open it: refused at open, or (if it
            // looks right at open) at every operation.
            "open-bad" => match PosixSemaphore::open(&name) {
                Err(e) => assert!(matches!(e, Error::Corrupted { .. }), "{e}"),
                Ok(s) => every_op_is_refused(&s),
            },
            // A good semaphore, scribbled by a "peer" once open: value and
            // waiter count all ones, the futex flag garbage (glibc aborts on
            // the futex error that flag causes).
            "scribble-after-open" => {
                let s = PosixSemaphore::open(&name).unwrap();
                s.post().unwrap();
                assert_eq!(s.value().unwrap(), 2);
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(format!("/dev/shm/sem.{name}"))
                    .unwrap();
                f.write_all_at(&[0x5A; SEM_SIZE], 0).unwrap();
                every_op_is_refused(&s);
                // Repaired by the peer: usable again.
                f.write_all_at(&sem_bytes(1, 0, 128), 0).unwrap();
                s.try_wait().unwrap();
                assert_eq!(s.value().unwrap(), 0);
            }
            other => support::unknown_role(other),
        }
    });
}

/// Runs `role` on semaphore `name` in a child; fails naming the signal if
/// the child crashed.
fn in_child(role: &str, name: &str) {
    let mut c = KillOnDrop::spawn(support::child("posix_sem::child", role, name));
    let st = c.wait_for(HANG);
    assert!(
        st.success(),
        "{role} on {name}: the child {}",
        match st.signal() {
            Some(libc::SIGBUS) => "died of SIGBUS".to_string(),
            Some(libc::SIGABRT) => "aborted (SIGABRT)".to_string(),
            Some(s) => format!("died of signal {s}"),
            None => format!("exited with {st}"),
        }
    );
}

/// Writes `/dev/shm/sem.NAME` with `bytes`, mode 0600, owned by us: a file
/// that passes every check on name, owner and mode.
fn plant(name: &str, bytes: &[u8]) {
    let path = format!("/dev/shm/sem.{name}");
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Issue 17 item 2: an empty file made glibc's `sem_open` map 32 bytes of
/// nothing and the first operation die of SIGBUS; a short one likewise.
#[test]
fn an_empty_or_short_semaphore_file_is_an_error_not_sigbus() {
    for len in [0, 16, SEM_SIZE - 1] {
        let name = support::unique_name("posix-short");
        let _clean = ShmCleanup(vec![format!("sem.{name}")]);
        plant(&name, &vec![0u8; len]);
        in_child("open-bad", &name);
    }
}

/// Issue 17 item 2: scribbled fields (garbage everywhere; only the futex
/// flag wrong; a value above SEM_VALUE_MAX) are refused with `Corrupted`
/// before glibc sees them, where glibc would abort ("The futex facility
/// returned an unexpected error code") or misreport the value.
#[test]
fn a_scribbled_semaphore_is_refused_before_glibc_aborts() {
    for bytes in [
        vec![0x5A; SEM_SIZE],
        sem_bytes(1, 1, 0x5A5A_5A5A),
        sem_bytes(0x8000_0000, 0, 128),
    ] {
        let name = support::unique_name("posix-scribbled");
        let _clean = ShmCleanup(vec![format!("sem.{name}")]);
        plant(&name, &bytes);
        in_child("open-bad", &name);
    }
}

/// Issue 17 item 2: scribbled while open, every call is refused, none
/// aborts; once repaired it works again.
#[test]
fn a_semaphore_scribbled_while_open_is_refused_at_every_call() {
    let name = support::unique_name("posix-later");
    let _clean = ShmCleanup(vec![format!("sem.{name}")]);
    let mut s = PosixSemaphore::create(&name, 1).unwrap();
    s.persist();
    in_child("scribble-after-open", &name);
}

/// Creation as glibc's `sem_open` does it: under a temporary name, then
/// linked into place; the temporary name is gone (one link), and a taken
/// name is `AlreadyExists`, the file there untouched.
#[test]
fn creation_links_a_whole_semaphore_and_never_replaces_one() {
    use std::os::unix::fs::MetadataExt;
    let name = support::unique_name("posix-create");
    let _clean = ShmCleanup(vec![format!("sem.{name}")]);
    let s = PosixSemaphore::create(&name, 3).unwrap();
    let md = std::fs::symlink_metadata(format!("/dev/shm/sem.{name}")).unwrap();
    assert_eq!(md.nlink(), 1, "the temporary name was left behind");
    assert_eq!(md.len(), SEM_SIZE as u64);
    assert_eq!(md.mode() & 0o777, 0o600);
    assert_eq!(s.value().unwrap(), 3);
    drop(s);

    let planted = sem_bytes(7, 0, 128);
    plant(&name, &planted);
    match PosixSemaphore::create(&name, 1) {
        Err(Error::AlreadyExists { .. }) => {}
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        std::fs::read(format!("/dev/shm/sem.{name}")).unwrap(),
        planted
    );
    assert_eq!(PosixSemaphore::open(&name).unwrap().value().unwrap(), 7);
}
