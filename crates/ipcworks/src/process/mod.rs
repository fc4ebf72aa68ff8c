//! Processes and threads: what a process's memory looks like, region by
//! region ([`regions()`]).

pub mod regions;

pub use regions::{Region, RegionKind, Regions, regions};
