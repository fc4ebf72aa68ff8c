//! [`Mutex<T>`]: a robust mutex and the value it protects, in a segment of
//! their own.

use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::RawMutex;
use super::raw::{self, Acquired, Kernel, MutexState, Wait};
use crate::shm::{Segment, SegmentOptions};
use crate::sys::time::Deadline;
use crate::{Error, Result, name};

/// `"IPCWMTX1"`: the first 8 bytes of every mutex segment, written last.
const MAGIC: u64 = u64::from_le_bytes(*b"IPCWMTX1");
/// Layout version of the segment.
const VERSION: u32 = 1;
/// What [`Error::NotFound`] and friends call it.
const KIND: &str = "mutex";
/// Prefix of the segment name: `/dev/shm/ipcworks.mutex.NAME`.
const PREFIX: &str = "ipcworks.mutex.";

/// The segment starts with this header; the value follows at
/// `data_offset`.
#[repr(C)]
struct Header {
    /// [`MAGIC`], stored with `Release` once everything else is written.
    magic: AtomicU64,
    version: AtomicU32,
    data_offset: AtomicU32,
    data_size: AtomicU64,
    state: MutexState,
}

/// Where the value lives: after the header, on its own cache line.
fn data_offset<T>() -> usize {
    let align = align_of::<T>().max(64);
    size_of::<Header>().div_ceil(align) * align
}

/// A mutual exclusion lock and the value `T` it protects, in shared memory,
/// usable between threads and processes, robust against holders that die.
///
/// `T` must accept any bit pattern ([`FromBytes`]) and have no pointers or
/// padding ([`IntoBytes`], [`Immutable`]): plain numbers, arrays and
/// `#[repr(C)]` structs of them (derive the zerocopy traits).
///
/// # Shared memory and references
///
/// The value lives in memory that other processes map. A guard hands out
/// `&T` / `&mut T` while the lock is held; that is sound only because every
/// well-behaved peer writes the value under the lock. A hostile or buggy
/// peer that writes without locking can make the value wrong, but never
/// invalid: any bit pattern is a valid `T`. `T`'s destructor never runs on
/// the shared value.
///
/// # Robustness
///
/// When a holder dies, the next locker gets [`LockError::OwnerDead`] with the
/// guard: repair the data, then call [`MutexGuard::make_consistent`].
/// Dropping that guard without doing so makes the mutex not recoverable:
/// every later lock fails with [`Error::NotRecoverable`]. A recoverer that
/// dies before marking it consistent passes `OwnerDead` on to the next
/// locker. See [the module docs](super) for how death is detected.
///
/// Named mutexes live in a segment `/dev/shm/ipcworks.mutex.NAME` (mode
/// 0600 unless asked); the creator removes it when dropped unless it
/// [persists](MutexOptions::persist).
///
/// # Truncation
///
/// A process that truncates the segment (`ftruncate` of
/// `/dev/shm/ipcworks.mutex.NAME`) never kills this one with `SIGBUS`: a
/// page it removed reads as zeros here from then on, and the next lock
/// that finds the segment broken fails with [`Error::Truncated`]. What
/// cannot report it: a read or write through a guard already handed out
/// (it sees the zeros; the next lock reports), and a cut inside the
/// segment's last page, which removes no page, only zeroes the bytes past
/// the new end — to this process a peer writing zeros over the lock and
/// the value, with the effects of any such scribble (a wrong value, the
/// lock taken from its holder), never undefined behaviour.
#[doc(alias = "pthread_mutex_t")]
#[doc(alias = "robust mutex")]
pub struct Mutex<T> {
    seg: Segment,
    what: String,
    data_offset: usize,
    _value: PhantomData<T>,
}

// SAFETY: as for `std::sync::Mutex`: the lock hands `&mut T` to one thread
// at a time, so sharing the mutex only needs `T: Send`.
unsafe impl<T: Send> Sync for Mutex<T> {}

/// Options for creating or opening a [`Mutex`]: mode and persistence.
#[derive(Debug)]
pub struct MutexOptions<T> {
    seg: SegmentOptions,
    _value: PhantomData<fn() -> T>,
}

impl<T> Clone for MutexOptions<T> {
    fn clone(&self) -> Self {
        MutexOptions {
            seg: self.seg.clone(),
            _value: PhantomData,
        }
    }
}

impl<T> Default for MutexOptions<T> {
    fn default() -> Self {
        MutexOptions {
            seg: SegmentOptions::new(),
            _value: PhantomData,
        }
    }
}

