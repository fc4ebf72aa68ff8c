//! One module per subcommand: its arguments and its `run`.

pub mod bench;
pub mod completions;
pub mod demo;
pub mod lock;
pub mod ls;
pub mod regions;
pub mod rm;
