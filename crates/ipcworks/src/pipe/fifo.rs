//! Named pipes (FIFOs): `mkfifo`, opening without blocking for ever, removal.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::FileType;

use super::{PipeReader, PipeWriter};
use crate::registry::{self, Kind};
use crate::sys::fdio::{self, Ready};
use crate::sys::pipe::{self as sys, PathInfo};
use crate::sys::time::Deadline;
use crate::sys::{Errno, mem::euid};
use crate::{Error, Result};

const KIND: &str = "FIFO";

/// Options for creating a [`Fifo`]: mode (default `0600`, applied exactly
/// whatever the umask) and whether it stays after the creator drops it.
#[derive(Debug, Clone)]
pub struct FifoOptions {
    mode: u32,
    persist: bool,
}

impl Default for FifoOptions {
    fn default() -> Self {
        FifoOptions {
            mode: 0o600,
            persist: false,
        }
    }
}

impl FifoOptions {
    /// Default options: mode `0600`, removed on drop.
    pub fn new() -> Self {
        Self::default()
    }

    /// Permission bits of the FIFO (exactly these, whatever the umask).
    /// When opening an existing FIFO, one whose mode grants more is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the FIFO in the file system after the creator drops it.
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// Creates the FIFO at `path` (`mkfifo`); fails with
    /// [`Error::AlreadyExists`] if anything is there.
    ///
    /// The exact mode is set through a handle on the FIFO just made (an
    /// `O_PATH` descriptor, `chmod` of `/proc/self/fd/N`), never by path: if another user swaps the FIFO
    /// for a symlink in between, nothing is changed through it and this
    /// fails with [`Error::Refused`].
    pub fn create(&self, path: impl AsRef<Path>) -> Result<Fifo> {
        let path = path.as_ref();
        let id = sys::mkfifo(path, self.mode).map_err(|e| match e {
            Errno::EXIST | Errno::LOOP | Errno::STALE => errno(e, path, "mkfifo"),
            // A missing or unwritable directory, a read-only file system …
            e => Error::CannotCreate {
                kind: KIND,
                name: path.display().to_string(),
                error: e.into(),
            },
        })?;
        registry::register(Kind::Fifo, &registry::path_name(path), self.persist);
        Ok(Fifo {
            path: path.to_path_buf(),
            remove_on_drop: !self.persist,
            id: Some(id),
            mode: self.mode,
        })
    }

    /// Creates the FIFO, or uses the one already at `path` after checking
    /// it (see [`Fifo`]: a FIFO, not a symlink, owned by you or root, no
    /// permission beyond [`mode`](Self::mode)). Returns whether it was
    /// created; only a created FIFO is removed on drop.
    pub fn open_or_create(&self, path: impl AsRef<Path>) -> Result<(Fifo, bool)> {
        let path = path.as_ref();
        match self.create(path) {
            Ok(f) => Ok((f, true)),
            Err(Error::AlreadyExists { .. }) => {
                let info = check(path, self.mode)?;
                Ok((
                    Fifo {
                        path: path.to_path_buf(),
                        remove_on_drop: false,
                        id: Some(info.dev_ino),
                        mode: self.mode,
                    },
                    false,
                ))
            }
            Err(e) => Err(e),
        }
    }

    /// [`Fifo::open_read`], accepting a FIFO whose mode is within
    /// [`mode`](Self::mode).
    pub fn open_read(
        &self,
        path: impl AsRef<Path>,
        timeout: Option<Duration>,
    ) -> Result<PipeReader> {
        open_read(path.as_ref(), self.mode, timeout)
    }

    /// [`Fifo::open_write`], accepting a FIFO whose mode is within
    /// [`mode`](Self::mode).
    pub fn open_write(
        &self,
        path: impl AsRef<Path>,
        timeout: Option<Duration>,
    ) -> Result<PipeWriter> {
        open_write(path.as_ref(), self.mode, timeout)
    }
}

