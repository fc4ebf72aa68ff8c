//! A private directory beside a path, to make a file there where nobody
//! else can touch it and then move it into place (`mkdirat`, `openat`,
//! `fchmod`, `renameat2`, `unlinkat`): how a Unix socket file gets its
//! exact mode before anyone can connect to it.
//!
//! A process killed (`SIGKILL`) between making the directory and removing
//! it leaves it behind: an empty `.iw-…` directory, mode `0700`. Callers
//! hold termination signals around the last steps (see
//! `signal::HoldTermination`) so a Ctrl-C handler that ends the process
//! cannot cut them in two.
//!
//! # Why a random name
//!
//! The directory sits in the target's parent, which other users may be able
//! to write (a shared temporary directory): a predictable name (say the pid
//! and a counter) lets them create it first and deny service. So the name is
//! `.iw-` and 16 hex digits of SipHash keyed by std's `RandomState`, whose
//! keys come from the operating system's random source (`getrandom`), and
//! `EEXIST` is retried with a fresh name, [`TRIES`] times at most.
//!
//! # Why nobody else can touch what is made in it
//!
//! The directory is created with `mkdir(0700)` and then, through a
//! descriptor opened with `O_NOFOLLOW` and checked with `fstat` (a directory
//! owned by us), set to exactly `0700` with `fchmod` (the umask may have
//! narrowed it). Everything after that goes through that descriptor
//! (`fchmodat`, `fstatat`, `renameat2`, `unlinkat` relative to it, and a
//! `bind` through `/proc/self/fd/N`), so even
//! if another user who can write the parent renames the directory away, we
//! keep working inside our own. Only root can reach into it.
//!
//! # References
//! `mkdir(2)`, `open(2)` (`O_DIRECTORY`, `O_NOFOLLOW`), `fchmod(2)`,
//! `rename(2)` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`), `unlink(2)`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

/// Names tried before giving up with `EEXIST`.
pub const TRIES: u32 = 16;

/// 64 bits nobody else can predict: SipHash under std's per-process random
/// keys (seeded from `getrandom`), over a counter so no two calls repeat.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher, RandomState};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.finish()
}

/// A fresh name for a private directory: `.iw-` and 16 hex digits.
pub fn random_name() -> String {
    format!(".iw-{:016x}", random_u64())
}

/// A directory only this user can enter, beside the target path; it and
/// anything left in it are removed on drop.
#[derive(Debug)]
pub struct PrivateDir {
    path: PathBuf,
    dir: OwnedFd,
    dev_ino: (u64, u64),
    keep: std::cell::Cell<bool>,
}

