//! Pipes: anonymous pipes wired into child processes, named pipes (FIFOs),
//! and a full-duplex stream made of two pipes in one call.
//!
//! A pipe is a one-way byte stream kept by the kernel: what one end writes,
//! the other reads, in order. An anonymous pipe (`pipe(2)`) has no name and
//! reaches another process only by inheritance ([`pass_fd`], or as the
//! child's stdin/stdout through `Into<Stdio>`); a named pipe
//! ([`Fifo`], `mkfifo(3)`) lives in the file system, so unrelated processes
//! can open it. Two pipes pointing opposite ways give a bidirectional
//! stream: [`Duplex`].
//!
//! # Broken pipes
//!
//! Writing to a pipe whose readers are all gone raises `SIGPIPE`, whose
//! default action kills the process. The Rust runtime sets `SIGPIPE` to
//! ignored before `main`, so in Rust programs such a write fails with
//! `EPIPE`, which ipcworks reports as [`Error::Disconnected`](crate::Error::Disconnected).
//! Programs that restored the default (or C hosts of a Rust library) call
//! [`ignore_sigpipe`] once; the `ipcworks` command does so in `main`.
//! Sockets need none of this: ipcworks sends on them with `MSG_NOSIGNAL`.
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let (mut r, mut w) = ipcworks::pipe::pipe()?;
//! w.write_all(b"hello")?;
//! drop(w); // the reader sees end of stream once every writer is closed
//! let mut s = String::new();
//! r.read_to_string(&mut s)?;
//! assert_eq!(s, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod anon;
mod duplex;
mod fifo;

pub use anon::{PipeReader, PipeWriter, pass_fd, pass_fd_env, pipe, take_inherited};
pub use duplex::Duplex;
pub use fifo::{Fifo, FifoOptions};

/// Sets `SIGPIPE` to ignored for the whole process, so a write to a pipe
/// whose reader is gone returns an error instead of killing the process.
/// See the [module docs](self#broken-pipes).
#[doc(alias = "SIGPIPE")]
pub fn ignore_sigpipe() -> crate::Result<()> {
    crate::sys::fdio::ignore_sigpipe().map_err(|e| crate::Error::io("sigaction(SIGPIPE)", e))
}

/// Maps an error of `write` on a pipe or socket: `EPIPE`/`ECONNRESET` mean
/// the reader is gone.
pub(crate) fn write_error(op: &'static str, e: crate::sys::Errno) -> std::io::Error {
    use crate::sys::Errno;
    match e {
        Errno::PIPE | Errno::CONNRESET => {
            std::io::Error::new(std::io::ErrorKind::BrokenPipe, crate::Error::Disconnected)
        }
        other => crate::Error::io(op, other).into(),
    }
}
