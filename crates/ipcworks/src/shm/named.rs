//! [`Named`]: an ipcworks object in a segment of its own — a typed header
//! of atomics at the start of a named (`/dev/shm/ipcworks.KIND.NAME`) or
//! anonymous (`memfd`) segment. The channel, the native queue, the mutex
//! and the semaphore are each one [`Header`] implementation; everything
//! else about living in a segment is done here, once:
//!
//! - the segment's name: the kind's [`Header::PREFIX`] and the user's
//!   name, checked ([`crate::name::validate`]);
//! - creating (exclusive, exact mode, sized for the object's
//!   [`Header::Layout`]), opening (the segment's checks: a regular file,
//!   not a symlink, owned by this user, no looser mode than asked; see
//!   [`SegmentOptions::open`]), opening or creating, anonymous segments,
//!   inherited descriptors, removing by name; errors about the name speak
//!   of the object ("mutex \"jobs\" does not exist"), not of its segment;
//! - publication: the creator fills in the header, then writes its
//!   `magic` last (`Release`); an opener waits for it (briefly), refuses
//!   what is not this kind of object, an older layout, or a version it
//!   does not know, then reads the layout back and checks it against the
//!   segment's length;
//! - the one cast of the segment's first bytes to the header;
//! - truncation: the segment is checked after the header is read, and
//!   [`Named::checked`] turns a result computed from a truncated segment
//!   into [`Error::Truncated`].

use std::fmt;
use std::ops::Deref;
use std::os::fd::OwnedFd;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use super::{Segment, SegmentOptions};
use crate::{Error, Result, name};

/// How long an opener waits by default for the creator to publish.
pub(crate) const PUBLISH_WAIT: Duration = Duration::from_secs(1);

/// The header at the start of an object's segment, and what the helper
/// needs to know about the object's kind.
///
/// # Safety
///
/// The implementing type is `#[repr(C)]`, aligned to at most a page, and
/// made of atomics only: every bit pattern is a valid value, and other
/// processes may write it at any time. [`magic`](Self::magic) returns the
/// header's first eight bytes (where `ipcworks ls` looks for it).
pub(crate) unsafe trait Header: Sized {
    /// Prefix of a named object's segment in `/dev/shm` (`ipcworks.mutex.`).
    const PREFIX: &'static str;
    /// What the object is called in errors (`mutex`, `semaphore`, …).
    const KIND: &'static str;
    /// Its address prefix in `ipcworks ls` and `rm` (`mutex`, `sem`, …),
    /// for the hint that tells how to remove an outdated one.
    const ADDRESS: &'static str;
    /// The magic of the current layout, written last by the creator.
    const MAGIC: u64;
    /// Magics of older layouts, refused with a message that says so.
    const OLD_MAGICS: &'static [u64] = &[];
    /// The layout version in the header.
    const VERSION: u64;
    /// What the creator chooses and openers read back: the object's
    /// geometry, checked.
    type Layout: Copy + fmt::Debug;

    /// Bytes of segment an object of `layout` needs (at least the header).
    fn size(layout: &Self::Layout) -> usize;
    /// The magic word.
    fn magic(&self) -> &AtomicU64;
    /// The layout version the header claims.
    fn version(&self) -> u64;
    /// Fills in a fresh (zeroed) header for `layout`, all but the magic.
    fn init(&self, layout: &Self::Layout) -> Result<()>;
    /// Reads the layout back from a published header, in a segment of
    /// `len` bytes, and checks it: an error for anything a correct creator
    /// does not write.
    fn validate(&self, len: usize) -> Result<Self::Layout>;
}

/// An object of kind `H` in a segment of its own, its header published and
/// checked (see the [module docs](self)). Derefs to its [`Segment`].
pub(crate) struct Named<H: Header> {
    seg: Segment,
    layout: H::Layout,
}

impl<H: Header> fmt::Debug for Named<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Named")
            .field("segment", &self.seg.name())
            .field("layout", &self.layout)
            .finish()
    }
}

