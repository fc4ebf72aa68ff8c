//! Who is this process or thread, and is another one still alive?
//!
//! A pid alone is a poor name for a process: after it dies the kernel hands
//! the number to someone else. ipcworks names a process or thread by its id
//! *and* its start time (field 22 of `/proc/ID/stat`, in clock ticks since
//! boot), which a reused id cannot fake. Zombies (dead, not yet reaped)
//! count as dead.
//!
//! Ids are those of the caller's pid namespace: processes that share memory
//! across pid namespaces cannot judge each other's liveness.

use std::cell::Cell;
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};

/// `getpid()`.
#[doc(alias = "getpid")]
pub fn pid() -> u32 {
    rustix::process::getpid().as_raw_nonzero().get() as u32
}

/// `kill(getpid(), SIGKILL)`: ends this process at once, as `kill -9`
/// from outside would (no unwinding, no exit handlers, no core dump).
#[doc(alias = "kill")]
pub fn kill_self() -> ! {
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    // SIGKILL cannot be caught or ignored; this is never reached.
    std::process::abort()
}

/// `gettid()`.
#[doc(alias = "gettid")]
pub fn tid() -> u32 {
    rustix::thread::gettid().as_raw_nonzero().get() as u32
}

/// What `/proc/ID/stat` says of a process or thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Running or sleeping, with its start time in clock ticks since boot.
    Alive {
        /// Field 22 of `/proc/ID/stat`.
        start: u64,
    },
    /// No such id, or a zombie.
    Dead,
    /// `/proc` could not be read (hidden by `hidepid`, not mounted, …).
    Unknown,
}

/// Reads `/proc/ID/stat` (works for thread ids too) and returns liveness and
/// start time.
#[doc(alias = "/proc/pid/stat")]
pub fn status(id: u32) -> Status {
    if id == 0 {
        return Status::Dead;
    }
    let path = format!("/proc/{id}/stat");
    match std::fs::read(&path) {
        Ok(bytes) => parse_stat(&bytes).unwrap_or(Status::Unknown),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Status::Dead,
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Status::Dead,
        Err(_) => Status::Unknown,
    }
}

/// The fields of a `/proc/ID/stat` text from field 3 (the state) on. The
/// command name before them may hold spaces, parentheses and bytes that
/// are not UTF-8, so they start after the last `)`.
pub fn stat_fields(bytes: &[u8]) -> Option<std::str::SplitAsciiWhitespace<'_>> {
    let close = bytes.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(bytes.get(close + 1..)?).ok()?;
    Some(rest.split_ascii_whitespace())
}

/// `PF_KTHREAD`, the flag (field 9 of `/proc/ID/stat`) of a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

/// Whether process `id` is a kernel thread (its flags, field 9 of
/// `/proc/ID/stat`, hold `PF_KTHREAD`): it runs only in the kernel and has
/// no user memory. `false` when `/proc/ID/stat` cannot be read.
pub fn is_kernel_thread(id: u32) -> bool {
    std::fs::read(format!("/proc/{id}/stat"))
        .ok()
        .and_then(|b| stat_fields(&b)?.nth(6)?.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_KTHREAD != 0)
}

/// Parses the text of `/proc/ID/stat`: state is field 3, start time is
/// field 22. Allocates nothing (callable between fork and exec).
pub(crate) fn parse_stat(bytes: &[u8]) -> Option<Status> {
    let mut fields = stat_fields(bytes)?;
    let state = fields.next()?; // field 3
    if state == "Z" || state == "X" || state == "x" {
        return Some(Status::Dead);
    }
    // Fields 4..=21 come next; field 22 is the 19th after the state.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Status::Alive { start })
}

/// A process or thread named so that id reuse cannot fool a liveness check:
/// its id and the low 32 bits of its start time, packed in one `u64` that
/// fits an atomic word in shared memory. `0` means "nobody".
///
/// (Public as `ipcworks::process::Identity`; it was
/// `ipcworks::sys::proc::Identity` while the kernel layer was public.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity(u64);

impl Identity {
    /// Nobody.
    pub const NONE: Identity = Identity(0);

    /// Packs an id and start time.
    pub fn new(id: u32, start: u64) -> Self {
        Identity(((id as u64) << 32) | (start & 0xFFFF_FFFF))
    }

    /// Unpacks a value read from shared memory (any value is accepted; a
    /// garbage one names a process that is most likely dead).
    pub fn from_raw(raw: u64) -> Self {
        Identity(raw)
    }

