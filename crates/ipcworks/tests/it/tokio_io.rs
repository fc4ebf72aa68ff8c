//! Byte streams on tokio (feature `tokio`, issue 21 item 1): a pipe to
//! `cat` and back as `AsyncRead`/`AsyncWrite`, an async echo server over
//! Unix and TCP that `socat` talks to, accepts and reads that time out
//! under `tokio::time::timeout`.

use std::process::{Command, Stdio};
use std::time::Duration;

use ipcworks::pipe;
use ipcworks::socket::UnixListener;
use ipcworks::tokio::{AsyncListener, AsyncStream, Listener};
use ipcworks_test_support::{need, require};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, KillOnDrop, runtime};

const LIMIT: Duration = Duration::from_secs(60);
/// 1 MiB through `cat` (our pipe's write end is its stdin, its stdout our
/// pipe's read end), written and read at once by two tasks: every byte
/// back, in order, and the end of the stream seen when `cat` exits.
#[test]
fn a_megabyte_through_cat_over_async_pipes() {
    let (to_cat_r, to_cat_w) = pipe::pipe().unwrap();
    let (from_cat_r, from_cat_w) = pipe::pipe().unwrap();
    let mut cat = Command::new("cat");
    cat.stdin(Stdio::from(std::os::fd::OwnedFd::from(to_cat_r)))
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(from_cat_w)));
    let mut cat = KillOnDrop::spawn(cat);
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let back = runtime().block_on(async {
        let mut w = AsyncStream::new(to_cat_w).unwrap();
        let mut r = AsyncStream::new(from_cat_r).unwrap();
        let sent = data.clone();
        let writer = tokio::spawn(async move {
            w.write_all(&sent).await.unwrap();
            // Dropping the write end is cat's end of input.
        });
        let mut back = Vec::new();
        tokio::time::timeout(LIMIT, r.read_to_end(&mut back))
            .await
            .unwrap()
            .unwrap();
        writer.await.unwrap();
        back
    });
    assert!(cat.wait_for(LIMIT).success());
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the bytes came back changed");
}

/// Serves one echo connection at a time on `server` until `n` connections
/// were served: copies each until its end, then shuts the write side.
async fn echo<L: Listener + 'static>(server: AsyncListener<L>, n: usize) {
    for _ in 0..n {
        let mut conn = server.accept().await.unwrap();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let k = conn.read(&mut buf).await.unwrap();
                if k == 0 {
                    break;
                }
                conn.write_all(&buf[..k]).await.unwrap();
            }
            conn.shutdown().await.unwrap();
        });
    }
}

/// `echo LINE | socat - ADDR`, its output.
fn socat(addr: &str, line: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", &format!("echo {line} | socat -t 5 - {addr}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "socat failed: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// An async echo server over a Unix socket and over TCP; `socat` clients,
/// three at once on each, get their lines back.
#[test]
fn async_echo_server_over_unix_and_tcp_answers_socat() {
    require!(need::SOCAT);
    let dir = std::env::temp_dir().join(support::unique_name("aecho"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("echo.sock");
    let rt = runtime();
    rt.block_on(async {
        let unix = AsyncListener::new(UnixListener::bind(&path).unwrap()).unwrap();
        let tcp = AsyncListener::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let port = tcp.get_ref().local_addr().unwrap().port();
        let servers = tokio::spawn(async move {
            tokio::join!(echo(unix, 3), echo(tcp, 3));
        });
        let mut clients = Vec::new();
        for i in 0..3 {
            let (p, u) = (path.clone(), format!("tcp:127.0.0.1:{port}"));
            clients.push(tokio::task::spawn_blocking(move || {
                let a = socat(
                    &format!("UNIX-CONNECT:{}", p.display()),
                    &format!("unix{i}"),
                );
                let b = socat(&u.replace("tcp:", "TCP:"), &format!("tcp{i}"));
                (i, a, b)
            }));
        }
        for c in clients {
            let (i, a, b) = tokio::time::timeout(LIMIT, c).await.unwrap().unwrap();
            assert_eq!(a, format!("unix{i}\n"));
            assert_eq!(b, format!("tcp{i}\n"));
        }
        tokio::time::timeout(LIMIT, servers).await.unwrap().unwrap();
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// An accept with nobody connecting and a read with nothing sent time out
/// under `tokio::time::timeout`, take nothing, and complete afterwards.
#[test]
fn accept_and_read_time_out_and_then_complete() {
    runtime().block_on(async {
        let server =
            AsyncListener::new(std::net::TcpListener::bind("127.0.0.1:0").unwrap()).unwrap();
        let addr = server.get_ref().local_addr().unwrap();
        let short = Duration::from_millis(30);
        assert!(tokio::time::timeout(short, server.accept()).await.is_err());
        let client = std::net::TcpStream::connect(addr).unwrap();
        let mut conn = tokio::time::timeout(LIMIT, server.accept())
            .await
            .unwrap()
            .unwrap();
        let mut buf = [0u8; 8];
        assert!(
            tokio::time::timeout(short, conn.read(&mut buf))
                .await
                .is_err()
        );
        let mut client = AsyncStream::new(client).unwrap();
        client.write_all(b"ping").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        tokio::time::timeout(LIMIT, conn.read_to_end(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, b"ping");
        // Back to blocking mode.
        let std_conn = conn.into_inner().unwrap();
        std_conn.set_read_timeout(Some(short)).unwrap();
        let e = std::io::Read::read(&mut &std_conn, &mut buf).unwrap();
        assert_eq!(e, 0, "end of stream");
    });
}

/// A framed receive over a pipe from `sh` (through `Async`, as a `dyn`
/// endpoint of a byte stream is): half a line, a pause, the rest. The
/// receive waits without holding the thread (a `timeout` fires mid-line, on
/// a current-thread runtime), keeps the half it read, and then returns the
/// whole line, the next, and `Disconnected` at the end.
#[test]
fn a_framed_receive_keeps_half_a_line_between_polls() {
    use ipcworks::frame::Framing;
    use ipcworks::stream::FramedReceiver;
    use ipcworks::tokio::Async;

    let (r, w) = pipe::pipe().unwrap();
    let mut sh = Command::new("sh");
    sh.args(["-c", "printf hel; sleep 0.5; printf 'lo\\nworld\\n'"])
        .stdout(Stdio::from(std::os::fd::OwnedFd::from(w)));
    let mut sh = KillOnDrop::spawn(sh);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rx = Async::receiver(FramedReceiver::new(r, Framing::Lines)).unwrap();
        let start = std::time::Instant::now();
        assert!(
            tokio::time::timeout(Duration::from_millis(150), rx.recv())
                .await
                .is_err(),
            "a line came before its end"
        );
        assert!(
            start.elapsed() < Duration::from_millis(400),
            "the poll held the thread"
        );
        let (m, _) = tokio::time::timeout(LIMIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m, b"hello");
        assert_eq!(rx.recv().await.unwrap().0, b"world");
        let end = tokio::time::timeout(LIMIT, rx.recv()).await.unwrap();
        assert!(matches!(end, Err(ipcworks::Error::Disconnected)), "{end:?}");
    });
    assert!(sh.wait_for(LIMIT).success());
}
