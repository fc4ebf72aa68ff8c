//! POSIX message queues: priority order, blocking when full and empty, a
//! 4 × 4 process stress, C and Python peers, unlink while open, bad input.

use std::io::Write;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::endpoint::{self, Endpoint, Options};
use ipcworks::message::{Deadline, Meta, RecvTimeoutError, SendTimeoutError, TrySendError};
use ipcworks::mq::posix::Queue;

use super::{MqCleanup, check_stress, parse_stress_msg, spawn_collecting, spawn_lines, stress_msg};
use crate::support::{self, KillOnDrop};
use ipcworks_test_support::{need, require};

const HANG: Duration = Duration::from_secs(30);

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let mut args = arg.split(',');
        let name = args.next().unwrap().to_string();
        match role {
            // Sleeps, then receives one message and prints it.
            "recv-one-later" => {
                let q = Queue::open(&name).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let (m, p) = q.recv().unwrap();
                println!("@ {} {p}", String::from_utf8(m).unwrap());
            }
            // Sleeps, then sends one message.
            "send-one-later" => {
                let q = Queue::open(&name).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                q.send(b"late", 7).unwrap();
            }
            "produce" => {
                let producer: u32 = args.next().unwrap().parse().unwrap();
                let count: u64 = args.next().unwrap().parse().unwrap();
                let q = Queue::open(&name).unwrap();
                for seq in 0..count {
                    q.send(&stress_msg(producer, seq), 1 + (seq % 3) as u32)
                        .unwrap();
                }
            }
            // Receives until a priority-0 "stop", printing `producer seq prio`.
            "consume" => {
                let q = Queue::open(&name).unwrap();
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                let mut buf = vec![0u8; q.max_message()];
                loop {
                    let (n, prio) = q.recv_into(&mut buf).unwrap();
                    if prio == 0 {
                        break;
                    }
                    let (p, seq) = parse_stress_msg(&buf[..n]);
                    writeln!(out, "@ {p} {seq} {prio}").unwrap();
                }
                out.flush().unwrap();
            }
            // Opens, says so, waits for the name to vanish, then receives.
            "hold-through-unlink" => {
                let q = Queue::open(&name).unwrap();
                println!("@ opened");
                assert!(support::wait_until(HANG, || matches!(
                    Queue::open(&name),
                    Err(Error::NotFound { .. })
                )));
                let (m, p) = q.recv_timeout(HANG).unwrap();
                assert_eq!((m.as_slice(), p), (&b"after unlink"[..], 4));
                q.send(b"reply", 2).unwrap();
            }
            // Drops to uid 65534 (this thread's credentials, which the kernel
            // checks) and tries to open the queue: must be refused.
            "open-as-nobody" => {
                use rustix::process::Uid;
                let nobody = Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                let e = Queue::open(&name).unwrap_err();
                assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
                assert!(e.to_string().contains(&name), "{e}");
            }
            // Blocking calls under a storm of signals: EINTR is retried with
            // the time left, so a timeout still takes its full time and a plain
            // receive still gets the message.
            "recv-under-signals" => {
                let q = Queue::open(&name).unwrap();
                let t = Instant::now();
                let (r, n) = super::under_signal_storm(Duration::from_millis(400), || {
                    q.recv_timeout(Duration::from_millis(250))
                });
                assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
                assert!(t.elapsed() >= Duration::from_millis(250));
                assert!(n > 0, "no signal arrived");
                println!("@ ready");
                let (r, n2) = super::under_signal_storm(Duration::from_millis(600), || q.recv());
                assert_eq!(r.unwrap(), (b"through signals".to_vec(), 3));
                assert!(n2 > n, "no signal arrived while blocked");
            }
            // With RLIMIT_MSGQUEUE at 1000 bytes (no capability lifts it),
            // creating a queue of 10 × 1024 bytes must name that limit.
            "create-under-low-rlimit" => {
                use rustix::process::{Resource, Rlimit, setrlimit};
                let low = Rlimit {
                    current: Some(1000),
                    maximum: Some(1000),
                };
                setrlimit(Resource::Msgqueue, low).unwrap();
                let e = Queue::options()
                    .capacity(10)
                    .max_message(1024)
                    .create(&name)
                    .unwrap_err();
                match &e {
                    Error::LimitExceeded { limit, value, hint } => {
                        assert!(limit.contains("RLIMIT_MSGQUEUE"), "{e}");
                        assert_eq!(value, "1000", "{e}");
                        assert!(hint.contains(&name), "{e}");
                    }
                    _ => panic!("expected LimitExceeded, got {e}"),
                }
            }
            // Opens `mq:NAME` as an endpoint (creating it) and sends two.
            "endpoint-send" => {
                let ep: Endpoint = format!("mq:{name}").parse().unwrap();
                let mut tx = endpoint::open_sender(&ep, &Options::default()).unwrap();
                for (m, priority) in [("hi", 3), ("urgent", 9)] {
                    let meta = Meta {
                        priority,
                        msg_type: 0,
                    };
                    tx.send_with(m.as_bytes(), meta).unwrap();
                }
            }
            other => support::unknown_role(other),
        }
    });
}

