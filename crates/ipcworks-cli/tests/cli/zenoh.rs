//! `zenoh:` endpoints from the command line (feature `zenoh`): a Zenoh
//! program that is not ours (the eclipse-zenoh Python package) publishing
//! to `recv` and subscribing to `send`, 1,000 messages each way; relays in
//! and out with priorities kept; every bad input a one-line error with its
//! exit code, and nothing taken from a source queue lost; and, under
//! strace, no address but loopback ever used.
//!
//! Every Zenoh session here — ours and Python's — listens and connects on
//! explicit `tcp/127.0.0.1` endpoints with multicast scouting and gossip
//! off; listeners take port 0 and report the port the kernel chose.

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use crate::support::{BIN, Cleanup, Guard, first_line, spawn_with_input, stderr, unique};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ipcworks_test_support::{need, require};

/// A Zenoh peer in Python: `pub ENDPOINT KEY N` connects to ENDPOINT,
/// waits until a subscriber matches and puts N samples (odd ones with an
/// ipcworks attachment, written with `struct` as the README says);
/// `sub ENDPOINT KEY N` listens on ENDPOINT, prints `ready`, then
/// one line per sample: the payload in hex and the attachment's priority
/// and type (`-` without one).
const PEER: &str = r#"
import json, struct, sys, time, zenoh
mode, endpoint, key, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("scouting/multicast/enabled", "false")
conf.insert_json5("scouting/gossip/enabled", "false")
if mode == "pub":
    conf.insert_json5("listen/endpoints", "[]")
    conf.insert_json5("connect/endpoints", json.dumps([endpoint]))
else:
    conf.insert_json5("listen/endpoints", json.dumps([endpoint]))
    conf.insert_json5("connect/endpoints", "[]")
with zenoh.open(conf) as s:
    if mode == "pub":
        pub = s.declare_publisher(key, congestion_control=zenoh.CongestionControl.BLOCK)
        end = time.monotonic() + 60
        while not pub.matching_status:
            if time.monotonic() > end:
                sys.exit("no subscriber matched")
            time.sleep(0.01)
        for i in range(n):
            att = struct.pack("<4sBBIq", b"IPCW", 1, 0, i % 7, -i) if i % 2 else None
            pub.put(b"py %d \xff" % i, attachment=att)
    else:
        sub = s.declare_subscriber(key)
        print("ready", flush=True)
        for i in range(n):
            smp = sub.recv()
            att = smp.attachment
            if att is None:
                meta = "-"
            else:
                magic, ver, flags, prio, typ = struct.unpack_from("<4sBBIq", att.to_bytes())
                assert magic == b"IPCW" and ver == 1, (magic, ver)
                meta = "%d %d" % (prio, typ)
            print(smp.payload.to_bytes().hex(), meta, flush=True)
"#;

/// `ipcworks ARGS…` with nothing on stdin, outputs piped, and no
/// `ZENOH_CONFIG` from the caller's environment.
fn ipcworks(args: &[&str]) -> Command {
    let mut c = crate::support::ipcworks(args);
    c.env_remove("ZENOH_CONFIG");
    c
}

fn python_peer(args: &[&str]) -> Command {
    let mut c = Command::new("python3");
    c.arg("-c")
        .arg(PEER)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// A key expression of this test's own.
fn key(what: &str) -> String {
    format!("cli/{}", unique(what))
}

/// Starts a `recv`/`relay` listening on `tcp/127.0.0.1:0` and returns it
/// with the locator its first stderr line reports.
fn listening(args: &[&str]) -> (Guard, String) {
    let mut g = Guard::spawn(ipcworks(args));
    let line = first_line(g.child().stderr.as_mut().unwrap());
    assert!(line.contains(": subscribed to zenoh:"), "{line}");
    let at = line
        .rsplit("listening on ")
        .next()
        .filter(|a| a.starts_with("tcp/127.0.0.1:"))
        .unwrap_or_else(|| panic!("no locator in {line:?}"))
        .to_string();
    (g, at)
}

fn succeeded(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what}: {:?}: {}",
        out.status,
        stderr(out)
    );
}

