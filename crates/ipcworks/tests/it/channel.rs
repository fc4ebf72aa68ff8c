//! The shared-memory channel between real processes: exactly-once in-order
//! delivery, several producers, kill -9 at random moments, a peer that
//! scribbles over the segment, and the `shm:` endpoint.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::channel::{Channel, Receiver, Sender, WaitStrategy};
use ipcworks::message::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};

use crate::support::{self, KillOnDrop, ShmCleanup};

const LIMIT: Duration = Duration::from_secs(30);

/// An anonymous channel of `capacity` ring bytes for messages of at most
/// `max` bytes.
pub(crate) fn anon(capacity: usize, max: usize) -> Channel {
    Channel::builder()
        .capacity_bytes(capacity)
        .max_message(max)
        .anonymous()
        .unwrap()
}

/// A 64-bit mix (splitmix64) for sizes and payload patterns.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Size of message `seq` of stream `id`: mostly small, every ~50th up to
/// `max`, some exactly 0 and `max`.
pub(crate) fn size_of(id: u64, seq: u64, max: usize) -> usize {
    let h = mix(seq ^ (id << 48));
    match h % 50 {
        0 => max,
        1 => 0,
        2 => (h >> 8) as usize % (max + 1),
        _ => (h >> 8) as usize % 65.min(max + 1),
    }
}

/// Fills `buf` with message `seq` of stream `id`: id and seq first (when it
/// fits), then a pattern derived from both, so any torn, shifted or mixed-up
/// byte is detected.
/// Sizes for the several-producer test: at least 16 bytes, so every
/// message names its stream.
pub(crate) fn named_size(id: u64, seq: u64, max: usize) -> usize {
    16 + size_of(id, seq, max - 16)
}

pub(crate) fn fill(buf: &mut Vec<u8>, id: u64, seq: u64, len: usize) {
    buf.clear();
    let head = [seq.to_le_bytes(), id.to_le_bytes()].concat();
    let seed = mix(seq.wrapping_mul(31) ^ id);
    buf.extend((0..len).map(|i| {
        if i < 16 {
            head[i]
        } else {
            (seed >> ((i % 8) * 8)) as u8 ^ (i as u8)
        }
    }));
}

fn check(got: &[u8], id: u64, seq: u64, max: usize, scratch: &mut Vec<u8>) {
    fill(scratch, id, seq, size_of(id, seq, max));
    assert!(
        got == scratch.as_slice(),
        "stream {id} message {seq}: got {} bytes, expected {} (or content differs)",
        got.len(),
        scratch.len()
    );
}

pub(crate) fn fd_arg(chan: &Channel) -> (OwnedFd, String) {
    let fd = chan.inheritable_fd().unwrap();
    let s = fd.as_raw_fd().to_string();
    (fd, s)
}