fn new_queue(what: &str, capacity: usize, max_message: usize) -> (Queue, MqCleanup) {
    let name = support::unique_name(what);
    let guard = MqCleanup(vec![name.clone()]);
    let q = Queue::options()
        .capacity(capacity)
        .max_message(max_message)
        .remove_on_drop(true)
        .create(&name)
        .unwrap();
    (q, guard)
}

fn gone(name: &str) -> bool {
    matches!(Queue::open(name), Err(Error::NotFound { .. }))
}

#[test]
fn created_exactly_with_the_mode_asked_and_checked_on_open() {
    let name = support::unique_name("mode");
    let _g = MqCleanup(vec![name.clone()]);
    // The umask (022 or 077 usually) would strip bits from 0666: fchmod on
    // the descriptor sets the mode exactly.
    let q = Queue::options().mode(0o666).create(&name).unwrap();
    let st = rustix::fs::fstat(q.as_fd()).unwrap();
    assert_eq!(st.st_mode & 0o777, 0o666);
    // Opening with the default expectation (0600) refuses the looser mode.
    let e = Queue::open(&name).unwrap_err();
    assert!(matches!(e, Error::Refused { .. }), "{e}");
    assert!(e.to_string().contains("0666"), "{e}");
    Queue::options().mode(0o666).open(&name).unwrap();
    assert!(matches!(
        Queue::create(&name),
        Err(Error::AlreadyExists { .. })
    ));
    drop(q);
    // Persistent by default: still there after the creator dropped it.
    let (again, created) = Queue::options().mode(0o666).open_or_create(&name).unwrap();
    assert!(!created);
    drop(again);
    Queue::remove(&name).unwrap();
    assert!(gone(&name));
}