impl<H: Header> Deref for Named<H> {
    type Target = Segment;

    fn deref(&self) -> &Segment {
        &self.seg
    }
}

impl<H: Header> Named<H> {
    /// The user's name without its leading `/`, and the segment's name.
    pub(crate) fn names(name: &str) -> Result<(&str, String)> {
        let bare = name::validate(name)?;
        Ok((bare, format!("{}{bare}", H::PREFIX)))
    }

    /// Creates the named object `name` (exclusive; [`Error::AlreadyExists`]
    /// if the name is taken) with the mode and persistence of `opts`:
    /// the header for `layout`, then `fill` (the object's own
    /// initialization beside the header), then the magic.
    pub(crate) fn create(
        opts: &SegmentOptions,
        name: &str,
        layout: H::Layout,
        fill: impl FnOnce(&Self) -> Result<()>,
    ) -> Result<Self> {
        let (bare, full) = Self::names(name)?;
        let seg = sized::<H>(opts, &layout)
            .create(&full)
            .map_err(|e| rename::<H>(e, bare))?;
        Self::publish(seg, layout, fill)
    }

    /// Creates an anonymous object (`memfd`, sealed): as
    /// [`create`](Self::create), with no name.
    pub(crate) fn anonymous(
        opts: &SegmentOptions,
        layout: H::Layout,
        fill: impl FnOnce(&Self) -> Result<()>,
    ) -> Result<Self> {
        Self::publish(sized::<H>(opts, &layout).anonymous()?, layout, fill)
    }

    /// Opens the named object `name` after the segment's checks (with
    /// `opts`'s mode), waiting up to `wait` for its creator to publish it.
    pub(crate) fn open(opts: &SegmentOptions, name: &str, wait: Duration) -> Result<Self> {
        let (bare, full) = Self::names(name)?;
        let seg = opts.open(&full).map_err(|e| rename::<H>(e, bare))?;
        Self::check(seg, Some(bare), wait)
    }

    /// Opens the named object, or creates it as [`create`](Self::create)
    /// does. Returns it and whether this call created it.
    pub(crate) fn open_or_create(
        opts: &SegmentOptions,
        name: &str,
        layout: H::Layout,
        fill: impl FnOnce(&Self) -> Result<()>,
    ) -> Result<(Self, bool)> {
        let mut fill = Some(fill);
        name::open_or_create(
            "shm_open",
            || Self::create(opts, name, layout, |n| fill.take().map_or(Ok(()), |f| f(n))),
            || Self::open(opts, name, PUBLISH_WAIT),
        )
    }

    /// Maps an object from a descriptor inherited from its creator (or
    /// received over a socket), which published it before handing it out.
    pub(crate) fn from_fd(fd: OwnedFd) -> Result<Self> {
        Self::check(Segment::from_fd(fd)?, None, Duration::ZERO)
    }

    /// Removes the named object `name` (`shm_unlink` of its segment);
    /// processes that have it open keep using it.
    pub(crate) fn remove(name: &str) -> Result<()> {
        let (bare, full) = Self::names(name)?;
        Segment::remove(&full).map_err(|e| rename::<H>(e, bare))
    }

    /// The user's name of a named object (its segment's name without the
    /// prefix); `None` when anonymous or inherited.
    pub(crate) fn bare_name(&self) -> Option<&str> {
        self.seg.name().and_then(|n| n.strip_prefix(H::PREFIX))
    }

    /// Keeps the name after this handle is dropped.
    pub(crate) fn persist(&mut self) {
        self.seg.persist();
    }

    /// Removes the name now (`shm_unlink`); the object stays usable
    /// through the handles that have it open.
    pub(crate) fn unlink(&mut self) -> Result<()> {
        let bare = self.bare_name().unwrap_or_default().to_string();
        self.seg.unlink().map_err(|e| rename::<H>(e, &bare))
    }

