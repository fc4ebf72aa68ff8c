//! A `SIGBUS` handler that survives shared memory another process
//! truncated: raw `sigaction(2)`, `mmap(2)` and nothing else.
//!
//! Reading or writing a page of a `MAP_SHARED` mapping that lies past the
//! end of its file (another process called `ftruncate` on it) makes the
//! kernel send `SIGBUS` (`si_code` `BUS_ADRERR`), whose default action
//! kills the process. Named segments cannot be sealed against shrinking
//! (only `memfd`s can), so any process with write access to
//! `/dev/shm/NAME` can do that to every other user of the segment.
//!
//! [`install`] sets a handler that asks its owner ([`Claim`], given once)
//! whether the faulting address lies in one of *its* mappings. If so, it
//! maps private zero pages over the rest of that mapping, from the
//! faulting page on (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`), and
//! returns: the faulting instruction runs again and completes on the zero
//! page, and the owner, which marked the mapping broken in its claim,
//! turns the next check into an error. Every other `SIGBUS` goes where it
//! would have gone without us:
//!
//! - to the handler installed before ours (`SA_SIGINFO` or not), called
//!   with the same arguments — the application's, or std's, which Rust
//!   programs have from start-up to report stack overflows;
//! - with the default disposition before ours: the default is restored and
//!   the process dies of the same `SIGBUS` (a fault is left to happen
//!   again on return, with its address; a signal sent with `kill` is
//!   raised again);
//! - ignored before ours: ignored, except for a fault, which the kernel
//!   never lets a process ignore.
//!
//! std's handler resets `SIGBUS` to the default and returns when the
//! signal is not a stack overflow: for a fault the process then dies of
//! it, as without us; for a signal sent with `kill` it lives on, and our
//! handler puts itself back (the previous disposition counting as the
//! default from then on), so a later truncation is still caught.
//!
//! Not `signal-hook`: its registry calls the previously installed handler
//! *before* its own, and std's would disarm us first.
//!
//! # Async-signal safety
//!
//! The handler reads atomics and the previous `sigaction`, written before
//! ours was installed; it calls `sigaction`, `raise` (both on POSIX's
//! async-signal-safe list) and `mmap` (a single system call in glibc and
//! musl, no lock); it keeps `errno` as it found it. The claim it calls
//! must do no more (see [`Claim`]).
//!
//! # Limits
//!
//! - An application that installs its own `SIGBUS` handler *after* the
//!   first segment is mapped replaces ours; it should chain to the
//!   handler `sigaction` hands back to keep truncation an error.
//! - Faults the kernel takes on our behalf inside a system call (a
//!   `futex` word on a truncated page, `write` from a truncated buffer)
//!   are not signals: the call fails with `EFAULT`, which callers handle.
//! - If the kernel refuses the zero pages (`mmap` fails: out of memory, or
//!   the process is at `vm.max_map_count` mappings), the fault is passed
//!   on like a foreign one, and the process dies of it.
//!
//! # References
//!
//! - [`sigaction(2)`](https://man7.org/linux/man-pages/man2/sigaction.2.html)
//! - [`mmap(2)`](https://man7.org/linux/man-pages/man2/mmap.2.html), `SIGBUS`
//! - [`signal-safety(7)`](https://man7.org/linux/man-pages/man7/signal-safety.7.html)

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

use rustix::io::Errno;

/// `si_code` of a `SIGBUS` for an access to an address with no backing
/// (`<asm-generic/siginfo.h>`; the libc crate does not export it).
const BUS_ADRERR: libc::c_int = 2;

/// Asks the owner of the mappings whether `addr` lies in one of them; if
/// so, it marks that mapping broken and returns its bounds
/// `(start, end)`. Called from the signal handler: it must be
/// async-signal-safe — atomics only, no allocation, no lock, no panic.
pub(crate) type Claim = fn(addr: usize) -> Option<(usize, usize)>;