/// The zenoh version in Cargo.lock.
fn locked_zenoh_version() -> String {
    let lock = include_str!("../../../../Cargo.lock");
    let at = lock
        .find("\nname = \"zenoh\"\nversion = \"")
        .expect("zenoh in Cargo.lock");
    let rest = &lock[at + "\nname = \"zenoh\"\nversion = \"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

#[test]
fn the_python_peer_is_the_zenoh_version_in_cargo_lock() {
    let want = locked_zenoh_version();
    let ipcworks_test_support::Need::Python { install, .. } = need::PYTHON_ZENOH else {
        panic!("need::PYTHON_ZENOH is not a Python need");
    };
    assert!(
        install.ends_with(&format!("eclipse-zenoh=={want}")),
        "need::PYTHON_ZENOH installs {install:?}, Cargo.lock has zenoh {want}"
    );
    require!(need::PYTHON_ZENOH);
    let out = Command::new("python3")
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('eclipse-zenoh'))",
        ])
        .output()
        .unwrap();
    succeeded("python3", &out);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        want,
        "the Python peer's zenoh is not Cargo.lock's: {install}"
    );
}

#[test]
fn a_python_zenoh_publisher_reaches_recv_1000_in_order() {
    require!(need::PYTHON_ZENOH);
    let key = key("py-to-recv");
    let ep = format!("zenoh:{key}");
    let args = [
        "recv",
        &ep,
        "--listen",
        "tcp/127.0.0.1:0",
        "-n",
        "1000",
        "--json",
    ];
    let (recv, at) = listening(&args);
    succeeded(
        "python",
        &Guard::spawn(python_peer(&["pub", &at, &key, "1000"])).finish(),
    );
    let out = recv.finish();
    succeeded("recv", &out);
    assert!(
        stderr(&out).contains("connected to Zenoh peer"),
        "{}",
        stderr(&out)
    );
    let lines: Vec<&[u8]> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(lines.len(), 1000);
    for (i, l) in lines.iter().enumerate() {
        let r: serde_json::Value = serde_json::from_slice(l).unwrap();
        let mut want = format!("py {i} ").into_bytes();
        want.push(0xff);
        assert_eq!(r["encoding"], "base64", "{r}");
        let got = BASE64.decode(r["payload"].as_str().unwrap()).unwrap();
        assert_eq!(got, want, "message {i} out of order or changed");
        let (p, t) = if i % 2 == 1 {
            (i as i64 % 7, -(i as i64))
        } else {
            (0, 0)
        };
        assert_eq!(
            (r["priority"].as_i64(), r["type"].as_i64()),
            (Some(p), Some(t)),
            "{r}"
        );
    }
}

