//! One module per subcommand: its arguments and its `run`.

pub mod demo;
pub mod recv;
pub mod relay;
pub mod send;
pub mod serve;
