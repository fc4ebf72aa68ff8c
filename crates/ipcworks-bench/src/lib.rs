//! The ipcworks benchmark harness (see `ipcworks bench --help`).
#![deny(unsafe_op_in_unsafe_fn)]
