//! An async send waiting for room parks on a descriptor (issue 21): a
//! full channel or native queue, a send awaiting in a child process, the
//! consumer (this process) takes one message and the send completes at
//! once, woken through the helper's eventfd, not found by a timer; while
//! it waits, the child's threads do not wake (counted context switches).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcworks::channel::{Channel, Sender};
use ipcworks::queue::Queue;
use ipcworks::tokio::{AsyncQueue, AsyncSender};

use crate::support::{self, KillOnDrop, ShmCleanup, runtime};

const LIMIT: Duration = Duration::from_secs(60);
/// Rounds of "take one, the awaiting send completes".
const ROUNDS: usize = 7;
#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // "chan,NAME" or "queue,NAME": ROUNDS times, fills the channel or
            // queue NAME (try_send until full), prints "full", awaits a send
            // of "lastI", prints "sent".
            "room-sender" => {
                let (kind, name) = arg.split_once(',').unwrap();
                runtime().block_on(async {
                    match kind {
                        "chan" => {
                            let mut tx = AsyncSender::new(Sender::open(name).unwrap()).unwrap();
                            for i in 0..ROUNDS {
                                while tx.get_mut().try_send(b"fill").is_ok() {}
                                println!("full");
                                tx.send(format!("last{i}").as_bytes()).await.unwrap();
                                println!("sent");
                            }
                        }
                        "queue" => {
                            let q = AsyncQueue::new(Queue::open(name).unwrap()).unwrap();
                            for i in 0..ROUNDS {
                                while q.get_ref().try_send(b"fill", 0).is_ok() {}
                                println!("full");
                                q.send(format!("last{i}").as_bytes(), 0).await.unwrap();
                                println!("sent");
                            }
                        }
                        // The queue opened as `Box<dyn AsyncMessageSender>`
                        // (the poll-based path): filled by sends that time
                        // out (each one cancelled: nothing sent), then awaited.
                        "dyn-queue" => {
                            use ipcworks::tokio::AsyncMessageSenderExt;
                            let ep: ipcworks::endpoint::Endpoint =
                                format!("queue:{name}").parse().unwrap();
                            let opts = ipcworks::endpoint::Options::default();
                            let mut tx = ipcworks::tokio::open_sender(&ep, &opts).unwrap();
                            for i in 0..ROUNDS {
                                let wait = Duration::from_millis(20);
                                while tokio::time::timeout(wait, tx.send(b"fill")).await.is_ok() {}
                                println!("full");
                                tx.send(format!("last{i}").as_bytes()).await.unwrap();
                                println!("sent");
                            }
                        }
                        other => panic!("kind {other}"),
                    }
                });
            }
            other => support::unknown_role(other),
        }
    });
}

/// Voluntary context switches of every thread of `pid` so far: each is a
/// thread going to sleep, so an idle process adds none.
fn wakeups(pid: u32) -> u64 {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let status = std::fs::read_to_string(t.unwrap().path().join("status")).unwrap_or_default();
        n += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .map_or(0, |v| v.trim().parse::<u64>().unwrap());
    }
    n
}

/// The child's next line that is one of ours (the harness prints its
/// own); `None` at its end.
fn next(lines: &mut impl Iterator<Item = std::io::Result<String>>) -> Option<String> {
    lines
        .map_while(|l| l.ok())
        .find(|l| l == "full" || l == "sent")
}

/// Runs the rounds against a child filling `kind` NAME; `take` takes one
/// message here. Checks that the awaiting send sleeps, that it completes
/// promptly after each take (the median), and that every "lastI" arrives
/// exactly once, in order.
fn rounds(kind: &str, name: &str, mut take_one: impl FnMut() -> Option<Vec<u8>>) {
    let mut lasts = Vec::new();
    let mut take = || {
        let m = take_one();
        if let Some(m) = &m
            && m != b"fill"
        {
            lasts.push(String::from_utf8(m.clone()).unwrap());
        }
        m
    };
    let mut cmd = support::child(
        "tokio_room::child",
        "room-sender",
        &format!("{kind},{name}"),
    );
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let pid = child.pid();
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(out).lines();
        while let Some(l) = next(&mut lines) {
            if tx.send((l, Instant::now())).is_err() {
                return;
            }
        }
    });
    let mut delays = Vec::new();
    for round in 0..ROUNDS {
        let (l, _) = rx.recv_timeout(LIMIT).expect("no 'full' from the child");
        assert_eq!(l, "full");
        if round == 0 {
            // Let the send park, then count: an idle awaiting send sleeps.
            std::thread::sleep(Duration::from_millis(300));
            let before = wakeups(pid);
            std::thread::sleep(Duration::from_secs(2));
            let woke = wakeups(pid) - before;
            eprintln!("{kind}: an awaiting send's process woke {woke} times in 2 s");
            // A timer retry (1-8 ms naps) wakes hundreds of times in 2 s;
            // the parked send's helper looks at the segment once a second.
            assert!(
                woke < 40,
                "{kind}: the awaiting send woke {woke} times in 2 s"
            );
            assert!(
                rx.try_recv().is_err(),
                "{kind}: the send completed on a full queue"
            );
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
        let taken = Instant::now();
        assert!(take().is_some(), "{kind}: nothing to take from a full one");
        let (l, at) = rx.recv_timeout(LIMIT).expect("the send never completed");
        assert_eq!(l, "sent");
        delays.push(at.saturating_duration_since(taken));
    }
    assert!(child.wait_for(LIMIT).success());
    // Everything left: every "lastI" exactly once, in order.
    while take().is_some() {}
    let want: Vec<String> = (0..ROUNDS).map(|i| format!("last{i}")).collect();
    assert_eq!(lasts, want, "{kind}");
    delays.sort();
    let median = delays[delays.len() / 2];
    eprintln!("{kind}: take to 'sent' {delays:?}");
    // The helper's one-second look would give a median near 500 ms; the
    // wake-up through the eventfd takes a few ms even on a loaded machine.
    assert!(
        median < Duration::from_millis(250),
        "{kind}: median {median:?} from a take to the send (all: {delays:?})"
    );
}

/// A full channel: the child's awaiting send parks (no wake-ups while it
/// waits) and completes as soon as this process takes one message.
#[test]
fn an_awaiting_send_on_a_full_channel_is_woken_by_the_consumer() {
    let name = support::unique_name("aroom");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder()
        .capacity(2)
        .max_message(8)
        .create(&name)
        .unwrap();
    let mut rx = chan.receiver().unwrap();
    rounds("chan", &name, || rx.try_recv().ok());
}

/// The same on a native queue (the helper a poller on the senders' side).
#[test]
fn an_awaiting_send_on_a_full_queue_is_woken_by_the_consumer() {
    let name = support::unique_name("aqroom");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options()
        .capacity(2)
        .max_message(8)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    rounds("queue", &name, || q.try_recv().ok().map(|(m, _)| m));
}

/// The same through `ipcworks::tokio::open_sender` (a `Box<dyn
/// AsyncMessageSender>`, the poll-based path), whose fill ends with sends
/// cancelled by a timeout: they sent nothing (the "lastI" come in order,
/// once each, after the fills).
#[test]
fn an_awaiting_dyn_send_on_a_full_queue_is_woken_by_the_consumer() {
    let name = support::unique_name("adynroom");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options()
        .capacity(2)
        .max_message(8)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    rounds("dyn-queue", &name, || q.try_recv().ok().map(|(m, _)| m));
}
