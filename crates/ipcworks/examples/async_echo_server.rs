//! An async echo server over a Unix socket and TCP at once (feature
//! `tokio`): `ipcworks::tokio::AsyncServer`, the async twin of
//! `socket::Server` with the same options (line framing, connection
//! limit, idle timeout, uid allow-list, out-of-descriptors behaviour),
//! each client served by a task of its own; stopped gracefully by a
//! shutdown handle or Ctrl-C.
//!
//! ```text
//! cargo run -p ipcworks --features tokio --example async_echo_server          # serves, then talks to itself and exits
//! cargo run -p ipcworks --features tokio --example async_echo_server -- serve # serves until Ctrl-C
//! socat - UNIX-CONNECT:/tmp/ipcworks-async-echo.sock     # or: nc 127.0.0.1 PORT
//! ```

use ipcworks::socket::{Peer, ServerOptions};
use ipcworks::tokio::{AsyncServer, AsyncStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A client: sends `line`, closes its side, reads the echo back.
async fn client<S: ipcworks::tokio::ReadStream + ipcworks::tokio::WriteStream>(
    mut s: AsyncStream<S>,
    line: &str,
) -> std::io::Result<String> {
    s.write_all(line.as_bytes()).await?;
    s.shutdown().await?;
    let mut back = String::new();
    s.read_to_string(&mut back).await?;
    Ok(back)
}

// ipcworks::Error converts into std::io::Error, so `?` takes both.
#[tokio::main]
async fn main() -> std::io::Result<()> {
    let path = std::env::temp_dir().join("ipcworks-async-echo.sock");
    let mut opts = ServerOptions::new();
    opts.max_connections(100);
    // The socket file is created 0600 and removed when the server is done;
    // a stale one left by a dead server is replaced.
    let unix = AsyncServer::bind_unix(&opts, &path)?;
    let tcp = AsyncServer::bind_tcp(&opts, "127.0.0.1:0")?;
    let port = tcp.local_addr().map_or(0, |a| a.port());
    println!(
        "echo server on unix:{} and tcp:127.0.0.1:{port}",
        path.display()
    );
    let (stop_unix, stop_tcp) = (unix.shutdown_handle(), tcp.shutdown_handle());
    // Each line a client sends comes back to it.
    let echo = |_peer: &Peer, line: Vec<u8>| async move { Some(line) };
    let servers = tokio::spawn(async move { tokio::join!(unix.run(echo), tcp.run(echo)) });

    if std::env::args().nth(1).as_deref() == Some("serve") {
        let _ = tokio::signal::ctrl_c().await;
    } else {
        // Talk to ourselves: three clients of each kind at once.
        let mut clients = tokio::task::JoinSet::new();
        for i in 0..3 {
            let p = path.clone();
            clients.spawn(async move {
                let s = AsyncStream::new(ipcworks::socket::UnixStream::connect(&p)?)?;
                client(s, &format!("hello {i} over unix\n")).await
            });
            clients.spawn(async move {
                let s = std::net::TcpStream::connect(("127.0.0.1", port))?;
                client(AsyncStream::new(s)?, &format!("hello {i} over tcp\n")).await
            });
        }
        while let Some(r) = clients.join_next().await {
            print!("got back: {}", r.expect("client task")?);
        }
    }
    // A graceful stop: no new clients, every client's task finishes the
    // message in hand, and each server returns its counts.
    stop_unix.shutdown();
    stop_tcp.shutdown();
    let (u, t) = servers.await.expect("server task");
    let (u, t) = (u?, t?);
    println!(
        "served {} unix and {} tcp clients, {} messages",
        u.accepted,
        t.accepted,
        u.messages + t.messages
    );
    Ok(())
}
