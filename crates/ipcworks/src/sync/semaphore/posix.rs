//! [`PosixSemaphore`]: a named POSIX semaphore (`sem_open(3)`), the same
//! object a C program or Python's `posix_ipc` opens by the same name.
//!
//! Use it to share a counter with non-Rust peers. Between ipcworks
//! processes prefer [`Semaphore`](super::Semaphore): a POSIX semaphore
//! cannot tell who holds its permits, so a process killed while holding one
//! leaks it for good.
//!
//! ipcworks opens `/dev/shm/sem.NAME` itself rather than through
//! `sem_open`: one descriptor, opened without following a symlink, is
//! checked (a regular file, yours, no permission beyond the expected mode,
//! at least a `sem_t` long) and mapped, so an empty or short file is an
//! error instead of a `SIGBUS`. Before each call into glibc the semaphore's
//! fields are checked, so the values glibc would abort on are
//! [`Error::Corrupted`] instead. A peer that scribbles between that check
//! and glibc's own read, or truncates the file while it is open, can still
//! crash this process: see the `sys::posix_sem` docs for exactly what
//! remains glibc's behaviour.
//!
//! ```no_run
//! use ipcworks::sync::PosixSemaphore;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let sem = PosixSemaphore::create("ipcworks-doc-posix", 0)?; // /dev/shm/sem.ipcworks-doc-posix
//! // A C program: sem_post(sem_open("/ipcworks-doc-posix", 0));
//! sem.post()?;
//! sem.wait()?;
//! # Ok(())
//! # }
//! ```

use std::os::fd::AsFd;
use std::time::Duration;

use super::raw::check_value;
use crate::sys::Errno;
use crate::sys::mem::{self, euid};
use crate::sys::posix_sem::{self, SEM_SIZE, SemHandle};
use crate::sys::time::Deadline;
use crate::{Error, Result, name};

const KIND: &str = "POSIX semaphore";

/// A named POSIX semaphore (`sem_overview(7)`): the file
/// `/dev/shm/sem.NAME` that `sem_open(3)` makes and opens, mapped by
/// ipcworks and operated with glibc's `sem_*` calls; unmapped on drop. The
/// creator removes the name (`sem_unlink`) when dropped unless told to
/// persist.
#[derive(Debug)]
pub struct PosixSemaphore {
    handle: SemHandle,
    name: String,
    unlink_on_drop: bool,
}

/// Options for creating or opening a [`PosixSemaphore`].
#[derive(Debug, Clone)]
pub struct PosixSemaphoreOptions {
    mode: u32,
    persist: bool,
}

impl Default for PosixSemaphoreOptions {
    fn default() -> Self {
        PosixSemaphoreOptions {
            mode: 0o600,
            persist: false,
        }
    }
}

fn errno_error(e: Errno, name: &str, op: &'static str) -> Error {
    crate::name::errno_error(e, KIND, name, op)
}

impl PosixSemaphoreOptions {
    /// Permission bits of a semaphore to create, exactly (default 0600);
    /// when opening, one whose mode grants more is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the name after the creator drops it (default: remove).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// Creates the semaphore as `sem_open(name, O_CREAT | O_EXCL, mode,
    /// value)` does, with the mode set exactly (whatever the umask): made
    /// under a temporary name, initialised, then linked to
    /// `/dev/shm/sem.NAME` ([`Error::AlreadyExists`] if taken).
    #[doc(alias = "sem_open")]
    pub fn create(&self, name: &str, value: u32) -> Result<PosixSemaphore> {
        let bare = name::validate(name)?;
        check_value(value)?;
        let handle = posix_sem::create(bare, self.mode, value)
            .map_err(|e| errno_error(e, bare, "sem_open"))?;
        Ok(PosixSemaphore {
            handle,
            name: bare.to_string(),
            unlink_on_drop: !self.persist,
        })
    }

