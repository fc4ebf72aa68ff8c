//! The mechanisms of the conformance suite, each as the library offers it:
//! its concrete sender and receiver boxed as the message interface, named
//! objects removed when the test ends (also when it fails).

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use ipcworks::Error;
use ipcworks::channel::Channel;
use ipcworks::endpoint::{self, Options};
use ipcworks::frame::Framing;
use ipcworks::message::{MessageReceiver, MessageSender};
use ipcworks::mq::{posix, sysv};
use ipcworks::pipe::{PipeReader, PipeWriter};
use ipcworks::queue::Queue;
use ipcworks::socket::{UnixListener, UnixStream};
use ipcworks::stream::{FramedReceiver, FramedSender};

use super::{LIMIT, Mechanism, Pair, Shared};
use crate::mq::{MqCleanup, new_sysv_queue};
use crate::support::{self, ShmCleanup};

/// Every mechanism, for [`super::by_name`].
pub static ALL: &[&dyn Mechanism] = &[
    &Shm,
    &NativeQueue,
    &PosixMq,
    &SysV,
    &Pipe,
    &Fifo,
    &Unix,
    &Tcp,
];

/// The variable naming an anonymous pipe's write end in a child.
pub const PIPE_FD_VAR: &str = "IPCWORKS_CONFORMANCE_FD";

/// Largest message of the byte streams and the shared-memory mechanisms.
const STREAM_MAX: usize = 4096;

fn boxed_tx(s: impl MessageSender + 'static) -> Box<dyn MessageSender> {
    Box::new(s)
}

fn boxed_rx(r: impl MessageReceiver + 'static) -> Box<dyn MessageReceiver> {
    Box::new(r)
}

/// A child's sender through the endpoint layer, byte streams in frames.
fn endpoint_sender(addr: &str, max: usize) -> Box<dyn MessageSender> {
    let ep: endpoint::Endpoint = addr.parse().unwrap();
    let opts = Options {
        binary: true,
        max_message: Some(max),
        ..Options::default()
    };
    endpoint::open_sender(&ep, &opts).unwrap()
}

/// Truncates the segment `/dev/shm/NAME` to nothing, as a hostile peer
/// could.
fn truncate_segment(name: &str) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/{name}"))
        .unwrap();
    f.set_len(0).unwrap();
}

/// Writes a frame header claiming `u32::MAX` bytes straight onto a byte
/// stream, behind the sender's back.
fn write_oversized_header(pair: &mut Pair) -> fn(&Error) -> bool {
    let fd = pair.tx.pollable_fd().expect("a stream's descriptor");
    let n = rustix::io::write(fd, &u32::MAX.to_le_bytes()).unwrap();
    assert_eq!(n, 4);
    |e| matches!(e, Error::MessageTooLarge { .. })
}

/// `shm`: the shared-memory channel, named, 16 KiB of ring.
pub struct Shm;

impl Shm {
    fn channel(&self) -> (Channel, String, ShmCleanup) {
        let name = support::unique_name("conf-shm");
        let clean = ShmCleanup(vec![format!("ipcworks.chan.{name}")]);
        let chan = Channel::builder()
            .capacity_bytes(16 * 1024)
            .max_message(STREAM_MAX)
            .create(&name)
            .unwrap();
        (chan, name, clean)
    }
}

impl Mechanism for Shm {
    fn name(&self) -> &'static str {
        "shm"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let (chan, name, clean) = self.channel();
        Pair {
            tx: boxed_tx(chan.sender().unwrap()),
            rx: boxed_rx(chan.receiver().unwrap()),
            keep: Box::new((chan, name, clean)),
        }
    }
    fn shared(&self) -> Shared {
        let (chan, name, clean) = self.channel();
        let rx = chan.receiver().unwrap();
        let own = chan.sender().unwrap();
        Shared {
            addr: format!("shm:{name}"),
            pass: None,
            open: Box::new(move || (boxed_rx(rx), Some(boxed_tx(own)))),
            select: None,
            keep: Box::new((chan, clean)),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, STREAM_MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        let (_, name, _) = pair
            .keep
            .downcast_ref::<(Channel, String, ShmCleanup)>()
            .unwrap();
        truncate_segment(&format!("ipcworks.chan.{name}"));
        |e| matches!(e, Error::Truncated { .. })
    }
}

/// Removes a native queue by name.
struct QueueCleanup(String);

impl Drop for QueueCleanup {
    fn drop(&mut self) {
        let _ = Queue::remove(&self.0);
    }
}

/// `queue`: the native shared-memory priority queue, 16 slots.
pub struct NativeQueue;

impl NativeQueue {
    fn queue(&self) -> (Queue, String, QueueCleanup) {
        let name = support::unique_name("conf-queue");
        let clean = QueueCleanup(name.clone());
        let q = Queue::options()
            .capacity(16)
            .max_message(STREAM_MAX)
            .create(&name)
            .unwrap();
        (q, name, clean)
    }
}

