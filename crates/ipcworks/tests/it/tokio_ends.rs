//! More async ends (issue 21): the channel's zero-copy `recv_ref`
//! awaited and cancelled against a producer process, a `Duplex` to `cat`,
//! datagram and seqpacket sockets keeping message boundaries (one
//! completed send = one message, also when sends are cancelled), and
//! standard input and output of a child process as async streams.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use ipcworks::Error;
use ipcworks::channel::{Channel, Sender};
use ipcworks::pipe::Duplex;
use ipcworks::socket::{UnixDatagram, UnixListener, UnixSeqpacket};
use ipcworks::tokio::{AsyncDuplex, AsyncPacket, AsyncReceiver};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pipe::TmpPath;
use crate::support::{self, KillOnDrop, ShmCleanup, runtime};

const LIMIT: Duration = Duration::from_secs(60);
/// Messages a producer sends.
const COUNT: u64 = 3000;
/// Message `i` of a stream whose lengths vary (0-299 bytes), each byte
/// saying which message it belongs to.
fn message(i: u64) -> Vec<u8> {
    vec![(i % 251) as u8; (i % 300) as usize]
}

/// Polls `fut` once: its output, or `None` when it was pending (it is
/// then dropped: cancelled at its first await point).
async fn poll_once<F: std::future::Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| match fut.as_mut().poll(cx) {
        std::task::Poll::Ready(v) => std::task::Poll::Ready(Some(v)),
        std::task::Poll::Pending => std::task::Poll::Ready(None),
    })
    .await
}

/// Turn `turn` of a cancelling receive loop: every third waits up to a
/// millisecond, the others poll once and are cancelled if pending.
async fn cancelling<F: std::future::Future>(turn: u64, fut: F) -> Option<F::Output> {
    match turn % 3 {
        0 => tokio::time::timeout(Duration::from_millis(1), fut)
            .await
            .ok(),
        _ => {
            let r = poll_once(fut).await;
            if r.is_none() {
                tokio::task::yield_now().await;
            }
            r
        }
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // Sends 0..COUNT (u64) on channel `arg`, pausing now and then.
            "produce-chan" => {
                let mut tx = Sender::open(&arg).unwrap();
                for i in 0..COUNT {
                    tx.send(&i.to_le_bytes()).unwrap();
                    if i % 4 != 0 {
                        std::thread::sleep(Duration::from_micros(50));
                    }
                }
            }
            // Connects to the seqpacket listener at `arg` and sends
            // message(0..COUNT), then closes.
            "seqpacket-send" => {
                let s = UnixSeqpacket::connect(&arg).unwrap();
                for i in 0..COUNT {
                    s.send(&message(i)).unwrap();
                    if i % 10 == 0 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            // Binds a datagram socket at `arg`, says "ready", waits for a
            // line on stdin, then receives datagrams until "end": each must
            // be a whole message(i); prints "got N SUM" (count, sum of i).
            "datagram-count" => {
                let (s, _file) = UnixDatagram::bind(&arg).unwrap();
                println!("ready");
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).unwrap();
                let (mut n, mut sum) = (0u64, 0u64);
                let mut buf = vec![0u8; 4096];
                loop {
                    let len = s.recv(&mut buf).unwrap();
                    let m = &buf[..len];
                    if m == b"end" {
                        break;
                    }
                    let i = u64::from_le_bytes(m[..8].try_into().unwrap());
                    assert_eq!(&m[8..], &message(i)[..], "datagram {i} changed");
                    n += 1;
                    sum += i;
                }
                println!("got {n} {sum}");
            }
            // Copies standard input to standard output as async streams, then
            // says on stderr whether descriptor 0 is non-blocking afterwards.
            "stdio-echo" => {
                runtime().block_on(async {
                    let mut i = ipcworks::tokio::stdin().unwrap();
                    let mut o = ipcworks::tokio::stdout().unwrap();
                    tokio::io::copy(&mut i, &mut o).await.unwrap();
                });
                let nb = rustix::fs::fcntl_getfl(std::io::stdin())
                    .unwrap()
                    .contains(rustix::fs::OFlags::NONBLOCK);
                eprintln!("stdin non-blocking after: {nb}");
            }
            other => support::unknown_role(other),
        }
    });
}

