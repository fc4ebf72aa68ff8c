//! [`Mutex<T>`]: a robust mutex and the value it protects, in a segment of
//! their own.

use std::fmt;
use std::marker::PhantomData;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

use super::raw::{self, Acquired, Kernel, MutexState, Wait};
use super::{AtomicsOnly, RawMutex};
use crate::shm::{self, Named, SegmentOptions};
use crate::sys::futex::Wake;
use crate::sys::proc::Identity;
use crate::sys::time::Deadline;
use crate::{Error, Result};

/// The segment starts with this header; the value follows at
/// `data_offset`.
#[repr(C)]
pub(crate) struct Header {
    /// `"IPCWMTX1"`, stored with `Release` once everything else is
    /// written ([`shm::Named`]).
    magic: AtomicU64,
    version: AtomicU32,
    data_offset: AtomicU32,
    data_size: AtomicU64,
    state: MutexState,
    /// 0, or the identity of a child process that holds the lock together
    /// with its holder ([`process::spawn_holding`](crate::process::spawn_holding)).
    /// A holder judged dead keeps the lock while this one lives.
    co_holder: AtomicU64,
}

/// Where a mutex's value lies in its segment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    offset: usize,
    size: usize,
}

impl Layout {
    /// The layout of a mutex holding a `T`.
    fn of<T>() -> Layout {
        Layout {
            offset: data_offset::<T>(),
            size: size_of::<T>(),
        }
    }
}

// SAFETY: `#[repr(C)]`, 8-aligned, atomics only; `magic` is the first
// field.
unsafe impl shm::Header for Header {
    const PREFIX: &'static str = "ipcworks.mutex.";
    const KIND: &'static str = "mutex";
    const ADDRESS: &'static str = "mutex";
    const MAGIC: u64 = u64::from_le_bytes(*b"IPCWMTX1");
    /// Version 2: the lock word holds the holder's full identity (64 bits;
    /// see `raw.rs`).
    const VERSION: u64 = 2;
    type Layout = Layout;

    fn size(l: &Layout) -> usize {
        l.offset.saturating_add(l.size)
    }

    fn magic(&self) -> &AtomicU64 {
        &self.magic
    }

    fn version(&self) -> u64 {
        self.version.load(Relaxed).into()
    }

    fn init(&self, l: &Layout) -> Result<()> {
        self.version.store(Self::VERSION as u32, Relaxed);
        self.data_offset.store(l.offset as u32, Relaxed);
        self.data_size.store(l.size as u64, Relaxed);
        Ok(())
    }

    /// Any place and size: [`shm::Named`] checks them against the
    /// segment, [`Mutex::open`] against `T`.
    fn validate(&self, _len: usize) -> Result<Layout> {
        Ok(Layout {
            offset: self.data_offset.load(Relaxed) as usize,
            size: usize::try_from(self.data_size.load(Relaxed)).unwrap_or(usize::MAX),
        })
    }
}

/// The robust-mutex host of a `Mutex<T>`: the kernel's, and a holder is
/// dead only if its co-holder (if any) is dead too.
struct WithCoHolder<'a> {
    co: &'a AtomicU64,
}

impl raw::Host for WithCoHolder<'_> {
    const SPIN: u32 = Kernel::SPIN;

    fn slice(&self) -> Option<Duration> {
        Kernel.slice()
    }

    fn wait(&self, word: &AtomicU64, expected: u64, until: Deadline) -> Wake {
        Kernel.wait(word, expected, until)
    }

    fn wake(&self, word: &AtomicU64, all: bool) {
        Kernel.wake(word, all)
    }

    type Watch = <Kernel as raw::Host>::Watch;
    const WATCH_AFTER: Option<Duration> = Kernel::WATCH_AFTER;

    /// The holder's death wakes us; the co-holder is judged then, by
    /// [`owner_dead`](raw::Host::owner_dead).
    unsafe fn watch_holder<'a>(
        &self,
        ident: u64,
        word: &'a AtomicU64,
        dead: &'a std::sync::atomic::AtomicBool,
    ) -> Option<Self::Watch> {
        // SAFETY: the caller's contract, passed on.
        unsafe { Kernel.watch_holder(ident, word, dead) }
    }

    fn owner_dead(&self, ident: u64) -> bool {
        if !Kernel.owner_dead(ident) {
            return false;
        }
        // Only now read the co-holder: a child records itself before it
        // checks that its parent (the holder) lives, so a co-holder that
        // will ever run is visible once the holder is seen dead (see
        // "Co-holders" in `sync/semaphore/raw.rs`, the same argument and
        // the same fence).
        std::sync::atomic::fence(SeqCst);
        let co = self.co.load(SeqCst);
        co == 0 || !Identity::from_raw(co).is_alive()
    }
}

