//! A WaitSet over a native queue (issue 20 follow-up): its helper never
//! eats a wake-up another process's blocked `recv` needed, takes no
//! wake-up permit, does not spin over a message left untaken or a stale
//! permit, and `wait(Deadline::Now)` sees a ready object at once.

use std::io::BufRead;
use std::process::Stdio;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::channel::Channel;
use ipcworks::message::{Deadline, TryRecvError};
use ipcworks::queue::Queue;
use ipcworks::shm::Segment;
use ipcworks::sync::Semaphore;
use ipcworks::waitset::WaitSet;

use crate::support::{self, KillOnDrop, ShmCleanup};

/// Offset of the `filled` semaphore's count word in a queue's segment
/// (white-box, as a peer would write it: `queue/layout.rs` asserts it).
const FILLED_WORD: usize = 160;
/// Offset of the receive side's sleepers register (`recv_sleepers`).
const RECV_SLEEPERS: usize = 128;

/// The `filled` semaphore's count word in queue segment `seg`.
fn filled_word(seg: &Segment) -> &AtomicU64 {
    // SAFETY: the word lies at 160..168 of the 192-byte header, 8-aligned,
    // an atomic in every process; borrowed from the mapping.
    unsafe { &*(seg.as_ptr().add(FILLED_WORD) as *const AtomicU64) }
}

fn number(m: &[u8]) -> u64 {
    u64::from_le_bytes(m.try_into().expect("an 8-byte message"))
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // A: a WaitSet on queue `arg` whose owner is slow: it says when it
            // waits and when the set reported, takes what is there only 50 ms
            // later, and ends after 3 s without a report.
            "poller" => {
                let q = Queue::open(&arg).unwrap();
                let mut set = WaitSet::new().unwrap();
                set.add_queue(0, &q).unwrap();
                println!("ready");
                loop {
                    println!("waiting");
                    let r = set.wait(Deadline::after(Duration::from_secs(3))).unwrap();
                    if r.is_empty() {
                        break;
                    }
                    println!("report");
                    std::thread::sleep(Duration::from_millis(50));
                    while let Ok((m, _)) = q.try_recv() {
                        println!("got {}", number(&m));
                    }
                }
                println!("done");
            }
            // B: a process blocked in `recv` on queue `arg` (no spin: it
            // sleeps at once), saying when it waits and what it got; ends
            // after 3 s without a message.
            "sleeper" => {
                let q = Queue::options().spin(Duration::ZERO).open(&arg).unwrap();
                println!("ready");
                loop {
                    println!("waiting");
                    match q.recv_timeout(Duration::from_secs(3)) {
                        Ok((m, _)) => println!("got {}", number(&m)),
                        Err(_) => break,
                    }
                }
                println!("done");
            }
            // A WaitSet over queue `arg` holding one message its owner leaves
            // there: reported by every wait, and no CPU between them; then,
            // the message taken, a stale wake-up permit (as a receiver that
            // found its message by itself leaves one) is neither reported nor
            // taken, and costs no CPU either.
            "untaken" => untaken_child(&arg),
            // A WaitSet on queue `arg`, blocked in `wait` when the parent
            // truncates the queue to nothing: that wait and the next report
            // it, and `try_recv` says why.
            "truncated" => {
                let q = Queue::open(&arg).unwrap();
                let mut set = WaitSet::new().unwrap();
                set.add_queue(6, &q).unwrap();
                println!("ready");
                for _ in 0..2 {
                    let t = Instant::now();
                    let r = set.wait(Deadline::after(Duration::from_secs(10))).unwrap();
                    println!("WAIT {r:?} {}", t.elapsed().as_millis());
                }
                let e = q.try_recv().unwrap_err();
                println!(
                    "TRY {}",
                    matches!(e, TryRecvError::Other(Error::Truncated { .. }))
                );
            }
            // A WaitSet on channel `arg`'s receiver, blocked in `wait` when the
            // parent truncates the channel to nothing: the wait reports it,
            // `try_recv` says why, and the set can be dropped (its helper,
            // asleep on a page the cut took, wakes at its next slice).
            "truncated-channel" => {
                let mut rx = ipcworks::channel::Receiver::open(&arg).unwrap();
                let mut set = WaitSet::new().unwrap();
                set.add_channel(7, &rx).unwrap();
                println!("ready");
                let t = Instant::now();
                let r = set.wait(Deadline::after(Duration::from_secs(10))).unwrap();
                println!("WAIT {r:?} {}", t.elapsed().as_millis());
                let e = rx.try_recv().unwrap_err();
                println!(
                    "TRY {}",
                    matches!(e, TryRecvError::Other(Error::Truncated { .. }))
                );
                let t = Instant::now();
                drop(set);
                println!("DROPPED {}", t.elapsed().as_millis());
            }
            // A WaitSet armed on queue `arg`, waiting to be killed.
            "armed" => {
                let q = Queue::open(&arg).unwrap();
                let mut set = WaitSet::new().unwrap();
                set.add_queue(0, &q).unwrap();
                assert!(set.wait(Deadline::Now).unwrap().is_empty());
                println!("ready");
                set.wait(Deadline::after(Duration::from_secs(60))).unwrap();
            }
            other => support::unknown_role(other),
        }
    });
}

