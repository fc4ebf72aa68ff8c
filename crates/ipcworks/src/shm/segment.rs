//! [`Segment`]: one mapped shared memory object.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::fault::{Mark, Watched};
use crate::sys::Errno;
use crate::sys::mem::{self, Mapping, OpenMode};
use crate::{Error, Result, name, registry};

const KIND: &str = "shared memory segment";
/// How often at most a timed-out call looks at the segment's size (ms).
const SIZE_CHECK_MS: u64 = 20;

/// A shared memory object mapped read-write into this process.
///
/// Named segments live in `/dev/shm` and are found by name; anonymous ones
/// (`memfd`) are shared by passing the descriptor to a child process
/// ([`Segment::inheritable_fd`], [`Segment::from_fd`]).
///
/// The process that created a named segment unlinks its name when the
/// `Segment` is dropped, unless told to [`persist`](Segment::persist); the
/// memory itself lives on until every process has unmapped it.
///
/// # Truncation
///
/// Another process that may open the name may also `ftruncate` it. Reading
/// or writing a page past the new end would then kill this process with
/// `SIGBUS`; instead, the fault is caught (see the [module docs](super)),
/// the lost pages read as zeros from then on, and
/// [`check_intact`](Segment::check_intact) reports
/// [`Error::Truncated`]. Anonymous segments are sealed against shrinking
/// and cannot be truncated at all.
#[derive(Debug)]
pub struct Segment {
    /// Dropped before `map`: the mapping leaves the table of watched
    /// mappings before it is unmapped.
    watched: Watched,
    map: Mapping,
    fd: OwnedFd,
    name: Option<String>,
    unlink_on_drop: bool,
    /// When a timeout last looked at the size (coarse clock, ms).
    size_seen: AtomicU64,
}

/// Options for creating or opening a [`Segment`], in the style of
/// [`std::fs::OpenOptions`].
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    size: usize,
    mode: u32,
    persist: bool,
}

impl Default for SegmentOptions {
    fn default() -> Self {
        SegmentOptions {
            size: 0,
            mode: 0o600,
            persist: false,
        }
    }
}

impl SegmentOptions {
    /// Options with mode 0600, removed on drop.
    pub fn new() -> Self {
        Self::default()
    }

    /// The size in bytes of a segment to create (mapped rounded up to whole
    /// pages). Required when creating.
    pub fn size(&mut self, bytes: usize) -> &mut Self {
        self.size = bytes;
        self
    }

