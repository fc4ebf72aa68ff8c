//! The mechanisms, one file each, and the list the harness runs.
//!
//! To add one: write `src/mechs/NAME.rs` with a type implementing
//! [`Mechanism`] (setup in the parent, `peer` in
//! the child, a [`Link`](crate::harness::Link) with `send`/`recv` that
//! honours the case's wait mode), declare the module below and put the
//! value in [`ALL`] where it should appear in the run order. A mechanism of
//! the library implements its message interface: its link is
//! [`message::Messages`] over its two ends.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::harness::Mechanism;

pub mod bare;
pub mod eventfd;
pub mod fd;
pub mod fifo;
pub mod floor;
pub mod futex;
#[cfg(feature = "peers")]
pub mod iceoryx2;
#[cfg(feature = "peers")]
pub mod ipc_channel;
pub mod line;
pub mod memcpy;
pub mod message;
pub mod mq;
pub mod pipe;
pub mod queue;
pub mod shm;
pub mod sysv;
pub mod tcp;
pub mod tokio;
pub mod unix;
#[cfg(feature = "zenoh")]
pub mod zenoh;

/// Every mechanism, in run order (`memcpy` is measured separately, in one
/// process: see [`memcpy`]).
pub static ALL: &[&dyn Mechanism] = &[
    &floor::Floor,
    &bare::Bare,
    &shm::SPIN,
    &shm::BATCH_SPIN,
    &shm::LOAN,
    &shm::DEFAULT,
    &shm::BLOCK,
    &tokio::SHM,
    &tokio::SHM_PARK,
    &futex::Futex,
    &eventfd::Eventfd,
    &pipe::Pipe,
    &fifo::Fifo,
    &unix::STREAM,
    &unix::DGRAM,
    &unix::SEQPACKET,
    &tokio::UnixAsync,
    &tcp::Tcp,
    #[cfg(feature = "zenoh")]
    &zenoh::Zenoh,
    &mq::Mq,
    &sysv::Sysv,
    &queue::NativeQueue,
    #[cfg(feature = "peers")]
    &iceoryx2::Iceoryx2,
    #[cfg(feature = "peers")]
    &iceoryx2::LOAN,
    #[cfg(feature = "peers")]
    &ipc_channel::IpcChannel,
];

/// The mechanism called `name`.
pub fn find(name: &str) -> Option<&'static dyn Mechanism> {
    ALL.iter().copied().find(|m| m.name() == name)
}

/// Every name `--only` accepts, in run order.
pub fn names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = ALL.iter().map(|m| m.name()).collect();
    v.insert(4, memcpy::NAME);
    v
}

/// A name unique to this process and call (`ipcworks-bench-PID-N-what`).
pub fn unique(what: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "ipcworks-bench-{}-{}-{what}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh private folder under the temporary directory (mode 0700).
pub fn temp_dir(what: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let dir = std::env::temp_dir().join(unique(what));
    std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
    Ok(dir)
}
