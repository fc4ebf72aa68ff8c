//! `ipcworks rm`: remove IPC objects by address, or every stale one.

use std::process::ExitCode;

use ipcworks::Error;
use ipcworks::inventory::{self, Object};

/// Arguments of `ipcworks rm`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Refused unless --force:
  - another user's object (even for root: it is not yours to clean up);
  - an object that a live process still maps or holds open, or a System V segment still
    attached: removing it would not free it, only hide it from the next process (a System V
    segment removed with --force goes when its last process detaches);
  - a Unix socket a server listens on.

System V objects are removed by id (IPC_RMID), so exactly the one listed. A POSIX queue is
removed by name (mq_unlink) even where /dev/mqueue is not mounted and `ls` cannot list it.

Examples:
  ipcworks rm shm:jobs sysv:0x2a
  ipcworks rm sysv-shm:0x2a sysv-sem:id=3   # like ipcrm -M 0x2a -s 3
  ipcworks rm --stale --dry-run             # what would go
  ipcworks rm --stale")]
pub struct Args {
    /// Addresses as `ipcworks ls` prints them (shm:NAME, mq:NAME, sysv:KEY,
    /// sysv-shm:KEY, sysv-sem:id=ID, fifo:PATH, …).
    #[arg(required_unless_present = "stale", conflicts_with = "stale")]
    addresses: Vec<String>,
    /// Remove every object whose creator has died.
    #[arg(long)]
    stale: bool,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove even if it belongs to another user or a live process uses it.
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
            .map(|a| find(a))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    let mut failed = 0;
    for o in &targets {
        if args.dry_run {
            let refused = match inventory::check_removable(o) {
                Err(Error::Refused { reason, .. }) if !args.force => {
                    format!(" (refused without --force: {reason})")
                }
                _ => String::new(),
            };
            println!("would remove {}{refused}", o.address);
            continue;
        }
        match inventory::remove(o, args.force) {
            Ok(()) => println!("removed {}", o.address),
            Err(e) => {
                // A refusal's reason reads on from "cannot remove ADDRESS".
                let why = match e {
                    Error::Refused { reason, .. } => reason,
                    e => e.to_string(),
                };
                eprintln!("ipcworks: cannot remove {}: {why}", o.address);
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

/// The object at `address`; when there is none, the error says where to
/// look, after the quoted address, and names objects of another kind
/// under the same name (`segment:jobs` for a mistyped `shm:jobs`).
fn find(address: &str) -> anyhow::Result<Object> {
    match inventory::find(address) {
        Err(e @ Error::NotFound { .. }) => {
            let name = address.split_once(':').map_or(address, |(_, n)| n);
            let alike: Vec<String> = inventory::list()
                .into_iter()
                .filter(|o| o.name() == name)
                .map(|o| o.address)
                .collect();
            let hint = if alike.is_empty() {
                "run `ipcworks ls` to see the addresses".to_string()
            } else {
                format!("did you mean {}?", alike.join(" or "))
            };
            Err(anyhow::anyhow!("{e} ({hint})"))
        }
        r => Ok(r?),
    }
}