    /// Permission bits of a segment to create, set exactly whatever the
    /// umask (default 0600). When opening, a segment whose mode grants more
    /// than this is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.mode = mode & 0o777;
        self
    }

    /// Keep the name after the creator drops the segment (default: remove).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.persist = persist;
        self
    }

    /// Creates a new named segment; fails with [`Error::AlreadyExists`] if
    /// the name is taken.
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str) -> Result<Segment> {
        let bare = name::validate(name)?;
        self.check_size()?;
        let fd = mem::shm_open(bare, OpenMode::CreateExclusive, self.mode)
            .map_err(|e| errno_error(e, bare, "shm_open"))?;
        // From here on the name is ours: remove it again if sizing fails.
        let undo = |e: Error| {
            let _ = mem::shm_unlink(bare);
            e
        };
        mem::set_mode(fd.as_fd(), self.mode).map_err(|e| undo(errno_error(e, bare, "fchmod")))?;
        mem::set_len(fd.as_fd(), self.size as u64)
            .map_err(|e| undo(errno_error(e, bare, "ftruncate")))?;
        let map =
            Mapping::map_shared(&fd, self.size).map_err(|e| undo(errno_error(e, bare, "mmap")))?;
        let watched = Watched::new(map.as_ptr(), map.len()).map_err(undo)?;
        registry::register(registry::Kind::Shm, bare, self.persist);
        Ok(Segment {
            watched,
            map,
            fd,
            name: Some(bare.to_string()),
            unlink_on_drop: !self.persist,
            size_seen: AtomicU64::new(0),
        })
    }

    /// Opens an existing named segment after checking it is safe to use: a
    /// regular file (not a symlink), owned by this user, with no permission
    /// beyond [`mode`](Self::mode). Its size is the object's size.
    ///
    /// A segment that its creator has not sized yet is waited for briefly
    /// (up to 1 s) before giving up.
    #[doc(alias = "shm_open")]
    pub fn open(&self, name: &str) -> Result<Segment> {
        let bare = name::validate(name)?;
        let fd =
            mem::shm_open(bare, OpenMode::Open, 0).map_err(|e| errno_error(e, bare, "shm_open"))?;
        let size = check_opened(fd.as_fd(), bare, self.mode)?;
        let map = Mapping::map_shared(&fd, size).map_err(|e| errno_error(e, bare, "mmap"))?;
        Ok(Segment {
            watched: Watched::new(map.as_ptr(), map.len())?,
            map,
            fd,
            name: Some(bare.to_string()),
            unlink_on_drop: false,
            size_seen: AtomicU64::new(0),
        })
    }

    /// Opens the named segment if it exists (with the checks of
    /// [`open`](Self::open)), or creates it. Returns the segment and whether
    /// this call created it.
    pub fn open_or_create(&self, name: &str) -> Result<(Segment, bool)> {
        name::open_or_create("shm_open", || self.create(name), || self.open(name))
    }

    /// Creates an anonymous segment (`memfd_create`), sealed against
    /// resizing. Share it with a child through
    /// [`Segment::inheritable_fd`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self) -> Result<Segment> {
        self.check_size()?;
        let fd = mem::memfd("ipcworks").map_err(|e| Error::io("memfd_create", e))?;
        mem::set_len(fd.as_fd(), self.size as u64).map_err(|e| Error::io("ftruncate", e))?;
        mem::seal_size(fd.as_fd()).map_err(|e| Error::io("fcntl(F_ADD_SEALS)", e))?;
        let map = Mapping::map_shared(&fd, self.size).map_err(|e| Error::io("mmap", e))?;
        Ok(Segment {
            watched: Watched::new(map.as_ptr(), map.len())?,
            map,
            fd,
            name: None,
            unlink_on_drop: false,
            size_seen: AtomicU64::new(0),
        })
    }

    fn check_size(&self) -> Result<()> {
        if self.size == 0 {
            return Err(Error::InvalidArgument(
                "a segment needs a size of at least 1 byte".into(),
            ));
        }
        if self.size > isize::MAX as usize / 2 {
            return Err(Error::InvalidArgument(format!(
                "segment size {} is too large",
                self.size
            )));
        }
        Ok(())
    }
}