/// Where the value lives: after the header, on its own cache line.
fn data_offset<T>() -> usize {
    let align = align_of::<T>().max(64);
    size_of::<Header>().div_ceil(align) * align
}

/// A mutual exclusion lock and the value `T` it protects, in shared memory,
/// usable between threads and processes, robust against holders that die.
///
/// `T` must accept any bit pattern ([`FromBytes`]) and have no padding
/// ([`IntoBytes`]): plain numbers, arrays and `#[repr(C)]` structs of them
/// (derive the zerocopy traits), or atomics ([`AtomicsOnly`]).
///
/// # Shared memory: copies, not references
///
/// The value lives in memory that other processes map, and a buggy or
/// hostile one may write it without locking. So the guard gives no `&T` or
/// `&mut T` (a data race through a reference is undefined behaviour): it
/// copies the value out and in ([`MutexGuard::get`], [`MutexGuard::set`],
/// [`MutexGuard::update`]) and lends it in place only when `T` is made of
/// atomics ([`MutexGuard::atomics`]). This replaces the `Deref`/`DerefMut`
/// of earlier versions: `*g` becomes `g.get()?`, `*g += 1` becomes
/// `g.update(|v| *v += 1)?` (each copy checks that no peer truncated the
/// segment: [`Error::Truncated`]). A peer that writes without locking can
/// make the value wrong, never invalid: any bit pattern is a valid `T`.
/// `T`'s destructor never runs on the shared value.
///
/// ```
/// use ipcworks::sync::Mutex;
///
/// # fn main() -> ipcworks::Result<()> {
/// let m = Mutex::anonymous(0u64)?; // or Mutex::create("name", 0u64)
/// m.lock()?.update(|n| *n += 1)?;
/// assert_eq!(m.lock()?.get()?, 1);
/// # Ok(())
/// # }
/// ```
///
/// # Robustness
///
/// When a holder dies, the next locker gets [`LockError::OwnerDead`] with the
/// guard: repair the data, then call [`MutexGuard::make_consistent`].
/// Dropping that guard without doing so makes the mutex not recoverable:
/// every later lock fails with [`Error::NotRecoverable`]. Passing the
/// `OwnerDead` on as an error instead (`m.lock()?`, or `Error::from`)
/// unlocks and leaves the mutex owner-dead: the next locker is told in
/// turn and may repair it. A recoverer that dies before marking it
/// consistent passes `OwnerDead` on to the next locker too. See [the module docs](super) for how death is detected. A child
/// command run under a guard
/// ([`process::spawn_holding`](crate::process::spawn_holding)) holds the
/// lock too: it is taken over only once the holder and the child are both
/// dead.
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
    seg: Named<Header>,
    what: String,
    data_offset: usize,
    _value: PhantomData<T>,
}

