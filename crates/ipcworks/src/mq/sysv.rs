//! System V message queues (`sysvipc(7)`, `msgget(2)`, `msgop(2)`): queues
//! found by a numeric **key**, whose messages carry a **type** the receiver
//! selects by.
//!
//! `recv(t)` takes, per `msgrcv(2)`:
//! - `t == 0`: the first message of any type (plain FIFO);
//! - `t > 0`: the first message of type `t`;
//! - `t < 0`: the first message of the lowest type that is `<= |t|`
//!   (types as priorities, lowest first).
//!
//! A key is any number but 0 (`IPC_PRIVATE`), or derived from an existing
//! file and a project id with [`ftok`]. Queues persist until removed
//! ([`Queue::remove`], `ipcrm -q ID`, `ipcworks rm sysv:KEY`) and are listed
//! by `ipcs -q`. System V has no timed send or receive: the `*_timeout`
//! methods retry the no-wait call with short sleeps (100 µs doubling to
//! 5 ms) until the deadline.

use std::path::Path;
use std::time::Duration;

use crate::message::{
    Deadline, MessageReceiver, MessageSender, Meta, RecvTimeoutError, SendTimeoutError,
    TryRecvError, TrySendError,
};
use crate::sys::Errno;
use crate::sys::mem;
use crate::sys::sysv::{self, MsgBuf};
use crate::sys::user;
use crate::{Error, Result, registry};

const KIND: &str = "System V message queue";

/// `ftok(path, proj_id)`: a key from an existing file (its inode and device)
/// and the low 8 bits of `proj_id`, the way C programs agree on a key.
pub fn ftok(path: impl AsRef<Path>, proj_id: u8) -> Result<i32> {
    let path = path.as_ref();
    sysv::ftok(path, proj_id).map_err(|e| match e {
        Errno::NOENT => Error::NotFound {
            kind: "file for ftok",
            name: path.display().to_string(),
        },
        e => Error::io("ftok", e),
    })
}

/// A System V message queue.
///
/// `Queue` is `Send + Sync`: threads and processes send and receive at
/// once; the kernel serialises them.
#[derive(Debug)]
#[doc(alias = "msgget")]
pub struct Queue {
    id: i32,
    key: i32,
    max_message: usize,
    remove_on_drop: bool,
}

/// What `msgctl(IPC_STAT)` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(alias = "msqid_ds")]
pub struct Stat {
    /// Messages waiting (`msg_qnum`).
    pub messages: u64,
    /// Bytes of text waiting (`msg_cbytes`).
    pub bytes: u64,
    /// Most bytes of text the queue holds (`msg_qbytes`); a sender waits
    /// when a message would go beyond.
    pub max_bytes: u64,
    /// Process that sent last (`msg_lspid`), `None` if nobody has.
    pub last_sender: Option<u32>,
    /// Process that received last (`msg_lrpid`), `None` if nobody has.
    pub last_receiver: Option<u32>,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// Options for creating or opening a [`Queue`].
#[derive(Debug, Clone)]
pub struct QueueOptions {
    mode: u32,
    remove_on_drop: bool,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            mode: 0o600,
            remove_on_drop: false,
        }
    }
}

fn key_name(key: i32) -> String {
    format!("key {:#010x}", key as u32)
}

fn errno_error(e: Errno, key: i32, op: &'static str) -> Error {
    match e {
        Errno::NOENT => Error::NotFound {
            kind: KIND,
            name: key_name(key),
        },
        Errno::EXIST => Error::AlreadyExists {
            kind: KIND,
            name: key_name(key),
        },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: format!("{KIND} {}", key_name(key)),
        },
        Errno::IDRM => Error::Removed {
            what: format!("{KIND} {}", key_name(key)),
        },
        Errno::NOSPC => Error::LimitExceeded {
            limit: sysv::MSGMNI_PATH.into(),
            value: sysv::read_limit(sysv::MSGMNI_PATH)
                .map_or_else(|| "unknown".into(), |v| v.to_string()),
            hint: format!(
                "creating {KIND} {}: the system holds as many queues as it allows; remove \
                 unused ones (ipcs -q, ipcrm) or raise kernel.msgmni",
                key_name(key)
            ),
        },
        other => Error::io(op, other),
    }
}

