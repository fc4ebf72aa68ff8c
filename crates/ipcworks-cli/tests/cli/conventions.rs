//! `send`/`recv`/`serve`/`relay` behave like the tools beside them (`nc`,
//! `socat`, `mkfifo`, Python's `sysv_ipc`), and their errors read right:
//! negative System V types, short flags, port 0, no queue made by a typo,
//! the OS error once, a FIFO that cannot be created.

use crate::support;

use std::process::{Command, Stdio};

use ipcworks_test_support::{need, require};
use serde_json::Value;
use support::*;

fn json_lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn recv_type_minus_3_takes_the_lowest_type_up_to_3_first_as_msgrcv_does() {
    require!(need::PYTHON_IPC);
    let mut c = Cleanup::default();
    let key = unique_key();
    c.sysv.push(key);
    python(
        "import sys, sysv_ipc\n\
         q = sysv_ipc.MessageQueue(int(sys.argv[1]), sysv_ipc.IPC_CREX, 0o600)\n\
         for t, m in [(5, b'e'), (2, b'b'), (9, b'i'), (3, b'c'), (1, b'a')]:\n\
         \x20   q.send(m, type=t)\n",
        &[&key.to_string()],
    );
    let ep = format!("sysv:{key}");
    let got = json_lines(&ok(
        &["recv", &ep, "--type", "-3", "--json", "-n", "3", "-t", "30"],
        b"",
    ));
    let got: Vec<(i64, &str)> = got
        .iter()
        .map(|v| (v["type"].as_i64().unwrap(), v["payload"].as_str().unwrap()))
        .collect();
    assert_eq!(got, [(1, "a"), (2, "b"), (3, "c")]);
    // Nothing of type 3 or less is left: the wait runs out (exit 124).
    let out = run(&["recv", &ep, "--type=-3", "-t", "200ms"], b"");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    // Types 5 and 9 are still there for a positive selection.
    assert_eq!(
        ok(&["recv", &ep, "--type", "9", "-n", "1", "-t", "30"], b""),
        b"i\n"
    );
}

