//! `process::spawn`/`spawn_holding`: children tied to this process and
//! recorded as co-holders of a lock or permit. (Killing the parent while the
//! child runs, and a child that outlives its death signal, are tested
//! through the real `ipcworks lock`/`sem run` in the CLI's tests.)
//! `process::spawn_worker` and `process::remove_on_terminate`: a worker
//! leaves its parent's Ctrl-C alone and dies with it, and the parent's
//! named objects go with it.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use ipcworks::Error;
use ipcworks::process::{remove_on_terminate, run_holding, spawn, spawn_holding, spawn_worker};
use ipcworks::registry::Kind;
use ipcworks::shm::Segment;
use ipcworks::sync::{Mutex, Semaphore};

use crate::support::{self, KillOnDrop};

const HANG: Duration = Duration::from_secs(20);

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // Makes segment ARG, arranges its removal on SIGINT, starts a
            // worker (`sleep`), prints "ready PID" with the worker's pid, and
            // waits to be interrupted.
            "worker-under-sigint" => {
                remove_on_terminate(&[(Kind::Shm, &arg)]).unwrap();
                let _seg = Segment::create(&arg, 4096).unwrap();
                let mut sleep = Command::new("sleep");
                sleep.arg("60");
                let worker = spawn_worker(sleep).unwrap();
                println!("ready {}", worker.id());
                std::thread::sleep(HANG);
                // Not reached when SIGINT ends the process, as it should.
                drop(worker);
            }
            // The limits of remove_on_terminate, in a process of its own (the
            // list is process-wide).
            "remove-limits" => {
                let e = remove_on_terminate(&[(Kind::SysvQueue, "not-a-key")]).unwrap_err();
                assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
                for i in 0..16 {
                    let path = format!("/tmp/ipcworks-test-never-made-{i}");
                    remove_on_terminate(&[(Kind::Fifo, &path)]).unwrap();
                }
                let e = remove_on_terminate(&[(Kind::Fifo, "/tmp/ipcworks-test-never-made-16")])
                    .unwrap_err();
                assert!(matches!(e, Error::LimitExceeded { .. }), "{e:?}");
                println!("limits hold");
            }
            other => support::unknown_role(other),
        }
    });
}

/// A private registry directory (0700) for a child, removed on drop.
struct PrivateRegistry(PathBuf);

impl PrivateRegistry {
    fn new() -> PrivateRegistry {
        let dir = std::env::temp_dir().join(support::unique_name("registry"));
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        PrivateRegistry(dir)
    }

    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    }
}

impl Drop for PrivateRegistry {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Ctrl-C (SIGINT) to a process running a worker ends that process as if
/// no child ran — its `remove_on_terminate` handler removes the segment
/// and its registry entry, and it dies of the signal — and the worker
/// dies with it. (A child started with `spawn` would have made the parent
/// ignore SIGINT, as `system(3)` does.)
#[test]
fn a_worker_leaves_sigint_to_its_parent_and_dies_with_it() {
    let name = support::unique_name("worker");
    let _cleanup = support::ShmCleanup(vec![name.clone()]);
    let reg = PrivateRegistry::new();
    let mut cmd = support::child("process::child", "worker-under-sigint", &name);
    cmd.env("IPCWORKS_REGISTRY", &reg.0).stdout(Stdio::piped());
    let mut parent = KillOnDrop::spawn(cmd);
    let out = parent.0.as_mut().unwrap().stdout.take().unwrap();
    let worker: u32 = BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("ready ").map(|p| p.trim().parse().unwrap()))
        .expect("the child started its worker");
    assert!(std::path::Path::new(&format!("/dev/shm/{name}")).exists());
    assert_eq!(reg.entries().len(), 1, "the segment is registered");
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(parent.pid() as i32).unwrap(),
        rustix::process::Signal::INT,
    )
    .unwrap();
    let status = parent.wait_for(HANG);
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
    assert!(
        !std::path::Path::new(&format!("/dev/shm/{name}")).exists(),
        "the handler removed the segment"
    );
    assert_eq!(
        reg.entries(),
        Vec::<String>::new(),
        "and its registry entry"
    );
    assert!(
        support::wait_until(HANG, || gone(worker)),
        "the worker {worker} outlived its parent"
    );
}

/// A System V key that is no number is refused, and the list holds 16
/// objects (each with its registry entry), not one more.
#[test]
fn remove_on_terminate_refuses_a_bad_key_and_a_17th_object() {
    let reg = PrivateRegistry::new();
    let mut cmd = support::child("process::child", "remove-limits", "");
    cmd.env("IPCWORKS_REGISTRY", &reg.0);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("limits hold"),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether process `pid` is gone or a zombie.
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, r)| r.trim_start());
            state.is_none_or(|r| r.starts_with('Z') || r.starts_with('X'))
        }
    }
}

#[test]
fn a_command_that_cannot_run_says_whether_it_was_found() {
    let e = spawn(Command::new("/nonexistent/ipcworks-no-such-program")).unwrap_err();
    assert!(
        matches!(&e, Error::Spawn { program, source }
            if program.ends_with("no-such-program")
                && source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    let dir = std::env::temp_dir().join(support::unique_name("noexec"));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = spawn(Command::new(&script)).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        matches!(&e, Error::Spawn { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("cannot run "), "{e}");
}

/// A child run under a permit is recorded beside its holder while it runs,
/// and forgotten once waited for; the permit itself comes back on drop as
/// always.
#[test]
fn a_permits_co_holder_is_recorded_while_the_child_runs() {
    let sem = Semaphore::anonymous(1).unwrap();
    let mut permit = sem.acquire().unwrap();
    let mut sh = Command::new("sh");
    sh.args(["-c", "read line"])
        .stdin(std::process::Stdio::piped());
    let child = spawn_holding(sh, &mut permit).unwrap();
    let pid = child.id();
    let holders = sem.holders();
    assert_eq!(holders.len(), 1, "{holders:?}");
    assert_eq!(holders[0].pid, std::process::id());
    let co = holders[0].co_holder.expect("the child is recorded");
    assert_eq!((co.pid, co.alive), (pid, true));
    // Dropping the TiedChild kills and reaps it, and forgets it.
    drop(child);
    assert!(gone(pid), "dropping a TiedChild kills its child");
    assert_eq!(sem.holders()[0].co_holder, None);
    drop(permit);
    assert_eq!(sem.value().unwrap(), 1);
    assert!(sem.holders().is_empty());
}

/// `run_holding` runs the command to its end under a lock and passes its
/// status on; the lock is released as usual afterwards.
#[test]
fn run_holding_a_lock_returns_the_commands_status() {
    let m = Mutex::anonymous(0u32).unwrap();
    let mut g = m.lock().unwrap();
    let mut sh = Command::new("sh");
    sh.args(["-c", "exit 7"]);
    let status = run_holding(sh, &mut g).unwrap();
    assert_eq!(status.code(), Some(7));
    g.set(1).unwrap();
    drop(g);
    assert_eq!(m.lock_timeout(HANG).unwrap().get().unwrap(), 1);
}