    /// The packed value, for storing in an atomic.
    pub fn raw(self) -> u64 {
        self.0
    }

    /// The process or thread id.
    pub fn id(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Whether this names nobody.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }

    /// The calling process (cached; refreshed in a forked child).
    #[inline]
    pub fn process() -> Self {
        // Hot path (every native queue operation): a per-thread copy of the
        // process-wide cache, checked against the fork generation like
        // `thread()`.
        PROCESS_TLS.with(|c| {
            let (gen_, id) = c.get();
            if gen_ == FORK_GENERATION.load(Ordering::Relaxed) && !id.is_none() {
                return id;
            }
            let now = FORK_GENERATION.load(Ordering::Relaxed);
            let id = cached(&PROCESS_CACHE, pid);
            c.set((now, id));
            id
        })
    }

    /// The calling thread (cached per thread; refreshed in a forked child).
    #[inline]
    pub fn thread() -> Self {
        // Hot path (every mutex lock): a cached entry implies the fork hook
        // was registered before it was stored, so it needs no `Once` check.
        THREAD_CACHE.with(|c| {
            let (gen_, id) = c.get();
            if gen_ == FORK_GENERATION.load(Ordering::Relaxed) && !id.is_none() {
                return id;
            }
            Self::thread_slow(c)
        })
    }

    #[cold]
    fn thread_slow(c: &Cell<(u32, Identity)>) -> Self {
        ensure_fork_hook();
        let now = FORK_GENERATION.load(Ordering::Relaxed);
        let id = compute(tid());
        c.set((now, id));
        id
    }

    /// Whether the process or thread this names is still running, judged by
    /// `/proc/ID/stat` and the start time. When `/proc` cannot tell (hidden
    /// by `hidepid`), the answer is "alive": wrongly declaring a holder
    /// dead would break mutual exclusion, wrongly keeping it alive only
    /// delays recovery.
    pub fn is_alive(self) -> bool {
        if self.is_none() {
            return false;
        }
        match status(self.id()) {
            Status::Alive { start } => (start & 0xFFFF_FFFF) == (self.0 & 0xFFFF_FFFF),
            Status::Dead => false,
            Status::Unknown => true,
        }
    }

    /// A pidfd of the process this names (`pidfd_open`), confirmed: the
    /// descriptor is opened first, then the start time in `/proc` is
    /// compared with the one this identity recorded, so a process that
    /// reused the pid is never watched (a pidfd names the process that
    /// held the pid when it was opened; if that process is the one we
    /// recorded now, it was then too).
    ///
    /// [`Watch::Dead`] when the process is gone or the pid was reused;
    /// [`Watch::Unknown`] when neither a pidfd nor `/proc` can tell (no
    /// pidfd support, `/proc` hidden, or an identity without a start time):
    /// callers then fall back to looking through `/proc` now and then.
    pub(crate) fn pidfd(self) -> Watch {
        self.confirmed(super::poll::pidfd_open(self.id()))
    }

    /// [`pidfd`](Self::pidfd) for a *thread* identity (a mutex holder):
    /// `pidfd_open(tid, PIDFD_THREAD)`, readable when that thread exits;
    /// on a kernel without it (before 6.9), a thread-group leader's own
    /// pidfd (readable when its process exits), else [`Watch::Unknown`].
    pub(crate) fn pidfd_thread(self) -> Watch {
        let fd = match super::poll::pidfd_open_thread(self.id()) {
            Err(rustix::io::Errno::INVAL) if self.id() == pid_of_thread(self.id()) => {
                super::poll::pidfd_open(self.id())
            }
            r => r,
        };
        self.confirmed(fd)
    }

    /// A pidfd just opened for this identity's id, confirmed against the
    /// start time (see [`pidfd`](Self::pidfd)).
    fn confirmed(self, fd: Result<std::os::fd::OwnedFd, rustix::io::Errno>) -> Watch {
        if self.is_none() {
            return Watch::Dead;
        }
        let fd = match fd {
            Ok(fd) => fd,
            Err(rustix::io::Errno::SRCH) => return Watch::Dead,
            Err(_) => return Watch::Unknown,
        };
        match status(self.id()) {
            Status::Alive { start } if (start & 0xFFFF_FFFF) == (self.0 & 0xFFFF_FFFF) => {
                // A zombie reads as Dead above; a process that died after
                // the look turns the pidfd readable, which the watcher sees.
                Watch::Alive(fd)
            }
            Status::Alive { .. } | Status::Dead => Watch::Dead,
            Status::Unknown => Watch::Unknown,
        }
    }
}

