//! The harness: what a mechanism implements ([`Mechanism`], [`Link`]) and
//! the measuring loops both processes run over it.
//!
//! Every message starts with a 4-byte little-endian *tag*: a sequence
//! number shifted left by two, plus the flags [`SYNC`] and [`STOP`]. The
//! rest of the message is payload the mechanism carries but the harness
//! does not look at. Mechanisms without a payload (floor, futex, eventfd)
//! carry only the tag.
//!
//! # A mechanism in one file
//!
//! A mechanism makes its resources in the parent ([`Mechanism::setup`]),
//! opens the other end in the peer ([`Mechanism::peer`]) and gives each side
//! a [`Link`] whose `send`/`recv` move one whole message, honouring the
//! case's wait mode (block: blocking calls; poll: non-blocking calls retried
//! with [`relax`], never sleeping). Then it is listed in
//! [`crate::mechs::ALL`]. For instance, a pipe pair:
//!
//! ```no_run
//! use std::io;
//! use ipcworks_bench::harness::{Case, Handoff, Link, Mechanism, Setup};
//! use ipcworks_bench::mechs::fd::Stream;
//!
//! pub struct MyPipe;
//!
//! impl Mechanism for MyPipe {
//!     fn name(&self) -> &'static str {
//!         "my-pipe"
//!     }
//!     // Optional: `supports` (skip a case with a reason) and
//!     // `throughput_wait` (Wait::Poll for a spin-only mechanism).
//!     fn setup(&self, case: &Case) -> io::Result<Setup> {
//!         let (ping_r, ping_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
//!         let (pong_r, pong_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
//!         let mine = Stream::new(pong_r, Some(ping_w), case.wait)?;
//!         // The peer inherits ping_r and pong_w, in this order.
//!         Ok(Setup::ready(vec![ping_r, pong_w], vec![], mine))
//!     }
//!     fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
//!         Ok(Box::new(Stream::new(h.fd(0)?, Some(h.fd(1)?), case.wait)?))
//!     }
//! }
//! ```
//!
//! Named resources go in [`Setup::args`] (and a guard that removes them in
//! [`Setup::keep`]); a parent side that can only finish once the peer runs
//! (accepting a connection, opening a FIFO) goes in [`Setup::connect`].

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::io::Errno;

use crate::schema::{Metric, Wait};
use crate::stats::Recorder;

/// Message size of the round trips every mechanism gets (`--rtt-sizes`
/// adds others).
pub const RTT_SIZE: usize = 64;

/// Tag flag: the receiver of a throughput stream answers this message
/// with one message (the pipeline is drained).
pub const SYNC: u32 = 1;
/// Tag flag: the last message; the peer answers it and exits.
pub const STOP: u32 = 2;
/// Fewest round trips measured, whatever the budget.
pub const MIN_RTT_SAMPLES: u64 = 20;
/// Most round trips measured, whatever the budget.
pub const MAX_RTT_SAMPLES: u64 = 20_000_000;

/// One measurement to make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// Round trip or throughput.
    pub metric: Metric,
    /// Blocking or polling calls.
    pub wait: Wait,
    /// Message size in bytes (at least 8).
    pub size: usize,
}

/// One side of an open connection between the two processes. Both sides
/// know the message size; `recv` fills the whole buffer with exactly one
/// message. The wait mode was chosen when the link was opened: in
/// [`Wait::Poll`] mode calls never sleep, they retry non-blocking calls.
pub trait Link {
    /// Sends one whole message.
    fn send(&mut self, msg: &[u8]) -> io::Result<()>;
    /// Receives one whole message of `buf.len()` bytes into `buf`. (A
    /// vector, not a slice, so a link over the library's message interface
    /// receives straight into it with `recv_into_until`, as a link over a
    /// descriptor reads into it: one copy either way. A message of another
    /// length is an error.)
    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()>;
}

/// Finishes the parent's side once the peer runs (accept a connection,
/// open a FIFO, …); must give up by the deadline.
pub type Connect = Box<dyn FnOnce(Instant) -> io::Result<Box<dyn Link>>>;

/// What [`Mechanism::setup`] makes in the parent for one case.
pub struct Setup {
    /// Descriptors the peer inherits, handed to [`Mechanism::peer`] in the
    /// same order. The parent closes its copies once the peer runs.
    pub fds: Vec<OwnedFd>,
    /// Names, paths, ports… for the peer.
    pub args: Vec<String>,
    /// The parent's side, finished after the peer started.
    pub connect: Connect,
    /// Kept alive until the case ends, then dropped (e.g. a guard that
    /// unlinks a name).
    pub keep: Vec<Box<dyn std::any::Any>>,
}

impl Setup {
    /// A setup whose parent side is ready at once.
    pub fn ready(fds: Vec<OwnedFd>, args: Vec<String>, link: impl Link + 'static) -> Setup {
        Setup {
            fds,
            args,
            connect: Box::new(move |_| Ok(Box::new(link) as Box<dyn Link>)),
            keep: Vec::new(),
        }
    }

