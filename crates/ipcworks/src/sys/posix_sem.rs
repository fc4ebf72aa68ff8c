//! POSIX named semaphores through glibc: `sem_open(3)`, `sem_close`,
//! `sem_unlink`, `sem_wait`, `sem_trywait`, `sem_clockwait`, `sem_post`,
//! `sem_getvalue`. rustix has none of these; they are library calls over a
//! small file `/dev/shm/sem.NAME` that glibc maps.
//!
//! The `sem_t *` is an opaque pointer handed to libc and never dereferenced
//! here.

use std::ffi::CString;
use std::ptr::NonNull;

use rustix::io::Errno;

use super::time::Deadline;

fn errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// An open POSIX named semaphore (the `sem_t *` from `sem_open`). Closed
/// (`sem_close`) on drop.
#[derive(Debug)]
pub struct SemHandle(NonNull<libc::sem_t>);

// SAFETY: POSIX semaphores are made for concurrent use from any thread
// (sem_wait/sem_post are thread-safe); the pointer is only passed to libc.
unsafe impl Send for SemHandle {}
// SAFETY: as above.
unsafe impl Sync for SemHandle {}

/// How to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SemOpen {
    /// `O_CREAT | O_EXCL` with this mode and initial value.
    CreateExclusive {
        /// Permission bits (the umask applies; callers chmod afterwards).
        mode: u32,
        /// Initial value.
        value: u32,
    },
    /// Open an existing one.
    Open,
}

fn c_name(name: &str) -> Result<CString, Errno> {
    CString::new(format!("/{name}")).map_err(|_| Errno::INVAL)
}

/// `sem_open("/NAME", flags, mode, value)`. `name` must be validated (no
/// `/`, no NUL).
#[doc(alias = "sem_open")]
pub fn open(name: &str, how: SemOpen) -> Result<SemHandle, Errno> {
    let c = c_name(name)?;
    let p = match how {
        SemOpen::CreateExclusive { mode, value } => {
            // SAFETY: c is a valid NUL-terminated string; with O_CREAT the
            // variadic arguments are (mode_t, unsigned int) as sem_open(3)
            // requires (mode_t promoted to c_uint for the variadic call).
            unsafe {
                libc::sem_open(
                    c.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL,
                    mode as libc::c_uint,
                    value as libc::c_uint,
                )
            }
        }
        // SAFETY: c is a valid NUL-terminated string; without O_CREAT no
        // variadic arguments are read.
        SemOpen::Open => unsafe { libc::sem_open(c.as_ptr(), 0) },
    };
    if p == libc::SEM_FAILED {
        return Err(errno());
    }
    NonNull::new(p).map(SemHandle).ok_or(Errno::INVAL)
}

/// `sem_unlink("/NAME")`.
#[doc(alias = "sem_unlink")]
pub fn unlink(name: &str) -> Result<(), Errno> {
    let c = c_name(name)?;
    // SAFETY: c is a valid NUL-terminated string.
    if unsafe { libc::sem_unlink(c.as_ptr()) } == 0 {
        Ok(())
    } else {
        Err(errno())
    }
}

/// The clock deadlines are measured on.
#[cfg(target_env = "gnu")]
const WAIT_CLOCK: rustix::time::ClockId = rustix::time::ClockId::Monotonic;
#[cfg(not(target_env = "gnu"))]
const WAIT_CLOCK: rustix::time::ClockId = rustix::time::ClockId::Realtime;

#[cfg(target_env = "gnu")]
unsafe extern "C" {
    // glibc >= 2.30; the libc crate does not declare it for Linux.
    fn sem_clockwait(
        sem: *mut libc::sem_t,
        clock: libc::clockid_t,
        abstime: *const libc::timespec,
    ) -> libc::c_int;
}

impl SemHandle {
    fn ptr(&self) -> *mut libc::sem_t {
        self.0.as_ptr()
    }

