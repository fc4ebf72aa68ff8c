//! `sysv`: one System V message queue (`msgget(2)`, private key) carrying
//! both directions: ping messages have type 1, pong messages type 2.

use std::io;

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, retry_io};
use crate::schema::Wait;

/// System V message queues.
pub struct Sysv;

const PING: libc::c_long = 1;
const PONG: libc::c_long = 2;

fn msgmax() -> usize {
    std::fs::read_to_string("/proc/sys/kernel/msgmax")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(8192)
}

/// Removes the queue (`IPC_RMID`).
struct Remove(libc::c_int);

impl Drop for Remove {
    fn drop(&mut self) {
        // SAFETY: IPC_RMID takes no buffer; a stale id only fails.
        unsafe { libc::msgctl(self.0, libc::IPC_RMID, std::ptr::null_mut()) };
    }
}

struct Queue {
    id: libc::c_int,
    rx_type: libc::c_long,
    tx_type: libc::c_long,
    wait: Wait,
    /// `struct msgbuf`: the type (a C long) then the text.
    buf: Vec<u8>,
}

const HDR: usize = std::mem::size_of::<libc::c_long>();

impl Queue {
    fn new(id: libc::c_int, rx_type: libc::c_long, tx_type: libc::c_long, case: &Case) -> Queue {
        // Allocated as u64 words would be tidier; a Vec<u8> is fine since
        // the kernel copies from it (no alignment needed by msgsnd).
        Queue {
            id,
            rx_type,
            tx_type,
            wait: case.wait,
            buf: vec![0u8; HDR + case.size],
        }
    }

    fn flags(&self) -> libc::c_int {
        if self.wait == Wait::Poll {
            libc::IPC_NOWAIT
        } else {
            0
        }
    }
}

impl Link for Queue {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.buf[..HDR].copy_from_slice(&self.tx_type.to_ne_bytes());
        self.buf[HDR..HDR + msg.len()].copy_from_slice(msg);
        let flags = self.flags();
        retry_io(self.wait, || {
            // SAFETY: `buf` holds the type followed by `msg.len()` bytes of text.
            let r = unsafe { libc::msgsnd(self.id, self.buf.as_ptr().cast(), msg.len(), flags) };
            if r == 0 {
                Ok(())
            } else {
                Err(io::Error::last_os_error())
            }
        })
    }

    fn recv(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let out = out.as_mut_slice();
        let flags = self.flags();
        let n = retry_io(self.wait, || {
            // SAFETY: `buf` has room for the type and `out.len()` bytes of text.
            let r = unsafe {
                libc::msgrcv(
                    self.id,
                    self.buf.as_mut_ptr().cast(),
                    out.len(),
                    self.rx_type,
                    flags,
                )
            };
            usize::try_from(r).map_err(|_| {
                let e = io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::ENOMSG) {
                    io::ErrorKind::WouldBlock.into()
                } else {
                    e
                }
            })
        })?;
        if n != out.len() {
            return Err(io::Error::other(format!(
                "received {n} bytes, expected {}",
                out.len()
            )));
        }
        out.copy_from_slice(&self.buf[HDR..HDR + n]);
        Ok(())
    }
}

impl Mechanism for Sysv {
    fn name(&self) -> &'static str {
        "sysv"
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        let max = msgmax();
        if case.size > max {
            return Err(format!(
                "larger than the biggest System V message (kernel.msgmax = {max} bytes)"
            ));
        }
        Ok(())
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        // SAFETY: plain system call with constant arguments.
        let id = unsafe { libc::msgget(libc::IPC_PRIVATE, libc::IPC_CREAT | 0o600) };
        if id < 0 {
            return Err(io::Error::other(format!(
                "msgget: {}",
                io::Error::last_os_error()
            )));
        }
        let guard = Remove(id);
        // Let a few messages queue up (msgmnb, 16 KiB by default, holds two
        // 8 KiB messages); only privileged users may raise it, so failure
        // is fine.
        // SAFETY: msqid_ds is plain data; msgctl fills it.
        let mut ds: libc::msqid_ds = unsafe { std::mem::zeroed() };
        // SAFETY: `ds` is a valid msqid_ds for IPC_STAT to fill.
        if unsafe { libc::msgctl(id, libc::IPC_STAT, &mut ds) } == 0 {
            let want = (8 * (case.size + HDR)) as libc::msglen_t;
            if ds.msg_qbytes < want {
                ds.msg_qbytes = want;
                // SAFETY: `ds` was filled by IPC_STAT; IPC_SET reads it.
                unsafe { libc::msgctl(id, libc::IPC_SET, &mut ds) };
            }
        }
        let link = Queue::new(id, PONG, PING, case);
        Ok(Setup::ready(vec![], vec![id.to_string()], link).keep(guard))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let id: libc::c_int = h.arg(0)?.parse().map_err(io::Error::other)?;
        Ok(Box::new(Queue::new(id, PING, PONG, case)))
    }
}