/// A named pipe (`mkfifo(3)`): a pipe with a name in the file system, so
/// unrelated processes can meet at it. The creator removes it on drop
/// unless [`persist`](Fifo::persist)ed.
///
/// Opening a FIFO normally blocks until the other end is opened too; the
/// `open_*` functions here take a timeout instead of waiting for ever.
///
/// A FIFO opened by path is checked first, like every named object
/// ipcworks opens: it must be a FIFO (not a symlink or another kind of
/// file), owned by you or by root, and grant no permission beyond the
/// expected mode (`0600`, or [`FifoOptions::mode`]); otherwise
/// [`Error::Refused`] says why. Root's FIFOs are accepted because root can
/// reach every file anyway, but their mode counts like anyone's: a
/// world-writable FIFO of root's is no more private than one of a
/// stranger's. The descriptor opened is checked to be the FIFO examined.
///
/// ```
/// use std::io::{Read, Write};
/// use std::time::Duration;
/// use ipcworks::pipe::Fifo;
///
/// let dir = std::env::temp_dir().join(format!("ipcworks-doc-fifo-{}", std::process::id()));
/// let fifo = Fifo::create(&dir)?; // mode 0600, removed when `fifo` drops
/// let t = std::thread::spawn({
///     let p = dir.clone();
///     move || {
///         let mut w = Fifo::open_write(&p, Some(Duration::from_secs(10))).unwrap();
///         w.write_all(b"hi").unwrap();
///     }
/// });
/// let mut r = fifo.open_reader(Some(Duration::from_secs(10)))?;
/// let mut s = String::new();
/// r.read_to_string(&mut s)?;
/// assert_eq!(s, "hi");
/// t.join().unwrap();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[doc(alias = "mkfifo")]
pub struct Fifo {
    path: PathBuf,
    remove_on_drop: bool,
    id: Option<(u64, u64)>,
    /// The mode it was made with or accepted at, for reopening it.
    mode: u32,
}

fn errno(e: Errno, path: &Path, op: &'static str) -> Error {
    let name = path.display().to_string();
    match e {
        Errno::EXIST => Error::AlreadyExists { kind: KIND, name },
        Errno::NOENT => Error::NotFound { kind: KIND, name },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied { name },
        Errno::LOOP => Error::Refused {
            name,
            reason: "it is a symbolic link".into(),
        },
        Errno::STALE => Error::Refused {
            name,
            reason: "the FIFO just made there was replaced by something else".into(),
        },
        other => Error::io(op, other),
    }
}

/// `lstat` and the checks before opening by name: a FIFO, not a symlink,
/// owned by us (or root), no permission beyond `mode`.
fn check(path: &Path, mode: u32) -> Result<PathInfo> {
    let info = sys::lstat(path).map_err(|e| errno(e, path, "lstat"))?;
    let refuse = |reason: String| Error::Refused {
        name: path.display().to_string(),
        reason,
    };
    if info.kind == FileType::Symlink {
        return Err(refuse("it is a symbolic link".into()));
    }
    if info.kind != FileType::Fifo {
        return Err(refuse(format!("it is not a FIFO but a {:?}", info.kind)));
    }
    let me = euid();
    if info.uid != me && info.uid != 0 {
        return Err(refuse(format!(
            "it is owned by {}, not by you (uid {me}) or root; another user may have planted it",
            crate::sys::user::describe_user(info.uid)
        )));
    }
    if info.mode & 0o777 & !mode != 0 {
        return Err(refuse(format!(
            "its mode {:04o} grants more than the expected {mode:04o} (others could read or \
             write it); ask for that mode if it is meant",
            info.mode & 0o777
        )));
    }
    Ok(info)
}

impl Fifo {
    /// Creates a FIFO at `path` with mode exactly `0600`, removed on drop.
    /// See [`FifoOptions`] for other modes and [`FifoOptions::open_or_create`].
    pub fn create(path: impl AsRef<Path>) -> Result<Fifo> {
        FifoOptions::new().create(path)
    }