    /// `sem_wait`, retried after `EINTR`.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: ptr came from a successful sem_open and is not closed
            // before self is dropped.
            if unsafe { libc::sem_wait(self.ptr()) } == 0 {
                return Ok(());
            }
            match errno() {
                Errno::INTR => continue,
                e => return Err(e),
            }
        }
    }

    /// `sem_trywait` (`EAGAIN` when the value is 0).
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: as in `wait`.
            if unsafe { libc::sem_trywait(self.ptr()) } == 0 {
                return Ok(());
            }
            match errno() {
                Errno::INTR => continue,
                e => return Err(e),
            }
        }
    }

    /// `sem_clockwait(CLOCK_MONOTONIC)` until `deadline` (`ETIMEDOUT`),
    /// retried after `EINTR` with the time left. Without glibc,
    /// `sem_timedwait` on `CLOCK_REALTIME`.
    #[doc(alias = "sem_clockwait")]
    #[doc(alias = "sem_timedwait")]
    pub fn wait_until(&self, deadline: Deadline) -> Result<(), Errno> {
        loop {
            let Some(left) = deadline.remaining() else {
                return self.try_wait().map_err(|e| {
                    if e == Errno::AGAIN {
                        Errno::TIMEDOUT
                    } else {
                        e
                    }
                });
            };
            let r = self.timed(left);
            match r {
                Ok(()) => return Ok(()),
                Err(Errno::INTR) => continue,
                // A clock's view may end a hair early: look at our deadline.
                Err(Errno::TIMEDOUT) if !deadline.expired() => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn timed(&self, left: std::time::Duration) -> Result<(), Errno> {
        let now = rustix::time::clock_gettime(WAIT_CLOCK);
        let mut sec = now
            .tv_sec
            .saturating_add(left.as_secs().min(i64::MAX as u64 / 2) as i64);
        let mut nsec = now.tv_nsec as i64 + left.subsec_nanos() as i64;
        if nsec >= 1_000_000_000 {
            nsec -= 1_000_000_000;
            sec = sec.saturating_add(1);
        }
        let abs = libc::timespec {
            tv_sec: sec as libc::time_t,
            tv_nsec: nsec as _,
        };
        if self.wait_abs(&abs) == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    #[cfg(target_env = "gnu")]
    fn wait_abs(&self, abs: &libc::timespec) -> libc::c_int {
        // SAFETY: ptr is a live sem_t from sem_open; abs is a valid
        // timespec for the duration of the call.
        unsafe { sem_clockwait(self.ptr(), libc::CLOCK_MONOTONIC, abs) }
    }

    #[cfg(not(target_env = "gnu"))]
    fn wait_abs(&self, abs: &libc::timespec) -> libc::c_int {
        // SAFETY: as above.
        unsafe { libc::sem_timedwait(self.ptr(), abs) }
    }

    /// `sem_post` (`EOVERFLOW` at `SEM_VALUE_MAX`).
    #[doc(alias = "sem_post")]
    pub fn post(&self) -> Result<(), Errno> {
        // SAFETY: as in `wait`.
        if unsafe { libc::sem_post(self.ptr()) } == 0 {
            Ok(())
        } else {
            Err(errno())
        }
    }

    /// `sem_getvalue`.
    #[doc(alias = "sem_getvalue")]
    pub fn value(&self) -> Result<i32, Errno> {
        let mut v: libc::c_int = 0;
        // SAFETY: as in `wait`; v is a valid out-pointer.
        if unsafe { libc::sem_getvalue(self.ptr(), &mut v) } == 0 {
            Ok(v)
        } else {
            Err(errno())
        }
    }
}

impl Drop for SemHandle {
    fn drop(&mut self) {
        // SAFETY: ptr came from sem_open and is closed exactly once, here.
        unsafe {
            libc::sem_close(self.ptr());
        }
    }
}

/// The file glibc keeps a named semaphore in: `/dev/shm/sem.NAME`.
pub fn path(name: &str) -> String {
    format!("{}/sem.{name}", super::mem::SHM_DIR)
}

/// What `lstat` says of `/dev/shm/sem.NAME` (not following a symlink).
#[derive(Debug, Clone, Copy)]
pub struct PathStat {
    /// It is a symbolic link.
    pub is_symlink: bool,
    /// It is a regular file.
    pub is_file: bool,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits.
    pub mode: u32,
}

/// `lstat("/dev/shm/sem.NAME")`.
pub fn lstat(name: &str) -> Result<PathStat, Errno> {
    let st = rustix::fs::lstat(path(name))?;
    let ft = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Ok(PathStat {
        is_symlink: ft == rustix::fs::FileType::Symlink,
        is_file: ft == rustix::fs::FileType::RegularFile,
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
    })
}

/// Sets the mode of `/dev/shm/sem.NAME` exactly (the umask narrowed it at
/// creation): opens it with `O_NOFOLLOW` and `fchmod`s the descriptor, so a
/// symlink is never followed.
#[doc(alias = "fchmod")]
pub fn set_mode(name: &str, mode: u32) -> Result<(), Errno> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))
}
