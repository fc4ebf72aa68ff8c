//! `mq`: two POSIX message queues (`mq_open(3)`), ping and pong, with the
//! message size set to the case's size.

use std::ffi::CString;
use std::io;

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, retry_io};
use crate::schema::Wait;

/// POSIX message queues.
pub struct Mq;

/// Per-message bookkeeping the kernel charges to `RLIMIT_MSGQUEUE`
/// (roughly; the exact figure depends on the kernel).
const OVERHEAD: u64 = 64;

fn read_num(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn rlimit_msgqueue() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Msgqueue)
        .current
        .unwrap_or(u64::MAX)
}

/// An open queue descriptor, closed on drop.
struct Queue(libc::mqd_t);

impl Drop for Queue {
    fn drop(&mut self) {
        // SAFETY: `self.0` is a descriptor this struct owns, closed once.
        unsafe { libc::mq_close(self.0) };
    }
}

/// Unlinks the queue names.
struct Unlink(Vec<CString>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for n in &self.0 {
            // SAFETY: `n` is a valid NUL-terminated string.
            unsafe { libc::mq_unlink(n.as_ptr()) };
        }
    }
}

fn open(name: &CString, create: Option<(i64, i64)>, wait: Wait) -> io::Result<Queue> {
    let mut flags = libc::O_RDWR | libc::O_CLOEXEC;
    if wait == Wait::Poll {
        flags |= libc::O_NONBLOCK;
    }
    let fd = match create {
        Some((maxmsg, msgsize)) => {
            // SAFETY: mq_attr is plain data; all-zero is a valid value.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = maxmsg;
            attr.mq_msgsize = msgsize;
            // SAFETY: `name` is NUL-terminated; the variadic arguments are
            // the mode (as the C type mode_t promotes to) and a pointer to
            // an initialized mq_attr that outlives the call.
            unsafe {
                libc::mq_open(
                    name.as_ptr(),
                    flags | libc::O_CREAT | libc::O_EXCL,
                    0o600 as libc::c_uint,
                    &attr as *const libc::mq_attr,
                )
            }
        }
        // SAFETY: `name` is NUL-terminated; no variadic arguments without O_CREAT.
        None => unsafe { libc::mq_open(name.as_ptr(), flags) },
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(match create {
            Some((maxmsg, msgsize)) => io::Error::other(format!(
                "mq_open(maxmsg {maxmsg}, msgsize {msgsize}): {e} (fs.mqueue.msgsize_max = {}, msg_max = {}, RLIMIT_MSGQUEUE = {} bytes)",
                read_num("/proc/sys/fs/mqueue/msgsize_max").unwrap_or(0),
                read_num("/proc/sys/fs/mqueue/msg_max").unwrap_or(0),
                rlimit_msgqueue()
            )),
            None => e,
        });
    }
    Ok(Queue(fd))
}

struct Pair {
    rx: Queue,
    tx: Queue,
    wait: Wait,
}

impl Link for Pair {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        retry_io(self.wait, || {
            // SAFETY: `msg` is valid for `msg.len()` bytes; the queue is open.
            let r = unsafe { libc::mq_send(self.tx.0, msg.as_ptr().cast(), msg.len(), 0) };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        let n = retry_io(self.wait, || {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes, which is
            // the queue's message size; the queue is open.
            let r = unsafe {
                libc::mq_receive(
                    self.rx.0,
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    std::ptr::null_mut(),
                )
            };
            usize::try_from(r).map_err(|_| io::Error::last_os_error())
        })?;
        if n != buf.len() {
            return Err(io::Error::other(format!(
                "received {n} bytes, expected {}",
                buf.len()
            )));
        }
        Ok(())
    }
}

fn names(base: &str) -> io::Result<(CString, CString)> {
    Ok((
        CString::new(format!("/{base}-ping")).map_err(io::Error::other)?,
        CString::new(format!("/{base}-pong")).map_err(io::Error::other)?,
    ))
}

impl Mechanism for Mq {
    fn name(&self) -> &'static str {
        "mq"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        let limit = rlimit_msgqueue();
        let need = 2 * (case.size as u64 + OVERHEAD);
        if need > limit {
            return Err(format!(
                "two queues of {}-byte messages exceed RLIMIT_MSGQUEUE ({limit} bytes per user)",
                case.size
            ));
        }
        Ok(())
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let base = super::unique("mq");
        let (ping, pong) = names(&base)?;
        let size = case.size as u64;
        let budget = rlimit_msgqueue().saturating_sub(size + OVERHEAD);
        let maxmsg = (budget / (size + OVERHEAD))
            .min(read_num("/proc/sys/fs/mqueue/msg_max").unwrap_or(10))
            .clamp(1, 10);
        let mut guard = Unlink(vec![]);
        let tx = open(&ping, Some((maxmsg as i64, size as i64)), case.wait)?;
        guard.0.push(ping);
        let rx = open(&pong, Some((1, size as i64)), case.wait)?;
        guard.0.push(pong);
        let link = Pair {
            rx,
            tx,
            wait: case.wait,
        };
        Ok(Setup::ready(vec![], vec![base], link).keep(guard))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let (ping, pong) = names(h.arg(0)?)?;
        Ok(Box::new(Pair {
            rx: open(&ping, None, case.wait)?,
            tx: open(&pong, None, case.wait)?,
            wait: case.wait,
        }))
    }
}