impl<T> MutexOptions<T>
where
    T: FromBytes + IntoBytes + KnownLayout + Immutable + Send,
{
    /// Permission bits of a mutex to create, exactly (default 0600); when
    /// opening, a mutex whose mode grants more is refused.
    pub fn mode(&mut self, mode: u32) -> &mut Self {
        self.seg.mode(mode);
        self
    }

    /// Keep the named mutex after its creator drops it (default: remove).
    pub fn persist(&mut self, persist: bool) -> &mut Self {
        self.seg.persist(persist);
        self
    }

    /// Creates a named mutex holding `value`; [`Error::AlreadyExists`] if
    /// the name is taken.
    #[doc(alias = "shm_open")]
    pub fn create(&self, name: &str, value: T) -> Result<Mutex<T>> {
        let (bare, seg_name) = names(name)?;
        let seg = self
            .sized::<T>()
            .create(&seg_name)
            .map_err(|e| rename(e, bare))?;
        Ok(Mutex::init(seg, what(bare), value))
    }

    /// Opens an existing named mutex, checking the segment (owner, mode,
    /// magic, version, and that it holds a value of `T`'s size).
    pub fn open(&self, name: &str) -> Result<Mutex<T>> {
        let (bare, seg_name) = names(name)?;
        let seg = self.seg.open(&seg_name).map_err(|e| rename(e, bare))?;
        Mutex::attach(seg, what(bare))
    }

    /// Opens the named mutex, or creates it holding `value` if it does not
    /// exist. Returns the mutex and whether this call created it.
    pub fn open_or_create(&self, name: &str, value: T) -> Result<(Mutex<T>, bool)> {
        let (bare, seg_name) = names(name)?;
        let (seg, created) = self
            .sized::<T>()
            .open_or_create(&seg_name)
            .map_err(|e| rename(e, bare))?;
        if created {
            Ok((Mutex::init(seg, what(bare), value), true))
        } else {
            Ok((Mutex::attach(seg, what(bare))?, false))
        }
    }

    /// Creates an anonymous mutex (`memfd_create`), shared with child
    /// processes through [`Mutex::inheritable_fd`] and [`Mutex::from_fd`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self, value: T) -> Result<Mutex<T>> {
        let seg = self.sized::<T>().anonymous()?;
        Ok(Mutex::init(seg, "anonymous mutex".into(), value))
    }

    fn sized<U>(&self) -> SegmentOptions {
        let mut o = self.seg.clone();
        o.size(data_offset::<U>() + size_of::<U>());
        o
    }
}

fn names(name: &str) -> Result<(&str, String)> {
    let bare = name::validate(name)?;
    Ok((bare, format!("{PREFIX}{bare}")))
}

fn what(bare: &str) -> String {
    format!("mutex {bare:?}")
}

/// Speaks of the mutex, not of its segment, in errors about the name.
fn rename(e: Error, bare: &str) -> Error {
    match e {
        Error::NotFound { .. } => Error::NotFound {
            kind: KIND,
            name: bare.to_string(),
        },
        Error::AlreadyExists { .. } => Error::AlreadyExists {
            kind: KIND,
            name: bare.to_string(),
        },
        other => other,
    }
}

