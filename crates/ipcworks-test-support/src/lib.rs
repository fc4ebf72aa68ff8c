//! What a test needs from outside the Rust toolchain — a program, a Python
//! module, root, a mounted file system — decided in one place for every test
//! of the workspace.
//!
//! A test states its needs first:
//!
//! ```no_run
//! use ipcworks_test_support::{require, need};
//!
//! #[test]
//! fn socat_talks_to_our_server() {
//!     require!(need::SOCAT, need::NC);
//!     // … the test proper …
//! }
//! ```
//!
//! When everything is there, the test runs. When something is missing:
//!
//! - normally the test writes **one line** to the real standard error (which
//!   `cargo test` shows without `--nocapture`) naming what is missing and how
//!   to install it, and passes; when the test binary ends, a summary says
//!   what it skipped and why;
//! - with `CI=true` (CI sets it) the test **fails** instead, naming what is
//!   missing, so CI keeps checking everything.
//!
//! A test whose *part* needs something (a look at POSIX queues through
//! `/dev/mqueue`, say) runs the rest anyway: `if have_part("what it
//! checks", &[need::MQUEUE]) { … }` skips only that part, with one line
//! naming it (and with `CI=true` fails).
//!
//! `.ci/run` installs every outside program as root, so a CI run skips
//! nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};

/// Something a test needs that the Rust toolchain does not bring.
#[derive(Clone, Copy, Debug)]
pub enum Need {
    /// A program found on `PATH` under one of these names.
    Program {
        /// The names to look for, the usual first (`chromium`,
        /// `chromium-browser`).
        names: &'static [&'static str],
        /// How to install it, in words a user can act on.
        install: &'static str,
    },
    /// Python 3 modules (`python3 -c "import …"` must succeed).
    Python {
        /// The modules to import.
        modules: &'static [&'static str],
        /// How to install them.
        install: &'static str,
    },
    /// An effective user id of 0 (tests that switch users or mount).
    Root,
    /// A file system mounted at `path`.
    Mount {
        /// The mount point.
        path: &'static str,
        /// How to mount it.
        how: &'static str,
    },
    /// A kernel thread visible in `/proc` (the host's pid namespace: a
    /// container's own pid namespace shows none).
    KernelThread,
}

/// The needs the workspace's tests have, named once.
pub mod need {
    use super::Need;

    /// A C compiler, for the C peers the tests compile.
    pub const CC: Need = Need::Program {
        names: &["cc"],
        install: "apt-get install gcc libc6-dev",
    };
    /// `socat`, a real peer for sockets and FIFOs.
    pub const SOCAT: Need = Need::Program {
        names: &["socat"],
        install: "apt-get install socat",
    };
    /// OpenBSD `nc` (its `-N` and `-U` flags).
    pub const NC: Need = Need::Program {
        names: &["nc"],
        install: "apt-get install netcat-openbsd",
    };
    /// `ipcs` and `ipcrm` from util-linux.
    pub const IPCS: Need = Need::Program {
        names: &["ipcs"],
        install: "apt-get install util-linux",
    };
    /// `unshare` from util-linux (a private mount namespace).
    pub const UNSHARE: Need = Need::Program {
        names: &["unshare"],
        install: "apt-get install util-linux",
    };
    /// Headless Chromium, to load the HTML report.
    pub const CHROMIUM: Need = Need::Program {
        names: &["chromium", "chromium-browser"],
        install: "apt-get install chromium",
    };
    /// Python 3 with `posix_ipc` and `sysv_ipc`, the Python peers.
    pub const PYTHON_IPC: Need = Need::Python {
        modules: &["posix_ipc", "sysv_ipc"],
        install: "python3 -m pip install posix_ipc sysv_ipc",
    };
    /// Python 3 with eclipse-zenoh, a Zenoh program that is not ours, pinned
    /// to the zenoh version in Cargo.lock.
    pub const PYTHON_ZENOH: Need = Need::Python {
        modules: &["zenoh"],
        install: "python3 -m pip install eclipse-zenoh==1.10.2",
    };
    /// `strace`, to see every address a process sends to.
    pub const STRACE: Need = Need::Program {
        names: &["strace"],
        install: "apt-get install strace",
    };
    /// Root, for tests that switch to other users or mount file systems.
    pub const ROOT: Need = Need::Root;
    /// The POSIX message queue file system at /dev/mqueue, where `ls` lists
    /// queues.
    pub const MQUEUE: Need = Need::Mount {
        path: "/dev/mqueue",
        how: "mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue (as root)",
    };
    /// A kernel thread in `/proc` (`kthreadd` and its workers), which a
    /// container's pid namespace hides.
    pub const KERNEL_THREAD: Need = Need::KernelThread;
}

