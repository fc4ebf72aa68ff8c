//! Creating a Unix socket file safely: the one place that binds at a path
//! (listeners, datagram sockets and the server all bind through here).
//!
//! # How a socket file gets exactly mode 0600
//!
//! `bind` creates the file with `0777 & ~umask`, and nothing applied to the
//! socket descriptor before `bind` changes that. Setting the umask around
//! `bind` would race with other threads creating files. So ipcworks binds
//! inside a fresh private directory (mode `0700`, created next to the target
//! so a rename stays on one file system, under a random name retried on
//! `EEXIST`, so nobody who can write the parent can take its name first:
//! see `sys::privdir`), `chmod`s the socket file to the wanted mode there
//! (no other user can reach it in between), calls `listen`, and only then
//! moves it into place with `renameat2(RENAME_NOREPLACE)`, which never
//! replaces anything. The private directory is removed whatever happens.
//! The bind itself goes through `/proc/self/fd/N/s` (N: a handle on the
//! private directory), so only the final path has to fit the 107 bytes of
//! a socket address.
//!
//! # Stale and live socket files
//!
//! A socket file outlives the server that bound it. When something is
//! already at the path, it is examined through a handle that does not
//! follow symlinks (`open(O_PATH | O_NOFOLLOW)`), which also pins its inode
//! so its device and inode numbers cannot be reused while we look:
//!
//! - not a socket, or a symlink: refused ([`Error::Refused`]) and left
//!   alone;
//! - a socket: probed with a **non-blocking** `connect` to that very inode
//!   (through `/proc/self/fd/N`). A connection, or `EAGAIN` (a live
//!   listener whose backlog is full), means a live server: binding fails
//!   with [`Error::AlreadyExists`] at once, never waiting on it;
//!   `ECONNREFUSED` means stale.
//!
//! A stale file is replaced without ever removing by path something not
//! checked: our new socket and the file at the path are swapped in one step
//! (`renameat2(RENAME_EXCHANGE)`), which brings the old file into our
//! private directory, where nobody else can touch it. If it is the inode
//! judged stale, it is unlinked there. If not (a second binder replaced the
//! stale file in between), it is swapped straight back, untouched, and the
//! path is examined again: that binder's live socket is then found live.
//! Two binders racing over one stale file therefore end with exactly one
//! bound; no live socket file is ever removed. (For the instant between the
//! two swaps the other binder's file is in our directory and ours at the
//! path: a client connecting then reaches our listener, which is closed.)
//! On a file system without `RENAME_EXCHANGE` the stale file is removed by
//! path after checking its inode again, which leaves that race open.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::registry;
use crate::sys::Errno;
use crate::sys::pipe as fsys;
use crate::sys::privdir::PrivateDir;
use crate::sys::signal::HoldTermination;
use crate::sys::socket::{self as sys, Kind, Probe};
use crate::{Error, Result};

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

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::Refused {
        name: path.display().to_string(),
        reason: reason.into(),
    }
}

fn live(path: &Path) -> Error {
    Error::AlreadyExists {
        kind: "Unix socket with a live server",
        name: path.display().to_string(),
    }
}

/// What is at the path now.
enum Occupant {
    /// Nothing (any more).
    Vacant,
    /// A socket a server listens on.
    Live,
    /// A socket nobody listens on: its device and inode, pinned by the
    /// handle (so the numbers name it and nothing else while it is open).
    Stale { _pin: OwnedFd, id: (u64, u64) },
}

/// Examines what is at `path`; see the module docs.
fn examine(path: &Path, kind: Kind) -> Result<Occupant> {
    let pin = match sys::open_path(path) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Occupant::Vacant),
        Err(Errno::ACCESS) => {
            return Err(Error::PermissionDenied {
                name: path.display().to_string(),
            });
        }
        Err(e) => return Err(Error::io("open(O_PATH)", e)),
    };
    let info = fsys::fstat(pin.as_fd()).map_err(|e| Error::io("fstat", e))?;
    if info.kind == FileType::Symlink {
        return Err(refuse(path, "it is a symbolic link"));
    }
    if info.kind != FileType::Socket {
        return Err(refuse(
            path,
            format!("it exists and is not a socket but a {:?}", info.kind),
        ));
    }
    // Probe that very inode when /proc can name it; else the path.
    let via = PathBuf::from(format!("/proc/self/fd/{}", pin.as_raw_fd()));
    let via = if via.exists() {
        via
    } else {
        path.to_path_buf()
    };
    match sys::probe(kind, &via) {
        Ok(Probe::Live) => Ok(Occupant::Live),
        Ok(Probe::Stale) => Ok(Occupant::Stale {
            _pin: pin,
            id: info.dev_ino,
        }),
        Ok(Probe::Gone) => Ok(Occupant::Vacant),
        Err(e) => Err(refuse(
            path,
            format!(
                "a socket exists there and probing it failed ({e}); remove it by hand if it is stale"
            ),
        )),
    }
}

/// Rounds of "move into place, else examine and replace" before giving up
/// on a path other binders keep changing.
const PLACE_TRIES: u32 = 8;

