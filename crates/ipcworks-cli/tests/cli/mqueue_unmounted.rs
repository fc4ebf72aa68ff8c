//! POSIX message queues where `/dev/mqueue` is not mounted: run as root in a
//! private mount namespace (`unshare -m`) whose `/dev/mqueue` the test
//! unmounts. `ls` says in one line (stderr) that POSIX queues cannot be
//! listed and how to mount them, `rm mq:NAME` removes by name (`mq_unlink`),
//! another user's queue still needs `--force`, and the registry keeps its
//! entries (it cannot tell that they are gone).

use crate::common;

use std::os::unix::process::CommandExt;
use std::process::Command;

use common::{Registry, output};
use ipcworks_test_support::{need, require};

/// Unmounts every `/dev/mqueue` of the new mount namespace, then runs the
/// command given after it; exits 99 if the mount would not go.
const UNMOUNTED: &str = "while umount /dev/mqueue 2>/dev/null; do :; done
if grep -qs ' /dev/mqueue ' /proc/self/mountinfo; then echo 'still mounted' >&2; exit 99; fi
exec \"$@\"";

/// `ipcworks ARGS` in a mount namespace without `/dev/mqueue` mounted.
fn unmounted(reg: &Registry, args: &[&str]) -> (i32, String, String) {
    let mut c = Command::new("unshare");
    c.args([
        "-m",
        "sh",
        "-c",
        UNMOUNTED,
        "sh",
        env!("CARGO_BIN_EXE_ipcworks"),
    ])
    .args(args)
    .env("IPCWORKS_REGISTRY", &reg.0);
    let r = output(&mut c);
    assert_ne!(r.0, 99, "could not unmount /dev/mqueue: {}", r.2);
    r
}

/// Removes the test's queue, also when an assertion fails.
struct Queue(String);

impl Drop for Queue {
    fn drop(&mut self) {
        let _ = ipcworks::mq::posix::Queue::remove(&self.0);
    }
}

/// Whether the queue exists (opening another user's is refused, which
/// says it exists as well).
fn exists(name: &str) -> bool {
    !matches!(
        ipcworks::mq::posix::Queue::open(name),
        Err(ipcworks::Error::NotFound { .. })
    )
}

fn registry_len(reg: &Registry) -> usize {
    std::fs::read_dir(&reg.0).unwrap().count()
}

#[test]
fn ls_says_queues_cannot_be_listed_and_rm_removes_them_by_name() {
    require!(need::ROOT, need::UNSHARE);
    let reg = Registry::new("unmounted");
    let q = Queue(format!("ipcworks-test-unmounted-{}", std::process::id()));
    let addr = format!("mq:{}", q.0);
    let (code, _, err) = reg.run(&["send", &addr, "hello"]);
    assert_eq!(code, 0, "{err}");
    assert!(exists(&q.0));
    assert_eq!(registry_len(&reg), 1, "send recorded the queue it created");

    let (code, out, err) = unmounted(&reg, &["ls"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains(&addr), "{out}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("POSIX") && err.contains("mount -t mqueue none /dev/mqueue"),
        "{err}"
    );
    // JSON on stdout stays clean; the note goes to stderr all the same.
    let (code, out, err) = unmounted(&reg, &["ls", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        !v.as_array()
            .unwrap()
            .iter()
            .any(|o| o["address"] == addr.as_str())
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // Asked for other kinds only, ls has nothing to say about queues.
    let (code, _, err) = unmounted(&reg, &["ls", "--kind", "sysv"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    // ls cannot see the queue, so it must not forget its registry entry.
    assert_eq!(registry_len(&reg), 1, "ls pruned an entry it cannot check");

    // rm finds and removes it by name.
    let (code, out, err) = unmounted(&reg, &["rm", &addr]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), format!("removed {addr}"));
    assert!(!exists(&q.0), "the queue is gone");
    assert_eq!(registry_len(&reg), 0, "and its registry entry");
    let (code, _, err) = unmounted(&reg, &["rm", &addr]);
    assert_eq!(code, 1);
    assert!(err.contains(&format!("\"{addr}\" does not exist")), "{err}");
    // A name no queue can have is not found either (mq_open would say
    // EACCES).
    let (code, _, err) = unmounted(&reg, &["rm", "mq:a/b"]);
    assert_eq!(code, 1);
    assert!(err.contains("\"mq:a/b\" does not exist"), "{err}");
}

#[test]
fn another_users_queue_is_removed_by_name_only_with_force() {
    require!(need::ROOT, need::UNSHARE);
    let reg = Registry::new("unmounted-owner");
    let q = Queue(format!(
        "ipcworks-test-unmounted-nobody-{}",
        std::process::id()
    ));
    let addr = format!("mq:{}", q.0);
    // nobody makes the queue (its registry would be ours: it records
    // nothing, as a registry it does not own is refused).
    let (code, _, err) = output(
        Command::new(env!("CARGO_BIN_EXE_ipcworks"))
            .args(["send", &addr, "theirs"])
            .env("IPCWORKS_REGISTRY", &reg.0)
            .current_dir("/")
            .uid(65534)
            .gid(65534),
    );
    assert_eq!(code, 0, "{err}");
    assert!(exists(&q.0));

    let (code, _, err) = unmounted(&reg, &["rm", &addr]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("owned by uid 65534") && err.contains("--force"),
        "{err}"
    );
    assert!(exists(&q.0), "removed without --force");
    let (code, out, err) = unmounted(&reg, &["rm", "--force", &addr]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!exists(&q.0));
}
