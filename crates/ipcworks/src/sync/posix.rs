//! [`PosixSemaphore`]: a named POSIX semaphore (`sem_open(3)`), the same
//! object a C program or Python's `posix_ipc` opens by the same name.
//!
//! Use it to share a counter with non-Rust peers. Between ipcworks
//! processes prefer [`Semaphore`](super::Semaphore): a POSIX semaphore
//! cannot tell who holds its permits, so a process killed while holding one
//! leaks it for good.
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

use std::time::Duration;

use super::semaphore::raw::check_value;
use crate::sys::Errno;
use crate::sys::mem::euid;
use crate::sys::posix_sem::{self, SemHandle, SemOpen};
use crate::sys::time::Deadline;
use crate::{Error, Result, name};

const KIND: &str = "POSIX semaphore";

/// A named POSIX semaphore, opened with `sem_open(3)` and closed on drop.
/// The creator removes the name (`sem_unlink`) when dropped unless told to
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

    /// `sem_open(name, O_CREAT | O_EXCL, mode, value)`, then the mode set
    /// exactly (`fchmod`, whatever the umask).
    #[doc(alias = "sem_open")]
    pub fn create(&self, name: &str, value: u32) -> Result<PosixSemaphore> {
        let bare = name::validate(name)?;
        check_value(value)?;
        let handle = posix_sem::open(
            bare,
            SemOpen::CreateExclusive {
                mode: self.mode,
                value,
            },
        )
        .map_err(|e| errno_error(e, bare, "sem_open"))?;
        if let Err(e) = posix_sem::set_mode(bare, self.mode) {
            let _ = posix_sem::unlink(bare);
            return Err(errno_error(e, bare, "fchmod"));
        }
        Ok(PosixSemaphore {
            handle,
            name: bare.to_string(),
            unlink_on_drop: !self.persist,
        })
    }

    /// Opens an existing POSIX semaphore after checking
    /// `/dev/shm/sem.NAME` (`lstat`): a regular file, not a symlink, owned
    /// by this user, with no permission beyond [`mode`](Self::mode).
    #[doc(alias = "sem_open")]
    pub fn open(&self, name: &str) -> Result<PosixSemaphore> {
        let bare = name::validate(name)?;
        check_path(bare, self.mode)?;
        let handle =
            posix_sem::open(bare, SemOpen::Open).map_err(|e| errno_error(e, bare, "sem_open"))?;
        Ok(PosixSemaphore {
            handle,
            name: bare.to_string(),
            unlink_on_drop: false,
        })
    }

    /// Opens the semaphore, or creates it with `value`; returns it and
    /// whether this call created it.
    pub fn open_or_create(&self, name: &str, value: u32) -> Result<(PosixSemaphore, bool)> {
        crate::name::open_or_create("sem_open", || self.create(name, value), || self.open(name))
    }
}

fn check_path(bare: &str, mode: u32) -> Result<()> {
    let refuse = |reason: String| Error::Refused {
        name: bare.to_string(),
        reason,
    };
    let st = posix_sem::lstat(bare).map_err(|e| errno_error(e, bare, "lstat"))?;
    if st.is_symlink {
        return Err(refuse(format!(
            "{} is a symbolic link",
            posix_sem::path(bare)
        )));
    }
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

    /// P: `sem_wait`, retried after signals.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<()> {
        self.handle
            .wait()
            .map_err(|e| errno_error(e, &self.name, "sem_wait"))
    }

    /// `sem_trywait`: [`Error::WouldBlock`] when the value is 0.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<()> {
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
        match self.handle.wait_until(Deadline::after(timeout)) {
            Ok(()) => Ok(()),
            Err(Errno::TIMEDOUT) => Err(Error::Timeout),
            Err(e) => Err(errno_error(e, &self.name, "sem_clockwait")),
        }
    }

    /// V: `sem_post`; fails at `SEM_VALUE_MAX` rather than wrap.
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<()> {
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
