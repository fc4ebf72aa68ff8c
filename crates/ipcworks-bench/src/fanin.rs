//! Fan-in (`ipcworks bench --fan-in`): 1, 2 and 4 producer processes
//! sending into one receiver, the total messages per second.
//!
//! For `shm` (one channel: the producers share its reservation lock),
//! `queue` (one native queue), `mq` (one POSIX queue) and `unix` (one
//! connection per producer into one [`socket::Server`](ipcworks::socket::Server)
//! in the parent, length-prefixed frames), each at 64 B and 4 KiB. Every
//! end waits the library's default way (the channel spins, then sleeps;
//! the queues and the socket block in the kernel) and nobody is pinned: on
//! a machine with fewer cores than producers the scheduler shares the
//! cores out, and a producer preempted in the middle of its reservation
//! holds the others up — the figure shows what that costs.
//!
//! The receiver (a thread of the parent) counts what arrives per producer:
//! every message carries its producer's number and a sequence number, and
//! a producer's last message ([`harness::STOP`](crate::harness::STOP)) says how many it sent. A
//! message lost, repeated or out of order, or a count that does not add
//! up, fails the case ([`Tally`]): the total is only reported when every
//! message arrived exactly once.
//!
//! Timing: once every producer is ready the parent lets them run for the
//! warm-up, reads the receiver's count and the clock, lets them run for the
//! case's time, reads both again (the figure is the difference), then
//! closes the *stop pipe*: each producer sees its end of file, sends its
//! last message and exits. The producers never look at a clock.

use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ipcworks::channel::Channel;
use ipcworks::frame::{self, Framing};
use ipcworks::message::{Deadline, MessageReceiver, MessageSender, Meta};
use ipcworks::socket::ServerOptions;

use crate::harness::{Case, Handoff, STOP};
use crate::peer::{self, Launcher, Peer, Role};
use crate::schema::{Metric, Wait};

/// Producer counts measured.
pub const PRODUCERS: &[u32] = &[1, 2, 4];
/// Message sizes measured.
pub const SIZES: &[usize] = &[64, 4096];
/// The mechanisms measured, in this order.
pub const KINDS: &[&str] = &["shm", "queue", "mq", "unix"];
/// Bytes every fan-in message starts with: the producer's word (its
/// number shifted left by two, plus flags) and a 64-bit sequence number.
pub const HEADER: usize = 12;
/// Messages the native queue holds (`mq` holds what the system allows,
/// `fs.mqueue.msg_max`, 10 by default; the channel a megabyte of ring).
const QUEUE_CAPACITY: usize = 64;
/// The longest the receiver waits for the next message before the case
/// fails (a producer that died, a lost wake-up).
pub const QUIET: Duration = Duration::from_secs(10);

/// Writes a fan-in message's header: producer `id`, sequence number
/// `seq`; with `stop`, the producer's last message, whose `seq` is how
/// many it sent before it.
pub fn stamp(msg: &mut [u8], id: u32, seq: u64, stop: bool) {
    let word = (id << 2) | if stop { STOP } else { 0 };
    msg[..4].copy_from_slice(&word.to_le_bytes());
    msg[4..HEADER].copy_from_slice(&seq.to_le_bytes());
}

/// What the receiver counts, per producer: every message must arrive once,
/// in its producer's order, and the producer's count must match.
#[derive(Debug)]
pub struct Tally {
    /// The sequence number expected next from each producer.
    next: Vec<u64>,
    stopped: Vec<bool>,
    /// Producers that have not sent their last message yet.
    left: usize,
    /// Messages taken (last messages not counted).
    seen: u64,
    /// `seen`, for the parent's clock to read while the receiver runs.
    count: Arc<AtomicU64>,
}

