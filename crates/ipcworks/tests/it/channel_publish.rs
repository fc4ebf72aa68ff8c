//! The channel's cheaper publication paths between real processes: a
//! sender alone on a channel (solo mode, no lock compare-and-swap) whose
//! lock a second sender process takes over mid-stream, batches
//! (`send_batch`), loans on the fast path, and the asymmetric fence
//! (`membarrier`) that lets a publisher store without a full fence —
//! checked by counting every message, and by a planted missing wake-up
//! that the ping-pong test must catch; and the producers' wake-up when a
//! full ring gets room, with its own planted check.

use std::time::{Duration, Instant};

use ipcworks::channel::{Channel, WaitStrategy};
use ipcworks::message::RecvTimeoutError;

use crate::channel::{anon, chan_from_arg, fd_arg, fill, named_size};
use crate::support::{self, KillOnDrop};

const LIMIT: Duration = Duration::from_secs(60);

/// Sends messages `0..count` of stream `id` on `chan`: single sends,
/// loans and batches of up to five, mixed by sequence number.
fn send_mixed(chan: &Channel, id: u64, count: u64) {
    let mut tx = chan.sender().unwrap();
    let max = tx.max_message();
    let mut seq = 0;
    let mut buf = Vec::new();
    while seq < count {
        match seq % 7 {
            0 | 4 => {
                let n = (1 + seq % 5).min(count - seq);
                let batch: Vec<Vec<u8>> = (seq..seq + n)
                    .map(|s| {
                        let mut b = Vec::new();
                        fill(&mut b, id, s, named_size(id, s, max));
                        b
                    })
                    .collect();
                tx.send_batch(&batch).unwrap();
                seq += n;
            }
            3 => {
                fill(&mut buf, id, seq, named_size(id, seq, max));
                let mut loan = tx.loan(buf.len()).unwrap();
                loan.copy_from_slice(&buf).unwrap();
                loan.publish().unwrap();
                seq += 1;
            }
            _ => {
                fill(&mut buf, id, seq, named_size(id, seq, max));
                tx.send(&buf).unwrap();
                seq += 1;
            }
        }
    }
}

/// Answers `count` pings (`parts`: ping-fd, pong-fd, count) with each
/// ping's bytes, both ends waiting as `wait` says (their default when
/// `None`); the `i`th answer comes a millisecond late where `late(i,
/// ping)` says.
fn answer_pings(parts: &[&str], wait: Option<WaitStrategy>, late: impl Fn(u64, &[u8]) -> bool) {
    let ping = chan_from_arg(parts[0]);
    let pong = chan_from_arg(parts[1]);
    let count: u64 = parts[2].parse().unwrap();
    let mut rx = ping.receiver().unwrap();
    let mut tx = pong.sender().unwrap();
    if let Some(w) = wait {
        rx.set_wait_strategy(w);
        tx.set_wait_strategy(w);
    }
    let mut buf = [0u8; 64];
    for i in 0..count {
        let n = rx.recv_slice(&mut buf).unwrap();
        if late(i, &buf[..n]) {
            std::thread::sleep(Duration::from_millis(1));
        }
        tx.send(&buf[..n]).unwrap();
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let parts: Vec<&str> = arg.split(',').collect();
        match role {
            // fd,id,count: send `count` messages of stream `id`, mixed.
            "send-mixed" => {
                let chan = chan_from_arg(parts[0]);
                send_mixed(&chan, parts[1].parse().unwrap(), parts[2].parse().unwrap());
            }
            // ping-fd,pong-fd,count: answer `count` pings, blocking waits
            // (run with IPCWORKS_FAULT set to plant a bug in this process).
            // Every other answer comes late, when the parent surely sleeps;
            // the others race with its going to sleep.
            "pong" => answer_pings(&parts, Some(WaitStrategy::Block), |i, _| i % 2 == 1),
            // ping-fd,pong-fd,count: answer `count` pings with the default
            // waits; a ping whose first byte is 1 is answered a millisecond
            // late (its sender's receive then sleeps).
            "echo-late" => answer_pings(&parts, None, |_, ping| ping[0] == 1),
            // fd,count: send messages `0..count`, sleeping at once for room.
            "room-producer" => {
                let chan = chan_from_arg(parts[0]);
                let mut tx = chan.sender().unwrap();
                tx.set_wait_strategy(WaitStrategy::Block);
                for seq in 0..parts[1].parse::<u64>().unwrap() {
                    tx.send(&room_message(seq)).unwrap();
                }
            }
            // fd,cycles: receive and count room stalls (`drain_in_cycles`).
            "room-consumer" => {
                let chan = chan_from_arg(parts[0]);
                let stalls = drain_in_cycles(&chan, parts[1].parse().unwrap());
                println!("room-stalls: {stalls}");
            }
            other => support::unknown_role(other),
        }
    });
}

