//! `ipcworks rm`: remove IPC objects by address, or every stale one.

use std::process::ExitCode;

use anyhow::Context;
use ipcworks::inventory;

/// Arguments of `ipcworks rm`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "An object that a live process still maps or holds open is refused \
unless --force: removing it would not free it, only hide it from the next process.

Examples:
  ipcworks rm shm:jobs sysv:0x2a
  ipcworks rm --stale --dry-run     # what would go
  ipcworks rm --stale"
)]
pub struct Args {
    /// Addresses as `ipcworks ls` prints them (shm:NAME, mq:NAME, sysv:KEY, fifo:PATH, …).
    #[arg(required_unless_present = "stale", conflicts_with = "stale")]
    addresses: Vec<String>,
    /// Remove every object whose creator has died.
    #[arg(long)]
    stale: bool,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove even if a live process uses it.
    #[arg(long)]
    force: bool,
}

/// Runs `ipcworks rm`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let targets = if args.stale {
        inventory::list()
            .into_iter()
            .filter(|o| o.is_stale())
            .collect()
    } else {
        args.addresses
            .iter()
            .map(|a| inventory::find(a))
            .collect::<Result<Vec<_>, _>>()?
    };
    let mut failed = 0;
    for o in &targets {
        if args.dry_run {
            let busy = if o.users.is_empty() {
                String::new()
            } else {
                format!(" (in use by {:?}: refused without --force)", o.users)
            };
            println!("would remove {}{busy}", o.address);
            continue;
        }
        match inventory::remove(o, args.force)
            .with_context(|| format!("cannot remove {}", o.address))
        {
            Ok(()) => println!("removed {}", o.address),
            Err(e) => {
                eprintln!("ipcworks: {e:#}");
                failed += 1;
            }
        }
    }
    if args.stale && targets.is_empty() {
        println!("no stale objects");
    }
    Ok(if failed > 0 {
        ExitCode::from(crate::exit::ERROR)
    } else {
        ExitCode::SUCCESS
    })
}