impl Tally {
    /// A tally of `producers` producers.
    pub fn new(producers: usize) -> Tally {
        Tally {
            next: vec![0; producers],
            stopped: vec![false; producers],
            left: producers,
            seen: 0,
            count: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Messages taken so far, readable from another thread.
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }

    /// Messages taken so far (last messages not counted).
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// Takes one message: `Ok(true)` once every producer has sent its last
    /// message; `Err` says what was lost, repeated or unexpected.
    pub fn take(&mut self, msg: &[u8]) -> Result<bool, String> {
        if msg.len() < HEADER {
            return Err(format!("a message of {} bytes has no header", msg.len()));
        }
        let word = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let mut s = [0u8; 8];
        s.copy_from_slice(&msg[4..HEADER]);
        let seq = u64::from_le_bytes(s);
        let id = (word >> 2) as usize;
        let Some(next) = self.next.get_mut(id) else {
            return Err(format!(
                "a message from producer {id}, which does not exist"
            ));
        };
        if self.stopped[id] {
            return Err(format!("producer {id}: message {seq} after its last one"));
        }
        if word & STOP != 0 {
            if seq != *next {
                return Err(format!(
                    "producer {id} sent {seq} messages, {} arrived",
                    *next
                ));
            }
            self.stopped[id] = true;
            self.left -= 1;
            return Ok(self.left == 0);
        }
        if seq != *next {
            return Err(if seq < *next {
                format!("producer {id}: message {seq} arrived twice (or out of order)")
            } else {
                format!(
                    "producer {id}: messages {} to {} were lost (message {seq} arrived next)",
                    *next,
                    seq - 1
                )
            });
        }
        *next += 1;
        self.seen += 1;
        self.count.store(self.seen, Ordering::Relaxed);
        Ok(false)
    }
}

/// The label of a fan-in case: `shm fan-in 4 producers 64 B`.
pub fn label(kind: &str, producers: u32, size: usize) -> String {
    format!(
        "{kind} fan-in {producers} producer{} {}",
        if producers == 1 { "" } else { "s" },
        crate::units::human_size(size as u64)
    )
}

/// The case a fan-in measures (a one-way stream, default waits).
pub fn case(size: usize) -> Case {
    Case {
        metric: Metric::Throughput,
        wait: Wait::Block,
        size,
    }
}

/// Whether `kind` can carry `size`-byte messages here; the reason when not.
pub fn supports(kind: &str, size: usize) -> Result<(), String> {
    if size < HEADER {
        return Err(format!(
            "fan-in messages carry a {HEADER}-byte header: {size} bytes is too small"
        ));
    }
    match kind {
        "queue" if size > ipcworks::queue::MAX_MESSAGE => Err(format!(
            "messages above {} bytes",
            ipcworks::queue::MAX_MESSAGE
        )),
        "shm" | "queue" | "mq" | "unix" => Ok(()),
        _ => Err(format!("{kind} has no fan-in case")),
    }
}

/// The parent's end of the stop pipe: dropping it tells every producer
/// to stop.
pub(crate) struct StopPipe {
    /// Kept by the parent; closed to say stop.
    pub(crate) write: Option<OwnedFd>,
    /// Handed to every producer.
    pub(crate) read: OwnedFd,
}

impl StopPipe {
    pub(crate) fn new() -> io::Result<StopPipe> {
        let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
        Ok(StopPipe {
            write: Some(write),
            read,
        })
    }

    /// Tells the producers to stop.
    pub(crate) fn stop(&mut self) {
        self.write = None;
    }
}

/// Peer side: a flag set once the parent closes the stop pipe (or dies),
/// by a thread that waits in `read(2)` on it.
pub(crate) fn watch(fd: OwnedFd) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let mut file = std::fs::File::from(fd);
        let mut b = [0u8; 16];
        loop {
            match file.read(&mut b) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        f.store(true, Ordering::Relaxed);
    });
    flag
}

/// How long [`window`] waits for the first message after the warm-up.
const FIRST_WAIT: Duration = Duration::from_secs(10);

/// Reads the count twice, `budget` apart after a `warm` warm-up: the
/// messages counted between, and the seconds.
pub(crate) fn window(count: &AtomicU64, warm: Duration, budget: Duration) -> (u64, f64) {
    std::thread::sleep(warm);
    // On a busy machine the producers may not have sent anything yet:
    // the window opens once messages flow (or after `FIRST_WAIT`, when a
    // window of nothing is what there is to say).
    let first = Instant::now() + FIRST_WAIT;
    while count.load(Ordering::Relaxed) == 0 && Instant::now() < first {
        std::thread::sleep(Duration::from_millis(1));
    }
    let (c0, t0) = (count.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(budget);
    let (c1, t1) = (count.load(Ordering::Relaxed), Instant::now());
    (c1.saturating_sub(c0), (t1 - t0).as_secs_f64())
}

/// Peers of one case: what every one of them is started with.
pub(crate) struct Crowd<'a> {
    pub(crate) launcher: &'a Launcher,
    /// The mechanism's name.
    pub(crate) kind: &'a str,
    /// Message size.
    pub(crate) size: usize,
    /// Arguments, the same for all.
    pub(crate) args: &'a [String],
}

impl Crowd<'_> {
    /// Starts `n` peers with `role(i)`, each handed the stop pipe's read
    /// end first, then `fds()`; waits until each is ready.
    pub(crate) fn start(
        &self,
        n: u32,
        stop: &StopPipe,
        fds: &dyn Fn() -> io::Result<Vec<OwnedFd>>,
        role: &dyn Fn(u32) -> Role,
    ) -> io::Result<Vec<Peer>> {
        let mut peers = Vec::new();
        for i in 0..n {
            let mut handed = vec![stop.read.try_clone()?];
            handed.extend(fds()?);
            peers.push(peer::spawn_as(
                self.launcher,
                self.kind,
                &case(self.size),
                None,
                handed,
                self.args,
                role(i),
            )?);
        }
        for p in &mut peers {
            p.wait_ready(Duration::from_secs(30))?;
        }
        Ok(peers)
    }
}