    /// Keeps `guard` alive until the case ends.
    pub fn keep(mut self, guard: impl std::any::Any) -> Setup {
        self.keep.push(Box::new(guard));
        self
    }
}

/// What the peer receives from [`Setup`].
#[derive(Debug, Default)]
pub struct Handoff {
    /// The inherited descriptors, in [`Setup::fds`] order.
    pub fds: Vec<Option<OwnedFd>>,
    /// [`Setup::args`].
    pub args: Vec<String>,
}

impl Handoff {
    /// Takes descriptor `i`.
    pub fn fd(&mut self, i: usize) -> io::Result<OwnedFd> {
        self.fds
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| io::Error::other(format!("peer: descriptor #{i} was not handed over")))
    }

    /// Argument `i`.
    pub fn arg(&self, i: usize) -> io::Result<&str> {
        self.args
            .get(i)
            .map(String::as_str)
            .ok_or_else(|| io::Error::other(format!("peer: argument #{i} missing")))
    }
}

/// An IPC mechanism under test. One implementation per file in
/// `src/mechs/`, registered in [`crate::mechs::ALL`].
pub trait Mechanism: Sync {
    /// The name used in `--only`, the table and `results.json`.
    fn name(&self) -> &'static str;

    /// `Err(reason)` when this case cannot be measured (no payload, a size
    /// limit, …); it is reported as skipped.
    fn supports(&self, case: &Case) -> Result<(), String> {
        let _ = case;
        Ok(())
    }

    /// True for other projects' IPC (iceoryx2, ipc-channel), run only with
    /// `--peers`.
    fn is_peer(&self) -> bool {
        false
    }

    /// Whether a receive reports a peer killed with SIGKILL (an error
    /// rather than waiting for ever): such mechanisms get a dead-peer
    /// detection figure.
    fn detects_death(&self) -> bool {
        false
    }

    /// The wait mode its throughput is measured with (blocking unless the
    /// mechanism only spins).
    fn throughput_wait(&self) -> Wait {
        Wait::Block
    }

    /// Parent side, before the peer starts: creates the resources.
    fn setup(&self, case: &Case) -> io::Result<Setup>;

    /// Peer side, in the child process: opens its end.
    fn peer(&self, case: &Case, handoff: Handoff) -> io::Result<Box<dyn Link>>;
}

/// Reads the tag of a message.
pub fn tag(msg: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&msg[..4]);
    u32::from_le_bytes(b)
}

/// Writes the tag of a message.
pub fn set_tag(msg: &mut [u8], tag: u32) {
    msg[..4].copy_from_slice(&tag.to_le_bytes());
}

fn make_tag(seq: &mut u32, flags: u32) -> u32 {
    *seq = seq.wrapping_add(1).max(1) & (u32::MAX >> 2);
    (*seq << 2) | flags
}

static YIELD: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Chooses what a polling loop does between tries: spin (the default), or
/// give the core away with `sched_yield` — when both processes share one
/// core, spinning would only burn the time slice the peer needs.
pub fn set_yield(yield_core: bool) {
    YIELD.store(yield_core, std::sync::atomic::Ordering::Relaxed);
}

/// Whether polling loops yield the core (see [`set_yield`]).
pub fn yields() -> bool {
    YIELD.load(std::sync::atomic::Ordering::Relaxed)
}

/// One pause of a polling loop: never sleeps (see [`set_yield`]).
#[inline]
pub fn relax() {
    if YIELD.load(std::sync::atomic::Ordering::Relaxed) {
        rustix::thread::sched_yield();
    } else {
        std::hint::spin_loop();
    }
}

/// Retries a rustix call on `EINTR`, and on `EAGAIN` in poll mode
/// (spinning, never sleeping).
pub fn retry<T>(wait: Wait, mut f: impl FnMut() -> rustix::io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) if wait == Wait::Poll => relax(),
            Err(e) => return Err(e.into()),
        }
    }
}

/// [`retry`] for calls that report through `io::Error` (libc).
pub fn retry_io<T>(wait: Wait, mut f: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && wait == Wait::Poll => relax(),
            Err(e) => return Err(e),
        }
    }
}

