//! The audit of `tokio_hostile` (issue 21) for the descriptor-based
//! pieces: an [`AsyncServer`](ipcworks::tokio::AsyncServer) in a child
//! process against stalling, flooding and vanishing clients, and the
//! async standard input and output over one shared open file
//! description.

use std::time::Duration;

use crate::support::{self, KillOnDrop, runtime};

/// Generous: catches a hang, not slowness.
const LIMIT: Duration = Duration::from_secs(10);
#[test]
fn child() {
    support::as_child!(|role, _arg| {
        match role {
            #[cfg(feature = "server")]
            "server" => server_child(&_arg),
            // Standard input and output are one socket: the async stdin and
            // stdout made and dropped in both orders, dropped in a panicking
            // task, and after a cancelled read; prints the O_NONBLOCK flag of
            // descriptor 0 after each ("STEP name flag") on standard error.
            "stdio-shared" => stdio_child(),
            other => support::unknown_role(other),
        }
    });
}

/// Whether descriptor `fd`'s open file description is non-blocking.
fn nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    rustix::fs::fcntl_getfl(fd)
        .expect("fcntl(F_GETFL)")
        .contains(rustix::fs::OFlags::NONBLOCK)
}

fn stdio_child() {
    use std::os::fd::AsFd;
    use tokio::io::AsyncReadExt;
    let fd0 = || nonblocking(std::io::stdin().as_fd());
    let step = |name: &str, nb: bool| eprintln!("STEP {name} {nb}");
    runtime().block_on(async {
        step("start", fd0());
        let i = ipcworks::tokio::stdin().unwrap();
        let o = ipcworks::tokio::stdout().unwrap();
        drop(i);
        // The stdout still in use needs the shared description as it was.
        step("stdout-alive", fd0());
        drop(o);
        step("in-then-out", fd0());
        let i = ipcworks::tokio::stdin().unwrap();
        let o = ipcworks::tokio::stdout().unwrap();
        drop(o);
        step("stdin-alive", fd0());
        drop(i);
        step("out-then-in", fd0());
        let r = tokio::spawn(async {
            let _i = ipcworks::tokio::stdin().unwrap();
            let _o = ipcworks::tokio::stdout().unwrap();
            panic!("a task panics holding the async stdin and stdout");
        })
        .await;
        assert!(r.is_err());
        step("panic", fd0());
        let mut i = ipcworks::tokio::stdin().unwrap();
        let mut buf = [0u8; 8];
        let r = tokio::time::timeout(Duration::from_millis(20), i.read(&mut buf)).await;
        assert!(r.is_err(), "read something: {r:?}");
        drop(i);
        step("cancelled", fd0());
        // One of two async stdins handed back: the other still needs the
        // description non-blocking; the one handed back does not count
        // again when it drops.
        let a = ipcworks::tokio::stdin().unwrap();
        let b = ipcworks::tokio::stdin().unwrap();
        let inner = a.into_inner().unwrap();
        step("into-inner-other-alive", fd0());
        drop(b);
        step("into-inner-last-gone", fd0());
        let c = ipcworks::tokio::stdin().unwrap();
        drop(inner);
        step("inner-dropped-new-alive", fd0());
        drop(c);
        step("all-gone", fd0());
    });
}

/// Open descriptors and threads of this process.
fn fds_and_threads() -> (usize, usize) {
    let n = |d: &str| std::fs::read_dir(d).unwrap().count();
    (n("/proc/self/fd"), n("/proc/self/task"))
}

