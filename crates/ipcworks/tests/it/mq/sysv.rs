//! System V message queues: type selection (0, >0, <0), blocking when full
//! and empty, a 4 × 4 process stress, C and Python peers, removal under a
//! blocked receiver, stat, ipcs, bad input.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::endpoint::{self, Endpoint, Options};
use ipcworks::message::{
    Deadline, Meta, RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError,
};
use ipcworks::mq::sysv::{self, Queue};

use super::{
    SysvCleanup, check_stress, ipcs_lists, new_sysv_queue, parse_stress_msg, spawn_collecting,
    spawn_lines, stress_msg,
};
use crate::support::{self, KillOnDrop};
use ipcworks_test_support::{need, require};

const HANG: Duration = Duration::from_secs(30);

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let mut args = arg.split(',');
        let key: i32 = args.next().unwrap().parse().unwrap();
        match role {
            "send-types" => {
                let q = Queue::open(key).unwrap();
                for (t, m) in [
                    (3, "c1"),
                    (1, "a1"),
                    (2, "b1"),
                    (1, "a2"),
                    (5, "e1"),
                    (2, "b2"),
                ] {
                    q.send(m.as_bytes(), t).unwrap();
                }
            }
            "recv-one-later" => {
                let q = Queue::open(key).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                let (m, t) = q.recv(0).unwrap();
                println!("@ {} {t}", m.len());
            }
            "send-one-later" => {
                let q = Queue::open(key).unwrap();
                std::thread::sleep(Duration::from_millis(300));
                q.send(b"late", 7).unwrap();
            }
            "produce" => {
                let producer: u32 = args.next().unwrap().parse().unwrap();
                let count: u64 = args.next().unwrap().parse().unwrap();
                let q = Queue::open(key).unwrap();
                for seq in 0..count {
                    q.send(&stress_msg(producer, seq), 1 + (seq % 3) as i64)
                        .unwrap();
                }
            }
            // Receives in FIFO order (type 0) until a type-9 "stop".
            "consume" => {
                let q = Queue::open(key).unwrap();
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                loop {
                    let (m, t) = q.recv(0).unwrap();
                    if t == 9 {
                        break;
                    }
                    let (p, seq) = parse_stress_msg(&m);
                    writeln!(out, "@ {p} {seq} 0").unwrap();
                }
                out.flush().unwrap();
            }
            "recv-until-removed" => {
                let q = Queue::open(key).unwrap();
                println!("@ opened");
                let e = q.recv(0).unwrap_err();
                assert!(matches!(e, Error::Removed { .. }), "{e}");
                assert!(e.to_string().contains("removed by someone else"), "{e}");
            }
            "open-as-nobody" => {
                use rustix::process::Uid;
                let nobody = Uid::from_raw(65534);
                rustix::thread::set_thread_res_uid(nobody, nobody, nobody).unwrap();
                let e = Queue::open(key).unwrap_err();
                assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
                assert!(
                    e.to_string().contains(&format!("{:#010x}", key as u32)),
                    "{e}"
                );
            }
            // As in the POSIX test: EINTR retried, timeouts keep their length.
            "recv-under-signals" => {
                let q = Queue::open(key).unwrap();
                let t = Instant::now();
                let (r, n) = super::under_signal_storm(Duration::from_millis(400), || {
                    q.recv_timeout(0, Duration::from_millis(250))
                });
                assert!(matches!(r, Err(RecvTimeoutError::Timeout)), "{r:?}");
                assert!(t.elapsed() >= Duration::from_millis(250));
                assert!(n > 0, "no signal arrived");
                println!("@ ready");
                let (r, n2) = super::under_signal_storm(Duration::from_millis(600), || q.recv(0));
                assert_eq!(r.unwrap(), (b"through signals".to_vec(), 3));
                assert!(n2 > n, "no signal arrived while blocked");
            }
            // Opens `sysv:KEY` as an endpoint (creating it) and sends: type 0
            // in Meta means "not given", sent as type 1.
            "endpoint-send" => {
                let ep: Endpoint = format!("sysv:{key}").parse().unwrap();
                let mut tx = endpoint::open_sender(&ep, &Options::default()).unwrap();
                tx.send_with(b"plain", Meta::default()).unwrap();
                let typed = Meta {
                    priority: 0,
                    msg_type: 4,
                };
                tx.send_with(b"typed", typed).unwrap();
                let bad = Meta {
                    priority: 0,
                    msg_type: -1,
                };
                let e = tx.send_with(b"bad", bad).unwrap_err();
                assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
            }
            // Runs as the squatter (uid/gid SQUATTER): creates the queue
            // exclusively, then hands ownership to the victim (IPC_SET uid and
            // gid VICTIM, mode 0600), keeping the creator's owner-level access.
            "squat-create" => {
                // SAFETY: plain integers in; `ds` is a live msqid_ds that
                // IPC_STAT fills and IPC_SET reads.
                unsafe {
                    let id = libc::msgget(key, libc::IPC_CREAT | libc::IPC_EXCL | 0o600);
                    assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
                    let mut ds: libc::msqid_ds = std::mem::zeroed();
                    assert_eq!(libc::msgctl(id, libc::IPC_STAT, &mut ds), 0);
                    ds.msg_perm.uid = VICTIM;
                    ds.msg_perm.gid = VICTIM;
                    ds.msg_perm.mode = 0o600;
                    let r = libc::msgctl(id, libc::IPC_SET, &mut ds);
                    assert_eq!(r, 0, "IPC_SET: {}", std::io::Error::last_os_error());
                }
            }
            // Runs as the victim: every way of opening the planted queue is
            // refused, naming its creator; nothing is sent.
            "victim-open" => {
                let creator = format!("uid {SQUATTER}");
                let e = Queue::open(key).unwrap_err();
                assert!(matches!(e, Error::Refused { .. }), "{e}");
                assert!(e.to_string().contains(&creator), "{e}");
                let e = Queue::open_or_create(key).unwrap_err();
                assert!(e.to_string().contains(&creator), "{e}");
                let ep: Endpoint = format!("sysv:{key}").parse().unwrap();
                match endpoint::open_sender(&ep, &Options::default()) {
                    Ok(mut tx) => {
                        tx.send_with(b"secret", Meta::default()).unwrap();
                        panic!("the victim opened a squatted queue and sent its secret");
                    }
                    Err(e) => assert!(e.to_string().contains(&creator), "{e}"),
                }
            }
            // Runs as the victim, in none of root's groups: a queue root made
            // (mode 0660) and handed over is refused when group access is
            // asked for, as root's group would share it; 0600 is fine.
            "victim-open-group" => {
                let e = Queue::options().mode(0o660).open(key).unwrap_err();
                assert!(matches!(e, Error::Refused { .. }), "{e}");
                assert!(e.to_string().contains("group root (gid 0)"), "{e}");
            }
            // Runs as the squatter: reads whatever the victim sent.
            "squat-read" => {
                // SAFETY: plain integers; the kernel fills at most 64 text bytes
                // after the type in a buffer of 1 + 8 longs.
                unsafe {
                    let id = libc::msgget(key, 0);
                    assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
                    let mut buf = [0 as libc::c_long; 9];
                    let n = libc::msgrcv(id, buf.as_mut_ptr().cast(), 64, 0, libc::IPC_NOWAIT);
                    assert!(n < 0, "the squatter read {n} bytes the victim sent");
                }
            }
            other => support::unknown_role(other),
        }
    });
}