    /// Opens an existing POSIX semaphore: opens `/dev/shm/sem.NAME` without
    /// following a symlink, checks that descriptor (`fstat`): a regular
    /// file, owned by this user, no permission beyond
    /// [`mode`](Self::mode), at least a `sem_t` long; maps it and checks
    /// the semaphore's fields ([`Error::Corrupted`] if a peer scribbled
    /// them).
    #[doc(alias = "sem_open")]
    pub fn open(&self, name: &str) -> Result<PosixSemaphore> {
        let bare = name::validate(name)?;
        let fd = posix_sem::open(bare).map_err(|e| errno_error(e, bare, "open"))?;
        let st = mem::stat(fd.as_fd()).map_err(|e| errno_error(e, bare, "fstat"))?;
        check_file(bare, &st, self.mode)?;
        let handle = posix_sem::map(&fd).map_err(|e| errno_error(e, bare, "mmap"))?;
        let sem = PosixSemaphore {
            handle,
            name: bare.to_string(),
            unlink_on_drop: false,
        };
        sem.check()?;
        Ok(sem)
    }

    /// Opens the semaphore, or creates it with `value`; returns it and
    /// whether this call created it.
    pub fn open_or_create(&self, name: &str, value: u32) -> Result<(PosixSemaphore, bool)> {
        crate::name::open_or_create("sem_open", || self.create(name, value), || self.open(name))
    }
}

/// The checks on the opened file: a regular file of ours, no looser than
/// `mode`, and long enough to hold a `sem_t` (glibc maps that much; a
/// shorter file faults on access).
fn check_file(bare: &str, st: &mem::Stat, mode: u32) -> Result<()> {
    let refuse = |reason: String| Error::Refused {
        name: bare.to_string(),
        reason,
    };
    if !st.is_file {
        return Err(refuse(format!(
            "{} is not a regular file",
            posix_sem::path(bare)
        )));
    }
    let me = euid();
    if st.uid != me {
        return Err(refuse(format!(
            "it is owned by uid {}, not by you (uid {me}); another user may have planted it",
            st.uid
        )));
    }
    if st.mode & !mode & 0o777 != 0 {
        return Err(refuse(format!(
            "its mode {:04o} grants more than the expected {mode:04o}",
            st.mode
        )));
    }
    if st.size < SEM_SIZE as u64 {
        return Err(Error::corrupted(format!(
            "POSIX semaphore {bare:?}: {} holds {} bytes, fewer than the {SEM_SIZE} of a \
             semaphore (not one, or cut short); remove it (ipcworks sem rm {bare} --posix)",
            posix_sem::path(bare),
            st.size
        )));
    }
    Ok(())
}

impl PosixSemaphore {
    /// Options for creating or opening.
    pub fn options() -> PosixSemaphoreOptions {
        PosixSemaphoreOptions::default()
    }

    /// Creates `/dev/shm/sem.NAME` with `value`, mode 0600, removed on drop.
    pub fn create(name: &str, value: u32) -> Result<PosixSemaphore> {
        Self::options().create(name, value)
    }

    /// Opens an existing one (mode at most 0600).
    pub fn open(name: &str) -> Result<PosixSemaphore> {
        Self::options().open(name)
    }

    /// Opens or creates.
    pub fn open_or_create(name: &str, value: u32) -> Result<(PosixSemaphore, bool)> {
        Self::options().open_or_create(name, value)
    }