impl<T> Mutex<T>
where
    T: FromBytes + IntoBytes + KnownLayout + Immutable + Send,
{
    /// Options for creating or opening a mutex.
    pub fn options() -> MutexOptions<T> {
        MutexOptions::default()
    }

    /// Creates a named mutex holding `value` (mode 0600, removed when
    /// dropped). See [`MutexOptions::create`].
    pub fn create(name: &str, value: T) -> Result<Self> {
        Self::options().create(name, value)
    }

    /// Opens an existing named mutex. See [`MutexOptions::open`].
    pub fn open(name: &str) -> Result<Self> {
        Self::options().open(name)
    }

    /// Opens or creates a named mutex. See [`MutexOptions::open_or_create`].
    pub fn open_or_create(name: &str, value: T) -> Result<(Self, bool)> {
        Self::options().open_or_create(name, value)
    }

    /// Creates an anonymous mutex for this process and its children. See
    /// [`MutexOptions::anonymous`].
    pub fn anonymous(value: T) -> Result<Self> {
        Self::options().anonymous(value)
    }

    /// Maps a mutex from a descriptor inherited from the parent (see
    /// [`inheritable_fd`](Self::inheritable_fd)) or received over a socket.
    pub fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::attach(Segment::from_fd(fd)?, "inherited mutex".into())
    }

    /// Removes a named mutex by name (`shm_unlink` of its segment). Handles
    /// already open keep working; the name is free for a new one.
    #[doc(alias = "shm_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        let (bare, seg_name) = names(name)?;
        Segment::remove(&seg_name).map_err(|e| rename(e, bare))
    }

    /// Writes the value and header into a fresh (zeroed) segment; the magic
    /// goes last, so openers never see a half-made mutex.
    fn init(seg: Segment, what: String, value: T) -> Self {
        let m: Mutex<T> = Mutex {
            seg,
            what,
            data_offset: data_offset::<T>(),
            _value: PhantomData,
        };
        // SAFETY: the segment is ours alone until the magic is published
        // (openers wait for it); `data_ptr` is in bounds and aligned.
        unsafe { m.data_ptr().write(value) };
        let h = m.header();
        h.version.store(VERSION, Relaxed);
        h.data_offset.store(m.data_offset as u32, Relaxed);
        h.data_size.store(size_of::<T>() as u64, Relaxed);
        h.magic.store(MAGIC, Release);
        m
    }

    /// Checks an opened segment's header before use.
    fn attach(seg: Segment, what: String) -> Result<Self> {
        let name = what.clone();
        let refuse = |reason: String| Error::Refused {
            name: name.clone(),
            reason,
        };
        let offset = data_offset::<T>();
        let need = offset + size_of::<T>();
        if seg.len() < size_of::<Header>() {
            return Err(refuse(format!(
                "its segment has {} bytes, too few for an ipcworks mutex",
                seg.len()
            )));
        }
        let m: Mutex<T> = Mutex {
            seg,
            what,
            data_offset: offset,
            _value: PhantomData,
        };
        let h = m.header();
        // The creator writes the magic last; give it a moment.
        crate::shm::await_magic(&h.magic, MAGIC, "mutex").map_err(refuse)?;
        let version = h.version.load(Relaxed);
        if version != VERSION {
            return Err(refuse(format!(
                "it has layout version {version}, this program knows version {VERSION}"
            )));
        }
        let (off, size) = (h.data_offset.load(Relaxed), h.data_size.load(Relaxed));
        if off as usize != offset || size != size_of::<T>() as u64 {
            return Err(refuse(format!(
                "it holds a {size}-byte value at offset {off}, not a {}-byte value at offset {offset} (a different type)",
                size_of::<T>()
            )));
        }
        if m.seg.len() < need {
            return Err(Error::corrupted(format!(
                "{}: its segment has {} bytes, its header needs {need}",
                m.what,
                m.seg.len()
            )));
        }
        // A cut while we read the header: those values were zeros of ours.
        m.seg.check_intact()?;
        Ok(m)
    }

    /// Locks, waiting as long as it takes; `OwnerDead` if the last holder
    /// died holding it.
    ///
    /// Locking a mutex that this thread holds already fails with
    /// [`Error::InvalidArgument`] instead of waiting for ever.
    #[doc(alias = "pthread_mutex_lock")]
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::Until(None))
    }

    /// Locks if nobody holds it now, else [`Error::WouldBlock`]. If the
    /// holder is dead, takes over and returns [`LockError::OwnerDead`] (this
    /// costs a read of `/proc` when the lock is held).
    #[doc(alias = "pthread_mutex_trylock")]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::No)
    }

    /// Locks, waiting at most `timeout`, else [`Error::Timeout`]. Signals
    /// do not cut the wait short.
    #[doc(alias = "pthread_mutex_timedlock")]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::Until(Some(Deadline::after(timeout))))
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        let raw = RawMutex::new(self.state());
        let r = match wait {
            Wait::No => raw.try_lock(),
            Wait::Until(d) => raw.lock_until(d),
        };
        let r = match r {
            Ok(Acquired::Consistent) => Ok(self.guard(false)),
            Ok(Acquired::OwnerDead) => Err(LockError::OwnerDead(self.guard(true))),
            Err(e) => Err(LockError::Failed(
                self.seg.explain(e.into_error(&self.what)),
            )),
        };
        // A lock word on a page another process truncated away: the
        // protocol ran on zeros of ours, not on the mutex. Whatever it
        // says, no guard over that memory (dropping one unlocks the zeros).
        if let Err(e) = self.seg.check_intact() {
            drop(r);
            return Err(LockError::Failed(e));
        }
        r
    }
}

impl<T> Mutex<T> {
    fn guard(&self, owner_dead: bool) -> MutexGuard<'_, T> {
        MutexGuard {
            mutex: self,
            owner_dead,
            _not_send: PhantomData,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: the segment is page-aligned and at least a header long
        // (checked by `attach`, sized by `init`); it lives as long as
        // `self`; the header is atomics only, which tolerate other writers.
        unsafe { &*(self.seg.as_ptr() as *const Header) }
    }