/// Parent side: one round of a fan-in case; (messages, seconds) counted
/// by the receiver between the warm-up and the end of the case's time.
pub fn measure(
    kind: &str,
    size: usize,
    producers: u32,
    launcher: &Launcher,
    warm: Duration,
    budget: Duration,
) -> io::Result<(u64, f64)> {
    supports(kind, size).map_err(io::Error::other)?;
    let run = Run {
        kind,
        size,
        producers,
        launcher,
        warm,
        budget,
    };
    match kind {
        "shm" => {
            let ch = Channel::builder()
                .capacity_bytes((size + 64).saturating_mul(3).max(1 << 20))
                .max_message(size)
                .anonymous()
                .map_err(io::Error::from)?;
            let rx = ch.receiver().map_err(io::Error::from)?;
            let fds = || -> io::Result<Vec<OwnedFd>> {
                Ok(vec![ch.inheritable_fd().map_err(io::Error::from)?])
            };
            run.messages(rx, &fds, &[])
        }
        "queue" => {
            let name = crate::mechs::unique("fanin");
            let q = ipcworks::queue::Queue::options()
                .capacity(QUEUE_CAPACITY)
                .max_message(size)
                .remove_on_drop(true)
                .create(&name)?;
            run.messages(q, &|| Ok(vec![]), &[name])
        }
        "mq" => {
            let name = crate::mechs::unique("fanin");
            let max = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(10usize);
            let q = ipcworks::mq::posix::Queue::options()
                .capacity(max.min(QUEUE_CAPACITY))
                .max_message(size)
                .remove_on_drop(true)
                .create(&name)?;
            run.messages(q, &|| Ok(vec![]), &[name])
        }
        "unix" => run.server(),
        _ => Err(io::Error::other(format!("{kind} has no fan-in case"))),
    }
}

/// One fan-in round's settings.
struct Run<'a> {
    kind: &'a str,
    size: usize,
    producers: u32,
    launcher: &'a Launcher,
    warm: Duration,
    budget: Duration,
}

