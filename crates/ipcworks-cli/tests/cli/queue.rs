//! `ipcworks send/recv/ls/rm queue:NAME` run as a user would: every command
//! is its own process, and the named queue persists between them.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

fn name(what: &str) -> String {
    format!("ipcworks-test-cli-{}-{what}", std::process::id())
}

/// Removes the queue's segment, also on panic.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/ipcworks.queue.{}", self.0));
    }
}

fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn messages_sent_by_one_command_wait_for_a_recv_run_later_highest_priority_first() {
    let n = name("prio");
    let _c = Cleanup(n.clone());
    let ep = format!("queue:{n}");
    for (m, p) in [("a", "1"), ("b", "5"), ("c", "3"), ("d", "5")] {
        ok(&["send", &ep, m, "--priority", p]);
    }
    let path = format!("/dev/shm/ipcworks.queue.{n}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(ok(&["ls"]).contains(&ep), "ls lists the queue");
    assert_eq!(
        ok(&["recv", &ep, "--count", "4", "--timeout", "10"]),
        "b\nd\nc\na\n"
    );
    // Empty now: a receive times out with the timeout exit code.
    let out = run(&["recv", &ep, "--timeout", "0.2"]);
    assert_eq!(out.status.code(), Some(124));
    ok(&["rm", &ep]);
    assert!(!std::path::Path::new(&path).exists());
}
