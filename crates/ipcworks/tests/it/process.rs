//! `process::spawn`/`spawn_holding`: children tied to this process and
//! recorded as co-holders of a lock or permit. (Killing the parent while the
//! child runs, and a child that outlives its death signal, are tested
//! through the real `ipcworks lock`/`sem run` in the CLI's tests.)

use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use ipcworks::Error;
use ipcworks::process::{run_holding, spawn, spawn_holding};
use ipcworks::sync::{Mutex, Semaphore};

use crate::support;

const HANG: Duration = Duration::from_secs(20);

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