/// The zero-copy receive, awaited: a producer process sends 0..COUNT; a
/// task (the future is `Send`) receives with `recv_ref` under timeouts of
/// 0-1 ms, so thousands of waits are cancelled, holds each message across
/// an await before reading it, and sees every number exactly once, in
/// order, then `Disconnected`.
#[test]
fn async_recv_ref_is_cancel_safe_against_a_producer_process() {
    let name = support::unique_name("aref");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder().capacity(16).create(&name).unwrap();
    let rx = chan.receiver().unwrap();
    let mut child = KillOnDrop::spawn(support::child("tokio_ends::child", "produce-chan", &name));
    let (got, cancelled) = runtime().block_on(async move {
        let task = tokio::spawn(async move {
            let mut rx = AsyncReceiver::new(rx).unwrap();
            let (mut next, mut cancelled, mut turn) = (0u64, 0u64, 0u64);
            loop {
                turn += 1;
                match cancelling(turn, rx.recv_ref()).await {
                    None => cancelled += 1,
                    Some(Ok(m)) => {
                        // Held across an await: only this receiver is
                        // borrowed, the ring space waits.
                        tokio::task::yield_now().await;
                        let v: u64 = m.read_pod().unwrap();
                        assert_eq!(v, next, "out of order or duplicated");
                        next += 1;
                    }
                    Some(Err(Error::Disconnected)) => break,
                    Some(Err(e)) => panic!("{e}"),
                }
            }
            (next, cancelled)
        });
        tokio::time::timeout(LIMIT, task).await.unwrap().unwrap()
    });
    assert!(child.wait_for(LIMIT).success());
    assert_eq!(got, COUNT);
    eprintln!("{cancelled} recv_ref waits cancelled");
    assert!(cancelled > 100, "only {cancelled} waits were cancelled");
}

/// A `Duplex` to `cat` as one async stream: 512 KiB written and read back
/// at once (split into halves), then `shutdown` closes the writing half,
/// cat exits and the reader sees the end.
#[test]
fn async_duplex_round_trips_through_cat() {
    let (io, child) = Duplex::spawn(Command::new("cat")).unwrap();
    let mut child = KillOnDrop(Some(child));
    let data: Vec<u8> = (0..512 * 1024u32).map(|i| (i % 253) as u8).collect();
    let back = runtime().block_on(async {
        let io = AsyncDuplex::new(io).unwrap();
        let (mut r, mut w) = tokio::io::split(io);
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            w.shutdown().await.unwrap();
            assert!(w.write_all(b"x").await.is_err(), "a write after shutdown");
        });
        let mut back = Vec::new();
        tokio::time::timeout(LIMIT, r.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        back
    });
    assert!(child.wait_for(LIMIT).success());
    assert!(back == data, "{} bytes came back, changed", back.len());
}

/// Seqpacket: a client process sends COUNT messages of 0-299 bytes; the
/// async receiver, cancelled at random, gets each whole and in order
/// (boundaries kept, an empty message too), then 0 at the end.
#[test]
fn async_seqpacket_keeps_message_boundaries_from_a_client_process() {
    let path = TmpPath::new("aseq.sock");
    let listener = UnixListener::bind_seqpacket(&path.0).unwrap();
    let mut child = KillOnDrop::spawn(support::child(
        "tokio_ends::child",
        "seqpacket-send",
        path.0.to_str().unwrap(),
    ));
    let conn = listener.accept_seqpacket().unwrap();
    let (got, cancelled) = runtime().block_on(async move {
        let s = AsyncPacket::new(conn).unwrap();
        let mut buf = vec![0u8; 4096];
        let (mut next, mut cancelled, mut turn) = (0u64, 0u64, 0u64);
        loop {
            turn += 1;
            match cancelling(turn, s.recv(&mut buf)).await {
                None => cancelled += 1,
                Some(r) => {
                    let n = r.unwrap();
                    if n == 0 && next == COUNT {
                        break;
                    }
                    assert_eq!(&buf[..n], &message(next)[..], "message {next}");
                    next += 1;
                }
            }
        }
        (next, cancelled)
    });
    assert!(child.wait_for(LIMIT).success());
    assert_eq!(got, COUNT);
    eprintln!("{cancelled} seqpacket receives cancelled");
    assert!(cancelled > 100, "only {cancelled} receives were cancelled");
}

