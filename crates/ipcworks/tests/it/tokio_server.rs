//! The async server (`ipcworks::tokio::AsyncServer`, issue 21): real
//! clients (socat, nc, our own client processes) over Unix and TCP, the
//! connection limit, the uid allow-list against a client running as
//! another user, running out of descriptors (the server in a child whose
//! `RLIMIT_NOFILE` is lowered), and graceful shutdown.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ipcworks::socket::{Peer, ServerOptions};
use ipcworks::tokio::{AsyncHandler, AsyncServer};
use ipcworks_test_support::{need, require};

use crate::pipe::TmpPath;
use crate::support::{self, KillOnDrop, runtime};

/// Far beyond anything on a loaded machine: only a hang trips it.
const LIMIT: Duration = Duration::from_secs(60);
/// Connects to "unix:PATH" or "tcp:HOST:PORT".
fn connect(addr: &str) -> Box<dyn ReadWrite> {
    match addr.split_once(':') {
        Some(("unix", p)) => Box::new(std::os::unix::net::UnixStream::connect(p).unwrap()),
        Some(("tcp", a)) => Box::new(std::net::TcpStream::connect(a).unwrap()),
        _ => panic!("bad address {addr}"),
    }
}

trait ReadWrite: Read + Write + Send {
    fn close(&self);
    fn try_clone_box(&self) -> Box<dyn ReadWrite>;
}
impl ReadWrite for std::os::unix::net::UnixStream {
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
    fn try_clone_box(&self) -> Box<dyn ReadWrite> {
        Box::new(self.try_clone().unwrap())
    }
}
impl ReadWrite for std::net::TcpStream {
    fn close(&self) {
        let _ = self.shutdown(std::net::Shutdown::Both);
    }
    fn try_clone_box(&self) -> Box<dyn ReadWrite> {
        Box::new(self.try_clone().unwrap())
    }
}

#[test]
fn child() {
    support::as_child!(|role, arg| {
        match role {
            // "ADDR,N": sends N numbered lines, reads N replies, checks each,
            // prints "ok N".
            "lines" => {
                let (addr, n) = arg.split_once(',').unwrap();
                let n: usize = n.parse().unwrap();
                let s = connect(addr);
                let mut r = BufReader::new(s.try_clone_box());
                let mut w = s;
                for i in 0..n {
                    w.write_all(format!("line {i} from {}\n", std::process::id()).as_bytes())
                        .unwrap();
                    let mut back = String::new();
                    r.read_line(&mut back).unwrap();
                    assert_eq!(back, format!("line {i} from {}\n", std::process::id()));
                }
                println!("ok {n}");
            }
            // "ADDR,LINE": sends LINE; prints "reply: …" or "closed"; then
            // stays connected until its stdin ends (it then closes) or the
            // server closes (it prints "eof").
            "hold" => {
                let (addr, line) = arg.rsplit_once(',').unwrap();
                let s = connect(addr);
                let mut w = s.try_clone_box();
                let _ = w.write_all(format!("{line}\n").as_bytes());
                let closer = s.try_clone_box();
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    closer.close();
                });
                let mut r = BufReader::new(s);
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => println!("closed"),
                    Ok(_) => {
                        println!("reply: {}", line.trim_end());
                        let mut rest = Vec::new();
                        let _ = r.read_to_end(&mut rest);
                        println!("eof");
                    }
                }
            }
            // "ADDR,LEN": sends one length-prefixed frame of LEN bytes (none
            // when LEN is "none"), then prints "reply N" for a frame of N
            // bytes back, or "closed" at the end of the stream.
            "frame" => {
                let (addr, len) = arg.rsplit_once(',').unwrap();
                let mut s = connect(addr);
                if let Ok(len) = len.parse::<usize>() {
                    let mut f = (len as u32).to_le_bytes().to_vec();
                    f.extend(std::iter::repeat_n(b'x', len));
                    let _ = s.write_all(&f);
                }
                let mut head = [0u8; 4];
                match s.read_exact(&mut head) {
                    Ok(()) => {
                        // The whole reply, so it leaves nothing unread (a Unix
                        // socket closed with unread bytes resets the peer).
                        let mut body = vec![0u8; u32::from_le_bytes(head) as usize];
                        s.read_exact(&mut body).unwrap();
                        println!("reply {}", body.len());
                    }
                    Err(_) => println!("closed"),
                }
            }
            // "PATH,WAIT_MS": the async echo server at PATH, out of
            // descriptors after ROOM more (`server_fds`'s child, async).
            "fd-limited-echo" => {
                let (path, wait) = arg.split_once(',').unwrap();
                let wait = Duration::from_millis(wait.parse().unwrap());
                runtime().block_on(async {
                    let server = AsyncServer::bind_unix(
                        ServerOptions::new()
                            .idle_timeout(None)
                            .out_of_fds_wait(wait),
                        path,
                    )
                    .unwrap();
                    support::limit_open_files(ROOM);
                    println!("ready");
                    server
                        .run(|_p: &Peer, m: Vec<u8>| async move { Some(m) })
                        .await
                        .unwrap();
                });
            }
            other => support::unknown_role(other),
        }
    });
}