impl Need {
    /// Whether this need is met on this machine.
    pub fn met(&self) -> bool {
        match self {
            Need::Program { .. } => self.program().is_some(),
            Need::Python { modules, .. } => python_has(modules),
            // SAFETY: geteuid has no preconditions and cannot fail.
            Need::Root => (unsafe { libc::geteuid() }) == 0,
            Need::Mount { path, .. } => is_mountpoint(path),
            Need::KernelThread => kernel_thread().is_some(),
        }
    }

    /// The program's path on `PATH`, for a [`Need::Program`]; `None` when
    /// it is missing or this is another kind of need.
    pub fn program(&self) -> Option<PathBuf> {
        let Need::Program { names, .. } = self else {
            return None;
        };
        names.iter().find_map(|n| find_on_path(n))
    }

    /// What is missing, in one phrase with the remedy.
    pub fn describe(&self) -> String {
        match self {
            Need::Program { names, install } => {
                format!("the program `{}` ({install})", names[0])
            }
            Need::Python { modules, install } => {
                format!("python3 with {} ({install})", modules.join(", "))
            }
            Need::Root => "root (run the tests as root: `sudo cargo test --workspace`)".into(),
            Need::Mount { path, how } => format!("{path} mounted ({how})"),
            Need::KernelThread => "a kernel thread visible in /proc (run the tests outside a \
                 container's pid namespace)"
                .into(),
        }
    }
}

/// The pid of a kernel thread visible in `/proc` (one whose flags, field 9
/// of `/proc/PID/stat`, hold `PF_KTHREAD`), if any.
pub fn kernel_thread() -> Option<u32> {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let is_kthread = |pid: u32| {
        let Ok(stat) = std::fs::read(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // Fields after the command name, which ends at the last ')':
        // state (3), ppid, pgrp, session, tty, tpgid, flags (9).
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            return false;
        };
        String::from_utf8_lossy(&stat[close + 1..])
            .split_ascii_whitespace()
            .nth(6)
            .and_then(|f| f.parse::<u64>().ok())
            .is_some_and(|flags| flags & PF_KTHREAD != 0)
    };
    // kthreadd is pid 2 on the host; elsewhere look through /proc.
    if is_kthread(2) {
        return Some(2);
    }
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|&pid| is_kthread(pid))
}

/// Checks `needs` for the running test. Returns `true` when all are met.
///
/// Otherwise, with `CI=true` it panics naming what is missing; without, it
/// writes one line to the real standard error, records the skip for the
/// summary printed when the test binary exits, and returns `false` (the
/// caller returns, and the test passes). Use [`require!`] rather than
/// calling this directly.
pub fn have(needs: &[Need]) -> bool {
    let Some(what) = missing(needs) else {
        return true;
    };
    let test = current_test();
    if ci() {
        panic!("{test}: CI=true and this test needs {what}: install it (`.ci/run` does, as root)");
    }
    let line = format!("SKIPPED {test}: needs {what}; it did not run (CI=true fails instead)\n");
    // The real stderr: libtest captures `eprintln!` but not this.
    let _ = std::io::stderr().write_all(line.as_bytes());
    record(test, what);
    false
}

/// Like [`have`], for one *part* of a test: returns `true` when all of
/// `needs` are met. Otherwise, with `CI=true` it panics; without, it writes
/// one line naming the part that did not run (the rest of the test does)
/// and records it for the summary, and returns `false`, so the caller
/// skips only that part.
pub fn have_part(part: &str, needs: &[Need]) -> bool {
    let Some(what) = missing(needs) else {
        return true;
    };
    let test = current_test();
    if ci() {
        panic!(
            "{test}: CI=true and its part \"{part}\" needs {what}: install it (`.ci/run` does, as root)"
        );
    }
    let line = format!(
        "SKIPPED part of {test} ({part}): needs {what}; the rest of the test ran (CI=true fails instead)\n"
    );
    let _ = std::io::stderr().write_all(line.as_bytes());
    record(format!("{test} (part: {part})"), what);
    false
}

/// Returns from the calling test (which then passes) unless every need is
/// met; see [`have`]. With `CI=true` a missing need fails the test instead.
#[macro_export]
macro_rules! require {
    ($($need:expr),+ $(,)?) => {
        if !$crate::have(&[$($need),+]) {
            return;
        }
    };
}

/// What of `needs` is missing, in one phrase; `None` when all are met.
fn missing(needs: &[Need]) -> Option<String> {
    let missing: Vec<String> = needs
        .iter()
        .filter(|n| !n.met())
        .map(Need::describe)
        .collect();
    (!missing.is_empty()).then(|| missing.join(" and "))
}

/// Whether this is a CI run (`CI=true`, as CI services set it).
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The running test's name: libtest names each test's thread after it.
fn current_test() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("a test")
        .to_string()
}

fn find_on_path(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn python_has(modules: &'static [&'static str]) -> bool {
    // One python3 start per distinct module list and test process.
    static CACHE: Mutex<Vec<(&'static [&'static str], bool)>> = Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, ok)) = cache.iter().find(|(m, _)| *m == modules) {
        return *ok;
    }
    let ok = find_on_path("python3").is_some()
        && std::process::Command::new("python3")
            .arg("-c")
            .arg(format!("import {}", modules.join(", ")))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    cache.push((modules, ok));
    ok
}

