//! `recv` keeps message boundaries and metadata; `send` reads them back:
//! `--json` records, `-0` (NUL-separated) and C escapes in line mode, run as
//! a user would (real processes, real pipes between them, Python's
//! `posix_ipc`/`sysv_ipc` and coreutils' `printf` beside them).

use crate::support;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ipcworks_test_support::{need, require};
use serde_json::{Value, json};
use support::*;

/// Messages that break naive framings: empty, newline, NUL, backslash,
/// invalid UTF-8, control characters, and 64 KiB of every byte value.
fn hard_set(with_big: bool) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\n".to_vec(),
        b"\0".to_vec(),
        b"\\".to_vec(),
        vec![0xff, 0xfe, 0x80],
        "h\u{e9}llo\tw\u{f6}rld \"quoted\"".as_bytes().to_vec(),
        b"two\nlines\r\n".to_vec(),
        b"\\n is not a newline, \\\\ not one backslash".to_vec(),
        b"\x1b[2J\x07\x7f".to_vec(),
    ];
    if with_big {
        // A simple LCG: every byte value, no pattern a framing could rely on.
        let mut x = 0x2545_f491u32;
        let big: Vec<u8> = (0..64 * 1024)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (x >> 24) as u8
            })
            .collect();
        v.push(big);
    }
    v
}

/// A `send --json` record built here, independently of the binary.
fn record(payload: &[u8], meta: (&str, i64)) -> String {
    let mut r = match std::str::from_utf8(payload) {
        Ok(s) => json!({"payload": s, "encoding": "utf8"}),
        Err(_) => json!({"payload": STANDARD.encode(payload), "encoding": "base64"}),
    };
    if !meta.0.is_empty() {
        r[meta.0] = json!(meta.1);
    }
    r.to_string() + "\n"
}

/// One record of `recv --json`, checked and decoded.
#[derive(Debug, PartialEq)]
struct Got {
    endpoint: String,
    priority: Option<i64>,
    msg_type: Option<i64>,
    payload: Vec<u8>,
}

fn decode(stdout: &[u8]) -> Vec<Got> {
    let text = std::str::from_utf8(stdout).expect("recv --json prints UTF-8");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            let payload = match v["encoding"].as_str() {
                Some("utf8") => v["payload"].as_str().unwrap().as_bytes().to_vec(),
                Some("base64") => STANDARD.decode(v["payload"].as_str().unwrap()).unwrap(),
                other => panic!("encoding {other:?} in {line}"),
            };
            assert_eq!(v["len"].as_u64(), Some(payload.len() as u64), "{line}");
            // Text whenever it is text: base64 only for what is not UTF-8.
            assert_eq!(
                v["encoding"] == "utf8",
                std::str::from_utf8(&payload).is_ok(),
                "{line}"
            );
            Got {
                endpoint: v["endpoint"].as_str().unwrap().to_string(),
                priority: v.get("priority").map(|p| p.as_i64().unwrap()),
                msg_type: v.get("type").map(|t| t.as_i64().unwrap()),
                payload,
            }
        })
        .collect()
}

#[test]
fn python_sysv_message_with_a_newline_and_a_type_comes_out_whole_in_json() {
    require!(need::PYTHON_IPC);
    let mut c = Cleanup::default();
    let key = unique_key();
    c.sysv.push(key);
    python(
        "import sys, sysv_ipc\n\
         q = sysv_ipc.MessageQueue(int(sys.argv[1]), sysv_ipc.IPC_CREX, 0o600)\n\
         q.send(b'two\\nlines', type=7)\n\
         q.send(b'\\xff\\x00', type=2)\n",
        &[&key.to_string()],
    );
    let ep = format!("sysv:{key}");
    let out = ok(
        &["recv", &ep, "--json", "--count", "2", "--timeout", "30"],
        b"",
    );
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first: Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(
        first,
        json!({"endpoint": format!("sysv:{:#x}", key as u32), "type": 7, "len": 9,
               "payload": "two\nlines", "encoding": "utf8"})
    );
    let second: Value = serde_json::from_str(lines[1]).unwrap();
    assert_eq!(second["type"], 2);
    assert_eq!(second["encoding"], "base64");
    assert_eq!(second["payload"], STANDARD.encode([0xff, 0x00]));
    assert!(second.get("priority").is_none(), "System V has no priority");
}