/// A `sigaction` written once, before our handler can run, and read by it.
struct Action(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: written only while `READY` is false, by the one thread that
// installs (under `INSTALLED`'s once-initialization); read only after
// `READY` is seen true with Acquire, which orders the write before.
unsafe impl Sync for Action {}

/// The disposition of `SIGBUS` before ours.
static PREVIOUS: Action = Action(UnsafeCell::new(MaybeUninit::uninit()));
/// Ours, to put back after a previous handler removed it.
static OURS: Action = Action(UnsafeCell::new(MaybeUninit::uninit()));
/// `PREVIOUS` and `OURS` are written.
static READY: AtomicBool = AtomicBool::new(false);
/// The previous handler uninstalled itself (std's does): treat the
/// previous disposition as the default from now on.
static PREVIOUS_IS_DEFAULT: AtomicBool = AtomicBool::new(false);
/// The owner's [`Claim`] (null: none).
static CLAIM: AtomicPtr<()> = AtomicPtr::new(std::ptr::null_mut());
/// The page size, read once outside the handler.
static PAGE: AtomicUsize = AtomicUsize::new(0);
static INSTALLED: OnceLock<Result<(), Errno>> = OnceLock::new();

/// Installs the handler (once per process; later calls return the first
/// call's result) with `claim` deciding which faults are ours.
///
/// `sigaction(SIGBUS, {on_sigbus, SA_SIGINFO | SA_ONSTACK, …}, &previous)`:
/// `SA_ONSTACK` so that a fault on a thread with an alternate signal stack
/// (std gives one to every thread it starts) runs there, as std's own
/// handler does; the previous handler's mask and `SA_RESTART` are kept.
pub(crate) fn install(claim: Claim) -> Result<(), Errno> {
    *INSTALLED.get_or_init(|| {
        PAGE.store(rustix::param::page_size(), Ordering::Relaxed);
        CLAIM.store(claim as *mut (), Ordering::Release);
        // SAFETY: `previous` is written by the kernel before it is read;
        // `PREVIOUS` and `OURS` are written before `READY` is set and
        // before our handler is installed (see `Action`); the handler
        // itself is async-signal-safe (module docs).
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return Err(Errno::from_raw_os_error(errno()));
            }
            let mut ours: libc::sigaction = std::mem::zeroed();
            ours.sa_sigaction =
                on_sigbus as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) as usize;
            ours.sa_flags =
                libc::SA_SIGINFO | libc::SA_ONSTACK | (previous.sa_flags & libc::SA_RESTART);
            ours.sa_mask = previous.sa_mask;
            (*PREVIOUS.0.get()).write(previous);
            (*OURS.0.get()).write(ours);
            READY.store(true, Ordering::Release);
            // Another thread may change the disposition between the two
            // calls; the one this call replaces is the previous one.
            let mut replaced: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &ours, &mut replaced) != 0 {
                return Err(Errno::from_raw_os_error(errno()));
            }
            if replaced.sa_sigaction != previous.sa_sigaction {
                // Narrow race with another installer: record the handler
                // we actually replaced (a foreign SIGBUS in between went
                // to the one seen a moment earlier).
                READY.store(false, Ordering::Release);
                (*PREVIOUS.0.get()).write(replaced);
                READY.store(true, Ordering::Release);
            }
        }
        Ok(())
    })
}

fn errno() -> libc::c_int {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() }
}

fn set_errno(v: libc::c_int) {
    // SAFETY: as in `errno`.
    unsafe { *libc::__errno_location() = v };
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    let saved = errno();
    if info.is_null() || !take_ours(info) {
        pass_on(sig, info, ctx);
    }
    set_errno(saved);
}

