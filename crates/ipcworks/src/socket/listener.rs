//! Creating a Unix socket file safely, and the listening socket.
//!
//! # How a socket file gets exactly mode 0600
//!
//! `bind` creates the file with `0777 & ~umask`, and nothing applied to the
//! socket descriptor before `bind` changes that. Setting the umask around
//! `bind` would race with other threads creating files. So ipcworks binds
//! inside a fresh private directory (mode `0700`, created next to the target
//! so a rename stays on one file system), `chmod`s the socket file to the
//! wanted mode there (no other user can reach it in between), calls
//! `listen`, and only then renames it into place with
//! `renameat2(RENAME_NOREPLACE)`, which never replaces anything. The private
//! directory is removed whatever happens. The bind itself goes through
//! `/proc/self/fd/N/s` (N: a handle on the private directory), so only the
//! final path has to fit the 107 bytes of a socket address.
//!
//! # Stale and live socket files
//!
//! A socket file outlives the server that bound it. Before binding, an
//! existing file at the path is probed: if it is a socket and `connect`
//! fails with `ECONNREFUSED`, nobody listens there and it is removed; if
//! `connect` succeeds a live server owns it and binding fails with
//! [`Error::AlreadyExists`]; anything else (not a socket, a symlink, no
//! permission) is refused and left alone.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::fs::FileType;

use super::unix::{UnixSeqpacket, UnixStream};
use crate::registry;
use crate::sys::Errno;
use crate::sys::pipe as fsys;
use crate::sys::socket::{self as sys, Kind};
use crate::{Error, Result};

const KIND: &str = "Unix socket";

/// A socket file this process created; removed on drop (only if the file at
/// the path is still the one we created), unless [`persist`](Self::persist)ed.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    id: (u64, u64),
    remove: bool,
}

impl SocketFile {
    /// The path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leave the file behind on drop.
    pub fn persist(&mut self) {
        self.remove = false;
        registry::register(
            registry::Kind::UnixSocket,
            &registry::path_name(&self.path),
            true,
        );
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if self.remove
            && let Ok(info) = fsys::lstat(&self.path)
            && info.dev_ino == self.id
        {
            registry::unregister(registry::Kind::UnixSocket, &registry::path_name(&self.path));
            let _ = fsys::unlink(&self.path);
        }
    }
}

/// Removes the private directory (and anything left in it) on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fsys::unlink(&self.0.join("s"));
        let _ = sys::rmdir(&self.0);
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Refused {
        name: path.display().to_string(),
        reason: reason.into(),
    }
}

/// Checks what is at `path` and removes it only if it is a stale socket.
fn clear_stale(path: &Path, kind: Kind) -> Result<()> {
    let info = match fsys::lstat(path) {
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(Error::io("lstat", e)),
        Ok(i) => i,
    };
    if info.kind == FileType::Symlink {
        return Err(refuse(path, "it is a symbolic link"));
    }
    if info.kind != FileType::Socket {
        return Err(refuse(
            path,
            format!("it exists and is not a socket but a {:?}", info.kind),
        ));
    }
    let probe = sys::socket(kind).map_err(|e| Error::io("socket", e))?;
    match sys::connect(probe.as_fd(), path) {
        Ok(()) => Err(Error::AlreadyExists {
            kind: "Unix socket with a live server",
            name: path.display().to_string(),
        }),
        Err(Errno::CONNREFUSED) => {
            // Stale: remove it, but only the very file we probed.
            match fsys::lstat(path) {
                Ok(now) if now.dev_ino == info.dev_ino => match fsys::unlink(path) {
                    Ok(()) | Err(Errno::NOENT) => Ok(()),
                    Err(e) => Err(Error::io("unlink", e)),
                },
                _ => Ok(()),
            }
        }
        Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(refuse(
            path,
            format!(
                "a socket exists there and probing it failed ({e}); remove it by hand if it is stale"
            ),
        )),
    }
}

