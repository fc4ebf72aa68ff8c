//! [`AtomicsOnly`]: the types a [`MutexGuard`](super::MutexGuard) may lend
//! in place.

use std::sync::atomic::{
    AtomicI8, AtomicI16, AtomicI32, AtomicI64, AtomicIsize, AtomicU8, AtomicU16, AtomicU32,
    AtomicU64, AtomicUsize,
};

use zerocopy::{FromBytes, IntoBytes, KnownLayout};

/// A type made entirely of atomic integers, so a shared reference to it may
/// point into memory that other processes write at any moment.
///
/// A `&T` into shared memory is sound only if every byte of `T` sits inside
/// an atomic (an `UnsafeCell` the compiler never assumes stable) and every
/// bit pattern a peer can leave there is a valid `T`. For such types
/// [`MutexGuard::atomics`](super::MutexGuard::atomics) lends the value in
/// place; every other type is copied in and out
/// ([`get`](super::MutexGuard::get), [`set`](super::MutexGuard::set),
/// [`update`](super::MutexGuard::update)).
///
/// Implemented for the atomic integers of `std` (`AtomicU8` … `AtomicU64`,
/// `AtomicI8` … `AtomicI64`, `AtomicUsize`, `AtomicIsize`) and for arrays
/// of any `AtomicsOnly` type. Not for `AtomicBool` (a peer can write a byte
/// that is neither 0 nor 1, which is no `bool`) nor `AtomicPtr` (an address
/// means nothing in another process).
///
/// # Your own structs
///
/// No derive of ours is needed: derive zerocopy's layout traits (which
/// check that there is no padding and that any bytes are valid) and state
/// the one thing they cannot check — that every field is itself
/// `AtomicsOnly` — in an `unsafe impl`:
///
/// ```
/// use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
/// use ipcworks::sync::{AtomicsOnly, Mutex};
/// use zerocopy::{FromBytes, IntoBytes, KnownLayout};
///
/// #[repr(C)]
/// #[derive(FromBytes, IntoBytes, KnownLayout)]
/// struct Stats {
///     hits: AtomicU64,
///     misses: AtomicU64,
///     last: [AtomicU32; 2],
/// }
///
/// // SAFETY: `#[repr(C)]`, and every field is AtomicsOnly (an atomic
/// // integer or an array of them); the derives above check the rest.
/// unsafe impl AtomicsOnly for Stats {}
///
/// # fn main() -> ipcworks::Result<()> {
/// let m = Mutex::anonymous(Stats {
///     hits: AtomicU64::new(0),
///     misses: AtomicU64::new(0),
///     last: [AtomicU32::new(0), AtomicU32::new(0)],
/// })?;
/// let g = m.lock()?;
/// g.atomics().hits.fetch_add(1, Ordering::Relaxed);
/// assert_eq!(g.atomics().hits.load(Ordering::Relaxed), 1);
/// # Ok(())
/// # }
/// ```
///
/// # Safety
///
/// Implement it only for a type whose every byte belongs to a field that is
/// itself `AtomicsOnly` (so: no plain integers, no padding, no `bool`, no
/// pointers), laid out with `#[repr(C)]` or `#[repr(transparent)]`. The
/// supertraits make the compiler check that the layout has no padding and
/// accepts any bytes.
pub unsafe trait AtomicsOnly: FromBytes + IntoBytes + KnownLayout + Sync {}

macro_rules! atomics_only {
    ($($t:ty),* $(,)?) => {
        $(
            // SAFETY: an atomic integer is one `UnsafeCell` of an integer:
            // every byte is interior-mutable and any bits are a valid value.
            unsafe impl AtomicsOnly for $t {}
        )*
    };
}

atomics_only!(
    AtomicU8,
    AtomicU16,
    AtomicU32,
    AtomicU64,
    AtomicUsize,
    AtomicI8,
    AtomicI16,
    AtomicI32,
    AtomicI64,
    AtomicIsize,
);

// SAFETY: an array has no padding between elements, and each element is
// AtomicsOnly, so every byte belongs to one.
unsafe impl<T: AtomicsOnly, const N: usize> AtomicsOnly for [T; N] {}
