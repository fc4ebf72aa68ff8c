//! `ipcworks lock` run as a real program: mutual exclusion between
//! concurrent runs, exit-code passthrough, timeout, and a dead holder.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

/// A unique mutex name, removed (with `ipcworks lock --rm`) on drop.
struct Name(String);

impl Name {
    fn new(what: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        Name(format!(
            "ipcworks-test-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        // Through the library, so the registry entry goes too.
        let _ = ipcworks::shm::Segment::remove(&format!("ipcworks.mutex.{}", self.0));
    }
}

fn lock(name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.arg("lock").arg(name).arg("--").args(args);
    c.stdin(Stdio::null());
    c
}

#[test]
fn concurrent_runs_never_overlap() {
    let name = Name::new("cli-overlap");
    let dir = std::env::temp_dir().join(format!("ipcworks-lock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let _ = std::fs::remove_file(&log);
    // Each run writes "+", sleeps, writes "-": overlapping runs would show
    // "++" somewhere in the log.
    let script = format!(
        "printf + >> {log}; sleep 0.05; printf - >> {log}",
        log = log.display()
    );
    let mut runs: Vec<_> = (0..4)
        .map(|_| {
            let mut c = Command::new("sh");
            c.arg("-c").arg(format!(
                "for i in 1 2 3; do {BIN} lock {} -- sh -c '{script}' || exit 1; done",
                name.0
            ));
            c.spawn().unwrap()
        })
        .collect();
    for r in &mut runs {
        assert!(r.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(text, "+-".repeat(12), "runs overlapped");
    // The mutex persists between runs until removed.
    assert!(std::path::Path::new(&format!("/dev/shm/ipcworks.mutex.{}", name.0)).exists());
    let st = Command::new(BIN)
        .args(["lock", "--rm", &name.0])
        .status()
        .unwrap();
    assert!(st.success());
    assert!(!std::path::Path::new(&format!("/dev/shm/ipcworks.mutex.{}", name.0)).exists());
}

#[test]
fn exit_codes_pass_through() {
    let name = Name::new("cli-codes");
    let code = |args: &[&str]| lock(&name.0, args).status().unwrap().code();
    assert_eq!(code(&["true"]), Some(0));
    assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -9 $$"]), Some(128 + 9));
    assert_eq!(code(&["/nonexistent/program"]), Some(1));
}

/// Starts `ipcworks lock NAME -- sh` whose shell prints its pid once it
/// holds the lock, then sleeps; returns the `ipcworks` child and that pid.
fn hold(name: &str) -> (std::process::Child, i32) {
    let mut holder = lock(name, &["sh", "-c", "echo $$; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (holder, line.trim().parse().unwrap())
}

/// SIGKILLs the holder and its orphaned `sleep`.
fn kill_holder(mut holder: std::process::Child, sleeper: i32) {
    holder.kill().unwrap();
    holder.wait().unwrap();
    // SAFETY: plain kill(2) of the `sleep` we started.
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
}

#[test]
fn timeout_exits_124() {
    let name = Name::new("cli-timeout");
    let (holder, sleeper) = hold(&name.0);
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["lock", "--timeout", "0.3", &name.0, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    assert!(String::from_utf8_lossy(&out.stderr).contains("timed out"));
    kill_holder(holder, sleeper);
}

#[test]
fn a_dead_holder_is_reported_and_the_command_runs() {
    let name = Name::new("cli-dead");
    let (mut holder, sleeper) = hold(&name.0);
    holder.kill().unwrap(); // SIGKILL: it dies holding the lock
    holder.wait().unwrap();
    // ... and its COMMAND dies with it (it must not run without the lock).
    let start = Instant::now();
    while !gone(sleeper) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "COMMAND outlived ipcworks"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = lock(&name.0, &["echo", "ran"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ran\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        err.trim(),
        format!("ipcworks: previous holder of {} died; continuing", name.0)
    );
    // And the next run is quiet.
    let out = lock(&name.0, &["true"]).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// Whether a process is gone or a zombie.
fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            state.is_none_or(|r| r.starts_with('Z') || r.starts_with('X'))
        }
    }
}
