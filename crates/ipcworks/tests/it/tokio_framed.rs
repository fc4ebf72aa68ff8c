//! A framed async send over a byte stream to a slow reader process
//! (issue 21): it does not block the runtime's thread while the reader
//! makes room, and sends cancelled mid-frame never corrupt the framing
//! (the reader gets every message whole, in order).

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ipcworks::frame::Framing;
use ipcworks::pipe;
use ipcworks::stream::FramedSender;
use ipcworks::tokio::Async;

use crate::support::{self, KillOnDrop};

const LIMIT: Duration = Duration::from_secs(60);

/// Message `i`: its number, then `len` bytes that say which it is.
fn message(i: u64, len: usize) -> Vec<u8> {
    let mut m = i.to_le_bytes().to_vec();
    m.extend((0..len).map(|k| (i as usize * 31 + k) as u8));
    m
}

#[test]
fn child() {
    support::as_child!(|role, _arg| {
        match role {
            // Reads length-prefixed frames from stdin slowly (4 KiB, then a
            // pause of 1 ms); checks each message against `message`; prints
            // "msg I" for each, and at the end "end N" with N the bytes of an
            // unfinished frame.
            "slow-frames" => {
                let mut input = std::io::stdin().lock();
                let mut buf: Vec<u8> = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = input.read(&mut chunk).unwrap();
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while buf.len() >= 4 {
                        let len = u32::from_le_bytes(buf[..4].try_into().unwrap()) as usize;
                        if buf.len() < 4 + len {
                            break;
                        }
                        let m: Vec<u8> = buf.drain(..4 + len).skip(4).collect();
                        let i = u64::from_le_bytes(m[..8].try_into().unwrap());
                        assert!(m == message(i, len - 8), "message {i} changed");
                        println!("msg {i}");
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                println!("end {}", buf.len());
            }
            other => support::unknown_role(other),
        }
    });
}

/// A slow reader process with our pipe's read end as its stdin; the write
/// end, and the child's stdout.
fn slow_reader() -> (KillOnDrop, pipe::PipeWriter, std::process::ChildStdout) {
    let (r, w) = pipe::pipe().unwrap();
    let mut cmd = support::child("tokio_framed::child", "slow-frames", "");
    cmd.stdin(Stdio::from(OwnedFd::from(r)))
        .stdout(Stdio::piped());
    let mut c = KillOnDrop::spawn(cmd);
    let out = c.0.as_mut().unwrap().stdout.take().unwrap();
    (c, w, out)
}

/// The reader's verdict: the messages it got, in order, and the bytes of
/// an unfinished frame at the end.
fn verdict(mut c: KillOnDrop, out: std::process::ChildStdout) -> (Vec<u64>, usize) {
    let mut got = Vec::new();
    let mut end = None;
    for l in BufReader::new(out).lines() {
        let l = l.unwrap();
        if let Some(i) = l.strip_prefix("msg ") {
            got.push(i.parse().unwrap());
        } else if let Some(n) = l.strip_prefix("end ") {
            end = Some(n.parse().unwrap());
        }
    }
    assert!(c.wait_for(LIMIT).success(), "the reader failed");
    (got, end.expect("the reader did not finish"))
}

/// One worker thread runs both the sending task and a ticker: while 1.5
/// MiB go to a reader that takes about 4 KiB a millisecond, the ticker
/// keeps ticking (a send that wrote its frame whole in one poll would
/// hold the only worker until the reader had taken it all).
#[test]
fn a_framed_async_send_to_a_slow_reader_leaves_the_runtime_free() {
    let (child, w, out) = slow_reader();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let ticks = Arc::new(AtomicU64::new(0));
    let t2 = ticks.clone();
    let during = rt.block_on(async move {
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t2.fetch_add(1, Ordering::SeqCst);
            }
        });
        let t3 = ticks.clone();
        let sender = tokio::spawn(async move {
            let mut tx = Async::sender(FramedSender::new(w, Framing::Frames)).unwrap();
            // Let the ticker start.
            tokio::time::sleep(Duration::from_millis(20)).await;
            let before = t3.load(Ordering::SeqCst);
            for i in 0..3 {
                tx.send_with(&message(i, 512 * 1024), Default::default())
                    .await
                    .unwrap();
            }
            t3.load(Ordering::SeqCst) - before
        });
        let during = tokio::time::timeout(LIMIT, sender).await.unwrap().unwrap();
        ticker.abort();
        during
    });
    let (got, rest) = verdict(child, out);
    assert_eq!(got, [0, 1, 2]);
    assert_eq!(rest, 0);
    eprintln!("the ticker ticked {during} times during the sends");
    assert!(
        during >= 10,
        "the runtime's only worker was held: {during} ticks while 1.5 MiB went to a slow reader"
    );
}

/// Sends of 100-300 KiB, most under a 3 ms timeout, to the slow reader:
/// many are cancelled, some after the stream took part of their frame.
/// The reader gets each message whole, in order, never one twice: every
/// completed send, plus those cancelled mid-frame (finished by the next
/// send), and no unfinished frame at the end (`flush`).
#[test]
fn framed_sends_cancelled_mid_frame_never_corrupt_the_stream() {
    let (child, w, out) = slow_reader();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (completed, cancelled) = rt.block_on(async move {
        let mut tx = Async::sender(FramedSender::new(w, Framing::Frames)).unwrap();
        let (mut completed, mut cancelled) = (Vec::new(), Vec::new());
        for i in 0..40u64 {
            let m = message(i, 100 * 1024 + (i as usize % 3) * 100 * 1024);
            let send = tx.send_with(&m, Default::default());
            // Every fifth send may take its time (it completes).
            let wait = Duration::from_millis(if i % 5 == 4 { 10_000 } else { 3 });
            match tokio::time::timeout(wait, send).await {
                Ok(r) => {
                    r.unwrap();
                    completed.push(i);
                }
                Err(_) => cancelled.push(i),
            }
        }
        tokio::time::timeout(LIMIT, tx.flush())
            .await
            .unwrap()
            .unwrap();
        (completed, cancelled)
    });
    let (got, rest) = verdict(child, out);
    eprintln!(
        "{} completed, {} cancelled, {} arrived",
        completed.len(),
        cancelled.len(),
        got.len()
    );
    assert_eq!(rest, 0, "an unfinished frame was left after flush");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "out of order or twice: {got:?}"
    );
    assert!(!completed.is_empty());
    for i in &completed {
        assert!(got.contains(i), "completed send {i} never arrived: {got:?}");
    }
    for i in &got {
        assert!(
            completed.contains(i) || cancelled.contains(i),
            "{i} arrived but was never sent"
        );
    }
    assert!(
        !cancelled.is_empty(),
        "no send was cancelled: the test shows nothing"
    );
    assert!(
        got.len() > completed.len(),
        "no send was cancelled mid-frame: the test shows nothing"
    );
}