// SAFETY: as for `std::sync::Mutex`: the lock hands the value (by copy, or
// `&T` of an AtomicsOnly `T`, which is `Sync`) to one thread at a time, so
// sharing the mutex only needs `T: Send`.
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
    T: FromBytes + IntoBytes + KnownLayout + Send,
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
        let seg = Named::create(&self.seg, name, Layout::of::<T>(), fill(value))?;
        Ok(Mutex::new(seg, ""))
    }

    /// Opens an existing named mutex, checking the segment (owner, mode,
    /// magic, version, and that it holds a value of `T`'s size).
    pub fn open(&self, name: &str) -> Result<Mutex<T>> {
        Mutex::attach(Named::open(&self.seg, name, shm::PUBLISH_WAIT)?, "")
    }

    /// Opens the named mutex, or creates it holding `value` if it does not
    /// exist. Returns the mutex and whether this call created it.
    pub fn open_or_create(&self, name: &str, value: T) -> Result<(Mutex<T>, bool)> {
        match Named::open_or_create(&self.seg, name, Layout::of::<T>(), fill(value))? {
            (seg, true) => Ok((Mutex::new(seg, ""), true)),
            (seg, false) => Ok((Mutex::attach(seg, "")?, false)),
        }
    }

    /// Creates an anonymous mutex (`memfd_create`), shared with child
    /// processes through [`Mutex::inheritable_fd`] and [`Mutex::from_fd`].
    #[doc(alias = "memfd_create")]
    pub fn anonymous(&self, value: T) -> Result<Mutex<T>> {
        let seg = Named::anonymous(&self.seg, Layout::of::<T>(), fill(value))?;
        Ok(Mutex::new(seg, "anonymous mutex"))
    }
}

/// Writes `value` into a fresh mutex's segment, before it is published.
fn fill<T>(value: T) -> impl FnOnce(&Named<Header>) -> Result<()> {
    move |seg| {
        // SAFETY: the segment is ours alone until the magic is published
        // (openers wait for it); it holds `Layout::of::<T>()`, so the
        // value's bytes at `data_offset::<T>()` are in bounds and aligned
        // for `T` (a multiple of its alignment from a page boundary).
        unsafe { (seg.as_ptr().add(data_offset::<T>()) as *mut T).write(value) };
        Ok(())
    }
}

