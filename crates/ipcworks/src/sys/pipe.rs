//! Pipes and FIFOs: `pipe2`, `mknodat(S_IFIFO)` and a mode set through an
//! `O_PATH` handle, `open(O_NONBLOCK)`, `lstat`, `unlink`, and handing a descriptor to a child
//! process (`dup2` in the child between `fork` and `exec`).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;
use rustix::pipe::PipeFlags;

/// `pipe2(O_CLOEXEC)` → (read end, write end).
#[doc(alias = "pipe2")]
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::pipe::pipe_with(PipeFlags::CLOEXEC)
}

/// Makes a FIFO at `path` with exactly `mode` whatever the umask, and
/// returns its device and inode. Fails with `EEXIST` if anything exists at
/// `path`, and with `ESTALE` if what is there right after is not the FIFO
/// just made (someone swapped it); never follows a symlink.
///
/// How: `mknodat(path, S_IFIFO | mode)` (the umask can only remove bits,
/// so the FIFO is never looser than asked), then a handle on what is at
/// the path, `open(O_PATH | O_NOFOLLOW)`, checked with `fstat` (a FIFO of
/// ours); if the umask narrowed the mode, it is set through that handle,
/// `chmod("/proc/self/fd/N")`, which reaches that very inode. A `chmod` by
/// path would follow a symlink another user who can write the directory
/// swapped in, and change its target's mode. Without `/proc`, the FIFO is
/// opened for reading without blocking (`O_NOFOLLOW`), checked to be the
/// same inode, and `fchmod`ed (a writer opening it in that instant sees a
/// reader come and go).
pub fn mkfifo(path: &Path, mode: u32) -> Result<(u64, u64), Errno> {
    let mode = mode & 0o7777;
    rustix::fs::mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(mode), 0)?;
    crate::fault::hit(crate::fault::Point::FifoBeforeMode);
    let handle = match rustix::fs::open(
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Err(Errno::STALE),
        Err(e) => return Err(e),
    };
    let st = rustix::fs::fstat(&handle)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Fifo
        || st.st_uid != rustix::process::geteuid().as_raw()
    {
        return Err(Errno::STALE);
    }
    let id = (st.st_dev, st.st_ino);
    set_mode(path, &handle, id, mode, st.st_mode & 0o7777).inspect_err(|_| {
        // Remove what we made, if it is still what is there.
        if lstat(path).is_ok_and(|now| now.dev_ino == id) {
            let _ = rustix::fs::unlink(path);
        }
    })?;
    Ok(id)
}

/// Sets the mode of the FIFO `handle` (an `O_PATH` handle on inode `id` at
/// `path`) to `mode` if it is not that already; see [`mkfifo`].
fn set_mode(
    path: &Path,
    handle: &OwnedFd,
    id: (u64, u64),
    mode: u32,
    now: u32,
) -> Result<(), Errno> {
    if now == mode {
        return Ok(());
    }
    let via = format!("/proc/self/fd/{}", handle.as_raw_fd());
    match rustix::fs::chmodat(CWD, &via, Mode::from_raw_mode(mode), AtFlags::empty()) {
        // No /proc: through a reading descriptor, checked to be that inode.
        Err(Errno::NOENT) => {
            let fd = open_nonblocking(path, false)?;
            let st = rustix::fs::fstat(&fd)?;
            if (st.st_dev, st.st_ino) != id {
                return Err(Errno::STALE);
            }
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
        }
        other => other,
    }
}

/// What `lstat` says about a path (symlinks are not followed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathInfo {
    /// The file type.
    pub kind: FileType,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Device and inode: identify the object across renames.
    pub dev_ino: (u64, u64),
}

/// `lstat(path)`.
pub fn lstat(path: &Path) -> Result<PathInfo, Errno> {
    let st = rustix::fs::lstat(path)?;
    Ok(PathInfo {
        kind: FileType::from_raw_mode(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        dev_ino: (st.st_dev, st.st_ino),
    })
}

/// `fstat(fd)` as a [`PathInfo`].
pub fn fstat(fd: std::os::fd::BorrowedFd<'_>) -> Result<PathInfo, Errno> {
    let st = rustix::fs::fstat(fd)?;
    Ok(PathInfo {
        kind: FileType::from_raw_mode(st.st_mode),
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        dev_ino: (st.st_dev, st.st_ino),
    })
}

/// `open(path, O_RDONLY or O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)`,
/// retried on `EINTR`. Opening a FIFO for writing this way fails at once
/// with `ENXIO` while no process has it open for reading.
pub fn open_nonblocking(path: &Path, write: bool) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    flags |= if write {
        OFlags::WRONLY
    } else {
        OFlags::RDONLY
    };
    loop {
        match rustix::fs::open(path, flags, Mode::empty()) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `unlink(path)`.
pub fn unlink(path: &Path) -> Result<(), Errno> {
    rustix::fs::unlink(path)
}

/// Makes `fd` appear in the child spawned by `cmd` under the same number,
/// and returns that number.
///
/// How, and why it is safe: `fd` stays close-on-exec in this process, so no
/// other child spawned meanwhile by another thread inherits it. The command
/// takes ownership of it (it is moved into a `pre_exec` closure and closed
/// when `cmd` is dropped), so the number cannot be closed and reused before
/// `spawn`. In the child, between `fork` and `exec`, the closure runs only
/// `fcntl(fd, F_SETFD, 0)` — one async-signal-safe system call, no
/// allocation, no lock — clearing close-on-exec on the child's copy alone.
/// std wires the child's stdin/stdout/stderr (`dup2` onto 0, 1, 2) before
/// the closure runs, so `fd` must not be 0, 1 or 2; callers make sure of
/// that by duplicating to 3 or above first.
pub fn pass_fd(cmd: &mut Command, fd: OwnedFd) -> RawFd {
    let raw = fd.as_raw_fd();
    debug_assert!(raw > 2, "pass_fd needs a descriptor numbered 3 or above");
    // SAFETY: the closure runs in the forked child before exec. It calls
    // only `fcntl`, which is async-signal-safe, and touches no memory but
    // the captured integer; the descriptor is open in the child because the
    // closure owns it in the parent until `cmd` is dropped (after spawn).
    unsafe {
        cmd.pre_exec(move || {
            let _keep = &fd;
            if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    raw
}
