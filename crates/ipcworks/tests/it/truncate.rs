//! A hostile peer truncates a named segment (`ftruncate` of
//! `/dev/shm/NAME`, to zero and to odd sizes) at random moments while
//! calls are in flight: the process using it must end every call with an
//! error — `Error::Truncated`, or one it could already get
//! (`Disconnected`, `Corrupted`) — and never die of SIGBUS.
//!
//! One child process (this test binary) per test runs all the rounds: it
//! makes a fresh object, says `ready`, and hammers it (or blocks in a call
//! on it) until its calls fail, then prints how each of its threads ended.
//! The test process is the peer: after a random pause it truncates the
//! object's segment and checks what the child printed, and at the end
//! that the child exited normally (a SIGBUS would kill it at once).
//!
//! A size that keeps every page of the segment (a cut inside its last
//! page) takes away nothing a call can fault on: the kernel zeroes the
//! bytes past the new size, which to the processes that map the segment
//! is a peer writing zeros. Calls that do not wait cannot tell that from a
//! scribble, so in those rounds a hammering child may run on, and the test
//! stops it after a moment; a call that waits looks at the segment's size
//! at least once per sleep slice and fails with `Truncated` whatever the
//! size (unless the zeroed words let it complete first).

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{ChildStdin, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use ipcworks::Error;
use ipcworks::channel::Channel;
use ipcworks::queue::Queue;
use ipcworks::shm::Segment;
use ipcworks::sync::{LockError, Mutex, Semaphore};

use crate::support::{self, KillOnDrop, ShmCleanup};

/// Rounds per test: each size below three times, at different moments.
const ROUNDS: usize = 24;
/// Generous: catches a hang, not slowness.
const LIMIT: Duration = Duration::from_secs(30);
/// How long a hammering child may run on after a cut that kept every page.
const RUN_ON: Duration = Duration::from_millis(100);
/// How long a call waits at most in a hammering child before it looks
/// whether the test asked it to stop.
const TICK: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------- child

/// Rounds below this number must stop (the test writes `stop N`).
static STOP: AtomicUsize = AtomicUsize::new(0);

fn stop_asked(round: usize) -> bool {
    STOP.load(Relaxed) > round
}

fn ready(round: usize) {
    println!("TRUNC ready {round} go");
}

/// How a call ended, in one word for the test to read.
fn ended(e: &Error) -> String {
    match e {
        Error::Truncated { .. } => "truncated".into(),
        Error::Disconnected => "disconnected".into(),
        Error::Corrupted { .. } => "corrupted".into(),
        other => format!(
            "other:{}",
            other.to_string().replace(char::is_whitespace, "_")
        ),
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        let (base, rounds) = arg.split_once(' ').expect("BASE ROUNDS");
        let rounds: usize = rounds.parse().unwrap();
        std::thread::spawn(|| {
            for line in std::io::stdin().lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("stop ") {
                    STOP.fetch_max(n.parse::<usize>().unwrap() + 1, Relaxed);
                }
            }
        });
        for round in 0..rounds {
            let name = format!("{base}-{round}");
            let how = match role {
                "chan-both" => chan_both(&name, round),
                "chan-blocked-recv" => chan_blocked_recv(&name, round),
                "chan-blocked-send" => chan_blocked_send(&name, round),
                "chan-timed-recv" => chan_timed_recv(&name, round),
                "queue-both" => queue_both(&name, round),
                "queue-blocked-recv" => queue_blocked_recv(&name, round),
                "sem-both" => sem_both(&name, round),
                "sem-blocked-wait" => sem_blocked_wait(&name, round),
                "mutex-both" => mutex_both(&name, round),
                other => support::unknown_role(other),
            };
            println!("TRUNC result {round} {how}");
        }
    });
}