impl QueueOptions {
    /// Options with mode 0600, persistent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of a created queue (default 0600; System V applies
    /// no umask). When opening, a queue whose mode grants more is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Whether the creator removes the queue when its `Queue` drops
    /// (default `false`: queues persist until removed).
    pub fn remove_on_drop(&mut self, remove: bool) -> &mut Self {
        self.remove_on_drop = remove;
        self
    }

    /// Creates a new queue under `key`: [`Error::AlreadyExists`] if taken
    /// (`msgget(key, IPC_CREAT | IPC_EXCL | mode)`).
    pub fn create(&self, key: i32) -> Result<Queue> {
        check_key(key)?;
        let flags = libc::IPC_CREAT | libc::IPC_EXCL | self.mode as i32;
        let id = sysv::msgget(key, flags).map_err(|e| errno_error(e, key, "msgget"))?;
        registry::register(
            registry::Kind::SysvQueue,
            &key.to_string(),
            !self.remove_on_drop,
        );
        Ok(Queue::new(id, key, self.remove_on_drop))
    }

    /// Creates a private queue (`IPC_PRIVATE`): no key finds it; share its
    /// [`id`](Queue::id) with children. Removed on drop unless told otherwise.
    pub fn create_private(&self) -> Result<Queue> {
        let id = sysv::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | self.mode as i32)
            .map_err(|e| errno_error(e, 0, "msgget"))?;
        Ok(Queue::new(id, 0, true))
    }

    /// Opens the existing queue under `key` after checking it: owned by this
    /// user, **created** by this user (or root), no permission beyond
    /// [`mode`](Self::mode), and, if that mode grants the group anything,
    /// created under the owner's group or one of yours.
    ///
    /// Why the creator: System V gives the creator (`cuid`, `cgid`) the
    /// same rights as the owner for good (`ipc(7)`, `msgctl(2)`), and the
    /// owner can be changed with `IPC_SET`. Another user could create the
    /// queue, hand it to you, and still read what you send and write what
    /// you receive. Such a queue is refused with [`Error::Refused`] naming
    /// its creator. A queue root created for you is accepted: root can
    /// reach it anyway.
    pub fn open(&self, key: i32) -> Result<Queue> {
        check_key(key)?;
        // The permission bits here are the access wanted: read and write.
        let id = sysv::msgget(key, 0o600).map_err(|e| errno_error(e, key, "msgget"))?;
        let st = sysv::stat(id).map_err(|e| errno_error(e, key, "msgctl(IPC_STAT)"))?;
        let refuse = |reason: String| Error::Refused {
            name: format!("{KIND} {}", key_name(key)),
            reason,
        };
        let me = mem::euid();
        if st.uid != me {
            return Err(refuse(format!(
                "it is owned by uid {}, not by you (uid {me}); another user may have planted it",
                st.uid
            )));
        }
        if st.cuid != me && st.cuid != 0 {
            return Err(refuse(format!(
                "it was created by {}, not by you (uid {me}); a creator keeps full access \
                 whoever owns the queue now, so another user may have planted it (remove \
                 it: ipcrm -q {id})",
                user::describe_user(st.cuid)
            )));
        }
        if st.mode & !self.mode != 0 {
            return Err(refuse(format!(
                "its mode {:04o} grants more than the expected {:04o}",
                st.mode, self.mode
            )));
        }
        if st.mode & 0o070 != 0 && st.cgid != st.gid && !user::member_of(st.cgid) {
            return Err(refuse(format!(
                "its mode {:04o} grants group access, which its creator's {} has too, \
                 besides its owner's {}; you are not in the creator's group",
                st.mode,
                user::describe_group(st.cgid),
                user::describe_group(st.gid)
            )));
        }
        Ok(Queue::new(id, key, false))
    }

    /// Opens the queue under `key` if it exists, else creates it. Returns it
    /// and whether this call created it.
    pub fn open_or_create(&self, key: i32) -> Result<(Queue, bool)> {
        crate::name::open_or_create("msgget", || self.create(key), || self.open(key))
    }
}

fn check_key(key: i32) -> Result<()> {
    if key == libc::IPC_PRIVATE {
        return Err(Error::InvalidArgument(
            "key 0 is IPC_PRIVATE, which cannot be found again; pick another key \
             (or use create_private)"
                .into(),
        ));
    }
    Ok(())
}

