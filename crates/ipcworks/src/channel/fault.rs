//! Fault-injection points: planted bugs that tests switch on to watch
//! their checks catch them (a missing wake-up, a missing barrier, a
//! revoker that does not wait for the solo sender).
//!
//! Off unless asked for. Between processes they are asked for with the
//! environment variable `IPCWORKS_FAULT` (a comma-separated list of
//! [`Fault::name`]s), read once per process; the loom model sets its own
//! per model ([`Memory::fault`](super::ring::Memory::fault)). Each point
//! is looked at only off the hot path (after a sleeper's flag was seen,
//! before a sleep). `skip-drain`, `skip-solo-fence` and
//! `batch-first-early` are planted in the loom models only: a real build
//! never looks them up.

#[cfg(not(loom))]
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

/// A planted bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The publisher sees a sleeper's flag, clears it, and does not wake
    /// it (`skip-wake`).
    SkipWake,
    /// The sleeper skips its half of the asymmetric fence
    /// (`membarrier`, in the model a `SeqCst` fence) before its re-check
    /// (`skip-barrier`).
    SkipBarrier,
    /// A revoker takes the solo lock without waiting for the solo sender
    /// to leave its section (`skip-drain`).
    SkipDrain,
    /// The model's solo sender has no barrier between `busy = 1` and its
    /// look at the lock (the model's stand-in for a revoker without
    /// `membarrier`; `skip-solo-fence`).
    SkipSoloFence,
    /// A batch's first record is published before the others are
    /// written (`batch-first-early`).
    BatchFirstEarly,
}

impl Fault {
    /// Its name in `IPCWORKS_FAULT`.
    pub fn name(self) -> &'static str {
        match self {
            Fault::SkipWake => "skip-wake",
            Fault::SkipBarrier => "skip-barrier",
            Fault::SkipDrain => "skip-drain",
            Fault::SkipSoloFence => "skip-solo-fence",
            Fault::BatchFirstEarly => "batch-first-early",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Fault::SkipWake => 2,
            Fault::SkipBarrier => 4,
            Fault::SkipDrain => 8,
            Fault::SkipSoloFence => 16,
            Fault::BatchFirstEarly => 32,
        }
    }
}

/// The faults this process was started with (`IPCWORKS_FAULT`), as bits;
/// bit 0 says they were read.
#[cfg(not(loom))]
static FAULTS: AtomicU8 = AtomicU8::new(0);

/// Whether `IPCWORKS_FAULT` names `fault` (read once per process).
#[cfg(not(loom))]
pub fn from_env(fault: Fault) -> bool {
    let mut bits = FAULTS.load(Relaxed);
    if bits == 0 {
        bits = 1;
        if let Some(v) = std::env::var_os("IPCWORKS_FAULT") {
            let v = v.to_string_lossy();
            for f in [
                Fault::SkipWake,
                Fault::SkipBarrier,
                Fault::SkipDrain,
                Fault::SkipSoloFence,
                Fault::BatchFirstEarly,
            ] {
                if v.split(',').any(|n| n.trim() == f.name()) {
                    bits |= f.bit();
                }
            }
        }
        FAULTS.store(bits, Relaxed);
    }
    bits & fault.bit() != 0
}

/// Under loom the environment is not consulted: each model sets its own.
#[cfg(loom)]
pub fn from_env(_fault: Fault) -> bool {
    false
}