/// Sender and receiver threads of one channel, messages of 1 byte to
/// 8 KiB (copies that cross pages), each receive method in turn. The sizes
/// are random: a fixed cycle of sizes can fall into laps whose padding
/// always skips the ring's last page, which a cut could then remove
/// unnoticed by anyone.
fn chan_both(name: &str, round: usize) -> String {
    let chan = Channel::builder()
        .capacity_bytes(64 << 10)
        .max_message(8192)
        .create(name)
        .unwrap();
    let mut rx = chan.receiver().unwrap();
    let mut tx = chan.sender().unwrap();
    let sender = std::thread::spawn(move || {
        let msg = vec![0x5A; 8192];
        let mut sizes = 0x9E37_79B9_7F4A_7C15 ^ round as u64;
        loop {
            if stop_asked(round) {
                return "stopped".to_string();
            }
            let len = 1 + next(&mut sizes) as usize % 8192;
            match tx.send_timeout(&msg[..len], TICK).map_err(Error::from) {
                Ok(()) | Err(Error::Timeout) => {}
                Err(e) => return ended(&e),
            }
        }
    });
    ready(round);
    let mut buf = vec![0; 8192];
    let rx_end = loop {
        if stop_asked(round) {
            break "stopped".to_string();
        }
        let r = match round % 3 {
            0 => rx
                .recv_slice_timeout(&mut buf, TICK)
                .map(drop)
                .map_err(Error::from),
            1 => rx.recv_timeout(TICK).map(drop).map_err(Error::from),
            _ => rx
                .recv_ref_timeout(TICK)
                .map_err(Error::from)
                .and_then(|m| {
                    let mut v = vec![0; m.len()];
                    m.copy_to(&mut v)
                }),
        };
        match r {
            Ok(()) | Err(Error::Timeout) => {}
            Err(e) => break ended(&e),
        }
    };
    drop(rx);
    let tx_end = sender.join().unwrap();
    drop(chan);
    format!("tx={tx_end} rx={rx_end}")
}

/// A receive blocked on an empty channel.
fn chan_blocked_recv(name: &str, round: usize) -> String {
    let chan = Channel::builder()
        .capacity_bytes(16 << 10)
        .max_message(1024)
        .create(name)
        .unwrap();
    let mut rx = chan.receiver().unwrap();
    ready(round);
    match rx.recv() {
        Ok(_) => "rx=completed".into(),
        Err(e) => format!("rx={}", ended(&e)),
    }
}

/// Receives with a short timeout, again and again, on an empty channel:
/// every call ends before a wait's own slice, so only the timeouts' look
/// at the size can tell a cut that removes no page the receiver reads.
fn chan_timed_recv(name: &str, round: usize) -> String {
    let chan = Channel::builder()
        .capacity_bytes(16 << 10)
        .max_message(1024)
        .create(name)
        .unwrap();
    let mut rx = chan.receiver().unwrap();
    ready(round);
    loop {
        match rx
            .recv_timeout(Duration::from_millis(5))
            .map_err(Error::from)
        {
            Ok(_) => return "rx=completed".into(),
            Err(Error::Timeout) => {}
            Err(e) => return format!("rx={}", ended(&e)),
        }
    }
}

/// A send blocked on a full channel whose receiver does not receive.
fn chan_blocked_send(name: &str, round: usize) -> String {
    let chan = Channel::builder()
        .capacity_bytes(16 << 10)
        .max_message(1024)
        .create(name)
        .unwrap();
    let _rx = chan.receiver().unwrap();
    let mut tx = chan.sender().unwrap();
    while tx.try_send(&[7; 1000]).is_ok() {}
    ready(round);
    match tx.send(&[7; 1000]) {
        Ok(()) => "tx=completed".into(),
        Err(e) => format!("tx={}", ended(&e)),
    }
}

fn queue(name: &str) -> Arc<Queue> {
    Arc::new(
        Queue::options()
            .capacity(8)
            .max_message(4096)
            .remove_on_drop(true)
            .create(name)
            .unwrap(),
    )
}