    /// `sem_unlink(name)`: removes the name; open handles keep working.
    #[doc(alias = "sem_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        let bare = name::validate(name)?;
        posix_sem::unlink(bare).map_err(|e| errno_error(e, bare, "sem_unlink"))
    }

    /// Whether `/dev/shm/sem.NAME` exists (whatever it is).
    pub fn exists(name: &str) -> Result<bool> {
        let bare = name::validate(name)?;
        Ok(posix_sem::lstat(bare).is_ok())
    }

    /// The file that holds it: `/dev/shm/sem.NAME`.
    pub fn path(name: &str) -> Result<String> {
        Ok(posix_sem::path(name::validate(name)?))
    }

    /// Refuses a semaphore whose fields no correct peer would write.
    fn check(&self) -> Result<()> {
        self.handle.check().map_err(|what| {
            Error::corrupted(format!(
                "POSIX semaphore {:?} ({}): {what}",
                self.name,
                posix_sem::path(&self.name)
            ))
        })
    }

    /// P: `sem_wait`, retried after signals.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        self.check()?;
        self.handle
            .wait()
            .map_err(|e| errno_error(e, &self.name, "sem_wait"))
    }

    /// `sem_trywait`: [`Error::WouldBlock`] when the value is 0.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
        self.check()?;
        match self.handle.try_wait() {
            Ok(()) => Ok(()),
            Err(Errno::AGAIN) => Err(Error::WouldBlock),
            Err(e) => Err(errno_error(e, &self.name, "sem_trywait")),
        }
    }

    /// P with a timeout (`sem_clockwait` on `CLOCK_MONOTONIC`; signals
    /// retried with the time left): [`Error::Timeout`] when it runs out.
    #[doc(alias = "sem_clockwait")]
    #[doc(alias = "sem_timedwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<()> {
        self.check()?;
        match self.handle.wait_until(Deadline::after(timeout)) {
            Ok(()) => Ok(()),
            Err(Errno::TIMEDOUT) => Err(Error::Timeout),
            Err(e) => Err(errno_error(e, &self.name, "sem_clockwait")),
        }
    }

    /// V: `sem_post`; fails at `SEM_VALUE_MAX` rather than wrap.
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
        self.check()?;
        match self.handle.post() {
            Ok(()) => Ok(()),
            Err(Errno::OVERFLOW) => Err(Error::LimitExceeded {
                limit: "semaphore value (SEM_VALUE_MAX)".into(),
                value: i32::MAX.to_string(),
                hint: "post would overflow the count; wait first".into(),
            }),
            Err(e) => Err(errno_error(e, &self.name, "sem_post")),
        }
    }

    /// `sem_getvalue`: permits available now.
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<u32> {
        self.check()?;
        let v = self
            .handle
            .value()
            .map_err(|e| errno_error(e, &self.name, "sem_getvalue"))?;
        // Linux reports 0 (not minus the waiters) when nobody can take one.
        Ok(v.max(0) as u32)
    }

    /// The name, without leading `/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Keeps the name after this handle is dropped.
    pub fn persist(&mut self) {
        self.unlink_on_drop = false;
    }

    /// Removes the name now.
    pub fn unlink(&mut self) -> Result<()> {
        self.unlink_on_drop = false;
        Self::remove(&self.name)
    }
}

impl Drop for PosixSemaphore {
    fn drop(&mut self) {
        if self.unlink_on_drop {
            let _ = posix_sem::unlink(&self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_post_wait_value_and_cleanup() {
        let name = format!("ipcworks-unit-posix-{}", std::process::id());
        let s = PosixSemaphore::create(&name, 1).unwrap();
        let path = PosixSemaphore::path(&name).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        s.post().unwrap();
        assert_eq!(s.value().unwrap(), 2);
        s.wait().unwrap();
        s.try_wait().unwrap();
        assert!(matches!(s.try_wait(), Err(Error::WouldBlock)));
        assert!(matches!(
            s.wait_timeout(Duration::from_millis(20)),
            Err(Error::Timeout)
        ));
        let other = PosixSemaphore::open(&name).unwrap();
        other.post().unwrap();
        assert_eq!(s.value().unwrap(), 1);
        assert!(matches!(
            PosixSemaphore::create(&name, 0),
            Err(Error::AlreadyExists { .. })
        ));
        drop(other);
        drop(s);
        assert!(!std::path::Path::new(&path).exists());
        assert!(matches!(
            PosixSemaphore::open(&name),
            Err(Error::NotFound { .. })
        ));
    }
}