/// Checks an opened named object: regular file, ours, no looser mode than
/// `mode`, sized. Returns its size.
fn check_opened(fd: BorrowedFd<'_>, name: &str, mode: u32) -> Result<usize> {
    let refuse = |reason: String| Error::Refused {
        name: name.to_string(),
        reason,
    };
    let start = Instant::now();
    loop {
        let st = mem::stat(fd).map_err(|e| errno_error(e, name, "fstat"))?;
        if !st.is_file {
            return Err(refuse("it is not a regular file".into()));
        }
        let me = mem::euid();
        if st.uid != me {
            return Err(refuse(format!(
                "it is owned by uid {}, not by you (uid {me}); another user may have planted it",
                st.uid
            )));
        }
        if st.mode & !mode & 0o777 != 0 {
            return Err(refuse(format!(
                "its mode {:04o} grants more than the expected {:04o}",
                st.mode, mode
            )));
        }
        if st.size > 0 {
            return usize::try_from(st.size)
                .map_err(|_| refuse(format!("its size {} does not fit in memory", st.size)));
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Err(refuse(
                "it has size 0: its creator has not sized it, or died while creating it".into(),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Whether the name still refers to the object behind `fd` (same device and
/// inode): someone may have removed it and created another under the same
/// name, which is not ours to remove.
fn still_ours(fd: BorrowedFd<'_>, name: &str) -> bool {
    let path = format!("{}/{name}", mem::SHM_DIR);
    mem::same_object(fd, &path)
}

/// Turns an errno from a call on a named object into the user's terms.
pub(crate) fn errno_error(e: Errno, name: &str, op: &'static str) -> Error {
    name::errno_error(e, KIND, name, op)
}

impl Segment {
    /// Options for creating or opening a segment.
    pub fn options() -> SegmentOptions {
        SegmentOptions::new()
    }

    /// Creates a new named segment of `size` bytes, mode 0600, removed when
    /// dropped. See [`SegmentOptions::create`].
    pub fn create(name: &str, size: usize) -> Result<Segment> {
        Self::options().size(size).create(name)
    }

    /// Opens an existing named segment. See [`SegmentOptions::open`].
    pub fn open(name: &str) -> Result<Segment> {
        Self::options().open(name)
    }

    /// Opens or creates a named segment. See [`SegmentOptions::open_or_create`].
    pub fn open_or_create(name: &str, size: usize) -> Result<(Segment, bool)> {
        Self::options().size(size).open_or_create(name)
    }

    /// Creates an anonymous segment of `size` bytes. See
    /// [`SegmentOptions::anonymous`].
    pub fn anonymous(size: usize) -> Result<Segment> {
        Self::options().size(size).anonymous()
    }

    /// Maps a segment from a descriptor: one inherited from a parent, or
    /// received over a Unix socket.
    pub fn from_fd(fd: OwnedFd) -> Result<Segment> {
        let st = mem::stat(fd.as_fd()).map_err(|e| Error::io("fstat", e))?;
        if !st.is_file || st.size == 0 {
            return Err(Error::InvalidArgument(
                "the descriptor is not a sized shared memory object".into(),
            ));
        }
        let size = usize::try_from(st.size)
            .map_err(|_| Error::InvalidArgument("segment too large".into()))?;
        let map = Mapping::map_shared(&fd, size).map_err(|e| Error::io("mmap", e))?;
        Ok(Segment {
            watched: Watched::new(map.as_ptr(), map.len())?,
            map,
            fd,
            name: None,
            unlink_on_drop: false,
            size_seen: AtomicU64::new(0),
        })
    }

    /// The first byte of the mapping (page-aligned). Other processes may
    /// write to this memory at any time: access it through atomics or
    /// volatile reads, never through `&[u8]`/`&T`; and since another
    /// process may also truncate it, call
    /// [`check_intact`](Self::check_intact) before trusting what you read.
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.as_ptr()
    }

    /// Word `index` of the segment (bytes `8 * index` to `8 * index + 8`)
    /// as an atomic, or `None` past the end: the safe way to share plain
    /// counters and flags with other processes.
    ///
    /// An atomic is what memory another process may write at any moment
    /// can soundly be read through: every bit pattern is a valid `u64`, and
    /// the compiler assumes nothing stays put between two loads. The values
    /// are whatever the peers stored: check them before trusting them (a
    /// word on a page a peer truncated away reads as zero; see
    /// [`check_intact`](Self::check_intact)).
    ///
    /// ```
    /// use std::sync::atomic::Ordering;
    /// use ipcworks::shm::Segment;
    ///
    /// let seg = Segment::anonymous(4096)?;
    /// let hits = seg.atomic_u64(0).expect("in the segment");
    /// hits.fetch_add(1, Ordering::SeqCst);
    /// assert_eq!(hits.load(Ordering::SeqCst), 1);
    /// assert!(seg.atomic_u64(4096 / 8).is_none());
    /// # Ok::<(), ipcworks::Error>(())
    /// ```
    pub fn atomic_u64(&self, index: usize) -> Option<&AtomicU64> {
        let end = index.checked_add(1)?.checked_mul(8)?;
        if end > self.len() {
            return None;
        }
        // SAFETY: bytes `8 * index .. end` lie inside the mapping (checked
        // above), which stays mapped while `self` is borrowed; the address
        // is 8-aligned (the mapping is page-aligned and the offset a
        // multiple of 8); every bit pattern is a valid `AtomicU64`, and this
        // process touches the word only through the atomic (other processes
        // share it as memory that is only ever accessed atomically).
        Some(unsafe { AtomicU64::from_ptr(self.as_ptr().add(index * 8).cast::<u64>()) })
    }

    /// Whether this process's view of the segment is whole:
    /// [`Error::Truncated`] once another process truncated the object and
    /// an access here touched a page that is gone (or a size check found
    /// the object shorter than the mapping). One relaxed load, no system
    /// call: call it after reading or writing through
    /// [`as_ptr`](Self::as_ptr), before trusting what was read or
    /// reporting what was written — a page lost to truncation reads as
    /// zeros, and writes to it reach no one.
    #[inline]
    pub fn check_intact(&self) -> Result<()> {
        if self.watched.mark().is_set() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// `fstat`: whether the object is still at least as long as the
    /// mapping. A cut that leaves every page this process touches in
    /// place faults nowhere (the kernel zeroes the bytes past the new
    /// end), so waiting code asks this now and then; a shorter object
    /// marks the segment broken for good.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn check_size(&self) -> Result<()> {
        self.check_intact()?;
        if self.shrunk() {
            return Err(self.truncated());
        }
        Ok(())
    }

    /// `fstat`: the object is shorter than the mapping (and the segment
    /// is marked broken from now on). An `fstat` that fails says nothing.
    #[cfg_attr(loom, allow(dead_code))]
    fn shrunk(&self) -> bool {
        match mem::stat(self.fd.as_fd()) {
            Ok(st) if st.size < self.map.len() as u64 => {
                self.watched.mark().set();
                true
            }
            _ => false,
        }
    }

    /// `e`, or [`Error::Truncated`] in its place when the segment is
    /// broken: an error found in memory a peer truncated (zeros of ours:
    /// a "corrupted" header, senders that seem gone) is news of the
    /// truncation, nothing else. A cut that removed no page this process
    /// touches faults nowhere, so the size is looked at too (`fstat`):
    /// after a rare error always; after a timeout at most every 20 ms per
    /// segment (waits in a loop of short timeouts, each shorter than a
    /// wait's own slice, would otherwise never look); after
    /// `WouldBlock`, which polling returns all the time, never.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn explain(&self, e: Error) -> Error {
        let broken = match e {
            Error::Truncated { .. } => return e,
            Error::WouldBlock => self.watched.mark().is_set(),
            Error::Timeout => self.watched.mark().is_set() || self.size_due() && self.shrunk(),
            _ => self.watched.mark().is_set() || self.shrunk(),
        };
        if broken { self.truncated() } else { e }
    }

    /// Whether a timeout should look at the size now (at most every
    /// [`SIZE_CHECK_MS`]); a few nanoseconds (the coarse clock).
    #[cfg_attr(loom, allow(dead_code))]
    fn size_due(&self) -> bool {
        let now = crate::sys::time::coarse_millis();
        let last = self.size_seen.load(Relaxed);
        if now.wrapping_sub(last) < SIZE_CHECK_MS {
            return false;
        }
        self.size_seen.store(now, Relaxed);
        true
    }

    /// The mark behind [`check_intact`](Self::check_intact), for hot paths
    /// that keep a copy of it.
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) fn mark(&self) -> Mark {
        self.watched.mark()
    }

    /// The error for this segment once it is broken.
    #[cold]
    pub(crate) fn truncated(&self) -> Error {
        Error::Truncated {
            name: self.name.clone().unwrap_or_else(|| "(anonymous)".into()),
        }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Always false: a segment has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The name (without leading `/`), or `None` for an anonymous segment.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// Whether dropping this segment removes its name.
    pub fn removes_on_drop(&self) -> bool {
        self.unlink_on_drop
    }

    /// Keeps the name after this segment is dropped.
    pub fn persist(&mut self) {
        if self.unlink_on_drop
            && let Some(n) = &self.name
        {
            registry::register(registry::Kind::Shm, n, true);
        }
        self.unlink_on_drop = false;
    }

    /// Makes this handle remove the name when dropped (for an opener that
    /// takes over the cleanup).
    pub fn remove_on_drop(&mut self) {
        self.unlink_on_drop = self.name.is_some();
        if let Some(n) = &self.name {
            registry::register(registry::Kind::Shm, n, false);
        }
    }

    /// Removes the name now (`shm_unlink`); the mapping stays valid.
    pub fn unlink(&mut self) -> Result<()> {
        self.unlink_on_drop = false;
        match &self.name {
            Some(n) => {
                registry::unregister(registry::Kind::Shm, n);
                mem::shm_unlink(n).map_err(|e| errno_error(e, n, "shm_unlink"))
            }
            None => Ok(()),
        }
    }

    /// Removes a named segment by name (`shm_unlink`).
    #[doc(alias = "shm_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        let bare = name::validate(name)?;
        registry::unregister(registry::Kind::Shm, bare);
        mem::shm_unlink(bare).map_err(|e| errno_error(e, bare, "shm_unlink"))
    }

    /// A duplicate of the descriptor *without* close-on-exec, for a child
    /// process to inherit: pass its number to the child (argument or
    /// environment), which calls [`Segment::from_fd`]. Drop it in the parent
    /// after spawning.
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        mem::dup_inheritable(self.fd.as_fd()).map_err(|e| Error::io("fcntl(F_DUPFD)", e))
    }
}

impl AsFd for Segment {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if self.unlink_on_drop
            && let Some(n) = &self.name
            && still_ours(self.fd.as_fd(), n)
        {
            registry::unregister(registry::Kind::Shm, n);
            let _ = mem::shm_unlink(n);
        }
    }
}