#[test]
fn send_reaches_a_python_zenoh_subscriber_1000_in_order() {
    require!(need::PYTHON_ZENOH);
    let key = key("send-to-py");
    // The Python binding does not report the port a `:0` listener got, so
    // the test finds a free one first.
    let at = closed_port();
    let mut py = Guard::spawn(python_peer(&["sub", &at, &key, "1000"]));
    let mut out = BufReader::new(py.child().stdout.take().unwrap());
    let mut ready = String::new();
    out.read_line(&mut ready).unwrap();
    assert_eq!(ready, "ready\n", "python: {}", {
        let _ = py.child().kill();
        let mut e = String::new();
        let _ = std::io::Read::read_to_string(py.child().stderr.as_mut().unwrap(), &mut e);
        e
    });
    // Records as `recv --json` prints them: binary payloads, and metadata
    // on every third message.
    let message = |i: usize| -> Vec<u8> {
        format!("rs {i} ")
            .into_bytes()
            .into_iter()
            .chain([0, 0xfe])
            .collect()
    };
    let mut input = String::new();
    for i in 0..1000 {
        let meta = if i % 3 == 0 {
            format!(",\"priority\":{},\"type\":{}", i % 11 + 1, i)
        } else {
            String::new()
        };
        input += &format!(
            "{{\"endpoint\":\"x\"{meta},\"payload\":\"{}\",\"encoding\":\"base64\"}}\n",
            BASE64.encode(message(i))
        );
    }
    let ep = format!("zenoh:{key}");
    let sent = spawn_with_input(
        ipcworks(&["send", "--json", &ep, "--connect", &at]),
        input.into_bytes(),
    )
    .finish();
    succeeded("send", &sent);
    let got: Vec<String> = out.lines().map(|l| l.unwrap()).collect();
    let status = py.child().wait().unwrap();
    assert!(status.success(), "python: {status:?}");
    assert_eq!(got.len(), 1000);
    for (i, line) in got.iter().enumerate() {
        let hex: String = message(i).iter().map(|b| format!("{b:02x}")).collect();
        let meta = if i % 3 == 0 {
            format!("{} {i}", i % 11 + 1)
        } else {
            "-".into()
        };
        assert_eq!(line, &format!("{hex} {meta}"), "message {i}");
    }
}

#[test]
fn relays_carry_priorities_into_and_out_of_zenoh() {
    let mut c = Cleanup::default();
    let (q_out, q_in) = (unique("relay-out"), unique("relay-in"));
    c.queue.extend([q_out.clone(), q_in.clone()]);
    // queue -> zenoh: a receiver on the far side prints in priority order.
    let key_a = key("relay-a");
    let ep_a = format!("zenoh:{key_a}");
    let (recv, at) = listening(&[
        "recv",
        &ep_a,
        "--listen",
        "tcp/127.0.0.1:0",
        "-n",
        "3",
        "--json",
    ]);
    for (m, p) in [("low", "1"), ("high", "9"), ("mid", "5")] {
        succeeded(
            "send",
            &ipcworks(&["send", &format!("queue:{q_out}"), m, "-p", p])
                .output()
                .unwrap(),
        );
    }
    let relay = Guard::spawn(ipcworks(&[
        "relay",
        &format!("queue:{q_out}"),
        &ep_a,
        "--publish",
        "--connect",
        &at,
        "-n",
        "3",
    ]))
    .finish();
    succeeded("relay", &relay);
    let out = recv.finish();
    succeeded("recv", &out);
    assert_eq!(
        payloads_and_priorities(&out.stdout),
        [("high".into(), 9), ("mid".into(), 5), ("low".into(), 1)]
    );
    // zenoh -> queue: two messages land in a queue with their priorities.
    let key_b = key("relay-b");
    let ep_b = format!("zenoh:{key_b}");
    let (relay, at) = listening(&[
        "relay",
        &ep_b,
        &format!("queue:{q_in}"),
        "--listen",
        "tcp/127.0.0.1:0",
        "-n",
        "2",
    ]);
    for (m, p) in [("a", "3"), ("b", "8")] {
        succeeded(
            "send",
            &ipcworks(&["send", &ep_b, m, "-p", p, "--connect", &at])
                .output()
                .unwrap(),
        );
    }
    succeeded("relay", &relay.finish());
    let out = ipcworks(&["recv", &format!("queue:{q_in}"), "-n", "2", "-t", "10"])
        .output()
        .unwrap();
    succeeded("recv", &out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b\na\n");
}

/// Runs `ipcworks ARGS` (with `env`), expecting exit `code` and one line on
/// stderr containing `needle`.
fn fails(args: &[&str], env: &[(&str, &str)], code: i32, needle: &str) {
    let mut cmd = ipcworks(args);
    cmd.envs(env.iter().copied());
    let out = Guard::spawn(cmd).finish();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err}");
    assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
}

