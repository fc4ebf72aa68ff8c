//! POSIX named semaphores, opened by ipcworks itself and operated by
//! glibc: the file `/dev/shm/sem.NAME` is opened with `O_NOFOLLOW`, checked
//! with `fstat` and mapped here; `sem_init`, `sem_wait`, `sem_trywait`,
//! `sem_clockwait`, `sem_post` and `sem_getvalue` then work on that mapping.
//! rustix has none of the `sem_*` calls.
//!
//! # Why not `sem_open`
//!
//! glibc's `sem_open` looks the name up, maps `sizeof(sem_t)` bytes of
//! whatever file it finds without checking its size (an empty file of ours
//! made the first `sem_post` die of `SIGBUS`), and a check done before it
//! by name would be a second lookup a peer could race. Opening the file
//! ourselves gives one descriptor that is checked (type, owner, mode, size)
//! and then mapped: what was checked is what is used.
//!
//! # Interoperating with C and Python
//!
//! The file is the one `sem_open` makes: `sizeof(sem_t)` bytes holding a
//! process-shared `sem_t`. Creation follows glibc's `sem_open`: the file is
//! written under a temporary name with `O_CREAT | O_EXCL`, initialised
//! (`sem_init(pshared = 1)`, which writes what `sem_open` writes), then
//! `link`ed to `sem.NAME`, which fails with `EEXIST` rather than replace
//! anything, so no one ever sees a half-made semaphore. Programs calling
//! `sem_open("/NAME")` open it as their own.
//!
//! # What glibc still does with a scribbled `sem_t`
//!
//! A peer can write the semaphore's bytes at any moment. Before each
//! operation, [`SemHandle::check`] reads the fields glibc relies on (with
//! 64-bit atomics, the layout on 64-bit targets: a 64-bit word holding the
//! value in its low half and the count of waiters in its high half, then
//! the futex flag `private`) and refuses values no correct peer writes:
//! a value above `SEM_VALUE_MAX`, or a futex flag other than the shared
//! one (a garbage flag makes the kernel answer `ENOSYS`, on which glibc
//! aborts the process: "The futex facility returned an unexpected error
//! code"). The waiter count is not judged: glibc only adds to it, subtracts
//! from it and wakes when it is not zero, which a wrong count cannot turn
//! into a crash. What remains is glibc's: a peer that scribbles the flag
//! *between* our check and glibc's own read (or while we sleep in
//! `sem_wait`) still makes glibc abort, and a
//! scribbled value is a wrong count (permits appear or vanish), never
//! memory unsafety. On other C libraries than glibc the fields are not
//! checked. A peer that truncates the file after it was opened makes the
//! next access fault (`SIGBUS`), as with any shared mapping.
//!
//! # References
//! `sem_overview(7)`, `sem_open(3)`, `sem_init(3)`, `sem_wait(3)`,
//! `sem_post(3)`, `sem_getvalue(3)`, `link(2)`, `mmap(2)`; glibc's
//! `sysdeps/pthread/sem_open.c` and `sysdeps/nptl/internaltypes.h`
//! (`struct new_sem`).

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};

use rustix::fs::{AtFlags, CWD, Mode, OFlags};
use rustix::io::Errno;

use super::mem::{self, Mapping};
use super::time::Deadline;