impl Queue {
    /// Options for creating or opening a queue.
    pub fn options() -> QueueOptions {
        QueueOptions::new()
    }

    /// Creates a queue under `key`, mode 0600, persistent.
    pub fn create(key: i32) -> Result<Queue> {
        Self::options().create(key)
    }

    /// Opens the queue under `key`. See [`QueueOptions::open`].
    pub fn open(key: i32) -> Result<Queue> {
        Self::options().open(key)
    }

    /// Opens or creates the queue under `key`.
    pub fn open_or_create(key: i32) -> Result<(Queue, bool)> {
        Self::options().open_or_create(key)
    }

    /// Removes the queue under `key` (`msgget` then `msgctl(IPC_RMID)`);
    /// processes blocked on it get [`Error::Removed`].
    pub fn remove_key(key: i32) -> Result<()> {
        check_key(key)?;
        let id = sysv::msgget(key, 0).map_err(|e| errno_error(e, key, "msgget"))?;
        registry::unregister(registry::Kind::SysvQueue, &key.to_string());
        sysv::remove(id).map_err(|e| errno_error(e, key, "msgctl(IPC_RMID)"))
    }

    fn new(id: i32, key: i32, remove_on_drop: bool) -> Queue {
        let msgmax = sysv::read_limit(sysv::MSGMAX_PATH).unwrap_or(8192);
        let max_bytes = sysv::stat(id).map_or(u64::MAX, |s| s.max_bytes);
        Queue {
            id,
            key,
            max_message: usize::try_from(msgmax.min(max_bytes)).unwrap_or(usize::MAX),
            remove_on_drop,
        }
    }

    /// The queue's identifier (`msqid`, as `ipcs -q` shows it).
    pub fn id(&self) -> i32 {
        self.id
    }

    /// The key it was found or created under (0 for a private queue).
    pub fn key(&self) -> i32 {
        self.key
    }

    /// Largest message accepted: `/proc/sys/kernel/msgmax`, or the queue's
    /// byte capacity if smaller, read when it was opened.
    pub fn max_message(&self) -> usize {
        self.max_message
    }

    fn what(&self) -> String {
        format!("{KIND} {} (id {})", key_name(self.key), self.id)
    }

    /// Counts and last users (`msgctl(IPC_STAT)`).
    #[doc(alias = "msgctl")]
    #[doc(alias = "IPC_STAT")]
    pub fn stat(&self) -> Result<Stat> {
        let s = sysv::stat(self.id).map_err(|e| self.op_error(e, "msgctl(IPC_STAT)"))?;
        let pid = |p: i32| (p > 0).then_some(p as u32);
        Ok(Stat {
            messages: s.messages,
            bytes: s.bytes,
            max_bytes: s.max_bytes,
            last_sender: pid(s.last_sender),
            last_receiver: pid(s.last_receiver),
            uid: s.uid,
            mode: s.mode,
        })
    }

    /// Removes the queue now (`msgctl(IPC_RMID)`): messages in it are lost
    /// and blocked senders and receivers get [`Error::Removed`].
    #[doc(alias = "IPC_RMID")]
    pub fn remove(&mut self) -> Result<()> {
        self.remove_on_drop = false;
        registry::unregister(registry::Kind::SysvQueue, &self.key.to_string());
        sysv::remove(self.id).map_err(|e| self.op_error(e, "msgctl(IPC_RMID)"))
    }

    /// Whether dropping this handle removes the queue.
    pub fn removes_on_drop(&self) -> bool {
        self.remove_on_drop
    }

    /// Makes this handle remove the queue when dropped (`true`) or keep it.
    pub fn set_remove_on_drop(&mut self, remove: bool) {
        self.remove_on_drop = remove;
    }

    /// Sends `msg` with type `mtype` (at least 1), waiting while the queue
    /// is full (`msgsnd`).
    #[doc(alias = "msgsnd")]
    pub fn send(&self, msg: &[u8], mtype: i64) -> Result<()> {
        self.send_at(msg, mtype, Deadline::Never)
    }