pub(crate) fn chan_from_arg(arg: &str) -> Channel {
    let fd: i32 = arg.parse().unwrap();
    // SAFETY: the parent passed us this inherited descriptor number.
    Channel::from_fd(unsafe { OwnedFd::from_raw_fd(fd) }).unwrap()
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let parts: Vec<&str> = arg.split(',').collect();
        match role {
            // fd,id,count: send `count` messages of stream `id`, then exit.
            "send" => {
                let chan = chan_from_arg(parts[0]);
                let id: u64 = parts[1].parse().unwrap();
                let count: u64 = parts[2].parse().unwrap();
                let mut tx = chan.sender().unwrap();
                let max = tx.max_message();
                let mut buf = Vec::new();
                for seq in 0..count {
                    fill(&mut buf, id, seq, size_of(id, seq, max));
                    tx.send(&buf).unwrap();
                }
            }
            // name,id,count: the same over a named channel.
            "send-named" => {
                let mut tx = Sender::open(parts[0]).unwrap();
                let id: u64 = parts[1].parse().unwrap();
                let count: u64 = parts[2].parse().unwrap();
                let max = tx.max_message();
                let mut buf = Vec::new();
                for seq in 0..count {
                    fill(&mut buf, id, seq, named_size(id, seq, max));
                    tx.send(&buf).unwrap();
                }
            }
            // fd: send for ever (until killed), every 4th message large, half
            // of them through a loan written in pieces.
            "send-forever" => {
                let chan = chan_from_arg(parts[0]);
                let mut tx = chan.sender().unwrap();
                let max = tx.max_message();
                let mut buf = Vec::new();
                for seq in 0.. {
                    fill(&mut buf, 9, seq, size_of(9, seq, max));
                    if seq % 2 == 0 {
                        tx.send(&buf).unwrap();
                    } else {
                        let mut loan = tx.loan(buf.len()).unwrap();
                        // Slowly, so that many kills land mid-write.
                        for (i, piece) in buf.chunks(1000).enumerate() {
                            loan.write_at(i * 1000, piece).unwrap();
                            if i % 16 == 15 {
                                std::thread::sleep(Duration::from_micros(50));
                            }
                        }
                        loan.publish().unwrap();
                    }
                }
            }
            // fd: reserve room for a message through a loan, say so, then wait
            // to be killed without ever publishing it.
            "hold-loan" => {
                let chan = chan_from_arg(parts[0]);
                let mut tx = chan.sender().unwrap();
                let _loan = tx.loan(40).unwrap();
                println!("ready");
                std::thread::sleep(Duration::from_secs(60));
            }
            // fd: take the receiver seat, say so, then wait to be killed.
            "hold-receiver" => {
                let chan = chan_from_arg(parts[0]);
                let _rx = chan.receiver().unwrap();
                println!("ready");
                std::thread::sleep(Duration::from_secs(60));
            }
            // name: try to become a second receiver; exit 0 if refused.
            "second-receiver" => {
                let e = Receiver::open(parts[0]).unwrap_err();
                assert!(matches!(e, Error::Refused { .. }), "{e}");
                assert!(e.to_string().contains("already has a receiver"), "{e}");
            }
            other => support::unknown_role(other),
        }
    });
}

