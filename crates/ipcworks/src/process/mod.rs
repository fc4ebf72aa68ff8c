//! Processes and threads: what a process's memory looks like, region by
//! region ([`regions()`]); who a process is, in a way a reused pid cannot
//! fake ([`Identity`]); starting a child command that dies with this
//! process and can share its hold on a lock or permit ([`spawn`],
//! [`spawn_holding`], [`spawn_worker`]); and removing named objects when a
//! signal ends this process ([`remove_on_terminate`]).

pub(crate) mod child;
mod cleanup;
pub(crate) mod regions;

pub use crate::sys::proc::Identity;
pub use child::{Hold, TiedChild, run_holding, spawn, spawn_holding, spawn_worker};
pub use cleanup::remove_on_terminate;
pub use regions::{Region, RegionKind, Regions, regions};
