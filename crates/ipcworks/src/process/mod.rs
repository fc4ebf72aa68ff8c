//! Processes and threads: what a process's memory looks like, region by
//! region ([`regions()`]), and starting a child command that dies with this
//! process and can share its hold on a lock or permit ([`spawn`],
//! [`spawn_holding`]).

pub mod child;
pub mod regions;

pub use child::{Hold, TiedChild, run_holding, spawn, spawn_holding};
pub use regions::{Region, RegionKind, Regions, regions};