impl<T> Mutex<T>
where
    T: FromBytes + IntoBytes + KnownLayout + Send,
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
        Self::attach(Named::from_fd(fd)?, "inherited mutex")
    }

    /// Removes a named mutex by name (`shm_unlink` of its segment). Handles
    /// already open keep working; the name is free for a new one.
    #[doc(alias = "shm_unlink")]
    pub fn remove(name: &str) -> Result<()> {
        Named::<Header>::remove(name)
    }

    /// A mutex over a published segment that holds a `T`; `unnamed` is
    /// what it is called if it has no name.
    fn new(seg: Named<Header>, unnamed: &str) -> Self {
        let what = match seg.bare_name() {
            Some(bare) => format!("mutex {bare:?}"),
            None => unnamed.to_string(),
        };
        Mutex {
            seg,
            what,
            data_offset: data_offset::<T>(),
            _value: PhantomData,
        }
    }

    /// Checks that an opened mutex holds a value of `T`'s size and place.
    fn attach(seg: Named<Header>, unnamed: &str) -> Result<Self> {
        let (l, want) = (*seg.layout(), Layout::of::<T>());
        if (l.offset, l.size) != (want.offset, want.size) {
            return Err(Error::Refused {
                name: seg.bare_name().unwrap_or("(inherited)").to_string(),
                reason: format!(
                    "it holds a {}-byte value at offset {}, not a {}-byte value at offset {} (a different type)",
                    l.size, l.offset, want.size, want.offset
                ),
            });
        }
        Ok(Self::new(seg, unnamed))
    }

    /// Locks, waiting as long as it takes; `OwnerDead` if the last holder
    /// died holding it.
    ///
    /// Locking a mutex that this thread holds already fails with
    /// [`Error::InvalidArgument`] instead of waiting for ever.
    #[doc(alias = "pthread_mutex_lock")]
    pub fn lock(&self) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::Until(Deadline::Never))
    }

    /// Locks if nobody holds it now, else [`Error::WouldBlock`]. If the
    /// holder is dead, takes over and returns [`LockError::OwnerDead`] (this
    /// costs a read of `/proc` when the lock is held).
    #[doc(alias = "pthread_mutex_trylock")]
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::No)
    }

    /// Locks, waiting at most `timeout`, else [`Error::Timeout`]. Signals
    /// do not cut the wait short. Even a zero timeout looks at the holder
    /// once before giving up, so a dead holder's lock is taken over
    /// ([`LockError::OwnerDead`]) rather than reported as a timeout.
    #[doc(alias = "pthread_mutex_timedlock")]
    pub fn lock_timeout(&self, timeout: Duration) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        self.lock_with(Wait::Until(Deadline::after(timeout)))
    }

    #[inline]
    fn lock_with(&self, wait: Wait) -> Result<MutexGuard<'_, T>, LockError<'_, T>> {
        let co = &self.header().co_holder;
        let r = raw::lock(
            self.state(),
            &WithCoHolder { co },
            Identity::thread().raw(),
            wait,
        );
        let r = match r {
            Ok(Acquired::Consistent) => Ok(self.guard(false)),
            Ok(Acquired::OwnerDead) => {
                // The dead holder's co-holder, if any, was judged dead too.
                co.store(0, SeqCst);
                Err(LockError::OwnerDead(self.guard(true)))
            }
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
        self.seg.header()
    }

    fn state(&self) -> &MutexState {
        &self.header().state
    }

    fn data_ptr(&self) -> *mut T {
        // SAFETY: `data_offset + size_of::<T>()` is within the segment:
        // its layout is `Layout::of::<T>()` (made so by `new`'s callers,
        // checked by `attach`), and `Named` checked the segment's length
        // against its layout.
        unsafe { self.seg.as_ptr().add(self.data_offset) as *mut T }
    }

    /// A duplicate of the segment's descriptor without close-on-exec, for a
    /// child process (see [`Segment::inheritable_fd`](crate::shm::Segment::inheritable_fd)).
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

/// Proof of holding a [`Mutex`]: copies the value in and out while the lock
/// is held; unlocks when dropped.
///
/// # Access: copies, not references
///
/// The value lives in memory that other processes map and a buggy or
/// hostile one may write without locking; a Rust reference (`&T`, `&mut T`)
/// to it would then be a data race, undefined behaviour. So the guard
/// copies (earlier versions dereferenced to `&T`/`&mut T`; these methods
/// replace `*guard`, `guard.field` and `*guard = v`):
///
/// - [`get`](Self::get) copies the value out, [`set`](Self::set) copies a
///   value in, [`update`](Self::update) does both around a closure that
///   works on the copy: `g.update(|v| *v += 1)`;
/// - [`atomics`](Self::atomics) lends `&T` in place, only for types made
///   entirely of atomics ([`AtomicsOnly`]), which tolerate other writers;
/// - [`as_ptr`](Self::as_ptr) is the raw escape hatch (unsafe to use), and
///   [`as_mut_unchecked`](Self::as_mut_unchecked) an `unsafe` `&mut T` for
///   peers you trust.
///
/// A copy is one `memcpy` of `size_of::<T>()` bytes, about what reading the
/// fields through a reference costs; for large values, copy only what you
/// need through `as_ptr`.
///
/// Not `Send`: the lock is recorded as held by this thread, and a thread
/// that exits while holding it counts as a dead holder.
///
/// ```compile_fail,E0614
/// # fn main() -> ipcworks::Result<()> {
/// let m = ipcworks::sync::Mutex::anonymous(0u64)?;
/// let g = m.lock()?;
/// let n: u64 = *g; // no Deref: use `g.get()`
/// # Ok(())
/// # }
/// ```
///
/// ```compile_fail,E0608
/// # fn main() -> ipcworks::Result<()> {
/// let m = ipcworks::sync::Mutex::anonymous([0u64; 2])?;
/// let mut g = m.lock()?;
/// g[0] = 1; // no DerefMut: use `g.update(|v| v[0] = 1)`
/// # Ok(())
/// # }
/// ```
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
    owner_dead: bool,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard copies the value out (any number of threads may
// read at once) or lends `&T` of an AtomicsOnly `T`, which is `Sync`.
unsafe impl<T: Send + Sync> Sync for MutexGuard<'_, T> {}

impl<T> MutexGuard<'_, T> {
    /// Marks the data consistent after [`LockError::OwnerDead`], once it has
    /// been inspected and repaired; later lockers proceed normally.
    #[doc(alias = "pthread_mutex_consistent")]
    pub fn make_consistent(&mut self) {
        raw::make_consistent(self.mutex.state());
        self.owner_dead = false;
    }

    /// Unlocks after an `OwnerDead` without repairing and without
    /// retiring the mutex: its state stays owner-dead, so the next locker
    /// is told, as if this one had never locked. Returns what the mutex
    /// is called.
    fn pass_on(mut self) -> String {
        // Not `owner_dead`: the drop releases without marking the mutex
        // not recoverable (the state word keeps OWNER_DEAD).
        self.owner_dead = false;
        self.mutex.what.clone()
    }

    /// Whether the data is consistent: `false` after an `OwnerDead` until
    /// [`make_consistent`](Self::make_consistent).
    pub fn is_consistent(&self) -> bool {
        !self.owner_dead
    }

    /// The value's address in the shared segment (aligned for `T`), valid
    /// for reads and writes of `size_of::<T>()` bytes while the guard lives.
    ///
    /// Getting the pointer is safe; using it is `unsafe` and up to you.
    /// Read and write through it with `ptr::read`/`ptr::write`,
    /// `copy_nonoverlapping` or the volatile variants, never through a
    /// reference you keep: another process may write these bytes at any
    /// time (a correct one only under the lock), which Rust references
    /// cannot express.
    pub fn as_ptr(&self) -> *mut T {
        self.mutex.data_ptr()
    }

    /// The value in place, as `&mut T`, without copying.
    ///
    /// # Safety
    ///
    /// No other process (or thread) may read or write the value while the
    /// returned reference lives. Peers that only touch the value while
    /// holding this mutex never do; a peer that writes without the lock
    /// (buggy or hostile) makes this undefined behaviour in *this* process.
    /// Use it only when every process mapping the mutex is trusted; prefer
    /// [`get`](Self::get)/[`set`](Self::set)/[`update`](Self::update).
    pub unsafe fn as_mut_unchecked(&mut self) -> &mut T {
        // SAFETY: in bounds and aligned (`data_ptr`), and any bytes
        // are a valid `T` (`FromBytes`, required to create or open the
        // mutex); exclusive access is the caller's promise; `&mut self`
        // makes it the only reference through this guard.
        unsafe { &mut *self.mutex.data_ptr() }
    }
}

impl<T: FromBytes + IntoBytes> MutexGuard<'_, T> {
    /// Copies the value out of shared memory.
    ///
    /// A peer that writes without holding the lock can make the copy a mix
    /// of its bytes and the old ones: a wrong value, never an invalid one
    /// (any bytes are a valid `T`). A peer that truncated the segment makes
    /// it [`Error::Truncated`]: the copy read zeros, not the value.
    pub fn get(&self) -> Result<T> {
        let mut value = T::new_zeroed();
        // SAFETY: the source is the value's `size_of::<T>()` bytes in the
        // mapping (in bounds: `data_ptr`), read as raw bytes, so no
        // reference to shared memory is formed; the destination is our own
        // `value`, whose every byte pattern is a valid `T` (`FromBytes`).
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.mutex.data_ptr() as *const u8,
                (&mut value as *mut T).cast::<u8>(),
                size_of::<T>(),
            )
        };
        // After the copy, before handing it out: zeros read from a page a
        // peer truncated away are not the value.
        self.mutex.seg.check_intact()?;
        Ok(value)
    }

    /// Copies `value` into shared memory. `value` moves into the segment:
    /// its destructor does not run (nor does the old value's). A peer that
    /// truncated the segment makes it [`Error::Truncated`]: the value went
    /// to zero pages of ours, not to the mutex.
    pub fn set(&mut self, value: T) -> Result<()> {
        let value = std::mem::ManuallyDrop::new(value);
        // SAFETY: the source is our own `value`, all of whose bytes are
        // initialized (`IntoBytes`: no padding); the destination is the
        // value's `size_of::<T>()` bytes in the mapping, written as raw
        // bytes, so no reference to shared memory is formed.
        unsafe {
            std::ptr::copy_nonoverlapping(
                (&*value as *const T).cast::<u8>(),
                self.mutex.data_ptr() as *mut u8,
                size_of::<T>(),
            )
        };
        self.mutex.seg.check_intact()
    }

    /// Copies the value out, lets `f` change the copy, and copies it back;
    /// returns what `f` returns. If `f` panics, the shared value stays as it
    /// was (and the lock is released as the guard drops). Fails like
    /// [`get`](Self::get) and [`set`](Self::set) on a truncated segment
    /// (then `f` does not run).
    ///
    /// ```
    /// # fn main() -> ipcworks::Result<()> {
    /// let m = ipcworks::sync::Mutex::anonymous([0u64; 2])?;
    /// let mut g = m.lock()?;
    /// let total = g.update(|[a, b]| {
    ///     *a += 30;
    ///     *b += 12;
    ///     *a + *b
    /// })?;
    /// assert_eq!((total, g.get()?), (42, [30, 12]));
    /// # Ok(())
    /// # }
    /// ```
    pub fn update<R>(&mut self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let mut value = self.get()?;
        let r = f(&mut value);
        self.set(value)?;
        Ok(r)
    }
}

