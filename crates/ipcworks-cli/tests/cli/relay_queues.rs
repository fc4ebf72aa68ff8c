//! `ipcworks relay` between the message queues and the shared-memory
//! channel: priorities carried across, nothing left behind.

use ipcworks_test_support::{have_part, need};
use std::process::{Command, Stdio};
use std::time::Duration;

fn ipcworks() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ipcworks"))
}

/// Removes the test's queues and channel, also when an assertion fails.
struct Cleanup {
    mq: String,
    queue: String,
    chan: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = ipcworks::mq::posix::Queue::remove(&self.mq);
        let _ = ipcworks::queue::Queue::remove(&self.queue);
        let _ = ipcworks::shm::Segment::remove(&format!("ipcworks.chan.{}", self.chan));
    }
}

/// What `ipcworks ls --json` says `address` holds: (bytes, messages).
fn queued(address: &str) -> (Option<u64>, Option<u64>) {
    let out = ipcworks().args(["ls", "--json"]).output().unwrap();
    assert!(out.status.success());
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let o = all
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["address"] == address)
        .unwrap_or_else(|| panic!("ls does not list {address}"));
    (o["bytes"].as_u64(), o["messages"].as_u64())
}

#[test]
fn mq_to_native_queue_to_shm_channel_keeps_priority_order() {
    // ls lists POSIX queues only with /dev/mqueue mounted; the relay itself
    // runs without.
    let mq_listed = have_part("ls counts what waits in the POSIX queue", &[need::MQUEUE]);
    let pid = std::process::id();
    let c = Cleanup {
        mq: format!("ipcworks-test-relay-mq-{pid}"),
        queue: format!("ipcworks-test-relay-q-{pid}"),
        chan: format!("ipcworks-test-relay-chan-{pid}"),
    };
    // Three messages wait in a POSIX queue, in priority order 1, 9, 5.
    for (msg, prio) in [("low", "1"), ("high", "9"), ("mid", "5")] {
        let st = ipcworks()
            .args(["send", &format!("mq:{}", c.mq), msg, "--priority", prio])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let (mq, queue) = (format!("mq:{}", c.mq), format!("queue:{}", c.queue));
    if mq_listed {
        assert_eq!(
            queued(&mq),
            (Some(10), Some(3)),
            "ls counts what waits in mq"
        );
    }
    // mq → native queue: the kernel hands them out by priority, and the
    // priorities travel along.
    let st = ipcworks()
        .args([
            "relay",
            &format!("mq:{}", c.mq),
            &format!("queue:{}", c.queue),
            "--count",
            "3",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    if mq_listed {
        assert_eq!(queued(&mq), (Some(0), Some(0)));
    }
    assert_eq!(
        queued(&queue),
        (Some(10), Some(3)),
        "and in the native queue"
    );
    // A receiver on the channel (it creates it), then queue → channel.
    let rx = ipcworks()
        .args([
            "recv",
            &format!("shm:{}", c.chan),
            "--count",
            "3",
            "--timeout",
            "20",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let chan_file = format!("/dev/shm/ipcworks.chan.{}", c.chan);
    let start = std::time::Instant::now();
    while !std::path::Path::new(&chan_file).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "receiver never created the channel"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let st = ipcworks()
        .args([
            "relay",
            &format!("queue:{}", c.queue),
            &format!("shm:{}", c.chan),
            "--count",
            "3",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = rx.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "high\nmid\nlow\n");
    // The receiver created the channel and removed it.
    assert!(!std::path::Path::new(&chan_file).exists());
}

/// `relay queue:A queue:B` killed (SIGKILL, at its abort points right
/// after it took a message and right after B accepted it) loses nothing
/// and duplicates nothing: the next relay moves all three messages once,
/// in priority order, and A is left empty. `relay --help` says what a
/// kernel queue source can lose, and that queue to queue is exactly once.
#[test]
fn native_queue_relay_killed_after_taking_a_message_loses_nothing() {
    use std::os::unix::process::ExitStatusExt;
    let pid = std::process::id();
    let (a, b) = (
        format!("ipcworks-test-relay-ka-{pid}"),
        format!("ipcworks-test-relay-kb-{pid}"),
    );
    let _c = Cleanup {
        mq: String::new(),
        queue: a.clone(),
        chan: String::new(),
    };
    let _d = Cleanup {
        mq: String::new(),
        queue: b.clone(),
        chan: String::new(),
    };
    let (qa, qb) = (format!("queue:{a}"), format!("queue:{b}"));
    for (msg, prio) in [("low", "1"), ("high", "9"), ("mid", "5")] {
        let st = ipcworks()
            .args(["send", &qa, msg, "--priority", prio])
            .status()
            .unwrap();
        assert!(st.success());
    }
    let back = "1 message(s) a killed process had taken from";
    for (point, told) in [("relay-received:1", false), ("relay-sent:1", true)] {
        let out = ipcworks()
            .args(["relay", &qa, &qb])
            .env("IPCWORKS_ABORT_AT", point)
            .output()
            .unwrap();
        assert_eq!(out.status.signal(), Some(9), "{point}: {out:?}");
        // The relay after a killed one says it took its message back.
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.contains(back), told, "{point}: {err}");
    }
    let out = ipcworks()
        .args(["relay", &qa, &qb, "-n", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(back));
    let out = ipcworks()
        .args(["recv", &qb, "-n", "4", "-t", "1"])
        .output()
        .unwrap();
    // The kill after the send left "high" in both A and B; B remembered
    // its id and refused it when the next relay sent it again: once.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "high\nmid\nlow\n");
    assert_eq!(queued(&qa), (Some(0), Some(0)), "A is empty");
    assert_eq!(queued(&qb), (Some(0), Some(0)), "nothing more in B");
    let help = ipcworks().args(["relay", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("CAN BE LOST"), "{help}");
    assert!(help.contains("EXACTLY ONCE"), "{help}");
}