/// A TCP port on 127.0.0.1 nobody listens on (bound, then closed), as a
/// Zenoh endpoint.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("tcp/{}", l.local_addr().unwrap())
}

/// A configuration file under a fresh name, removed by `c`.
fn config_file(c: &mut Cleanup, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("{}.json5", unique("zconf")));
    std::fs::write(&p, text).unwrap();
    c.paths.push(p.clone());
    p.to_string_lossy().into_owned()
}

#[test]
fn bad_input_is_one_line_and_the_right_exit_code() {
    let mut c = Cleanup::default();
    let ep = format!("zenoh:{}", key("bad"));
    let closed = closed_port();
    // Usage errors: exit 2.
    fails(
        &["send", "zenoh:a//b", "x", "--connect", &closed],
        &[],
        2,
        "empty chunks",
    );
    fails(
        &["recv", "zenoh:a/**/**", "--listen", "tcp/127.0.0.1:0"],
        &[],
        2,
        "invalid endpoint",
    );
    fails(&["send", &ep, "x"], &[], 2, "--connect tcp/HOST:PORT");
    fails(&["recv", &ep], &[], 2, "--listen tcp/HOST:PORT");
    fails(
        &["send", &ep, "x", "--connect", "127.0.0.1:7447"],
        &[],
        2,
        "tcp/HOST:PORT",
    );
    fails(
        &["send", &ep, "x", "--connect", "udp/127.0.0.1:7447"],
        &[],
        2,
        "TCP transport only",
    );
    fails(
        &["send", "mq:nothing", "x", "--listen", "tcp/127.0.0.1:0"],
        &[],
        2,
        "zenoh: endpoints only",
    );
    let broken = config_file(&mut c, "{ mode: 'peer', listen: ");
    fails(
        &["send", &ep, "x", "--zenoh-config", &broken],
        &[],
        2,
        &broken,
    );
    let wrong = config_file(&mut c, "{ mode: 'boss' }");
    fails(&["recv", &ep, "--zenoh-config", &wrong], &[], 2, &wrong);
    // Zenoh's own variable names the file too.
    fails(
        &["send", &ep, "x"],
        &[("ZENOH_CONFIG", &broken)],
        2,
        &broken,
    );
    // Errors: exit 1.
    fails(
        &["send", &ep, "x", "--connect", &closed, "-t", "1"],
        &[],
        1,
        "cannot reach",
    );
    fails(
        &["recv", &ep, "--connect", &closed, "-t", "1"],
        &[],
        1,
        "cannot reach",
    );
    fails(
        &["send", &ep, "x", "--listen", "tcp/127.0.0.1:0", "-t", "1"],
        &[],
        1,
        "no subscriber",
    );
    // Over the configured maximum, with a subscriber there.
    let (recv, at) = listening(&["recv", &ep, "--listen", "tcp/127.0.0.1:0", "-n", "1"]);
    fails(
        &[
            "send",
            &ep,
            "123456789",
            "--max-message",
            "4",
            "--connect",
            &at,
        ],
        &[],
        1,
        "larger than the maximum of 4",
    );
    succeeded(
        "send",
        &ipcworks(&["send", &ep, "fits", "--connect", &at])
            .output()
            .unwrap(),
    );
    let out = recv.finish();
    succeeded("recv", &out);
    assert_eq!(out.stdout, b"fits\n");
}