#[test]
fn line_mode_escapes_what_would_break_a_line_says_so_once_and_send_e_reads_it_back() {
    require!(need::PYTHON_IPC);
    let mut c = Cleanup::default();
    let (a, b) = (unique("esc-a"), unique("esc-b"));
    c.mq.extend([a.clone(), b.clone()]);
    // Python's posix_ipc puts five messages in a POSIX queue, highest
    // priority first so the order out is known.
    python(
        "import sys, posix_ipc\n\
         q = posix_ipc.MessageQueue('/' + sys.argv[1], posix_ipc.O_CREX, mode=0o600)\n\
         for p, m in [(5, b'plain'), (4, b'two\\nlines'), (3, b'back\\\\slash'),\n\
                      (2, b'\\xff\\x00\\x1b[2J'), (1, 'h\\u00e9llo\\ttab'.encode())]:\n\
         \x20   q.send(m, priority=p)\n\
         q.close()\n",
        &[&a],
    );
    let out = run(
        &[
            "recv",
            &format!("mq:{a}"),
            "--count",
            "5",
            "--timeout",
            "30",
        ],
        b"",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "plain\ntwo\\nlines\nback\\\\slash\n\\xff\\x00\\x1b[2J\nh\u{e9}llo\ttab\n"
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "said once: {err}");
    assert!(
        err.contains("escape") && err.contains("--json") && err.contains("-0"),
        "{err}"
    );
    // What recv printed, read back by `send -e` into another queue and
    // received by Python: the very bytes Python sent.
    ok(&["send", "-e", &format!("mq:{b}")], &out.stdout);
    let back = python(
        "import sys, posix_ipc\n\
         q = posix_ipc.MessageQueue('/' + sys.argv[1])\n\
         for _ in range(5):\n\
         \x20   print(q.receive(timeout=30)[0].hex())\n\
         q.close()\n",
        &[&b],
    );
    let hex = |m: &[u8]| m.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
    let expected: String = [
        &b"plain"[..],
        b"two\nlines",
        b"back\\slash",
        b"\xff\x00\x1b[2J",
        "h\u{e9}llo\ttab".as_bytes(),
    ]
    .iter()
    .map(|m| hex(m))
    .collect();
    assert_eq!(String::from_utf8(back).unwrap(), expected);
}

/// `send --json SRC` ← records; `recv --json SRC | send --json DST`;
/// `recv --json DST`: every payload and its metadata come out exactly.
fn json_round_trip(src: &str, dst: &str, meta_key: &str, msgs: &[(Vec<u8>, i64)], extra: &[&str]) {
    let input: String = msgs
        .iter()
        .map(|(m, v)| record(m, (meta_key, *v)))
        .collect();
    let n = msgs.len().to_string();
    let mut send_src = vec!["send", "--json", src];
    send_src.extend(extra);
    ok(&send_src, input.as_bytes());
    let mut send_dst = vec!["send", "--json", dst];
    send_dst.extend(extra);
    let relayed = pipeline(
        &["recv", "--json", src, "--count", &n, "--timeout", "30"],
        &send_dst,
    );
    assert!(relayed.is_empty());
    let out = ok(
        &["recv", "--json", dst, "--count", &n, "--timeout", "30"],
        b"",
    );
    let got = decode(&out);
    assert_eq!(got.len(), msgs.len());
    for (g, (m, v)) in got.iter().zip(msgs) {
        assert_eq!(g.endpoint, dst);
        assert_eq!(&g.payload, m, "payload of {g:?}");
        let meta = if meta_key == "priority" {
            g.priority
        } else {
            g.msg_type
        };
        assert_eq!(meta, Some(*v), "{meta_key} of {g:?}");
    }
}

#[test]
fn json_round_trip_through_native_queues_keeps_every_byte_and_priority() {
    let mut c = Cleanup::default();
    let (a, b) = (unique("json-a"), unique("json-b"));
    c.queue.extend([a.clone(), b.clone()]);
    // Descending priorities: the queue hands them out in this order.
    let set = hard_set(true);
    let n = set.len() as i64;
    let msgs: Vec<(Vec<u8>, i64)> = set.into_iter().zip((1..=n).rev()).collect();
    json_round_trip(
        &format!("queue:{a}"),
        &format!("queue:{b}"),
        "priority",
        &msgs,
        &["--max-message", "70000"],
    );
}