impl Run<'_> {
    /// Producers started, the window measured, the producers told to stop;
    /// `done` says whether the receiver has taken every last message.
    fn drive(
        &self,
        stop: &mut StopPipe,
        fds: &dyn Fn() -> io::Result<Vec<OwnedFd>>,
        args: &[String],
        count: &AtomicU64,
    ) -> io::Result<((u64, f64), Vec<Peer>)> {
        let crowd = Crowd {
            launcher: self.launcher,
            kind: self.kind,
            size: self.size,
            args,
        };
        let started = crowd.start(self.producers, stop, fds, &|id| Role::Produce { id });
        let peers = match started {
            Ok(p) => p,
            Err(e) => {
                stop.stop();
                return Err(e);
            }
        };
        let figure = window(count, self.warm, self.budget);
        stop.stop();
        Ok((figure, peers))
    }

    /// Every producer exited cleanly.
    fn reap(peers: Vec<Peer>) -> io::Result<()> {
        for mut p in peers {
            p.finish(Duration::from_secs(10))?;
        }
        Ok(())
    }

    /// A receiver of the library's message interface on a thread of its own.
    fn messages<R: MessageReceiver + Send>(
        &self,
        mut rx: R,
        fds: &dyn Fn() -> io::Result<Vec<OwnedFd>>,
        args: &[String],
    ) -> io::Result<(u64, f64)> {
        let mut tally = Tally::new(self.producers as usize);
        let count = tally.counter();
        let mut stop = StopPipe::new()?;
        let size = self.size;
        std::thread::scope(|s| {
            let receiver = s.spawn(move || -> Result<(), String> {
                let mut buf = Vec::with_capacity(size);
                loop {
                    // A look first: the clock is read (for the deadline)
                    // only when the receiver has to wait, not per message.
                    match rx.recv_into_until(&mut buf, Deadline::Now) {
                        Err(ipcworks::Error::WouldBlock) => rx
                            .recv_into_until(&mut buf, Deadline::after(QUIET))
                            .map_err(|e| format!("receive: {e}"))?,
                        r => r.map_err(|e| format!("receive: {e}"))?,
                    };
                    if buf.len() != size {
                        return Err(format!("received {} bytes, expected {size}", buf.len()));
                    }
                    if tally.take(&buf)? {
                        return Ok(());
                    }
                }
            });
            let driven = self.drive(&mut stop, fds, args, &count);
            let received = receiver
                .join()
                .unwrap_or_else(|_| Err("the receiver panicked".into()));
            let (figure, peers) = driven?;
            received.map_err(io::Error::other)?;
            Self::reap(peers)?;
            Ok(figure)
        })
    }

    /// `unix`: one connection per producer into a socket server.
    fn server(&self) -> io::Result<(u64, f64)> {
        let dir = TempDir::new("fanin")?;
        let path = dir.0.join("s");
        let mut o = ServerOptions::new();
        o.framing(Framing::Frames)
            .max_message(self.size)
            .idle_timeout(None)
            .log(false);
        let server = o.bind_unix(&path)?;
        let handle = server.shutdown_handle();
        let mut tally = Tally::new(self.producers as usize);
        let count = tally.counter();
        let done = AtomicBool::new(false);
        let mut failed: Option<String> = None;
        let mut stop = StopPipe::new()?;
        let args = [path.to_string_lossy().into_owned()];
        std::thread::scope(|s| {
            let (done, failed) = (&done, &mut failed);
            let size = self.size;
            let serving = s.spawn(move || {
                server.run(move |_peer: &ipcworks::socket::Peer, msg: &[u8]| {
                    if failed.is_none() {
                        let r = if msg.len() == size {
                            tally.take(msg)
                        } else {
                            Err(format!("received {} bytes, expected {size}", msg.len()))
                        };
                        match r {
                            Ok(false) => {}
                            Ok(true) => done.store(true, Ordering::Release),
                            Err(e) => {
                                *failed = Some(e);
                                done.store(true, Ordering::Release);
                            }
                        }
                    }
                    None
                })
            });
            let driven = self.drive(&mut stop, &|| Ok(vec![]), &args, &count);
            let end = Instant::now() + QUIET;
            while !done.load(Ordering::Acquire) && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(1));
            }
            let all = done.load(Ordering::Acquire);
            handle.shutdown();
            let served = serving
                .join()
                .map_err(|_| io::Error::other("the server panicked"))?;
            let (figure, peers) = driven?;
            served?;
            if !all {
                return Err(io::Error::other(format!(
                    "not every producer's last message arrived within {QUIET:?}"
                )));
            }
            Self::reap(peers)?;
            Ok(figure)
        })
        .and_then(|figure| match failed {
            Some(e) => Err(io::Error::other(e)),
            None => Ok(figure),
        })
    }
}

/// A private folder removed on drop.
pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

impl TempDir {
    pub(crate) fn new(what: &str) -> io::Result<TempDir> {
        crate::mechs::temp_dir(what).map(TempDir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Peer side: producer `id` of a fan-in case; sends until the parent
/// closes the stop pipe (`h`'s first descriptor), then its last message.
pub(crate) fn produce(
    kind: &str,
    id: u32,
    size: usize,
    mut h: Handoff,
    ready: &mut dyn FnMut() -> io::Result<()>,
) -> io::Result<()> {
    let stop = watch(h.fd(0)?);
    let mut send = sender(kind, &mut h)?;
    ready()?;
    let mut msg = vec![0x5Au8; size];
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        stamp(&mut msg, id, seq, false);
        send(&msg)?;
        seq += 1;
    }
    stamp(&mut msg, id, seq, true);
    send(&msg)
}

/// A message sink to the parent's receiver.
type Sink = Box<dyn FnMut(&[u8]) -> io::Result<()>>;

/// A sender through the library's message interface (blocking calls,
/// default waits).
fn through<S: MessageSender + 'static>(mut tx: S) -> Sink {
    Box::new(move |m| {
        tx.send_until(m, Meta::default(), Deadline::Never)
            .map_err(io::Error::from)
    })
}

fn sender(kind: &str, h: &mut Handoff) -> io::Result<Sink> {
    Ok(match kind {
        "shm" => {
            let ch = Channel::from_fd(h.fd(1)?).map_err(io::Error::from)?;
            let tx = ch.sender().map_err(io::Error::from)?;
            // The sender keeps its own mapping; the channel may go.
            through(tx)
        }
        "queue" => through(ipcworks::queue::Queue::open(h.arg(0)?)?),
        "mq" => through(ipcworks::mq::posix::Queue::open(h.arg(0)?)?),
        "unix" => {
            let mut stream = std::os::unix::net::UnixStream::connect(h.arg(0)?)?;
            let mut frame = Vec::new();
            Box::new(move |m| {
                frame.clear();
                frame::encode(m, Framing::Frames, &mut frame).map_err(io::Error::from)?;
                stream.write_all(&frame)
            })
        }
        _ => return Err(io::Error::other(format!("{kind} has no fan-in case"))),
    })
}
