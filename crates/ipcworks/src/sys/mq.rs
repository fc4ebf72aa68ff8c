//! POSIX message queues: `mq_open`, `mq_timedsend`, `mq_timedreceive`,
//! `mq_getattr`, `mq_unlink` (through libc: rustix has none of them).
//!
//! On Linux a message queue descriptor (`mqd_t`) is a file descriptor on the
//! internal `mqueue` filesystem, so it is held as an [`OwnedFd`] (closing it
//! is `mq_close`), works with `poll`/`epoll`, `fstat` and `fchmod`.
//!
//! # References
//! `mq_overview(7)`, `mq_open(3)`, `mq_send(3)`, `mq_receive(3)`.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;

/// Where the limits of POSIX queues are published.
pub const LIMITS_DIR: &str = "/proc/sys/fs/mqueue";

/// The highest priority plus one (`MQ_PRIO_MAX` on Linux).
pub const PRIO_MAX: u32 = 32768;

/// How to open a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenHow {
    /// It must exist.
    Open,
    /// It must not exist (`O_CREAT | O_EXCL`).
    CreateExclusive,
    /// It must exist; opened for reading only (`O_RDONLY`): enough for
    /// `mq_getattr`, and all a look at someone else's queue needs.
    Inspect,
}

/// A queue's attributes (`struct mq_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    /// Most messages the queue holds (`mq_maxmsg`).
    pub maxmsg: i64,
    /// Largest message in bytes (`mq_msgsize`).
    pub msgsize: i64,
    /// Messages in the queue now (`mq_curmsgs`).
    pub curmsgs: i64,
}

fn last_errno() -> Errno {
    Errno::from_io_error(&std::io::Error::last_os_error()).unwrap_or(Errno::IO)
}

/// `mq_open("/NAME", O_RDWR | flags, mode, attr)` (`O_RDONLY` for
/// [`OpenHow::Inspect`]). `name` is validated
/// (no `/`); `attr` is `(maxmsg, msgsize)` or the system defaults. glibc adds
/// `O_CLOEXEC`.
#[doc(alias = "mq_open")]
pub fn open(
    name: &str,
    how: OpenHow,
    mode: u32,
    attr: Option<(i64, i64)>,
) -> Result<OwnedFd, Errno> {
    let path = CString::new(format!("/{name}")).map_err(|_| Errno::INVAL)?;
    let flags = libc::O_CLOEXEC
        | match how {
            OpenHow::Open => libc::O_RDWR,
            OpenHow::CreateExclusive => libc::O_RDWR | libc::O_CREAT | libc::O_EXCL,
            OpenHow::Inspect => libc::O_RDONLY,
        };
    // SAFETY: mq_attr is plain data; all-zero is a valid value.
    let mut a: libc::mq_attr = unsafe { std::mem::zeroed() };
    let attr_ptr: *mut libc::mq_attr = match attr {
        Some((maxmsg, msgsize)) => {
            a.mq_maxmsg = maxmsg;
            a.mq_msgsize = msgsize;
            &mut a
        }
        None => std::ptr::null_mut(),
    };
    loop {
        // SAFETY: `path` is a NUL-terminated string that outlives the call;
        // the variadic arguments are the mode (as c_uint, after default
        // promotion of mode_t) and a pointer to a live mq_attr or NULL, which
        // is what mq_open reads when O_CREAT is given (ignored otherwise).
        let fd = unsafe {
            libc::mq_open(
                path.as_ptr(),
                flags,
                mode as libc::c_uint,
                attr_ptr as *const libc::mq_attr,
            )
        };
        if fd >= 0 {
            // SAFETY: mq_open returned a new descriptor that nobody else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        match last_errno() {
            Errno::INTR => continue,
            e => return Err(e),
        }
    }
}

/// `mq_unlink("/NAME")`.
#[doc(alias = "mq_unlink")]
pub fn unlink(name: &str) -> Result<(), Errno> {
    let path = CString::new(format!("/{name}")).map_err(|_| Errno::INVAL)?;
    // SAFETY: `path` is a NUL-terminated string alive for the call.
    if unsafe { libc::mq_unlink(path.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(last_errno())
    }
}

/// `mq_getattr(mqd)`.
#[doc(alias = "mq_getattr")]
pub fn getattr(fd: BorrowedFd<'_>) -> Result<Attr, Errno> {
    // SAFETY: mq_attr is plain data; all-zero is a valid value.
    let mut a: libc::mq_attr = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is an open descriptor for the call's duration and `a` a
    // live, writable mq_attr.
    if unsafe { libc::mq_getattr(fd.as_raw_fd(), &mut a) } != 0 {
        return Err(last_errno());
    }
    Ok(Attr {
        maxmsg: a.mq_maxmsg,
        msgsize: a.mq_msgsize,
        curmsgs: a.mq_curmsgs,
    })
}

/// When a send or receive gives up.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// Block until it can proceed (`mq_send`/`mq_receive`).
    Forever,
    /// Do not block: an absolute time already past, so the kernel answers
    /// `ETIMEDOUT` at once instead of sleeping. Needs no `O_NONBLOCK`, so a
    /// descriptor shared with other threads is never flipped.
    Never,
    /// Block at most this long (`mq_timed*` with `CLOCK_REALTIME` now plus
    /// this).
    For(Duration),
}

