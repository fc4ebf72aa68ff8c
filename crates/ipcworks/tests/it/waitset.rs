//! The WaitSet (issue 20, item 2): readiness from other processes, never
//! lost; kill -9 of a channel's last sender through the set; no CPU while
//! idle.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ipcworks::channel::{Channel, Sender};
use ipcworks::message::{Deadline, TryRecvError};
use ipcworks::mq::posix::Queue as PosixQueue;
use ipcworks::queue::Queue;
use ipcworks::sync::Semaphore;
use ipcworks::waitset::WaitSet;

use crate::support::{self, KillOnDrop, ShmCleanup};

const CHANNELS: usize = 4;
const QUEUES: usize = 4;
const SEMS: usize = 2;
const MQS: usize = 2;
const OBJECTS: usize = CHANNELS + QUEUES + SEMS + MQS;
const PRODUCERS: u64 = 2;
const OPS: u64 = 50_000;

fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

/// The object producer `p`'s op `i` goes to (a pure function, so the
/// parent knows what to expect).
fn plan(p: u64) -> Vec<usize> {
    let mut s = 0x9E37_79B9_7F4A_7C15 ^ (p + 1);
    (0..OPS)
        .map(|_| (xorshift(&mut s) % OBJECTS as u64) as usize)
        .collect()
}

fn names(base: &str) -> Vec<String> {
    (0..OBJECTS).map(|i| format!("{base}-{i}")).collect()
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // stress: BASE,P — makes the objects ready in producer P's order.
            "stress" => {
                let (base, p) = arg.split_once(',').unwrap();
                let p: u64 = p.parse().unwrap();
                let n = names(base);
                let mut tx: Vec<Sender> = (0..CHANNELS)
                    .map(|i| Sender::open(&n[i]).unwrap())
                    .collect();
                let qs: Vec<Queue> = (0..QUEUES)
                    .map(|i| Queue::open(&n[CHANNELS + i]).unwrap())
                    .collect();
                let sems: Vec<Semaphore> = (0..SEMS)
                    .map(|i| Semaphore::open(&n[CHANNELS + QUEUES + i]).unwrap())
                    .collect();
                let mqs: Vec<PosixQueue> = (0..MQS)
                    .map(|i| PosixQueue::open(&n[CHANNELS + QUEUES + SEMS + i]).unwrap())
                    .collect();
                println!("ready");
                for (i, &o) in plan(p).iter().enumerate() {
                    let msg = ((p << 32) | i as u64).to_le_bytes();
                    match o {
                        o if o < CHANNELS => tx[o].send(&msg).unwrap(),
                        o if o < CHANNELS + QUEUES => qs[o - CHANNELS].send(&msg, 1).unwrap(),
                        o if o < CHANNELS + QUEUES + SEMS => {
                            sems[o - CHANNELS - QUEUES].post().unwrap()
                        }
                        o => mqs[o - CHANNELS - QUEUES - SEMS].send(&msg, 1).unwrap(),
                    }
                }
            }
            "idle" => idle_child(&arg),
            // A process asleep in `wait` on semaphore `arg`; counts its
            // permits, ends after 2 s without one.
            "sem-sleeper" => {
                let sem = Semaphore::open(&arg).unwrap();
                println!("ready");
                let mut took = 0;
                while sem.wait_timeout(Duration::from_secs(2)).is_ok() {
                    took += 1;
                }
                println!("TOOK {took}");
            }
            // A WaitSet on semaphore `arg` whose owner is slow: 50 ms from the
            // report to its `try_wait`. Ends after 2 s without a report.
            "sem-poller" => {
                let sem = Semaphore::open(&arg).unwrap();
                let mut set = WaitSet::new().unwrap();
                set.add_semaphore(0, &sem).unwrap();
                println!("ready");
                let mut took = 0;
                while !set
                    .wait(Deadline::after(Duration::from_secs(2)))
                    .unwrap()
                    .is_empty()
                {
                    std::thread::sleep(Duration::from_millis(50));
                    while sem.try_wait().is_ok() {
                        took += 1;
                    }
                }
                println!("TOOK {took}");
            }
            other => support::unknown_role(other),
        }
    });
}