/// What a child's reader thread saw: whether its last line said it waits,
/// and the message numbers it got.
#[derive(Default)]
struct Seen {
    waiting: bool,
    got: Vec<u64>,
    done: bool,
}

/// Spawns `role` on queue `name` and a thread that follows its lines.
fn follow(role: &str, name: &str) -> (KillOnDrop, Arc<Mutex<Seen>>) {
    let mut cmd = support::child("waitset_queue::child", role, name);
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let mut s = s.lock().unwrap();
            match l.as_str() {
                "waiting" => s.waiting = true,
                "report" => s.waiting = false,
                "done" => s.done = true,
                l if l.starts_with("got ") => {
                    s.waiting = false;
                    s.got.push(l[4..].parse().unwrap());
                }
                _ => {}
            }
        }
        s.lock().unwrap().done = true;
    });
    (child, seen)
}

/// Three processes share one queue: A holds a WaitSet on it and takes
/// messages only 50 ms after a report, B is blocked in `recv`, and this
/// one sends 60 numbered messages, each once both are asleep again. Every
/// message reaches B or A exactly once, and quickly: the set's helper
/// never takes the wake-up B needed. (Were a commit to wake one sleeper
/// and the helper be the one, the message would lie until A's late take
/// or B's 50 ms look.)
#[test]
fn three_processes_on_one_queue_lose_no_wake_up() {
    const N: u64 = 60;
    let name = support::unique_name("wsqwake");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options()
        .capacity(4)
        .max_message(8)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    let (mut a, a_seen) = follow("poller", &name);
    let (mut b, b_seen) = follow("sleeper", &name);
    let both_waiting = || a_seen.lock().unwrap().waiting && b_seen.lock().unwrap().waiting;
    assert!(
        support::wait_until(Duration::from_secs(30), both_waiting),
        "the children did not start"
    );
    let mut handoffs = Vec::with_capacity(N as usize);
    for i in 0..N {
        // Both asleep: B in `recv` (registered on the queue's semaphore),
        // A in `wait` (its helper a moment after).
        assert!(
            support::wait_until(Duration::from_secs(10), || both_waiting()
                && q.stats().unwrap().blocked_receivers >= 1),
            "message {i}: A and B not both waiting within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
        let t = Instant::now();
        q.send(&i.to_le_bytes(), 1).unwrap();
        assert!(
            support::wait_until(Duration::from_secs(10), || q.stats().unwrap().received
                == i + 1),
            "message {i} was not taken within 10 s"
        );
        handoffs.push(t.elapsed());
    }
    for c in [&mut a, &mut b] {
        assert!(c.wait_for(Duration::from_secs(30)).success());
    }
    let (by_a, by_b) = (
        a_seen.lock().unwrap().got.clone(),
        b_seen.lock().unwrap().got.clone(),
    );
    assert!(a_seen.lock().unwrap().done && b_seen.lock().unwrap().done);
    let mut all: Vec<u64> = by_a.iter().chain(&by_b).copied().collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (0..N).collect::<Vec<_>>(),
        "every message exactly once (A took {by_a:?})"
    );
    handoffs.sort();
    let median = handoffs[N as usize / 2];
    let p90 = handoffs[N as usize * 9 / 10];
    eprintln!(
        "send to taken: median {median:?}, p90 {p90:?}, max {:?}; A took {}, B took {}",
        handoffs[N as usize - 1],
        by_a.len(),
        by_b.len()
    );
    assert!(
        p90 < Duration::from_millis(30),
        "a tenth of the messages waited {p90:?} or more (median {median:?}; A took {by_a:?})"
    );
}