#[test]
fn short_flags_n_t_p_on_send_recv_and_relay() {
    let mut c = Cleanup::default();
    let (a, b) = (unique("short-a"), unique("short-b"));
    c.queue.extend([a.clone(), b.clone()]);
    let (a, b) = (format!("queue:{a}"), format!("queue:{b}"));
    ok(&["send", "-p", "2", &a, "low"], b"");
    ok(&["send", &a, "-p", "7", "high"], b"");
    ok(&["send", &a, "--priority", "4", "mid"], b"");
    ok(&["relay", &a, &b, "-n", "2"], b"");
    let got = json_lines(&ok(&["recv", &b, "--json", "-n", "2", "-t", "30"], b""));
    let got: Vec<(i64, &str)> = got
        .iter()
        .map(|v| {
            (
                v["priority"].as_i64().unwrap(),
                v["payload"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(7, "high"), (4, "mid")],
        "relay carried the priorities"
    );
    let out = run(&["recv", &b, "-t", "200ms"], b"");
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert_eq!(ok(&["recv", &a, "-n", "1", "-t", "2s"], b""), b"low\n");
}

#[test]
fn recv_and_serve_on_port_0_print_the_bound_address_for_nc() {
    require!(need::NC);
    // recv: the first stderr line names the real port; nc sends to it.
    let mut g = Guard::spawn(ipcworks(&[
        "recv",
        "tcp:127.0.0.1:0",
        "--count",
        "1",
        "--timeout",
        "30",
    ]));
    let line = first_line(g.child().stderr.as_mut().unwrap());
    let addr = line
        .strip_prefix("ipcworks recv: listening on tcp:")
        .unwrap_or_else(|| panic!("recv's first stderr line: {line:?}"));
    let port: u16 = addr
        .strip_prefix("127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_ne!(port, 0);
    let nc = Command::new("sh")
        .args(["-c", &format!("echo hello | nc -N 127.0.0.1 {port}")])
        .status()
        .unwrap();
    assert!(nc.success());
    let out = g.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout, b"hello\n");

    // serve says it the same way.
    let mut g = Guard::spawn(ipcworks(&["serve", "tcp:127.0.0.1:0", "--echo"]));
    let line = first_line(g.child().stderr.as_mut().unwrap());
    let port: u16 = line
        .strip_prefix("ipcworks serve: listening on tcp:127.0.0.1:")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("serve's first stderr line: {line:?}"));
    assert_ne!(port, 0);
    let nc = Command::new("sh")
        .args(["-c", &format!("echo ping | nc -N 127.0.0.1 {port}")])
        .output()
        .unwrap();
    assert_eq!(nc.stdout, b"ping\n");
}

#[test]
fn recv_on_a_missing_queue_fails_unless_create_and_leaves_nothing_behind() {
    let mut c = Cleanup::default();
    let (mq, q) = (unique("typo-mq"), unique("typo-q"));
    let key = unique_key();
    c.mq.push(mq.clone());
    c.queue.push(q.clone());
    c.sysv.push(key);
    let exists = |ep: &str| -> bool {
        match ep.split_once(':').unwrap() {
            ("mq", n) => ipcworks::mq::posix::Queue::open(n).is_ok(),
            ("queue", n) => ipcworks::queue::Queue::open(n).is_ok(),
            (_, k) => ipcworks::mq::sysv::Queue::open(k.parse().unwrap()).is_ok(),
        }
    };
    for ep in [
        format!("mq:{mq}"),
        format!("queue:{q}"),
        format!("sysv:{key}"),
    ] {
        let out = run(&["recv", &ep, "--timeout", "200ms"], b"");
        assert_eq!(out.status.code(), Some(1), "{ep}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("does not exist") && err.contains("--create"),
            "{ep}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!exists(&ep), "{ep}: a failed recv left a queue behind");
        // --create makes it (and it persists, as queues do).
        let out = run(&["recv", &ep, "--create", "--timeout", "200ms"], b"");
        assert_eq!(out.status.code(), Some(124), "{ep}: {}", stderr(&out));
        assert!(exists(&ep), "{ep}: --create made it");
    }
    // send still creates, as its help says.
    let fresh = unique("send-creates");
    c.queue.push(fresh.clone());
    ok(&["send", &format!("queue:{fresh}"), "first"], b"");
    assert_eq!(
        ok(
            &[
                "recv",
                &format!("queue:{fresh}"),
                "--count",
                "1",
                "--timeout",
                "30"
            ],
            b""
        ),
        b"first\n"
    );
    let help = String::from_utf8(ok(&["send", "--help"], b"")).unwrap();
    assert!(help.contains("creates"), "{help}");
    let help = String::from_utf8(ok(&["recv", "--help"], b"")).unwrap();
    assert!(help.contains("--create"), "{help}");
}

#[test]
fn a_refused_connection_names_the_os_error_once_as_nc_does() {
    require!(need::NC);
    // A port nobody listens on.
    let refused = ipcworks_test_support::RefusedPort::new();
    let port = refused.port();
    let out = run(&["send", &format!("tcp:127.0.0.1:{port}"), "hi"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(err.matches("Connection refused").count(), 1, "{err}");
    assert_eq!(err.matches("os error").count(), 1, "{err}");
    // nc -v says the same thing.
    let nc = Command::new("nc")
        .args(["-v", "-N", "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!nc.status.success());
    assert!(
        String::from_utf8_lossy(&nc.stderr).contains("Connection refused"),
        "{}",
        String::from_utf8_lossy(&nc.stderr)
    );
}

#[test]
fn recv_on_a_fifo_that_cannot_be_created_says_so_and_why_as_mkfifo_does() {
    let missing_dir = std::env::temp_dir().join(unique("no-such-dir"));
    let file = std::env::temp_dir().join(unique("a-file"));
    std::fs::write(&file, b"").unwrap();
    let mut c = Cleanup::default();
    c.paths.push(file.clone());
    for (path, why) in [
        (missing_dir.join("f"), "No such file or directory"),
        (file.join("f"), "Not a directory"),
    ] {
        // mkfifo(1) on the path: "cannot create fifo 'PATH': WHY".
        let mk = Command::new("mkfifo").arg(&path).output().unwrap();
        assert!(!mk.status.success());
        let mk_err = String::from_utf8_lossy(&mk.stderr);
        assert!(
            mk_err.contains("cannot create fifo") && mk_err.contains(why),
            "{mk_err}"
        );
        // recv says the same.
        let out = run(
            &[
                "recv",
                &format!("fifo:{}", path.display()),
                "--timeout",
                "5",
            ],
            b"",
        );
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!(
                "cannot create FIFO {:?}: {why}",
                path.display().to_string()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!path.exists());
    }
}
