//! `ipcworks lock` run as a real program: mutual exclusion between
//! concurrent runs, exit-code passthrough, timeout, and a dead holder.

use crate::support::hold;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcworks_test_support::{need, require};

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
}

/// A COMMAND that cannot be run: 127 if it does not exist, 126 if it is
/// not executable, with one line on stderr, exactly as env(1) says.
#[test]
fn a_command_that_cannot_run_exits_126_or_127_like_env() {
    let name = Name::new("cli-noexec");
    let scratch = hold::Scratch::new("lock-noexec");
    let script = scratch.path("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let script = script.to_str().unwrap().to_string();
    for (program, want) in [("/nonexistent/program", 127), (script.as_str(), 126)] {
        let env = Command::new("env").arg(program).output().unwrap();
        assert_eq!(env.status.code(), Some(want), "env(1) itself: {env:?}");
        let out = lock(&name.0, &[program]).output().unwrap();
        assert_eq!(out.status.code(), Some(want), "{program}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(&format!("cannot run {program:?}")), "{err}");
    }
    // The lock was released: the next run gets it at once, quietly.
    let out = lock(&name.0, &["true"]).output().unwrap();
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
}

/// Usage errors exit 2 before anything is created: no COMMAND, COMMAND
/// with --rm, -n with --timeout.
#[test]
fn usage_errors_exit_2() {
    let name = Name::new("cli-usage");
    let run = |args: &[&str]| Command::new(BIN).args(args).output().unwrap();
    for args in [
        vec!["lock", &name.0],
        vec!["lock", &name.0, "--"],
        vec!["lock", "--rm", &name.0, "--", "true"],
        vec!["lock", "-n", "-t", "1", &name.0, "--", "true"],
    ] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("Usage:"),
            "{out:?}"
        );
    }
    assert!(!Path::new(&format!("/dev/shm/ipcworks.mutex.{}", name.0)).exists());
}

