//! Shared by `lock.rs` and `sem.rs`: kill -9 an `ipcworks` that runs
//! COMMAND under a hold (a lock, a permit), and check that the next run
//! does not get in while that COMMAND still runs.
//!
//! COMMAND is a `sh` loop that appends `A` to a log every 10 ms: it is
//! inside its critical section for as long as it lives. The second run's
//! COMMAND appends `B` once. Whatever happens to the first `ipcworks`, no
//! `A` may follow the `B`.
//!
//! Two ways the first COMMAND can outlive its `ipcworks`: it has no
//! parent-death signal at all (what `sem run` did), or the signal is lost.
//! The kernel clears the parent-death signal when a process executes a
//! set-user-ID program (`sudo`, `su`, `ping` …). [`setuid_sh`] builds such a
//! program (a copy of `execv("/bin/sh")` owned by `nobody`, mode 4755), so
//! the second case is a real one, not a simulation: only the co-holder
//! record, checked by whoever would reclaim the hold, keeps the line then.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generous bound for things that should take milliseconds.
const HANG: Duration = Duration::from_secs(20);

/// A scratch directory for one test, removed (with whatever is left in it)
/// when dropped; every process whose pid it recorded is killed first.
pub struct Scratch {
    pub dir: PathBuf,
    pids: Vec<i32>,
}

impl Scratch {
    pub fn new(what: &str) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ipcworks-test-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        // Readable and searchable by everyone: a set-user-ID program
        // owned by `nobody` runs from here.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        Scratch {
            dir,
            pids: Vec::new(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for &pid in &self.pids {
            kill9(pid);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILL to `pid` (if it is still there).
pub fn kill9(pid: i32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Whether process `pid` is gone or a zombie.
pub fn gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            state.is_none_or(|r| r.starts_with('Z') || r.starts_with('X'))
        }
    }
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

const SETUID_SH: &str = r#"
#include <unistd.h>
/* Executes /bin/sh with our arguments. Installed set-user-ID `nobody`:
   executing it clears the parent-death signal, as for any such program. */
int main(int argc, char **argv) {
    (void)argc;
    execv("/bin/sh", argv);
    return 127;
}
"#;

/// Compiles a set-user-ID (`nobody`) program into `scratch` that executes
/// `/bin/sh` with its arguments; returns its path. Needs root and `cc`.
pub fn setuid_sh(scratch: &Scratch) -> PathBuf {
    let src = scratch.path("setuid-sh.c");
    std::fs::write(&src, SETUID_SH).unwrap();
    let exe = scratch.path("setuid-sh");
    let st = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");
    std::os::unix::fs::chown(&exe, Some(65534), Some(65534)).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o4755)).unwrap();
    exe
}

/// Kills the `ipcworks` that runs a looping COMMAND under a hold, then
/// starts a second one and checks that its COMMAND runs only once the
/// first COMMAND is gone.
///
/// `start(command)` builds the `ipcworks lock …`/`sem run …` command line
/// for a COMMAND. `shell` runs the first COMMAND's script: `sh`, or the
/// path of [`setuid_sh`] (then the first COMMAND outlives the parent-death
/// signal: the test checks that the second run waits while it lives, then
/// kills it itself).
pub fn next_run_waits_for_the_killed_runs_command(
    start: impl Fn(&[&str]) -> Command,
    shell: &Path,
    scratch: &mut Scratch,
) {
    let log = scratch.path("log");
    let pidfile = scratch.path("pid");
    // The log and pid file are written by a shell that may run as `nobody`.
    for f in [&log, &pidfile] {
        std::fs::write(f, "").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap();
    }
    let script = format!(
        "echo $$ > {pid}; while :; do echo A >> {log}; sleep 0.01; done",
        pid = pidfile.display(),
        log = log.display()
    );
    let mut first = start(&[shell.to_str().unwrap(), "-c", &script])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let read_pid = || {
        std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
    };
    let inside = wait_until(HANG, || {
        read_pid().is_some() && std::fs::read_to_string(&log).is_ok_and(|t| t.contains('A'))
    });
    if !inside {
        let _ = first.kill();
        panic!("the first COMMAND never started");
    }
    let command = read_pid().unwrap();
    scratch.pids.push(command);
    first.kill().unwrap(); // SIGKILL to ipcworks, while COMMAND runs inside
    first.wait().unwrap();

    let second_script = format!("echo B >> {}", log.display());
    let mut second: Child = start(&["sh", "-c", &second_script])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let outlives = shell != Path::new("sh");
    if outlives {
        // Several liveness periods of every waiter (15 ms for the mutex,
        // 100 ms for the semaphore).
        std::thread::sleep(Duration::from_millis(1000));
        assert!(
            !gone(command),
            "premise: the first COMMAND (set-user-ID exec) outlived its ipcworks"
        );
        let text = std::fs::read_to_string(&log).unwrap();
        let entered = second.try_wait().unwrap().is_some() || text.contains('B');
        if entered {
            let _ = second.kill();
            let _ = second.wait();
            kill9(command);
            panic!(
                "the second run entered while the first COMMAND still ran inside ({})",
                summary(&text)
            );
        }
        kill9(command);
    }
    let t = Instant::now();
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > HANG {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second run never got in after the first COMMAND was gone");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "second run: {status:?}, stderr {err:?}");
    // A first COMMAND still alive would go on appending.
    std::thread::sleep(Duration::from_millis(150));
    let text = std::fs::read_to_string(&log).unwrap();
    let after_b = text
        .split_once("B\n")
        .map(|(_, after)| after.to_string())
        .unwrap_or_else(|| panic!("the second COMMAND never ran: {text:?}"));
    assert!(
        !after_b.contains('A'),
        "the first COMMAND ran inside after the second had entered ({})",
        summary(&text)
    );
    assert!(gone(command), "the first COMMAND outlived its ipcworks");
}

/// The log in a few words: how many `A` lines came before and after `B`.
fn summary(log: &str) -> String {
    match log.split_once("B\n") {
        Some((before, after)) => format!(
            "log: {} A lines, then B, then {} more A lines",
            before.matches('A').count(),
            after.matches('A').count()
        ),
        None => format!("log: {} A lines, no B", log.matches('A').count()),
    }
}