/// Whether the signal is a fault on one of the owner's mappings, now
/// replaced by zero pages from the faulting page to the mapping's end.
fn take_ours(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: the kernel hands an SA_SIGINFO handler a valid siginfo; for
    // a SIGBUS with a fault code, si_addr is the faulting address.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    if code != BUS_ADRERR {
        return false;
    }
    let claim = CLAIM.load(Ordering::Acquire);
    if claim.is_null() {
        return false;
    }
    // SAFETY: CLAIM holds only a `Claim` stored by `install`.
    let claim: Claim = unsafe { std::mem::transmute::<*mut (), Claim>(claim) };
    let Some((start, end)) = claim(addr) else {
        return false;
    };
    let page = PAGE.load(Ordering::Relaxed);
    let from = (addr & !(page - 1)).max(start);
    let to = end.div_ceil(page) * page;
    if from >= to {
        return false;
    }
    // SAFETY: [from, to) lies within one live mapping of the owner (its
    // claim says so, and mappings are page-granular); MAP_FIXED replaces
    // exactly those pages, which the owner no longer trusts, with private
    // zero pages. No Rust reference covers that memory (the owner accesses
    // it through raw pointers and atomics only).
    let p = unsafe {
        libc::mmap(
            from as *mut c_void,
            to - from,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    p != libc::MAP_FAILED
}

/// Hands a signal that is not ours to the previous disposition.
fn pass_on(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // A fault happens again when the instruction does; a signal somebody
    // sent (si_code <= 0: SI_USER, SI_TKILL, SI_QUEUE) does not.
    // SAFETY: as in `take_ours`.
    let fault = !info.is_null() && unsafe { (*info).si_code } > 0;
    let previous = (READY.load(Ordering::Acquire) && !PREVIOUS_IS_DEFAULT.load(Ordering::Acquire))
        // SAFETY: READY (Acquire) says PREVIOUS is written (see `Action`).
        .then(|| unsafe { (*PREVIOUS.0.get()).assume_init_read() });
    let handler = previous.map_or(libc::SIG_DFL, |p| p.sa_sigaction);
    if handler == libc::SIG_DFL || (handler == libc::SIG_IGN && fault) {
        // SAFETY: sigaction and raise are async-signal-safe; the struct
        // is zeroed (SIG_DFL, empty mask). The signal is blocked while we
        // run, so a raised one is delivered, by the default action, once
        // we return.
        unsafe {
            let mut dfl: libc::sigaction = std::mem::zeroed();
            dfl.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &dfl, std::ptr::null_mut());
            if !fault {
                libc::raise(sig);
            }
        }
        return;
    }
    if handler == libc::SIG_IGN {
        return;
    }
    let Some(previous) = previous else { return };
    // SAFETY: `handler` is the function the application (or std)
    // installed for SIGBUS, of the type its SA_SIGINFO flag says, called
    // as the kernel would call it.
    unsafe {
        if previous.sa_flags & libc::SA_SIGINFO != 0 {
            let f = std::mem::transmute::<
                usize,
                extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void),
            >(handler);
            f(sig, info, ctx);
        } else {
            let f = std::mem::transmute::<usize, extern "C" fn(libc::c_int)>(handler);
            f(sig);
        }
    }
    if previous.sa_flags & libc::SA_RESETHAND as libc::c_int != 0 {
        // A one-shot handler: without us the kernel would have reset it.
        PREVIOUS_IS_DEFAULT.store(true, Ordering::Release);
    }
    if !fault {
        reinstall_if_removed();
    }
}

/// After a previous handler ran for a signal that will not come again: if
/// it reset `SIGBUS` to the default (std's does), ours goes back in, with
/// the default as the previous disposition.
fn reinstall_if_removed() {
    // SAFETY: sigaction is async-signal-safe; OURS is written (READY was
    // seen true by the caller before a previous handler could be called).
    unsafe {
        let mut now: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut now) != 0 {
            return;
        }
        if now.sa_sigaction == libc::SIG_DFL {
            PREVIOUS_IS_DEFAULT.store(true, Ordering::Release);
            libc::sigaction(libc::SIGBUS, (*OURS.0.get()).as_ptr(), std::ptr::null_mut());
        }
    }
}