/// A dozen objects of four kinds (shm channels, native queues, native
/// semaphores, POSIX queues) made ready in random order by two other
/// processes, 100,000 times: every message is taken exactly once (and in
/// order per producer on each channel), every permit once, and a wait that
/// times out while something could be taken fails the test (lost
/// readiness).
#[test]
fn stress_100k_readiness_from_two_processes_taken_exactly_once() {
    let base = support::unique_name("ws");
    let n = names(&base);
    let mut cleanup = ShmCleanup(Vec::new());
    let mut rx = Vec::new();
    for name in &n[..CHANNELS] {
        cleanup.0.push(format!("ipcworks.chan.{name}"));
        let c = Channel::builder().capacity(64).create(name).unwrap();
        rx.push(c.receiver().unwrap());
    }
    let qs: Vec<Queue> = n[CHANNELS..CHANNELS + QUEUES]
        .iter()
        .map(|name| {
            cleanup.0.push(format!("ipcworks.queue.{name}"));
            Queue::options().remove_on_drop(true).create(name).unwrap()
        })
        .collect();
    let sems: Vec<Semaphore> = n[CHANNELS + QUEUES..CHANNELS + QUEUES + SEMS]
        .iter()
        .map(|name| {
            cleanup.0.push(format!("ipcworks.sem.{name}"));
            Semaphore::create(name, 0).unwrap()
        })
        .collect();
    let mqs: Vec<PosixQueue> = n[CHANNELS + QUEUES + SEMS..]
        .iter()
        .map(|name| {
            PosixQueue::options()
                .capacity(10)
                .max_message(8)
                .remove_on_drop(true)
                .create(name)
                .unwrap()
        })
        .collect();
    let mut set = WaitSet::new().unwrap();
    for (i, r) in rx.iter().enumerate() {
        set.add_channel(i, r).unwrap();
    }
    for (i, q) in qs.iter().enumerate() {
        set.add_queue(CHANNELS + i, q).unwrap();
    }
    for (i, s) in sems.iter().enumerate() {
        set.add_semaphore(CHANNELS + QUEUES + i, s).unwrap();
    }
    for (i, m) in mqs.iter().enumerate() {
        set.add_fd(CHANNELS + QUEUES + SEMS + i, m).unwrap();
    }
    // What the producers will do: messages per (producer, op), permits per
    // semaphore.
    let plans: Vec<Vec<usize>> = (0..PRODUCERS).map(plan).collect();
    let mut permits_due = [0u64; SEMS];
    let mut due = 0u64;
    for p in &plans {
        for &o in p {
            if (CHANNELS + QUEUES..CHANNELS + QUEUES + SEMS).contains(&o) {
                permits_due[o - CHANNELS - QUEUES] += 1;
            }
            due += 1;
        }
    }
    let start = Instant::now();
    let _children: Vec<KillOnDrop> = (0..PRODUCERS)
        .map(|p| {
            KillOnDrop::spawn_ready(support::child(
                "waitset::child",
                "stress",
                &format!("{base},{p}"),
            ))
        })
        .collect();
    let mut seen: Vec<Vec<bool>> = vec![vec![false; OPS as usize]; PRODUCERS as usize];
    let mut last_on_channel: HashMap<(usize, u64), u64> = HashMap::new();
    let mut permits = [0u64; SEMS];
    let mut taken = 0u64;
    let mut waits = 0u64;
    let take = |p: u64, i: u64, o: usize, seen: &mut Vec<Vec<bool>>| {
        assert!(p < PRODUCERS && i < OPS, "garbage message {p}/{i}");
        assert_eq!(
            plans[p as usize][i as usize], o,
            "message {p}/{i} on the wrong object"
        );
        assert!(!seen[p as usize][i as usize], "message {p}/{i} taken twice");
        seen[p as usize][i as usize] = true;
    };
    let split = |m: &[u8]| {
        let v = u64::from_le_bytes(m.try_into().expect("8-byte message"));
        (v >> 32, v & 0xFFFF_FFFF)
    };
    while taken < due {
        let ready = set.wait(Deadline::after(Duration::from_secs(20))).unwrap();
        waits += 1;
        if ready.is_empty() {
            // Nothing reported for 20 s: is something there after all?
            let there = rx.iter_mut().any(|r| r.try_recv().is_ok())
                || qs.iter().any(|q| q.try_recv().is_ok())
                || sems.iter().any(|s| s.try_wait().is_ok())
                || mqs.iter().any(|m| m.try_recv().is_ok());
            panic!(
                "no readiness for 20 s with {taken} of {due} taken; something was there: {there}"
            );
        }
        for key in ready {
            match key {
                o if o < CHANNELS => loop {
                    match rx[o].try_recv() {
                        Ok(m) => {
                            let (p, i) = split(&m);
                            take(p, i, o, &mut seen);
                            if let Some(&prev) = last_on_channel.get(&(o, p)) {
                                assert!(i > prev, "channel {o}: {p}/{i} after {p}/{prev}");
                            }
                            last_on_channel.insert((o, p), i);
                            taken += 1;
                        }
                        Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                        Err(e) => panic!("channel {o}: {e}"),
                    }
                },
                o if o < CHANNELS + QUEUES => {
                    while let Ok((m, _)) = qs[o - CHANNELS].try_recv() {
                        let (p, i) = split(&m);
                        take(p, i, o, &mut seen);
                        taken += 1;
                    }
                }
                o if o < CHANNELS + QUEUES + SEMS => {
                    while sems[o - CHANNELS - QUEUES].try_wait().is_ok() {
                        permits[o - CHANNELS - QUEUES] += 1;
                        taken += 1;
                    }
                }
                o if o < OBJECTS => {
                    while let Ok((m, _)) = mqs[o - CHANNELS - QUEUES - SEMS].try_recv() {
                        let (p, i) = split(&m);
                        take(p, i, o, &mut seen);
                        taken += 1;
                    }
                }
                other => panic!("unknown key {other}"),
            }
        }
    }
    let elapsed = start.elapsed();
    eprintln!("waitset stress: {taken} readiness events taken in {waits} waits, {elapsed:?}");
    assert_eq!(permits, permits_due, "permits taken per semaphore");
    for (p, s) in seen.iter().enumerate() {
        let semops = plans[p]
            .iter()
            .filter(|&&o| (CHANNELS + QUEUES..CHANNELS + QUEUES + SEMS).contains(&o))
            .count();
        let got = s.iter().filter(|&&b| b).count();
        assert_eq!(got + semops, OPS as usize, "producer {p}: messages taken");
    }
    // Nothing more anywhere.
    assert!(qs.iter().all(|q| q.try_recv().is_err()));
    assert!(sems.iter().all(|s| s.try_wait().is_err()));
    assert!(mqs.iter().all(|m| m.try_recv().is_err()));
    drop(set);
    drop(cleanup);
}