/// Sender and receiver threads of one queue: short messages (the direct
/// receive) and long ones (claimed, copied with memcpy).
fn queue_both(name: &str, round: usize) -> String {
    let q = queue(name);
    let sender = {
        let q = q.clone();
        std::thread::spawn(move || {
            let msg = vec![0x3C; 4096];
            for n in 0usize.. {
                if stop_asked(round) {
                    return "stopped".to_string();
                }
                let len = [100, 3000, 8, 4096][n % 4];
                match q
                    .send_timeout(&msg[..len], (n % 4) as u32, TICK)
                    .map_err(Error::from)
                {
                    Ok(()) | Err(Error::Timeout) => {}
                    Err(e) => return ended(&e),
                }
            }
            unreachable!()
        })
    };
    ready(round);
    let mut buf = vec![0; 4096];
    let rx_end = loop {
        if stop_asked(round) {
            break "stopped".to_string();
        }
        let r = match round % 2 {
            0 => q.recv_timeout(TICK).map(drop).map_err(Error::from),
            _ => q
                .recv_into_timeout(&mut buf, TICK)
                .map(drop)
                .map_err(Error::from),
        };
        match r {
            Ok(()) | Err(Error::Timeout) => {}
            Err(e) => break ended(&e),
        }
    };
    let tx_end = sender.join().unwrap();
    format!("tx={tx_end} rx={rx_end}")
}

/// A receive blocked on an empty queue.
fn queue_blocked_recv(name: &str, round: usize) -> String {
    let q = queue(name);
    ready(round);
    match q.recv() {
        Ok(_) => "rx=completed".into(),
        Err(e) => format!("rx={}", ended(&e)),
    }
}

/// A thread posting and one waiting and taking pool permits.
fn sem_both(name: &str, round: usize) -> String {
    let sem = Arc::new(Semaphore::create(name, 0).unwrap());
    let poster = {
        let sem = sem.clone();
        std::thread::spawn(move || {
            loop {
                if stop_asked(round) {
                    return "stopped".to_string();
                }
                if let Err(e) = sem.post() {
                    return ended(&e);
                }
                std::hint::spin_loop();
            }
        })
    };
    ready(round);
    let waiter = loop {
        if stop_asked(round) {
            break "stopped".to_string();
        }
        let r = sem.wait_timeout(TICK).and_then(|()| {
            let p = sem.try_acquire()?;
            p.release()
        });
        match r {
            Ok(()) | Err(Error::Timeout | Error::WouldBlock) => {}
            Err(e) => break ended(&e),
        }
    };
    let poster = poster.join().unwrap();
    format!("post={poster} wait={waiter}")
}

/// A wait blocked on a semaphore of value 0.
fn sem_blocked_wait(name: &str, round: usize) -> String {
    let sem = Semaphore::create(name, 0).unwrap();
    ready(round);
    match sem.wait() {
        Ok(()) => "wait=completed".into(),
        Err(e) => format!("wait={}", ended(&e)),
    }
}

/// Two threads locking one mutex, touching the first and last words of a
/// value that spans three pages.
fn mutex_both(name: &str, round: usize) -> String {
    let m = Arc::new(Mutex::create(name, [0u64; 1024]).unwrap());
    let locker = |m: Arc<Mutex<[u64; 1024]>>| {
        move || {
            loop {
                if stop_asked(round) {
                    return "stopped".to_string();
                }
                let mut g = match m.lock_timeout(TICK) {
                    Ok(g) => g,
                    Err(LockError::OwnerDead(mut g)) => {
                        g.make_consistent();
                        g
                    }
                    Err(LockError::Failed(Error::Timeout)) => continue,
                    Err(LockError::Failed(e)) => return ended(&e),
                };
                // Copied out and back: a cut found after either copy is
                // the end of this locker.
                if let Err(e) = g.update(|v| {
                    v[0] = v[0].wrapping_add(1);
                    v[1023] = v[1023].wrapping_add(1);
                }) {
                    return ended(&e);
                }
            }
        }
    };
    let a = std::thread::spawn(locker(m.clone()));
    let b = std::thread::spawn(locker(m.clone()));
    ready(round);
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    format!("a={a} b={b}")
}

// ---------------------------------------------------------------- peer

/// The child of one test, and the lines it prints.
struct Victim {
    role: &'static str,
    child: KillOnDrop,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
}

fn describe(st: ExitStatus) -> String {
    match st.signal() {
        Some(libc::SIGBUS) => "killed by SIGBUS".into(),
        Some(s) => format!("killed by signal {s}"),
        None => format!("with {st}"),
    }
}

