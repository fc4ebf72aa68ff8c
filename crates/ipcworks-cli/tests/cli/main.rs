//! The command-line tests: the real `ipcworks` binary beside the real
//! tools it sits with (`nc`, `socat`, `ipcs`, `flock`, Python's
//! `posix_ipc`/`sysv_ipc`, a C program). One test binary, one link: fast
//! to build on a small machine.

mod common;
mod support;

mod bench;
mod conventions;
mod demo_regions;
mod demos;
mod exit_codes;
mod formats;
mod hostile;
mod inventory_sysv;
mod lock;
mod mqueue_unmounted;
mod queue;
mod recv_many;
mod regions;
mod relay_queues;
mod sem;
mod stale;
mod streams;
// Built with the feature only: `--features ipcworks-cli/zenoh`.
#[cfg(feature = "zenoh")]
mod zenoh;