#[test]
fn json_round_trip_through_system_v_queues_keeps_every_byte_and_type() {
    let mut c = Cleanup::default();
    let (a, b) = (unique_key(), unique_key());
    c.sysv.extend([a, b]);
    // System V hands out in arrival order (type 0 = any); 64 KiB is over
    // its default msgmax of 8 KiB.
    let msgs: Vec<(Vec<u8>, i64)> = hard_set(false)
        .into_iter()
        .zip([3, 1, 2, 7, 1, 9, 4, 4, 2])
        .collect();
    json_round_trip(
        &format!("sysv:{:#x}", a as u32),
        &format!("sysv:{:#x}", b as u32),
        "type",
        &msgs,
        &[],
    );
}

#[test]
fn json_round_trip_through_fifos_keeps_every_byte() {
    let mut c = Cleanup::default();
    let p = format!("fifo:{}", tmp_path(&mut c, "json-p.fifo").display());
    let q = format!("fifo:{}", tmp_path(&mut c, "json-q.fifo").display());
    let set = hard_set(true);
    let input: String = set.iter().map(|m| record(m, ("", 0))).collect();
    // The last reader first, then the writer, then the relay between them.
    let last = Guard::spawn(ipcworks(&[
        "recv",
        "--json",
        "--binary",
        &q,
        "--timeout",
        "60",
    ]));
    let writer = spawn_with_input(
        ipcworks(&["send", "--json", "--binary", &p]),
        input.into_bytes(),
    );
    pipeline(
        &["recv", "--json", "--binary", &p, "--timeout", "60"],
        &["send", "--json", "--binary", &q],
    );
    let w = writer.finish();
    assert!(w.status.success(), "{}", stderr(&w));
    let out = last.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    let got = decode(&out.stdout);
    assert_eq!(
        got.iter().map(|g| g.payload.clone()).collect::<Vec<_>>(),
        set
    );
    assert!(
        got.iter()
            .all(|g| g.endpoint == q && g.priority.is_none() && g.msg_type.is_none())
    );
}

/// The hard set without the message holding a NUL, `-0`-joined.
fn nul_joined() -> (usize, Vec<u8>) {
    let set: Vec<Vec<u8>> = hard_set(true)
        .into_iter()
        .filter(|m| !m.contains(&0))
        .collect();
    let mut joined = Vec::new();
    for m in &set {
        joined.extend_from_slice(m);
        joined.push(0);
    }
    (set.len(), joined)
}

#[test]
fn null_separated_round_trip_through_native_queues_both_ways() {
    let mut c = Cleanup::default();
    let (a, b) = (unique("nul-a"), unique("nul-b"));
    c.queue.extend([a.clone(), b.clone()]);
    let (n, joined) = nul_joined();
    let n = n.to_string();
    let (a, b) = (format!("queue:{a}"), format!("queue:{b}"));
    ok(&["send", "-0", &a, "--max-message", "70000"], &joined);
    pipeline(
        &["recv", "-0", &a, "--count", &n, "--timeout", "30"],
        &["send", "--null", &b, "--max-message", "70000"],
    );
    let out = ok(
        &["recv", "--null", &b, "--count", &n, "--timeout", "30"],
        b"",
    );
    assert!(out == joined, "the bytes differ after the round trip");
}

#[test]
fn null_separated_round_trip_through_a_fifo() {
    let mut c = Cleanup::default();
    let p = format!("fifo:{}", tmp_path(&mut c, "nul.fifo").display());
    let (_, joined) = nul_joined();
    let reader = Guard::spawn(ipcworks(&["recv", "-0", "--binary", &p, "--timeout", "60"]));
    ok(&["send", "-0", "--binary", &p], &joined);
    let out = reader.finish();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout == joined, "the bytes differ after the FIFO");
}