/// utime + stime of process `pid` (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

fn untaken_child(name: &str) {
    let q = Queue::options().remove_on_drop(true).create(name).unwrap();
    let seg = Segment::open(&format!("ipcworks.queue.{name}")).unwrap();
    let filled = filled_word(&seg);
    q.send(b"left", 1).unwrap();
    let mut set = WaitSet::new().unwrap();
    set.add_queue(4, &q).unwrap();
    // Level-triggered: the message left there is reported by every wait,
    // at once.
    for round in 0..3 {
        let t = Instant::now();
        let r = set.wait(Deadline::after(Duration::from_secs(10))).unwrap();
        println!("round {round}: {r:?} in {:?}", t.elapsed());
    }
    println!("phase untaken");
    // The owner does something else for 2 s, the message still there.
    std::thread::sleep(Duration::from_secs(2));
    println!("phase untaken end");
    let t = Instant::now();
    let r = set.wait(Deadline::after(Duration::from_secs(10))).unwrap();
    println!("again: {r:?} in {:?}", t.elapsed());
    assert_eq!(q.try_recv().unwrap().0, b"left");
    // A stale wake-up permit, as a receiver that found its message by
    // itself leaves one behind.
    filled.fetch_add(1, SeqCst);
    println!("phase stale");
    let r = set.wait(Deadline::after(Duration::from_secs(2))).unwrap();
    println!("phase stale end");
    println!(
        "stale: {r:?}, permits {}",
        filled.load(SeqCst) & 0xFFFF_FFFF
    );
    std::thread::sleep(Duration::from_secs(10));
}

/// A message left in the queue is reported by every `wait` (at once), the
/// set uses no CPU while its owner does something else between two
/// waits, and a stale wake-up permit in the queue's semaphore is neither
/// reported as a message nor taken (it is a receiver's), nor does it make
/// the set spin.
#[test]
fn a_message_left_untaken_or_a_stale_permit_costs_no_cpu() {
    let name = support::unique_name("wsquntaken");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let mut cmd = support::child("waitset_queue::child", "untaken", &name);
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let pid = child.pid();
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines().map_while(Result::ok);
    let mut log = Vec::new();
    let mut at = |what: &str| {
        for l in lines.by_ref() {
            let hit = l.starts_with(what);
            log.push(l);
            if hit {
                return (cpu_seconds(pid), log.last().unwrap().clone());
            }
        }
        panic!("the child ended before {what}: {log:?}");
    };
    let (untaken, _) = at("phase untaken");
    let (untaken_end, _) = at("phase untaken end");
    let (_, again) = at("again: ");
    let (stale, _) = at("phase stale");
    let (stale_end, _) = at("phase stale end");
    let (_, result) = at("stale: ");
    child.kill9();
    eprintln!("{log:#?}");
    for round in 0..3 {
        let want = format!("round {round}: [4] in ");
        assert!(
            log.iter().any(|l| l.starts_with(&want)),
            "round {round} did not report the message: {log:?}"
        );
    }
    assert!(again.starts_with("again: [4] in "), "{again}");
    let (idle, stale_cpu) = (untaken_end - untaken, stale_end - stale);
    eprintln!("CPU: {idle} s beside an untaken message, {stale_cpu} s beside a stale permit");
    assert!(
        idle < 0.15,
        "the set used {idle} s of CPU in 2 s beside an untaken message"
    );
    assert!(
        stale_cpu < 0.15,
        "the set used {stale_cpu} s of CPU in 2 s beside a stale permit"
    );
    assert_eq!(
        result, "stale: [], permits 1",
        "a stale permit was reported as a message, or taken"
    );
}