impl Wait {
    fn abs(self) -> Option<libc::timespec> {
        match self {
            Wait::Forever => None,
            Wait::Never => Some(libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            }),
            Wait::For(d) => {
                let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
                let mut sec = now
                    .tv_sec
                    .saturating_add(d.as_secs().min(i64::MAX as u64) as i64);
                let mut nsec = now.tv_nsec + d.subsec_nanos() as i64;
                if nsec >= 1_000_000_000 {
                    nsec -= 1_000_000_000;
                    sec = sec.saturating_add(1);
                }
                Some(libc::timespec {
                    tv_sec: sec as libc::time_t,
                    tv_nsec: nsec as _,
                })
            }
        }
    }
}

/// `mq_timedsend(mqd, msg, len, prio, abs)`; one attempt (the caller
/// retries `EINTR` with the time left). Timing out gives `ETIMEDOUT`.
#[doc(alias = "mq_send")]
#[doc(alias = "mq_timedsend")]
pub fn send(fd: BorrowedFd<'_>, msg: &[u8], prio: u32, wait: Wait) -> Result<(), Errno> {
    let abs = wait.abs();
    let abs_ptr = abs
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `msg` is readable for `msg.len()` bytes, `abs_ptr` is NULL or
    // points to a live timespec, and `fd` is open for the call's duration.
    let r = unsafe {
        libc::mq_timedsend(
            fd.as_raw_fd(),
            msg.as_ptr().cast(),
            msg.len(),
            prio,
            abs_ptr,
        )
    };
    if r == 0 { Ok(()) } else { Err(last_errno()) }
}

/// `mq_timedreceive(mqd, buf, len, &prio, abs)`; one attempt. Returns the
/// message's length and priority. `buf` must hold at least `mq_msgsize`
/// bytes (else `EMSGSIZE`).
#[doc(alias = "mq_receive")]
#[doc(alias = "mq_timedreceive")]
pub fn receive(fd: BorrowedFd<'_>, buf: &mut [u8], wait: Wait) -> Result<(usize, u32), Errno> {
    let abs = wait.abs();
    let abs_ptr = abs
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    let mut prio: libc::c_uint = 0;
    // SAFETY: `buf` is writable for `buf.len()` bytes and the kernel writes
    // at most that many; `prio` is a live c_uint; `abs_ptr` is NULL or a
    // live timespec; `fd` is open for the call's duration.
    let r = unsafe {
        libc::mq_timedreceive(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut prio,
            abs_ptr,
        )
    };
    if r < 0 {
        return Err(last_errno());
    }
    Ok((r as usize, prio))
}

/// Reads one of the limits in [`LIMITS_DIR`] (`msg_max`, `msgsize_max`,
/// `queues_max`, `msg_default`, `msgsize_default`).
pub fn limit(file: &str) -> Option<u64> {
    std::fs::read_to_string(format!("{LIMITS_DIR}/{file}"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The soft `RLIMIT_MSGQUEUE` (bytes all of a user's queues may take), or
/// `None` when unlimited.
pub fn rlimit_msgqueue() -> Option<u64> {
    rustix::process::getrlimit(rustix::process::Resource::Msgqueue).current
}

/// Where `ipcworks ls` looks for the queues: the mqueue file system, when
/// mounted there.
pub const MOUNT_POINT: &str = "/dev/mqueue";

/// The mqueue file system's magic number (`MQUEUE_MAGIC`, `statfs(2)`).
const MQUEUE_MAGIC: i64 = 0x1980_0202;

/// Whether `path` lies on an mqueue file system (`statfs(path)`): true for
/// [`MOUNT_POINT`] when the file system is mounted there (an empty
/// directory left behind by an unmount is not), and for `/proc/PID/fd/N`
/// when that descriptor is a queue's.
#[doc(alias = "statfs")]
#[allow(clippy::unnecessary_cast)] // f_type is a C long on some targets only
pub fn on_mqueue_fs(path: &std::path::Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| s.f_type as i64 == MQUEUE_MAGIC)
}
