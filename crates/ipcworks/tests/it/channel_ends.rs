//! The channel's ends and sizes: `capacity` in messages of the largest
//! size, `len`, `Sender::try_clone`, and `channel::pair` between a parent
//! and a real child process, in both directions, with the child killed.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::channel::{self, Channel, DEFAULT_CAPACITY_BYTES, MAX_SENDERS, Sender};
use ipcworks::message::{RecvTimeoutError, TryRecvError};

use crate::support::{self, KillOnDrop};

const LIMIT: Duration = Duration::from_secs(30);
/// Messages each pair test sends: many more than the pair holds, so the
/// sender waits for room many times.
const COUNT: u64 = 2000;
const FD_VAR: &str = "IPCWORKS_TEST_CHANNEL_FD";

#[test]
fn child() {
    support::as_child!(|role, _arg| {
        // SAFETY: the parent passed this descriptor to us with pass_fd_env,
        // and nothing else in this process takes it.
        let fd = unsafe { ipcworks::pipe::take_inherited(FD_VAR) }.unwrap();
        let chan = Channel::from_fd(fd).unwrap();
        match role {
            // Attaches late, then sends COUNT numbered messages.
            "send" => {
                std::thread::sleep(Duration::from_millis(200));
                let mut tx = chan.sender().unwrap();
                for i in 0..COUNT {
                    tx.send(&i.to_le_bytes()).unwrap();
                }
            }
            // Attaches late, receives until the parent's sender is gone, and
            // says how many came in order.
            "recv" => {
                std::thread::sleep(Duration::from_millis(200));
                let mut rx = chan.receiver().unwrap();
                println!("GOT {}", in_order_until_disconnected(&mut rx));
            }
            // Sends one message, says so, and waits to be killed.
            "send-hang" => {
                let mut tx = chan.sender().unwrap();
                tx.send(b"one").unwrap();
                println!("ready");
                std::thread::sleep(Duration::from_secs(60));
            }
            other => support::unknown_role(other),
        }
    });
}

/// Receives until the senders are gone, checking that message `n` is
/// `n` as 8 little-endian bytes; returns how many came.
fn in_order_until_disconnected(rx: &mut channel::Receiver) -> u64 {
    let mut next = 0u64;
    loop {
        match rx.recv_timeout(LIMIT) {
            Ok(m) => {
                assert_eq!(m, next.to_le_bytes(), "message {next} out of order");
                next += 1;
            }
            Err(RecvTimeoutError::Disconnected) => return next,
            Err(e) => panic!("after {next} messages: {e}"),
        }
    }
}

/// Starts this test binary as the child `role`, handing it `fd`.
fn spawn(role: &str, fd: std::os::fd::OwnedFd, ready: bool) -> KillOnDrop {
    let mut cmd = support::child("channel_ends::child", role, "");
    ipcworks::pipe::pass_fd_env(&mut cmd, fd, FD_VAR).unwrap();
    if ready {
        KillOnDrop::spawn_ready(cmd)
    } else {
        cmd.stdout(Stdio::piped());
        KillOnDrop::spawn(cmd)
    }
}

#[test]
fn capacity_counts_messages_of_the_largest_size_at_any_ring_phase() {
    for (n, max) in [
        (1, 100),
        (3, 64),
        (5, 1000),
        (16, 4096),
        (7, 65536),
        (2, 0),
        (21, 100),
        (85, 100),
    ] {
        let chan = Channel::builder()
            .capacity(n)
            .max_message(max)
            .anonymous()
            .unwrap();
        assert!(
            chan.capacity() >= n,
            "capacity({n}) gave {}",
            chan.capacity()
        );
        assert!(chan.capacity_bytes().is_power_of_two());
        let mut tx = chan.sender().unwrap();
        let mut rx = chan.receiver().unwrap();
        let big = vec![0xA5u8; max];
        // Move the ring's head by a few lines each round, so the n
        // messages start at many places, padding at the ring's end included.
        for round in 0..40usize {
            let small = vec![round as u8; round * 24 % (max + 1)];
            tx.try_send(&small).unwrap();
            assert_eq!(rx.try_recv().unwrap(), small);
            for i in 0..n {
                if let Err(e) = tx.try_send(&big) {
                    panic!("capacity({n}) of {max}-byte messages, round {round}: message {i}: {e}");
                }
            }
            assert_eq!(rx.len().unwrap(), n);
            for _ in 0..n {
                assert_eq!(rx.try_recv().unwrap(), big);
            }
        }
    }
    // Bytes as before, under their new name.
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(100)
        .anonymous()
        .unwrap();
    assert_eq!(chan.capacity_bytes(), 4096);
    assert_eq!(
        chan.capacity(),
        4096 / 192 - 1,
        "records of 192 bytes, one lost to padding"
    );
    let default = Channel::builder().anonymous().unwrap();
    assert_eq!(default.capacity_bytes(), DEFAULT_CAPACITY_BYTES);
    // Far too many is a clear error, not a huge segment.
    for n in [usize::MAX, 1 << 40] {
        let e = Channel::builder().capacity(n).anonymous().unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    }
}