/// Datagrams, sent asynchronously to a reader process that first reads
/// nothing (so the socket fills and sends wait), each send under a
/// timeout of zero or 1 ms: every send that completed arrived as exactly
/// one whole datagram, and none that was cancelled arrived.
#[test]
fn a_cancelled_async_datagram_send_sent_nothing_a_completed_one_one_datagram() {
    let path = TmpPath::new("adgram.sock");
    let mut cmd = support::child(
        "tokio_ends::child",
        "datagram-count",
        path.0.to_str().unwrap(),
    );
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let c = child.0.as_mut().unwrap();
    let mut go = c.stdin.take().unwrap();
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("ready") {
        line.clear();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the reader ended");
    }
    let (sent, sum, cancelled) = runtime().block_on(async {
        let tx = AsyncPacket::new(UnixDatagram::connect(&path.0).unwrap()).unwrap();
        let (mut sent, mut sum, mut cancelled) = (0u64, 0u64, 0u64);
        for i in 0..COUNT {
            if i == COUNT / 3 {
                // Enough cancelled sends on a full socket: let it read.
                go.write_all(b"go\n").unwrap();
            }
            let mut m = i.to_le_bytes().to_vec();
            m.extend_from_slice(&message(i));
            let wait = Duration::from_millis(i % 2);
            match tokio::time::timeout(wait, tx.send(&m)).await {
                Ok(r) => {
                    r.unwrap();
                    sent += 1;
                    sum += i;
                }
                Err(_) => cancelled += 1,
            }
        }
        tokio::time::timeout(LIMIT, tx.send(b"end"))
            .await
            .unwrap()
            .unwrap();
        (sent, sum, cancelled)
    });
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert!(child.wait_for(LIMIT).success());
    let got = rest
        .lines()
        .find_map(|l| l.strip_prefix("got "))
        .unwrap_or_else(|| panic!("{rest}"));
    assert_eq!(got, format!("{sent} {sum}"), "{cancelled} cancelled");
    assert!(
        cancelled > 0,
        "no send was cancelled: the test shows nothing"
    );
    eprintln!("{sent} datagram sends completed, {cancelled} cancelled");
}

/// A child process's standard input and output as async streams: 1 MiB
/// piped through it comes back unchanged, and descriptor 0 is blocking
/// again afterwards.
#[test]
fn stdin_and_stdout_as_async_streams_in_a_child_process() {
    let mut cmd = support::child("tokio_ends::child", "stdio-echo", "");
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let c = child.0.as_mut().unwrap();
    let mut input = c.stdin.take().unwrap();
    let mut output = c.stdout.take().unwrap();
    let mut errors = c.stderr.take().unwrap();
    let data: Vec<u8> = (0..1 << 20u32).map(|i| (i % 249) as u8).collect();
    let sent = data.clone();
    let writer = std::thread::spawn(move || {
        input.write_all(&sent).unwrap();
    });
    let mut back = Vec::new();
    output.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    let mut err = String::new();
    errors.read_to_string(&mut err).unwrap();
    assert!(child.wait_for(LIMIT).success(), "{err}");
    // The test harness prints its own lines first.
    let at = back.len().saturating_sub(data.len());
    assert!(
        back[at..] == data[..],
        "{} bytes came back, changed",
        back.len()
    );
    assert!(
        err.contains("stdin non-blocking after: false"),
        "descriptor 0 stayed non-blocking: {err}"
    );
}