    /// The header.
    #[inline]
    pub(crate) fn header(&self) -> &H {
        // SAFETY: every `Named` was checked by `publish` or `check` to have
        // at least `size_of::<H>()` bytes.
        unsafe { header(&self.seg) }
    }

    /// The layout, as created or as read back and checked; the segment
    /// has at least [`Header::size`] of it bytes.
    #[inline]
    pub(crate) fn layout(&self) -> &H::Layout {
        &self.layout
    }

    /// `r`, unless the segment was found truncated meanwhile: then
    /// [`Error::Truncated`], whatever `r` says (it was computed from zeros
    /// of ours, not from the object). One relaxed load on success.
    #[inline]
    pub(crate) fn checked<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => self.seg.check_intact().map(|()| v),
            Err(e) => Err(self.seg.explain(e)),
        }
    }

    /// Fills in a fresh segment and publishes it: header, `fill`, magic.
    fn publish(
        seg: Segment,
        layout: H::Layout,
        fill: impl FnOnce(&Self) -> Result<()>,
    ) -> Result<Self> {
        if seg.len() < H::size(&layout) || seg.len() < size_of::<H>() {
            return Err(Error::corrupted("a fresh segment is smaller than asked"));
        }
        let n = Self { seg, layout };
        n.header().init(&layout)?;
        fill(&n)?;
        // Last: openers wait for this.
        n.header().magic().store(H::MAGIC, Release);
        n.seg.check_intact()?;
        Ok(n)
    }

    /// Checks an opened segment's header before use (`bare`: the user's
    /// name of the object, `None` for an inherited one).
    fn check(seg: Segment, bare: Option<&str>, wait: Duration) -> Result<Self> {
        let refuse = |reason: String| Error::Refused {
            name: bare.unwrap_or("(inherited)").to_string(),
            reason,
        };
        if seg.len() < size_of::<H>() {
            return Err(refuse(format!(
                "its segment has {} bytes, too few for an ipcworks {}",
                seg.len(),
                H::KIND
            )));
        }
        // SAFETY: at least `size_of::<H>()` bytes, checked above.
        let h = unsafe { header::<H>(&seg) };
        let hint = || match bare {
            Some(bare) => format!(
                "remove it (`ipcworks rm {}:{bare}`) and create it again",
                H::ADDRESS
            ),
            None => "remove it and create it again".to_string(),
        };
        let magic = h.magic().load(Acquire);
        if let Some(v) = H::OLD_MAGICS.iter().position(|&m| m == magic) {
            return Err(refuse(format!(
                "it was made by an older ipcworks ({} layout {}, this build uses {}): {}",
                H::KIND,
                v + 1,
                H::VERSION,
                hint()
            )));
        }
        await_magic(h.magic(), H::MAGIC, H::KIND, wait).map_err(refuse)?;
        let version = h.version();
        if version != H::VERSION {
            let older = match version < H::VERSION {
                true => format!(" (made by an older ipcworks: {})", hint()),
                false => String::new(),
            };
            return Err(refuse(format!(
                "it has layout version {version}, this build knows {}{older}",
                H::VERSION
            )));
        }
        let layout = h.validate(seg.len())?;
        let need = H::size(&layout);
        if need > seg.len() {
            return Err(Error::corrupted(format!(
                "{} header says it needs {need} bytes, its segment has {}",
                H::KIND,
                seg.len()
            )));
        }
        // A cut while we read the header: those values were zeros of ours.
        seg.check_intact()?;
        Ok(Self { seg, layout })
    }
}

/// The one cast of a segment's first bytes to its header.
///
/// # Safety
///
/// `seg` has at least `size_of::<H>()` bytes.
#[inline]
unsafe fn header<H: Header>(seg: &Segment) -> &H {
    debug_assert!(seg.len() >= size_of::<H>());
    // SAFETY: at least `size_of::<H>()` bytes (the caller's promise); the
    // mapping is page-aligned and `H` is aligned to at most a page; it
    // lives as long as `seg`; `H` is atomics only (the `Header` contract),
    // valid for any bits and for writers in other processes.
    unsafe { &*(seg.as_ptr() as *const H) }
}