/// An `AsyncServer` on the socket PATH (frames, at most 4 clients, echo,
/// the default idle timeout of 60 s, which the test never reaches;
/// a message "slow" is answered after 300 ms): prints its descriptors,
/// threads and the runtime's live tasks before it binds ("BEFORE"),
/// "ready", stops when a line comes on standard input, then prints how
/// long the stop took ("STOPPED ms"), the same counts ("AFTER") and its
/// stats.
#[cfg(feature = "server")]
fn server_child(path: &str) {
    use ipcworks::socket::{Peer, ServerOptions};
    use ipcworks::tokio::AsyncServer;
    let rt = runtime();
    rt.block_on(async {
        // The stop line is read on a thread of its own, started (and
        // kept) before the counts.
        let (said, told) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let mut l = String::new();
            let _ = std::io::stdin().read_line(&mut l);
            let _ = said.send(());
            std::thread::sleep(Duration::from_secs(120));
        });
        // Let the runtime's threads start before counting.
        tokio::task::yield_now().await;
        let tasks0 = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        let (fds0, threads0) = fds_and_threads();
        let mut opts = ServerOptions::new();
        opts.log(false)
            .max_connections(4)
            .framing(ipcworks::frame::Framing::Frames);
        let server = AsyncServer::bind_unix(&opts, path).unwrap();
        let stop = server.shutdown_handle();
        let handler = |_p: &Peer, m: Vec<u8>| async move {
            if m == b"slow" {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Some(m)
        };
        let run = tokio::spawn(server.run(handler));
        println!("BEFORE {fds0} {threads0} {tasks0}");
        println!("ready");
        let _ = told.await;
        let t = std::time::Instant::now();
        stop.shutdown();
        let stats = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the server did not stop")
            .unwrap()
            .unwrap();
        println!("STOPPED {}", t.elapsed().as_millis());
        // A finished task is counted until the runtime releases it, which
        // may come just after its output was taken: give that a moment (a
        // leaked task stays).
        let metrics = tokio::runtime::Handle::current().metrics();
        for _ in 0..200 {
            if metrics.num_alive_tasks() <= tasks0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let tasks1 = metrics.num_alive_tasks();
        let (fds1, threads1) = fds_and_threads();
        println!("AFTER {fds1} {threads1} {tasks1}");
        println!("STATS {stats:?}");
    });
}
/// 4. An `AsyncServer` (a child process) against hostile clients: some
///    send half a frame and stall, one sends requests and never reads
///    its replies, then closes mid-reply, a flood of connections beyond
///    the limit of 4, and a stop while clients are mid-message. The stop
///    is bounded, and the server process is left with the descriptors,
///    threads and tasks it had before it bound.
#[cfg(feature = "server")]
#[test]
fn tokio_hostile_async_server_under_stalling_and_flooding_clients() {
    use ipcworks::frame::{self, Framing};
    use std::io::{BufRead, Write};
    use std::os::unix::net::UnixStream as StdUnix;
    let path = crate::pipe::TmpPath::new("hostsrv.sock");
    let mut cmd = support::child(
        "tokio_hostile_io::child",
        "server",
        path.0.to_str().unwrap(),
    );
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let mut stdin = child.0.as_mut().unwrap().stdin.take().unwrap();
    let out = child.0.as_mut().unwrap().stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(out).lines().map_while(|l| l.ok());
    let before = lines.find(|l| l.starts_with("BEFORE ")).expect("BEFORE");
    assert!(lines.any(|l| l == "ready"));
    let framed = |m: &[u8]| {
        let mut v = Vec::new();
        frame::encode(m, Framing::Frames, &mut v).unwrap();
        v
    };
    // Two clients that send half a frame and stall.
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let mut c = StdUnix::connect(&path.0).unwrap();
        let f = framed(&[7u8; 100]);
        c.write_all(&f[..f.len() / 2]).unwrap();
        stalled.push(c);
    }
    // One that sends "slow" requests and reads nothing, then closes while
    // the server is replying.
    {
        let mut c = StdUnix::connect(&path.0).unwrap();
        for _ in 0..3 {
            c.write_all(&framed(b"slow")).unwrap();
        }
        std::thread::sleep(Duration::from_millis(400));
        drop(c);
    }
    // A flood of connections beyond the limit, each closed at once or
    // kept; then one more stalled client mid-message, kept to the stop.
    let mut kept = Vec::new();
    for i in 0..60 {
        if let Ok(mut c) = StdUnix::connect(&path.0) {
            let _ = c.write_all(&framed(b"flood")[..3]);
            if i % 2 == 0 {
                kept.push(c);
            }
        }
    }
    // A well-behaved client is answered once the flood is refused.
    std::thread::sleep(Duration::from_millis(200));
    kept.truncate(0);
    let answered = support::wait_until(LIMIT, || {
        let Ok(mut c) = StdUnix::connect(&path.0) else {
            return false;
        };
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        if c.write_all(&framed(b"hello")).is_err() {
            return false;
        }
        let mut got = [0u8; 9];
        std::io::Read::read_exact(&mut c, &mut got).is_ok() && &got[4..] == b"hello"
    });
    // Stop with the two stalled clients mid-message.
    writeln!(stdin, "stop").unwrap();
    let stopped = lines.find(|l| l.starts_with("STOPPED ")).expect("STOPPED");
    let after = lines.find(|l| l.starts_with("AFTER ")).expect("AFTER");
    let stats = lines.find(|l| l.starts_with("STATS ")).expect("STATS");
    let status = child.wait_for(LIMIT);
    drop(stalled);
    eprintln!("{before} / {after} / {stopped} / {stats}");
    assert!(status.success(), "the server child failed: {status}");
    assert!(
        answered,
        "a well-behaved client was never answered: {stats}"
    );
    let ms: u64 = stopped["STOPPED ".len()..].parse().unwrap();
    assert!(ms < 10_000, "the stop took {ms} ms");
    assert_eq!(
        before["BEFORE ".len()..],
        after["AFTER ".len()..],
        "descriptors, threads, tasks before the server / after it stopped: {stats}"
    );
}

