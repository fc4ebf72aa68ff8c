//! `ipcworks sem …` run as a user would: the real binary, real processes,
//! kill -9, a C program on the POSIX side.

use crate::support::hold;

use ipcworks_test_support::{need, require};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

fn name(what: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcworks-test-cli-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes both kinds of semaphore of a name, also on panic.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/dev/shm/ipcworks.sem.{}", self.0));
        let _ = std::fs::remove_file(format!("/dev/shm/sem.{}", self.0));
    }
}

fn sem(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("sem")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = sem(args);
    assert!(
        out.status.success(),
        "sem {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn err(args: &[&str], code: i32) -> String {
    let out = sem(args);
    assert_eq!(out.status.code(), Some(code), "sem {args:?}");
    let e = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(e.lines().count(), 1, "one line: {e}");
    e
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    while t.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    cond()
}

#[test]
fn create_wait_post_value_rm_and_exit_codes() {
    let n = name("basic");
    let _c = Cleanup(n.clone());
    ok(&["create", &n, "--value", "2"]);
    assert!(Path::new(&format!("/dev/shm/ipcworks.sem.{n}")).exists());
    assert_eq!(ok(&["value", &n]), "2");
    ok(&["wait", &n]);
    ok(&["wait", &n, "--timeout", "1"]);
    assert_eq!(ok(&["value", &n]), "0");
    let e = err(&["wait", &n, "--timeout", "0.1"], 124);
    assert!(e.contains("timed out"), "{e}");
    // Durations with units, as timeout(1) and humantime read them.
    let e = err(&["wait", &n, "--timeout", "150ms"], 124);
    assert!(e.contains("timed out"), "{e}");
    let out = sem(&["wait", &n, "--timeout", "soon"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad duration is a usage error"
    );
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("200ms"),
        "the error shows the accepted forms: {e}"
    );
    ok(&["post", &n]);
    assert_eq!(ok(&["value", &n]), "1");
    let e = err(&["create", &n, "--value", "1"], 1);
    assert!(e.contains("already exists"), "{e}");
    ok(&["rm", &n]);
    let e = err(&["value", &n], 1);
    assert!(e.contains("does not exist"), "{e}");
    let e = err(&["create", "a/b", "--value", "1"], 1);
    assert!(e.contains("'/'"), "{e}");
    // Usage errors are clap's code 2.
    assert_eq!(sem(&["create", &n]).status.code(), Some(2));
    assert_eq!(
        sem(&["create", &n, "--value", "1", "--mode", "9"])
            .status
            .code(),
        Some(2)
    );
    let help = sem(&["run", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("Examples:"));
}

#[test]
fn run_passes_the_commands_exit_code_and_gives_the_permit_back() {
    let n = name("run");
    let _c = Cleanup(n.clone());
    ok(&["create", &n, "--value", "1"]);
    let out = sem(&["run", &n, "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7));
    let out = sem(&["run", &n, "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.status.code(), Some(128 + 9));
    assert_eq!(ok(&["value", &n]), "1");
    // With the only permit taken, run times out with 124.
    ok(&["wait", &n]);
    let out = sem(&["run", &n, "--timeout", "0.1", "--", "true"]);
    assert_eq!(out.status.code(), Some(124));
    ok(&["post", &n]);
    ok(&["rm", &n]);
}

#[test]
fn a_killed_sem_run_gives_its_permit_back() {
    let n = name("killrun");
    let _c = Cleanup(n.clone());
    let dir = std::env::temp_dir().join(name("pid"));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("pid");
    ok(&["create", &n, "--value", "1"]);
    let mut run = Command::new(BIN)
        .args(["sem", "run", &n, "--", "sh", "-c"])
        .arg(format!("echo $$ > {}; exec sleep 30", pidfile.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(20), || ok(&["value", &n]) == "0"));
    assert!(wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&pidfile).is_ok_and(|s| s.ends_with('\n'))
    }));
    let command: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let holders = ok(&["value", &n, "--holders"]);
    assert_eq!(
        holders.lines().nth(1).unwrap_or(""),
        format!(
            "holder pid {} holds a permit, with COMMAND pid {command}",
            run.id()
        ),
        "{holders}"
    );
    run.kill().unwrap(); // SIGKILL to `ipcworks sem run`
    run.wait().unwrap();
    // Its COMMAND dies with it (parent-death signal); the permit comes back
    // once both are gone.
    let died = wait_until(Duration::from_secs(10), || hold::gone(command));
    if !died {
        hold::kill9(command);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(died, "COMMAND outlived its `ipcworks sem run`");
    let out = sem(&["value", &n]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("gave back 1 permit"));
    ok(&["rm", &n]);
}

const C_POST3: &str = r#"
#include <fcntl.h>
#include <semaphore.h>
#include <stdio.h>
int main(int argc, char **argv) {
    char name[300];
    snprintf(name, sizeof name, "/%s", argv[1]);
    sem_t *s = sem_open(name, 0);
    if (s == SEM_FAILED) { perror("sem_open"); return 1; }
    for (int i = 0; i < 3; i++) sem_post(s);
    int v = -1;
    sem_getvalue(s, &v);
    printf("%d\n", v);
    return 0;
}
"#;

fn compile(dir: &Path) -> PathBuf {
    let src = dir.join("post3.c");
    std::fs::write(&src, C_POST3).unwrap();
    let exe = dir.join("post3");
    let st = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-pthread")
        .status()
        .expect("cc (gcc) must be installed: .ci/run installs it");
    assert!(st.success());
    exe
}

#[test]
fn posix_semaphores_are_shared_with_c_and_kept_apart_from_native_ones() {
    require!(need::CC);
    let n = name("posix");
    let _c = Cleanup(n.clone());
    let dir = std::env::temp_dir().join(name("cc"));
    std::fs::create_dir_all(&dir).unwrap();
    let exe = compile(&dir);
    ok(&["create", &n, "--value", "0", "--posix"]);
    assert!(Path::new(&format!("/dev/shm/sem.{n}")).exists());
    let out = Command::new(&exe).arg(&n).output().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "3");
    assert_eq!(ok(&["value", &n, "--posix"]), "3");
    ok(&["wait", &n, "--posix"]);
    assert_eq!(ok(&["value", &n, "--posix"]), "2");
    // Without --posix: a clear hint.
    let e = err(&["value", &n], 1);
    assert!(e.contains("add --posix"), "{e}");
    let e = err(&["post", &n], 1);
    assert!(e.contains("add --posix"), "{e}");
    ok(&["rm", &n, "--posix"]);
    assert!(!Path::new(&format!("/dev/shm/sem.{n}")).exists());
    // Modes: created 0640 exactly, refused when 0600 is expected.
    ok(&["create", &n, "--value", "1", "--posix", "--mode", "640"]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(format!("/dev/shm/sem.{n}"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let e = err(&["value", &n, "--posix"], 1);
    assert!(e.contains("0640"), "{e}");
    assert_eq!(ok(&["value", &n, "--posix", "--mode", "640"]), "1");
    ok(&["rm", &n, "--posix"]);
}

/// `sem run` under kill -9: the permit of a killed `ipcworks sem run` is
/// not handed to the next job while its COMMAND still runs.
fn killed_sem_run(shell: &Path, scratch: &mut hold::Scratch) {
    let n = name("cohold");
    let _c = Cleanup(n.clone());
    ok(&["create", &n, "--value", "1"]);
    hold::next_run_waits_for_the_killed_runs_command(
        |command| {
            let mut c = Command::new(BIN);
            c.args(["sem", "run", &n, "--"]).args(command);
            c
        },
        shell,
        scratch,
    );
    ok(&["rm", &n]);
}

#[test]
fn a_killed_sem_runs_command_dies_before_its_permit_is_handed_on() {
    let mut scratch = hold::Scratch::new("sem-cohold");
    killed_sem_run(Path::new("sh"), &mut scratch);
}

/// The COMMAND outlives the parent-death signal (it executes a set-user-ID
/// program, which clears it): the next job still waits until it is gone.
#[test]
fn a_command_that_outlives_the_death_signal_keeps_its_permit() {
    require!(need::ROOT, need::CC);
    let mut scratch = hold::Scratch::new("sem-setuid");
    let sh = hold::setuid_sh(&scratch);
    killed_sem_run(&sh, &mut scratch);
}

/// `sem run -j N` creates the semaphore with N permits on first use (like
/// GNU `sem -j N`), keeps at most N COMMANDs inside at once, leaves it in
/// place until `sem rm`, and refuses an existing one made with another N.
#[test]
fn run_with_jobs_creates_the_pool_on_first_use() {
    let n = name("jobs");
    let _c = Cleanup(n.clone());
    let scratch = hold::Scratch::new("sem-jobs");
    let log = scratch.path("log");
    // Each COMMAND logs + on entry and - on exit, with time inside.
    let script = format!(
        "echo + >> {log}; sleep 0.2; echo - >> {log}",
        log = log.display()
    );
    let runs: Vec<_> = (0..5)
        .map(|_| {
            Command::new(BIN)
                .args(["sem", "run", "-j", "2", &n, "--", "sh", "-c", &script])
                .stdin(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let (mut inside, mut most) = (0i32, 0i32);
    for l in text.lines() {
        inside += if l == "+" { 1 } else { -1 };
        most = most.max(inside);
    }
    assert_eq!(text.lines().filter(|l| *l == "+").count(), 5, "{text}");
    assert!(
        most <= 2,
        "{most} COMMANDs inside at once with -j 2: {text}"
    );
    // It stays, with 2 permits, until `sem rm`.
    assert!(Path::new(&format!("/dev/shm/ipcworks.sem.{n}")).exists());
    assert_eq!(ok(&["value", &n]), "2");
    // The same N again is fine; another N is an error naming both.
    assert_eq!(
        sem(&["run", "-j", "2", &n, "--", "true"]).status.code(),
        Some(0)
    );
    let e = err(&["run", "-j", "3", &n, "--", "true"], 1);
    assert!(e.contains("2 permits") && e.contains("-j 3"), "{e}");
    // One made by `sem create --value 2` is the same thing.
    ok(&["rm", &n]);
    ok(&["create", &n, "--value", "3"]);
    assert_eq!(
        sem(&["run", "-j", "3", &n, "--", "true"]).status.code(),
        Some(0)
    );
    let e = err(&["run", "--jobs", "2", &n, "--", "true"], 1);
    assert!(e.contains("3 permits") && e.contains("-j 2"), "{e}");
    ok(&["rm", &n]);
    // Without -j a missing semaphore is an error, as before; -j 0 is usage.
    let e = err(&["run", &n, "--", "true"], 1);
    assert!(e.contains("does not exist"), "{e}");
    assert_eq!(
        sem(&["run", "-j", "0", &n, "--", "true"]).status.code(),
        Some(2)
    );
    assert!(!Path::new(&format!("/dev/shm/ipcworks.sem.{n}")).exists());
}

/// `-t` is `--timeout` for `sem wait` and `sem run`; a COMMAND that cannot
/// be run exits 127 (not found) or 126 (not executable) and the permit
/// comes back.
#[test]
fn short_timeout_and_commands_that_cannot_run() {
    let n = name("short");
    let _c = Cleanup(n.clone());
    ok(&["create", &n, "--value", "1"]);
    let scratch = hold::Scratch::new("sem-noexec");
    let script = scratch.path("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let out = sem(&["run", &n, "--", "/nonexistent/program"]);
    assert_eq!(out.status.code(), Some(127), "{out:?}");
    let out = sem(&["run", &n, "--", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(126), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert_eq!(ok(&["value", &n]), "1");
    ok(&["wait", &n, "-t", "1"]);
    let e = err(&["wait", &n, "-t", "100ms"], 124);
    assert!(e.contains("timed out"), "{e}");
    assert_eq!(
        sem(&["run", &n, "-t", "100ms", "--", "true"]).status.code(),
        Some(124)
    );
    ok(&["post", &n]);
    ok(&["rm", &n]);
}