#[test]
fn len_counts_waiting_messages_past_padding_and_unfinished_loans() {
    // Records of 1088 bytes in a 4 KiB ring: every fourth lap position
    // pads to the ring's end.
    let chan = Channel::builder()
        .capacity_bytes(4096)
        .max_message(1000)
        .anonymous()
        .unwrap();
    let mut tx = chan.sender().unwrap();
    let mut tx2 = tx.try_clone().unwrap();
    let mut rx = chan.receiver().unwrap();
    let all_say = |n: usize, tx: &Sender, rx: &channel::Receiver| {
        assert_eq!(chan.len().unwrap(), n);
        assert_eq!(tx.len().unwrap(), n);
        assert_eq!(rx.len().unwrap(), n);
        assert_eq!(chan.is_empty().unwrap(), n == 0);
        assert_eq!(rx.is_empty().unwrap(), n == 0);
    };
    all_say(0, &tx, &rx);
    for round in 0..20usize {
        let len = round * 97 % 1001;
        tx.send(&vec![1; len]).unwrap();
        all_say(1, &tx, &rx);
        // A loan reserved but not published yet: not counted, and the
        // message after it is.
        let mut loan = tx2.loan(len / 2).unwrap();
        loan.copy_from_slice(&vec![2; len / 2]).unwrap();
        assert_eq!(chan.len().unwrap(), 1);
        tx.send(b"after the loan").unwrap();
        assert_eq!(chan.len().unwrap(), 2);
        loan.publish().unwrap();
        all_say(3, &tx, &rx);
        assert_eq!(rx.recv().unwrap().len(), len);
        assert_eq!(rx.recv().unwrap(), vec![2; len / 2]);
        assert_eq!(rx.len().unwrap(), 1);
        assert_eq!(rx.recv().unwrap(), b"after the loan");
        all_say(0, &tx, &rx);
    }
}

#[test]
fn try_clone_takes_a_slot_and_the_receiver_waits_for_every_clone() {
    let chan = Channel::builder()
        .capacity(4)
        .max_message(64)
        .anonymous()
        .unwrap();
    let mut rx = chan.receiver().unwrap();
    let tx = chan.sender().unwrap();
    let mut clone = tx.try_clone().unwrap();
    drop(tx);
    clone.send(b"from the clone").unwrap();
    assert_eq!(rx.recv().unwrap(), b"from the clone");
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    drop(clone);
    assert!(matches!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    ));

    // Every clone takes a slot of its own: MAX_SENDERS in all.
    let chan = Channel::builder()
        .capacity(4)
        .max_message(64)
        .anonymous()
        .unwrap();
    let first = chan.sender().unwrap();
    let clones: Vec<Sender> = (1..MAX_SENDERS)
        .map(|_| first.try_clone().unwrap())
        .collect();
    let e = first.try_clone().unwrap_err();
    assert!(matches!(e, Error::LimitExceeded { .. }), "{e:?}");
    drop(clones);
    assert!(first.try_clone().is_ok());
}

#[test]
fn pair_hands_the_sending_end_to_a_child() {
    let (tx, mut rx) = channel::pair(4).unwrap();
    // The child attaches only after a while: the receiver must wait for
    // it, not report the handed-over sender as gone.
    let mut child = spawn("send", tx.into_inheritable_fd().unwrap(), false);
    let start = Instant::now();
    let next = in_order_until_disconnected(&mut rx);
    assert_eq!(next, COUNT, "every message exactly once, then Disconnected");
    assert!(
        start.elapsed() > Duration::from_millis(150),
        "waited for the late child"
    );
    assert!(child.wait_for(LIMIT).success());
}

#[test]
fn pair_hands_the_receiving_end_to_a_child() {
    let (mut tx, rx) = channel::pair(4).unwrap();
    let mut child = spawn("recv", rx.into_inheritable_fd().unwrap(), false);
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    // The child takes the seat only after a while: sends go on (and wait
    // for room) instead of failing with Disconnected.
    for i in 0..COUNT {
        tx.send_timeout(&i.to_le_bytes(), LIMIT)
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
    }
    drop(tx);
    let got = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("GOT "));
    assert_eq!(got.as_deref(), Some(format!("GOT {COUNT}").as_str()));
    assert!(child.wait_for(LIMIT).success());
}

#[test]
fn pair_receiver_sees_its_child_killed() {
    let (tx, mut rx) = channel::pair(4).unwrap();
    let mut child = spawn("send-hang", tx.into_inheritable_fd().unwrap(), true);
    assert_eq!(rx.recv_timeout(LIMIT).unwrap(), b"one");
    child.kill9();
    let start = Instant::now();
    assert!(matches!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    ));
    assert!(start.elapsed() < Duration::from_secs(10));
}