/// kill -9 of a channel's last sender wakes a WaitSet at once, and the
/// receiver then says Disconnected.
#[test]
fn kill_9_of_the_last_sender_wakes_the_waitset() {
    let name = support::unique_name("wsdead");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
    let chan = Channel::builder().capacity(4).create(&name).unwrap();
    let mut rx = chan.receiver().unwrap();
    let mut child = KillOnDrop::spawn_ready(support::child("dead_peer::child", "send-hang", &name));
    let mut set = WaitSet::new().unwrap();
    set.add_channel(7, &rx).unwrap();
    assert_eq!(
        set.wait(Deadline::after(Duration::from_secs(30))).unwrap(),
        [7]
    );
    assert_eq!(rx.try_recv().unwrap(), b"one");
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let times: Vec<Duration> = {
        let t = std::thread::spawn(move || {
            let r = set.wait(Deadline::after(Duration::from_secs(30))).unwrap();
            (r, Instant::now())
        });
        std::thread::sleep(Duration::from_millis(150));
        let killed = Instant::now();
        child.kill9();
        let (r, woke) = t.join().unwrap();
        assert_eq!(r, [7], "the set woke for {r:?}");
        vec![woke.saturating_duration_since(killed)]
    };
    let r = rx.try_recv();
    assert!(matches!(r, Err(TryRecvError::Disconnected)), "{r:?}");
    eprintln!("kill -9 to WaitSet ready: {times:?}");
    // The slice alone would take up to 20 ms; generous for a loaded machine.
    assert!(times[0] < Duration::from_millis(15), "{times:?}");
}

/// utime + stime of process `pid` (all its threads), in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (clock ticks, USER_HZ = 100); `rest`
    // starts at field 3.
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) as f64 / 100.0
}

/// The idle child: a WaitSet over a channel (with a live sender), a queue
/// and a semaphore waits 3 s with nothing coming; then a blocked receive
/// waits 3 s. It says where it is between the two.
fn idle_child(name: &str) {
    let chan = Channel::builder().capacity(4).create(name).unwrap();
    let mut rx = chan.receiver().unwrap();
    let _tx = chan.sender().unwrap();
    let q = Queue::options().remove_on_drop(true).create(name).unwrap();
    let sem = Semaphore::create(name, 0).unwrap();
    let mut set = WaitSet::new().unwrap();
    set.add_channel(0, &rx).unwrap();
    set.add_queue(1, &q).unwrap();
    set.add_semaphore(2, &sem).unwrap();
    // Helpers armed once before the measured wait.
    assert!(set.wait(Deadline::Now).unwrap().is_empty());
    println!("ready");
    assert!(
        set.wait(Deadline::after(Duration::from_secs(3)))
            .unwrap()
            .is_empty()
    );
    println!("phase2");
    assert!(rx.recv_timeout(Duration::from_secs(3)).is_err());
    println!("done");
    std::thread::sleep(Duration::from_secs(10));
}