/// Receives `total` messages of `streams` streams and checks that each
/// stream's arrive exactly once, whole and in order; returns how many
/// each stream delivered.
fn receive_counted(
    rx: &mut ipcworks::channel::Receiver,
    streams: usize,
    total: u64,
    max: usize,
) -> Vec<u64> {
    receive_counted_from(rx, &mut vec![0; streams], total, max)
}

/// A sender process alone on the channel (solo mode) streams mixed sends,
/// loans and batches through a small ring; a second sender process
/// attaches mid-stream and takes the reservation lock over, a third
/// later: every message of the three arrives exactly once, in order per
/// sender, and the receiver sees the disconnection after the last.
#[test]
fn a_solo_sender_process_handed_over_to_two_more_delivers_exactly_once_in_order() {
    const EACH: u64 = 60_000;
    const MAX: usize = 512;
    let chan = anon(8192, MAX);
    let mut rx = chan.receiver().unwrap();
    rx.set_wait_strategy(WaitStrategy::Block);
    let (fd, arg) = fd_arg(&chan);
    let mut children = vec![KillOnDrop::spawn(support::child(
        "channel_publish::child",
        "send-mixed",
        &format!("{arg},0,{EACH}"),
    ))];
    // Stream 0 alone first, then the others join while it still sends.
    let early = receive_counted(&mut rx, 1, 2_000, MAX);
    assert_eq!(early, [2_000]);
    for id in 1..3u64 {
        children.push(KillOnDrop::spawn(support::child(
            "channel_publish::child",
            "send-mixed",
            &format!("{arg},{id},{EACH}"),
        )));
    }
    drop(fd);
    let mut next = vec![2_000u64, 0, 0];
    let rest = receive_counted_from(&mut rx, &mut next, 3 * EACH - 2_000, MAX);
    assert_eq!(rest, [EACH, EACH, EACH]);
    for c in &mut children {
        assert!(c.wait_for(LIMIT).success());
    }
    assert!(matches!(
        rx.recv_timeout(LIMIT),
        Err(RecvTimeoutError::Disconnected)
    ));
}

/// [`receive_counted`] continuing from `next`.
fn receive_counted_from(
    rx: &mut ipcworks::channel::Receiver,
    next: &mut [u64],
    total: u64,
    max: usize,
) -> Vec<u64> {
    let mut scratch = Vec::new();
    let mut buf = Vec::new();
    for _ in 0..total {
        rx.recv_into(&mut buf).unwrap();
        assert!(
            buf.len() >= 16,
            "a message of {} bytes names no stream",
            buf.len()
        );
        let seq = u64::from_le_bytes(buf[0..8].try_into().unwrap());
        let id = u64::from_le_bytes(buf[8..16].try_into().unwrap()) as usize;
        assert!(id < next.len(), "stream {id} does not exist");
        assert_eq!(
            seq, next[id],
            "stream {id}: message {seq} where {} was due (lost or repeated)",
            next[id]
        );
        fill(
            &mut scratch,
            id as u64,
            seq,
            named_size(id as u64, seq, max),
        );
        assert!(buf == scratch, "stream {id} message {seq}: content differs");
        next[id] += 1;
    }
    next.to_vec()
}

/// Bounces a 64-byte message `count` times with a child that answers
/// (every other time after a millisecond), both ends blocking (every wait
/// sleeps on the futex, so every publication meets a sleeper or one about
/// to sleep), the child started
/// with `IPCWORKS_FAULT=fault`. Returns the round trips that took longer
/// than 15 ms: a lost wake-up leaves its sleeper to the end of its 20 ms
/// liveness slice.
fn stalled_round_trips(count: u64, fault: &str) -> u64 {
    let ping = anon(4096, 64);
    let pong = anon(4096, 64);
    let mut tx = ping.sender().unwrap();
    let mut rx = pong.receiver().unwrap();
    tx.set_wait_strategy(WaitStrategy::Block);
    rx.set_wait_strategy(WaitStrategy::Block);
    let (fd1, a1) = fd_arg(&ping);
    let (fd2, a2) = fd_arg(&pong);
    let mut cmd = support::child(
        "channel_publish::child",
        "pong",
        &format!("{a1},{a2},{count}"),
    );
    cmd.env("IPCWORKS_FAULT", fault);
    let mut c = KillOnDrop::spawn(cmd);
    drop((fd1, fd2));
    let mut stalls = 0;
    let mut buf = [0u8; 64];
    for i in 0..count {
        let msg = [i as u8; 64];
        let t = Instant::now();
        tx.send(&msg).unwrap();
        let n = rx.recv_slice_timeout(&mut buf, LIMIT).unwrap();
        assert_eq!(
            &buf[..n],
            &msg[..],
            "round trip {i}: another message came back"
        );
        if t.elapsed() > Duration::from_millis(15) {
            stalls += 1;
        }
    }
    assert!(c.wait_for(LIMIT).success());
    stalls
}

