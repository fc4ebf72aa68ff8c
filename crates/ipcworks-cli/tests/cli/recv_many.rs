//! `ipcworks recv A B C…`: several endpoints at once (issue 20, item 4),
//! each command its own process: whatever arrives first, `--tag`, the
//! endpoint in `--json`, one endpoint ending while the others go on, `-n`
//! across all, and a sender killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{self, Cleanup, Guard, LIMIT, ipcworks, ok};

/// Removes shared-memory channels a test made, also on failure (the
/// receiver removes them itself when it ends normally).
struct Channels(Vec<String>);

impl Drop for Channels {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = std::fs::remove_file(format!("/dev/shm/ipcworks.chan.{n}"));
        }
    }
}

fn wait_for_channel(name: &str) {
    let path = format!("/dev/shm/ipcworks.chan.{name}");
    support::wait_until(|| Path::new(&path).exists());
}

fn sorted_lines(out: &[u8]) -> Vec<String> {
    let mut v: Vec<String> = String::from_utf8_lossy(out)
        .lines()
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// A native queue and a POSIX queue filled beforehand, and a channel whose
/// receiver this recv is: whatever arrives, each line tagged with its
/// endpoint, `-n` counting across all three (the fifth message stays).
#[test]
fn recv_from_three_kinds_prints_what_arrives_tagged_and_counts_across_all() {
    let mut c = Cleanup::default();
    let (q, m, s) = (
        support::unique("q"),
        support::unique("m"),
        support::unique("s"),
    );
    c.queue.push(q.clone());
    c.mq.push(m.clone());
    let _chans = Channels(vec![s.clone()]);
    let (qe, me, se) = (format!("queue:{q}"), format!("mq:{m}"), format!("shm:{s}"));
    ok(&["send", &qe, "q-low", "--priority", "1"], b"");
    ok(&["send", &qe, "q-high", "--priority", "5"], b"");
    ok(&["send", &me, "m-one"], b"");
    ok(&["send", &me, "m-two"], b"");
    let recv = Guard::spawn(ipcworks(&[
        "recv", &qe, &me, &se, "--tag", "-n", "5", "-t", "60",
    ]));
    wait_for_channel(&s);
    ok(&["send", &se, "s-one"], b"");
    let out = recv.finish();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(lines.lines().count(), 5, "-n 5 in all: {lines}");
    // The queue gives its highest priority first, the POSIX queue its
    // messages in order; whatever the interleaving.
    let pos = |l: &str| lines.lines().position(|x| x == l);
    assert!(
        pos(&format!("{qe}\tq-high")) < pos(&format!("{qe}\tq-low")),
        "{lines}"
    );
    assert!(
        pos(&format!("{me}\tm-one")) < pos(&format!("{me}\tm-two")),
        "{lines}"
    );
    assert_eq!(
        sorted_lines(&out.stdout),
        sorted_lines(
            format!("{qe}\tq-high\n{qe}\tq-low\n{me}\tm-one\n{me}\tm-two\n{se}\ts-one\n")
                .as_bytes()
        )
    );
}

/// With --json each record names its endpoint (and the queues' priority).
#[test]
fn recv_many_json_names_the_endpoint() {
    let mut c = Cleanup::default();
    let (a, b) = (support::unique("ja"), support::unique("jb"));
    c.queue.push(a.clone());
    c.queue.push(b.clone());
    let (ae, be) = (format!("queue:{a}"), format!("queue:{b}"));
    ok(&["send", &ae, "from a", "--priority", "2"], b"");
    ok(&["send", &be, "from b", "--priority", "3"], b"");
    let out = ok(&["recv", &ae, &be, "--json", "-n", "2", "-t", "30"], b"");
    let mut got: Vec<(String, String, u64)> = String::from_utf8_lossy(&out)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("a JSON record");
            (
                v["endpoint"].as_str().unwrap().to_string(),
                v["payload"].as_str().unwrap().to_string(),
                v["priority"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [(ae, "from a".to_string(), 2), (be, "from b".to_string(), 3)]
    );
}

/// Two channels: the first one's sender ends, recv goes on with the
/// second, and ends (status 0) when that one's sender has ended too.
#[test]
fn one_endpoint_ending_lets_the_others_go_on() {
    let (a, b) = (support::unique("ea"), support::unique("eb"));
    let _chans = Channels(vec![a.clone(), b.clone()]);
    let (ae, be) = (format!("shm:{a}"), format!("shm:{b}"));
    let mut recv = Guard::spawn(ipcworks(&["recv", &ae, &be, "--tag", "-t", "60"]));
    wait_for_channel(&a);
    wait_for_channel(&b);
    ok(&["send", &ae, "x"], b"");
    // The first endpoint has ended; recv waits on for the second.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        recv.child().try_wait().unwrap().is_none(),
        "recv ended with one endpoint left"
    );
    ok(&["send", &be, "y"], b"");
    let out = recv.finish();
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{ae}\tx\n{be}\ty\n")
    );
    // The receiver removed the channels it made.
    assert!(!Path::new(&format!("/dev/shm/ipcworks.chan.{a}")).exists());
}

/// A sender killed with SIGKILL ends its endpoint at once (its pidfd):
/// recv goes on with the other, then ends when that one does.
#[test]
fn a_sender_killed_with_sigkill_ends_its_endpoint_at_once() {
    let (a, b) = (support::unique("ka"), support::unique("kb"));
    let _chans = Channels(vec![a.clone(), b.clone()]);
    let (ae, be) = (format!("shm:{a}"), format!("shm:{b}"));
    let mut recv = ipcworks(&["recv", &ae, &be, "--tag", "-t", "60"]);
    let mut recv = Guard::spawn({
        recv.stdout(std::process::Stdio::piped());
        recv
    });
    wait_for_channel(&a);
    wait_for_channel(&b);
    // A sender that sends one line, then waits on its stdin (a pipe we
    // keep open) until killed.
    let mut send = ipcworks(&["send", &ae]);
    send.stdin(std::process::Stdio::piped());
    let mut sender = Guard::spawn(send);
    let mut stdin = sender.child().stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"before the kill\n").unwrap();
    let out = recv.child().stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    assert_eq!(
        lines.next().unwrap().unwrap(),
        format!("{ae}\tbefore the kill")
    );
    let killed = Instant::now();
    sender.child().kill().unwrap();
    sender.child().wait().unwrap();
    // Endpoint a has ended; b still has its receiver waiting.
    ok(&["send", &be, "after"], b"");
    assert_eq!(lines.next().unwrap().unwrap(), format!("{be}\tafter"));
    let st = recv.child().wait().unwrap();
    assert!(st.success(), "recv: {st:?}");
    assert!(killed.elapsed() < LIMIT);
    drop(stdin);
}