/// A process whose WaitSet watches a queue is killed with SIGKILL while
/// its helper sleeps: the first send after it clears the helper's
/// registration (one wake-up, of nobody), and the senders are back on the
/// fast path: the receive side's register reads zero, so later sends make
/// no system call. (A registration that stays, as a count would, made
/// every later send wake.)
#[test]
fn a_killed_waitset_costs_the_senders_one_wake_up_not_one_per_send() {
    let name = support::unique_name("wsqkilled");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let q = Queue::options().remove_on_drop(true).create(&name).unwrap();
    let seg = Segment::open(&format!("ipcworks.queue.{name}")).unwrap();
    // SAFETY: the register lies at 128..132 of the header, 4-aligned, an
    // atomic in every process; borrowed from the mapping.
    let register = unsafe { &*(seg.as_ptr().add(RECV_SLEEPERS) as *const AtomicU32) };
    let mut child = KillOnDrop::spawn_ready(support::child("waitset_queue::child", "armed", &name));
    assert!(
        support::wait_until(Duration::from_secs(10), || register.load(SeqCst) != 0),
        "the helper never registered"
    );
    child.kill9();
    let left = register.load(SeqCst);
    q.send(b"one", 1).unwrap();
    let after = register.load(SeqCst);
    assert_eq!(q.try_recv().unwrap().0, b"one");
    q.send(b"two", 1).unwrap();
    assert_eq!(q.try_recv().unwrap().0, b"two");
    eprintln!("register: {left:#x} when killed, {after:#x} after one send");
    assert_eq!(
        after, 0,
        "a killed WaitSet's registration ({left:#x}) outlives a send: the senders are off \
         the fast path for good"
    );
    assert_eq!(register.load(SeqCst), 0);
}

/// Starts the child `role` over the object `name`, waits for its
/// "ready" line, gives its wait time to block (its helper asleep), then
/// truncates `/dev/shm/ipcworks.{prefix}.{name}` to nothing, as a hostile
/// peer would; returns the child and the rest of its output lines.
fn truncate_under_a_waiting_child(
    role: &str,
    name: &str,
    prefix: &str,
) -> (KillOnDrop, impl Iterator<Item = String>) {
    let mut cmd = support::child("waitset_queue::child", role, name);
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines().map_while(Result::ok);
    assert!(lines.any(|l| l == "ready"), "the child ended early");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/ipcworks.{prefix}.{name}"))
        .unwrap()
        .set_len(0)
        .unwrap();
    (child, lines)
}

/// A peer truncates a queue (to nothing: `ftruncate`) while a WaitSet
/// over it is blocked in `wait`, its helper asleep: that wait reports it
/// within the helper's one-second look at the size (a cut wakes no
/// futex), the next at once (its own look at the slots finds the pages
/// gone, no SIGBUS), `try_recv` says `Truncated`, and the set's drop
/// ends its helper (which sleeps on a page that is gone, where no
/// interrupt reaches it).
#[test]
fn a_truncated_queue_is_reported_by_the_waitset() {
    let name = support::unique_name("wsqtrunc");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.queue.{name}")]);
    let _q = Queue::options().remove_on_drop(true).create(&name).unwrap();
    let (mut child, lines) = truncate_under_a_waiting_child("truncated", &name, "queue");
    let got: Vec<String> = lines
        .filter(|l| l.starts_with("WAIT ") || l.starts_with("TRY "))
        .collect();
    assert!(child.wait_for(Duration::from_secs(60)).success(), "{got:?}");
    eprintln!("{got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    for w in &got[..2] {
        assert!(w.starts_with("WAIT [6] "), "not reported: {got:?}");
    }
    // Milliseconds: the blocked wait within the helper's second (and the
    // 300 ms before the cut), generously.
    let first: u64 = got[0]["WAIT [6] ".len()..].parse().unwrap();
    assert!(first < 5_000, "the blocked wait took {first} ms: {got:?}");
    assert_eq!(got[2], "TRY true", "{got:?}");
}

/// What `wait_now_sees_a_ready_object_at_once_every_time` makes ready and
/// takes, for one kind of object.
struct Kind {
    key: usize,
    ready: Box<dyn FnMut()>,
    take: Box<dyn FnMut() -> bool>,
}

