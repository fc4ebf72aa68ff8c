//! Shared memory objects and mappings: `shm_open`, `memfd_create`,
//! `ftruncate`, `fstat`, `fchmod`, `mmap`, `munmap`; and prefetch hints
//! for memory another core writes.

use std::ffi::c_void;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{MapFlags, ProtFlags};

/// Where POSIX shared memory objects live on Linux.
pub const SHM_DIR: &str = "/dev/shm";

/// How to open a shared memory object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Fail if it exists (`O_CREAT | O_EXCL`).
    CreateExclusive,
    /// Fail if it does not exist.
    Open,
}

/// `shm_open(name, O_RDWR | flags | O_NOFOLLOW | O_CLOEXEC, mode)`.
///
/// Implemented as glibc does, by opening `/dev/shm/NAME`, but with
/// `O_NOFOLLOW` so a symlink planted under the name is refused (`ELOOP`).
/// `name` must already be validated (no `/`, not empty, not `.`/`..`).
pub fn shm_open(name: &str, how: OpenMode, mode: u32) -> Result<OwnedFd, Errno> {
    let mut flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if how == OpenMode::CreateExclusive {
        flags |= OFlags::CREATE | OFlags::EXCL;
    }
    let path = format!("{SHM_DIR}/{name}");
    loop {
        match rustix::fs::open(&path, flags, Mode::from_raw_mode(mode)) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `shm_unlink(name)`.
pub fn shm_unlink(name: &str) -> Result<(), Errno> {
    rustix::fs::unlink(format!("{SHM_DIR}/{name}"))
}

/// `memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING)`: an anonymous file
/// in memory, shared with children that inherit the descriptor.
#[doc(alias = "memfd_create")]
pub fn memfd(debug_name: &str) -> Result<OwnedFd, Errno> {
    rustix::fs::memfd_create(
        debug_name,
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )
}

/// `fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)`: fixes a
/// memfd's size for good, so no process holding it can shrink it under a
/// mapping (which would turn reads into `SIGBUS`).
pub fn seal_size(fd: BorrowedFd<'_>) -> Result<(), Errno> {
    rustix::fs::fcntl_add_seals(
        fd,
        rustix::fs::SealFlags::SHRINK | rustix::fs::SealFlags::GROW | rustix::fs::SealFlags::SEAL,
    )
}

/// `ftruncate(fd, len)`.
#[doc(alias = "ftruncate")]
pub fn set_len(fd: BorrowedFd<'_>, len: u64) -> Result<(), Errno> {
    loop {
        match rustix::fs::ftruncate(fd, len) {
            Err(Errno::INTR) => continue,
            other => return other,
        }
    }
}

/// `fchmod(fd, mode)`: sets the mode exactly, whatever the umask was.
#[doc(alias = "fchmod")]
pub fn set_mode(fd: BorrowedFd<'_>, mode: u32) -> Result<(), Errno> {
    rustix::fs::fchmod(fd, Mode::from_raw_mode(mode))
}

/// What `fstat` says of an open object.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Size in bytes.
    pub size: u64,
    /// Owner's user id.
    pub uid: u32,
    /// Permission bits (`mode & 0o7777`).
    pub mode: u32,
    /// Whether it is a regular file (shared memory objects are).
    pub is_file: bool,
}

/// `fstat(fd)`.
#[doc(alias = "fstat")]
pub fn stat(fd: BorrowedFd<'_>) -> Result<Stat, Errno> {
    let st = rustix::fs::fstat(fd)?;
    let file_type = rustix::fs::FileType::from_raw_mode(st.st_mode);
    Ok(Stat {
        size: st.st_size as u64,
        uid: st.st_uid,
        mode: st.st_mode & 0o7777,
        is_file: file_type == rustix::fs::FileType::RegularFile,
    })
}

/// `geteuid()`.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// A shared, read-write mapping of a whole object; unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is a range of addresses; any thread may use or unmap it.
// Access to the bytes goes through raw pointers and atomics only.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` hands out only raw pointers.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// `mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)`.
    #[doc(alias = "mmap")]
    pub fn map_shared(fd: impl AsFd, len: usize) -> Result<Self, Errno> {
        if len == 0 {
            return Err(Errno::INVAL);
        }
        // SAFETY: a fresh mapping at an address the kernel chooses (NULL
        // hint) cannot alias any Rust object; we own it until `drop`.
        let ptr = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::NOMEM)?;
        Ok(Mapping { ptr, len })
    }

    /// The first byte of the mapping (page-aligned).
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it is empty (never: mappings have at least one byte).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe a mapping we made and nobody else unmaps;
        // the borrow checker ties every reference into it to `&self`.
        unsafe {
            let _ = rustix::mm::munmap(self.ptr.as_ptr().cast::<c_void>(), self.len);
        }
    }
}

