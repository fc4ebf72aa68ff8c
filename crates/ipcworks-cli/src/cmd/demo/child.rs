//! The demos' child processes: this program started again as the hidden
//! `ipcworks demo-child TOPIC ROLE ARGS…`, tied to the demo so that it dies
//! with it ([`ipcworks::process::spawn_worker`]: Ctrl-C still ends the
//! demo, whose clean-up then runs), and handed the descriptors it needs
//! over a socket on its standard input (`SCM_RIGHTS`).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::process::{Command, Stdio};

use anyhow::Context;
use ipcworks::process::{TiedChild, spawn_worker};
use ipcworks::socket::UnixSeqpacket;

/// The subcommand that starts a demo's child; `main` looks for it before
/// parsing the command line.
pub const CHILD: &str = "demo-child";

/// Starts this program again as the child `role` of demo `topic`, with
/// `args`, tied to this process. `fds` are handed to it (see
/// [`handed_fds`]); with none, its standard input is this process's.
pub(crate) fn start(
    topic: &str,
    role: &str,
    args: &[String],
    fds: &[BorrowedFd<'_>],
) -> anyhow::Result<TiedChild<'static>> {
    let exe = std::env::current_exe().context("finding this program to start it again")?;
    let mut cmd = Command::new(exe);
    cmd.arg(CHILD).arg(topic).arg(role).args(args);
    let handoff = if fds.is_empty() {
        None
    } else {
        let (ours, theirs) = UnixSeqpacket::pair().context("socketpair")?;
        cmd.stdin(Stdio::from(OwnedFd::from(theirs)));
        Some(ours)
    };
    // `cmd`, holding our copy of the child's end, goes with the call.
    let child = spawn_worker(cmd).context("starting the demo's child")?;
    if let Some(ours) = handoff {
        let numbers: Vec<String> = fds.iter().map(|f| f.as_raw_fd().to_string()).collect();
        ours.send_fds(numbers.join(" ").as_bytes(), fds)
            .context("handing descriptors to the child (sendmsg SCM_RIGHTS)")?;
    }
    Ok(child)
}

/// In a demo child: the `n` descriptors its parent handed over, in the
/// order given. Each is placed at the number it has in the parent when
/// that number is free here, as inheritance across `fork` and `exec`
/// would leave it, so the two processes' printed numbers agree.
pub(crate) fn handed_fds(n: usize) -> anyhow::Result<Vec<OwnedFd>> {
    let stdin = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("standard input")?;
    let from_parent = UnixSeqpacket::from(stdin);
    let mut buf = [0u8; 256];
    let (len, fds) = from_parent
        .recv_fds(&mut buf)
        .context("receiving the parent's descriptors (recvmsg SCM_RIGHTS)")?;
    // Its number (a copy of stdin's) may be one of those wanted below.
    drop(from_parent);
    anyhow::ensure!(
        fds.len() == n,
        "the parent handed over {} descriptors, not {n}",
        fds.len()
    );
    let numbers = std::str::from_utf8(&buf[..len])
        .ok()
        .and_then(|s| s.split_whitespace().map(|w| w.parse().ok()).collect())
        .filter(|v: &Vec<RawFd>| v.len() == n)
        .context("the parent's descriptor numbers do not parse")?;
    Ok(fds.into_iter().zip(numbers).map(renumber).collect())
}

/// `fd` moved to number `want` if that is free (`F_DUPFD_CLOEXEC` takes
/// the lowest free number from `want` on), else left where it is.
fn renumber((fd, want): (OwnedFd, RawFd)) -> OwnedFd {
    match rustix::io::fcntl_dupfd_cloexec(&fd, want) {
        Ok(moved) if moved.as_raw_fd() == want => moved,
        _ => fd,
    }
}