/// The squatter's and the victim's user ids (an unused uid, and `nobody`).
const SQUATTER: u32 = 64000;
const VICTIM: u32 = 65534;

/// `msgctl(IPC_STAT)` of the queue under `key`, as root sees it.
fn raw_stat(key: i32) -> libc::msqid_ds {
    // SAFETY: plain integers in; `ds` is a live msqid_ds IPC_STAT fills.
    unsafe {
        let id = libc::msgget(key, 0);
        assert!(id >= 0, "msgget: {}", std::io::Error::last_os_error());
        let mut ds: libc::msqid_ds = std::mem::zeroed();
        assert_eq!(libc::msgctl(id, libc::IPC_STAT, &mut ds), 0);
        ds
    }
}

/// Another user creates the queue, then hands it to the victim with
/// IPC_SET: owner and mode look right, but the creator keeps owner-level
/// access (`ipc(7)`: creator or owner). The victim must refuse it.
#[test]
fn a_queue_created_by_another_user_and_handed_over_is_refused() {
    require!(need::ROOT);
    use std::os::unix::process::CommandExt;
    // A free key: made and removed by us (root), then squatted.
    let (q, guard) = super::new_sysv_queue();
    let key = q.key();
    drop(q);
    Queue::remove_key(key).unwrap();
    let as_user = |role: &str, uid: u32| {
        let mut cmd = support::child("mq::sysv::child", role, &key.to_string());
        cmd.uid(uid).gid(uid);
        let mut c = KillOnDrop::spawn(cmd);
        assert!(c.wait_for(HANG).success(), "{role} as uid {uid} failed");
    };
    as_user("squat-create", SQUATTER);
    // The planted queue looks like the victim's own: owner and mode right.
    let st = raw_stat(key);
    assert_eq!(
        (st.msg_perm.uid, st.msg_perm.cuid, st.msg_perm.mode & 0o777),
        (VICTIM, SQUATTER, 0o600)
    );
    as_user("victim-open", VICTIM);
    as_user("squat-read", SQUATTER);
    assert_eq!(raw_stat(key).msg_qnum, 0, "something was sent");

    // Root may hand a queue over (root reaches it anyway), but the group
    // bits then reach root's group too.
    Queue::remove_key(key).unwrap();
    Queue::options().mode(0o660).create(key).unwrap();
    // SAFETY: as in `raw_stat`; IPC_SET reads the filled-in `ds`.
    unsafe {
        let mut ds = raw_stat(key);
        ds.msg_perm.uid = VICTIM;
        ds.msg_perm.gid = VICTIM;
        let id = libc::msgget(key, 0);
        assert_eq!(libc::msgctl(id, libc::IPC_SET, &mut ds), 0);
    }
    as_user("victim-open-group", VICTIM);
    drop(guard);
    assert!(gone(key));
}

