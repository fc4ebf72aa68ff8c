//! Kernel message queues (POSIX and System V) between real processes, with
//! C and Python peers. Shared helpers here; the tests in `mq/posix.rs` and
//! `mq/sysv.rs`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::JoinHandle;

use crate::support::KillOnDrop;

mod posix;
mod sysv;

/// Removes POSIX queues by name when dropped, also when a test panics.
pub struct MqCleanup(pub Vec<String>);

impl Drop for MqCleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = ipcworks::mq::posix::Queue::remove(n);
        }
    }
}

/// Removes System V queues by key when dropped, also when a test panics.
pub struct SysvCleanup(pub Vec<i32>);

impl Drop for SysvCleanup {
    fn drop(&mut self) {
        for k in &self.0 {
            let _ = ipcworks::mq::sysv::Queue::remove_key(*k);
        }
    }
}

/// A System V key no other test process uses now: derived from our pid and
/// a counter, and confirmed by creating the queue exclusively.
pub fn new_sysv_queue() -> (ipcworks::mq::sysv::Queue, SysvCleanup) {
    new_sysv_queue_mode(0o600)
}

/// [`new_sysv_queue`] with the given mode.
pub fn new_sysv_queue_mode(mode: u32) -> (ipcworks::mq::sysv::Queue, SysvCleanup) {
    static N: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let mix = (std::process::id() as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add(u64::from(n).wrapping_mul(0xBF58_476D_1CE4_E5B9));
        // Keep the key positive and away from 0 (IPC_PRIVATE).
        let key = ((mix >> 33) as i32 & 0x3fff_ffff) | 0x4000_0000;
        match ipcworks::mq::sysv::Queue::options().mode(mode).create(key) {
            Ok(q) => return (q, SysvCleanup(vec![key])),
            Err(ipcworks::Error::AlreadyExists { .. }) => continue,
            Err(e) => panic!("creating a System V queue: {e}"),
        }
    }
}

/// Whether `ipcs -q` lists `key`.
pub fn ipcs_lists(key: i32) -> bool {
    let out = Command::new("ipcs")
        .arg("-q")
        .output()
        .expect("run ipcs -q");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = format!("0x{:08x}", key as u32);
    text.lines()
        .any(|l| l.split_whitespace().next() == Some(hex.as_str()))
}

/// Spawns a child with piped stdout and a thread collecting it, so a child
/// that prints a lot never blocks on a full pipe.
pub fn spawn_collecting(mut cmd: Command) -> (KillOnDrop, JoinHandle<String>) {
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let mut out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).expect("read child output");
        data_lines(&s)
    });
    (child, reader)
}

/// Children print their data lines with this prefix: the test harness
/// writes its own lines ("running 1 test") to the same stdout.
pub const DATA: &str = "@ ";