/// An idle WaitSet (a channel with a live sender, a queue, a semaphore;
/// its helper threads included) and an idle blocked receive use (almost)
/// no CPU over three seconds each, read from the child's /proc/PID/stat.
#[test]
fn idle_waitset_and_idle_receiver_use_no_cpu() {
    use std::io::BufRead;
    let name = support::unique_name("wsidle");
    let _cleanup = ShmCleanup(vec![
        format!("ipcworks.chan.{name}"),
        format!("ipcworks.queue.{name}"),
        format!("ipcworks.sem.{name}"),
    ]);
    let mut cmd = support::child("waitset::child", "idle", &name);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let pid = child.pid();
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines().map_while(Result::ok);
    let mut at = |what: &str| {
        assert!(
            lines.any(|l| l.contains(what)),
            "the child ended before {what}"
        );
        cpu_seconds(pid)
    };
    let ready = at("ready");
    let phase2 = at("phase2");
    let done = at("done");
    child.kill9();
    let (set, recv) = (phase2 - ready, done - phase2);
    eprintln!("idle WaitSet: {set} s of CPU in 3 s; idle blocked receive: {recv} s in 3 s");
    assert!(set < 0.15, "an idle WaitSet used {set} s of CPU in 3 s");
    assert!(
        recv < 0.15,
        "an idle blocked receive used {recv} s of CPU in 3 s"
    );
}

/// Three processes asleep on one semaphore — two in `wait`, one in a
/// WaitSet whose owner takes 50 ms to act on a report — and this one
/// posting 200 permits, one at a time, each once the last is taken: every
/// permit is taken exactly once, and quickly. A post wakes every sleeper
/// while a WaitSet is registered; were it to wake one, the WaitSet's helper
/// would take the wake-up of a `wait`ing process now and then, and that
/// permit would lie 50 ms (the slow owner) before anyone took it.
#[test]
fn three_processes_asleep_on_one_semaphore_lose_no_wake_up() {
    use std::io::BufRead;
    const POSTS: usize = 200;
    let name = support::unique_name("wssem");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.sem.{name}")]);
    let sem = Semaphore::create(&name, 0).unwrap();
    let mut children: Vec<KillOnDrop> = ["sem-sleeper", "sem-sleeper", "sem-poller"]
        .iter()
        .map(|role| {
            let mut cmd = support::child("waitset::child", role, &name);
            cmd.stdout(std::process::Stdio::piped());
            KillOnDrop::spawn(cmd)
        })
        .collect();
    let mut outs: Vec<_> = children
        .iter_mut()
        .map(|c| {
            let out = c.0.as_mut().unwrap().stdout.take().unwrap();
            let mut lines = std::io::BufReader::new(out).lines().map_while(Result::ok);
            assert!(lines.any(|l| l.contains("ready")), "a child ended early");
            lines
        })
        .collect();
    // Let all three fall asleep.
    std::thread::sleep(Duration::from_millis(300));
    let mut handoffs = Vec::with_capacity(POSTS);
    for _ in 0..POSTS {
        let t = Instant::now();
        sem.post().unwrap();
        assert!(
            support::wait_until(Duration::from_secs(10), || sem.value().unwrap() == 0),
            "a permit was not taken within 10 s"
        );
        handoffs.push(t.elapsed());
    }
    let took: usize = outs
        .iter_mut()
        .map(|lines| {
            let l = lines.find(|l| l.starts_with("TOOK ")).expect("TOOK line");
            l[5..].parse::<usize>().unwrap()
        })
        .sum();
    for c in &mut children {
        assert!(c.wait_for(Duration::from_secs(30)).success());
    }
    assert_eq!(took, POSTS, "permits taken by the three processes");
    handoffs.sort();
    let median = handoffs[POSTS / 2];
    let p90 = handoffs[POSTS * 9 / 10];
    eprintln!(
        "post to taken: median {median:?}, p90 {p90:?}, max {:?}",
        handoffs[POSTS - 1]
    );
    assert!(
        p90 < Duration::from_millis(30),
        "a tenth of the permits waited {p90:?} or more (median {median:?})"
    );
}

