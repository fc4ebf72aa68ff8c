//! POSIX message queues (`mq_overview(7)`): named queues of prioritised
//! messages kept by the kernel.
//!
//! A receiver always gets the oldest message of the highest priority
//! (0 ..= 32767). The queue holds at most [`capacity`](QueueOptions::capacity)
//! messages of at most [`max_message`](QueueOptions::max_message) bytes
//! each; both are fixed when it is created, within the system's limits in
//! `/proc/sys/fs/mqueue`.
//!
//! A queue persists until removed ([`Queue::remove`], [`Queue::unlink`],
//! `ipcworks rm mq:NAME`): messages wait for a receiver that comes later,
//! and whoever holds a descriptor keeps using the queue after its name is
//! removed. [`QueueOptions::remove_on_drop`] makes the creator remove it.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::message::{
    Deadline, MessageReceiver, MessageSender, Meta, RecvTimeoutError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::sys::Errno;
use crate::sys::mem;
use crate::sys::mq::{self, OpenHow, Wait};
use crate::{Error, Result, name, registry};

const KIND: &str = "POSIX message queue";

/// Highest priority accepted plus one (`MQ_PRIO_MAX`).
pub const PRIORITY_LIMIT: u32 = mq::PRIO_MAX;

/// A POSIX message queue opened read-write.
///
/// `Queue` is `Send + Sync`: any number of threads (and processes, each with
/// its own `Queue`) may send and receive at once; the kernel serialises
/// them. The descriptor is usable with `poll`/`epoll` through [`AsFd`]
/// (readable: a message is waiting; writable: there is room).
#[derive(Debug)]
#[doc(alias = "mq_open")]
#[doc(alias = "mqd_t")]
pub struct Queue {
    fd: OwnedFd,
    name: String,
    capacity: usize,
    max_message: usize,
    remove_on_drop: bool,
}

/// The current state of a queue (`mq_getattr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "mq_attr")]
pub struct Attributes {
    /// Messages waiting now (`mq_curmsgs`).
    pub depth: usize,
    /// Most messages it holds (`mq_maxmsg`).
    pub capacity: usize,
    /// Largest message in bytes (`mq_msgsize`).
    pub max_message: usize,
}

/// Options for creating or opening a [`Queue`], in the style of
/// [`std::fs::OpenOptions`].
#[derive(Debug, Clone)]
pub struct QueueOptions {
    capacity: Option<usize>,
    max_message: Option<usize>,
    mode: u32,
    remove_on_drop: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            capacity: None,
            max_message: None,
            mode: 0o600,
            remove_on_drop: false,
        }
    }
}

impl QueueOptions {
    /// Options with the system's default sizes, mode 0600, persistent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Most messages a created queue holds (`mq_maxmsg`; default
    /// `/proc/sys/fs/mqueue/msg_default`, at most `msg_max` unless the
    /// process has `CAP_SYS_RESOURCE`).
    #[doc(alias = "mq_maxmsg")]
    pub fn capacity(&mut self, messages: usize) -> &mut Self {
        self.capacity = Some(messages);
        self
    }

    /// Largest message of a created queue in bytes (`mq_msgsize`; default
    /// `/proc/sys/fs/mqueue/msgsize_default`, at most `msgsize_max`).
    #[doc(alias = "mq_msgsize")]
    pub fn max_message(&mut self, bytes: usize) -> &mut Self {
        self.max_message = Some(bytes);
        self
    }

    /// Permission bits of a created queue, set exactly whatever the umask
    /// (`fchmod` on the descriptor; default 0600). When opening, a queue
    /// whose mode grants more than this is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether the creator removes the name when its `Queue` drops
    /// (default `false`: queues persist like the kernel's, until removed).
    pub fn remove_on_drop(&mut self, remove: bool) -> &mut Self {
        self.remove_on_drop = remove;
        self
    }