/// The real protocol: publications with plain stores, the sleepers'
/// `membarrier` before their re-check; no wake-up is lost (a round trip
/// may stall now and then on a loaded machine, not most of them).
#[test]
fn blocking_round_trips_between_processes_lose_no_wake_up() {
    let stalls = stalled_round_trips(200, "");
    assert!(
        stalls < 40,
        "{stalls} of 200 round trips stalled: wake-ups are lost"
    );
}

/// Planted: the child publishes without waking its sleeping peer
/// (`IPCWORKS_FAULT=skip-wake`); the round-trip check above must see
/// it, or it could not see a real loss either.
#[test]
fn a_planted_missing_wake_up_is_caught_by_the_round_trip_check() {
    let stalls = stalled_round_trips(100, "skip-wake");
    eprintln!("{stalls} of 100 round trips stalled with the wake-up removed");
    assert!(
        stalls >= 40,
        "only {stalls} of 100 round trips stalled with the wake-up removed: the check is blind"
    );
}

/// Planted: the child's sleeps skip `membarrier` (`skip-barrier`), so the
/// parent's plain publications can slip past its re-check. The window is
/// a store-buffer drain wide, so this rarely shows; it prints what it saw
/// (run by hand: `-- --ignored a_planted_missing_barrier --nocapture`).
#[test]
#[ignore = "reports, does not assert: the window is nanoseconds wide"]
fn a_planted_missing_barrier_is_reported() {
    let stalls = stalled_round_trips(20_000, "skip-barrier");
    eprintln!("skip-barrier: {stalls} of 20000 blocking round trips stalled");
}

/// The consumer's mode switches (`channel/wake.rs`, "Fencing only while
/// the consumer sleeps") between processes, many times over: each cycle
/// is 1,100 quick round trips (each consumer takes more than `CALM` =
/// 1,024 messages without sleeping, so it clears the mode and the
/// producers publish with plain stores again), then round trips answered
/// a millisecond late, whose receives sleep (the first sleep of the
/// cycle issues the barrier, the next ones rely on the producers
/// fencing). No late round trip may stall to the end of its sleeper's
/// 20 ms slice more than now and then, and every answer is the ping.
#[test]
fn sleeping_after_plain_publication_loses_no_wake_up_across_mode_switches() {
    const CYCLES: u64 = 40;
    const QUICK: u64 = 1_100;
    const LATE: u64 = 4;
    let ping = anon(4096, 64);
    let pong = anon(4096, 64);
    let mut tx = ping.sender().unwrap();
    let mut rx = pong.receiver().unwrap();
    let (fd1, a1) = fd_arg(&ping);
    let (fd2, a2) = fd_arg(&pong);
    let count = CYCLES * (QUICK + LATE);
    let cmd = support::child(
        "channel_publish::child",
        "echo-late",
        &format!("{a1},{a2},{count}"),
    );
    let mut c = KillOnDrop::spawn(cmd);
    drop((fd1, fd2));
    let mut buf = [0u8; 64];
    let mut stalls = 0;
    for cycle in 0..CYCLES {
        for i in 0..QUICK + LATE {
            let late = i >= QUICK;
            rx.set_wait_strategy(if late {
                WaitStrategy::Block
            } else {
                WaitStrategy::default()
            });
            let mut msg = [(cycle as u8) ^ (i as u8); 64];
            msg[0] = late as u8;
            msg[1..9].copy_from_slice(&(cycle * 10_000 + i).to_le_bytes());
            let t = Instant::now();
            tx.send(&msg).unwrap();
            let n = rx.recv_slice_timeout(&mut buf, LIMIT).unwrap();
            assert_eq!(&buf[..n], &msg[..], "cycle {cycle}, round trip {i}");
            if late && t.elapsed() > Duration::from_millis(15) {
                stalls += 1;
            }
        }
    }
    assert!(c.wait_for(LIMIT).success());
    eprintln!("{stalls} of {} late round trips stalled", CYCLES * LATE);
    assert!(
        stalls < CYCLES * LATE / 5,
        "{stalls} of {} late round trips stalled: wake-ups are lost across mode switches",
        CYCLES * LATE
    );
}

/// Messages the room consumer takes at full speed per cycle, while the
/// producer keeps up (sleeping for room now and then, or not at all).
const ROOM_QUICK: u64 = 1_100;
/// Late steps per cycle: the consumer pauses until the ring is full and
/// the producer sleeps for room, then frees one record.
const ROOM_LATE: u64 = 4;
/// Messages sent after the last cycle's, and taken at full speed: more
/// than the ring holds, so that the last late steps find a producer with
/// messages left to send (without them, those steps could not refill).
const ROOM_TAIL: u64 = 100;