/// The set's own descriptor turns readable when an object in it is ready
/// (what an outer event loop waits on), and `wait(Deadline::Now)` then
/// collects the key; deadlines come back once, when they pass.
#[test]
fn the_sets_descriptor_is_readable_when_something_is_ready_and_deadlines_fire_once() {
    use std::os::fd::AsFd;
    let name = support::unique_name("wsfd");
    let _cleanup = ShmCleanup(vec![format!("ipcworks.sem.{name}")]);
    let sem = Semaphore::create(&name, 0).unwrap();
    let mut set = WaitSet::new().unwrap();
    set.add_semaphore(3, &sem).unwrap();
    // Arms the helper.
    assert!(set.wait(Deadline::Now).unwrap().is_empty());
    let poster = std::thread::spawn({
        let name = name.clone();
        move || {
            std::thread::sleep(Duration::from_millis(100));
            Semaphore::open(&name).unwrap().post().unwrap();
        }
    });
    let set_fd = set.as_fd();
    let mut fds = [rustix::event::PollFd::new(
        &set_fd,
        rustix::event::PollFlags::IN,
    )];
    let ten = rustix::time::Timespec {
        tv_sec: 10,
        tv_nsec: 0,
    };
    assert_eq!(
        rustix::event::poll(&mut fds, Some(&ten)).unwrap(),
        1,
        "not readable in 10 s"
    );
    poster.join().unwrap();
    assert_eq!(set.wait(Deadline::Now).unwrap(), [3]);
    assert!(sem.try_wait().is_ok(), "the set took no permit");
    // A deadline: reported once when it passes, then gone.
    set.add_deadline(9, Instant::now() + Duration::from_millis(50))
        .unwrap();
    let t = Instant::now();
    assert_eq!(
        set.wait(Deadline::after(Duration::from_secs(10))).unwrap(),
        [9]
    );
    assert!(t.elapsed() >= Duration::from_millis(45));
    assert!(
        set.wait(Deadline::after(Duration::from_millis(50)))
            .unwrap()
            .is_empty()
    );
    assert!(set.remove(3));
    assert!(!set.remove(9), "a fired deadline leaves the set");
    assert!(set.is_empty());
}

/// Descriptors of every kind the issue names, each made ready by a real
/// outside program (`sh`): an anonymous pipe, a FIFO and a Unix stream
/// socket, reported under their keys and readable then.
#[test]
fn pipes_fifos_and_sockets_are_reported_through_their_descriptors() {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::net::UnixStream;

    let path = std::env::temp_dir().join(support::unique_name("wsfifo"));
    let _fifo = ipcworks::pipe::Fifo::create(&path).unwrap();
    let mut fifo = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
        .unwrap();
    let (mut pipe_r, pipe_w) = ipcworks::pipe::pipe().unwrap();
    let (mut sock, theirs) = UnixStream::pair().unwrap();
    let mut set = WaitSet::new().unwrap();
    set.add_fd(10, &pipe_r).unwrap();
    set.add_fd(11, &fifo).unwrap();
    set.add_fd(12, &sock).unwrap();
    // Nothing yet.
    assert!(
        set.wait(Deadline::after(Duration::from_millis(50)))
            .unwrap()
            .is_empty()
    );
    // One shell writes to all three, a moment apart (bash: dash refuses
    // `>&N` for N above 9, and with other tests' descriptors open at once
    // the numbers often are).
    let mut sh = std::process::Command::new("bash");
    let p = ipcworks::pipe::pass_fd(&mut sh, pipe_w).unwrap();
    let s = ipcworks::pipe::pass_fd(&mut sh, theirs).unwrap();
    sh.arg("-c").arg(format!(
        "sleep 0.1; echo p >&{p}; sleep 0.1; echo f > '{}'; sleep 0.1; echo s >&{s}",
        path.display()
    ));
    let mut child = KillOnDrop::spawn(sh);
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < 3 && start.elapsed() < Duration::from_secs(30) {
        for key in set.wait(Deadline::after(Duration::from_secs(10))).unwrap() {
            let mut buf = [0u8; 16];
            let n = match key {
                10 => pipe_r.read(&mut buf).unwrap(),
                11 => fifo.read(&mut buf).unwrap(),
                12 => sock.read(&mut buf).unwrap(),
                other => panic!("unknown key {other}"),
            };
            if n > 0 {
                got.push((key, String::from_utf8_lossy(&buf[..n]).to_string()));
                // Read: no longer ready (or hung up: taken out).
                set.remove(key);
            }
        }
    }
    assert!(child.wait_for(Duration::from_secs(30)).success());
    assert_eq!(
        got,
        [
            (10, "p\n".to_string()),
            (11, "f\n".to_string()),
            (12, "s\n".to_string())
        ]
    );
}