impl Mechanism for NativeQueue {
    fn name(&self) -> &'static str {
        "queue"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let (q, name, clean) = self.queue();
        Pair {
            tx: boxed_tx(Queue::open(&name).unwrap()),
            rx: boxed_rx(q),
            keep: Box::new((name, clean)),
        }
    }
    fn shared(&self) -> Shared {
        let (q, name, clean) = self.queue();
        Shared {
            addr: format!("queue:{name}"),
            pass: None,
            open: Box::new(move || (boxed_rx(q), None)),
            select: None,
            keep: Box::new(clean),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, STREAM_MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        let (name, _) = pair.keep.downcast_ref::<(String, QueueCleanup)>().unwrap();
        truncate_segment(&format!("ipcworks.queue.{name}"));
        |e| matches!(e, Error::Truncated { .. })
    }
}

/// `mq`: a POSIX message queue, 10 messages of at most 1 KiB (within the
/// default `fs.mqueue` limits).
pub struct PosixMq;

const MQ_MAX: usize = 1024;

impl PosixMq {
    fn queue(&self) -> (posix::Queue, String, MqCleanup) {
        let name = support::unique_name("conf-mq");
        let clean = MqCleanup(vec![name.clone()]);
        let q = posix::Queue::options()
            .capacity(10)
            .max_message(MQ_MAX)
            .create(&name)
            .unwrap();
        (q, name, clean)
    }
}

impl Mechanism for PosixMq {
    fn name(&self) -> &'static str {
        "mq"
    }
    fn max_message(&self) -> usize {
        MQ_MAX
    }
    fn pair(&self) -> Pair {
        let (q, name, clean) = self.queue();
        Pair {
            tx: boxed_tx(posix::Queue::open(&name).unwrap()),
            rx: boxed_rx(q),
            keep: Box::new(clean),
        }
    }
    fn shared(&self) -> Shared {
        let (q, name, clean) = self.queue();
        Shared {
            addr: format!("mq:{name}"),
            pass: None,
            open: Box::new(move || (boxed_rx(q), None)),
            select: None,
            keep: Box::new(clean),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, MQ_MAX)
    }
}

/// `sysv`: a System V message queue; the largest message is the system's
/// (`kernel.msgmax`, or the queue's byte capacity if smaller).
pub struct SysV;

impl Mechanism for SysV {
    fn name(&self) -> &'static str {
        "sysv"
    }
    fn max_message(&self) -> usize {
        static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *MAX.get_or_init(|| new_sysv_queue().0.max_message())
    }
    fn pair(&self) -> Pair {
        let (q, clean) = new_sysv_queue();
        let key = q.key();
        Pair {
            tx: boxed_tx(sysv::Queue::open(key).unwrap()),
            rx: boxed_rx(sysv::Receiver::new(q, 0)),
            keep: Box::new((key, clean)),
        }
    }
    fn shared(&self) -> Shared {
        let (q, clean) = new_sysv_queue();
        let key = q.key();
        Shared {
            addr: format!("sysv:{key}"),
            pass: None,
            open: Box::new(move || (boxed_rx(sysv::Receiver::new(q, 0)), None)),
            select: Some(Box::new(move |t| {
                boxed_rx(sysv::Receiver::new(sysv::Queue::open(key).unwrap(), t))
            })),
            keep: Box::new(clean),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, usize::MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        let (key, _) = pair
            .keep
            .downcast_ref::<(i32, crate::mq::SysvCleanup)>()
            .unwrap();
        sysv::Queue::remove_key(*key).unwrap();
        |e| matches!(e, Error::Removed { .. })
    }
}

fn framed_tx<W>(w: W) -> Box<dyn MessageSender>
where
    W: std::io::Write + AsFd + Send + 'static,
{
    boxed_tx(FramedSender::with_max(w, Framing::Frames, STREAM_MAX))
}

fn framed_rx<R>(r: R) -> Box<dyn MessageReceiver>
where
    R: std::io::Read + AsFd + Send + 'static,
{
    boxed_rx(FramedReceiver::with_max(r, Framing::Frames, STREAM_MAX))
}

/// `pipe`: an anonymous pipe, frames; children inherit the write end.
pub struct Pipe;

impl Mechanism for Pipe {
    fn name(&self) -> &'static str {
        "pipe"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let (r, w) = ipcworks::pipe::pipe().unwrap();
        Pair {
            tx: framed_tx(w),
            rx: framed_rx(r),
            keep: Box::new(()),
        }
    }
    fn shared(&self) -> Shared {
        let (r, w) = ipcworks::pipe::pipe().unwrap();
        let own = w.try_clone().unwrap();
        Shared {
            addr: "inherited".into(),
            pass: Some(OwnedFd::from(w)),
            open: Box::new(move || (framed_rx(r), Some(framed_tx(own)))),
            select: None,
            keep: Box::new(()),
        }
    }
    fn child_sender(&self, _addr: &str) -> Box<dyn MessageSender> {
        // SAFETY: the parent handed this descriptor to us (pass_fd_env) to
        // own, and nothing else in this process uses it.
        let fd = unsafe { ipcworks::pipe::take_inherited(PIPE_FD_VAR) }.unwrap();
        framed_tx(PipeWriter::from(fd))
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        write_oversized_header(pair)
    }
}

