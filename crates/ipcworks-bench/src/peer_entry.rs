//! The peer's side: a process started by [`peer::spawn`](crate::peer::spawn)
//! reads what to do from [`PEER_ENV`] and does it — echo for a mechanism
//! ([`harness::serve`]), produce for fan-in ([`crate::fanin`]) or run the
//! server's clients ([`crate::clients`]). Apart from [`crate::peer`],
//! which only launches, so that the roles may use the launcher.

use std::io::{self, Write};
use std::process::ExitCode;

use crate::harness::{self, Case, Handoff};
use crate::peer::{PEER_ENV, Role, Spec};

/// If this process was started as a peer ([`PEER_ENV`] is set), runs the
/// peer's side and returns its exit code; otherwise `None`. Call it first
/// thing in `main` (and in a test binary's peer entry test).
pub fn run_if_peer() -> Option<ExitCode> {
    run_if_peer_status().map(|c| ExitCode::from(c as u8))
}

/// [`run_if_peer`] returning the status as a number, for callers that end
/// with `std::process::exit` (a test binary's peer entry).
pub fn run_if_peer_status() -> Option<i32> {
    let text = std::env::var(PEER_ENV).ok()?;
    let spec: Spec = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ipcworks bench peer: bad {PEER_ENV}: {e}");
            return Some(2);
        }
    };
    // SAFETY: the parent handed this descriptor over for this process to
    // own (see `spawn`); nothing else in this process uses the number.
    // `adopt_inherited` also checks it is open and taken once.
    let mut ctl = match unsafe { ipcworks::__bench::adopt_inherited(spec.ctl_fd) } {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!(
                "ipcworks bench peer: control descriptor {}: {e}",
                spec.ctl_fd
            );
            return Some(2);
        }
    };
    match peer_main(&spec, &mut ctl) {
        Ok(()) => Some(0),
        Err(e) => {
            let _ = writeln!(ctl, "error: {}", e.to_string().replace('\n', " "));
            Some(1)
        }
    }
}

fn peer_main(spec: &Spec, ctl: &mut std::fs::File) -> io::Result<()> {
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Some(cpu) = spec.cpu {
        crate::system::pin(cpu).map_err(|e| io::Error::other(format!("pin to core {cpu}: {e}")))?;
    }
    harness::set_yield(spec.yield_core);
    let handoff = Handoff {
        // SAFETY: each number was handed over by the parent for this
        // process to own (see `spawn`), once each; a number that is not
        // open (or repeated) becomes `None`, which the mechanism reports.
        fds: spec
            .fds
            .iter()
            .map(|&fd| unsafe { ipcworks::__bench::adopt_inherited(fd) }.ok())
            .collect(),
        args: spec.args.clone(),
    };
    let case = Case {
        metric: spec.metric,
        wait: spec.wait,
        size: spec.size,
    };
    let mut ready = || ctl.write_all(b"ready\n");
    match spec.role {
        Role::Echo => {}
        Role::Produce { id } => {
            return crate::fanin::produce(&spec.mechanism, id, spec.size, handoff, &mut ready);
        }
        Role::Clients { clients } => {
            return crate::clients::run_clients(clients, handoff, &mut ready);
        }
    }
    let mech = crate::mechs::find(&spec.mechanism)
        .ok_or_else(|| io::Error::other(format!("unknown mechanism {:?}", spec.mechanism)))?;
    let mut link = mech.peer(&case, handoff)?;
    ready()?;
    harness::serve(link.as_mut(), &case)
}
