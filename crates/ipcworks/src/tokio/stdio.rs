//! A [`Duplex`] pipe pair and the process's standard input and output as
//! tokio's `AsyncRead`/`AsyncWrite`.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::AsyncStream;
use super::stream::{ReadStream, Stream, WriteStream, sealed};
use crate::pipe::{Duplex, PipeReader, PipeWriter};
use crate::sys::fdio;
use crate::{Error, Result};

/// A [`Duplex`] (two pipes, one each way: [`Duplex::pair`],
/// [`Duplex::spawn`], [`Duplex::from_stdio`]) as one `AsyncRead` +
/// `AsyncWrite` stream: its reading half and its writing half each an
/// [`AsyncStream`] (`AsyncFd` on each pipe end, non-blocking).
///
/// `shutdown` ([`AsyncWrite::poll_shutdown`]) closes the writing
/// half (a pipe has no half-close: closing its write end is how the
/// reader learns of the end), so the peer reads end of stream while this
/// end goes on reading; a write after it is `BrokenPipe`.
///
/// ```no_run
/// use ipcworks::pipe::Duplex;
/// use ipcworks::tokio::AsyncDuplex;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// # async fn run() -> std::io::Result<()> {
/// let (io, mut child) = Duplex::spawn(std::process::Command::new("cat"))?;
/// let mut io = AsyncDuplex::new(io)?;
/// io.write_all(b"ping\n").await?;
/// io.shutdown().await?; // cat sees end of input
/// let mut back = String::new();
/// io.read_to_string(&mut back).await?;
/// assert_eq!(back, "ping\n");
/// child.wait()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncDuplex {
    reader: AsyncStream<PipeReader>,
    /// `None` once shut down.
    writer: Option<AsyncStream<PipeWriter>>,
}

impl AsyncDuplex {
    /// Makes `duplex` awaitable (both descriptors turn non-blocking). Must
    /// be called inside a tokio runtime.
    pub fn new(duplex: Duplex) -> Result<AsyncDuplex> {
        let (r, w) = duplex.into_parts();
        Ok(AsyncDuplex {
            reader: AsyncStream::new(r)?,
            writer: Some(AsyncStream::new(w)?),
        })
    }

    /// The two halves, each awaitable on its own (e.g. from two tasks);
    /// the writing half is `None` after a shutdown.
    pub fn into_split(self) -> (AsyncStream<PipeReader>, Option<AsyncStream<PipeWriter>>) {
        (self.reader, self.writer)
    }
}

impl AsyncRead for AsyncDuplex {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().reader).poll_read(cx, buf)
    }
}

fn shut() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the duplex's writing half was shut down",
    )
}

impl AsyncWrite for AsyncDuplex {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().writer.as_mut() {
            Some(w) => Pin::new(w).poll_write(cx, data),
            None => Poll::Ready(Err(shut())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Closes the writing half: the peer reads end of stream.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().writer = None;
        Poll::Ready(Ok(()))
    }
}

/// One standard descriptor's users in this process.
#[derive(Clone, Copy)]
struct Users {
    /// How many [`Stdin`]s (or [`Stdout`]s) use it.
    count: usize,
    /// Whether it was non-blocking before the first.
    was_nonblocking: bool,
    /// The file it is (`fstat`'s device and inode), to tell whether
    /// descriptors 0 and 1 may share one open file description (a
    /// terminal, a socket given as both): its `O_NONBLOCK` is then shared.
    file: Option<(u64, u64)>,
    /// Its last user left while the other descriptor, the same file,
    /// was in use: its mode is put back when the other's last user
    /// leaves.
    deferred: bool,
}

const NOBODY: Users = Users {
    count: 0,
    was_nonblocking: false,
    file: None,
    deferred: false,
};

/// The users of descriptors 0 and 1.
static STDIO: Mutex<[Users; 2]> = Mutex::new([NOBODY; 2]);

/// Counts one more user of standard descriptor `which` (0 or 1), the
/// file `file` ([`dup_std`]'s device and inode); the first notes whether
/// it was non-blocking — or, when the other standard descriptor is the
/// same file and in use (so perhaps the same description, which that user
/// made non-blocking), what the other noted.
fn enter(which: usize, fd: BorrowedFd<'_>, file: (u64, u64)) -> Result<()> {
    let mut s = STDIO.lock().unwrap_or_else(|p| p.into_inner());
    let other = s[1 - which];
    let u = &mut s[which];
    if u.count == 0 {
        let file = Some(file);
        u.was_nonblocking = match other.count > 0 && other.file == file {
            true => other.was_nonblocking,
            false => fdio::is_nonblocking(fd).map_err(|e| Error::io("fcntl(F_GETFL)", e))?,
        };
        u.file = file;
        u.deferred = false;
    }
    u.count += 1;
    Ok(())
}

/// One user of descriptor `which` less; the last puts back the blocking
/// mode it found — unless the other standard descriptor is the same file
/// and still in use (it may share the description, which its user needs
/// non-blocking): then the other's last user puts back both.
fn leave(which: usize, fd: BorrowedFd<'_>) {
    let mut s = STDIO.lock().unwrap_or_else(|p| p.into_inner());
    let other = s[1 - which];
    let u = &mut s[which];
    u.count = u.count.saturating_sub(1);
    if u.count > 0 {
        return;
    }
    if other.count > 0 && u.file.is_some() && other.file == u.file {
        u.deferred = true;
        return;
    }
    let _ = fdio::set_nonblocking(fd, u.was_nonblocking);
    if other.count == 0 && other.deferred && other.file == u.file {
        let was = other.was_nonblocking;
        s[1 - which].deferred = false;
        // The process's own descriptor `1 - which`: the same description
        // as the dropped duplicate was.
        let _ = match which {
            0 => fdio::set_nonblocking(io::stdout().as_fd(), was),
            _ => fdio::set_nonblocking(io::stdin().as_fd(), was),
        };
    }
}

/// Duplicates standard descriptor `which` for an [`AsyncStream`]: refuses
/// a regular file (epoll cannot watch one; read it with `tokio::fs`). The
/// duplicate, and the file it is (device and inode, for [`enter`]), from
/// one `fstat`.
fn dup_std(which: usize, fd: BorrowedFd<'_>) -> Result<(std::os::fd::OwnedFd, (u64, u64))> {
    let name = ["standard input", "standard output"][which];
    let (regular, file) = fdio::regular_file_and_id(fd).map_err(|e| Error::io("fstat", e))?;
    if regular {
        return Err(Error::InvalidArgument(format!(
            "{name} is a regular file, which epoll cannot watch (it never blocks: use \
             std::io or tokio::fs on it)"
        )));
    }
    let dup = fdio::dup(fd).map_err(|e| Error::io("fcntl(F_DUPFD_CLOEXEC)", e))?;
    Ok((dup, file))
}

/// This process's standard input, for [`stdin`] (a duplicate of
/// descriptor 0).
#[derive(Debug)]
pub struct Stdin(PipeReader, User);

/// This process's standard output, for [`stdout`] (a duplicate of
/// descriptor 1).
#[derive(Debug)]
pub struct Stdout(PipeWriter, User);

/// Whether a [`Stdin`]/[`Stdout`] still counts among its descriptor's
/// users: it stops when [`AsyncStream::into_inner`] hands it back (then,
/// and not again when it drops, it [`leave`]s). Both run on an owned or
/// `&mut` value, so a plain flag.
#[derive(Debug)]
struct User(bool);

impl User {
    fn new() -> User {
        User(true)
    }

