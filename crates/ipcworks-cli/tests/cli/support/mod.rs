//! Helpers shared by the CLI tests of `send`/`recv` formats and conventions:
//! running the real binary with bounded waits, pipelines between two real
//! processes, Python peers, and clean-up guards for the objects the tests
//! make.
#![allow(dead_code)]

pub mod hold;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

/// Generous: only there to turn a hang into a failure on a loaded machine.
pub const LIMIT: Duration = Duration::from_secs(60);

/// A name unique to this test process and call, for queues and paths.
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcworks-test-h5-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A System V key unique to this test process and call.
pub fn unique_key() -> i32 {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    (0x4835_0000u32 ^ ((std::process::id() & 0xfff) << 4) ^ n) as i32
}

/// Removes the named objects of a test, also when it fails.
#[derive(Default)]
pub struct Cleanup {
    pub mq: Vec<String>,
    pub queue: Vec<String>,
    pub sysv: Vec<i32>,
    pub paths: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.mq {
            let _ = ipcworks::mq::posix::Queue::remove(n);
        }
        for n in &self.queue {
            let _ = ipcworks::queue::Queue::remove(n);
        }
        for k in &self.sysv {
            let _ = ipcworks::mq::sysv::Queue::remove_key(*k);
        }
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A temporary path (not created), removed on drop if something is there.
pub fn tmp_path(c: &mut Cleanup, what: &str) -> PathBuf {
    let p = std::env::temp_dir().join(unique(what));
    c.paths.push(p.clone());
    p
}

/// A child killed and reaped on drop (also when the test fails).
pub struct Guard(pub Option<Child>);

impl Guard {
    pub fn spawn(mut c: Command) -> Self {
        Guard(Some(c.spawn().expect("spawn")))
    }
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    /// Waits at most [`LIMIT`] and collects the output, reading stdout and
    /// stderr meanwhile (a child writing more than a pipe holds must not
    /// block on us).
    pub fn finish(mut self) -> Output {
        let c = self.0.take().unwrap();
        let pid = rustix::process::Pid::from_raw(c.id() as i32).expect("a child pid");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(c.wait_with_output());
        });
        match rx.recv_timeout(LIMIT) {
            Ok(out) => out.unwrap(),
            Err(_) => {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                let out = rx.recv().unwrap().unwrap();
                panic!(
                    "still running after {LIMIT:?}; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `ipcworks ARGS…` with stdin from `/dev/null`, stdout and stderr piped.
pub fn ipcworks(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Starts `c` with `input` written to its stdin from a thread (so a full
/// pipe never deadlocks the test), and returns it running.
pub fn spawn_with_input(mut c: Command, input: Vec<u8>) -> Guard {
    c.stdin(Stdio::piped());
    let mut g = Guard::spawn(c);
    let mut stdin = g.child().stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    g
}

/// Runs `ipcworks ARGS…` to its end with `input` on stdin.
pub fn run(args: &[&str], input: &[u8]) -> Output {
    spawn_with_input(ipcworks(args), input.to_vec()).finish()
}

/// Runs `ipcworks ARGS…` and insists it succeeds; returns its stdout.
pub fn ok(args: &[&str], input: &[u8]) -> Vec<u8> {
    let out = run(args, input);
    assert!(
        out.status.success(),
        "ipcworks {args:?}: {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `ipcworks A… | ipcworks B…`, a real pipe between two real processes.
/// Both must succeed; returns B's stdout.
pub fn pipeline(a: &[&str], b: &[&str]) -> Vec<u8> {
    let mut first = Guard::spawn(ipcworks(a));
    let pipe = first.child().stdout.take().unwrap();
    let mut second = ipcworks(b);
    second.stdin(Stdio::from(pipe));
    let second = Guard::spawn(second);
    let out_b = second.finish();
    let out_a = first.finish();
    assert!(
        out_a.status.success(),
        "ipcworks {a:?}: {:?}: {}",
        out_a.status,
        String::from_utf8_lossy(&out_a.stderr)
    );
    assert!(
        out_b.status.success(),
        "ipcworks {b:?}: {:?}: {}",
        out_b.status,
        String::from_utf8_lossy(&out_b.stderr)
    );
    out_b.stdout
}

/// Runs a Python 3 script with arguments; it must succeed. Returns stdout.
pub fn python(script: &str, args: &[&str]) -> Vec<u8> {
    let mut c = Command::new("python3");
    c.arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = Guard::spawn(c).finish();
    assert!(
        out.status.success(),
        "python3: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Reads a child's stderr up to its first newline (or its end).
pub fn first_line(r: &mut impl Read) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while let Ok(1) = r.read(&mut b) {
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    String::from_utf8_lossy(&line).into_owned()
}

/// The stderr of an output as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits (at most [`LIMIT`]) for a condition.
pub fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < LIMIT,
            "condition not met within {LIMIT:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
