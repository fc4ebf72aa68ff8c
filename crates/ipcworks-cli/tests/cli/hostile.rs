//! The `ipcworks` command against a hostile or unlucky neighbourhood: names
//! planted by another user, a busy listener on the socket path, a file that
//! is not what its name says. The real binary, real processes, real users
//! (the tests that need two users run as root and drop to unprivileged
//! uids in their children).

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use ipcworks_test_support::{need, require};

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

/// An unused uid for the squatter, and `nobody` for the victim.
const SQUATTER: u32 = 64000;
const VICTIM: u32 = 65534;

/// Runs `cmd` to its end, at most `limit` (generous: catches hangs only),
/// killing it if it takes longer; returns its output and whether it ended
/// on its own.
fn run_bounded(mut cmd: Command, limit: Duration) -> (Output, bool) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let mut finished = true;
    while child.try_wait().expect("try_wait").is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            finished = false;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().expect("wait"), finished)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A System V key nobody uses now: created exclusively (as root, by the
/// library) and removed again, so the test can hand it to the squatter.
fn free_sysv_key() -> i32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    loop {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let key = (((std::process::id() << 8) ^ n.wrapping_mul(0x9E37_79B9)) & 0x3fff_ffff) as i32
            | 0x4000_0000;
        if let Ok(mut q) = ipcworks::mq::sysv::Queue::create(key) {
            q.remove().unwrap();
            return key;
        }
    }
}

/// Removes the System V queue under a key on drop, also when a test fails.
struct SysvKey(i32);
impl Drop for SysvKey {
    fn drop(&mut self) {
        let _ = Command::new("ipcrm")
            .args(["-Q", &self.0.to_string()])
            .stderr(Stdio::null())
            .status();
    }
}

/// A directory other users can enter, removed on drop.
struct SharedDir(std::path::PathBuf);
impl SharedDir {
    fn new(what: &str) -> Self {
        use std::os::unix::fs::PermissionsExt;
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ipcworks-test-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        SharedDir(dir)
    }
}
impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The squatter's tool, in C: `squat create KEY VICTIM` creates the queue
/// exclusively (mode 0600) and hands it to uid/gid VICTIM with IPC_SET;
/// `squat read KEY` prints a waiting message or `nothing`.
const SQUAT_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/msg.h>
int main(int argc, char **argv) {
    if (argc < 3) return 2;
    key_t key = (key_t)atol(argv[2]);
    if (strcmp(argv[1], "create") == 0) {
        int id = msgget(key, IPC_CREAT | IPC_EXCL | 0600);
        if (id < 0) { perror("msgget"); return 1; }
        struct msqid_ds ds;
        if (msgctl(id, IPC_STAT, &ds)) { perror("IPC_STAT"); return 1; }
        ds.msg_perm.uid = (uid_t)atol(argv[3]);
        ds.msg_perm.gid = (gid_t)atol(argv[3]);
        if (msgctl(id, IPC_SET, &ds)) { perror("IPC_SET"); return 1; }
        return 0;
    }
    int id = msgget(key, 0);
    if (id < 0) { perror("msgget"); return 1; }
    struct { long mtype; char mtext[256]; } m;
    ssize_t n = msgrcv(id, &m, sizeof m.mtext - 1, 0, IPC_NOWAIT);
    if (n < 0) { printf("nothing\n"); return 0; }
    m.mtext[n] = 0;
    printf("%s\n", m.mtext);
    return 0;
}
"#;

/// Compiles [`SQUAT_C`] into a directory other users can enter.
fn squat_tool() -> (std::path::PathBuf, SharedDir) {
    let dir = SharedDir::new("squat");
    let src = dir.0.join("squat.c");
    std::fs::write(&src, SQUAT_C).unwrap();
    let exe = dir.0.join("squat");
    let out = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap();
    assert!(out.status.success(), "cc: {}", text(&out.stderr));
    (exe, dir)
}

fn as_user(uid: u32, program: &std::path::Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args).uid(uid).gid(uid);
    let (out, done) = run_bounded(cmd, Duration::from_secs(60));
    assert!(done, "{} hung: {}", program.display(), text(&out.stderr));
    out
}

