//! `shm-async`, `shm-async-park` and `unix-async`: round trips between two
//! processes whose ends each run a current-thread tokio runtime and
//! `.await` every receive (ipcworks' feature `tokio`).
//!
//! - `shm-async`: the shared-memory channel through
//!   [`ipcworks::tokio::AsyncReceiver`] with the default wait: the task
//!   re-polls itself for up to 100 µs, then parks on the helper thread's
//!   eventfd in tokio's reactor. Compare with `shm` (the synchronous
//!   default wait).
//! - `shm-async-park`: the same, parking at once (`WaitStrategy::Block`):
//!   every receive that finds the channel empty is a futex wake of the
//!   helper thread, an eventfd write and an epoll wake-up of the runtime.
//!   Compare with `unix-async`.
//! - `unix-async`: the reference, tokio's own `tokio::net::UnixStream` over
//!   a socket pair, `write_all`/`read_exact` of each message.
//!
//! Block rows only: an async receive that finds nothing parks (the spin of
//! `shm-async` is its first 100 µs).

use std::io;

use ::tokio::io::{AsyncReadExt, AsyncWriteExt};
use ::tokio::runtime::Runtime;
use ipcworks::channel::{Channel, WaitStrategy};
use ipcworks::tokio::{AsyncReceiver, AsyncSender};
use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup};
use crate::schema::Wait;

/// A current-thread runtime with its I/O and time drivers.
fn runtime() -> io::Result<Runtime> {
    ::tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn to_io(e: ipcworks::Error) -> io::Error {
    e.into()
}

/// The channel rows.
pub struct ShmAsync {
    name: &'static str,
    strategy: fn() -> WaitStrategy,
}

/// The default wait: spin briefly, then park.
pub static SHM: ShmAsync = ShmAsync {
    name: "shm-async",
    strategy: WaitStrategy::default,
};

/// Park at once.
pub static SHM_PARK: ShmAsync = ShmAsync {
    name: "shm-async-park",
    strategy: || WaitStrategy::Block,
};

/// One end: its runtime and its async channel ends.
struct ShmEnds {
    tx: AsyncSender,
    rx: AsyncReceiver,
    // Dropped after the ends (fields drop in order).
    rt: Runtime,
    _keep: (Channel, Channel),
}

/// Awaits `fut` on `rt`: one poll first, as an `.await` inside a running
/// task would make, and `block_on` only when that finds nothing. (The
/// harness calls `send` and `recv` one message at a time; a program runs
/// its loop inside one task. Entering the runtime for every message would
/// add a `block_on`'s setup, about 200 ns, that no program pays.)
fn run<F: std::future::Future>(rt: &Runtime, fut: F) -> F::Output {
    let _in_rt = rt.enter();
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => rt.block_on(fut),
    }
}

impl Link for ShmEnds {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        run(&self.rt, self.tx.send(msg)).map_err(to_io)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let want = buf.len();
        run(&self.rt, self.rx.recv_into(buf)).map_err(to_io)?;
        if buf.len() != want {
            return Err(io::Error::other(format!(
                "received {} bytes, expected {want}",
                buf.len()
            )));
        }
        Ok(())
    }
}

impl ShmAsync {
    fn channel(case: &Case) -> io::Result<Channel> {
        let cap = match case.metric {
            crate::schema::Metric::Rtt => (case.size + 64).saturating_mul(8).max(4096),
            crate::schema::Metric::Throughput => (case.size + 64).saturating_mul(3).max(1 << 20),
        };
        Channel::builder()
            .capacity_bytes(cap)
            .max_message(case.size)
            .anonymous()
            .map_err(to_io)
    }

    fn ends(&self, ping: Channel, pong: Channel, parent: bool) -> io::Result<Box<dyn Link>> {
        let (out, inn) = if parent {
            (&ping, &pong)
        } else {
            (&pong, &ping)
        };
        let rt = runtime()?;
        let (tx, rx) = {
            let _in_rt = rt.enter();
            let mut rx = inn.receiver().map_err(to_io)?;
            rx.set_wait_strategy((self.strategy)());
            (
                AsyncSender::new(out.sender().map_err(to_io)?).map_err(to_io)?,
                AsyncReceiver::new(rx).map_err(to_io)?,
            )
        };
        Ok(Box::new(ShmEnds {
            tx,
            rx,
            rt,
            _keep: (ping, pong),
        }))
    }
}

impl Mechanism for ShmAsync {
    fn name(&self) -> &'static str {
        self.name
    }

    fn detects_death(&self) -> bool {
        // A sender killed with SIGKILL ends an awaiting receive with
        // Disconnected (the helper watches the senders' pidfds).
        true
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        match case.wait {
            Wait::Block => Ok(()),
            Wait::Poll => Err(format!(
                "{} awaits (parks when idle): its figures are the block rows",
                self.name
            )),
        }
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let ping = Self::channel(case)?;
        let pong = Self::channel(case)?;
        let fds = vec![
            ping.inheritable_fd().map_err(to_io)?,
            pong.inheritable_fd().map_err(to_io)?,
        ];
        let link = self.ends(ping, pong, true)?;
        Ok(Setup {
            fds,
            args: vec![],
            connect: Box::new(move |_| Ok(link)),
            keep: Vec::new(),
        })
    }

    fn peer(&self, _case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        let ping = Channel::from_fd(h.fd(0)?).map_err(to_io)?;
        let pong = Channel::from_fd(h.fd(1)?).map_err(to_io)?;
        self.ends(ping, pong, false)
    }
}

/// tokio's own Unix stream socket, the reference row.
pub struct UnixAsync;

/// One end: its runtime and tokio's stream.
struct UnixEnds {
    s: ::tokio::net::UnixStream,
    rt: Runtime,
}

impl Link for UnixEnds {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        run(&self.rt, self.s.write_all(msg))
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        run(&self.rt, self.s.read_exact(buf)).map(drop)
    }
}

impl UnixAsync {
    fn link(fd: std::os::fd::OwnedFd) -> io::Result<Box<dyn Link>> {
        let rt = runtime()?;
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true)?;
        let s = {
            let _in_rt = rt.enter();
            ::tokio::net::UnixStream::from_std(std)?
        };
        Ok(Box::new(UnixEnds { s, rt }))
    }
}

impl Mechanism for UnixAsync {
    fn name(&self) -> &'static str {
        "unix-async"
    }

    fn detects_death(&self) -> bool {
        true
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        match case.wait {
            Wait::Block => Ok(()),
            Wait::Poll => Err("unix-async awaits: its figures are the block rows".into()),
        }
    }

    fn setup(&self, _case: &Case) -> io::Result<Setup> {
        let (a, b) = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let link = Self::link(a)?;
        Ok(Setup {
            fds: vec![b],
            args: vec![],
            connect: Box::new(move |_| Ok(link)),
            keep: vec![],
        })
    }

    fn peer(&self, _case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        Self::link(h.fd(0)?)
    }
}