    /// Options for creating a FIFO.
    pub fn options() -> FifoOptions {
        FifoOptions::new()
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keep the FIFO after this value is dropped.
    pub fn persist(&mut self) {
        if self.remove_on_drop {
            registry::register(Kind::Fifo, &registry::path_name(&self.path), true);
        }
        self.remove_on_drop = false;
    }

    /// Whether it will be removed on drop.
    pub fn removes_on_drop(&self) -> bool {
        self.remove_on_drop
    }

    /// Opens this FIFO for reading; see [`Fifo::open_read`]. Its mode may
    /// be the one it was made with or accepted at.
    pub fn open_reader(&self, timeout: Option<Duration>) -> Result<PipeReader> {
        open_read(&self.path, self.mode, timeout)
    }

    /// Opens this FIFO for writing; see [`Fifo::open_write`]. Its mode may
    /// be the one it was made with or accepted at.
    pub fn open_writer(&self, timeout: Option<Duration>) -> Result<PipeWriter> {
        open_write(&self.path, self.mode, timeout)
    }

    /// Opens the FIFO at `path` for reading and waits, at most `timeout`
    /// (`None`: for ever), until a writer has written something or has come
    /// and gone; [`Error::Timeout`] otherwise. The FIFO is checked first
    /// (see [`Fifo`]; expected mode `0600`, others through
    /// [`FifoOptions::open_read`]).
    ///
    /// How: `open(O_RDONLY | O_NONBLOCK)` succeeds at once even without a
    /// writer; `poll(POLLIN)` then waits for the first data (Linux does not
    /// report hang-up to a reader that has not yet seen a writer); finally
    /// `O_NONBLOCK` is cleared so reads block as usual.
    pub fn open_read(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<PipeReader> {
        FifoOptions::new().open_read(path, timeout)
    }

    /// Opens the FIFO at `path` for writing, waiting at most `timeout`
    /// (`None`: for ever) for a reader to open it; [`Error::Timeout`]
    /// otherwise. The FIFO is checked first (see [`Fifo`]; expected mode
    /// `0600`, others through [`FifoOptions::open_write`]).
    ///
    /// How: `open(O_WRONLY | O_NONBLOCK)` fails with `ENXIO` while no reader
    /// has the FIFO open; it is retried (1 ms, growing to 20 ms apart) until
    /// a reader appears or the deadline passes. Then `O_NONBLOCK` is cleared.
    pub fn open_write(path: impl AsRef<Path>, timeout: Option<Duration>) -> Result<PipeWriter> {
        FifoOptions::new().open_write(path, timeout)
    }

    /// Removes the FIFO at `path` (`unlink`), after checking it is a FIFO.
    pub fn remove(path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let info = sys::lstat(path).map_err(|e| errno(e, path, "lstat"))?;
        if info.kind != FileType::Fifo {
            return Err(Error::Refused {
                name: path.display().to_string(),
                reason: "it is not a FIFO".into(),
            });
        }
        registry::unregister(Kind::Fifo, &registry::path_name(path));
        sys::unlink(path).map_err(|e| errno(e, path, "unlink"))
    }
}

fn open_read(path: &Path, mode: u32, timeout: Option<Duration>) -> Result<PipeReader> {
    let deadline = Deadline::from_timeout(timeout);
    let before = check(path, mode)?;
    let fd = sys::open_nonblocking(path, false).map_err(|e| errno(e, path, "open"))?;
    same_object(&fd, &before, path)?;
    if !fdio::wait(fd.as_fd(), Ready::Read, deadline).map_err(|e| Error::io("poll", e))? {
        return Err(Error::Timeout);
    }
    fdio::set_nonblocking(fd.as_fd(), false).map_err(|e| Error::io("fcntl(F_SETFL)", e))?;
    Ok(PipeReader(fd))
}

fn open_write(path: &Path, mode: u32, timeout: Option<Duration>) -> Result<PipeWriter> {
    let deadline = Deadline::from_timeout(timeout);
    let before = check(path, mode)?;
    let mut nap = Duration::from_millis(1);
    let fd = loop {
        match sys::open_nonblocking(path, true) {
            Ok(fd) => break fd,
            Err(Errno::NXIO) => {
                if deadline.expired() {
                    return Err(Error::Timeout);
                }
                let nap_now = deadline.remaining().map_or(nap, |left| nap.min(left));
                std::thread::sleep(nap_now);
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            Err(e) => return Err(errno(e, path, "open")),
        }
    };
    same_object(&fd, &before, path)?;
    fdio::set_nonblocking(fd.as_fd(), false).map_err(|e| Error::io("fcntl(F_SETFL)", e))?;
    Ok(PipeWriter(fd))
}

fn same_object(fd: &OwnedFd, before: &PathInfo, path: &Path) -> Result<()> {
    let now = sys::fstat(fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
    if now.kind != FileType::Fifo || now.dev_ino != before.dev_ino {
        return Err(Error::Refused {
            name: path.display().to_string(),
            reason: "it was replaced while being opened".into(),
        });
    }
    Ok(())
}

impl Drop for Fifo {
    fn drop(&mut self) {
        if !self.remove_on_drop {
            return;
        }
        // Remove only the FIFO we created, not something put in its place.
        if let Ok(info) = sys::lstat(&self.path)
            && Some(info.dev_ino) == self.id
        {
            registry::unregister(Kind::Fifo, &registry::path_name(&self.path));
            let _ = sys::unlink(&self.path);
        }
    }
}