/// `-n` (`--nonblock`, `--nb`) fails at once when the lock is taken, as
/// flock -n does (flock exits 1, we exit 124 as for `--timeout 0`), and
/// does not run COMMAND; on a free lock or a dead holder's it runs.
#[test]
fn nonblock_fails_at_once_like_flock_n() {
    let name = Name::new("cli-nonblock");
    let scratch = hold::Scratch::new("lock-nonblock");
    let marker = scratch.path("ran");
    let touch = ["touch", marker.to_str().unwrap()];
    let (holder, sleeper) = hold(&name.0);
    for flag in ["-n", "--nonblock", "--nb"] {
        let start = Instant::now();
        let out = Command::new(BIN)
            .args(["lock", flag, &name.0, "--"])
            .args(touch)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(124), "{flag}: {out:?}");
        assert!(start.elapsed() < Duration::from_secs(10), "{flag} waited");
        assert!(!marker.exists(), "{flag} ran COMMAND without the lock");
    }
    // -t with a unit: waits that long, then 124.
    let start = Instant::now();
    let out = Command::new(BIN)
        .args(["lock", "-t", "200ms", &name.0, "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{out:?}");
    assert!(start.elapsed() >= Duration::from_millis(200));
    kill_holder(holder, sleeper);

    // flock(1) beside it: -n on a held lock fails at once, COMMAND unrun.
    let file = scratch.path("flock");
    let mut flock_holder = Command::new("flock")
        .arg(&file)
        .args(["sh", "-c", "echo held; exec sleep 30"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(flock_holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let out = Command::new("flock")
        .arg("-n")
        .arg(&file)
        .args(touch)
        .output()
        .unwrap();
    let _ = flock_holder.kill();
    let _ = flock_holder.wait();
    assert_eq!(out.status.code(), Some(1), "flock -n: {out:?}");
    assert!(!marker.exists());

    // Free: -n runs COMMAND. A dead holder's: -n takes over and runs it.
    let out = Command::new(BIN)
        .args(["lock", "-n", &name.0, "--"])
        .args(touch)
        .output()
        .unwrap();
    assert!(out.status.success() && marker.exists(), "{out:?}");
    std::fs::remove_file(&marker).unwrap();
    let (mut holder, sleeper) = hold(&name.0);
    holder.kill().unwrap();
    holder.wait().unwrap();
    let t = Instant::now();
    while !gone(sleeper) && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = Command::new(BIN)
        .args(["lock", "-n", &name.0, "--"])
        .args(touch)
        .output()
        .unwrap();
    assert!(out.status.success() && marker.exists(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("died"),
        "{out:?}"
    );
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
    hold::kill9(sleeper);
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

/// `lock` under kill -9: the lock of a killed `ipcworks lock` is not taken
/// over while its COMMAND still runs.
fn killed_lock(shell: &Path, scratch: &mut hold::Scratch) {
    let name = Name::new("cohold");
    hold::next_run_waits_for_the_killed_runs_command(
        |command| lock(&name.0, command),
        shell,
        scratch,
    );
}

#[test]
fn a_killed_locks_command_dies_before_the_lock_is_taken_over() {
    let mut scratch = hold::Scratch::new("lock-cohold");
    killed_lock(Path::new("sh"), &mut scratch);
}

/// The COMMAND outlives the parent-death signal (it executes a set-user-ID
/// program, which clears it): the next `lock` still waits until it is gone.
#[test]
fn a_command_that_outlives_the_death_signal_keeps_the_lock() {
    require!(need::ROOT, need::CC);
    let mut scratch = hold::Scratch::new("lock-setuid");
    let sh = hold::setuid_sh(&scratch);
    killed_lock(&sh, &mut scratch);
}

/// Starts `ipcworks lock NAME -- COMMAND` whose COMMAND prints `ready`
/// once it runs; returns it with its stdout's remaining lines.
fn started(
    mut cmd: Command,
) -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead;
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    match lines.next() {
        Some(Ok(l)) if l == "ready" => {}
        other => {
            let _ = child.kill();
            panic!("COMMAND did not start: {other:?}");
        }
    }
    (child, lines)
}

/// Waits at most 20 s for `child` (a hang is a failure, not a wait).
fn finish(child: &mut std::process::Child) -> std::process::ExitStatus {
    let t = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if t.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("ipcworks lock did not end");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn signal(pid: i32, sig: rustix::process::Signal) {
    let p = rustix::process::Pid::from_raw(pid.abs()).unwrap();
    if pid < 0 {
        rustix::process::kill_process_group(p, sig).unwrap();
    } else {
        rustix::process::kill_process(p, sig).unwrap();
    }
}

/// A SIGTERM to `ipcworks lock` is passed on to COMMAND; ipcworks waits for
/// it, exits with its code and releases the lock cleanly.
#[test]
fn sigterm_is_passed_on_to_the_command() {
    let name = Name::new("cli-term");
    let (mut child, mut lines) = started(lock(
        &name.0,
        &[
            "sh",
            "-c",
            "trap 'echo got-TERM; exit 3' TERM; echo ready; while :; do sleep 0.01; done",
        ],
    ));
    signal(child.id() as i32, rustix::process::Signal::TERM);
    let status = finish(&mut child);
    assert_eq!(
        status.code(),
        Some(3),
        "COMMAND's own code after its TERM trap"
    );
    assert_eq!(
        lines.next().map(Result::unwrap).as_deref(),
        Some("got-TERM")
    );
    let out = lock(&name.0, &["true"]).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "released cleanly: {out:?}"
    );
}

/// Ctrl-C at a terminal signals the whole foreground process group, as here:
/// COMMAND (whose SIGINT action is the default again after exec) ends by it;
/// ipcworks survives it, exits 130 like a shell, and releases the lock.
#[test]
fn ctrl_c_ends_the_command_and_ipcworks_reports_it() {
    use std::os::unix::process::CommandExt;
    let name = Name::new("cli-int");
    let mut cmd = lock(&name.0, &["sh", "-c", "echo ready; exec sleep 30"]);
    cmd.process_group(0);
    let (mut child, _lines) = started(cmd);
    signal(-(child.id() as i32), rustix::process::Signal::INT);
    let status = finish(&mut child);
    assert_eq!(status.code(), Some(130), "{status:?}");
    let out = lock(&name.0, &["true"]).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "released cleanly: {out:?}"
    );
}
