//! All integration tests, built into one binary (fast to link).
//!
//! Tests that need a second process spawn this same binary: see
//! [`support::child`]. Each module that does has a `child` test that acts
//! only when the environment names a role for it.

mod support;

mod channel;
mod channel_corrupt;
mod channel_ends;
mod channel_publish;
mod conformance;
mod dead_peer;
mod frame;
mod inventory;
mod mq;
mod mutex;
mod mutex_owner_dead;
mod pipe;
mod posix_sem;
mod process;
mod queue;
mod readme;
mod regions;
mod relay;
#[cfg(feature = "zenoh")]
mod relay_zenoh;
mod semaphore;
mod server_fds;
mod shm;
mod sigbus;
mod socket;
#[cfg(feature = "tokio")]
mod tokio;
#[cfg(feature = "tokio")]
mod tokio_ends;
#[cfg(feature = "tokio")]
mod tokio_framed;
#[cfg(feature = "tokio")]
mod tokio_hostile;
#[cfg(feature = "tokio")]
mod tokio_hostile_io;
#[cfg(feature = "tokio")]
mod tokio_io;
#[cfg(feature = "tokio")]
mod tokio_room;
#[cfg(feature = "tokio")]
mod tokio_server;
mod truncate;
mod unix_bind;
mod waitset;
mod waitset_queue;
#[cfg(feature = "zenoh")]
mod zenoh;