fn lines_client(addr: &str, n: usize) -> KillOnDrop {
    let mut cmd = support::child("tokio_server::child", "lines", &format!("{addr},{n}"));
    cmd.stdout(Stdio::piped());
    KillOnDrop::spawn(cmd)
}

/// Waits for a `lines` client and returns its output.
fn finish(mut c: KillOnDrop) -> String {
    let mut out = String::new();
    let mut child = c.0.take().unwrap();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(child.wait().unwrap().success(), "client failed: {out}");
    out
}

/// A `hold` client: its first line of output, and the child (its stdin
/// open: dropping it makes the client leave).
fn hold(addr: &str) -> (String, Holder) {
    hold_as(addr, "hi", None)
}

/// [`hold`] sending `line`, running as `uid` if given.
fn hold_as(addr: &str, line: &str, uid: Option<u32>) -> (String, Holder) {
    use std::os::unix::process::CommandExt;
    let mut cmd = support::child("tokio_server::child", "hold", &format!("{addr},{line}"));
    if let Some(uid) = uid {
        cmd.uid(uid).gid(uid);
    }
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut c = KillOnDrop::spawn(cmd);
    let child = c.0.as_mut().unwrap();
    let stdin = child.stdin.take();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    loop {
        first.clear();
        assert_ne!(out.read_line(&mut first).unwrap(), 0, "client said nothing");
        if first.starts_with("reply: ") || first.starts_with("closed") {
            break;
        }
    }
    (first.trim_end().to_string(), Holder { c, stdin, out })
}

struct Holder {
    c: KillOnDrop,
    stdin: Option<std::process::ChildStdin>,
    out: BufReader<std::process::ChildStdout>,
}

impl Holder {
    /// The client's next line (after its reply: "eof" when the server closed).
    fn next_line(&mut self) -> String {
        let mut l = String::new();
        self.out.read_line(&mut l).unwrap();
        l.trim_end().to_string()
    }
    /// Makes the client leave and waits for it.
    fn leave(mut self) {
        self.stdin = None;
        assert!(self.c.wait_for(LIMIT).success());
    }
}

