//! One module per subcommand: its arguments and its `run`.

pub mod bench;
pub mod completions;
pub mod demo;
pub mod lock;
pub mod ls;
pub mod recv;
pub mod regions;
pub mod relay;
pub mod rm;
pub mod sem;
pub mod send;
pub mod serve;