/// The data lines of a child's output, prefix removed.
pub fn data_lines(s: &str) -> String {
    s.lines()
        .filter_map(|l| l.strip_prefix(DATA))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Spawns a child with piped stdout and returns an iterator over its data
/// lines (see [`DATA`]).
pub fn spawn_lines(mut cmd: Command) -> (KillOnDrop, impl Iterator<Item = String>) {
    cmd.stdout(Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let lines = BufReader::new(out)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| l.strip_prefix(DATA).map(str::to_string));
    (child, lines)
}

/// A message of the stress tests: producer number and sequence number.
pub fn stress_msg(producer: u32, seq: u64) -> [u8; 12] {
    let mut m = [0u8; 12];
    m[..4].copy_from_slice(&producer.to_le_bytes());
    m[4..].copy_from_slice(&seq.to_le_bytes());
    m
}

/// Decodes [`stress_msg`].
pub fn parse_stress_msg(m: &[u8]) -> (u32, u64) {
    assert_eq!(m.len(), 12, "stress message of wrong length");
    (
        u32::from_le_bytes(m[..4].try_into().unwrap()),
        u64::from_le_bytes(m[4..].try_into().unwrap()),
    )
}

/// Checks the consumers' reports (lines `producer seq class`): every
/// `(producer, seq)` for `seq < per_producer` exactly once, and within one
/// consumer a producer's sequence numbers increase within each `class`
/// (priority for POSIX; one class for System V's FIFO).
pub fn check_stress(reports: &[String], producers: u32, per_producer: u64) {
    let mut seen = vec![vec![false; per_producer as usize]; producers as usize];
    let mut total = 0u64;
    for (c, report) in reports.iter().enumerate() {
        let mut last: HashMap<(u32, u64), u64> = HashMap::new();
        for line in report.lines() {
            let mut it = line.split_whitespace().map(|w| w.parse::<u64>().unwrap());
            let (p, seq, class) = (
                it.next().unwrap() as u32,
                it.next().unwrap(),
                it.next().unwrap(),
            );
            assert!(
                p < producers && seq < per_producer,
                "bogus message {p} {seq}"
            );
            assert!(
                !std::mem::replace(&mut seen[p as usize][seq as usize], true),
                "message {p}/{seq} delivered twice"
            );
            if let Some(prev) = last.insert((p, class), seq) {
                assert!(
                    prev < seq,
                    "consumer {c} got producer {p}'s {seq} after {prev} (class {class})"
                );
            }
            total += 1;
        }
    }
    assert_eq!(
        total,
        u64::from(producers) * per_producer,
        "messages lost: {} of {} delivered",
        total,
        u64::from(producers) * per_producer
    );
}

/// The C peer, compiled once per test process into a temporary directory.
const C_PEER: &str = r#"
#include <errno.h>
#include <mqueue.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>

struct msg { long mtype; char mtext[8192]; };

int main(int argc, char **argv) {
    if (argc < 4) return 2;
    const char *mode = argv[1];
    int n = atoi(argv[3]);
    if (strcmp(mode, "mq-recv") == 0) {
        mqd_t q = mq_open(argv[2], O_RDONLY);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        struct mq_attr a; mq_getattr(q, &a);
        char *buf = malloc(a.mq_msgsize + 1);
        for (int i = 0; i < n; i++) {
            unsigned prio;
            ssize_t len = mq_receive(q, buf, a.mq_msgsize, &prio);
            if (len < 0) { perror("mq_receive"); return 1; }
            buf[len] = 0;
            printf("%u %s\n", prio, buf);
        }
        return 0;
    }
    if (strcmp(mode, "mq-send") == 0) {
        /* argv[4..]: PRIO TEXT pairs */
        mqd_t q = mq_open(argv[2], O_WRONLY);
        if (q == (mqd_t)-1) { perror("mq_open"); return 1; }
        for (int i = 0; i < n; i++) {
            unsigned prio = (unsigned)atoi(argv[4 + 2 * i]);
            const char *t = argv[5 + 2 * i];
            if (mq_send(q, t, strlen(t), prio) != 0) { perror("mq_send"); return 1; }
        }
        return 0;
    }
    if (strcmp(mode, "sysv-recv") == 0) {
        /* argv[4]: msgtyp */
        int id = msgget((key_t)strtol(argv[2], 0, 0), 0);
        if (id < 0) { perror("msgget"); return 1; }
        long typ = atol(argv[4]);
        static struct msg m;
        for (int i = 0; i < n; i++) {
            ssize_t len = msgrcv(id, &m, sizeof m.mtext - 1, typ, 0);
            if (len < 0) { perror("msgrcv"); return 1; }
            m.mtext[len] = 0;
            printf("%ld %s\n", m.mtype, m.mtext);
        }
        return 0;
    }
    if (strcmp(mode, "sysv-send") == 0) {
        int id = msgget((key_t)strtol(argv[2], 0, 0), 0);
        if (id < 0) { perror("msgget"); return 1; }
        static struct msg m;
        for (int i = 0; i < n; i++) {
            m.mtype = atol(argv[4 + 2 * i]);
            const char *t = argv[5 + 2 * i];
            size_t len = strlen(t);
            memcpy(m.mtext, t, len);
            if (msgsnd(id, &m, len, 0) != 0) { perror("msgsnd"); return 1; }
        }
        return 0;
    }
    return 2;
}
"#;

/// The C peer, compiled into a temporary directory removed on drop.
pub struct CPeer {
    dir: PathBuf,
    exe: PathBuf,
}

impl CPeer {
    /// Compiles the C peer with `cc … -lrt`.
    pub fn build() -> CPeer {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ipcworks-test-mq-cpeer-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let peer = CPeer {
            exe: dir.join("peer"),
            dir,
        };
        let src = peer.dir.join("peer.c");
        std::fs::write(&src, C_PEER).unwrap();
        let out = Command::new("cc")
            .arg("-O1")
            .arg("-o")
            .arg(&peer.exe)
            .arg(&src)
            .arg("-lrt")
            .output()
            .expect("run cc (install gcc: .ci/run does)");
        assert!(
            out.status.success(),
            "cc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        peer
    }

    /// Runs the C peer and returns its stdout; panics with stderr on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run C peer");
        assert!(
            out.status.success(),
            "C peer {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for CPeer {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs a Python snippet (`python3 -c`) with arguments; panics with its
/// stderr when it fails. Needs `pip install posix_ipc sysv_ipc` (.ci/run).
pub fn python(script: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python3 failed (are posix_ipc and sysv_ipc installed? pip install posix_ipc sysv_ipc): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Whether any thread of `pid` sleeps in a kernel function whose name
/// contains `what` (from /proc/PID/task/*/wchan).
pub fn blocked_in(pid: u32, what: &str) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    dir.flatten()
        .any(|t| std::fs::read_to_string(t.path().join("wchan")).is_ok_and(|w| w.contains(what)))
}

static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn count_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}

/// Runs `call` on this thread while another thread hits it with SIGUSR1
/// every 5 ms for `storm` (handler installed without `SA_RESTART`, so each
/// signal interrupts a blocking system call with `EINTR`). Returns the
/// call's result and how many signals arrived. Call only in a child
/// process: it installs a process-wide signal handler.
pub fn under_signal_storm<T>(storm: std::time::Duration, call: impl FnOnce() -> T) -> (T, u32) {
    // SAFETY: sigaction is plain data; all-zero is a valid value (empty
    // mask, no flags).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = count_signal as *const () as usize;
    // SAFETY: installs an async-signal-safe handler (one atomic add) for
    // SIGUSR1; `sa` is a valid sigaction and the old action is not wanted.
    let r = unsafe { libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) };
    assert_eq!(r, 0, "sigaction");
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() };
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let storm_thread = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !stop2.load(Ordering::Relaxed) && start.elapsed() < storm {
            // SAFETY: `me` is the thread that runs `call`, alive until it
            // sets `stop` and joins this thread.
            unsafe { libc::pthread_kill(me, libc::SIGUSR1) };
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    });
    let r = call();
    stop.store(true, Ordering::Relaxed);
    storm_thread.join().unwrap();
    (r, SIGNALS.load(Ordering::Relaxed))
}