/// Moves the bound socket `s` of `dir` to `path`, replacing a stale socket
/// there (see the module docs), never a live one or anything else.
fn place(dir: &PrivateDir, path: &Path, kind: Kind) -> Result<()> {
    for _ in 0..PLACE_TRIES {
        match dir.move_out("s", path) {
            Ok(()) => return Ok(()),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(Error::io("renameat2(RENAME_NOREPLACE)", e)),
        }
        let stale = match examine(path, kind)? {
            Occupant::Vacant => continue,
            Occupant::Live => return Err(live(path)),
            Occupant::Stale { _pin, id } => (id, _pin),
        };
        crate::fault::hit(crate::fault::Point::StaleSocketBeforeReplace);
        match dir.exchange("s", path) {
            Ok(()) => {}
            // Gone meanwhile: try the plain move again.
            Err(Errno::NOENT) => continue,
            // No RENAME_EXCHANGE here: remove by path after a re-check.
            Err(Errno::INVAL) => {
                if fsys::lstat(path).is_ok_and(|now| now.dev_ino == stale.0) {
                    match fsys::unlink(path) {
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(Error::io("unlink", e)),
                    }
                }
                continue;
            }
            Err(e) => return Err(Error::io("renameat2(RENAME_EXCHANGE)", e)),
        }
        // Ours is at the path now; what was there is `s` in our directory.
        match dir.stat("s") {
            Ok((_, id)) if id == stale.0 => {
                let _ = dir.unlink("s");
                return Ok(());
            }
            _ => give_back(dir, path)?,
        }
    }
    Err(refuse(
        path,
        "other processes kept replacing the socket file there while binding; try again",
    ))
}

/// Swaps back a file we took from `path` by mistake (not the stale one we
/// examined), so its owner keeps it.
fn give_back(dir: &PrivateDir, path: &Path) -> Result<()> {
    match dir.exchange("s", path) {
        Ok(()) => Ok(()),
        // Our socket left the path meanwhile: put theirs back alone.
        Err(_) => dir.move_out("s", path).map_err(|e| {
            dir.keep();
            refuse(
                path,
                format!(
                    "another binder's socket file, taken from there by mistake, could not be \
                     put back ({e}); it is kept as {}",
                    dir.path().join("s").display()
                ),
            )
        }),
    }
}

/// Creates a socket of `kind` bound at `path` with exactly `mode`, listening
/// if it is connection-oriented. See the module docs for the steps.
pub(crate) fn bind_path(path: &Path, kind: Kind, mode: u32) -> Result<(OwnedFd, SocketFile)> {
    if path.as_os_str().len() > 107 {
        return Err(Error::InvalidArgument(format!(
            "socket path {:?} is {} bytes long; a Unix socket address holds at most 107",
            path.display(),
            path.as_os_str().len()
        )));
    }
    // Say at once what is plainly not ours to replace, before making
    // anything (the same checks run again when placing the socket).
    if let Occupant::Live = examine(path, kind)? {
        return Err(live(path));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let dir = PrivateDir::create_in(&parent).map_err(|e| match e {
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied {
            name: parent.display().to_string(),
        },
        Errno::NOENT => Error::NotFound {
            kind: "directory",
            name: parent.display().to_string(),
        },
        e => Error::io("mkdir", e),
    })?;
    // Bind through `/proc/self/fd/N/s` (N: a handle on the private
    // directory), so only the final path must fit the 107 bytes of a socket
    // address; without /proc, bind through the directory's own path.
    let bind_at = dir.short_path("s").unwrap_or_else(|| dir.path().join("s"));
    let fd = sys::socket(kind).map_err(|e| Error::io("socket", e))?;
    sys::bind(fd.as_fd(), &bind_at).map_err(|e| match e {
        Errno::INVAL | Errno::NAMETOOLONG => Error::InvalidArgument(format!(
            "socket path {:?} is too long: binding needs {} bytes, a Unix socket address holds 107",
            path.display(),
            bind_at.as_os_str().len()
        )),
        e => Error::io("bind", e),
    })?;
    dir.chmod("s", mode & 0o777)
        .map_err(|e| Error::io("chmod", e))?;
    if kind != Kind::Datagram {
        sys::listen(fd.as_fd(), 1024).map_err(|e| Error::io("listen", e))?;
    }
    let (_, id) = dir.stat("s").map_err(|e| Error::io("lstat", e))?;
    // From the moment the socket can appear at the path until the private
    // directory is gone, a Ctrl-C handler that ends the process (as the
    // CLI's does) waits, so it cannot leave the directory behind.
    let hold = HoldTermination::new();
    let placed = place(&dir, path, kind);
    crate::fault::hit(crate::fault::Point::SocketPlaced);
    drop(dir);
    drop(hold);
    placed?;
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

/// Whether a stream server listens at `path`: a non-blocking `connect`
/// probe, which never waits (a listener whose backlog is full counts as
/// live).
pub fn is_live(path: impl AsRef<Path>) -> bool {
    sys::probe(Kind::Stream, path.as_ref()) == Ok(Probe::Live)
}
