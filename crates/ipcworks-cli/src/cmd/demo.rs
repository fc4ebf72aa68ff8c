//! `ipcworks demo TOPIC`: short live runs that show a concept happening.

use std::process::ExitCode;

/// Arguments of `ipcworks demo`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  ipcworks demo          # list the topics\n  ipcworks demo race     # lost updates without a lock, exact counts with one"
)]
pub struct Args {
    /// The topic to show; leave out to list them.
    topic: Option<String>,
}

/// The topics, with one line each.
const TOPICS: &[(&str, &str)] = &[];

/// Runs `ipcworks demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.topic.as_deref() {
        None => {
            println!("Topics (ipcworks demo TOPIC):");
            for (name, what) in TOPICS {
                println!("  {name:<10} {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(t) => {
            anyhow::bail!("unknown demo topic {t:?}; run `ipcworks demo` to list the topics")
        }
    }
}