fn gone(key: i32) -> bool {
    matches!(Queue::open(key), Err(Error::NotFound { .. }))
}

#[test]
fn stat_and_ipcs_show_the_queue() {
    require!(need::IPCS);
    let (mut q, _g) = new_sysv_queue();
    assert!(ipcs_lists(q.key()), "ipcs -q does not list our key");
    let mut c = KillOnDrop::spawn(support::child(
        "mq::sysv::child",
        "send-types",
        &q.key().to_string(),
    ));
    let child_pid = c.pid();
    assert!(c.wait_for(HANG).success());
    let st = q.stat().unwrap();
    assert_eq!(st.messages, 6);
    assert_eq!(st.bytes, 12);
    assert_eq!(st.last_sender, Some(child_pid));
    assert_eq!(st.last_receiver, None);
    assert_eq!(st.mode, 0o600);
    assert!(st.max_bytes > 0);
    q.remove().unwrap();
    assert!(!ipcs_lists(q.key()));
    assert!(gone(q.key()));
}

#[test]
fn full_queue_blocks_the_sender_until_another_process_receives() {
    let (q, _g) = new_sysv_queue();
    let max_bytes = q.stat().unwrap().max_bytes as usize;
    let chunk = vec![7u8; (max_bytes / 4).min(q.max_message())];
    let mut sent = 0;
    while q.try_send(&chunk, 1).is_ok() {
        sent += 1;
        assert!(sent < 10_000, "queue never filled");
    }
    assert!(matches!(q.try_send(&chunk, 1), Err(TrySendError::Full)));
    let t = Instant::now();
    assert!(matches!(
        q.send_timeout(&chunk, 1, Duration::from_millis(100)),
        Err(SendTimeoutError::Timeout)
    ));
    assert!(t.elapsed() >= Duration::from_millis(100));
    let (mut c, lines) = spawn_lines(support::child(
        "mq::sysv::child",
        "recv-one-later",
        &q.key().to_string(),
    ));
    q.send(&chunk, 2).unwrap();
    assert!(c.wait_for(HANG).success());
    assert_eq!(lines.collect::<Vec<_>>(), [format!("{} 1", chunk.len())]);
    assert_eq!(q.stat().unwrap().messages, sent as u64);
}