/// `opts` sized for an object of `layout`.
fn sized<H: Header>(opts: &SegmentOptions, layout: &H::Layout) -> SegmentOptions {
    let mut o = opts.clone();
    o.size(H::size(layout));
    o
}

/// Segment errors in the object's terms: what is missing or taken is the
/// object `bare`, not its segment.
fn rename<H: Header>(e: Error, bare: &str) -> Error {
    match e {
        Error::NotFound { .. } => Error::NotFound {
            kind: H::KIND,
            name: bare.to_string(),
        },
        Error::AlreadyExists { .. } => Error::AlreadyExists {
            kind: H::KIND,
            name: bare.to_string(),
        },
        other => other,
    }
}

/// Waits up to `wait` for the creator of an object to publish it (write
/// its `magic` word last, with release ordering), then checks what it is.
/// Returns the reason to refuse the object, in plain words, when the magic
/// never came or is not `want` (`kind` names what was expected).
fn await_magic(
    magic: &AtomicU64,
    want: u64,
    kind: &str,
    wait: Duration,
) -> std::result::Result<(), String> {
    let start = Instant::now();
    let found = loop {
        let m = magic.load(Acquire);
        if m != 0 || start.elapsed() >= wait {
            break m;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    match found {
        0 => Err(
            "it was never initialized: its creator is slow or died while creating it; remove it"
                .into(),
        ),
        m if m != want => Err(format!("it is not an ipcworks {kind} (magic {m:#018x})")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use super::*;

    /// A kind made for these tests: a magic, a version, and a length.
    #[repr(C)]
    struct Probe {
        magic: AtomicU64,
        version: AtomicU64,
        len: AtomicU64,
    }

    // SAFETY: `#[repr(C)]`, atomics only, `magic` first.
    unsafe impl Header for Probe {
        const PREFIX: &'static str = "ipcworks-test-probe.";
        const KIND: &'static str = "probe";
        const ADDRESS: &'static str = "probe";
        const MAGIC: u64 = u64::from_le_bytes(*b"ipcwPRB2");
        const OLD_MAGICS: &'static [u64] = &[u64::from_le_bytes(*b"ipcwPRB1")];
        const VERSION: u64 = 2;
        type Layout = usize;

        fn size(len: &usize) -> usize {
            *len
        }

        fn magic(&self) -> &AtomicU64 {
            &self.magic
        }

        fn version(&self) -> u64 {
            self.version.load(Relaxed)
        }

        fn init(&self, len: &usize) -> Result<()> {
            self.version.store(Self::VERSION, Relaxed);
            self.len.store(*len as u64, Relaxed);
            Ok(())
        }

        fn validate(&self, _len: usize) -> Result<usize> {
            Ok(self.len.load(Relaxed) as usize)
        }
    }

    fn name(what: &str) -> String {
        format!("{}-{what}", std::process::id())
    }

    /// Another mapping of `n`'s segment, to write its header as a peer
    /// would.
    fn peer(n: &Named<Probe>) -> Segment {
        Segment::from_fd(n.inheritable_fd().unwrap()).unwrap()
    }

    fn refusal(r: Result<Named<Probe>>) -> String {
        match r {
            Err(Error::Refused { reason, .. }) => reason,
            other => panic!("expected Refused, got {other:?}"),
        }
    }

    #[test]
    fn create_open_and_errors_in_the_objects_terms() {
        let opts = SegmentOptions::new();
        let n = name("a");
        let made = Named::<Probe>::create(&opts, &n, 100, |_| Ok(())).unwrap();
        assert_eq!(
            made.name(),
            Some(format!("ipcworks-test-probe.{n}").as_str())
        );
        assert_eq!(made.bare_name(), Some(n.as_str()));
        let opened = Named::<Probe>::open(&opts, &format!("/{n}"), PUBLISH_WAIT).unwrap();
        assert_eq!(*opened.layout(), 100);
        assert!(matches!(
            Named::<Probe>::create(&opts, &n, 100, |_| Ok(())),
            Err(Error::AlreadyExists { kind: "probe", name }) if name == n
        ));
        let (again, created) = Named::<Probe>::open_or_create(&opts, &n, 1, |_| Ok(())).unwrap();
        assert!(!created && *again.layout() == 100);
        drop((made, opened, again));
        assert!(matches!(
            Named::<Probe>::open(&opts, &n, PUBLISH_WAIT),
            Err(Error::NotFound { kind: "probe", name }) if name == n
        ));
        assert!(matches!(
            Named::<Probe>::remove(&n),
            Err(Error::NotFound { kind: "probe", .. })
        ));
        // `fill` runs before the magic is written, and its error is the call's.
        let e = Named::<Probe>::anonymous(&opts, 64, |n| {
            assert_eq!(n.header().magic.load(Relaxed), 0);
            Err(Error::WouldBlock)
        });
        assert!(matches!(e, Err(Error::WouldBlock)));
    }

    #[test]
    fn an_opener_waits_for_the_magic_then_refuses_what_is_not_this_kind() {
        let n = Named::<Probe>::anonymous(&SegmentOptions::new(), 64, |_| Ok(())).unwrap();
        let peer = peer(&n);
        // SAFETY: the segment is at least a page; test-only header writes.
        let h = unsafe { &*(peer.as_ptr() as *const Probe) };
        let check =
            |wait| Named::<Probe>::check(Segment::from_fd(n.inheritable_fd()?)?, Some("x"), wait);
        // Unpublished: waited for, then refused.
        h.magic.store(0, Relaxed);
        let start = Instant::now();
        assert!(refusal(check(Duration::from_millis(50))).contains("never initialized"));
        assert!(start.elapsed() >= Duration::from_millis(50));
        // Published while the opener waits.
        let publisher = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(30));
            h.magic.store(Probe::MAGIC, Release);
            peer
        });
        assert!(check(Duration::from_secs(10)).is_ok());
        let peer = publisher.join().unwrap();
        // SAFETY: as above.
        let h = unsafe { &*(peer.as_ptr() as *const Probe) };
        h.magic.store(7, Relaxed);
        assert!(refusal(check(Duration::ZERO)).contains("not an ipcworks probe"));
        h.magic.store(u64::from_le_bytes(*b"ipcwPRB1"), Relaxed);
        let r = refusal(check(Duration::ZERO));
        assert!(
            r.contains("older ipcworks (probe layout 1") && r.contains("`ipcworks rm probe:x`"),
            "{r}"
        );
        h.magic.store(Probe::MAGIC, Relaxed);
        h.version.store(1, Relaxed);
        let r = refusal(check(Duration::ZERO));
        assert!(
            r.contains("layout version 1") && r.contains("ipcworks rm probe:x"),
            "{r}"
        );
        h.version.store(3, Relaxed);
        let r = refusal(check(Duration::ZERO));
        assert!(
            r.contains("layout version 3") && !r.contains("older"),
            "{r}"
        );
        // A layout larger than the segment is corruption, not a read
        // past its end.
        h.version.store(2, Relaxed);
        h.len.store(1 << 20, Relaxed);
        assert!(matches!(
            check(Duration::ZERO),
            Err(Error::Corrupted { .. })
        ));
        h.len.store(64, Relaxed);
        assert!(check(Duration::ZERO).is_ok());
        // A segment too small for the header is refused before any cast.
        let tiny = Segment::anonymous(size_of::<Probe>() - 1).unwrap();
        assert!(refusal(Named::<Probe>::check(tiny, None, Duration::ZERO)).contains("too few"));
    }
}