/// 5. The async stdin and stdout over one shared open file description
///    (a socket that is both descriptor 0 and 1 of a child, as a terminal
///    or an inetd-style socket is): while one of them is in use the
///    description stays non-blocking, and once both are dropped — in
///    either order, in a task that panicked, after a cancelled read — it
///    is blocking again as it was. The test checks the flag in the child
///    and, after it exits, on its own duplicate of the description.
#[test]
fn tokio_hostile_stdin_and_stdout_on_one_description_restore_its_blocking_mode() {
    use std::io::BufRead;
    use std::os::fd::{AsFd, OwnedFd};
    let (mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    let theirs = OwnedFd::from(theirs);
    let watch = theirs.try_clone().unwrap();
    assert!(!nonblocking(watch.as_fd()));
    let mut cmd = support::child("tokio_hostile_io::child", "stdio-shared", "");
    cmd.stdin(std::process::Stdio::from(theirs.try_clone().unwrap()))
        .stdout(std::process::Stdio::from(theirs))
        .stderr(std::process::Stdio::piped());
    let mut child = KillOnDrop::spawn(cmd);
    let err = child.0.as_mut().unwrap().stderr.take().unwrap();
    let steps: Vec<String> = std::io::BufReader::new(err)
        .lines()
        .map_while(|l| l.ok())
        .filter(|l| l.starts_with("STEP "))
        .collect();
    let status = child.wait_for(LIMIT);
    drop(mine);
    assert!(status.success(), "the child failed: {status} {steps:?}");
    let want = [
        "STEP start false",
        "STEP stdout-alive true",
        "STEP in-then-out false",
        "STEP stdin-alive true",
        "STEP out-then-in false",
        "STEP panic false",
        "STEP cancelled false",
        "STEP into-inner-other-alive true",
        "STEP into-inner-last-gone false",
        "STEP inner-dropped-new-alive true",
        "STEP all-gone false",
    ];
    assert_eq!(steps, want, "O_NONBLOCK of the shared description");
    assert!(
        !nonblocking(watch.as_fd()),
        "the child left the description non-blocking"
    );
}