impl<T: AtomicsOnly> MutexGuard<'_, T> {
    /// The value in place, for a type made entirely of atomics: each field
    /// is read and written with atomic operations, which stay sound while
    /// other processes write the same memory.
    ///
    /// Holding the lock still matters for invariants between fields (a
    /// peer that keeps to the lock never sees them half-updated); each
    /// atomic on its own needs no lock.
    pub fn atomics(&self) -> &T {
        // SAFETY: in bounds and aligned (`data_ptr`); `T: AtomicsOnly`
        // puts every byte inside an atomic, which tolerates concurrent
        // writers from any process, and accepts any bytes.
        unsafe { &*self.mutex.data_ptr() }
    }
}

impl<T> crate::process::child::sealed::Sealed for MutexGuard<'_, T> {
    fn co_holder(&self) -> &AtomicU64 {
        &self.mutex.header().co_holder
    }
}

/// A child command can hold the lock together with this guard's thread:
/// see [`process::spawn_holding`](crate::process::spawn_holding).
impl<T> crate::process::Hold for MutexGuard<'_, T> {}

impl<T> Drop for MutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // A co-holder's runner clears it after reaping the child; one left
        // by a leaked runner must not outlive the lock.
        let co = &self.mutex.header().co_holder;
        if co.load(Relaxed) != 0 {
            co.store(0, SeqCst);
        }
        if self.owner_dead {
            raw::give_up(self.mutex.state(), &Kernel);
        } else {
            raw::release(self.mutex.state(), &Kernel, false);
        }
    }
}