/// A timed receive selecting a type sees a message that another process
/// sends while it waits (System V has no timed call: the wait polls).
/// Empty, timeout and a blocked receive woken by another process are the
/// conformance suite's (conformance::sysv).
#[test]
fn a_polled_timed_receive_sees_a_message_sent_while_it_waits() {
    let (q, _g) = new_sysv_queue();
    let mut c = KillOnDrop::spawn(support::child(
        "mq::sysv::child",
        "send-one-later",
        &q.key().to_string(),
    ));
    assert_eq!(q.recv_timeout(7, HANG).unwrap(), (b"late".to_vec(), 7));
    assert!(c.wait_for(HANG).success());
}

/// 4 producer processes × 4 consumer processes, 100,000 messages each
/// (400,000 in all): each delivered exactly once, each producer's
/// messages in order (FIFO receive).
#[test]
fn stress_4_producers_4_consumers_exactly_once_in_order() {
    const PRODUCERS: u32 = 4;
    const PER: u64 = 100_000;
    let (q, _g) = new_sysv_queue();
    let key = q.key().to_string();
    let consumers: Vec<_> = (0..4)
        .map(|_| spawn_collecting(support::child("mq::sysv::child", "consume", &key)))
        .collect();
    let mut producers: Vec<KillOnDrop> = (0..PRODUCERS)
        .map(|p| {
            let mut cmd = support::child("mq::sysv::child", "produce", &format!("{key},{p},{PER}"));
            cmd.stdout(Stdio::null());
            KillOnDrop::spawn(cmd)
        })
        .collect();
    for p in &mut producers {
        assert!(p.wait_for(Duration::from_secs(60)).success());
    }
    for _ in 0..4 {
        q.send_timeout(b"stop", 9, HANG).unwrap();
    }
    let mut reports = Vec::new();
    for (mut c, out) in consumers {
        assert!(c.wait_for(HANG).success());
        reports.push(out.join().unwrap());
    }
    check_stress(&reports, PRODUCERS, PER);
    assert_eq!(q.stat().unwrap().messages, 0);
}

#[test]
fn python_peer_sends_with_types_and_c_peer_receives_ours() {
    require!(need::CC, need::PYTHON_IPC);
    let peer = super::CPeer::build();
    let (q, _g) = new_sysv_queue();
    let key = q.key().to_string();
    super::python(
        "import sys, sysv_ipc\n\
         q = sysv_ipc.MessageQueue(int(sys.argv[1]))\n\
         for t, m in [(4, 'four'), (2, 'two'), (9, 'nine')]:\n    q.send(m, type=t)\n",
        &[&key],
    );
    assert_eq!(q.try_recv(-5).unwrap(), (b"two".to_vec(), 2));
    assert_eq!(q.try_recv(9).unwrap(), (b"nine".to_vec(), 9));
    assert_eq!(q.try_recv(0).unwrap(), (b"four".to_vec(), 4));
    // The reverse: we send, C selects with msgrcv's rules and sees our types.
    for (m, t) in [("x6", 6), ("x3", 3), ("x8", 8), ("x1", 1)] {
        q.send(m.as_bytes(), t).unwrap();
    }
    assert_eq!(peer.run(&["sysv-recv", &key, "2", "-6"]), "1 x1\n3 x3\n");
    assert_eq!(peer.run(&["sysv-recv", &key, "2", "0"]), "6 x6\n8 x8\n");
    // C sends, Python receives: both sides agree with us on types.
    peer.run(&["sysv-send", &key, "2", "12", "c12", "11", "c11"]);
    let out = super::python(
        "import sys, sysv_ipc\n\
         q = sysv_ipc.MessageQueue(int(sys.argv[1]))\n\
         m, t = q.receive(type=-20)\n\
         print(t, m.decode())\n",
        &[&key],
    );
    assert_eq!(out, "11 c11\n");
    assert_eq!(q.try_recv(0).unwrap(), (b"c12".to_vec(), 12));
}