/// The room producer's message `seq`: 64 bytes, `seq` first.
fn room_message(seq: u64) -> [u8; 64] {
    let mut m = [seq as u8; 64];
    m[..8].copy_from_slice(&seq.to_le_bytes());
    m
}

/// The consumer's side of the room tests, on `chan` (a ring of a few
/// dozen 64-byte records; the producer sends with blocking waits): per
/// cycle, [`ROOM_QUICK`] messages at full speed, then [`ROOM_LATE`] late
/// steps. A late step lets the ring fill and the producer go to sleep
/// (2 ms), takes one message, and waits until the producer has filled
/// the freed record: a woken producer does so at once, one whose
/// wake-up was lost sleeps to the end of its 20 ms liveness slice.
/// Every message must arrive once, in order. Returns the late steps
/// whose refill took longer than 15 ms.
fn drain_in_cycles(chan: &Channel, cycles: u64) -> u64 {
    let mut rx = chan.receiver().unwrap();
    rx.set_wait_strategy(WaitStrategy::Block);
    let mut buf = [0u8; 64];
    let mut seq = 0;
    let mut take = |rx: &mut ipcworks::channel::Receiver| {
        let n = rx.recv_slice_timeout(&mut buf, LIMIT).unwrap();
        assert_eq!(&buf[..n], &room_message(seq)[..], "message {seq}");
        seq += 1;
    };
    let mut stalls = 0;
    for _ in 0..cycles {
        for _ in 0..ROOM_QUICK {
            take(&mut rx);
        }
        for _ in 0..ROOM_LATE {
            std::thread::sleep(Duration::from_millis(2));
            let full = rx.len().unwrap();
            take(&mut rx);
            let t = Instant::now();
            while rx.len().unwrap() < full && t.elapsed() < Duration::from_millis(50) {
                std::thread::sleep(Duration::from_micros(100));
            }
            if t.elapsed() > Duration::from_millis(15) {
                stalls += 1;
            }
        }
    }
    for _ in 0..ROOM_TAIL {
        take(&mut rx);
    }
    stalls
}

/// Runs a producer process and a consumer process on one small channel
/// for `cycles` of [`drain_in_cycles`], the consumer with
/// `IPCWORKS_FAULT=consumer_fault`; returns its stalled late steps.
fn room_stalls(cycles: u64, consumer_fault: &str) -> u64 {
    let chan = anon(4096, 64);
    let (fd, arg) = fd_arg(&chan);
    let count = cycles * (ROOM_QUICK + ROOM_LATE) + ROOM_TAIL;
    let mut producer = KillOnDrop::spawn(support::child(
        "channel_publish::child",
        "room-producer",
        &format!("{arg},{count}"),
    ));
    let mut consumer = support::child(
        "channel_publish::child",
        "room-consumer",
        &format!("{arg},{cycles}"),
    );
    consumer.env("IPCWORKS_FAULT", consumer_fault);
    let out = consumer.output().unwrap();
    drop(fd);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the consumer failed: {text}");
    assert!(producer.wait_for(LIMIT).success());
    text.lines()
        .find_map(|l| l.strip_prefix("room-stalls: "))
        .unwrap_or_else(|| panic!("no count from the consumer: {text}"))
        .trim()
        .parse()
        .unwrap()
}

/// The producers' side of the futex hand-shake (`channel/wake.rs`), which
/// the ping-pong tests above never reach (their rings never fill):
/// between two processes, a producer asleep for room is woken when the
/// consumer frees a record, not at the end of its slice, cycle after
/// cycle, and every message arrives once and in order.
#[test]
fn a_producer_asleep_for_room_is_woken_when_a_record_is_freed() {
    const CYCLES: u64 = 25;
    let stalls = room_stalls(CYCLES, "");
    eprintln!("{stalls} of {} late steps stalled", CYCLES * ROOM_LATE);
    assert!(
        stalls < CYCLES * ROOM_LATE / 5,
        "{stalls} of {} late steps stalled: wake-ups for room are lost",
        CYCLES * ROOM_LATE
    );
}

/// Planted: the consumer frees records without waking the producer
/// asleep for room (`skip-wake`): the check above must see it.
#[test]
fn a_planted_missing_room_wake_up_is_caught_by_the_refill_check() {
    const CYCLES: u64 = 5;
    let stalls = room_stalls(CYCLES, "skip-wake");
    eprintln!(
        "skip-wake: {stalls} of {} late steps stalled",
        CYCLES * ROOM_LATE
    );
    assert!(
        stalls >= CYCLES * ROOM_LATE / 2,
        "only {stalls} of {} late steps stalled with the wake-up removed: the check is blind",
        CYCLES * ROOM_LATE
    );
}
