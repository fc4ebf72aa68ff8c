//! The thin layer over the kernel: the only place that calls rustix or libc.
//!
//! Each function names the system call it wraps. Everything above this module
//! is safe Rust; every `unsafe` block here carries a `// SAFETY:` comment.

pub(crate) mod child;
pub mod fdio;
pub mod futex;
pub mod mem;
pub(crate) mod membarrier;
pub mod mq;
pub mod pipe;
pub mod poll;
pub mod posix_sem;
pub mod privdir;
pub mod proc;
pub(crate) mod sigbus;
pub mod signal;
pub mod socket;
pub mod sysv;
pub mod time;
pub mod user;

pub use rustix::io::Errno;