    /// Creates a new queue; fails with [`Error::AlreadyExists`] if the name
    /// is taken.
    #[doc(alias = "mq_open")]
    pub fn create(&self, name: &str) -> Result<Queue> {
        let bare = name::validate(name)?;
        let attr = self.attr(bare)?;
        let fd = mq::open(bare, OpenHow::CreateExclusive, self.mode, Some(attr))
            .map_err(|e| create_error(e, bare, attr))?;
        // The name is ours now: remove it again if anything below fails.
        let undo = |e: Error| {
            let _ = mq::unlink(bare);
            e
        };
        mem::set_mode(fd.as_fd(), self.mode).map_err(|e| undo(errno_error(e, bare, "fchmod")))?;
        let mut q = Queue::from_parts(fd, bare).map_err(undo)?;
        q.remove_on_drop = self.remove_on_drop;
        registry::register(registry::Kind::PosixQueue, bare, !self.remove_on_drop);
        Ok(q)
    }

    /// Opens an existing queue after checking it: owned by this user, with
    /// no permission beyond [`mode`](Self::mode). Its sizes are the
    /// queue's own; `capacity` and `max_message` are ignored.
    ///
    /// (The `mqueue` filesystem has no symbolic links or directories:
    /// `symlink(2)` there fails with `EPERM`, so a name cannot be redirected
    /// to another object.)
    #[doc(alias = "mq_open")]
    pub fn open(&self, name: &str) -> Result<Queue> {
        let bare = name::validate(name)?;
        let fd =
            mq::open(bare, OpenHow::Open, 0, None).map_err(|e| errno_error(e, bare, "mq_open"))?;
        check_opened(fd.as_fd(), bare, self.mode)?;
        Queue::from_parts(fd, bare)
    }

    /// Opens the queue if it exists (with the checks of
    /// [`open`](Self::open)) or creates it. Returns the queue and whether
    /// this call created it.
    pub fn open_or_create(&self, name: &str) -> Result<(Queue, bool)> {
        name::open_or_create("mq_open", || self.create(name), || self.open(name))
    }

    /// `(mq_maxmsg, mq_msgsize)` for creating, defaults filled in.
    fn attr(&self, name: &str) -> Result<(i64, i64)> {
        let pick = |v: Option<usize>, default_file: &str, fallback: u64, what: &str| {
            let v = v.map_or_else(|| mq::limit(default_file).unwrap_or(fallback), |v| v as u64);
            if v == 0 {
                return Err(Error::InvalidArgument(format!(
                    "{KIND} {name:?}: {what} must be at least 1"
                )));
            }
            i64::try_from(v).map_err(|_| {
                Error::InvalidArgument(format!("{KIND} {name:?}: {what} {v} is too large"))
            })
        };
        Ok((
            pick(self.capacity, "msg_default", 10, "capacity")?,
            pick(self.max_message, "msgsize_default", 8192, "max_message")?,
        ))
    }
}

/// Checks an opened queue: ours, no looser mode than `mode`.
fn check_opened(fd: BorrowedFd<'_>, name: &str, mode: u32) -> Result<()> {
    let st = mem::stat(fd).map_err(|e| errno_error(e, name, "fstat"))?;
    let refuse = |reason: String| Error::Refused {
        name: name.to_string(),
        reason,
    };
    let me = mem::euid();
    if st.uid != me {
        return Err(refuse(format!(
            "it is owned by uid {}, not by you (uid {me}); another user may have planted it",
            st.uid
        )));
    }
    if st.mode & !mode & 0o777 != 0 {
        return Err(refuse(format!(
            "its mode {:04o} grants more than the expected {:04o}",
            st.mode, mode
        )));
    }
    Ok(())
}

/// Turns an errno from a call on a named queue into the user's terms.
fn errno_error(e: Errno, name: &str, op: &'static str) -> Error {
    name::errno_error(e, KIND, name, op)
}