/// Issue 16 item 1: another user creates the queue with IPC_EXCL, hands
/// it to the victim with IPC_SET and keeps the creator's access. The
/// victim's `ipcworks send` must refuse it, naming the creator, and the
/// squatter must find nothing to read.
#[test]
fn send_refuses_a_system_v_queue_planted_by_another_user() {
    require!(need::ROOT, need::CC, need::IPCS);
    let (squat, _dir) = squat_tool();
    let key = free_sysv_key();
    let _cleanup = SysvKey(key);
    let k = key.to_string();
    let out = as_user(SQUATTER, &squat, &["create", &k, &VICTIM.to_string()]);
    assert!(out.status.success(), "squatter: {}", text(&out.stderr));

    let mut send = Command::new(BIN);
    send.args(["send", &format!("sysv:{key}"), "secret"])
        .uid(VICTIM)
        .gid(VICTIM);
    let (out, done) = run_bounded(send, Duration::from_secs(60));
    assert!(done, "send hung");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "the victim sent its secret");
    assert!(err.contains(&format!("created by uid {SQUATTER}")), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");

    let out = as_user(SQUATTER, &squat, &["read", &k]);
    assert_eq!(text(&out.stdout).trim(), "nothing", "{}", text(&out.stderr));
}

/// A live listener at `path` with `listen(0)` and its backlog filled by
/// connections nobody accepts. Returns the listener and its clients.
fn busy_listener(path: &std::path::Path) -> (std::os::fd::OwnedFd, Vec<std::os::fd::OwnedFd>) {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let addr = SocketAddrUnix::new(path).unwrap();
    let sock = |flags| {
        rustix::net::socket_with(AddressFamily::UNIX, SocketType::STREAM, flags, None).unwrap()
    };
    let l = sock(SocketFlags::CLOEXEC);
    rustix::net::bind(&l, &addr).unwrap();
    rustix::net::listen(&l, 0).unwrap();
    let mut pending = Vec::new();
    for _ in 0..64 {
        let c = sock(SocketFlags::CLOEXEC | SocketFlags::NONBLOCK);
        match rustix::net::connect(&c, &addr) {
            Ok(()) => pending.push(c),
            Err(rustix::io::Errno::AGAIN) => return (l, pending),
            Err(e) => panic!("connect: {e}"),
        }
    }
    panic!("the backlog never filled");
}

/// Issue 16 item 4: `serve unix:PATH` over a live listener too busy to
/// take a connection says so at once, instead of hanging in its probe.
#[test]
fn serve_over_a_busy_live_listener_fails_at_once() {
    let dir = SharedDir::new("busy");
    let path = dir.0.join("busy.sock");
    let (_l, _pending) = busy_listener(&path);
    let mut serve = Command::new(BIN);
    serve.args(["serve", &format!("unix:{}", path.display()), "--echo"]);
    let (out, done) = run_bounded(serve, Duration::from_secs(30));
    assert!(done, "serve hung on the busy listener's path");
    let err = text(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("live server"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(path.exists(), "the live listener's file is left alone");
}

/// Issue 17 item 2: `sem value/post --posix` on an empty
/// `/dev/shm/sem.NAME` of ours (mode 0600) is a one-line error, not a
/// SIGBUS death inside glibc.
#[test]
fn sem_posix_on_an_empty_semaphore_file_is_an_error_not_sigbus() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::ExitStatusExt;
    let name = format!("ipcworks-test-cli-{}-empty-sem", std::process::id());
    let path = format!("/dev/shm/sem.{name}");
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _rm = Rm(path.clone());
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    for op in ["value", "post"] {
        let mut cmd = Command::new(BIN);
        cmd.args(["sem", op, &name, "--posix"]);
        let (out, done) = run_bounded(cmd, Duration::from_secs(30));
        assert!(done, "sem {op} hung");
        assert_eq!(
            out.status.signal(),
            None,
            "sem {op} --posix died: {}",
            out.status
        );
        assert_eq!(out.status.code(), Some(1), "sem {op}");
        let err = text(&out.stderr);
        assert!(err.contains("corrupted") && err.contains("32"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
}