#[test]
fn removed_while_a_receiver_blocks_gives_removed_not_a_hang() {
    let (mut q, _g) = new_sysv_queue();
    let (mut c, mut lines) = spawn_lines(support::child(
        "mq::sysv::child",
        "recv-until-removed",
        &q.key().to_string(),
    ));
    assert_eq!(lines.next().unwrap(), "opened");
    // Best effort: wait until the child sleeps in msgrcv (wchan), so the
    // removal meets a blocked receiver, not one about to call.
    let pid = c.pid();
    let blocked = support::wait_until(Duration::from_secs(5), || super::blocked_in(pid, "msgrcv"));
    if !blocked {
        eprintln!("note: /proc/{pid}/task/*/wchan never showed msgrcv; removing anyway");
        std::thread::sleep(Duration::from_millis(300));
    }
    q.remove().unwrap();
    assert!(
        c.wait_for(HANG).success(),
        "the receiver did not get Removed"
    );
}

#[test]
fn by_path_with_ftok() {
    let dir = std::env::temp_dir().join(support::unique_name("ftok"));
    std::fs::create_dir(&dir).unwrap();
    let key = sysv::ftok(&dir, b'q').unwrap();
    let _g = SysvCleanup(vec![key]);
    let q = match Queue::options().remove_on_drop(true).create(key) {
        Ok(q) => q,
        Err(Error::AlreadyExists { .. }) => {
            // Another test process got the same inode-derived key; rare.
            let _ = std::fs::remove_dir(&dir);
            eprintln!("note: ftok key {key:#x} in use, skipping");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    let again = Queue::open(sysv::ftok(&dir, b'q').unwrap()).unwrap();
    assert_eq!(again.id(), q.id());
    assert!(matches!(
        sysv::ftok(dir.join("missing"), 1),
        Err(Error::NotFound { .. })
    ));
    drop(again);
    drop(q);
    assert!(gone(key), "remove_on_drop did not remove it");
    std::fs::remove_dir(&dir).unwrap();
}

#[test]
fn bad_input_gives_clear_errors_naming_the_queue() {
    let (q, _g) = new_sysv_queue();
    let tag = format!("{:#010x}", q.key() as u32);
    let e = q.send(b"x", 0).unwrap_err();
    assert!(
        matches!(e, Error::InvalidArgument(_)) && e.to_string().contains(&tag),
        "{e}"
    );
    let e = q.send(b"x", -3).unwrap_err();
    assert!(e.to_string().contains("at least 1"), "{e}");
    let max = q.max_message();
    let e = q.send(&vec![0u8; max + 1], 1).unwrap_err();
    assert!(
        matches!(e, Error::MessageTooLarge { len, max: m } if len == max + 1 && m == max),
        "{e}"
    );
    let e = Queue::open(0).unwrap_err();
    assert!(e.to_string().contains("IPC_PRIVATE"), "{e}");

    // A key nobody uses: ours, just removed.
    let (mut gone_q, _g2) = new_sysv_queue();
    let missing = gone_q.key();
    gone_q.remove().unwrap();
    let e = Queue::open(missing).unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(
        e.to_string().contains(&format!("{:#010x}", missing as u32)),
        "{e}"
    );
    // A handle to a removed queue says so.
    let e = gone_q.try_send(b"x", 1).unwrap_err();
    assert!(
        matches!(e, TrySendError::Other(Error::Removed { .. })),
        "{e}"
    );
    let e = gone_q.try_recv(0).unwrap_err();
    assert!(
        matches!(e, TryRecvError::Other(Error::Removed { .. })),
        "{e}"
    );

    // Exclusive create of a taken key; a looser mode than expected.
    assert!(matches!(
        Queue::create(q.key()),
        Err(Error::AlreadyExists { .. })
    ));
    let (loose, _g3) = super::new_sysv_queue_mode(0o644);
    let e = Queue::open(loose.key()).unwrap_err();
    assert!(
        matches!(e, Error::Refused { .. }) && e.to_string().contains("0644"),
        "{e}"
    );
    Queue::options().mode(0o644).open(loose.key()).unwrap();

    if rustix::process::geteuid().is_root() {
        let mut c = KillOnDrop::spawn(support::child(
            "mq::sysv::child",
            "open-as-nobody",
            &q.key().to_string(),
        ));
        assert!(c.wait_for(HANG).success(), "uid 65534 was not refused");
    } else {
        eprintln!("note: not root; the permission test needs another uid and is skipped");
    }
}

#[test]
fn endpoint_send_now_recv_later_with_types() {
    let (mut q, _g) = new_sysv_queue();
    let ep: Endpoint = format!("sysv:{}", q.key()).parse().unwrap();
    // The endpoint sender creates it, like `ipcworks send sysv:KEY …`
    // run and finished before the receiver.
    q.remove().unwrap();
    let mut c = KillOnDrop::spawn(support::child(
        "mq::sysv::child",
        "endpoint-send",
        &q.key().to_string(),
    ));
    assert!(c.wait_for(HANG).success());
    let opts = Options {
        recv_type: 4,
        ..Options::default()
    };
    let mut rx = endpoint::open_receiver(&ep, &opts).unwrap();
    let (m, meta) = rx.recv_until(Deadline::after(HANG)).unwrap();
    assert_eq!((m.as_slice(), meta.msg_type), (&b"typed"[..], 4));
    assert!(matches!(
        rx.recv_until(Deadline::after(Duration::from_millis(20))),
        Err(Error::Timeout)
    ));
    let mut any = endpoint::open_receiver(&ep, &Options::default()).unwrap();
    let (m, meta) = any.recv_until(Deadline::Never).unwrap();
    assert_eq!((m.as_slice(), meta.msg_type), (&b"plain"[..], 1));
}

#[test]
fn blocking_calls_survive_signals() {
    let (q, _g) = new_sysv_queue();
    let (mut c, mut lines) = spawn_lines(support::child(
        "mq::sysv::child",
        "recv-under-signals",
        &q.key().to_string(),
    ));
    assert_eq!(lines.next().unwrap(), "ready");
    std::thread::sleep(Duration::from_millis(300));
    q.send(b"through signals", 3).unwrap();
    assert!(c.wait_for(HANG).success());
}

#[test]
fn queue_created_by_python_is_opened_by_us() {
    require!(need::PYTHON_IPC);
    // A key free for sure: made by us, then removed for Python to take.
    let (mut q, _g) = new_sysv_queue();
    let key = q.key();
    q.remove().unwrap();
    super::python(
        "import sys, sysv_ipc\n\
         q = sysv_ipc.MessageQueue(int(sys.argv[1]), sysv_ipc.IPC_CREX, mode=0o600)\n\
         q.send(b'from python', type=5)\n",
        &[&key.to_string()],
    );
    let q = Queue::open(key).unwrap();
    let st = q.stat().unwrap();
    assert_eq!((st.messages, st.mode), (1, 0o600));
    assert_eq!(q.try_recv(-5).unwrap(), (b"from python".to_vec(), 5));
}
