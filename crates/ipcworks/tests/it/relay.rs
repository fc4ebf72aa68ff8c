//! Store and forward between real processes (`endpoint::relay`, what
//! `ipcworks relay FROM TO` runs): a producer process fills the source, a
//! relay process moves the messages into a native queue B, a consumer
//! process drains B; the relay is killed with SIGKILL at random moments
//! and at each of its abort points (after receiving, after sending, after
//! committing), and restarted each time. Every message is numbered,
//! checksummed, of mixed size and priority; the test counts what arrived,
//! what arrived twice, and what never did.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipcworks::endpoint::relay::{Dest, Relay, Source};
use ipcworks::endpoint::{Endpoint, Options, open_sender};
use ipcworks::message::{Deadline, Meta};
use ipcworks::queue::Queue;

use crate::mq::{MqCleanup, new_sysv_queue};
use crate::support::{self, KillOnDrop};

/// Data priorities 1..=3; the end marker has priority (or type) 0/1 and
/// comes out last.
pub(crate) fn prio_of(seq: u32) -> u32 {
    seq % 3 + 1
}

/// The end marker's number.
pub(crate) const END: u32 = u32::MAX;

/// Message `seq`: its number, priority and length, a checksum, then a
/// filler derived from the number; 16 to ~1800 bytes.
pub(crate) fn message(seq: u32) -> Vec<u8> {
    let len = if seq == END {
        16
    } else {
        16 + (seq as usize * 7919) % 1800
    };
    let mut m = vec![0u8; len];
    for (i, b) in m[16..].iter_mut().enumerate() {
        *b = (seq as usize ^ i.wrapping_mul(31)) as u8;
    }
    m[..4].copy_from_slice(&seq.to_le_bytes());
    m[4..8].copy_from_slice(&prio_of(seq).to_le_bytes());
    m[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    let sum = checksum(&m[16..]);
    m[12..16].copy_from_slice(&sum.to_le_bytes());
    m
}

fn checksum(b: &[u8]) -> u32 {
    b.iter().fold(0x811c_9dc5u32, |h, &x| {
        (h ^ x as u32).wrapping_mul(0x0100_0193)
    })
}

/// The number and priority of a received message, after checking it whole.
pub(crate) fn unmessage(m: &[u8]) -> (u32, u32) {
    assert!(m.len() >= 16, "a message of {} bytes", m.len());
    let w = |i: usize| u32::from_le_bytes(m[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(w(2) as usize, m.len(), "length of message {}", w(0));
    assert_eq!(w(3), checksum(&m[16..]), "checksum of message {}", w(0));
    assert!(m == message(w(0)), "payload of message {}", w(0));
    (w(0), w(1))
}

/// The metadata message `seq` is sent with into `ep`'s kind.
fn meta_for(ep: &Endpoint, seq: u32) -> Meta {
    let p = if seq == END { 0 } else { prio_of(seq) };
    match ep {
        Endpoint::Sysv(_) => Meta::with_type(p.max(1) as i64),
        _ => Meta::with_priority(p),
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let args: Vec<&str> = arg.split(' ').collect();
        match role {
            // produce FROM N: messages 0..N, then the end marker.
            "produce" => {
                let ep: Endpoint = args[0].parse().unwrap();
                let n: u32 = args[1].parse().unwrap();
                let mut tx = open_sender(&ep, &Options::default()).unwrap();
                for seq in (0..n).chain([END]) {
                    tx.send_with(&message(seq), meta_for(&ep, seq)).unwrap();
                }
            }
            // relay FROM TO: for ever (the test kills it), or until an abort
            // point named by IPCWORKS_ABORT_AT kills it.
            "relay" => {
                let opts = Options::default();
                let from = Source::open(&args[0].parse().unwrap(), &opts).unwrap();
                let to = Dest::open(&args[1].parse().unwrap(), &opts).unwrap();
                println!("ready");
                Relay::new(from, to).run(None).unwrap();
            }
            // consume B LOG: receives until the end marker, checking each
            // message, then writes "seq prio" lines to LOG.
            "consume" => {
                let q = Queue::open(args[0]).unwrap();
                let mut got = Vec::new();
                loop {
                    let (m, p) = q.recv().unwrap();
                    let (seq, prio) = unmessage(&m);
                    if seq == END {
                        break;
                    }
                    // The priority travels with the message (B gets a System V
                    // type as priority 0).
                    assert!(
                        p == prio || p == 0,
                        "message {seq}: priority {p}, sent {prio}"
                    );
                    got.push((seq, prio));
                }
                let mut f = std::io::BufWriter::new(std::fs::File::create(args[1]).unwrap());
                for (s, p) in got {
                    writeln!(f, "{s} {p}").unwrap();
                }
                f.flush().unwrap();
            }
            // claim-and-hang QUEUE: claims the next message and waits, holding
            // it, to be killed.
            "claim-and-hang" => {
                let q = Queue::open(args[0]).unwrap();
                let c = q.recv_claim().unwrap();
                println!("ready {}", String::from_utf8_lossy(c.message()));
                std::thread::sleep(Duration::from_secs(60));
                drop(c);
            }
            other => support::unknown_role(other),
        }
    });
}

/// A small xorshift generator, seeded from the clock (the seed is printed
/// so a failing run can be repeated).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new() -> Rng {
        let seed = std::env::var("IPCWORKS_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("relay kill test: IPCWORKS_TEST_SEED={seed}");
        Rng(seed)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Removes the native queues and the consumer's log when dropped.
struct Cleanup {
    queues: Vec<String>,
    log: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for q in &self.queues {
            let _ = Queue::remove(q);
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A relay run: the source endpoint (made by the caller), queue B, the
/// consumer's log.
struct Run {
    from: Endpoint,
    b: String,
    log: PathBuf,
    _cleanup: Cleanup,
}

impl Run {
    /// `from` is a `queue:` of `capacity` messages made here (a small one
    /// keeps the producer waiting on the relay) or an existing kernel
    /// queue.
    fn new(from: Option<Endpoint>, capacity: usize) -> Run {
        let b = support::unique_name("relay-b");
        let mut queues = vec![b.clone()];
        let from = from.unwrap_or_else(|| {
            let a = support::unique_name("relay-a");
            queues.push(a.clone());
            Queue::options()
                .capacity(capacity)
                .max_message(2048)
                .create(&a)
                .unwrap();
            Endpoint::Queue(a)
        });
        Queue::options()
            .capacity(8)
            .max_message(2048)
            .create(&b)
            .unwrap();
        let log = std::env::temp_dir().join(format!("{b}.log"));
        Run {
            from,
            log: log.clone(),
            _cleanup: Cleanup { queues, log },
            b,
        }
    }

    fn producer(&self, n: u32) -> KillOnDrop {
        let arg = format!("{} {n}", self.from);
        KillOnDrop::spawn(support::child("relay::child", "produce", &arg))
    }

    fn consumer(&self) -> KillOnDrop {
        let arg = format!("{} {}", self.b, self.log.display());
        KillOnDrop::spawn(support::child("relay::child", "consume", &arg))
    }

    /// A relay process from the source to B, started (its queues open).
    fn relay(&self, abort_at: Option<&str>) -> KillOnDrop {
        let arg = format!("{} queue:{}", self.from, self.b);
        let mut cmd = support::child("relay::child", "relay", &arg);
        match abort_at {
            Some(a) => cmd.env(ipcworks::fault::ABORT_VAR, a),
            None => cmd.env_remove(ipcworks::fault::ABORT_VAR),
        };
        KillOnDrop::spawn_ready(cmd)
    }

    /// Messages received from the source so far, when it is a native
    /// queue.
    fn taken(&self) -> Option<u64> {
        match &self.from {
            Endpoint::Queue(a) => Some(Queue::open(a).unwrap().stats().unwrap().received),
            _ => None,
        }
    }

    /// What the consumer logged, once it has ended: `(seq, prio)` in
    /// arrival order.
    fn arrived(&self, consumer: &mut KillOnDrop) -> Vec<(u32, u32)> {
        consumed(consumer, &self.log, Duration::from_secs(300))
    }
}

/// What a `consume` child logged to `log` once it has ended (within
/// `limit`): `(seq, prio)` in arrival order.
pub(crate) fn consumed(
    consumer: &mut KillOnDrop,
    log: &std::path::Path,
    limit: Duration,
) -> Vec<(u32, u32)> {
    let st = consumer.wait_for(limit);
    assert!(st.success(), "the consumer failed: {st:?}");
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(|l| {
            let (s, p) = l.split_once(' ').unwrap();
            (s.parse().unwrap(), p.parse().unwrap())
        })
        .collect()
}

/// What arrived, judged against messages `0..n`: how many twice (or more)
/// and which never; asserts the first arrivals keep the order within each
/// priority.
pub(crate) fn judge(arrived: &[(u32, u32)], n: u32) -> (usize, Vec<u32>) {
    let mut seen = HashSet::new();
    let mut last: HashMap<u32, u32> = HashMap::new();
    let mut dups = 0;
    for &(seq, prio) in arrived {
        assert!(seq < n, "message {seq} was never sent");
        if !seen.insert(seq) {
            dups += 1;
            continue;
        }
        if let Some(&before) = last.get(&prio) {
            assert!(
                seq > before,
                "priority {prio}: message {seq} arrived after {before}"
            );
        }
        last.insert(prio, seq);
    }
    let missing = (0..n).filter(|s| !seen.contains(s)).collect();
    (dups, missing)
}

/// Kills relays at `kills` random moments (each relay runs 0–20 ms once
/// its queues are open, and is restarted right after). Returns how many
/// were killed while messages were moving (for a native queue source:
/// the relay took some, and some were left; else `kills`).
fn kill_relays_at_random(run: &Run, kills: usize, rng: &mut Rng) -> usize {
    let mut moving = 0;
    for _ in 0..kills {
        let before = run.taken();
        let mut r = run.relay(None);
        std::thread::sleep(Duration::from_micros(rng.below(20_000)));
        r.kill9();
        let after = run.taken();
        if before.is_none() || before != after {
            moving += 1;
        }
    }
    moving
}

/// Waits for the producer, then lets a relay finish the run and the
/// consumer end.
fn finish(run: &Run, producer: &mut KillOnDrop, consumer: &mut KillOnDrop) -> Vec<(u32, u32)> {
    let mut last = run.relay(None);
    let st = producer.wait_for(Duration::from_secs(300));
    assert!(st.success(), "the producer failed: {st:?}");
    let arrived = run.arrived(consumer);
    last.kill9();
    arrived
}

/// queue:A → queue:B with the relay killed by SIGKILL at 20 random
/// moments: every message arrives exactly once, whole, in order within
/// its priority (a kill between B's send and A's commit no longer
/// duplicates: B remembers the id, see `Queue::send_relayed`).
#[test]
fn relay_from_a_native_queue_killed_20_times_loses_nothing() {
    const N: u32 = 20_000;
    const KILLS: usize = 20;
    let mut rng = Rng::new();
    let run = Run::new(None, 8);
    let mut consumer = run.consumer();
    let mut producer = run.producer(N);
    let start = Instant::now();
    let moving = kill_relays_at_random(&run, KILLS, &mut rng);
    let killing = start.elapsed();
    let producing = producer.0.as_mut().unwrap().try_wait().unwrap().is_none();
    let arrived = finish(&run, &mut producer, &mut consumer);
    let (dups, missing) = judge(&arrived, N);
    println!(
        "queue -> queue: {N} messages, {KILLS} kills in {killing:?} ({moving} while messages \
         moved; producer still at work after them: {producing}), {} arrivals, {dups} \
         duplicates, {} lost",
        arrived.len(),
        missing.len()
    );
    // Most kills must hit a relay at work, or the test proves little.
    assert!(
        moving >= KILLS / 2,
        "only {moving} of {KILLS} kills hit a working relay"
    );
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(dups, 0, "duplicates after {KILLS} kills");
    // Nothing left behind in A: every message committed; and B's table
    // keeps nothing of A's once a relay started after the last kill.
    let Endpoint::Queue(a) = &run.from else {
        unreachable!()
    };
    let qa = Queue::open(a).unwrap();
    let s = qa.stats().unwrap();
    assert_eq!((s.depth, s.reading, s.writing), (0, 0, 0), "{s:?}");
    let left = Queue::open(&run.b)
        .unwrap()
        .relayed_via(qa.origin())
        .unwrap();
    assert!(left.is_empty(), "B still remembers {left:?}");
}

/// The relay's abort points, hit in turn (each relay kills itself there
/// with SIGKILL, and the next one starts): after receiving (the claim
/// comes back), inside B's relayed send after its table entry is written
/// pending (not published: settled as not delivered, sent again) and
/// after the publish (settled as delivered, refused when sent again),
/// after sending (in B and still in A: B refuses it when sent again),
/// after committing (B's entry left behind: the next relay forgets it).
/// Nothing lost, nothing duplicated.
#[test]
fn relay_abort_points_received_sent_committed_hit_in_turn() {
    const N: u32 = 300;
    let run = Run::new(None, 512);
    let mut producer = run.producer(N);
    assert!(producer.wait_for(Duration::from_secs(120)).success());
    let mut consumer = run.consumer();
    for point in [
        "relay-received",
        "relayed-pending",
        "relayed-published",
        "relay-sent",
        "relay-committed",
    ] {
        let mut r = run.relay(Some(&format!("{point}:7")));
        let st = r.wait_for(Duration::from_secs(120));
        assert_eq!(st.signal(), Some(9), "{point}: {st:?}");
    }
    let mut last = run.relay(None);
    let arrived = run.arrived(&mut consumer);
    last.kill9();
    let (dups, missing) = judge(&arrived, N);
    assert!(missing.is_empty(), "lost: {missing:?}");
    assert_eq!(dups, 0, "duplicates");
}

/// A kernel queue as the source: the kernel removes a message when the
/// relay receives it, so each kill can lose the one message in the
/// relay's hands (and never duplicates one). An abort right after the
/// receive loses exactly one, after the send or the commit none; random
/// kills at most one each.
fn kernel_source(from: Endpoint, n: u32, kills: usize) {
    let mut rng = Rng::new();
    let run = Run::new(Some(from.clone()), 0);
    let mut consumer = run.consumer();
    let mut producer = run.producer(n);
    // The abort points in turn: after a receive (that message is lost),
    // after a send and after the (empty) commit (nothing lost).
    for point in ["received", "sent", "committed"] {
        let mut r = run.relay(Some(&format!("relay-{point}:50")));
        let st = r.wait_for(Duration::from_secs(120));
        assert_eq!(st.signal(), Some(9), "relay-{point}: {st:?}");
    }
    kill_relays_at_random(&run, kills, &mut rng);
    let arrived = finish(&run, &mut producer, &mut consumer);
    let (dups, missing) = judge(&arrived, n);
    println!(
        "{from} -> queue: {n} messages, 3 aborts (received, sent, committed) + {kills} kills: \
         {} lost, {dups} duplicates",
        missing.len()
    );
    assert_eq!(dups, 0, "a kernel queue source never duplicates");
    assert!(
        !missing.is_empty(),
        "the abort after a receive lost nothing"
    );
    assert!(
        missing.len() <= 1 + kills,
        "{} lost for {} kills: {missing:?}",
        missing.len(),
        1 + kills
    );
}

#[test]
fn relay_from_a_posix_queue_loses_at_most_one_per_kill() {
    let name = support::unique_name("relay-mq");
    let _guard = MqCleanup(vec![name.clone()]);
    ipcworks::mq::posix::Queue::options()
        .capacity(8)
        .max_message(2048)
        .create(&name)
        .unwrap();
    kernel_source(Endpoint::Mq(name), 5_000, 10);
}

#[test]
fn relay_from_a_system_v_queue_loses_at_most_one_per_kill() {
    let (q, _guard) = new_sysv_queue();
    kernel_source(Endpoint::Sysv(q.key()), 5_000, 10);
}

/// A message the destination refuses stays first in the source native
/// queue (released, not re-queued behind the others), and the relay says
/// so.
#[test]
fn a_refused_message_stays_first_in_the_source_queue() {
    let (a, b) = (
        support::unique_name("relay-a"),
        support::unique_name("relay-b"),
    );
    let _c = Cleanup {
        queues: vec![a.clone(), b.clone()],
        log: PathBuf::new(),
    };
    let qa = Queue::options().max_message(2048).create(&a).unwrap();
    Queue::options().max_message(64).create(&b).unwrap();
    qa.send(&[7; 1000], 5).unwrap();
    qa.send(b"later", 5).unwrap();
    let opts = Options::default();
    let from = Source::open(&Endpoint::Queue(a.clone()), &opts).unwrap();
    let to = Dest::open(&Endpoint::Queue(b.clone()), &opts).unwrap();
    let f = Relay::new(from, to).run(Some(2)).unwrap_err();
    assert!(f.sending && f.relayed == 0, "{f:?}");
    assert!(f.to_string().contains("stays in the source"), "{f}");
    assert_eq!(qa.recv().unwrap(), (vec![7; 1000], 5));
    let c = qa.recv_claim_until(Deadline::Now).unwrap();
    assert_eq!(c.message(), b"later");
    c.commit().unwrap();
}

/// A process killed (SIGKILL) while it holds a claim: a receiver blocked
/// on the queue gets the message at once (it watches the claimant's
/// pidfd), whole; and a recovery puts a claimed message back ahead of the
/// later ones of its priority.
#[test]
fn a_killed_claimants_message_goes_to_a_blocked_receiver_at_once() {
    let name = support::unique_name("claim-kill");
    let _c = Cleanup {
        queues: vec![name.clone()],
        log: PathBuf::new(),
    };
    let q = Queue::options().max_message(2048).create(&name).unwrap();
    let claimant =
        || KillOnDrop::spawn_ready(support::child("relay::child", "claim-and-hang", &name));
    q.send(&message(1), 2).unwrap();
    let mut c = claimant();
    assert_eq!(q.stats().unwrap().reading, 1, "the child holds the claim");
    let waiter = {
        let name = name.clone();
        std::thread::spawn(move || {
            let q = Queue::open(&name).unwrap();
            let got = q.recv_timeout(Duration::from_secs(30));
            (got, Instant::now())
        })
    };
    // Let the receiver fall asleep with the claimed slot busy.
    std::thread::sleep(Duration::from_millis(200));
    let killed = Instant::now();
    c.kill9();
    let (got, at) = waiter.join().unwrap();
    let (m, p) = got.expect("the claimed message, once its claimant died");
    assert_eq!((unmessage(&m).0, p), (1, 2));
    println!(
        "claimant killed -> message received by a blocked receiver in {:?}",
        at - killed
    );
    // Two of one priority; the first claimed by a process that is killed.
    q.send(&message(2), 2).unwrap();
    q.send(&message(3), 2).unwrap();
    let mut c = claimant();
    c.kill9();
    assert_eq!(q.recover().unwrap(), (0, 1));
    assert_eq!(unmessage(&q.try_recv().unwrap().0).0, 2);
    assert_eq!(unmessage(&q.try_recv().unwrap().0).0, 3);
    let s = q.stats().unwrap();
    assert_eq!((s.recovered_recvs, s.received, s.depth), (2, 3, 0));
}