fn errno() -> Errno {
    Errno::from_raw_os_error(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
}

/// Bytes of a `sem_t`, and of the file that holds a named one.
pub const SEM_SIZE: usize = std::mem::size_of::<libc::sem_t>();

/// The largest value a semaphore holds (`SEM_VALUE_MAX`).
pub const SEM_VALUE_MAX: u32 = i32::MAX as u32;

/// The futex flag of a process-shared semaphore: glibc's `FUTEX_SHARED`,
/// which is `FUTEX_PRIVATE_FLAG` (it is xor-ed into the futex operation).
const FUTEX_SHARED: i32 = 128;

/// Where glibc's `struct new_sem` keeps the value: with 64-bit atomics
/// (64-bit targets) it is the low 32 bits of the first 64-bit word (the
/// high ones count waiters); without, the first `unsigned int`, shifted
/// left by [`VALUE_SHIFT`] (its low bit says whether anyone waits).
#[cfg(all(target_pointer_width = "64", target_endian = "little"))]
const VALUE_AT: usize = 0;
#[cfg(all(target_pointer_width = "64", target_endian = "big"))]
const VALUE_AT: usize = 4;
#[cfg(not(target_pointer_width = "64"))]
const VALUE_AT: usize = 0;
/// See [`VALUE_AT`].
const VALUE_SHIFT: u32 = if cfg!(target_pointer_width = "64") {
    0
} else {
    1
};
/// Where glibc keeps the futex flag (`int private`): after the value word.
const FLAG_AT: usize = if cfg!(target_pointer_width = "64") {
    8
} else {
    4
};

/// A named POSIX semaphore: `sizeof(sem_t)` bytes of `/dev/shm/sem.NAME`,
/// mapped shared; unmapped on drop. The `sem_t *` is only handed to libc.
#[derive(Debug)]
pub struct SemHandle(Mapping);

/// `open("/dev/shm/sem.NAME", O_RDWR | O_NOFOLLOW | O_NONBLOCK |
/// O_CLOEXEC)`: the descriptor to check with [`mem::stat`] and then
/// [`map`]. A symlink is `ELOOP`; `O_NONBLOCK` keeps a FIFO planted there
/// from blocking the open. `name` must be validated (no `/`, no NUL).
pub fn open(name: &str) -> Result<OwnedFd, Errno> {
    let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    loop {
        match rustix::fs::open(path(name), flags, Mode::empty()) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `mmap(NULL, sizeof(sem_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
/// The caller has checked (`fstat`) that the file holds that many bytes.
pub fn map(fd: impl AsFd) -> Result<SemHandle, Errno> {
    Mapping::map_shared(fd, SEM_SIZE).map(SemHandle)
}

/// Tries this many temporary names before giving up (`EBUSY`).
const TRIES: u32 = 16;

/// Removes a temporary name on drop.
struct TempName(String);

impl Drop for TempName {
    fn drop(&mut self) {
        let _ = rustix::fs::unlink(&self.0);
    }
}

/// Creates `/dev/shm/sem.NAME` holding a process-shared semaphore with
/// `value`, mode exactly `mode`, the way glibc's `sem_open(O_CREAT |
/// O_EXCL)` does: a file made exclusively under a temporary random name
/// in `/dev/shm`, sized, mapped, `sem_init(pshared = 1)`, then
/// `link`ed to the name (`EEXIST` if taken) and the temporary name
/// removed. The link goes by the temporary path: `/dev/shm` is sticky, so
/// no other user can rename or remove our file in between.
pub fn create(name: &str, mode: u32, value: u32) -> Result<SemHandle, Errno> {
    if value > SEM_VALUE_MAX {
        return Err(Errno::INVAL);
    }
    // A Ctrl-C handler that ends the process must not strand the
    // temporary file: hold it off until the name is removed.
    let _hold = super::signal::HoldTermination::new();
    for _ in 0..TRIES {
        let tmp = format!("{}/{}-sem", mem::SHM_DIR, super::privdir::random_name());
        let fd = match rustix::fs::open(
            &tmp,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode & 0o777),
        ) {
            Ok(fd) => fd,
            Err(Errno::EXIST) => continue,
            Err(e) => return Err(e),
        };
        let _tmp = TempName(tmp);
        mem::set_mode(fd.as_fd(), mode & 0o777)?;
        mem::set_len(fd.as_fd(), SEM_SIZE as u64)?;
        let sem = map(&fd)?;
        // SAFETY: the mapping holds SEM_SIZE = sizeof(sem_t) bytes, page
        // aligned, and no one else can reach the file yet (its name is
        // random and only now about to be linked).
        if unsafe { libc::sem_init(sem.ptr(), 1, value) } != 0 {
            return Err(errno());
        }
        rustix::fs::linkat(CWD, &_tmp.0, CWD, path(name), AtFlags::empty())?;
        return Ok(sem);
    }
    Err(Errno::BUSY)
}

/// `sem_unlink("/NAME")`.
#[doc(alias = "sem_unlink")]
pub fn unlink(name: &str) -> Result<(), Errno> {
    let c = CString::new(format!("/{name}")).map_err(|_| Errno::INVAL)?;
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
        self.0.as_ptr().cast()
    }

    /// Reads the fields glibc relies on and refuses values no correct peer
    /// writes (see the module docs); `Err` says what is wrong. Call it
    /// before each operation: a peer may write at any moment.
    pub fn check(&self) -> Result<(), String> {
        let (value, private) = self.fields();
        if value > SEM_VALUE_MAX {
            return Err(format!(
                "its value {value} is above SEM_VALUE_MAX ({SEM_VALUE_MAX})"
            ));
        }
        if cfg!(target_env = "gnu") && private != FUTEX_SHARED {
            return Err(format!(
                "its futex flag is {private:#x}, not a process-shared semaphore's \
                 {FUTEX_SHARED:#x} (glibc would abort on it)"
            ));
        }
        Ok(())
    }

    /// The value and the futex flag, read atomically where glibc keeps
    /// them (see [`VALUE_AT`]).
    fn fields(&self) -> (u32, i32) {
        let base = self.0.as_ptr();
        // SAFETY: the mapping holds SEM_SIZE >= 16 bytes, page aligned, so
        // the 4-byte words at VALUE_AT and FLAG_AT are in bounds and
        // aligned. They are read as atomics, the only access that is sound
        // while another process may write them.
        let (value, flag) = unsafe {
            (
                AtomicU32::from_ptr(base.add(VALUE_AT).cast()).load(Ordering::Relaxed),
                AtomicI32::from_ptr(base.add(FLAG_AT).cast()).load(Ordering::Relaxed),
            )
        };
        (value >> VALUE_SHIFT, flag)
    }

    /// `sem_wait`, retried after `EINTR`.
    #[doc(alias = "sem_wait")]
    pub fn wait(&self) -> Result<(), Errno> {
        loop {
            // SAFETY: ptr is a mapping of sizeof(sem_t) bytes that lives as
            // long as self and holds a process-shared sem_t (sem_init, or a
            // peer's sem_open); the caller ran `check` first. glibc works on
            // it with atomics and the futex call, whatever a peer writes.
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
            let left = match deadline.remaining() {
                None => return self.wait(),
                Some(left) if left.is_zero() => {
                    return self.try_wait().map_err(|e| {
                        if e == Errno::AGAIN {
                            Errno::TIMEDOUT
                        } else {
                            e
                        }
                    });
                }
                Some(left) => left,
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
        // SAFETY: as in `wait`; abs is a valid timespec for the duration
        // of the call.
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

/// The file glibc keeps a named semaphore in: `/dev/shm/sem.NAME`.
pub fn path(name: &str) -> String {
    format!("{}/sem.{name}", super::mem::SHM_DIR)
}

/// `lstat("/dev/shm/sem.NAME")`: `Ok` when something (a file, a
/// symlink…) is at the path.
pub fn lstat(name: &str) -> Result<(), Errno> {
    rustix::fs::lstat(path(name)).map(|_| ())
}