/// A FIFO at a fresh path, removed (with its directory) on drop.
struct FifoDir(PathBuf, ipcworks::pipe::Fifo);

fn fifo_dir() -> (PathBuf, FifoDir) {
    let dir = std::env::temp_dir().join(support::unique_name("conf-fifo"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("f");
    let fifo = ipcworks::pipe::Fifo::create(&path).unwrap();
    (path.clone(), FifoDir(dir, fifo))
}

impl Drop for FifoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.1.path());
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Opens a FIFO's read end at once, without waiting for a writer (the
/// library's `Fifo::open_read` waits for one), so a writer can open.
fn fifo_reader(path: &std::path::Path) -> PipeReader {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .unwrap();
    let fd = OwnedFd::from(f);
    let fl = rustix::fs::fcntl_getfl(&fd).unwrap();
    rustix::fs::fcntl_setfl(&fd, fl - rustix::fs::OFlags::NONBLOCK).unwrap();
    PipeReader::from(fd)
}

/// `fifo`: a named pipe, frames; children open it through `fifo:PATH`.
pub struct Fifo;

impl Mechanism for Fifo {
    fn name(&self) -> &'static str {
        "fifo"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let (path, dir) = fifo_dir();
        let r = fifo_reader(&path);
        let w = ipcworks::pipe::Fifo::open_write(&path, Some(LIMIT)).unwrap();
        Pair {
            tx: framed_tx(w),
            rx: framed_rx(r),
            keep: Box::new(dir),
        }
    }
    fn shared(&self) -> Shared {
        let (path, dir) = fifo_dir();
        let p = path.clone();
        Shared {
            addr: format!("fifo:{}", path.display()),
            pass: None,
            open: Box::new(move || {
                let r = fifo_reader(&p);
                let own = ipcworks::pipe::Fifo::open_write(&p, Some(LIMIT)).unwrap();
                (framed_rx(r), Some(framed_tx(own)))
            }),
            select: None,
            keep: Box::new(dir),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, STREAM_MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        write_oversized_header(pair)
    }
}

/// A socket path in a fresh directory, removed on drop.
struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn socket_path() -> (PathBuf, SocketDir) {
    let dir = std::env::temp_dir().join(support::unique_name("conf-unix"));
    std::fs::create_dir(&dir).unwrap();
    (dir.join("s"), SocketDir(dir))
}

/// `unix`: a Unix stream socket, frames; one connection.
pub struct Unix;

impl Mechanism for Unix {
    fn name(&self) -> &'static str {
        "unix"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let (path, dir) = socket_path();
        let l = UnixListener::bind(&path).unwrap();
        let tx = UnixStream::connect(&path).unwrap();
        let rx = l.accept().unwrap();
        Pair {
            tx: framed_tx(tx),
            rx: framed_rx(rx),
            keep: Box::new((l, dir)),
        }
    }
    fn shared(&self) -> Shared {
        let (path, dir) = socket_path();
        let l = UnixListener::bind(&path).unwrap();
        Shared {
            addr: format!("unix:{}", path.display()),
            pass: None,
            open: Box::new(move || {
                assert!(l.wait_acceptable(Some(LIMIT)).unwrap(), "no client");
                (framed_rx(l.accept().unwrap()), None)
            }),
            select: None,
            keep: Box::new(dir),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, STREAM_MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        write_oversized_header(pair)
    }
}

/// `tcp`: a TCP connection over loopback, frames, no Nagle delay.
pub struct Tcp;

impl Mechanism for Tcp {
    fn name(&self) -> &'static str {
        "tcp"
    }
    fn max_message(&self) -> usize {
        STREAM_MAX
    }
    fn pair(&self) -> Pair {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let tx = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        tx.set_nodelay(true).unwrap();
        let (rx, _) = l.accept().unwrap();
        Pair {
            tx: framed_tx(tx),
            rx: framed_rx(rx),
            keep: Box::new(l),
        }
    }
    fn shared(&self) -> Shared {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        Shared {
            addr: format!("tcp:127.0.0.1:{port}"),
            pass: None,
            open: Box::new(move || {
                let mut fds = [rustix::event::PollFd::new(&l, rustix::event::PollFlags::IN)];
                let limit = rustix::time::Timespec {
                    tv_sec: LIMIT.as_secs() as i64,
                    tv_nsec: 0,
                };
                assert_eq!(
                    rustix::event::poll(&mut fds, Some(&limit)).unwrap(),
                    1,
                    "no client"
                );
                (framed_rx(l.accept().unwrap().0), None)
            }),
            select: None,
            keep: Box::new(()),
        }
    }
    fn child_sender(&self, addr: &str) -> Box<dyn MessageSender> {
        endpoint_sender(addr, STREAM_MAX)
    }
    fn break_it(&self, pair: &mut Pair) -> fn(&Error) -> bool {
        write_oversized_header(pair)
    }
}
