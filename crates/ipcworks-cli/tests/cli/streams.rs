//! `ipcworks send`, `recv`, `serve` and `relay` over FIFOs, Unix and TCP
//! sockets and stdio, against real outside programs (sh, cat, nc, socat).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ipcworks_test_support::{need, require};
use rustix::process::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_ipcworks");

fn ipcworks() -> Command {
    let mut c = Command::new(BIN);
    c.stdin(Stdio::null());
    c
}

/// A child killed and reaped on drop (also when the test fails).
struct Guard(Option<Child>);
impl Guard {
    fn spawn(mut c: Command) -> Self {
        Guard(Some(c.spawn().expect("spawn")))
    }
    fn child(&mut self) -> &mut Child {
        self.0.as_mut().unwrap()
    }
    /// Waits (at most `limit`) and collects the output.
    fn finish(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        let mut c = self.0.take().unwrap();
        loop {
            if c.try_wait().unwrap().is_some() {
                return c.wait_with_output().unwrap();
            }
            if start.elapsed() > limit {
                let _ = c.kill();
                let out = c.wait_with_output().unwrap();
                panic!(
                    "timed out; stderr: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A unique temp path, removed on drop if still there.
struct TmpPath(PathBuf);
impl TmpPath {
    fn new(what: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        TmpPath(std::env::temp_dir().join(format!(
            "ipcworks-test-{}-{}-{what}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )))
    }
    fn s(&self) -> &str {
        self.0.to_str().unwrap()
    }
}
impl Drop for TmpPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < limit,
            "condition not met within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn is_fifo(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo())
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

/// `kill(child, sig)`.
fn signal(child: &Child, sig: Signal) {
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a child pid");
    rustix::process::kill_process(pid, sig).expect("kill");
}

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn every_stream_command_has_examples_in_help() {
    for cmd in ["send", "recv", "serve", "relay"] {
        let out = ipcworks().args([cmd, "--help"]).output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Examples:"), "{cmd}: {text}");
    }
}

#[test]
fn shell_echo_into_a_fifo_is_received_by_recv() {
    let p = TmpPath::new("recv.fifo");
    let mut recv = ipcworks();
    recv.args(["recv", &format!("fifo:{}", p.s()), "--timeout", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let recv = Guard::spawn(recv);
    wait_until(LIMIT, || is_fifo(&p.0)); // recv created it
    let st = Command::new("sh")
        .args(["-c", &format!("echo hi > '{}'", p.s())])
        .status()
        .unwrap();
    assert!(st.success());
    let out = recv.finish(LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"hi\n");
    assert!(!p.0.exists(), "recv removes the FIFO it created");
}

#[test]
fn send_into_a_fifo_is_read_by_cat() {
    let p = TmpPath::new("send.fifo");
    let mut send = ipcworks();
    send.args(["send", &format!("fifo:{}", p.s()), "hello", "world"])
        .stderr(Stdio::piped());
    let send = Guard::spawn(send);
    wait_until(LIMIT, || is_fifo(&p.0)); // send created it
    let out = Command::new("cat").arg(&p.0).output().unwrap();
    assert_eq!(out.stdout, b"hello\nworld\n");
    let st = send.finish(LIMIT);
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(!p.0.exists(), "send removes the FIFO it created");
}

#[test]
fn sender_survives_a_reader_that_leaves_early() {
    let p = TmpPath::new("early.fifo");
    // 16 MiB of lines into the FIFO; the reader takes one byte and leaves.
    let mut send = ipcworks();
    send.args(["send", &format!("fifo:{}", p.s())])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped());
    let mut send = Guard::spawn(send);
    let mut stdin = send.child().stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let line = [b'z'; 1023];
        for _ in 0..16 * 1024 {
            if stdin
                .write_all(&line)
                .and_then(|_| stdin.write_all(b"\n"))
                .is_err()
            {
                break;
            }
        }
    });
    wait_until(LIMIT, || is_fifo(&p.0));
    let out = Command::new("head")
        .args(["-c", "1"])
        .arg(&p.0)
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"z");
    let out = send.finish(LIMIT);
    feeder.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "an error exit, not death by SIGPIPE: {:?}",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("disconnected"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
}

/// Starts `ipcworks serve tcp:127.0.0.1:0 ARGS…` and returns it with its port.
fn serve_tcp(args: &[&str]) -> (Guard, u16) {
    let (g, port, _) = serve_tcp_logged(args);
    (g, port)
}

/// Like [`serve_tcp`], also handing back the server's stderr lines.
fn serve_tcp_logged(args: &[&str]) -> (Guard, u16, std::sync::mpsc::Receiver<String>) {
    let mut c = ipcworks();
    c.args(["serve", "tcp:127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut g = Guard::spawn(c);
    let mut err = BufReader::new(g.child().stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let port = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    // Keep draining stderr so the server never blocks on it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    (g, port, rx)
}

#[test]
fn serve_echo_answers_nc_and_socat() {
    require!(need::NC, need::SOCAT);
    let (server, port) = serve_tcp(&["--echo"]);
    let nc = Command::new("sh")
        .args(["-c", &format!("echo hi | nc -N 127.0.0.1 {port}")])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&nc.stdout), "hi\n");
    let socat = Command::new("sh")
        .args([
            "-c",
            &format!("printf 'one\\ntwo\\n' | socat -t 5 - TCP:127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&socat.stdout), "one\ntwo\n");
    drop(server); // killed and reaped
}

#[test]
fn serve_echo_answers_a_thousand_concurrent_clients() {
    let (server, port) = serve_tcp(&["--echo", "--max-clients", "2000"]);
    // 1,000 clients connected at once from 8 threads, 3 rounds each; every
    // client must get back exactly its own lines, in order.
    let start = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut clients: Vec<(TcpStream, BufReader<TcpStream>)> = (0..125)
                    .map(|_| {
                        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let r = BufReader::new(s.try_clone().unwrap());
                        (s, r)
                    })
                    .collect();
                for round in 0..3 {
                    for (c, (s, _)) in clients.iter_mut().enumerate() {
                        writeln!(s, "t{t} c{c} r{round}").unwrap();
                    }
                    for (c, (_, r)) in clients.iter_mut().enumerate() {
                        let mut line = String::new();
                        r.read_line(&mut line).unwrap();
                        assert_eq!(line, format!("t{t} c{c} r{round}\n"));
                    }
                }
                clients.len()
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(total, 1000);
    assert!(start.elapsed() < Duration::from_secs(60));
    drop(server); // killed and reaped
}

#[test]
fn serve_on_a_live_unix_socket_is_refused_and_a_stale_one_replaced() {
    require!(need::SOCAT);
    let p = TmpPath::new("serve.sock");
    // A stale socket file left by a dead server.
    ipcworks_test_support::stale_socket(&p.0);
    let mut c = ipcworks();
    c.args(["serve", &format!("unix:{}", p.s()), "--echo"])
        .stderr(Stdio::null());
    let first = Guard::spawn(c);
    wait_until(LIMIT, || {
        std::os::unix::net::UnixStream::connect(&p.0).is_ok()
    });
    let out = ipcworks()
        .args(["serve", &format!("unix:{}", p.s())])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("live server"), "{err}");
    // The first server still answers.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("echo ping | socat -t 5 - UNIX-CONNECT:{}", p.s()),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ping\n");
    // SIGTERM stops it cleanly and the socket file goes away.
    let mut first = first;
    signal(first.child(), Signal::TERM);
    let out = first.finish(LIMIT);
    assert!(out.status.success());
    assert!(!p.0.exists());
}

#[test]
fn relay_bridges_stdio_and_fifo_to_unix() {
    // - to -: a pipe through the relay.
    let mut c = ipcworks();
    c.args(["relay", "-", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped());
    let mut g = Guard::spawn(c);
    g.child()
        .stdin
        .take()
        .unwrap()
        .write_all(b"a\nb\n")
        .unwrap();
    let out = g.finish(LIMIT);
    assert_eq!(out.stdout, b"a\nb\n");

    // fifo → unix: recv listens on the socket, relay reads the FIFO.
    let sock = TmpPath::new("relay.sock");
    let fifo = TmpPath::new("relay.fifo");
    let mut c = ipcworks();
    c.args([
        "recv",
        &format!("unix:{}", sock.s()),
        "--count",
        "2",
        "--timeout",
        "25",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let recv = Guard::spawn(c);
    wait_until(LIMIT, || is_socket(&sock.0));
    let mut c = ipcworks();
    c.args([
        "relay",
        &format!("fifo:{}", fifo.s()),
        &format!("unix:{}", sock.s()),
    ])
    .stderr(Stdio::piped());
    let relay = Guard::spawn(c);
    wait_until(LIMIT, || is_fifo(&fifo.0));
    Command::new("sh")
        .args(["-c", &format!("printf 'x\\ny\\n' > '{}'", fifo.s())])
        .status()
        .unwrap();
    let out = recv.finish(LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"x\ny\n");
    let out = relay.finish(LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!fifo.0.exists() && !sock.0.exists());
}

#[test]
fn binary_frames_round_trip_over_tcp() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let mut c = ipcworks();
    c.args([
        "recv",
        &format!("tcp:127.0.0.1:{port}"),
        "--binary",
        "--count",
        "2",
        "--timeout",
        "25",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let recv = Guard::spawn(c);
    wait_until(LIMIT, || {
        TcpStream::connect(("127.0.0.1", port)).map(drop).is_ok()
    });
    // The probe connection above ended at once: recv moves on to the next.
    let st = ipcworks()
        .args([
            "send",
            "--binary",
            &format!("tcp:127.0.0.1:{port}"),
            "first",
            "second",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let out = recv.finish(LIMIT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"first\nsecond\n");
}

#[test]
fn clear_errors_and_exit_codes() {
    let missing = TmpPath::new("missing.sock");
    let out = ipcworks()
        .args(["send", &format!("unix:{}", missing.s()), "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not exist"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let out = ipcworks()
        .args(["recv", "tcp:127.0.0.1:0", "--timeout", "0.3"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(124),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = ipcworks().args(["serve", "fifo:/tmp/x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn interrupted_commands_leave_no_fifo_or_socket_behind() {
    for (cmd, kind, sig) in [
        ("recv", "fifo", "INT"),
        ("recv", "unix", "TERM"),
        ("send", "fifo", "TERM"),
        ("relay", "fifo", "INT"),
    ] {
        let p = TmpPath::new(&format!("{cmd}-{kind}.sig"));
        let ep = format!("{kind}:{}", p.s());
        let mut c = ipcworks();
        match cmd {
            "send" => c.args(["send", &ep, "never read"]),
            "relay" => c.args(["relay", &ep, "-"]),
            _ => c.args(["recv", &ep]),
        };
        c.stdout(Stdio::null()).stderr(Stdio::null());
        let mut g = Guard::spawn(c);
        wait_until(LIMIT, || is_fifo(&p.0) || is_socket(&p.0));
        signal(
            g.child(),
            if sig == "INT" {
                Signal::INT
            } else {
                Signal::TERM
            },
        );
        let out = g.finish(LIMIT);
        assert!(!out.status.success());
        assert!(!p.0.exists(), "{cmd} {ep}: removed after SIG{sig}");
    }
}

#[test]
fn serve_logs_and_drops_bad_clients_in_one_line_and_keeps_serving() {
    require!(need::NC);
    let (server, port, log) = serve_tcp_logged(&["--echo", "--max-message", "16", "--idle", "2"]);
    let good = TcpStream::connect(("127.0.0.1", port)).unwrap();
    good.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut good_r = BufReader::new(good.try_clone().unwrap());
    let mut ask = |what: &str| {
        writeln!(&good, "{what}").unwrap();
        let mut line = String::new();
        good_r.read_line(&mut line).unwrap();
        assert_eq!(line, format!("{what}\n"));
    };
    ask("first");
    // Over-long line from nc.
    let out = Command::new("sh")
        .args([
            "-c",
            &format!("printf '%040d\\n' 0 | nc -N 127.0.0.1 {port}"),
        ])
        .output()
        .unwrap();
    assert!(out.stdout.is_empty());
    let line = log.recv_timeout(LIMIT).unwrap();
    assert!(
        line.contains("dropped client") && line.contains("over the limit of 16"),
        "{line}"
    );
    ask("second");
    // Connects and says nothing: dropped after the idle time.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(silent.read(&mut buf).unwrap_or(0), 0);
    // The good client went idle too meanwhile; it was told the same way.
    let mut lines = Vec::new();
    while let Ok(l) = log.recv_timeout(Duration::from_millis(500)) {
        lines.push(l);
    }
    assert!(lines.iter().any(|l| l.contains("idle")), "{lines:?}");
    let fresh = TcpStream::connect(("127.0.0.1", port)).unwrap();
    fresh
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    writeln!(&fresh, "third").unwrap();
    let mut line = String::new();
    BufReader::new(&fresh).read_line(&mut line).unwrap();
    assert_eq!(line, "third\n");
    drop(server);
}