/// An error from creating a queue: a refused size or count names the limit.
fn create_error(e: Errno, name: &str, (maxmsg, msgsize): (i64, i64)) -> Error {
    let limit = |file: &str, hint: String| Error::LimitExceeded {
        limit: format!("{}/{file}", mq::LIMITS_DIR),
        value: mq::limit(file).map_or_else(|| "unknown".into(), |v| v.to_string()),
        hint,
    };
    let over = |file: &str, v: i64| mq::limit(file).is_some_and(|max| v as u64 > max);
    match e {
        Errno::INVAL if over("msg_max", maxmsg) => limit(
            "msg_max",
            format!(
                "{KIND} {name:?} asked for a capacity of {maxmsg} messages; ask for fewer, or \
                 raise the limit (sysctl fs.mqueue.msg_max; CAP_SYS_RESOURCE allows up to 65536)"
            ),
        ),
        Errno::INVAL if over("msgsize_max", msgsize) => limit(
            "msgsize_max",
            format!(
                "{KIND} {name:?} asked for messages of {msgsize} bytes; ask for less, or raise \
                 the limit (sysctl fs.mqueue.msgsize_max)"
            ),
        ),
        Errno::INVAL => Error::InvalidArgument(format!(
            "{KIND} {name:?}: the kernel refused capacity {maxmsg} with messages of {msgsize} \
             bytes (CAP_SYS_RESOURCE caps them at 65536 messages and 16 MiB)"
        )),
        Errno::NOSPC => limit(
            "queues_max",
            format!(
                "creating {KIND} {name:?}: the system holds as many queues as it allows; remove \
                 unused ones (ipcworks ls) or raise fs.mqueue.queues_max"
            ),
        ),
        Errno::MFILE => Error::LimitExceeded {
            limit: "RLIMIT_MSGQUEUE (ulimit -q) or RLIMIT_NOFILE (ulimit -n)".into(),
            value: mq::rlimit_msgqueue().map_or_else(|| "unlimited".into(), |v| v.to_string()),
            hint: format!(
                "creating {KIND} {name:?} with {maxmsg} messages of {msgsize} bytes: all of your \
                 queues together may take at most RLIMIT_MSGQUEUE bytes (or this process has \
                 too many open files); use smaller queues, remove unused ones, or raise ulimit -q"
            ),
        },
        other => errno_error(other, name, "mq_open"),
    }
}

impl Queue {
    /// Options for creating or opening a queue.
    pub fn options() -> QueueOptions {
        QueueOptions::new()
    }

    /// Creates a new queue with the system's default sizes, mode 0600,
    /// persistent. See [`QueueOptions::create`].
    pub fn create(name: &str) -> Result<Queue> {
        Self::options().create(name)
    }

    /// Opens an existing queue. See [`QueueOptions::open`].
    pub fn open(name: &str) -> Result<Queue> {
        Self::options().open(name)
    }

    /// Opens or creates a queue. See [`QueueOptions::open_or_create`].
    pub fn open_or_create(name: &str) -> Result<(Queue, bool)> {
        Self::options().open_or_create(name)
    }