#[test]
fn two_processes_exchange_a_million_mixed_messages() {
    // 1,000,000 messages, sizes 0..=4096 (mostly ≤ 64 B, every 50th up to
    // 4096), through a 64 KiB ring so it wraps thousands of times.
    const COUNT: u64 = 1_000_000;
    let chan = anon(64 * 1024, 4096);
    let mut rx = chan.receiver().unwrap();
    let (fd, arg) = fd_arg(&chan);
    let mut c = KillOnDrop::spawn(support::child(
        "channel::child",
        "send",
        &format!("{arg},1,{COUNT}"),
    ));
    drop(fd);
    let mut buf = Vec::new();
    let mut slice = [0u8; 4096];
    let mut scratch = Vec::new();
    for seq in 0..COUNT {
        // Both copy-out receives: into a vector, and into a fixed buffer.
        if seq % 2 == 0 {
            rx.recv_into(&mut buf).unwrap();
            check(&buf, 1, seq, 4096, &mut scratch);
        } else {
            let n = rx.recv_slice(&mut slice).unwrap();
            check(&slice[..n], 1, seq, 4096, &mut scratch);
        }
    }
    assert!(c.wait_for(LIMIT).success());
    assert!(matches!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// One round: a child streams messages (large ones written in pieces), the
/// parent kills it with SIGKILL after `after` messages, then drains and must
/// see only whole messages, in order, followed by `Disconnected`.
fn kill_round(after: u64, max: usize) -> (u64, u64) {
    let chan = anon(4 * max, max);
    let mut rx = chan.receiver().unwrap();
    let (fd, arg) = fd_arg(&chan);
    let mut c = KillOnDrop::spawn(support::child("channel::child", "send-forever", &arg));
    drop(fd);
    let mut buf = Vec::new();
    let mut scratch = Vec::new();
    let mut seq = 0;
    let start = Instant::now();
    loop {
        if seq == after {
            c.kill9();
        }
        // Half the rounds poll with try_recv, half block in recv_timeout.
        let got = if after.is_multiple_of(2) {
            loop {
                match rx.try_recv() {
                    Err(TryRecvError::Empty) => {
                        assert!(start.elapsed() < LIMIT, "no Disconnected after the kill");
                        std::thread::sleep(Duration::from_micros(200));
                    }
                    other => break other.map_err(Error::from),
                }
            }
        } else {
            rx.recv_timeout(Duration::from_secs(10))
                .map_err(Error::from)
        };
        match got {
            Ok(m) => {
                check(&m, 9, seq, max, &mut scratch);
                buf = m;
                seq += 1;
            }
            Err(Error::Disconnected) => {
                assert!(seq >= after, "disconnected after {seq} of {after}");
                break;
            }
            Err(e) => panic!("after {seq} messages: {e}"),
        }
        assert!(start.elapsed() < LIMIT, "no Disconnected after the kill");
    }
    drop(buf);
    (seq, rx.skipped_dead())
}

#[test]
fn killing_the_sender_at_random_moments_delivers_only_whole_messages() {
    // 400 rounds; each kills the sender after a random number of messages
    // (it is then usually copying into the ring or blocked on a full one),
    // with messages up to 128 KiB so some kills land mid-copy.
    const ROUNDS: u64 = 400;
    let (mut total, mut mid_write) = (0, 0);
    let t0 = Instant::now();
    for round in 0..ROUNDS {
        let after = 1 + mix(round ^ u64::from(std::process::id())) % 40;
        let (n, skipped) = kill_round(after, 128 * 1024);
        total += n;
        mid_write += skipped;
    }
    eprintln!(
        "{ROUNDS} kill rounds, {total} messages checked, {mid_write} kills landed \
         mid-write (record skipped), {:?}",
        t0.elapsed()
    );
    assert!(
        mid_write > 0,
        "no kill landed mid-write: the test lost its point"
    );
}

/// A sender killed while its loan sits at the head of the ring, and a live
/// sender that keeps sending: a receiver blocked in `Block` mode is woken
/// by each of the live sender's messages, none of which it may take before
/// the dead record is skipped. No sleep slice ever passes without a
/// wake-up, so only the liveness check it makes by the clock while woken
/// for nothing finds the dead sender; without it the receiver would wait
/// until the live sender stops.
#[test]
fn a_dead_senders_loan_at_the_head_is_skipped_while_a_live_sender_keeps_waking_the_receiver() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let chan = anon(1 << 20, 64);
    // The live sender attaches first (a sender attaching later would find
    // the dead one and clear its reservation itself).
    let mut tx = chan.sender().unwrap();
    let (fd, arg) = fd_arg(&chan);
    let mut c = KillOnDrop::spawn_ready(support::child("channel::child", "hold-loan", &arg));
    drop(fd);
    // The receiver blocks behind the child's reservation, then the child
    // dies.
    let mut rx = chan.receiver().unwrap();
    rx.set_wait_strategy(WaitStrategy::Block);
    let receiver = std::thread::spawn(move || {
        let first = rx.recv().unwrap();
        (rx, first, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(50));
    c.kill9();
    // One message every 2 ms for 6 s at most: the 3000 records of 128
    // bytes fit the ring, so the sender never blocks behind the dead
    // record (which would end the wake-ups).
    let stop = Arc::new(AtomicBool::new(false));
    let live = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            for seq in 0u64..3000 {
                if stop.load(Ordering::Relaxed) {
                    return seq;
                }
                tx.send(&seq.to_le_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
            3000
        })
    };
    let start = Instant::now();
    let (mut rx, first, at) = receiver.join().unwrap();
    let waited = at - start;
    stop.store(true, Ordering::Relaxed);
    let sent = live.join().unwrap();
    assert_eq!(
        first,
        0u64.to_le_bytes(),
        "the dead sender's record was delivered"
    );
    assert!(
        waited < Duration::from_secs(2),
        "the receiver waited {waited:?} for the first of {sent} live messages"
    );
    // Everything else the live sender sent follows, in order.
    for seq in 1..sent {
        assert_eq!(rx.recv().unwrap(), seq.to_le_bytes());
    }
}

#[test]
fn a_sender_blocked_on_a_full_channel_sees_its_receiver_killed() {
    let chan = anon(4096, 1024);
    let (fd, arg) = fd_arg(&chan);
    let mut c = KillOnDrop::spawn_ready(support::child("channel::child", "hold-receiver", &arg));
    drop(fd);
    // The seat is taken: a second receiver is refused.
    let e = chan.receiver().unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");

    let mut tx = chan.sender().unwrap();
    let pid = c.pid();
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    });
    let start = Instant::now();
    let e = loop {
        match tx.send(&[7; 1000]) {
            Ok(()) => assert!(start.elapsed() < LIMIT),
            Err(e) => break e,
        }
    };
    assert!(matches!(e, Error::Disconnected), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
    killer.join().unwrap();
    c.kill9();
    // The dead receiver's seat can be taken over.
    let mut rx = chan.receiver().unwrap();
    assert!(rx.try_recv().is_ok());
}

#[test]
fn a_second_receiver_process_is_refused_and_a_clean_exit_disconnects() {
    let name = support::unique_name("second");
    let seg = format!("ipcworks.chan.{name}");
    let _clean = ShmCleanup(vec![seg.clone()]);
    let mut rx = Receiver::create(&name).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(format!("/dev/shm/{seg}"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let mut c = KillOnDrop::spawn(support::child("channel::child", "second-receiver", &name));
    assert!(c.wait_for(LIMIT).success());
    let mut s = KillOnDrop::spawn(support::child(
        "channel::child",
        "send-named",
        &format!("{name},5,10"),
    ));
    assert!(s.wait_for(LIMIT).success());
    let mut scratch = Vec::new();
    for seq in 0..10 {
        let m = rx.recv_timeout(LIMIT).unwrap();
        fill(&mut scratch, 5, seq, named_size(5, seq, rx.max_message()));
        assert_eq!(m, scratch);
    }
    let t = Instant::now();
    assert!(matches!(rx.recv(), Err(Error::Disconnected)));
    assert!(t.elapsed() < Duration::from_secs(5));
    drop(rx);
    assert!(!std::path::Path::new(&format!("/dev/shm/{seg}")).exists());
}

#[test]
fn api_errors_loans_refs_typed_and_pod() {
    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Job {
        id: u32,
        name: String,
    }
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(100)
        .wait(WaitStrategy::Block)
        .anonymous()
        .unwrap();
    // Empty try_recv, timeouts, too large and the iterator's end are the
    // conformance suite's (conformance::shm); what follows is the
    // channel's own.
    let mut rx = chan.receiver().unwrap();
    let mut tx = chan.sender().unwrap();
    // Fill it: try_send then says Full, send_timeout says Timeout.
    let mut n = 0;
    while tx.try_send(&[n as u8; 100]).is_ok() {
        n += 1;
    }
    assert!(n > 10);
    assert!(matches!(tx.try_send(&[0; 100]), Err(TrySendError::Full)));
    assert!(matches!(
        tx.send_timeout(&[0; 100], Duration::from_millis(30)),
        Err(SendTimeoutError::Timeout)
    ));
    for i in 0..n {
        assert_eq!(rx.try_recv().unwrap(), vec![i as u8; 100]);
    }
    // Loan: written in place, published; a dropped loan is skipped.
    let mut loan = tx.loan(11).unwrap();
    loan.write_at(0, b"hello").unwrap();
    loan.write_at(5, b" world").unwrap();
    assert!(loan.write_at(6, b"too long").is_err());
    loan.publish().unwrap();
    drop(tx.loan(50).unwrap());
    tx.send(b"after").unwrap();
    {
        let m = rx.recv_ref().unwrap();
        assert_eq!(m.len(), 11);
        let mut part = [0; 5];
        m.read_at(6, &mut part).unwrap();
        assert_eq!(&part, b"world");
        assert_eq!(m.to_vec().unwrap(), b"hello world");
    }
    assert_eq!(rx.recv().unwrap(), b"after");
    // Copy-out into the caller's buffer: a message longer than the buffer
    // is refused and stays first in line.
    tx.send(b"0123456789").unwrap();
    tx.send(b"next").unwrap();
    let mut small = [0u8; 4];
    assert!(matches!(
        rx.recv_slice(&mut small),
        Err(Error::MessageTooLarge { len: 10, max: 4 })
    ));
    let mut big = [0u8; 16];
    assert_eq!(rx.try_recv_slice(&mut big).unwrap(), 10);
    assert_eq!(&big[..10], b"0123456789");
    assert_eq!(
        rx.recv_slice_timeout(&mut small, Duration::from_secs(5))
            .unwrap(),
        4
    );
    assert_eq!(&small, b"next");
    assert!(matches!(
        rx.try_recv_slice(&mut big),
        Err(TryRecvError::Empty)
    ));
    assert!(matches!(
        rx.recv_slice_timeout(&mut big, Duration::from_millis(30)),
        Err(RecvTimeoutError::Timeout)
    ));
    // Typed (postcard) and plain data (zerocopy).
    let job = Job {
        id: 7,
        name: "build".into(),
    };
    tx.send_typed(&job).unwrap();
    assert_eq!(rx.recv_typed::<Job>().unwrap(), job);
    tx.send_pod(&[1u32, 2, 3]).unwrap();
    assert_eq!(rx.recv_pod::<[u32; 3]>().unwrap(), [1, 2, 3]);
    tx.send_pod(&5u64).unwrap();
    assert!(matches!(
        rx.recv_pod::<u32>(),
        Err(Error::InvalidArgument(_))
    ));
    drop(tx);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
}

#[test]
fn threads_ping_pong_in_every_wait_strategy() {
    for wait in [
        WaitStrategy::Block,
        WaitStrategy::Spin,
        WaitStrategy::default(),
    ] {
        let a = Channel::builder().wait(wait).anonymous().unwrap();
        let b = Channel::builder().wait(wait).anonymous().unwrap();
        let (mut arx, mut btx) = (a.receiver().unwrap(), b.sender().unwrap());
        let (mut atx, mut brx) = (a.sender().unwrap(), b.receiver().unwrap());
        let t = std::thread::spawn(move || {
            for i in 0u32..2000 {
                let v: u32 = brx.recv_pod().unwrap();
                assert_eq!(v, i);
                atx.send_pod(&(v + 1)).unwrap();
            }
        });
        for i in 0u32..2000 {
            btx.send_pod(&i).unwrap();
            assert_eq!(arx.recv_pod::<u32>().unwrap(), i + 1);
        }
        t.join().unwrap();
    }
}

#[test]
fn shm_endpoint_round_trip() {
    use ipcworks::endpoint::{Endpoint, Options, open_receiver, open_sender};
    use ipcworks::message::{Deadline, Meta};
    let name = support::unique_name("ep");
    let seg = format!("ipcworks.chan.{name}");
    let _clean = ShmCleanup(vec![seg.clone()]);
    let ep: Endpoint = format!("shm:{name}").parse().unwrap();
    let opts = Options {
        max_message: Some(512),
        capacity: Some(16),
        ..Options::default()
    };
    let mut rx = open_receiver(&ep, &opts).unwrap();
    let mut tx = open_sender(&ep, &opts).unwrap();
    tx.send_with(b"one", Meta::default()).unwrap();
    tx.send_with(&[1; 512], Meta::default()).unwrap();
    assert!(matches!(
        tx.send_with(&[1; 513], Meta::default()),
        Err(Error::MessageTooLarge { .. })
    ));
    assert_eq!(rx.recv_until(Deadline::Never).unwrap().0, b"one");
    assert_eq!(
        rx.recv_until(Deadline::after(LIMIT)).unwrap().0,
        vec![1; 512]
    );
    drop(tx);
    assert!(matches!(
        rx.recv_until(Deadline::after(LIMIT)),
        Err(Error::Disconnected)
    ));
    drop(rx);
    assert!(!std::path::Path::new(&format!("/dev/shm/{seg}")).exists());
    // A sender with no receiver gets a clear error after its wait.
    let e = Sender::open(&support::unique_name("nobody")).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

#[test]
fn threads_several_senders_one_receiver() {
    // The same protocol between threads (also what ThreadSanitizer checks):
    // three senders contend for the reservation lock on a small ring.
    const EACH: u64 = 20_000;
    let chan = anon(4096, 256);
    let mut rx = chan.receiver().unwrap();
    let senders: Vec<_> = (0..3u64)
        .map(|id| {
            let mut tx = chan.sender().unwrap();
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                for seq in 0..EACH {
                    fill(&mut buf, id, seq, named_size(id, seq, 256));
                    if seq % 3 == 0 {
                        let mut loan = tx.loan(buf.len()).unwrap();
                        loan.copy_from_slice(&buf).unwrap();
                        loan.publish().unwrap();
                    } else {
                        tx.send(&buf).unwrap();
                    }
                }
            })
        })
        .collect();
    let mut next = [0u64; 3];
    let mut scratch = Vec::new();
    for _ in 0..3 * EACH {
        let m = rx.recv_timeout(LIMIT).unwrap();
        let id = u64::from_le_bytes(m[8..16].try_into().unwrap());
        let seq = &mut next[id as usize];
        fill(&mut scratch, id, *seq, named_size(id, *seq, 256));
        assert!(m == scratch, "stream {id} message {seq}");
        *seq += 1;
    }
    for t in senders {
        t.join().unwrap();
    }
    assert!(matches!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// A receiver polling with `try_recv` (which after the first empty poll
/// looks at the senders only when one attaches or detaches, or once per
/// liveness slice) still sees a sender that attaches after it started
/// polling, gets all its messages in order, and then `Disconnected` on
/// every further call.
#[test]
fn polling_receiver_sees_late_senders_and_their_departure() {
    let chan = anon(4096, 64);
    let mut rx = chan.receiver().unwrap();
    for _ in 0..1000 {
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }
    let other = chan.clone();
    let t = std::thread::spawn(move || {
        let mut tx = other.sender().unwrap();
        for i in 0..10_000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let start = Instant::now();
    let mut next = 0u32;
    let mut empty = 0u64;
    loop {
        match rx.try_recv() {
            Ok(m) => {
                assert_eq!(m, next.to_le_bytes(), "out of order");
                next += 1;
            }
            Err(TryRecvError::Empty) => empty += 1,
            Err(TryRecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no Disconnected");
    }
    t.join().unwrap();
    assert_eq!(next, 10_000, "messages lost before Disconnected");
    assert!(empty > 0, "the poll never found the channel empty");
    for _ in 0..3 {
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Disconnected)));
    }
}

/// A blocked receiver looks at the senders' slots only when their
/// generation word says one attached or detached: it must still tell one
/// sender's departure (stay blocked, the other is there) from the last
/// one's (`Disconnected`), and take the message sent in between.
#[test]
fn a_blocked_receiver_tells_one_senders_departure_from_the_last_ones() {
    for wait in [WaitStrategy::Block, WaitStrategy::default()] {
        let chan = anon(4096, 64);
        let mut rx = chan.receiver().unwrap();
        rx.set_wait_strategy(wait);
        let (a, mut b) = (chan.sender().unwrap(), chan.sender().unwrap());
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(a);
            std::thread::sleep(Duration::from_millis(50));
            b.send(b"after a left").unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(b);
        });
        let start = Instant::now();
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"after a left", "{wait:?}");
        assert!(
            matches!(rx.recv_timeout(LIMIT), Err(RecvTimeoutError::Disconnected)),
            "{wait:?}"
        );
        assert!(start.elapsed() < LIMIT, "{wait:?}");
        t.join().unwrap();
        // A sender that comes back is seen again.
        let mut c = chan.sender().unwrap();
        c.send(b"back").unwrap();
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"back");
        drop(c);
        assert!(matches!(
            rx.recv_timeout(LIMIT),
            Err(RecvTimeoutError::Disconnected)
        ));
    }
}
