//! `ipcworks demo socket`: the textbook steps of a TCP server (socket,
//! bind, listen, accept) and of its clients (socket, connect), one system
//! call at a time, with two clients served at once, each on a new socket.
//!
//! The library's `Server` does socket+bind+listen in one call, so the demo
//! calls rustix for each step to show them apart.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use anyhow::Context;
use rustix::net::{AddressFamily, SocketType};

use super::{child, step};

const CLIENTS: usize = 2;

fn us(t: Instant) -> String {
    format!("{:.0} µs", t.elapsed().as_secs_f64() * 1e6)
}

pub fn run() -> anyhow::Result<()> {
    let pid = std::process::id();
    // Nothing named to remove on Ctrl-C (a TCP port vanishes with its
    // process); the clients die with the parent.
    println!(
        "The server is this process, pid {pid}; each client is a child process (this program started again)."
    );

    step(1, "Server: socket() makes the listening socket");
    let t = Instant::now();
    // The textbook steps one by one, with rustix (the library's Server
    // bundles them).
    let listener: OwnedFd = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)
        .context("socket(AF_INET, SOCK_STREAM)")?;
    let lfd = listener.as_raw_fd();
    println!("    socket(AF_INET, SOCK_STREAM) -> fd {lfd} [{}]", us(t));

    step(
        2,
        "Server: bind() gives it an address (127.0.0.1, port 0 = any free port)",
    );
    let t = Instant::now();
    rustix::net::bind(&listener, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .context("bind(127.0.0.1:0)")?;
    let addr = SocketAddrV4::try_from(rustix::net::getsockname(&listener).context("getsockname")?)
        .map_err(|_| anyhow::anyhow!("getsockname did not return an IPv4 address"))?;
    println!(
        "    bind(fd {lfd}, 127.0.0.1:0) -> the kernel chose {addr} [{}]",
        us(t)
    );

    step(
        3,
        "Server: listen() turns it into a socket that waits for connections",
    );
    rustix::net::listen(&listener, 8).context("listen")?;
    println!("    listen(fd {lfd}, backlog 8): clients may now connect to {addr}");

    step(4, "Two clients at once: each does socket() then connect()");
    let mut children = Vec::new();
    for i in 1..=CLIENTS {
        // The listening socket is not handed over: a client has no use
        // for it.
        children.push(child::start(
            "socket",
            "client",
            &[i.to_string(), addr.to_string()],
            &[],
        )?);
    }
    println!(
        "    started clients {:?}",
        children.iter().map(|c| c.id()).collect::<Vec<_>>()
    );

    step(5, "Server: accept() gives a NEW socket for each connection");
    let mut conns = Vec::new();
    for _ in 0..CLIENTS {
        let t = Instant::now();
        let (fd, peer) = rustix::net::acceptfrom(&listener).context("accept")?;
        let peer = peer
            .and_then(|p| SocketAddrV4::try_from(p).ok())
            .map_or("?".to_string(), |p| p.to_string());
        println!(
            "    accept(fd {lfd}) -> new socket fd {} connected to client {peer} [{}]",
            fd.as_raw_fd(),
            us(t)
        );
        conns.push((fd.as_raw_fd(), peer, TcpStream::from(fd)));
    }
    println!(
        "    The listening socket fd {lfd} keeps waiting for more; the accepted fds {} are the \
         two conversations, open at the same time.",
        conns
            .iter()
            .map(|(fd, _, _)| format!("fd {fd}"))
            .collect::<Vec<_>>()
            .join(" and ")
    );

    step(
        6,
        "Each connection is served on its own socket: recv() then send()",
    );
    for (fd, peer, s) in &mut conns {
        let mut buf = [0u8; 128];
        let n = s.read(&mut buf).context("recv")?;
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        println!("    server: recv(fd {fd}) from {peer} -> {m:?}");
        let reply = format!("hello, you are served on my fd {fd}");
        s.write_all(reply.as_bytes()).context("send")?;
        println!("    server: send(fd {fd}, {reply:?})");
    }

    step(7, "close(): each side closes its sockets");
    let mut failed = 0;
    for c in children {
        if !c.wait()?.success() {
            failed += 1;
        }
    }
    for (fd, _, s) in conns {
        drop(s);
        println!("    server: close(fd {fd})");
    }
    drop(listener);
    println!(
        "    server: close(fd {lfd}) — the listening socket; port {} is free again",
        addr.port()
    );
    if failed > 0 {
        anyhow::bail!("{failed} client(s) failed");
    }
    Ok(())
}

/// A client child: `client I ADDR`.
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(role == "client", "unknown role {role:?}");
    let [i, addr] = args else {
        anyhow::bail!("a client takes its number and the server's address");
    };
    let i: usize = i.parse().context("the client's number")?;
    let addr: SocketAddrV4 = addr.parse().context("the server's address")?;
    anyhow::ensure!(client(i, addr) == 0, "client {i} failed");
    Ok(())
}

/// One client (in a child process): returns its exit code.
fn client(i: usize, server: SocketAddrV4) -> i32 {
    let me = std::process::id();
    let Ok(fd) = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None) else {
        return 1;
    };
    let cfd = fd.as_raw_fd();
    println!("    client {i} (pid {me}): socket() -> fd {cfd}");
    if rustix::net::connect(&fd, &server).is_err() {
        println!("    client {i} (pid {me}): connect failed");
        return 1;
    }
    let local = rustix::net::getsockname(&fd)
        .ok()
        .and_then(|a| SocketAddrV4::try_from(a).ok())
        .map_or("?".to_string(), |a| a.to_string());
    println!("    client {i} (pid {me}): connect(fd {cfd}, {server}) -> connected from {local}");
    let mut s = TcpStream::from(fd);
    let msg = format!("hi from client {i}, pid {me}");
    if s.write_all(msg.as_bytes()).is_err() {
        return 1;
    }
    let mut buf = [0u8; 128];
    let n = match s.read(&mut buf) {
        Ok(n) => n,
        Err(_) => return 1,
    };
    println!(
        "    client {i} (pid {me}): recv(fd {cfd}) -> {:?}; close(fd {cfd})",
        String::from_utf8_lossy(&buf[..n])
    );
    0
}