/// `printf LINES | CMD`, its output.
fn shell(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(out.status.success(), "{cmd} failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// An async echo server over Unix and TCP at once: socat, nc and five of
/// our own client processes on each (50 lines each), all at once; every
/// line comes back to its sender, and the counts add up.
#[test]
fn async_server_echoes_to_socat_nc_and_client_processes_over_unix_and_tcp() {
    require!(need::SOCAT, need::NC);
    let path = TmpPath::new("asrv.sock");
    let rt = runtime();
    let stats = rt.block_on(async {
        let opts = ServerOptions::new();
        let unix = AsyncServer::bind_unix(&opts, &path.0).unwrap();
        let tcp = AsyncServer::bind_tcp(&opts, "127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        let (stop_u, stop_t) = (unix.shutdown_handle(), tcp.shutdown_handle());
        let echo = |_p: &Peer, m: Vec<u8>| async move { Some(m) };
        let su = tokio::spawn(unix.run(echo));
        let st = tokio::spawn(tcp.run(echo));
        let p = path.0.clone();
        let clients = tokio::task::spawn_blocking(move || {
            let ua = format!("unix:{}", p.display());
            let ta = format!("tcp:127.0.0.1:{port}");
            let ours: Vec<KillOnDrop> = (0..5)
                .flat_map(|_| [lines_client(&ua, 50), lines_client(&ta, 50)])
                .collect();
            let a = shell(&format!(
                "printf 'one\\ntwo\\n' | socat -t 5 - UNIX-CONNECT:{}",
                p.display()
            ));
            let b = shell(&format!(
                "printf 'three\\nfour\\n' | socat -t 5 - TCP:127.0.0.1:{port}"
            ));
            let c = shell(&format!(
                "printf 'five\\nsix\\n' | nc -N -w 5 127.0.0.1 {port}"
            ));
            let d = shell(&format!(
                "printf 'seven\\n' | nc -N -w 5 -U {}",
                p.display()
            ));
            assert_eq!(a, "one\ntwo\n");
            assert_eq!(b, "three\nfour\n");
            assert_eq!(c, "five\nsix\n");
            assert_eq!(d, "seven\n");
            for c in ours {
                let out = finish(c);
                assert!(out.lines().any(|l| l == "ok 50"), "{out}");
            }
        });
        tokio::time::timeout(LIMIT, clients).await.unwrap().unwrap();
        stop_u.shutdown();
        stop_t.shutdown();
        let su = tokio::time::timeout(LIMIT, su)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let st = tokio::time::timeout(LIMIT, st)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        (su, st)
    });
    let (u, t) = stats;
    assert_eq!((u.accepted, u.refused, u.dropped), (7, 0, 0), "unix {u:?}");
    assert_eq!((t.accepted, t.refused, t.dropped), (7, 0, 0), "tcp {t:?}");
    assert_eq!(u.messages, 5 * 50 + 2 + 1, "unix {u:?}");
    assert_eq!(t.messages, 5 * 50 + 2 + 2, "tcp {t:?}");
    assert!(
        !path.0.exists(),
        "the socket file is removed when the server is done"
    );
}

/// Counts the clients inside the handler at once.
struct Gate {
    inside: AtomicUsize,
    most: AtomicUsize,
    connected: AtomicUsize,
    most_connected: AtomicUsize,
    /// The handler holds each message until this many are inside.
    meet: usize,
}

/// The handler: the gate, shared with the test.
struct Gated(Arc<Gate>);

impl AsyncHandler for Gated {
    async fn on_message(&self, _peer: &Peer, msg: Vec<u8>) -> Option<Vec<u8>> {
        let g = &self.0;
        let now = g.inside.fetch_add(1, Ordering::SeqCst) + 1;
        g.most.fetch_max(now, Ordering::SeqCst);
        let start = Instant::now();
        // Wait (asynchronously) until `meet` clients are inside at once:
        // a server that served one at a time never gets there.
        while g.inside.load(Ordering::SeqCst) < g.meet && start.elapsed() < LIMIT {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Stay a moment, so the last to arrive still sees the others.
        tokio::time::sleep(Duration::from_millis(50)).await;
        g.inside.fetch_sub(1, Ordering::SeqCst);
        Some(msg)
    }
    fn on_connect(&self, _peer: &Peer) {
        let now = self.0.connected.fetch_add(1, Ordering::SeqCst) + 1;
        self.0.most_connected.fetch_max(now, Ordering::SeqCst);
    }
    fn on_disconnect(&self, _peer: &Peer) {
        self.0.connected.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `max_connections(2)`: two client processes are inside the handler at
/// once (each connection a task), a third is closed at once while they
/// stay, and once one leaves a fourth is served. Never more than two
/// connected.
#[test]
fn async_server_keeps_to_its_connection_limit() {
    let path = TmpPath::new("asrv-limit.sock");
    let rt = runtime();
    let gate = Arc::new(Gate {
        inside: AtomicUsize::new(0),
        most: AtomicUsize::new(0),
        connected: AtomicUsize::new(0),
        most_connected: AtomicUsize::new(0),
        meet: 2,
    });
    let g = gate.clone();
    let stats = rt.block_on(async move {
        let server =
            AsyncServer::bind_unix(ServerOptions::new().max_connections(2).log(false), &path.0)
                .unwrap();
        let stop = server.shutdown_handle();
        let run = tokio::spawn(server.run(Gated(g.clone())));
        let addr = format!("unix:{}", path.0.display());
        let g2 = g.clone();
        let clients = tokio::task::spawn_blocking(move || {
            let (a, b) = std::thread::scope(|s| {
                let a = s.spawn(|| hold(&addr));
                let b = s.spawn(|| hold(&addr));
                (a.join().unwrap(), b.join().unwrap())
            });
            assert_eq!(a.0, "reply: hi");
            assert_eq!(b.0, "reply: hi");
            let (third, h3) = hold(&addr);
            assert_eq!(third, "closed", "a third client while two are served");
            h3.leave();
            a.1.leave();
            assert!(
                support::wait_until(LIMIT, || g2.connected.load(Ordering::SeqCst) == 1),
                "the server did not see the client leave"
            );
            // The handler holds a message until two are inside; the
            // second client is connected but idle, so one stands in for
            // it while the fourth is served.
            g2.inside.fetch_add(1, Ordering::SeqCst);
            let (fourth, h4) = hold(&addr);
            g2.inside.fetch_sub(1, Ordering::SeqCst);
            assert_eq!(fourth, "reply: hi", "a client after one left");
            h4.leave();
            b.1.leave();
        });
        tokio::time::timeout(LIMIT, clients).await.unwrap().unwrap();
        stop.shutdown();
        tokio::time::timeout(LIMIT, run)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        gate.most.load(Ordering::SeqCst),
        2,
        "two inside the handler at once"
    );
    assert_eq!(
        gate.most_connected.load(Ordering::SeqCst),
        2,
        "never more than two connected"
    );
    assert_eq!((stats.accepted, stats.refused), (3, 1), "{stats:?}");
}

/// Run as root, the allow-list: a client process running as uid 65534 is
/// closed at once by a server that allows only uid 0, and served by one
/// that allows 65534; a root client the other way round.
#[test]
fn async_server_refuses_uids_not_allowed() {
    require!(need::ROOT);
    let rt = runtime();
    let outcome = |allowed: u32, as_uid: u32| -> String {
        let path = TmpPath::new("asrv-uid.sock");
        rt.block_on(async {
            let server = AsyncServer::bind_unix(
                ServerOptions::new()
                    .allowed_uids(Some(vec![allowed]))
                    .unix_mode(0o777)
                    .log(false),
                &path.0,
            )
            .unwrap();
            let stop = server.shutdown_handle();
            let run = tokio::spawn(server.run(|_p: &Peer, m: Vec<u8>| async move { Some(m) }));
            let addr = format!("unix:{}", path.0.display());
            let out = tokio::task::spawn_blocking(move || {
                let (first, h) = hold_as(&addr, "hi", Some(as_uid));
                h.leave();
                first
            });
            let first = tokio::time::timeout(LIMIT, out).await.unwrap().unwrap();
            stop.shutdown();
            let stats = tokio::time::timeout(LIMIT, run)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            let expect_refused = u64::from(allowed != as_uid);
            assert_eq!(stats.refused, expect_refused, "{first}: {stats:?}");
            first
        })
    };
    assert_eq!(
        outcome(0, 65534),
        "closed",
        "uid 65534 where only 0 is allowed"
    );
    assert_eq!(outcome(65534, 65534), "reply: hi", "uid 65534 allowed");
    assert_eq!(
        outcome(65534, 0),
        "closed",
        "root where only 65534 is allowed"
    );
}

/// Graceful shutdown: a message inside the handler when the server is
/// told to stop still gets its reply, then its client (and an idle one)
/// reads end of stream; `run` returns the counts and the socket file is
/// gone.
#[test]
fn async_server_shuts_down_gracefully() {
    let path = TmpPath::new("asrv-stop.sock");
    let rt = runtime();
    let inside = Arc::new(AtomicUsize::new(0));
    let i2 = inside.clone();
    let stats = rt.block_on(async {
        let server = AsyncServer::bind_unix(ServerOptions::new().log(false), &path.0).unwrap();
        let stop = server.shutdown_handle();
        let handler = move |_p: &Peer, m: Vec<u8>| {
            let inside = i2.clone();
            async move {
                if m == b"slow" {
                    inside.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Some(m)
            }
        };
        let run = tokio::spawn(server.run(handler));
        let addr = format!("unix:{}", path.0.display());
        let a2 = addr.clone();
        let idle = tokio::task::spawn_blocking(move || hold(&a2))
            .await
            .unwrap();
        assert_eq!(idle.0, "reply: hi");
        // A client process whose message the handler takes 500 ms over.
        let slow = tokio::task::spawn_blocking(move || {
            let (first, mut h) = hold_as(&addr, "slow", None);
            let then = h.next_line();
            h.leave();
            (first, then)
        });
        assert!(
            tokio::time::timeout(LIMIT, async {
                while inside.load(Ordering::SeqCst) == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
            .await
            .is_ok()
        );
        stop.shutdown();
        let stats = tokio::time::timeout(LIMIT, run)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let got = tokio::time::timeout(LIMIT, slow).await.unwrap().unwrap();
        assert_eq!(
            got,
            ("reply: slow".to_string(), "eof".to_string()),
            "the message in hand was answered, then the end"
        );
        let mut idle = idle.1;
        assert_eq!(idle.next_line(), "eof", "the idle client was closed");
        idle.leave();
        stats
    });
    assert!(stats.accepted >= 2 && stats.dropped == 0, "{stats:?}");
    assert!(!path.0.exists(), "the socket file is removed");
}

/// Client slots the child leaves itself above what it has open.
const ROOM: u64 = 8;
// The clients (`server_fds::clients`, 30) are well beyond the room.

fn start_fd_limited(path: &TmpPath, wait: Duration) -> KillOnDrop {
    KillOnDrop::spawn_ready(support::child(
        "tokio_server::child",
        "fd-limited-echo",
        &format!("{},{}", path.0.display(), wait.as_millis()),
    ))
}

/// Out of descriptors (the async server in a child whose descriptor limit
/// leaves room for a few clients): clients queued in the backlog are
/// served as earlier ones leave, with no new connection to wake the
/// server.
#[test]
fn async_server_serves_clients_queued_while_out_of_descriptors_when_others_leave() {
    let path = TmpPath::new("asrv-emfile.sock");
    let _server = start_fd_limited(&path, Duration::from_secs(600));
    crate::server_fds::served_as_others_leave(crate::server_fds::clients(&path));
}

/// Out of descriptors and nobody leaves: after `out_of_fds_wait` the
/// waiting clients are accepted and closed cleanly; none hangs.
#[test]
fn async_server_closes_clients_beyond_its_descriptors_when_nobody_leaves() {
    let path = TmpPath::new("asrv-shed.sock");
    let _server = start_fd_limited(&path, Duration::from_millis(200));
    crate::server_fds::served_or_closed_when_nobody_leaves(crate::server_fds::clients(&path));
}

/// A client process's answer to one frame (or to none).
fn frame_client(addr: &str, len: &str) -> String {
    let mut cmd = support::child("tokio_server::child", "frame", &format!("{addr},{len}"));
    cmd.stdout(Stdio::piped());
    let out = finish(KillOnDrop::spawn(cmd));
    out.lines()
        .find(|l| l.starts_with("reply") || l.starts_with("closed"))
        .unwrap_or("")
        .to_string()
}

/// The limits, with length-prefixed frames: a frame over `max_message`
/// drops its client, a client that sends nothing is dropped after the
/// idle timeout, a client within the limits gets its reply; the counts
/// say so.
#[test]
fn async_server_drops_clients_over_its_message_and_idle_limits() {
    let path = TmpPath::new("asrv-lim.sock");
    let rt = runtime();
    let stats = rt.block_on(async {
        let server = AsyncServer::bind_unix(
            ServerOptions::new()
                .framing(ipcworks::frame::Framing::Frames)
                .max_message(16)
                .idle_timeout(Some(Duration::from_millis(300)))
                .log(false),
            &path.0,
        )
        .unwrap();
        let stop = server.shutdown_handle();
        let run = tokio::spawn(server.run(|_p: &Peer, m: Vec<u8>| async move { Some(m) }));
        let addr = format!("unix:{}", path.0.display());
        let answers = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let idle = frame_client(&addr, "none");
            let idle_for = started.elapsed();
            (
                frame_client(&addr, "100"),
                idle,
                idle_for,
                frame_client(&addr, "5"),
            )
        });
        let (big, idle, idle_for, fine) =
            tokio::time::timeout(LIMIT, answers).await.unwrap().unwrap();
        assert_eq!(big, "closed", "a frame over max_message");
        assert_eq!(idle, "closed", "a client that sends nothing");
        assert!(
            idle_for >= Duration::from_millis(300),
            "dropped after {idle_for:?}"
        );
        assert_eq!(fine, "reply 5");
        stop.shutdown();
        tokio::time::timeout(LIMIT, run)
            .await
            .unwrap()
            .unwrap()
            .unwrap()
    });
    assert_eq!(
        (stats.accepted, stats.dropped, stats.messages),
        (3, 2, 1),
        "{stats:?}"
    );
}
