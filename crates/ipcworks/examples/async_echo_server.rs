//! An async echo server over a Unix socket and TCP at once (feature
//! `tokio`): `ipcworks::tokio::AsyncListener` accepts, each connection is
//! an `AsyncStream` (tokio's `AsyncRead`/`AsyncWrite`) served by a task of
//! its own.
//!
//! ```text
//! cargo run -p ipcworks --features tokio --example async_echo_server          # serves, then talks to itself and exits
//! cargo run -p ipcworks --features tokio --example async_echo_server -- serve # serves until Ctrl-C
//! socat - UNIX-CONNECT:/tmp/ipcworks-async-echo.sock     # or: nc 127.0.0.1 PORT
//! ```

use std::time::Duration;

use ipcworks::socket::UnixListener;
use ipcworks::tokio::{AsyncListener, AsyncStream, Listener};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Accepts for ever; each connection gets a task that echoes until the
/// client closes its side.
async fn serve<L: Listener + 'static>(server: AsyncListener<L>, kind: &'static str) {
    loop {
        let mut conn = match server.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{kind}: accept failed: {e}");
                continue;
            }
        };
        tokio::spawn(async move {
            let (mut r, mut w) = tokio::io::split(&mut conn);
            match tokio::io::copy(&mut r, &mut w).await {
                Ok(n) => println!("{kind}: echoed {n} bytes"),
                Err(e) => eprintln!("{kind}: {e}"),
            }
            let _ = conn.shutdown().await;
        });
    }
}

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
    // The socket file is created 0600 and removed when the listener drops;
    // a stale one left by a dead server is replaced.
    let unix = AsyncListener::new(UnixListener::bind(&path)?)?;
    let tcp = AsyncListener::new(std::net::TcpListener::bind("127.0.0.1:0")?)?;
    let port = tcp.get_ref().local_addr()?.port();
    println!(
        "echo server on unix:{} and tcp:127.0.0.1:{port}",
        path.display()
    );
    let servers = tokio::spawn(async move {
        tokio::join!(serve(unix, "unix"), serve(tcp, "tcp"));
    });

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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    servers.abort();
    Ok(())
}