    /// Sends without waiting (`IPC_NOWAIT`): [`TrySendError::Full`] when
    /// full. (Returned [`Error`] before, with [`Error::WouldBlock`]; `?`
    /// still converts it.)
    pub fn try_send(&self, msg: &[u8], mtype: i64) -> Result<(), TrySendError> {
        self.send_at(msg, mtype, Deadline::Now)
            .map_err(TrySendError::from)
    }

    /// Sends, waiting at most `timeout` for room (polled; see the module
    /// docs): [`SendTimeoutError::Timeout`] after. (Returned [`Error`]
    /// before.)
    pub fn send_timeout(
        &self,
        msg: &[u8],
        mtype: i64,
        timeout: Duration,
    ) -> Result<(), SendTimeoutError> {
        self.send_at(msg, mtype, Deadline::after(timeout))
            .map_err(SendTimeoutError::from)
    }

    /// Receives the message `mtype` selects (0 any, >0 that type, <0 the
    /// lowest type up to `|mtype|`; see the module docs), waiting while
    /// there is none (`msgrcv`). Returns its text and type.
    #[doc(alias = "msgrcv")]
    pub fn recv(&self, mtype: i64) -> Result<(Vec<u8>, i64)> {
        self.recv_at(mtype, Deadline::Never)
    }

    /// Receives without waiting (`IPC_NOWAIT`): [`TryRecvError::Empty`]
    /// when no message matches. (Returned [`Error`] before, with
    /// [`Error::WouldBlock`].)
    pub fn try_recv(&self, mtype: i64) -> Result<(Vec<u8>, i64), TryRecvError> {
        self.recv_at(mtype, Deadline::Now)
            .map_err(TryRecvError::from)
    }

    /// Receives, waiting at most `timeout` (polled; see the module docs):
    /// [`RecvTimeoutError::Timeout`] after. (Returned [`Error`] before.)
    pub fn recv_timeout(
        &self,
        mtype: i64,
        timeout: Duration,
    ) -> Result<(Vec<u8>, i64), RecvTimeoutError> {
        self.recv_at(mtype, Deadline::after(timeout))
            .map_err(RecvTimeoutError::from)
    }

    /// The one send: every send method and the message interface's
    /// `send_until` are this with a deadline.
    fn send_at(&self, msg: &[u8], mtype: i64, until: Deadline) -> Result<()> {
        if mtype < 1 {
            return Err(Error::InvalidArgument(format!(
                "{}: message type {mtype} is invalid; a sent message's type must be at least 1",
                self.what()
            )));
        }
        let mtype = libc::c_long::try_from(mtype).map_err(|_| {
            Error::InvalidArgument(format!("message type {mtype} does not fit a C long"))
        })?;
        if msg.len() > self.max_message {
            return Err(Error::MessageTooLarge {
                len: msg.len(),
                max: self.max_message,
            });
        }
        let mut buf = MsgBuf::new(msg.len());
        buf.fill(mtype, msg).map_err(|e| Error::io("msgsnd", e))?;
        self.retrying(until, "msgsnd", |flags| {
            sysv::msgsnd(self.id, &buf, msg.len(), flags)
        })
        .map_err(|e| match e {
            Error::Io { error, .. } if error.raw_os_error() == Some(libc::EINVAL) => {
                // Our arguments were checked: the size is above a lowered
                // msgmax, or the queue is gone.
                match sysv::stat(self.id) {
                    Ok(_) => Error::MessageTooLarge {
                        len: msg.len(),
                        max: sysv::read_limit(sysv::MSGMAX_PATH).unwrap_or(0) as usize,
                    },
                    Err(_) => self.removed(),
                }
            }
            e => e,
        })
    }