impl Victim {
    fn start(role: &'static str, base: &str) -> Self {
        let mut cmd = support::child("truncate::child", role, &format!("{base} {ROUNDS}"));
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
        let mut child = KillOnDrop::spawn(cmd);
        let c = child.0.as_mut().expect("child");
        let stdin = c.stdin.take();
        let out = c.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Victim {
            role,
            child,
            stdin,
            lines,
        }
    }

    /// The next line starting with `want` within `limit`; `None` when the
    /// time runs out; a panic saying how the child ended if it did.
    fn line(&mut self, want: &str, limit: Duration, what: &str) -> Option<String> {
        let until = Instant::now() + limit;
        loop {
            match self
                .lines
                .recv_timeout(until.saturating_duration_since(Instant::now()))
            {
                Ok(l) if l.starts_with(want) => return Some(l[want.len()..].to_string()),
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait_for(LIMIT);
                    panic!("{}: {what}: the child ended {}", self.role, describe(st));
                }
            }
        }
    }

    fn expect(&mut self, want: &str, what: &str) -> String {
        self.line(want, LIMIT, what)
            .unwrap_or_else(|| panic!("{}: {what}: no `{want}` within {LIMIT:?}", self.role))
    }

    fn stop(&mut self, round: usize) {
        let stdin = self.stdin.as_mut().expect("stdin");
        writeln!(stdin, "stop {round}").unwrap();
        stdin.flush().unwrap();
    }
}

/// xorshift64: the pauses before the cuts.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The sizes to cut a segment of `len` bytes to: nothing, odd sizes inside
/// and across pages, and inside the last page.
fn cuts(len: u64, page: u64) -> Vec<u64> {
    [
        0,
        1,
        100,
        page - 1,
        page + 1,
        len / 2 + 1,
        len.saturating_sub(page + 1),
        len - 1,
    ]
    .into_iter()
    .filter(|&s| s < len)
    .collect()
}

/// Checks a round's outcome: `END=HOW` words, one per thread of the child.
fn judge(outcome: &str, keeps_all: bool, blocked: bool, what: &str) {
    let ends: Vec<(&str, &str)> = outcome
        .split_whitespace()
        .map(|w| w.split_once('=').unwrap_or((w, "?")))
        .collect();
    assert!(!ends.is_empty(), "{what}: empty outcome");
    for (end, how) in &ends {
        let fine = match *how {
            "truncated" | "corrupted" | "disconnected" => true,
            // A cut inside the last page removed nothing: a hammering
            // child runs on until told to stop, and the zeroed words may
            // let a blocked call through.
            "stopped" => keeps_all && !blocked,
            "completed" => keeps_all && blocked,
            _ => false,
        };
        assert!(fine, "{what}: {end} ended `{how}` ({outcome})");
    }
    if !keeps_all {
        assert!(
            ends.iter().any(|(_, how)| *how == "truncated"),
            "{what}: pages were removed and no call reported it ({outcome})"
        );
    }
}

/// Runs `role` in a child for [`ROUNDS`] rounds and truncates the segment
/// (`prefix` + name) of each round's object at a random moment.
fn hostile_peer(role: &'static str, prefix: &str, blocked: bool) {
    let base = support::unique_name(role);
    let names: Vec<String> = (0..ROUNDS).map(|i| format!("{prefix}{base}-{i}")).collect();
    let _clean = ShmCleanup(names.clone());
    let page = rustix::param::page_size() as u64;
    let mut seed = role
        .bytes()
        .fold((std::process::id() as u64) << 20 | 0x5DEECE66D, |h, b| {
            h.rotate_left(5) ^ u64::from(b)
        });
    let mut victim = Victim::start(role, &base);
    for (round, name) in names.iter().enumerate() {
        victim.expect(&format!("TRUNC ready {round} "), "waiting for ready");
        let path = format!("/dev/shm/{name}");
        let len = std::fs::metadata(&path)
            .unwrap_or_else(|e| panic!("{role}: {path}: {e}"))
            .len();
        let sizes = cuts(len, page);
        let size = sizes[round % sizes.len()];
        let pause = if blocked {
            Duration::from_micros(2_000 + next(&mut seed) % 20_000)
        } else {
            Duration::from_micros(next(&mut seed) % 2_000)
        };
        std::thread::sleep(pause);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(size).unwrap(); // ftruncate
        drop(file);
        let keeps_all = size.div_ceil(page) == len.div_ceil(page);
        let what = format!("round {round}: {path} cut from {len} to {size} bytes after {pause:?}");
        let want = format!("TRUNC result {round} ");
        let outcome = match keeps_all && !blocked {
            true => match victim.line(&want, RUN_ON, &what) {
                Some(l) => l,
                None => {
                    victim.stop(round);
                    victim.expect(&want, &what)
                }
            },
            false => victim.expect(&want, &what),
        };
        judge(&outcome, keeps_all, blocked, &what);
    }
    drop(victim.stdin.take());
    let st = victim.child.wait_for(LIMIT);
    assert!(st.success(), "{role}: the child ended {}", describe(st));
}