/// The thread-group id of thread `tid` (`Tgid:` in `/proc/TID/status`);
/// 0 when it cannot be read.
fn pid_of_thread(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What [`Identity::pidfd`] found.
#[derive(Debug)]
pub(crate) enum Watch {
    /// The process runs; the descriptor turns readable when it exits.
    Alive(std::os::fd::OwnedFd),
    /// Gone, or its pid now names another process.
    Dead,
    /// Cannot tell (see [`Identity::pidfd`]).
    Unknown,
}

fn compute(id: u32) -> Identity {
    match status(id) {
        Status::Alive { start } => Identity::new(id, start),
        // We are running, so we are alive; without /proc the start time is
        // unknown and only the id protects us.
        _ => Identity::new(id, 0),
    }
}

// The process identity, cached with the fork generation it was computed in.
static PROCESS_CACHE: std::sync::Mutex<(u32, Identity)> =
    std::sync::Mutex::new((u32::MAX, Identity::NONE));

thread_local! {
    static THREAD_CACHE: Cell<(u32, Identity)> = const { Cell::new((u32::MAX, Identity::NONE)) };
    static PROCESS_TLS: Cell<(u32, Identity)> = const { Cell::new((u32::MAX, Identity::NONE)) };
}

/// Bumped in the child after every `fork()`, so cached identities of the
/// parent are never used by the child.
static FORK_GENERATION: AtomicU32 = AtomicU32::new(0);
static ATFORK: Once = Once::new();

extern "C" fn bump_fork_generation() {
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

fn cached(cache: &std::sync::Mutex<(u32, Identity)>, id: fn() -> u32) -> Identity {
    ensure_fork_hook();
    let now = FORK_GENERATION.load(Ordering::Relaxed);
    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
    if c.0 != now || c.1.is_none() {
        *c = (now, compute(id()));
    }
    c.1
}

/// Registers the fork hook; called before any thread identity is cached.
#[inline]
pub(crate) fn ensure_fork_hook() {
    ATFORK.call_once(|| {
        // SAFETY: pthread_atfork only records function pointers; the child
        // handler touches one atomic, which is async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(bump_fork_generation)) };
    });
}

/// CPUs online in the system (`/sys/devices/system/cpu/online`, what
/// `sysconf(_SC_NPROCESSORS_ONLN)` reads), whatever this thread's affinity:
/// a process pinned to one core may still have a peer running on another.
/// Without sysfs, the CPUs this process may use. At least 1.
pub fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| count_cpu_list(&s))
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

/// The number of CPUs in a kernel CPU list such as `0-3,8,10-11`; `None`
/// if it does not parse.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut n = 0usize;
    for part in list.trim().split(',') {
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (lo.parse::<usize>().ok()?, hi.parse::<usize>().ok()?),
            None => {
                let c = part.parse::<usize>().ok()?;
                (c, c)
            }
        };
        n = n.checked_add(hi.checked_sub(lo)? + 1)?;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_count_ranges_and_singles() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-3,8,10-11"), Some(7));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("0-x"), None);
        // This machine: the list agrees with what the scheduler offers a
        // process not pinned to fewer (at least as many).
        let online = online_cpus();
        assert!(online >= 1);
        assert!(online >= std::thread::available_parallelism().map_or(1, |n| n.get()));
    }

    #[test]
    fn parses_names_with_spaces_and_parens() {
        let line = b"1234 (a b) (c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 19 20";
        assert_eq!(parse_stat(line), Some(Status::Alive { start: 424242 }));
        let z = b"1234 (x) Z 1 2 3";
        assert_eq!(parse_stat(z), Some(Status::Dead));
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn self_is_alive_and_pid_zero_is_not() {
        assert!(Identity::process().is_alive());
        assert!(Identity::thread().is_alive());
        assert!(!Identity::NONE.is_alive());
        // Same pid, another start time: a process that reused our pid.
        let Status::Alive { start } = status(pid()) else {
            panic!("/proc/self/stat unreadable")
        };
        assert!(Identity::new(pid(), start).is_alive());
        assert!(!Identity::new(pid(), start ^ 1).is_alive());
    }
}