/// `wait(Deadline::Now)` reports an object made ready just before, every
/// time (1,000 rounds for each of a native queue, a native semaphore and
/// a shm channel), without waiting for the object's helper; and once it
/// was taken, the next `wait(Deadline::Now)` reports nothing.
#[test]
fn wait_now_sees_a_ready_object_at_once_every_time() {
    const ROUNDS: usize = 1000;
    let name = support::unique_name("wsqnow");
    let _cleanup = ShmCleanup(vec![
        format!("ipcworks.queue.{name}"),
        format!("ipcworks.sem.{name}"),
        format!("ipcworks.chan.{name}"),
    ]);
    let q = Arc::new(Queue::options().remove_on_drop(true).create(&name).unwrap());
    let sem = Arc::new(Semaphore::create(&name, 0).unwrap());
    let chan = Channel::builder().capacity(4).create(&name).unwrap();
    let rx = Arc::new(Mutex::new(chan.receiver().unwrap()));
    let tx = Arc::new(Mutex::new(chan.sender().unwrap()));
    let mut set = WaitSet::new().unwrap();
    set.add_queue(1, &q).unwrap();
    set.add_semaphore(2, &sem).unwrap();
    set.add_channel(3, &rx.lock().unwrap()).unwrap();
    let kinds = vec![
        Kind {
            key: 1,
            ready: Box::new({
                let q = q.clone();
                move || q.send(b"m", 1).unwrap()
            }),
            take: Box::new({
                let q = q.clone();
                move || q.try_recv().is_ok()
            }),
        },
        Kind {
            key: 2,
            ready: Box::new({
                let s = sem.clone();
                move || s.post().unwrap()
            }),
            take: Box::new({
                let s = sem.clone();
                move || s.try_wait().is_ok()
            }),
        },
        Kind {
            key: 3,
            ready: Box::new({
                let tx = tx.clone();
                move || tx.lock().unwrap().send(b"m").unwrap()
            }),
            take: Box::new({
                let rx = rx.clone();
                move || match rx.lock().unwrap().try_recv() {
                    Ok(_) => true,
                    Err(TryRecvError::Empty) => false,
                    Err(e) => panic!("{e}"),
                }
            }),
        },
    ];
    // Helpers armed once.
    assert!(set.wait(Deadline::Now).unwrap().is_empty());
    let (mut missed, mut spurious) = (Vec::new(), Vec::new());
    for mut k in kinds {
        for round in 0..ROUNDS {
            (k.ready)();
            let r = set.wait(Deadline::Now).unwrap();
            if r != [k.key] {
                missed.push((k.key, round, r));
            }
            assert!((k.take)(), "key {} round {round}: nothing to take", k.key);
            let r = set.wait(Deadline::Now).unwrap();
            if !r.is_empty() {
                spurious.push((k.key, round, r));
            }
        }
    }
    let show = |v: &Vec<(usize, usize, Vec<usize>)>| format!("{:?}", &v[..v.len().min(5)]);
    assert!(
        missed.is_empty(),
        "{} of {} ready objects not reported by wait(Now); first: {}",
        missed.len(),
        3 * ROUNDS,
        show(&missed)
    );
    assert!(
        spurious.is_empty(),
        "{} of {} taken objects reported again by wait(Now); first: {}",
        spurious.len(),
        3 * ROUNDS,
        show(&spurious)
    );
}

/// A WaitSet over a channel receiver whose segment a peer truncates while
/// the set waits: the wait reports the channel, `try_recv` says
/// `Truncated`, and dropping the set returns (its helper, asleep on the
/// lost page where no wake-up reaches it, looks at the size every slice)
/// instead of hanging for ever.
#[test]
fn a_truncated_channel_is_reported_and_its_waitset_can_be_dropped() {
    let name = support::unique_name("wsctrunc");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder().capacity(4).create(&name).unwrap();
    let (mut child, lines) = truncate_under_a_waiting_child("truncated-channel", &name, "chan");
    // Its few lines fit the pipe: wait first, so a hang fails the test
    // (the child is killed) instead of blocking the read.
    let status = child.wait_for(Duration::from_secs(60));
    let got: Vec<String> = lines
        .filter(|l| l.starts_with("WAIT ") || l.starts_with("TRY ") || l.starts_with("DROPPED "))
        .collect();
    assert!(status.success(), "the child hung or failed: {got:?}");
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("WAIT [7] "), "not reported: {got:?}");
    assert_eq!(got[1], "TRY true", "{got:?}");
    // Milliseconds: within the helper's slice, generously.
    let dropped: u64 = got[2]["DROPPED ".len()..].parse().unwrap();
    assert!(
        dropped < 10_000,
        "dropping the set took {dropped} ms: {got:?}"
    );
    drop(chan);
}