#[test]
fn a_relay_that_cannot_publish_takes_nothing_from_its_queue() {
    let mut c = Cleanup::default();
    let q = unique("relay-keep");
    c.queue.push(q.clone());
    let queue = format!("queue:{q}");
    succeeded(
        "send",
        &ipcworks(&["send", &queue, "precious", "-p", "4"])
            .output()
            .unwrap(),
    );
    let ep = format!("zenoh:{}", key("relay-keep"));
    // Nobody at the address (the relay pair and a publishing relay); then
    // somebody there but no subscriber.
    fails(
        &["relay", &queue, &ep, "--connect", &closed_port()],
        &[],
        1,
        "cannot reach",
    );
    fails(
        &[
            "relay",
            &queue,
            &ep,
            "--publish",
            "--connect",
            &closed_port(),
        ],
        &[],
        1,
        "cannot reach",
    );
    fails(
        &[
            "relay",
            &queue,
            &ep,
            "--publish",
            "--listen",
            "tcp/127.0.0.1:0",
        ],
        &[],
        1,
        "no subscriber",
    );
    // A subscriber there, but the message is over the relay's maximum.
    let (recv, at) = listening(&[
        "recv",
        &ep,
        "--listen",
        "tcp/127.0.0.1:0",
        "-n",
        "1",
        "--json",
    ]);
    fails(
        &[
            "relay",
            &queue,
            &ep,
            "--publish",
            "--connect",
            &at,
            "--max-message",
            "4",
        ],
        &[],
        1,
        "larger than the maximum of 4",
    );
    // The message is still in the queue: a relay without the limit
    // carries it, priority and all.
    succeeded(
        "relay",
        &Guard::spawn(ipcworks(&[
            "relay",
            &queue,
            &ep,
            "--publish",
            "--connect",
            &at,
            "-n",
            "1",
        ]))
        .finish(),
    );
    let out = recv.finish();
    succeeded("recv", &out);
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["payload"].as_str(), r["priority"].as_i64()),
        (Some("precious"), Some(4))
    );
}

