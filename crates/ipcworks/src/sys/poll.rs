//! `epoll(7)`, `eventfd(2)` and `pidfd_open(2)`: the descriptors the
//! [`WaitSet`](crate::waitset::WaitSet) and the dead-peer watcher wait on.
//!
//! Thin wrappers, one call each, in the manner of [`mq`](super::mq): each
//! names its call, retries nothing (the callers judge `EINTR` against
//! their deadline), and returns the kernel's error.
//!
//! # References
//! - [epoll(7)](https://man7.org/linux/man-pages/man7/epoll.7.html)
//! - [eventfd(2)](https://man7.org/linux/man-pages/man2/eventfd.2.html)
//! - [pidfd_open(2)](https://man7.org/linux/man-pages/man2/pidfd_open.2.html)

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, epoll};
use rustix::io::Errno;

/// One readiness report of [`epoll_wait`]: the token given to
/// [`epoll_add`] and whether the descriptor hung up or failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The token the descriptor was added with.
    pub token: u64,
    /// `EPOLLHUP` or `EPOLLERR` was reported.
    pub hangup: bool,
}

/// `epoll_create1(EPOLL_CLOEXEC)`: a new, empty interest list.
#[doc(alias = "epoll_create1")]
pub fn epoll_create() -> Result<OwnedFd, Errno> {
    epoll::create(epoll::CreateFlags::CLOEXEC)
}

/// `epoll_ctl(epfd, EPOLL_CTL_ADD, fd, {EPOLLIN | EPOLLRDHUP, token})`:
/// watch `fd` for reading (level-triggered), reported with `token`; with
/// `out`, for writing (`EPOLLOUT`) instead.
#[doc(alias = "epoll_ctl")]
pub fn epoll_add(epfd: impl AsFd, fd: impl AsFd, token: u64, out: bool) -> Result<(), Errno> {
    let mut flags = epoll::EventFlags::IN | epoll::EventFlags::RDHUP;
    if out {
        flags = epoll::EventFlags::OUT;
    }
    epoll::add(epfd, fd, epoll::EventData::new_u64(token), flags)
}

/// `epoll_ctl(epfd, EPOLL_CTL_DEL, fd)`: stop watching `fd`.
#[doc(alias = "epoll_ctl")]
pub fn epoll_del(epfd: impl AsFd, fd: impl AsFd) -> Result<(), Errno> {
    epoll::delete(epfd, fd)
}

/// `epoll_wait(epfd, events, max, timeout)`: waits at most `timeout`
/// (`None`: for ever) and appends what is ready to `out` (at most 64 per
/// call). `EINTR` is returned as is.
pub fn epoll_wait(
    epfd: impl AsFd,
    out: &mut Vec<Ready>,
    timeout: Option<Duration>,
) -> Result<(), Errno> {
    let mut events: Vec<epoll::Event> = Vec::with_capacity(64);
    let ts = timeout.map(|d| rustix::time::Timespec {
        // epoll_wait takes milliseconds: round up, so a short timeout
        // does not turn into a busy poll of 0 ms.
        tv_sec: d.as_secs().min(i32::MAX as u64 / 1000) as i64,
        tv_nsec: d.subsec_nanos().div_ceil(1_000_000).min(999) as i64 * 1_000_000,
    });
    epoll::wait(
        epfd,
        rustix::buffer::spare_capacity(&mut events),
        ts.as_ref(),
    )?;
    out.extend(events.iter().map(|e| {
        let flags = e.flags;
        Ready {
            token: e.data.u64(),
            hangup: flags.intersects(epoll::EventFlags::HUP | epoll::EventFlags::ERR),
        }
    }));
    Ok(())
}

/// `eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)`: a counter that reads as ready
/// while non-zero.
pub fn eventfd() -> Result<OwnedFd, Errno> {
    rustix::event::eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
}

/// `write(efd, &1, 8)`: makes an eventfd readable. A full counter
/// (`EAGAIN`, after 2^64 - 2 signals nobody read) is already readable.
#[doc(alias = "eventfd_write")]
pub fn eventfd_signal(efd: impl AsFd) {
    let _ = rustix::io::write(efd, &1u64.to_ne_bytes());
}

/// `read(efd, &n, 8)`: clears an eventfd; returns whether it was signalled.
#[doc(alias = "eventfd_read")]
pub fn eventfd_clear(efd: impl AsFd) -> bool {
    let mut b = [0u8; 8];
    matches!(rustix::io::read(efd, &mut b), Ok(8))
}

/// `pidfd_open(pid, 0)`: a descriptor of process `pid` that turns readable
/// when it exits. `ESRCH`: no such process. The descriptor names whatever
/// process holds `pid` at the time of the call; confirm it is the one you
/// meant afterwards ([`Identity::pidfd`](super::proc::Identity::pidfd)
/// does).
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, Errno> {
    // A pid read from shared memory may be anything: one above the
    // kernel's range names no process (and `Pid` refuses negatives).
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(Errno::SRCH)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
}

/// `pidfd_open(tid, PIDFD_THREAD)` (Linux 6.9+): a descriptor of thread
/// `tid` that turns readable when that thread exits. `EINVAL` on older
/// kernels (then only a thread-group leader can be watched, through
/// [`pidfd_open`], and only for its whole process's exit).
pub fn pidfd_open_thread(tid: u32) -> Result<OwnedFd, Errno> {
    let tid = i32::try_from(tid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(Errno::SRCH)?;
    // PIDFD_THREAD is O_EXCL (include/uapi/linux/pidfd.h).
    let thread = rustix::process::PidfdFlags::from_bits_retain(libc::O_EXCL as u32);
    rustix::process::pidfd_open(tid, thread)
}