    /// Leaves the users of standard descriptor `which` once.
    fn leave(&mut self, which: usize, fd: BorrowedFd<'_>) {
        if std::mem::replace(&mut self.0, false) {
            leave(which, fd);
        }
    }
}

impl AsFd for Stdin {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl AsFd for Stdout {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
impl Read for Stdin {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}
impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
impl Drop for Stdin {
    fn drop(&mut self) {
        self.1.leave(0, self.0.as_fd());
    }
}
impl Drop for Stdout {
    fn drop(&mut self) {
        self.1.leave(1, self.0.as_fd());
    }
}
impl sealed::Sealed for Stdin {
    /// One async user of descriptor 0 less: the description turns
    /// blocking again only if it was the last (see [`stdin`]).
    fn leave_async(&mut self) -> io::Result<()> {
        self.1.leave(0, self.0.as_fd());
        Ok(())
    }
}
impl sealed::Sealed for Stdout {
    /// As [`Stdin`]'s, for descriptor 1.
    fn leave_async(&mut self) -> io::Result<()> {
        self.1.leave(1, self.0.as_fd());
        Ok(())
    }
}
impl Stream for Stdin {}
impl Stream for Stdout {}
impl ReadStream for Stdin {}
impl WriteStream for Stdout {}

/// This process's standard input as an [`AsyncStream`] (`AsyncRead`): a
/// pipe, FIFO, socket or terminal. A regular file (`< file`) is refused
/// ([`Error::InvalidArgument`]: epoll cannot watch one, and reading it
/// never blocks, so read it with `std::io::stdin()` or `tokio::fs`).
///
/// # The shared file description
///
/// Non-blocking mode (`O_NONBLOCK`) belongs to the *open file
/// description*, which descriptor 0 shares with every duplicate of it:
/// std's `io::stdin()` in this process, and the other processes that
/// inherited it (the shell, the other commands of a pipeline, a parent
/// sharing its terminal). While a `Stdin` lives, their reads may fail
/// with `EAGAIN` (`WouldBlock`) instead of waiting. The mode found before
/// the first `Stdin` of this process is put back when the last one is
/// dropped (or [`AsyncStream::into_inner`] is called), so keep it only as
/// long as you read, and do not read descriptor 0 otherwise meanwhile.
/// When descriptors 0 and 1 are the same file (a terminal, a socket
/// given as both), they may share one description: then the mode is put
/// back only when the last `Stdin` *and* the last [`Stdout`] are gone (in
/// any order), so neither turns the other's description blocking under
/// it. std's `io::stdin()` buffers: bytes it has taken are not seen here.
pub fn stdin() -> Result<AsyncStream<Stdin>> {
    let fd0 = io::stdin();
    let (fd, file) = dup_std(0, fd0.as_fd())?;
    enter(0, fd.as_fd(), file)?;
    AsyncStream::new(Stdin(PipeReader(fd), User::new()))
}

/// This process's standard output as an [`AsyncStream`] (`AsyncWrite`):
/// the same rules and the same caveat as [`stdin`] (non-blocking mode is
/// set on the description shared with descriptor 1, std's
/// `io::stdout()`, and whoever else writes to it, put back when the last
/// `Stdout` goes). Writes are not buffered here; std's `print!` output
/// still in its buffer may come after bytes written here (flush it
/// first).
pub fn stdout() -> Result<AsyncStream<Stdout>> {
    let fd1 = io::stdout();
    let (fd, file) = dup_std(1, fd1.as_fd())?;
    enter(1, fd.as_fd(), file)?;
    AsyncStream::new(Stdout(PipeWriter(fd), User::new()))
}