    fn state(&self) -> &MutexState {
        &self.header().state
    }

    fn data_ptr(&self) -> *mut T {
        // SAFETY: `data_offset + size_of::<T>()` is within the segment
        // (checked by `attach`, sized by `init`).
        unsafe { self.seg.as_ptr().add(self.data_offset) as *mut T }
    }

    /// A duplicate of the segment's descriptor without close-on-exec, for a
    /// child process (see [`Segment::inheritable_fd`]).
    pub fn inheritable_fd(&self) -> Result<OwnedFd> {
        self.seg.inheritable_fd()
    }

    /// The segment's name (`ipcworks.mutex.NAME`), or `None` if anonymous.
    pub fn segment_name(&self) -> Option<&str> {
        self.seg.name()
    }

    /// Keeps the named mutex after this handle is dropped.
    pub fn persist(&mut self) {
        self.seg.persist();
    }

    /// Whether somebody holds the lock right now (a snapshot).
    pub fn is_locked(&self) -> bool {
        RawMutex::new(self.state()).is_locked()
    }
}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("what", &self.what)
            .field("locked", &self.is_locked())
            .finish_non_exhaustive()
    }
}

/// Proof of holding a [`Mutex`]: derefs to the value; unlocks when dropped.
///
/// Not `Send`: the lock is recorded as held by this thread, and a thread
/// that exits while holding it counts as a dead holder.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    owner_dead: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only hands out `&T`, as `std::sync::MutexGuard`.
unsafe impl<T: Sync> Sync for MutexGuard<'_, T> {}

impl<T> MutexGuard<'_, T> {
    /// Marks the data consistent after [`LockError::OwnerDead`], once it has
    /// been inspected and repaired; later lockers proceed normally.
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn make_consistent(&mut self) {
        raw::make_consistent(self.mutex.state());
        self.owner_dead = false;
    }

    /// Whether the data is consistent: `false` after an `OwnerDead` until
    /// [`make_consistent`](Self::make_consistent).
    pub fn is_consistent(&self) -> bool {
        !self.owner_dead
    }
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: we hold the lock, so well-behaved peers do not write the
        // value; `T: FromBytes` (required to lock) makes any bytes a hostile
        // peer leaves there a valid `T`. In bounds and aligned (`attach`).
        unsafe { &*self.mutex.data_ptr() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only reference
        // in this process.
        unsafe { &mut *self.mutex.data_ptr() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.owner_dead {
            raw::give_up(self.mutex.state(), &Kernel);
        } else {
            raw::release(self.mutex.state(), &Kernel, false);
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("value", &**self)
            .field("consistent", &self.is_consistent())
            .finish()
    }
}

/// Why [`Mutex::lock`] did not simply succeed.
pub enum LockError<'a, T> {
    /// The lock is held, but its previous holder died holding it: repair the
    /// value and call [`MutexGuard::make_consistent`], or dropping the guard
    /// makes the mutex not recoverable.
    #[doc(alias = "EOWNERDEAD")]
    OwnerDead(MutexGuard<'a, T>),
    /// The lock was not acquired: [`Error::WouldBlock`], [`Error::Timeout`],
    /// [`Error::NotRecoverable`], [`Error::Corrupted`], or
    /// [`Error::InvalidArgument`] when this thread holds it already.
    Failed(Error),
}

impl<T> LockError<'_, T> {
    /// The error, if the lock was not acquired.
    pub fn error(&self) -> Option<&Error> {
        match self {
            LockError::OwnerDead(_) => None,
            LockError::Failed(e) => Some(e),
        }
    }
}

/// `?` turns [`LockError::OwnerDead`] into [`Error::OwnerDead`]; the guard
/// is dropped unrepaired, which makes the mutex not recoverable. Match on
/// `OwnerDead` where the data can be repaired.
impl<T> From<LockError<'_, T>> for Error {
    fn from(e: LockError<'_, T>) -> Error {
        match e {
            LockError::OwnerDead(g) => Error::OwnerDead {
                what: g.mutex.what.clone(),
            },
            LockError::Failed(e) => e,
        }
    }
}

impl<T> fmt::Debug for LockError<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDead(g) => f.debug_tuple("OwnerDead").field(&g.mutex.what).finish(),
            LockError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for LockError<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LockError::OwnerDead(g) => write!(
                f,
                "the previous holder of {} died while holding it; its data may be inconsistent",
                g.mutex.what
            ),
            LockError::Failed(e) => e.fmt(f),
        }
    }
}

impl<T> std::error::Error for LockError<'_, T> {}