/// Creates a socket of `kind` bound at `path` with exactly `mode`, listening
/// if it is connection-oriented. See the module docs for the steps.
pub(crate) fn bind_path(path: &Path, kind: Kind, mode: u32) -> Result<(OwnedFd, SocketFile)> {
    static N: AtomicU32 = AtomicU32::new(0);
    if path.as_os_str().len() > 107 {
        return Err(Error::InvalidArgument(format!(
            "socket path {:?} is {} bytes long; a Unix socket address holds at most 107",
            path.display(),
            path.as_os_str().len()
        )));
    }
    clear_stale(path, kind)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = parent.join(format!(
        ".iw{:x}.{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    sys::mkdir_private(&tmp).map_err(|e| match e {
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: parent.display().to_string(),
        },
        Errno::NOENT => Error::NotFound {
            kind: "directory",
            name: parent.display().to_string(),
        },
        e => Error::io("mkdir", e),
    })?;
    let tmp = TempDir(tmp);
    let inner = tmp.0.join("s");
    // Bind through `/proc/self/fd/N/s` (N: a handle on the private
    // directory), so only the final path must fit the 107 bytes of a socket
    // address; without /proc, bind through the directory's own path.
    let dir = sys::open_dir(&tmp.0).map_err(|e| Error::io("open", e))?;
    let short = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
    let bind_at = if short.is_dir() {
        short.join("s")
    } else {
        inner.clone()
    };
    let fd = sys::socket(kind).map_err(|e| Error::io("socket", e))?;
    sys::bind(fd.as_fd(), &bind_at).map_err(|e| match e {
        Errno::INVAL | Errno::NAMETOOLONG => Error::InvalidArgument(format!(
            "socket path {:?} is too long: binding needs {} bytes, a Unix socket address holds 107",
            path.display(),
            bind_at.as_os_str().len()
        )),
        e => Error::io("bind", e),
    })?;
    sys::chmod(&inner, mode & 0o777).map_err(|e| Error::io("chmod", e))?;
    if kind != Kind::Datagram {
        sys::listen(fd.as_fd(), 1024).map_err(|e| Error::io("listen", e))?;
    }
    let id = fsys::lstat(&inner)
        .map_err(|e| Error::io("lstat", e))?
        .dev_ino;
    sys::rename_noreplace(&inner, path).map_err(|e| match e {
        Errno::EXIST => Error::AlreadyExists {
            kind: KIND,
            name: path.display().to_string(),
        },
        e => Error::io("renameat2(RENAME_NOREPLACE)", e),
    })?;
    drop(dir);
    drop(tmp);
    registry::register(
        registry::Kind::UnixSocket,
        &registry::path_name(path),
        false,
    );
    Ok((
        fd,
        SocketFile {
            path: path.to_path_buf(),
            id,
            remove: true,
        },
    ))
}

/// A listening Unix-domain socket (`socket`, `bind`, `listen`): each
/// [`accept`](Self::accept) gives a new connected socket for one client.
///
/// The socket file is created with mode `0600` (exactly, whatever the
/// umask; see [`bind_with_mode`](Self::bind_with_mode)), a stale one left
/// by a dead server is replaced, a live one is never displaced, and the
/// file is removed on drop.
#[derive(Debug)]
pub struct UnixListener {
    fd: OwnedFd,
    file: SocketFile,
    kind: Kind,
}

impl UnixListener {
    /// Binds a stream listener at `path`, mode `0600`.
    pub fn bind(path: impl AsRef<Path>) -> Result<Self> {
        Self::bind_with_mode(path, 0o600)
    }

    /// Binds a stream listener at `path` with exactly `mode`.
    pub fn bind_with_mode(path: impl AsRef<Path>, mode: u32) -> Result<Self> {
        let (fd, file) = bind_path(path.as_ref(), Kind::Stream, mode)?;
        Ok(UnixListener {
            fd,
            file,
            kind: Kind::Stream,
        })
    }

    /// Binds a seqpacket listener at `path`, mode `0600`; accept with
    /// [`accept_seqpacket`](Self::accept_seqpacket).
    pub fn bind_seqpacket(path: impl AsRef<Path>) -> Result<Self> {
        let (fd, file) = bind_path(path.as_ref(), Kind::Seqpacket, 0o600)?;
        Ok(UnixListener {
            fd,
            file,
            kind: Kind::Seqpacket,
        })
    }

    fn accept_fd(&self, want: Kind) -> Result<OwnedFd> {
        if self.kind != want {
            return Err(Error::InvalidArgument(format!(
                "this listener accepts {:?} connections, not {want:?}",
                self.kind
            )));
        }
        sys::accept(self.fd.as_fd(), false).map_err(|e| Error::io("accept4", e))
    }

    /// Waits for a client and returns its connected stream (`accept4`).
    pub fn accept(&self) -> Result<UnixStream> {
        self.accept_fd(Kind::Stream).map(UnixStream)
    }

    /// Waits for a client of a seqpacket listener.
    pub fn accept_seqpacket(&self) -> Result<UnixSeqpacket> {
        self.accept_fd(Kind::Seqpacket).map(UnixSeqpacket::from)
    }

    /// Waits at most `timeout` for a client to be waiting; `false` on timeout.
    pub fn wait_acceptable(&self, timeout: Option<std::time::Duration>) -> Result<bool> {
        crate::sys::fdio::wait(
            self.fd.as_fd(),
            crate::sys::fdio::Ready::Read,
            crate::sys::time::Deadline::from_timeout(timeout),
        )
        .map_err(|e| Error::io("poll", e))
    }

    /// The socket file's path.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Leave the socket file behind on drop.
    pub fn persist(&mut self) {
        self.file.persist();
    }

    /// Splits into the descriptor and the file guard (for event loops).
    pub fn into_parts(self) -> (OwnedFd, SocketFile) {
        (self.fd, self.file)
    }
}

impl AsFd for UnixListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Connects a probe to `path` to tell whether a server listens there.
pub fn is_live(path: impl AsRef<Path>) -> bool {
    UnixStream::connect(path.as_ref()).is_ok()
}