impl PrivateDir {
    /// Creates `PARENT/.iw-RANDOM` (mode exactly `0700`), retrying
    /// `EEXIST` with a new name up to [`TRIES`] times; then `EEXIST`.
    pub fn create_in(parent: &Path) -> Result<PrivateDir, Errno> {
        for _ in 0..TRIES {
            let path = parent.join(random_name());
            match rustix::fs::mkdirat(CWD, &path, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e),
            }
            return match Self::adopt(&path) {
                Ok(d) => Ok(d),
                Err(e) => {
                    let _ = rustix::fs::unlinkat(CWD, &path, AtFlags::REMOVEDIR);
                    Err(e)
                }
            };
        }
        Err(Errno::EXIST)
    }

    /// Opens the directory just made at `path` without following a
    /// symlink, checks it is a directory of ours, and sets its mode.
    fn adopt(path: &Path) -> Result<PrivateDir, Errno> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rustix::fs::fstat(&dir)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory
            || st.st_uid != rustix::process::geteuid().as_raw()
        {
            // Replaced between mkdir and open: not ours to use.
            return Err(Errno::PERM);
        }
        rustix::fs::fchmod(&dir, Mode::from_raw_mode(0o700))?;
        Ok(PrivateDir {
            path: path.to_path_buf(),
            dir,
            dev_ino: (st.st_dev, st.st_ino),
            keep: std::cell::Cell::new(false),
        })
    }

    /// The directory's path (as created; see the module docs on why work
    /// inside goes through the directory's descriptor).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `/proc/self/fd/N/NAME`: a short path to `NAME` inside, whatever the
    /// length of the directory's own path (for socket addresses, which hold
    /// 107 bytes); `None` without `/proc`.
    pub fn short_path(&self, name: &str) -> Option<PathBuf> {
        let p = PathBuf::from(format!("/proc/self/fd/{}", self.dir.as_raw_fd()));
        p.is_dir().then(|| p.join(name))
    }

    /// `fchmodat(dir, name, mode)`. It follows a symlink, but only we can
    /// put anything in the directory, so `name` is what we made.
    pub fn chmod(&self, name: &str, mode: u32) -> Result<(), Errno> {
        rustix::fs::chmodat(
            &self.dir,
            name,
            Mode::from_raw_mode(mode & 0o7777),
            AtFlags::empty(),
        )
    }

    /// `fstatat(dir, name, AT_SYMLINK_NOFOLLOW)`: the file type and its
    /// device and inode.
    pub fn stat(&self, name: &str) -> Result<(FileType, (u64, u64)), Errno> {
        let st = rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok((FileType::from_raw_mode(st.st_mode), (st.st_dev, st.st_ino)))
    }

    /// `renameat2(dir, name, AT_FDCWD, to, RENAME_NOREPLACE)`: moves `name`
    /// into place, failing with `EEXIST` rather than replace anything.
    pub fn move_out(&self, name: &str, to: &Path) -> Result<(), Errno> {
        rustix::fs::renameat_with(&self.dir, name, CWD, to, RenameFlags::NOREPLACE)
    }

    /// `renameat2(dir, name, AT_FDCWD, other, RENAME_EXCHANGE)`: swaps
    /// `name` and what is at `other`, atomically (both must exist).
    /// `EINVAL` where the file system cannot.
    pub fn exchange(&self, name: &str, other: &Path) -> Result<(), Errno> {
        rustix::fs::renameat_with(&self.dir, name, CWD, other, RenameFlags::EXCHANGE)
    }

    /// Leaves the directory and what is in it behind on drop (for a file
    /// that is not ours to remove and could not be put back).
    pub fn keep(&self) {
        self.keep.set(true);
    }

    /// `unlinkat(dir, name)`.
    pub fn unlink(&self, name: &str) -> Result<(), Errno> {
        rustix::fs::unlinkat(&self.dir, name, AtFlags::empty())
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if self.keep.get() {
            return;
        }
        // Usually empty by now: one `rmdir` (an empty directory someone
        // swapped in for ours would go too, which harms nobody).
        match rustix::fs::unlinkat(CWD, &self.path, AtFlags::REMOVEDIR) {
            Err(Errno::NOTEMPTY) | Err(Errno::EXIST) => {}
            _ => return,
        }
        // Empty it (only we can have put anything in it), then remove it
        // if the path still names it.
        if let Ok(mut entries) = rustix::fs::Dir::read_from(&self.dir) {
            let mut names = Vec::new();
            while let Some(Ok(e)) = entries.next() {
                let n = e.file_name().to_bytes();
                if n != b"." && n != b".." {
                    names.push(e.file_name().to_owned());
                }
            }
            for n in names {
                let _ = rustix::fs::unlinkat(&self.dir, n.as_c_str(), AtFlags::empty());
            }
        }
        if let Ok(st) = rustix::fs::lstat(&self.path)
            && (st.st_dev, st.st_ino) == self.dev_ino
        {
            let _ = rustix::fs::unlinkat(CWD, &self.path, AtFlags::REMOVEDIR);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn names_differ_and_a_taken_name_is_retried() {
        let a = random_name();
        let b = random_name();
        assert_ne!(a, b);
        assert_eq!(a.len(), 4 + 16);
        let parent = std::env::temp_dir();
        let d = PrivateDir::create_in(&parent).unwrap();
        let path = d.path().to_path_buf();
        use std::os::unix::fs::PermissionsExt;
        let md = std::fs::symlink_metadata(&path).unwrap();
        assert!(md.is_dir());
        assert_eq!(md.permissions().mode() & 0o777, 0o700);
        rustix::fs::mknodat(
            d.dir.as_fd(),
            "f",
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        d.chmod("f", 0o640).unwrap();
        assert_eq!(d.stat("f").unwrap().0, FileType::Fifo);
        drop(d);
        assert!(!path.exists(), "removed with what was in it");
    }
}
