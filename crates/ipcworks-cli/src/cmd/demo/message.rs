//! `ipcworks demo message`: message passing through the kernel over Unix
//! sockets — send() and recv() of whole messages, what a byte stream does
//! to the same writes, who the peer is (SO_PEERCRED), and handing an open
//! descriptor to another process (SCM_RIGHTS).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use ipcworks::pipe::{PipeReader, pipe};
use ipcworks::process::remove_on_terminate;
use ipcworks::registry::{self, Kind};
use ipcworks::socket::{UnixDatagram, UnixListener, UnixSeqpacket, UnixStream};

use super::{child, step};

const WORDS: [&str; 3] = ["one", "two", "three"];

fn us(t: Instant) -> String {
    format!("{:.0} µs", t.elapsed().as_secs_f64() * 1e6)
}

pub fn run() -> anyhow::Result<()> {
    let pid = std::process::id();
    let sock_path = PathBuf::from(format!("/tmp/ipcworks-demo-message-{pid}.sock"));
    let _ = remove_on_terminate(&[(Kind::UnixSocket, &registry::path_name(&sock_path))]);
    println!(
        "Message passing: the processes share no memory; the sender hands bytes to the kernel \
         with send(), the kernel keeps them, the receiver takes them with recv()."
    );
    println!("This process (the parent) is pid {pid}.");

    step(
        1,
        "Message boundaries: a datagram socket keeps them, a stream socket does not",
    );
    let (dgram_parent, dgram_child) = UnixDatagram::pair().context("socketpair(SOCK_DGRAM)")?;
    let (stream_parent, stream_child) = UnixStream::pair().context("socketpair(SOCK_STREAM)")?;
    println!(
        "    socketpair(AF_UNIX, SOCK_DGRAM)  -> fds {} and {}",
        dgram_parent.as_raw_fd(),
        dgram_child.as_raw_fd()
    );
    println!(
        "    socketpair(AF_UNIX, SOCK_STREAM) -> fds {} and {}",
        stream_parent.as_raw_fd(),
        stream_child.as_raw_fd()
    );
    let sender = child::start(
        "message",
        "send-words",
        &[],
        &[dgram_child.as_fd(), stream_child.as_fd()],
    )?;
    let child = sender.id();
    drop(dgram_child);
    drop(stream_child);
    let status = sender.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    println!("    parent: the child ({child}) has exited; its messages wait in the kernel.");
    let mut buf = [0u8; 256];
    let mut got = Vec::new();
    for _ in WORDS {
        let t = Instant::now();
        let n = dgram_parent
            .recv(&mut buf)
            .context("recv on the datagram socket")?;
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        println!(
            "    datagram recv() #{} -> {n} bytes {m:?} [{}]",
            got.len() + 1,
            us(t)
        );
        got.push(m);
    }
    println!(
        "    datagram: {} recv() calls gave back the {} messages as sent: boundaries kept",
        got.len(),
        WORDS.len()
    );
    let mut stream = &stream_parent;
    let n = stream.read(&mut buf).context("recv on the stream socket")?;
    println!(
        "    stream recv() #1 -> {n} bytes {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let total: usize = WORDS.iter().map(|w| w.len()).sum();
    if n == total {
        println!(
            "    stream: one recv() returned all three writes glued together: a stream carries \
             bytes, not messages (the receiver must frame them, e.g. with a length prefix)"
        );
    } else {
        println!(
            "    stream: recv() returned {n} of the {total} bytes: a stream cuts wherever it \
             likes, not at the sender's message boundaries"
        );
    }
    drop((dgram_parent, stream_parent));

    step(
        2,
        "A named socket, and who is at the other end (SO_PEERCRED)",
    );
    let listener = UnixListener::bind_seqpacket(&sock_path).context("binding the socket")?;
    println!(
        "    parent: socket(AF_UNIX, SOCK_SEQPACKET) + bind({}) + listen() -> fd {}",
        sock_path.display(),
        listener.as_fd().as_raw_fd()
    );
    let client = child::start(
        "message",
        "client",
        &[sock_path.to_string_lossy().into_owned()],
        &[],
    )?;
    let child = client.id();
    println!("    parent: forked child pid {child} (fork, then exec of this program)");
    if !listener
        .wait_acceptable(Some(std::time::Duration::from_secs(10)))
        .context("poll")?
    {
        anyhow::bail!("the child did not connect within 10 s");
    }
    let conn = listener.accept_seqpacket().context("accept")?;
    println!(
        "    parent: accept() -> fd {} (a new socket for this one connection)",
        conn.as_raw_fd()
    );
    let cred = conn.peer_cred().context("SO_PEERCRED")?;
    println!(
        "    parent: SO_PEERCRED says the peer is pid {}, uid {}, gid {}",
        cred.pid, cred.uid, cred.gid
    );
    println!(
        "    peer credential pid {} {} the child's pid {child} (the kernel recorded it at connect(); \
         the peer cannot forge it)",
        cred.pid,
        if cred.pid == child {
            "equals"
        } else {
            "DIFFERS FROM"
        }
    );
    let n = conn.recv(&mut buf).context("recv")?;
    println!(
        "    parent: recv() -> {:?}",
        String::from_utf8_lossy(&buf[..n])
    );

    step(
        3,
        "Passing an open descriptor: the parent sends a pipe's read end (SCM_RIGHTS)",
    );
    let (r, w) = pipe().context("pipe")?;
    println!(
        "    parent: pipe() -> read end fd {}, write end fd {} (made after the child started: \
         it did not inherit them)",
        r.as_raw_fd(),
        w.as_raw_fd()
    );
    let t = Instant::now();
    conn.send_fds(b"here is a pipe", &[r.as_fd()])
        .context("sendmsg(SCM_RIGHTS)")?;
    println!(
        "    parent: sendmsg() with SCM_RIGHTS carrying fd {} [{}]",
        r.as_raw_fd(),
        us(t)
    );
    drop(r);
    let text = format!("written by {pid} into the pipe");
    let mut w = w;
    w.write_all(text.as_bytes()).context("write to the pipe")?;
    drop(w);
    println!("    parent: wrote {text:?} into the write end and closed it");
    let n = conn
        .recv_timeout(&mut buf, std::time::Duration::from_secs(10))
        .context("waiting for the child's answer")?;
    println!(
        "    parent: the child answers {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    let status = client.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    drop(conn);
    drop(listener);
    println!(
        "\nremoved {} (the socket file); the pipe and the sockets closed with their last descriptors",
        sock_path.display()
    );
    Ok(())
}

/// The children: `send-words` (step 1, handed the child's ends of both
/// socket pairs) and `client PATH` (steps 2 and 3).
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    match role {
        "send-words" => send_words(),
        "client" => {
            let path = args.first().context("the socket's path")?;
            anyhow::ensure!(client(std::path::Path::new(path)) == 0, "the client failed");
            Ok(())
        }
        other => anyhow::bail!("unknown role {other:?}"),
    }
}

/// The child of step 1: sends the words on both sockets.
fn send_words() -> anyhow::Result<()> {
    let mut fds = child::handed_fds(2)?.into_iter();
    let (Some(dgram), Some(stream)) = (fds.next(), fds.next()) else {
        anyhow::bail!("two sockets were expected");
    };
    let (dgram_child, stream_child) = (UnixDatagram::from(dgram), UnixStream::from(stream));
    let me = std::process::id();
    let mut s = &stream_child;
    for w in WORDS {
        let ok = dgram_child.send(w.as_bytes()).is_ok() && s.write_all(w.as_bytes()).is_ok();
        println!(
            "    child {me}: send({w:?}) on both sockets{}",
            if ok { "" } else { " FAILED" }
        );
    }
    Ok(())
}

/// The child of steps 2 and 3; returns its exit code.
fn client(path: &std::path::Path) -> i32 {
    let me = std::process::id();
    let s = match UnixSeqpacket::connect(path) {
        Ok(s) => s,
        Err(e) => {
            println!("    child {me}: connect failed: {e}");
            return 1;
        }
    };
    println!(
        "    child {me}: socket() + connect({}) -> fd {}",
        path.display(),
        s.as_raw_fd()
    );
    if s.send(format!("hello from pid {me}").as_bytes()).is_err() {
        return 1;
    }
    let mut buf = [0u8; 64];
    let Ok((n, fds)) = s.recv_fds(&mut buf) else {
        return 1;
    };
    let Some(fd) = fds.into_iter().next() else {
        println!("    child {me}: no descriptor arrived");
        return 1;
    };
    let raw = fd.as_raw_fd();
    println!(
        "    child {me}: recvmsg() -> {:?} and a descriptor, here numbered fd {raw}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut reader = PipeReader::from(fd);
    let mut got = String::new();
    if reader.read_to_string(&mut got).is_err() {
        return 1;
    }
    println!(
        "    child {me}: read {} bytes from fd {raw}: {got:?}",
        got.len()
    );
    let answer = format!("passed fd worked: read {got:?} from my fd {raw}");
    if s.send(answer.as_bytes()).is_err() {
        return 1;
    }
    0
}