/// Parent: measures round trips of `size`-byte messages: warm-up for
/// `warm`, then samples for `budget`; then stops the peer. Returns the
/// samples (one round of the case: the runner merges its rounds).
pub fn rtt(
    link: &mut dyn Link,
    size: usize,
    warm: Duration,
    budget: Duration,
) -> io::Result<Recorder> {
    let mut msg = vec![0xA5u8; size];
    let mut back = vec![0u8; size];
    let mut seq = 0u32;
    let mut round = |link: &mut dyn Link, flags: u32| -> io::Result<()> {
        let t = make_tag(&mut seq, flags);
        set_tag(&mut msg, t);
        link.send(&msg)?;
        link.recv(&mut back)?;
        if tag(&back) != t {
            return Err(io::Error::other(format!(
                "the peer echoed tag {:#x}, expected {t:#x}",
                tag(&back)
            )));
        }
        Ok(())
    };
    let start = Instant::now();
    let mut n = 0u64;
    while n < MIN_RTT_SAMPLES || start.elapsed() < warm {
        round(link, 0)?;
        n += 1;
    }
    let mut rec = Recorder::new();
    let start = Instant::now();
    loop {
        let t0 = Instant::now();
        round(link, 0)?;
        let dt = t0.elapsed();
        rec.record(u64::try_from(dt.as_nanos()).unwrap_or(u64::MAX));
        let n = rec.len();
        if n >= MAX_RTT_SAMPLES || (n >= MIN_RTT_SAMPLES && t0 + dt - start >= budget) {
            break;
        }
    }
    round(link, STOP)?;
    Ok(rec)
}

/// A clock looked at about once a millisecond, not on every message: a
/// clock read costs tens of nanoseconds, as much as a whole small message
/// through the fastest mechanisms, and reading it per message would
/// measure the harness instead.
struct Sparse {
    start: Instant,
    /// The message count at which to look next.
    next: u64,
}

impl Sparse {
    fn new(start: Instant) -> Sparse {
        Sparse { start, next: 0 }
    }

    /// Whether `limit` has passed since the start, looking at the clock only
    /// when `n` (messages so far) reaches the next look; then it plans the
    /// next look about a millisecond of messages ahead, at the rate so far.
    fn passed(&mut self, n: u64, limit: Duration) -> bool {
        if n < self.next {
            return false;
        }
        let el = self.start.elapsed();
        let per_ms = u128::from(n) * 1_000_000 / el.as_nanos().max(1);
        self.next = n + u64::try_from(per_ms).unwrap_or(u64::MAX).clamp(1, 1 << 16);
        el >= limit
    }
}

/// Parent: streams `size`-byte messages one way for `budget` after a
/// `warm` warm-up; returns (messages, seconds) from the first message to
/// the peer's acknowledgement of the last.
pub fn throughput(
    link: &mut dyn Link,
    size: usize,
    warm: Duration,
    budget: Duration,
) -> io::Result<(u64, f64)> {
    let mut msg = vec![0x5Au8; size];
    let mut ack = vec![0u8; size];
    let mut seq = 0u32;
    let start = Instant::now();
    let mut clock = Sparse::new(start);
    let mut n = 0u64;
    while n < 4 || !clock.passed(n, warm) {
        let t = make_tag(&mut seq, 0);
        set_tag(&mut msg, t);
        link.send(&msg)?;
        n += 1;
    }
    let t = make_tag(&mut seq, SYNC);
    set_tag(&mut msg, t);
    link.send(&msg)?;
    link.recv(&mut ack)?;
    let start = Instant::now();
    let mut clock = Sparse::new(start);
    let mut n = 0u64;
    loop {
        n += 1;
        let last = n >= 4 && clock.passed(n, budget);
        let t = make_tag(&mut seq, if last { STOP } else { 0 });
        set_tag(&mut msg, t);
        link.send(&msg)?;
        if last {
            break;
        }
    }
    link.recv(&mut ack)?;
    let secs = start.elapsed().as_secs_f64();
    Ok((n, secs))
}

/// Peer: answers the parent until it says stop.
pub fn serve(link: &mut dyn Link, case: &Case) -> io::Result<()> {
    let mut buf = vec![0u8; case.size];
    loop {
        link.recv(&mut buf)?;
        let t = tag(&buf);
        match case.metric {
            Metric::Rtt => link.send(&buf)?,
            Metric::Throughput if t & (SYNC | STOP) != 0 => link.send(&buf)?,
            Metric::Throughput => {}
        }
        if t & STOP != 0 {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sparse_clock_looks_about_once_a_millisecond_and_ends_on_time() {
        let start = Instant::now();
        let mut clock = Sparse::new(start);
        let limit = Duration::from_millis(30);
        let (mut n, mut looks) = (0u64, 0u64);
        loop {
            n += 1;
            let before = clock.next;
            if clock.passed(n, limit) {
                break;
            }
            if clock.next != before {
                looks += 1;
            }
            // A "message" of about a microsecond.
            let t = Instant::now();
            while t.elapsed() < Duration::from_micros(1) {}
        }
        let took = start.elapsed();
        // Ends after the limit; the upper bound only catches a clock that
        // stops looking (a loaded machine may preempt this thread for long).
        assert!(
            took >= limit && took < limit + Duration::from_secs(5),
            "{took:?}"
        );
        // Thousands of messages, a few dozen looks at the clock.
        assert!(n > 1000, "{n} messages");
        assert!(looks < n / 10, "{looks} looks for {n} messages");
    }
}
