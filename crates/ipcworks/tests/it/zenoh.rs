//! The Zenoh bridge (feature `zenoh`) beyond the conformance suite: the
//! metadata attachment as documented, plain samples from other Zenoh
//! programs, sizes, the wait for a subscriber, unreachable peers, and a
//! sending process that exits right after its last message. Every session
//! listens and connects on explicit `tcp/127.0.0.1` endpoints with
//! scouting and gossip off (the bridge's defaults); listeners take a port
//! of the kernel's choice, so parallel tests never collide.

use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::bridge::zenoh::Wait;
use ipcworks::bridge::{Config, Session, attachment};
use ipcworks::message::{Deadline, MessageReceiver, MessageSender, Meta, RecvTimeoutError};

use crate::support::{self, KillOnDrop};

/// Bounds that only catch hangs (the machine is loaded).
const LIMIT: Duration = Duration::from_secs(30);

/// A session listening on `tcp/127.0.0.1:0`, its real locator, and a key
/// of this test's own.
fn listening() -> (Session, String, String) {
    let mut c = Config::new();
    c.listen("tcp/127.0.0.1:0");
    let s = Session::open(&c).unwrap();
    let at = s.listening().into_iter().next().expect("a locator");
    (s, at, format!("it/{}", support::unique_name("zenoh")))
}

fn connected(to: &str) -> Session {
    let mut c = Config::new();
    c.connect(to);
    Session::open(&c).unwrap()
}

#[test]
fn metadata_rides_in_the_documented_attachment() {
    let (here, at, key) = listening();
    let mut rx = here.receiver(&key).open().unwrap();
    // A plain Zenoh subscriber beside ours sees the raw samples.
    let raw = here
        .zenoh()
        .declare_subscriber(key.as_str())
        .wait()
        .unwrap();
    let mut tx = connected(&at).sender(&key).open().unwrap();
    let metas = [
        Meta::default(),
        Meta::with_priority(9),
        Meta::with_type(-4),
        Meta {
            priority: 3,
            msg_type: 77,
        },
    ];
    for (i, meta) in metas.iter().enumerate() {
        tx.send_with(format!("m{i}").as_bytes(), *meta).unwrap();
    }
    for (i, meta) in metas.iter().enumerate() {
        let (msg, got) = rx.recv_until(Deadline::after(LIMIT)).unwrap();
        assert_eq!((msg, got), (format!("m{i}").into_bytes(), *meta));
        let s = raw.recv_timeout(LIMIT).unwrap().expect("the raw sample");
        assert_eq!(s.payload().to_bytes().as_ref(), format!("m{i}").as_bytes());
        let att = s.attachment().map(|a| a.to_bytes().into_owned());
        if *meta == Meta::default() {
            assert_eq!(att, None, "the default metadata goes out plain");
        } else {
            let mut want = b"IPCW\x01\x00".to_vec();
            want.extend_from_slice(&meta.priority.to_le_bytes());
            want.extend_from_slice(&meta.msg_type.to_le_bytes());
            assert_eq!(att.as_deref(), Some(&want[..]), "message {i}");
            assert_eq!(want.len(), attachment::LEN);
        }
    }
}