#[test]
fn recv_null_stops_with_an_error_at_a_message_holding_nul_after_printing_it() {
    let mut c = Cleanup::default();
    let a = unique("nul-in");
    c.queue.push(a.clone());
    let a = format!("queue:{a}");
    let input = record(b"before", ("", 0)) + &record(b"a\0b", ("", 0)) + &record(b"after", ("", 0));
    ok(&["send", "--json", &a], input.as_bytes());
    let out = run(&["recv", "-0", &a, "--count", "3", "--timeout", "30"], b"");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // Nothing lost: the message came out raw, then recv stopped.
    assert_eq!(out.stdout, b"before\0a\0b\0");
    let err = stderr(&out);
    assert!(err.contains("NUL") && err.contains("--json"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // The message after it is still in the queue.
    assert_eq!(
        ok(&["recv", &a, "--count", "1", "--timeout", "30"], b""),
        b"after\n"
    );
}

#[test]
fn send_e_reads_escapes_as_printf_b_does() {
    let mut c = Cleanup::default();
    let a = unique("send-e");
    c.queue.push(a.clone());
    let a = format!("queue:{a}");
    let escaped = [
        r"a\nb",
        r"c\\d",
        r"\x41\x00z",
        r"tab\there\r",
        r"\0end",
        r"\a\b\e\f\v",
        r"h\u00e9",
        "plain",
        "",
    ];
    // coreutils' printf %b is the reference (echo -e's escapes).
    let expected: Vec<Vec<u8>> = escaped
        .iter()
        .map(|s| {
            let out = std::process::Command::new("printf")
                .args(["%b", s])
                .output()
                .unwrap();
            assert!(out.status.success());
            out.stdout
        })
        .collect();
    // As arguments, and as stdin lines.
    let mut args = vec!["send", "-e", &a];
    args.extend(escaped);
    ok(&args, b"");
    let lines = escaped.join("\n") + "\n";
    ok(&["send", "--escapes", &a], lines.as_bytes());
    let n = (2 * escaped.len()).to_string();
    let got = decode(&ok(
        &["recv", "--json", &a, "--count", &n, "--timeout", "30"],
        b"",
    ));
    let got: Vec<Vec<u8>> = got.into_iter().map(|g| g.payload).collect();
    assert_eq!(got[..escaped.len()], expected[..]);
    assert_eq!(got[escaped.len()..], expected[..]);
    // An escape printf would pass through is an error here, naming it
    // (a typo must not become data).
    let out = run(&["send", "-e", &a, r"ok\q"], b"");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(r"\q"), "{err}");
    // Without -e a backslash is just a byte.
    ok(&["send", &a, r"a\nb"], b"");
    assert_eq!(
        decode(&ok(
            &["recv", "--json", &a, "--count", "1", "--timeout", "30"],
            b""
        ))[0]
            .payload,
        br"a\nb"
    );
}

#[test]
fn send_json_refuses_records_it_cannot_read_naming_the_line() {
    let mut c = Cleanup::default();
    let a = unique("bad-json");
    c.queue.push(a.clone());
    let a = format!("queue:{a}");
    for (input, needle) in [
        ("{\"payload\": \"x\"}\nnot json\n", "line 2"),
        ("{\"payload\": \"x\", \"len\": 3}\n", "len"),
        (
            "{\"payload\": \"!!\", \"encoding\": \"base64\"}\n",
            "base64",
        ),
        ("{\"payload\": \"x\", \"encoding\": \"hex\"}\n", "encoding"),
        ("{\"len\": 1}\n", "payload"),
    ] {
        let out = run(&["send", "--json", &a], input.as_bytes());
        assert_eq!(out.status.code(), Some(1), "{input}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains(needle), "{input}: {err}");
    }
}

#[test]
fn help_documents_the_formats_and_the_json_schema() {
    let out = ok(&["recv", "--help"], b"");
    let text = String::from_utf8_lossy(&out);
    for word in [
        "--json", "--null", "endpoint", "priority", "type", "len", "payload", "encoding", "base64",
        "utf8", "send -e",
    ] {
        assert!(text.contains(word), "recv --help lacks {word:?}: {text}");
    }
    let out = ok(&["send", "--help"], b"");
    let text = String::from_utf8_lossy(&out);
    for word in ["--json", "--null", "--escapes", "creates"] {
        assert!(text.contains(word), "send --help lacks {word:?}: {text}");
    }
}