    /// Removes a queue by name (`mq_unlink`). Processes that have it open
    /// keep using it; it is freed when the last one closes it.
    #[doc(alias = "mq_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        let bare = name::validate(name)?;
        registry::unregister(registry::Kind::PosixQueue, bare);
        mq::unlink(bare).map_err(|e| errno_error(e, bare, "mq_unlink"))
    }

    fn from_parts(fd: OwnedFd, bare: &str) -> Result<Queue> {
        let a = mq::getattr(fd.as_fd()).map_err(|e| errno_error(e, bare, "mq_getattr"))?;
        let size = |v: i64| usize::try_from(v).map_err(|_| Error::io("mq_getattr", Errno::INVAL));
        Ok(Queue {
            capacity: size(a.maxmsg)?,
            max_message: size(a.msgsize)?,
            fd,
            name: bare.to_string(),
            remove_on_drop: false,
        })
    }

    /// The name (without leading `/`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Most messages the queue holds (`mq_maxmsg`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Largest message in bytes (`mq_msgsize`).
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    /// The current depth and sizes (`mq_getattr`).
    #[doc(alias = "mq_getattr")]
    pub fn attributes(&self) -> Result<Attributes> {
        let a =
            mq::getattr(self.fd.as_fd()).map_err(|e| errno_error(e, &self.name, "mq_getattr"))?;
        Ok(Attributes {
            depth: a.curmsgs.max(0) as usize,
            capacity: a.maxmsg.max(0) as usize,
            max_message: a.msgsize.max(0) as usize,
        })
    }

    /// Sends `msg` with `priority` (0 ..= 32767, higher is received first),
    /// waiting while the queue is full (`mq_send`).
    #[doc(alias = "mq_send")]
    pub fn send(&self, msg: &[u8], priority: u32) -> Result<()> {
        self.send_at(msg, priority, Deadline::Never)
    }

    /// Sends without waiting: [`TrySendError::Full`] when the queue is
    /// full. (Returned [`Error`] before, with [`Error::WouldBlock`]; `?`
    /// still converts it.)
    pub fn try_send(&self, msg: &[u8], priority: u32) -> Result<(), TrySendError> {
        self.send_at(msg, priority, Deadline::Now)
            .map_err(TrySendError::from)
    }

    /// Sends, waiting at most `timeout` for room:
    /// [`SendTimeoutError::Timeout`] after (`mq_timedsend`). (Returned
    /// [`Error`] before.)
    #[doc(alias = "mq_timedsend")]
    pub fn send_timeout(
        &self,
        msg: &[u8],
        priority: u32,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_at(msg, priority, Deadline::after(timeout))
            .map_err(SendTimeoutError::from)
    }

    /// Receives the oldest message of the highest priority, waiting while
    /// the queue is empty (`mq_receive`). Returns it and its priority.
    #[doc(alias = "mq_receive")]
    pub fn recv(&self) -> Result<(Vec<u8>, u32)> {
        self.recv_at(Deadline::Never)
    }

    /// Receives without waiting: [`TryRecvError::Empty`] when empty (a
    /// queue has no "disconnected": it outlives its users). (Returned
    /// [`Error`] before, with [`Error::WouldBlock`].)
    pub fn try_recv(&self) -> Result<(Vec<u8>, u32), TryRecvError> {
        self.recv_at(Deadline::Now).map_err(TryRecvError::from)
    }

    /// Receives, waiting at most `timeout`: [`RecvTimeoutError::Timeout`]
    /// after (`mq_timedreceive`). (Returned [`Error`] before.)
    #[doc(alias = "mq_timedreceive")]
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(Vec<u8>, u32), RecvTimeoutError> {
        self.recv_at(Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// Receives into `buf`, which must hold at least
    /// [`max_message`](Self::max_message) bytes (the kernel's rule), without
    /// allocating. Returns the message's length and priority.
    pub fn recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32)> {
        self.recv_slice_at(buf, Deadline::Never)
    }

    /// [`recv_into`](Self::recv_into) without waiting:
    /// [`TryRecvError::Empty`] when empty.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> Result<(usize, u32), TryRecvError> {
        self.recv_slice_at(buf, Deadline::Now)
            .map_err(TryRecvError::from)
    }

    /// [`recv_into`](Self::recv_into), waiting at most `timeout`:
    /// [`RecvTimeoutError::Timeout`] after. (Took an `Option<Duration>` and
    /// returned [`Error`] before.)
    pub fn recv_into_timeout(
        &self,
        buf: &mut [u8],
        timeout: Duration,
    ) -> Result<(usize, u32), RecvTimeoutError> {
        self.recv_slice_at(buf, Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// Removes the name now (`mq_unlink`); this handle (and every other open
    /// one) keeps working until closed.
    #[doc(alias = "mq_unlink")]
    pub fn unlink(&mut self) -> Result<()> {
        self.remove_on_drop = false;
        registry::unregister(registry::Kind::PosixQueue, &self.name);
        mq::unlink(&self.name).map_err(|e| errno_error(e, &self.name, "mq_unlink"))
    }

    /// Whether dropping this handle removes the name.
    pub fn removes_on_drop(&self) -> bool {
        self.remove_on_drop
    }

    /// Makes this handle remove the name when dropped (`true`) or keep it.
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    /// The one send: every send method and the message interface's
    /// `send_until` are this with a deadline.
    fn send_at(&self, msg: &[u8], priority: u32, until: Deadline) -> Result<()> {
        if msg.len() > self.max_message {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        if priority >= PRIORITY_LIMIT {
            return Err(Error::InvalidArgument(format!(
                "{KIND} {:?}: priority {priority} is above the maximum {}",
                self.name,
                PRIORITY_LIMIT - 1
            )));
        }
        loop {
            let r = mq::send(self.fd.as_fd(), msg, priority, wait_for(until));
            match r {
                Ok(()) => return Ok(()),
                Err(e) => self.retry_or_fail(e, until, "mq_send", msg.len())?,
            }
        }
    }

    /// The one receive into a new vector.
    fn recv_at(&self, until: Deadline) -> Result<(Vec<u8>, u32)> {
        let mut buf = Vec::new();
        let prio = self.recv_vec_at(&mut buf, until)?;
        Ok((buf, prio))
    }

    /// The one receive into a caller's vector: grown to the queue's
    /// message size for the kernel (only the part beyond its old length is
    /// zeroed), then cut to the message's length.
    fn recv_vec_at(&self, buf: &mut Vec<u8>, until: Deadline) -> Result<u32> {
        buf.resize(buf.len().max(self.max_message), 0);
        match self.recv_slice_at(buf, until) {
            Ok((n, prio)) => {
                buf.truncate(n);
                Ok(prio)
            }
            Err(e) => {
                buf.clear();
                Err(e)
            }
        }
    }

    /// The one receive into a caller's slice (`mq_receive` needs room for
    /// the queue's largest message).
    fn recv_slice_at(&self, buf: &mut [u8], until: Deadline) -> Result<(usize, u32)> {
        if buf.len() < self.max_message {
            return Err(Error::InvalidArgument(format!(
                "{KIND} {:?}: a receive buffer of {} bytes is smaller than the queue's \
                 maximum message size of {} bytes",
                self.name,
                buf.len(),
                self.max_message
            )));
        }
        loop {
            match mq::receive(self.fd.as_fd(), buf, wait_for(until)) {
                Ok(r) => return Ok(r),
                Err(e) => self.retry_or_fail(e, until, "mq_receive", 0)?,
            }
        }
    }

    /// `Ok(())` means: try again (interrupted, or woken early).
    fn retry_or_fail(&self, e: Errno, until: Deadline, op: &'static str, len: usize) -> Result<()> {
        match e {
            Errno::INTR => Ok(()),
            Errno::TIMEDOUT => match until {
                Deadline::Now => Err(Error::WouldBlock),
                Deadline::At(_) if until.expired() => Err(Error::Timeout),
                // The wall clock moved; recompute from the monotonic deadline.
                _ => Ok(()),
            },
            Errno::AGAIN => Err(Error::WouldBlock),
            Errno::MSGSIZE if op == "mq_send" => Err(Error::MessageTooLarge {
                len,
                max: self.max_message,
            }),
            other => Err(errno_error(other, &self.name, op)),
        }
    }
}

fn wait_for(until: Deadline) -> Wait {
    match until.remaining() {
        None => Wait::Forever,
        Some(left) if left.is_zero() => Wait::Never,
        Some(left) => Wait::For(left),
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.remove_on_drop {
            registry::unregister(registry::Kind::PosixQueue, &self.name);
            let _ = mq::unlink(&self.name);
        }
    }
}

impl MessageSender for Queue {
    /// [`Queue::send`] with `meta.priority` and a deadline.
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        self.send_at(msg, meta.priority, deadline)
    }

    /// The queue's descriptor: writable when there is room.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}

impl MessageReceiver for Queue {
    /// [`Queue::recv`] with a deadline; the priority comes back in
    /// [`Meta::priority`].
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        let (msg, priority) = self.recv_at(deadline)?;
        Ok((msg, Meta::with_priority(priority)))
    }

    /// Receives straight into `buf`, reusing its allocation.
    fn recv_into_until(&mut self, buf: &mut Vec<u8>, deadline: Deadline) -> Result<Meta> {
        self.recv_vec_at(buf, deadline).map(Meta::with_priority)
    }

    /// The queue's descriptor: readable when a message is waiting.
    fn pollable_fd(&self) -> Option<BorrowedFd<'_>> {
        Some(self.fd.as_fd())
    }
}