#[test]
fn plain_samples_are_messages_and_deletes_are_skipped() {
    let (here, at, key) = listening();
    let mut rx = here.receiver(&key).open().unwrap();
    let there = connected(&at);
    let z = there.zenoh();
    let publisher = z.declare_publisher(key.as_str()).wait().unwrap();
    let t = Instant::now();
    while !publisher.matching_status().wait().unwrap().matching() {
        assert!(t.elapsed() < LIMIT, "our subscriber never matched");
        std::thread::sleep(Duration::from_millis(5));
    }
    publisher.put("plain").wait().unwrap();
    publisher.delete().wait().unwrap();
    publisher
        .put("foreign")
        .attachment("trace-id=42")
        .wait()
        .unwrap();
    let later = {
        let mut a = attachment::encode(Meta::with_priority(2)).unwrap().to_vec();
        a[4] = 2; // a later version, with a field appended
        a.extend_from_slice(b"more");
        a
    };
    publisher.put("later").attachment(later).wait().unwrap();
    for (want, meta) in [
        ("plain", Meta::default()),
        ("foreign", Meta::default()),
        ("later", Meta::with_priority(2)),
    ] {
        let (msg, got) = rx.recv_until(Deadline::after(LIMIT)).unwrap();
        assert_eq!((msg.as_slice(), got), (want.as_bytes(), meta));
    }
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn oversized_messages_are_refused_at_both_ends() {
    let (here, at, key) = listening();
    let mut rx = here.receiver(&key).max_message(8).open().unwrap();
    let there = connected(&at);
    let mut tx = there.sender(&key).max_message(8).open().unwrap();
    match tx.send(b"123456789") {
        Err(Error::MessageTooLarge { len: 9, max: 8 }) => {}
        other => panic!("{other:?}"),
    }
    // A foreign publisher has no such limit: the receiver refuses its
    // sample, then goes on.
    there
        .zenoh()
        .put(key.as_str(), vec![7u8; 100])
        .wait()
        .unwrap();
    tx.send(b"12345678").unwrap();
    match rx.recv_until(Deadline::after(LIMIT)) {
        Err(Error::MessageTooLarge { len: 100, max: 8 }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"12345678");
}

#[test]
fn a_sender_waits_for_a_subscriber_and_says_when_none_came() {
    let (here, at, key) = listening();
    let there = connected(&at);
    // Nobody subscribes: the wait ends in NoSubscriber, not before its time.
    let t = Instant::now();
    match there
        .sender(&key)
        .wait_for_subscriber(Some(Duration::from_millis(200)))
        .open()
    {
        Err(Error::NoSubscriber { key: k, waited }) => {
            assert_eq!(
                (k.as_str(), waited),
                (key.as_str(), Duration::from_millis(200))
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(t.elapsed() >= Duration::from_millis(200));
    // Fire and forget opens at once, with nobody there.
    let ff = there.sender(&key).wait_for_subscriber(None).open().unwrap();
    assert!(!ff.has_subscriber());
    // A subscriber comes: the sender matches and delivers.
    let mut rx = here.receiver(&key).open().unwrap();
    let mut tx = there.sender(&key).open().unwrap();
    tx.send(b"one").unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"one");
    // It goes: sends wait for the next one, within their deadline.
    drop(rx);
    assert!(support::wait_until(LIMIT, || !tx.has_subscriber()));
    assert!(matches!(
        tx.send_until(b"lost?", Meta::default(), Deadline::Now),
        Err(Error::WouldBlock)
    ));
    assert!(matches!(
        tx.send_timeout(b"lost?", Duration::from_millis(50)),
        Err(ipcworks::message::SendTimeoutError::Timeout)
    ));
    let mut rx = here.receiver(&key).open().unwrap();
    tx.send_until(b"two", Meta::default(), Deadline::after(LIMIT))
        .unwrap();
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"two");
    assert!(matches!(
        rx.recv_timeout(Duration::from_millis(50)),
        Err(RecvTimeoutError::Timeout)
    ));
}

#[test]
fn an_unreachable_peer_and_a_taken_port_are_errors() {
    // A port nobody listens on.
    let refused = ipcworks_test_support::RefusedPort::new();
    let port = refused.port();
    let mut c = Config::new();
    c.connect(format!("tcp/127.0.0.1:{port}"))
        .connect_timeout(Duration::from_millis(300));
    let t = Instant::now();
    let e = Session::open(&c).unwrap_err();
    assert!(t.elapsed() < LIMIT);
    assert!(
        matches!(&e, Error::Zenoh { op: "open", reason } if reason.contains("cannot reach")),
        "{e:?}"
    );
    // A port taken by someone else.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut c = Config::new();
    c.listen(format!("tcp/{}", taken.local_addr().unwrap()));
    let e = Session::open(&c).unwrap_err();
    assert!(matches!(&e, Error::Zenoh { op: "open", .. }), "{e:?}");
    assert!(!e.to_string().contains('\n'), "{e}");
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let (key, at) = arg.split_once('#').unwrap();
        match role {
            // COUNT messages, then exit at once: closing the session must
            // flush what is still queued.
            "burst" => {
                let mut tx = connected(at)
                    .sender(key)
                    .wait_for_subscriber(Some(LIMIT))
                    .open()
                    .unwrap();
                for i in 0..1000u32 {
                    tx.send_with(&i.to_le_bytes().repeat(64), Meta::with_priority(i))
                        .unwrap();
                }
            }
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn a_process_that_exits_right_after_sending_delivers_everything() {
    let (here, at, key) = listening();
    let mut rx = here.receiver(&key).open().unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "zenoh::child",
        "burst",
        &format!("{key}#{at}"),
    ));
    for i in 0..1000u32 {
        let (msg, meta) = rx.recv_until(Deadline::after(LIMIT)).unwrap();
        assert_eq!(msg, i.to_le_bytes().repeat(64), "message {i}");
        assert_eq!(meta.priority, i);
    }
    assert!(c.wait_for(LIMIT).success());
}