    /// The one receive: every receive method and [`Receiver`]'s
    /// `recv_until` are this with a deadline.
    fn recv_at(&self, mtype: i64, until: Deadline) -> Result<(Vec<u8>, i64)> {
        let mut buf = MsgBuf::new(self.max_message);
        loop {
            match self.retrying(until, "msgrcv", |flags| {
                sysv::msgrcv(self.id, &mut buf, mtype, flags)
            }) {
                Ok(n) => return Ok((buf.text(n).to_vec(), buf.mtype())),
                Err(Error::Io { error, .. }) if error.raw_os_error() == Some(libc::E2BIG) => {
                    // A message larger than msgmax now is: sent before the
                    // limit was lowered. It fits the queue's byte capacity.
                    let cap = self.stat()?.max_bytes as usize;
                    if cap <= buf.capacity() {
                        return Err(Error::io("msgrcv", Errno::TOOBIG));
                    }
                    buf = MsgBuf::new(cap);
                }
                Err(Error::Io { error, .. }) if error.raw_os_error() == Some(libc::EINVAL) => {
                    return Err(self.removed());
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn removed(&self) -> Error {
        Error::Removed { what: self.what() }
    }

    fn op_error(&self, e: Errno, op: &'static str) -> Error {
        match e {
            Errno::INVAL | Errno::IDRM => self.removed(),
            e => errno_error(e, self.key, op),
        }
    }

    /// Runs one no-wait or blocking attempt after another per `until`:
    /// EINTR retried; "full"/"empty" (EAGAIN/ENOMSG with IPC_NOWAIT) polled
    /// with short sleeps until the deadline.
    fn retrying<T>(
        &self,
        until: Deadline,
        op: &'static str,
        mut call: impl FnMut(i32) -> std::result::Result<T, Errno>,
    ) -> Result<T> {
        let flags = match until {
            Deadline::Never => 0,
            Deadline::Now | Deadline::At(_) => libc::IPC_NOWAIT,
        };
        let mut nap = Duration::from_micros(100);
        loop {
            match call(flags) {
                Ok(v) => return Ok(v),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN | Errno::NOMSG) => match until {
                    Deadline::Now | Deadline::Never => return Err(Error::WouldBlock),
                    Deadline::At(_) if until.expired() => return Err(Error::Timeout),
                    Deadline::At(_) => {
                        let left = until.remaining().unwrap_or_default();
                        std::thread::sleep(nap.min(left));
                        nap = (nap * 2).min(Duration::from_millis(5));
                    }
                },
                Err(Errno::IDRM) => return Err(self.removed()),
                Err(Errno::ACCESS) => {
                    return Err(Error::PermissionDenied { name: self.what() });
                }
                Err(e) => return Err(Error::io(op, e)),
            }
        }
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.remove_on_drop {
            registry::unregister(registry::Kind::SysvQueue, &self.key.to_string());
            let _ = sysv::remove(self.id);
        }
    }
}

impl MessageSender for Queue {
    /// [`Queue::send`] with `meta.msg_type`, or type 1 when it is 0 (not
    /// given), and a deadline.
    fn send_until(&mut self, msg: &[u8], meta: Meta, deadline: Deadline) -> Result<()> {
        let t = if meta.msg_type == 0 { 1 } else { meta.msg_type };
        self.send_at(msg, t, deadline)
    }
}

/// The receiving end of a System V queue for the message interface: the
/// queue and the type it selects (`msgrcv(2)`'s `msgtyp`: 0 any, `t > 0`
/// type `t`, `t < 0` the lowest type up to `|t|`).
///
/// ```no_run
/// use ipcworks::message::MessageReceiver;
/// use ipcworks::mq::sysv::{Queue, Receiver};
///
/// # fn main() -> ipcworks::Result<()> {
/// let q = Queue::open_or_create(0x5157)?.0;
/// q.send(b"later", 2)?;
/// q.send(b"first", 1)?;
/// let mut rx = Receiver::new(q, -2); // lowest type up to 2 first
/// let (msg, meta) = rx.recv_with_meta()?;
/// assert_eq!((msg.as_slice(), meta.msg_type), (&b"first"[..], 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Receiver {
    queue: Queue,
    mtype: i64,
}

impl Receiver {
    /// Receives from `queue` the messages `mtype` selects.
    pub fn new(queue: Queue, mtype: i64) -> Receiver {
        Receiver { queue, mtype }
    }

    /// The type selection (`msgtyp`).
    pub fn msg_type(&self) -> i64 {
        self.mtype
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// The queue, taken back.
    pub fn into_queue(self) -> Queue {
        self.queue
    }
}

impl MessageReceiver for Receiver {
    /// [`Queue::recv`] with this receiver's type selection and a deadline;
    /// the message's type comes back in [`Meta::msg_type`].
    fn recv_until(&mut self, deadline: Deadline) -> Result<(Vec<u8>, Meta)> {
        let (msg, msg_type) = self.queue.recv_at(self.mtype, deadline)?;
        Ok((msg, Meta::with_type(msg_type)))
    }
}