/// A hint that the cache line holding `addr` will be read soon: starts
/// pulling it toward this core (`prefetcht0` on x86_64, nothing
/// elsewhere), so a later read of it overlaps with other misses instead
/// of following them. Never faults and reads nothing in the language's
/// sense: any address may be passed.
#[inline]
pub fn prefetch_read(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch is not a
    // memory access: it neither faults nor races.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(addr.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// A hint that this core will write the cache line holding `addr` again:
/// asks for it in exclusive state (`prefetchw` on x86_64 processors that
/// have it, nothing elsewhere). Never faults, and neither reads nor writes
/// in the language's sense: any address may be passed.
#[inline]
pub fn prefetch_write(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    if has_prefetchw() {
        // SAFETY: the processor has PREFETCHW (checked above), and a
        // prefetch is not a memory access: it neither faults nor races; it
        // touches no register but its address operand, nor the flags.
        unsafe {
            std::arch::asm!(
                "prefetchw [{addr}]",
                addr = in(reg) addr,
                options(nostack, preserves_flags, readonly)
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Whether this x86_64 processor has PREFETCHW (CPUID 8000_0001h, ECX bit
/// 8), asked once.
#[cfg(target_arch = "x86_64")]
fn has_prefetchw() -> bool {
    // (std's `is_x86_feature_detected!` does not know `prfchw`.)
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        use std::arch::x86_64::__cpuid;
        __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
    })
}

/// `fstat(fd)` and `lstat(path)`: whether `path` still names the object
/// open as `fd` (same device and inode, and not a symlink to it).
pub fn same_object(fd: BorrowedFd<'_>, path: &str) -> bool {
    match (rustix::fs::fstat(fd), rustix::fs::lstat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

/// `fcntl(fd, F_DUPFD, 3)` then clearing `FD_CLOEXEC`: a duplicate that a
/// child process inherits across `exec`.
pub fn dup_inheritable(fd: BorrowedFd<'_>) -> Result<OwnedFd, Errno> {
    let dup = rustix::io::fcntl_dupfd_cloexec(fd, 3)?;
    rustix::io::fcntl_setfd(&dup, rustix::io::FdFlags::empty())?;
    Ok(dup)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefetch never faults, whatever the address (the test process
    /// would die of SIGSEGV), and PREFETCHW is used exactly where the
    /// kernel says the processor has it (`3dnowprefetch` in /proc/cpuinfo).
    #[test]
    fn prefetch_hints_take_any_address_and_prefetchw_is_detected_as_the_kernel_sees_it() {
        let line = [7u8; 64];
        for addr in [
            std::ptr::null(),
            usize::MAX as *const u8,
            0x1000 as *const u8,
            line.as_ptr(),
        ] {
            prefetch_read(addr);
            prefetch_write(addr);
        }
        #[cfg(target_arch = "x86_64")]
        {
            let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
            let flags = cpuinfo
                .lines()
                .find(|l| l.starts_with("flags"))
                .expect("a flags line");
            let kernel_says = flags.split_whitespace().any(|f| f == "3dnowprefetch");
            assert_eq!(has_prefetchw(), kernel_says, "{flags}");
            assert_eq!(has_prefetchw(), kernel_says, "asked again");
        }
    }
}
