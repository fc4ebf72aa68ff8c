//! `ipcworks demo pipe`: an anonymous pipe carries bytes one way only
//! (half duplex); two pipes make a full-duplex conversation; a named pipe
//! (FIFO) lets two unrelated processes meet by a path.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use ipcworks::pipe::{Duplex, Fifo, PipeReader, PipeWriter, pipe};
use ipcworks::process::{remove_on_terminate, spawn_worker};
use ipcworks::registry::{self, Kind};

use super::{child, step};

fn ms(t: Instant) -> String {
    format!("{:.2} ms", t.elapsed().as_secs_f64() * 1e3)
}

pub fn run() -> anyhow::Result<()> {
    let pid = std::process::id();
    let fifo_path = PathBuf::from(format!("/tmp/ipcworks-demo-pipe-{pid}.fifo"));
    let _ = remove_on_terminate(&[(Kind::Fifo, &registry::path_name(&fifo_path))]);
    println!("This process (the parent) is pid {pid}.");

    step(
        1,
        "An anonymous pipe is half duplex: the parent writes, the child can only read",
    );
    let (r, w) = pipe().context("pipe")?;
    let (r_fd, w_fd) = (r.as_raw_fd(), w.as_raw_fd());
    println!("    pipe() -> fd {r_fd} (read end) and fd {w_fd} (write end)");
    println!("    each process keeps only the end it uses: the child is handed the read end alone");
    let t = Instant::now();
    let reader = child::start("pipe", "read-end", &[w_fd.to_string()], &[r.as_fd()])?;
    drop(r);
    println!("    parent: closed its copy of the read end (fd {r_fd})");
    let mut w = w;
    w.write_all(b"hello child").context("write to the pipe")?;
    drop(w);
    println!(
        "    parent: wrote \"hello child\" into fd {w_fd} and closed it (the child then sees end of stream)"
    );
    let status = reader.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    println!(
        "    Bytes went one way only; an answer needs a second pipe. [{}]",
        ms(t)
    );

    step(
        2,
        "Full duplex with two pipes: pipe 1 parent -> child, pipe 2 child -> parent",
    );
    let (mut mine, mut theirs) = Duplex::pair().context("two pipes")?;
    println!(
        "    parent keeps: write fd {} (pipe 1), read fd {} (pipe 2)",
        mine.writer().as_raw_fd(),
        mine.reader().as_raw_fd()
    );
    println!(
        "    child keeps:  read fd {} (pipe 1), write fd {} (pipe 2)",
        theirs.reader().as_raw_fd(),
        theirs.writer().as_raw_fd()
    );
    let t = Instant::now();
    let (their_r, their_w) = theirs.into_parts();
    let other = child::start("pipe", "duplex", &[], &[their_r.as_fd(), their_w.as_fd()])?;
    drop((their_r, their_w));
    let msg = format!("ping from {pid}");
    mine.write_all(msg.as_bytes()).context("write")?;
    let mut buf = [0u8; 64];
    let n = mine.read(&mut buf).context("read")?;
    println!(
        "    parent: sent {msg:?}, received {:?} [{}]",
        String::from_utf8_lossy(&buf[..n]),
        ms(t)
    );
    let status = other.wait()?;
    anyhow::ensure!(status.success(), "the child failed: {status}");
    drop(mine);
    println!("    full duplex: both sides sent before either read, each on its own pipe");

    step(
        3,
        "A named pipe (FIFO): two unrelated processes meet by a path",
    );
    let fifo = Fifo::create(&fifo_path).context("mkfifo")?;
    println!("    parent: mkfifo({}) mode 0600", fifo_path.display());
    // The writer comes half a second late, to show the reader waiting.
    let script = "sleep 0.5; echo \"hello from sh, pid $$, which shares no descriptor with the reader\" > \"$1\"";
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(script).arg("sh").arg(&fifo_path);
    let t = Instant::now();
    // Tied to us, so the writer dies if this demo is interrupted while it
    // waits for a reader.
    let sh = spawn_worker(cmd).context("starting sh")?;
    let sh_pid = sh.id();
    println!(
        "    started an unrelated program by exec: sh (pid {sh_pid}) runs `sleep 0.5; echo ... > {}`",
        fifo_path.display()
    );
    let mut reader = fifo
        .open_reader(Some(Duration::from_secs(10)))
        .context("opening the FIFO for reading")?;
    println!(
        "    parent: open({}, O_RDONLY) -> fd {}; waited {} for the writer's first bytes",
        fifo_path.display(),
        reader.as_raw_fd(),
        ms(t)
    );
    let mut got = String::new();
    reader
        .read_to_string(&mut got)
        .context("reading the FIFO")?;
    let status = sh.wait()?;
    println!(
        "    parent: read {:?} until end of stream [{}]",
        got.trim_end(),
        ms(t)
    );
    println!("    sh (pid {sh_pid}) exited with {status}: it found the FIFO by its name alone");
    drop(reader);
    drop(fifo);
    println!(
        "\nremoved {} (exists now: {})",
        fifo_path.display(),
        fifo_path.symlink_metadata().is_ok()
    );
    Ok(())
}

/// The children: `read-end W` (step 1: handed the read end; `W` is the
/// write end's number in the parent) and `duplex` (step 2: handed the
/// read end of pipe 1 and the write end of pipe 2).
pub(super) fn child(role: &str, args: &[String]) -> anyhow::Result<()> {
    let me = std::process::id();
    match role {
        "read-end" => {
            let w_fd = args.first().context("the write end's number")?;
            let r = child::handed_fds(1)?.remove(0);
            let r_fd = r.as_raw_fd();
            println!(
                "    child {me}: holds the read end only (fd {r_fd}); the write end (fd {w_fd}) was not handed over"
            );
            let mut r = PipeReader::from(r);
            let mut got = String::new();
            let ok = r.read_to_string(&mut got).is_ok();
            println!(
                "    child {me}: read {got:?} from fd {r_fd}{}",
                if ok { "" } else { " (read failed)" }
            );
            // The textbook step the library will not let us express (a
            // PipeReader has no write): write(2) on the read end, by hand.
            match rustix::io::write(&r, b"thanks") {
                Ok(n) => println!("    child {me}: write() on fd {r_fd} wrote {n} bytes?!"),
                Err(e) => println!(
                    "    child {me}: write() back on fd {r_fd} -> error {} ({}): the reader cannot write back",
                    errno_name(e),
                    std::io::Error::from(e)
                ),
            }
        }
        "duplex" => {
            let mut fds = child::handed_fds(2)?.into_iter();
            let (Some(r), Some(w)) = (fds.next(), fds.next()) else {
                anyhow::bail!("two pipe ends were expected");
            };
            let mut theirs = Duplex::from_parts(PipeReader::from(r), PipeWriter::from(w));
            // Both sides write first, then read: both directions at once.
            let msg = format!("pong from {me}");
            let ok = theirs.write_all(msg.as_bytes()).is_ok();
            let mut buf = [0u8; 64];
            let n = theirs.read(&mut buf).unwrap_or(0);
            println!(
                "    child {me}: sent {msg:?}{}, received {:?}",
                if ok { "" } else { " (FAILED)" },
                String::from_utf8_lossy(&buf[..n])
            );
        }
        other => anyhow::bail!("unknown role {other:?}"),
    }
    Ok(())
}

fn errno_name(e: rustix::io::Errno) -> &'static str {
    match e {
        rustix::io::Errno::BADF => "EBADF",
        rustix::io::Errno::PIPE => "EPIPE",
        rustix::io::Errno::INVAL => "EINVAL",
        _ => "errno",
    }
}