impl<T: FromBytes + IntoBytes + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MutexGuard")
            .field("value", &self.get())
            .field("consistent", &self.is_consistent())
            .finish()
    }
}

/// Why [`Mutex::lock`] did not simply succeed.
pub enum LockError<'a, T> {
    /// The lock is held, but its previous holder died holding it: repair the
    /// value and call [`MutexGuard::make_consistent`]. Dropping the guard
    /// unrepaired makes the mutex not recoverable; turning this into an
    /// [`Error`] (`?`) leaves it owner-dead for the next locker.
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

/// `?` turns [`LockError::OwnerDead`] into [`Error::OwnerDead`], and
/// unlocks leaving the mutex owner-dead: a `m.lock()?` that meets a dead
/// holder does not brick a persistent mutex, the next locker is told
/// `OwnerDead` in turn and may repair it. (Dropping the guard itself,
/// unrepaired, still makes the mutex not recoverable.) Match on `OwnerDead`
/// where the data can be repaired.
///
/// Changed in this version: the conversion used to drop the guard
/// unrepaired, which made the mutex not recoverable for everyone.
impl<T> From<LockError<'_, T>> for Error {
    fn from(e: LockError<'_, T>) -> Error {
        match e {
            LockError::OwnerDead(g) => Error::OwnerDead { what: g.pass_on() },
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