/// Anonymous objects are sealed: nobody holding their descriptor can
/// change their size (the handler is only the second line for them).
#[test]
fn anonymous_segments_of_every_type_are_sealed_against_truncation() {
    use rustix::fs::SealFlags;
    let fds = [
        (
            "segment",
            Segment::anonymous(4096).unwrap().inheritable_fd(),
        ),
        (
            "channel",
            Channel::builder().anonymous().unwrap().inheritable_fd(),
        ),
        ("queue", Queue::anonymous().unwrap().inheritable_fd()),
        (
            "semaphore",
            Semaphore::anonymous(1).unwrap().inheritable_fd(),
        ),
        ("mutex", Mutex::anonymous(0u64).unwrap().inheritable_fd()),
    ];
    for (what, fd) in fds {
        let fd = fd.unwrap();
        let seals = rustix::fs::fcntl_get_seals(&fd).unwrap();
        let want = SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL;
        assert!(seals.contains(want), "{what}: seals {seals:?}");
        assert_eq!(
            rustix::fs::ftruncate(&fd, 0),
            Err(rustix::io::Errno::PERM),
            "{what}: ftruncate must be refused"
        );
    }
}

/// A `/dev/shm` file cannot be sealed (tmpfs seals only `memfd`s): why
/// named segments need the `SIGBUS` handler.
#[test]
fn a_named_segment_cannot_be_sealed() {
    let name = support::unique_name("seal");
    let _clean = ShmCleanup(vec![name.clone()]);
    let seg = Segment::create(&name, 4096).unwrap();
    let e = rustix::fs::fcntl_add_seals(&seg, rustix::fs::SealFlags::SHRINK).unwrap_err();
    assert!(
        matches!(e, rustix::io::Errno::PERM | rustix::io::Errno::INVAL),
        "{e:?}"
    );
}

#[test]
fn channel_sender_and_receiver_survive_truncation_mid_copy() {
    hostile_peer("chan-both", "ipcworks.chan.", false);
}

#[test]
fn channel_blocked_receive_survives_truncation() {
    hostile_peer("chan-blocked-recv", "ipcworks.chan.", true);
}

#[test]
fn channel_receive_in_short_timeouts_notices_truncation() {
    hostile_peer("chan-timed-recv", "ipcworks.chan.", true);
}

#[test]
fn channel_blocked_send_survives_truncation() {
    hostile_peer("chan-blocked-send", "ipcworks.chan.", true);
}

#[test]
fn queue_short_and_long_messages_survive_truncation() {
    hostile_peer("queue-both", "ipcworks.queue.", false);
}

#[test]
fn queue_blocked_receive_survives_truncation() {
    hostile_peer("queue-blocked-recv", "ipcworks.queue.", true);
}

#[test]
fn semaphore_post_wait_and_permits_survive_truncation() {
    hostile_peer("sem-both", "ipcworks.sem.", false);
}

#[test]
fn semaphore_blocked_wait_survives_truncation() {
    hostile_peer("sem-blocked-wait", "ipcworks.sem.", true);
}

#[test]
fn mutex_lock_and_guard_access_survive_truncation() {
    hostile_peer("mutex-both", "ipcworks.mutex.", false);
}
