//! Starting the peer process: the harness re-executes a binary (by
//! default its own, `std::env::current_exe()`) with the environment
//! variable [`PEER_ENV`] holding what to do; that binary calls
//! [`run_if_peer`](crate::run_if_peer) first thing (its side is in
//! [`crate::peer_entry`]).
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::harness::{self, Case};
use crate::schema::{Metric, Wait};

/// The environment variable that turns a process into a peer.
pub const PEER_ENV: &str = "IPCWORKS_BENCH_PEER";

/// How to start the peer: a program and its leading arguments.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The program (usually `current_exe()`).
    pub program: PathBuf,
    /// Arguments that lead it to call [`run_if_peer`](crate::run_if_peer) (e.g. `["bench"]`).
    pub args: Vec<OsString>,
}

impl Launcher {
    /// This very binary, with `args`.
    pub fn current_exe(args: &[&str]) -> io::Result<Launcher> {
        Ok(Launcher {
            program: std::env::current_exe()?,
            args: args.iter().map(OsString::from).collect(),
        })
    }
}

/// What a peer does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Opens its end of the mechanism and answers the parent
    /// ([`harness::serve`]).
    #[default]
    Echo,
    /// Fan-in producer number `id` ([`crate::fanin`]).
    Produce {
        /// The producer's number, from 0.
        id: u32,
    },
    /// The socket server's clients, on threads ([`crate::clients`]).
    Clients {
        /// How many.
        clients: u32,
    },
}

/// What the peer is told, as JSON in [`PEER_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Spec {
    #[serde(default)]
    pub(crate) role: Role,
    pub(crate) mechanism: String,
    pub(crate) metric: Metric,
    pub(crate) wait: Wait,
    pub(crate) size: usize,
    pub(crate) cpu: Option<usize>,
    pub(crate) yield_core: bool,
    pub(crate) ctl_fd: RawFd,
    pub(crate) fds: Vec<RawFd>,
    pub(crate) args: Vec<String>,
}

/// A running peer: killed and reaped on drop unless it exited.
pub struct Peer {
    child: Option<Child>,
    ctl: OwnedFd,
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts the peer for `case` of `mechanism`, handing it `setup`'s
/// descriptors `fds` and `args` (the parent's copies are closed after).
pub fn spawn(
    launcher: &Launcher,
    mechanism: &str,
    case: &Case,
    cpu: Option<usize>,
    fds: Vec<OwnedFd>,
    args: &[String],
) -> io::Result<Peer> {
    spawn_as(launcher, mechanism, case, cpu, fds, args, Role::Echo)
}

/// [`spawn`] a peer in another [`Role`].
pub fn spawn_as(
    launcher: &Launcher,
    mechanism: &str,
    case: &Case,
    cpu: Option<usize>,
    fds: Vec<OwnedFd>,
    args: &[String],
    role: Role,
) -> io::Result<Peer> {
    let (ctl_r, ctl_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let spec = Spec {
        role,
        mechanism: mechanism.to_string(),
        metric: case.metric,
        wait: case.wait,
        size: case.size,
        cpu,
        yield_core: harness::yields(),
        ctl_fd: ctl_w.as_raw_fd(),
        fds: fds.iter().map(|f| f.as_raw_fd()).collect(),
        args: args.to_vec(),
    };
    let mut inherit: Vec<RawFd> = spec.fds.clone();
    inherit.push(ctl_w.as_raw_fd());
    let mut cmd = Command::new(&launcher.program);
    cmd.args(&launcher.args)
        .env(
            PEER_ENV,
            serde_json::to_string(&spec).map_err(io::Error::other)?,
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl(F_SETFD), which is async-signal-safe; it allocates
    // nothing (the Vec was built before fork) and touches no lock.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &inherit {
                // SAFETY: `fd` is open in the parent at fork time (the
                // parent holds the OwnedFds until after spawn returns), so
                // it is open in this child too.
                let b = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(b, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    drop(fds);
    drop(ctl_w);
    Ok(Peer {
        child: Some(child),
        ctl: ctl_r,
    })
}

impl Peer {
    /// The child's process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Waits (up to `limit`) for the peer to say it is ready; its error
    /// message if it failed.
    pub fn wait_ready(&mut self, limit: Duration) -> io::Result<()> {
        let line = read_line(&self.ctl, limit)?;
        match line.strip_prefix("ready") {
            Some(_) => Ok(()),
            None if line.is_empty() => Err(io::Error::other(format!(
                "the peer exited before it was ready ({})",
                self.reap(Duration::from_secs(2))
            ))),
            None => Err(io::Error::other(
                line.trim_start_matches("error: ").to_string(),
            )),
        }
    }

    /// Waits (up to `limit`) for the peer to exit; kills it after that.
    /// Ok when it exited with status 0.
    pub fn finish(&mut self, limit: Duration) -> io::Result<()> {
        let s = self.reap(limit);
        if s == "exit status: 0" {
            Ok(())
        } else {
            let msg = read_line(&self.ctl, Duration::from_millis(100)).unwrap_or_default();
            Err(io::Error::other(format!(
                "the peer ended badly ({s}) {msg}"
            )))
        }
    }

    fn reap(&mut self, limit: Duration) -> String {
        let Some(mut c) = self.child.take() else {
            return "already reaped".into();
        };
        let end = Instant::now() + limit;
        loop {
            match c.try_wait() {
                Ok(Some(st)) => return st.to_string(),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(1)),
                _ => {
                    let _ = c.kill();
                    return match c.wait() {
                        Ok(st) => format!("killed after {limit:?}: {st}"),
                        Err(e) => format!("lost: {e}"),
                    };
                }
            }
        }
    }
}

/// Reads one line from `fd`, giving up after `limit` (empty at end of
/// file).
fn read_line(fd: &OwnedFd, limit: Duration) -> io::Result<String> {
    use rustix::event::{PollFd, PollFlags, poll};
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    loop {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer did not answer within {limit:?}"),
            ));
        }
        let ts = rustix::time::Timespec::try_from(left).map_err(io::Error::other)?;
        let mut pfd = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut pfd, Some(&ts)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
        let mut b = [0u8; 256];
        let n = match rustix::io::read(fd, &mut b) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
        out.extend_from_slice(&b[..n]);
        if let Some(i) = out.iter().position(|&c| c == b'\n') {
            out.truncate(i);
            return Ok(String::from_utf8_lossy(&out).into_owned());
        }
    }
}

/// Kills the peer and ends this process if a case runs past its limit: a
/// peer that died while the parent waits on shared memory would otherwise
/// hang the run for ever.
pub struct Watchdog {
    done: Arc<AtomicBool>,
}

impl Watchdog {
    /// Arms the watchdog for `limit`.
    pub fn arm(what: String, pid: Option<u32>, limit: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        std::thread::spawn(move || {
            let end = Instant::now() + limit;
            while Instant::now() < end {
                if d.load(Ordering::Acquire) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(pid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
            // Give the measuring thread a chance to see the peer's death
            // (pipes and sockets report it); shared memory does not.
            std::thread::sleep(Duration::from_secs(3));
            if !d.load(Ordering::Acquire) {
                eprintln!("ipcworks bench: {what} hung for {limit:?}; giving up on the whole run");
                std::process::exit(1);
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Release);
    }
}
