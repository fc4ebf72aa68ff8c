//! Helpers shared by the integration tests: child processes that are this
//! test binary itself, unique names, and cleanup guards.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

const ROLE_VAR: &str = "IPCWORKS_TEST_ROLE";
const ARG_VAR: &str = "IPCWORKS_TEST_ARG";

/// A name no other test (in this or another test process) uses, starting
/// with `ipcworks-test-` so leaks are easy to spot in /dev/shm.
pub fn unique_name(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcworks-test-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The role this process was started for, when it is a child spawned by
/// [`child`]; `None` in the normal test run.
pub fn role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    let arg = std::env::var(ARG_VAR).unwrap_or_default();
    Some((role, arg))
}

/// A test file's `child` test: `as_child!(|role, arg| { … })` does nothing
/// in the normal test run; in a process started by [`child`] it runs the
/// statements in the braces (`role` a `&str`, `arg` the argument as a
/// `String`), then exits 0. Not a closure: the statements run in the test
/// function itself, so what they still hold when they end is not dropped
/// before the exit (a closure would drop it on returning). A role they do
/// not know goes to [`unknown_role`].
macro_rules! as_child {
    (|$role:ident, $arg:pat_param| { $($body:tt)* }) => {
        let Some(($role, $arg)) = $crate::support::role() else {
            return;
        };
        let $role: &str = &$role;
        $($body)*
        std::process::exit(0);
    };
}
pub(crate) use as_child;

/// A child started for a role its `child` test does not know: panics
/// (`unknown role …`, at the caller's line).
#[track_caller]
pub fn unknown_role(role: &str) -> ! {
    panic!("unknown role {role}")
}

/// A command that runs this test binary as a child, executing only the test
/// `test_path` (e.g. `"shm::child"`) with the given role and argument.
pub fn child(test_path: &str, role: &str, arg: &str) -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    let mut cmd = Command::new(exe);
    cmd.args([
        test_path,
        "--exact",
        "--nocapture",
        "--test-threads=1",
        "-q",
    ])
    .env(ROLE_VAR, role)
    .env(ARG_VAR, arg)
    .stdin(Stdio::null());
    cmd
}

/// A spawned child that is killed and reaped if the test fails before it
/// has waited for it, so no process outlives the test.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn spawn(mut cmd: Command) -> Self {
        KillOnDrop(Some(cmd.spawn().expect("spawn child")))
    }

    /// Spawns `cmd` with piped stdout and waits until the child prints a
    /// line containing `ready` (the test harness prints its own lines
    /// first). Panics if the child ends before.
    pub fn spawn_ready(mut cmd: Command) -> Self {
        use std::io::BufRead;
        cmd.stdout(Stdio::piped());
        let mut me = KillOnDrop::spawn(cmd);
        let out =
            me.0.as_mut()
                .expect("child")
                .stdout
                .take()
                .expect("piped stdout");
        let mut lines = std::io::BufReader::new(out).lines();
        loop {
            match lines.next() {
                Some(Ok(l)) if l.contains("ready") => break,
                Some(Ok(_)) => continue,
                _ => panic!("child ended before it was ready"),
            }
        }
        // Keep draining in the background so the child never blocks on a
        // full pipe or dies of a broken one.
        std::thread::spawn(move || for _ in lines {});
        me
    }

    pub fn pid(&self) -> u32 {
        self.0.as_ref().expect("child").id()
    }

    /// Waits at most `limit` (generous: catches hangs, not slowness) and
    /// returns the exit status.
    pub fn wait_for(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = self.0.as_mut().expect("child");
        let start = Instant::now();
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.0 = None;
                return st;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                self.0 = None;
                panic!("child did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Sends SIGKILL and reaps the child.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Removes `/dev/shm/NAME` entries when dropped, also when a test panics.
pub struct ShmCleanup(pub Vec<String>);

impl Drop for ShmCleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            // Through the library, so its registry entry goes too.
            let _ = ipcworks::shm::Segment::remove(n);
            let _ = std::fs::remove_file(format!("/dev/shm/{n}"));
        }
    }
}

/// Polls `cond` every millisecond until it holds or `limit` passes.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}

/// Restores the default `SIGPIPE` disposition (terminate) in this process:
/// for children that check a path does not depend on `SIGPIPE` being
/// ignored.
pub fn default_sigpipe() {
    // SAFETY: SIG_DFL runs no code of ours; the struct is zeroed, then its
    // mask emptied, before sigaction reads it.
    let rc = unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGPIPE, &sa, std::ptr::null_mut())
    };
    assert_eq!(rc, 0, "sigaction: {}", std::io::Error::last_os_error());
}

/// Byte offset of slot 0's record in a native queue made with the default
/// relay window (white-box tests; see `queue/layout.rs`): the 192-byte
/// header, then the relayed-message table of 256 entries of 32 bytes.
pub const QUEUE_SLOT0: usize = 192 + 256 * 32;

/// Claims slot 0 of the native queue mapped at `seg` as a sender does
/// (white-box; offsets as [`QUEUE_SLOT0`] says): FREE → WRITING by this
/// process (state in bits 62..64, pid in bits 40..62), then the owner
/// record. Panics if the slot is not free.
pub fn claim_queue_slot0(seg: &ipcworks::shm::Segment) {
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
    // SAFETY: slot 0's record lies at QUEUE_SLOT0 (word, then owner),
    // 8-aligned in the mapping; atomics.
    let (word, owner) = unsafe {
        (
            &*(seg.as_ptr().add(QUEUE_SLOT0) as *const AtomicU64),
            &*(seg.as_ptr().add(QUEUE_SLOT0 + 8) as *const AtomicU64),
        )
    };
    let pid = std::process::id() as u64;
    assert_eq!(word.load(SeqCst) >> 62, 0, "slot 0 is FREE");
    word.store((1 << 62) | (pid << 40), SeqCst);
    owner.store(ipcworks::process::Identity::process().raw(), SeqCst);
}

/// Lowers this process's limit on open descriptors to those open now
/// plus `room` (the hard limit unchanged): a server child then runs out
/// of descriptors after `room` more.
pub fn limit_open_files(room: u64) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let hard = getrlimit(Resource::Nofile).maximum;
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + room),
            maximum: hard,
        },
    )
    .unwrap();
}

/// A multi-threaded tokio runtime of two workers, as the async tests use
/// (the machine has two cores).
#[cfg(feature = "tokio")]
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}