/// Whether `path` is a mount point of this process's mount namespace
/// (field 5 of /proc/self/mountinfo).
fn is_mountpoint(path: &str) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Path::new(path).exists();
    };
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| mp == path)
}

/// Skips recorded in this test process: (test, what it needed).
static SKIPPED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn record(test: String, what: String) {
    static SUMMARY: Once = Once::new();
    SKIPPED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push((test, what));
    SUMMARY.call_once(|| {
        // SAFETY: `summary` is an `extern "C" fn()` that never unwinds
        // (it only formats and writes, ignoring errors).
        unsafe { libc::atexit(summary) };
    });
}

/// Printed once when the test binary exits normally (libtest returns from
/// `main` when every test passed): what was skipped, grouped by need.
extern "C" fn summary() {
    let skipped = SKIPPED.lock().unwrap_or_else(|p| p.into_inner());
    let mut by_need: Vec<(&str, Vec<&str>)> = Vec::new();
    for (test, what) in skipped.iter() {
        match by_need.iter_mut().find(|(w, _)| w == what) {
            Some((_, tests)) => tests.push(test),
            None => by_need.push((what, vec![test])),
        }
    }
    let mut text = format!(
        "\nSKIPPED {} test(s) of {} — they need what this machine lacks:\n",
        skipped.len(),
        binary_name()
    );
    for (what, tests) in by_need {
        text += &format!("  {what}: {}\n", tests.join(", "));
    }
    text +=
        "  (`sudo bash .ci/run` installs everything; with CI=true a missing need fails the run)\n";
    let _ = std::io::stderr().write_all(text.as_bytes());
}

fn binary_name() -> String {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .map(|n| match n.rsplit_once('-') {
                // cargo names test binaries NAME-HASH.
                Some((base, hash)) if hash.len() == 16 => base.to_string(),
                _ => n,
            })
            .unwrap_or_else(|| "this test binary".into())
    })
    .clone()
}

/// A stale Unix socket file at `path`, as a server that died leaves it: a
/// stream socket file that nobody listens on, so `connect` to it is
/// refused.
///
/// The socket is bound and closed without ever calling `listen`. Binding a
/// listener and dropping it (`drop(UnixListener::bind(path))`) does not make
/// a stale file reliably: a test thread that spawns a child process in the
/// same instant gives the child a copy of the descriptor table, and until
/// the child's `exec` closes it the listener is alive and the file live.
/// Tests run side by side in one process, so some test is usually spawning.
///
/// # Panics
/// If the socket cannot be made (a path that is not free, or too long).
pub fn stale_socket(path: &Path) {
    let addr = rustix::net::SocketAddrUnix::new(path).expect("a socket path of at most 107 bytes");
    let at = path.display().to_string();
    drop(bound_stream(rustix::net::AddressFamily::UNIX, &addr, &at));
}

/// A stream socket of `family` bound to `addr` (`at` names it in a panic)
/// that never listens: what [`stale_socket`] leaves and [`RefusedPort`]
/// holds.
///
/// # Panics
/// If the socket cannot be made or bound.
fn bound_stream(
    family: rustix::net::AddressFamily,
    addr: &impl rustix::net::addr::SocketAddrArg,
    at: &str,
) -> std::os::fd::OwnedFd {
    use rustix::net::{SocketFlags, SocketType};
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)
        .unwrap_or_else(|e| panic!("socket({family:?}, SOCK_STREAM): {e}"));
    rustix::net::bind(&fd, addr).unwrap_or_else(|e| panic!("bind {at}: {e}"));
    fd
}

/// A TCP port on 127.0.0.1 where every connection is refused, for as long
/// as this value lives: a socket bound to it that never listens.
///
/// Binding a listener only to learn a free port and closing it at once
/// leaves the port to whoever binds next, and, like
/// [`stale_socket`]'s listener, keeps it listening in any child that
/// another test thread spawns in that instant, until the child's `exec`.
/// A bound socket that never listens answers a connection with a reset
/// (`ECONNREFUSED`) wherever a copy of it lives, and holds the port.
#[derive(Debug)]
pub struct RefusedPort {
    _socket: std::os::fd::OwnedFd,
    port: u16,
}

impl RefusedPort {
    /// Binds a fresh port on 127.0.0.1.
    ///
    /// # Panics
    /// If no socket can be made or bound.
    pub fn new() -> RefusedPort {
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let socket = bound_stream(rustix::net::AddressFamily::INET, &any, "127.0.0.1:0");
        let port = match rustix::net::getsockname(&socket).map(std::net::SocketAddr::try_from) {
            Ok(Ok(addr)) => addr.port(),
            other => panic!("getsockname: {other:?}"),
        };
        RefusedPort {
            _socket: socket,
            port,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Default for RefusedPort {
    fn default() -> Self {
        Self::new()
    }
}