#[test]
fn full_queue_blocks_the_sender_until_another_process_receives() {
    let (q, _g) = new_queue("full", 2, 64);
    q.send(b"m0", 1).unwrap();
    q.send(b"m1", 1).unwrap();
    assert!(matches!(q.try_send(b"x", 1), Err(TrySendError::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.send_timeout(b"x", 1, Duration::from_millis(100)),
        Err(SendTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    let (mut c, lines) = spawn_lines(support::child(
        "mq::posix::child",
        "recv-one-later",
        q.name(),
    ));
    // Blocks until the child takes m0, then goes in.
    q.send(b"m2", 1).unwrap();
    assert!(c.wait_for(HANG).success());
    assert_eq!(lines.collect::<Vec<_>>(), ["m0 1"]);
    assert_eq!(q.attributes().unwrap().depth, 2);
}

#[test]
fn descriptor_works_with_poll() {
    use rustix::event::{PollFd, PollFlags, poll};
    let (q, _g) = new_queue("poll", 1, 16);
    let ready = |flags| {
        let mut fds = [PollFd::new(&q, flags)];
        poll(
            &mut fds,
            Some(&rustix::time::Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
        )
        .unwrap();
        fds[0].revents().contains(flags)
    };
    assert!(!ready(PollFlags::IN));
    assert!(ready(PollFlags::OUT));
    q.send(b"x", 0).unwrap();
    assert!(ready(PollFlags::IN));
    assert!(!ready(PollFlags::OUT));
}

/// 4 producer processes × 4 consumer processes, 100,000 messages each
/// (400,000 in all) through a queue of up to 64 slots (fewer when
/// `msg_max` is lower and we lack CAP_SYS_RESOURCE): each delivered exactly
/// once, each producer's messages in order within a priority.
#[test]
fn stress_4_producers_4_consumers_exactly_once_in_order() {
    const PRODUCERS: u32 = 4;
    const PER: u64 = 100_000;
    let msg_max: usize = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .map_or(10, |s| s.trim().parse().unwrap_or(10));
    let (q, _g) = new_queue("stress", msg_max.min(64), 16);
    let consumers: Vec<_> = (0..4)
        .map(|_| spawn_collecting(support::child("mq::posix::child", "consume", q.name())))
        .collect();
    let mut producers: Vec<KillOnDrop> = (0..PRODUCERS)
        .map(|p| {
            let mut cmd = support::child(
                "mq::posix::child",
                "produce",
                &format!("{},{p},{PER}", q.name()),
            );
            cmd.stdout(Stdio::null());
            KillOnDrop::spawn(cmd)
        })
        .collect();
    for p in &mut producers {
        assert!(p.wait_for(Duration::from_secs(60)).success());
    }
    // Everything is queued or taken; priority 0 comes after all of it.
    for _ in 0..4 {
        q.send_timeout(b"stop", 0, HANG).unwrap();
    }
    let mut reports = Vec::new();
    for (mut c, out) in consumers {
        assert!(c.wait_for(HANG).success());
        reports.push(out.join().unwrap());
    }
    check_stress(&reports, PRODUCERS, PER);
    assert_eq!(q.attributes().unwrap().depth, 0);
}

#[test]
fn python_peer_sends_with_priorities_and_c_peer_receives_ours() {
    require!(need::CC, need::PYTHON_IPC);
    let peer = super::CPeer::build();
    let (q, _g) = new_queue("interop", 10, 128);
    let slashed = format!("/{}", q.name());
    super::python(
        "import sys, posix_ipc\n\
         q = posix_ipc.MessageQueue(sys.argv[1])\n\
         for p, m in [(1, 'one'), (9, 'nine'), (4, 'four')]:\n    q.send(m, priority=p)\n",
        &[&slashed],
    );
    let got: Vec<_> = (0..3).map(|_| q.try_recv().unwrap()).collect();
    assert_eq!(
        got,
        [
            (b"nine".to_vec(), 9),
            (b"four".to_vec(), 4),
            (b"one".to_vec(), 1)
        ]
    );
    // The reverse: we send, C receives in priority order with the same numbers.
    for (m, p) in [("low", 2), ("high", 30000), ("mid", 7)] {
        q.send(m.as_bytes(), p).unwrap();
    }
    let out = peer.run(&["mq-recv", &slashed, "3"]);
    assert_eq!(out, "30000 high\n7 mid\n2 low\n");
}

#[test]
fn queue_created_by_python_is_opened_by_us_and_c_sends_to_it() {
    require!(need::CC, need::PYTHON_IPC);
    let peer = super::CPeer::build();
    let name = support::unique_name("pyq");
    let _g = MqCleanup(vec![name.clone()]);
    let slashed = format!("/{name}");
    super::python(
        "import sys, posix_ipc\n\
         q = posix_ipc.MessageQueue(sys.argv[1], posix_ipc.O_CREX, mode=0o600, max_messages=5, max_message_size=256)\n\
         q.send(b'from python', priority=3)\n",
        &[&slashed],
    );
    let q = Queue::open(&name).unwrap();
    assert_eq!((q.capacity(), q.max_message()), (5, 256));
    assert_eq!(q.try_recv().unwrap(), (b"from python".to_vec(), 3));
    peer.run(&["mq-send", &slashed, "2", "1", "c-low", "8", "c-high"]);
    assert_eq!(q.try_recv().unwrap(), (b"c-high".to_vec(), 8));
    assert_eq!(q.try_recv().unwrap(), (b"c-low".to_vec(), 1));
}

#[test]
fn unlinked_queue_keeps_working_for_those_who_hold_it() {
    let (mut q, _g) = new_queue("unlinked", 4, 64);
    let (mut c, mut lines) = spawn_lines(support::child(
        "mq::posix::child",
        "hold-through-unlink",
        q.name(),
    ));
    assert_eq!(lines.next().unwrap(), "opened");
    q.unlink().unwrap();
    assert!(gone(q.name()));
    q.send(b"after unlink", 4).unwrap();
    assert!(c.wait_for(HANG).success());
    assert_eq!(q.recv_timeout(HANG).unwrap(), (b"reply".to_vec(), 2));
}

#[test]
fn bad_input_gives_clear_errors_naming_the_queue() {
    let (q, _g) = new_queue("bad", 2, 32);
    let e = q.send(&[0u8; 33], 1).unwrap_err();
    assert!(
        matches!(e, Error::MessageTooLarge { len: 33, max: 32 }),
        "{e}"
    );
    let e = q.send(b"x", 40000).unwrap_err();
    assert!(
        e.to_string().contains(q.name()) && e.to_string().contains("32767"),
        "{e}"
    );
    let e = q.recv_into(&mut [0u8; 8]).unwrap_err();
    assert!(e.to_string().contains("smaller than"), "{e}");

    let e = Queue::open("a/b").unwrap_err();
    assert!(matches!(e, Error::NameInvalid { .. }), "{e}");
    let missing = support::unique_name("missing");
    let e = Queue::open(&missing).unwrap_err();
    assert!(
        matches!(e, Error::NotFound { .. }) && e.to_string().contains(&missing),
        "{e}"
    );

    // Limits: more messages than even CAP_SYS_RESOURCE allows, and larger
    // messages than msgsize_max (root may exceed it up to 16 MiB only).
    let big = support::unique_name("limit");
    let _g2 = MqCleanup(vec![big.clone()]);
    let e = Queue::options().capacity(100_000).create(&big).unwrap_err();
    match &e {
        Error::LimitExceeded { limit, value, hint } => {
            assert_eq!(limit, "/proc/sys/fs/mqueue/msg_max");
            assert_eq!(value.trim(), std::fs::read_to_string(limit).unwrap().trim());
            assert!(hint.contains(&big), "{e}");
        }
        e => panic!("expected LimitExceeded, got {e}"),
    }
    let e = Queue::options()
        .max_message(64 << 20)
        .create(&big)
        .unwrap_err();
    assert!(
        matches!(&e, Error::LimitExceeded { limit, .. } if limit.ends_with("msgsize_max")),
        "{e}"
    );
    let mut c = KillOnDrop::spawn(support::child(
        "mq::posix::child",
        "create-under-low-rlimit",
        &big,
    ));
    assert!(c.wait_for(HANG).success(), "RLIMIT_MSGQUEUE was not named");
    let e = Queue::options().capacity(0).create(&big).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert!(gone(&big));

    // Permission: a queue of root's with mode 0600, opened by uid 65534.
    if rustix::process::geteuid().is_root() {
        let mut c = KillOnDrop::spawn(support::child(
            "mq::posix::child",
            "open-as-nobody",
            q.name(),
        ));
        assert!(c.wait_for(HANG).success(), "uid 65534 was not refused");
    } else {
        eprintln!("note: not root, so the permission test uses a queue of ours with mode 0000");
        let name = support::unique_name("noperm");
        let _g3 = MqCleanup(vec![name.clone()]);
        let _q = Queue::options().mode(0).create(&name).unwrap();
        let e = Queue::options().mode(0).open(&name).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
    }
}

#[test]
fn endpoint_send_now_recv_later_with_priority() {
    let name = support::unique_name("ep");
    let _g = MqCleanup(vec![name.clone()]);
    let ep: Endpoint = format!("mq:{name}").parse().unwrap();
    let opts = Options::default();
    // Like `ipcworks send mq:NAME …` run and finished before the receiver.
    let mut c = KillOnDrop::spawn(support::child("mq::posix::child", "endpoint-send", &name));
    assert!(c.wait_for(HANG).success());
    // The queue persisted after the sender went away.
    let mut rx = endpoint::open_receiver(&ep, &opts).unwrap();
    let (m, meta) = rx.recv_until(Deadline::after(HANG)).unwrap();
    assert_eq!((m.as_slice(), meta.priority), (&b"urgent"[..], 9));
    let (m, meta) = rx.recv_until(Deadline::after(HANG)).unwrap();
    assert_eq!((m.as_slice(), meta.priority), (&b"hi"[..], 3));
    assert!(matches!(
        rx.recv_until(Deadline::after(Duration::from_millis(20))),
        Err(Error::Timeout)
    ));
    drop(rx);
    Queue::remove(&name).unwrap();
    assert!(gone(&name));
}

#[test]
fn blocking_calls_survive_signals() {
    let (q, _g) = new_queue("eintr", 4, 64);
    let (mut c, mut lines) = spawn_lines(support::child(
        "mq::posix::child",
        "recv-under-signals",
        q.name(),
    ));
    assert_eq!(lines.next().unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(300));
    q.send(b"through signals", 3).unwrap();
    assert!(c.wait_for(HANG).success());
}