/// Every address in an strace log's socket calls.
fn addresses(log: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in log.lines() {
        for (open, close) in [("inet_addr(\"", "\")"), ("inet_pton(AF_INET6, \"", "\"")] {
            let mut rest = line;
            while let Some(i) = rest.find(open) {
                rest = &rest[i + open.len()..];
                let end = rest.find(close).unwrap_or(rest.len());
                found.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    found
}

#[test]
fn zenoh_endpoints_use_no_address_but_the_ones_given() {
    require!(need::STRACE);
    // The parse finds addresses in strace's notation, IPv4 and IPv6.
    assert_eq!(
        addresses(concat!(
            r#"sendto(3, "", 0, 0, {sa_family=AF_INET, sin_port=htons(7446), "#,
            r#"sin_addr=inet_addr("224.0.0.224")}, 16) = 0 connect(4, {sa_family=AF_INET6, "#,
            r#"sin6_port=htons(7447), inet_pton(AF_INET6, "::1", &sin6_addr)}, 28)"#
        )),
        ["224.0.0.224", "::1"]
    );
    let dir = std::env::temp_dir();
    let (log_r, log_s) = (
        dir.join(unique("strace-recv")),
        dir.join(unique("strace-send")),
    );
    let mut c = Cleanup::default();
    c.paths.extend([log_r.clone(), log_s.clone()]);
    let traced = |log: &std::path::Path, args: &[&str]| {
        let mut cmd = Command::new("strace");
        cmd.args([
            "-f",
            "-qq",
            "-e",
            "trace=connect,bind,sendto,sendmsg,sendmmsg",
            "-o",
        ])
        .arg(log)
        .arg(BIN)
        .args(args)
        .env_remove("ZENOH_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        Guard::spawn(cmd)
    };
    let ep = format!("zenoh:{}", key("strace"));
    let mut recv = traced(
        &log_r,
        &["recv", &ep, "--listen", "tcp/127.0.0.1:0", "-n", "1"],
    );
    let line = first_line(recv.child().stderr.as_mut().unwrap());
    let at = line.rsplit("listening on ").next().unwrap().to_string();
    succeeded(
        "send",
        &traced(&log_s, &["send", &ep, "hello", "--connect", &at]).finish(),
    );
    let out = recv.finish();
    succeeded("recv", &out);
    assert_eq!(out.stdout, b"hello\n");
    for log in [&log_r, &log_s] {
        let text = std::fs::read_to_string(log).unwrap();
        let addrs = addresses(&text);
        // The parse finds what is there: the listener's or the
        // connection's own address.
        assert!(
            addrs.iter().any(|a| a == "127.0.0.1"),
            "no 127.0.0.1 in {}: {text}",
            log.display()
        );
        let other: Vec<&String> = addrs.iter().filter(|a| *a != "127.0.0.1").collect();
        assert!(
            other.is_empty(),
            "{} used {other:?}:\n{text}",
            log.display()
        );
    }
}

/// The relay pair from the command line: `relay zenoh:K queue:B` (far)
/// and `relay queue:A zenoh:K` (near) move A's messages into B, priorities
/// kept; a second far relay on the same key is refused; a message the far
/// side refuses (over its --max-message) stops the near relay and stays
/// first in A; one line per connect, and per far relay reached.
#[test]
fn relay_zenoh_pair_moves_a_queue_and_refuses_a_second_far_relay() {
    let mut c = Cleanup::default();
    let (a, b, b2) = (unique("pair-a"), unique("pair-b"), unique("pair-b2"));
    c.queue.extend([a.clone(), b.clone(), b2.clone()]);
    let (qa, qb) = (format!("queue:{a}"), format!("queue:{b}"));
    let ep = format!("zenoh:{}", key("pair"));
    for (m, p) in [("low", "1"), ("high", "9"), ("mid", "5")] {
        succeeded(
            "send",
            &ipcworks(&["send", &qa, m, "-p", p]).output().unwrap(),
        );
    }
    let (far, at) = listening(&[
        "relay",
        &ep,
        &qb,
        "--listen",
        "tcp/127.0.0.1:0",
        "--max-message",
        "100",
        "-n",
        "3",
    ]);
    fails(
        &["relay", &ep, &format!("queue:{b2}"), "--connect", &at],
        &[],
        1,
        "another relay already delivers",
    );
    let near = Guard::spawn(ipcworks(&["relay", &qa, &ep, "--connect", &at, "-n", "3"])).finish();
    succeeded("near relay", &near);
    let said = stderr(&near);
    assert!(said.contains("connected to Zenoh peer"), "{said}");
    assert!(said.contains("far relay reached"), "{said}");
    succeeded("far relay", &far.finish());
    let out = ipcworks(&["recv", &qb, "-n", "3", "-t", "10", "--json"])
        .output()
        .unwrap();
    succeeded("recv", &out);
    assert_eq!(
        payloads_and_priorities(&out.stdout),
        [("high".into(), 9), ("mid".into(), 5), ("low".into(), 1)]
    );
    // Too large for the far side: refused, and still first in A.
    succeeded(
        "send",
        &ipcworks(&["send", &qa, &"x".repeat(200), "-p", "2"])
            .output()
            .unwrap(),
    );
    let (far, at) = listening(&[
        "relay",
        &ep,
        &qb,
        "--listen",
        "tcp/127.0.0.1:0",
        "--max-message",
        "100",
    ]);
    let near = Guard::spawn(ipcworks(&["relay", &qa, &ep, "--connect", &at])).finish();
    let said = stderr(&near);
    assert_eq!(near.status.code(), Some(1), "{said}");
    let last = said.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ipcworks: ") && last.contains("refused a message"),
        "{said}"
    );
    drop(far);
    let out = ipcworks(&["recv", &qa, "-n", "1", "-t", "10"])
        .output()
        .unwrap();
    succeeded("recv", &out);
    assert_eq!(out.stdout.len(), 201);
}

/// `recv --json`'s lines as (payload, priority) pairs.
fn payloads_and_priorities(stdout: &[u8]) -> Vec<(String, i64)> {
    std::str::from_utf8(stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let r: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                r["payload"].as_str().unwrap().to_string(),
                r["priority"].as_i64().unwrap(),
            )
        })
        .collect()
}
