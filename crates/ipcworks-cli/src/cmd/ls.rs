//! `ipcworks ls`: every IPC object on the machine, who made it, who uses it.

use std::process::ExitCode;

use ipcworks::inventory::{self, Object};

/// Arguments of `ipcworks ls`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Columns: ADDRESS is what `ipcworks rm` takes; CREATOR is the pid of the \
ipcworks process that made it (alive or dead: judged by pid and start time, so a reused pid \
cannot fool it); USERS are live processes that map or hold it open.

JSON (--json): an array with one object per IPC object:
  {\"kind\": \"segment\" | \"mutex\" | \"semaphore\" | \"channel\" | \"queue\" | \"posix-semaphore\"
           | \"posix-queue\" | \"sysv-queue\" | \"fifo\" | \"unix-socket\",
   \"address\": \"fifo:/tmp/f\",      what `ipcworks rm` takes
   \"path\": \"/tmp/f\" | null,       the file behind it (null for System V queues)
   \"bytes\": 4096 | null,          size (segments) or bytes queued (queues)
   \"messages\": 3 | null,          messages queued (queues; null when ls may not open one)
   \"uid\": 1000, \"mode\": 384,      owner and permission bits (decimal: 384 = 0o600)
   \"creator\": {\"pid\": 4242, \"alive\": false, \"persistent\": false} | null,
                                   null: not made by ipcworks (or not recorded)
   \"users\": [4243]}               live processes (not ls itself) mapping or holding it open
An object is stale (--stale) when creator is not null, alive is false and persistent is false.

Examples:
  ipcworks ls
  ipcworks ls --stale            # made by ipcworks processes that have died
  ipcworks ls --json | jq '.[] | select(.kind == \"sysv-queue\")'"
)]
pub struct Args {
    /// Only objects whose creator has died.
    #[arg(long)]
    stale: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `ipcworks ls`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let objects: Vec<Object> = inventory::list()
        .into_iter()
        .filter(|o| !args.stale || o.is_stale())
        .collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&objects)?);
        return Ok(ExitCode::SUCCESS);
    }
    if objects.is_empty() {
        println!(
            "{}",
            if args.stale {
                "no stale objects"
            } else {
                "no IPC objects"
            }
        );
    } else {
        print_table(&objects);
    }
    if !std::path::Path::new("/dev/mqueue").is_dir() {
        eprintln!(
            "note: /dev/mqueue is not mounted, so POSIX queues are not listed (as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(objects: &[Object]) {
    println!(
        "{:<40} {:>10} {:>6} {:>5} {:>6} {:<14} USERS",
        "ADDRESS", "BYTES", "MSGS", "MODE", "UID", "CREATOR"
    );
    for o in objects {
        let creator = match o.creator {
            None => "-".to_string(),
            Some(c) if c.alive => format!("{} alive", c.pid),
            Some(c) if c.persistent => format!("{} gone, kept", c.pid),
            Some(c) => format!("{} dead STALE", c.pid),
        };
        let users = if o.users.is_empty() {
            "-".to_string()
        } else {
            o.users
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        println!(
            "{:<40} {:>10} {:>6} {:>5} {:>6} {:<14} {}",
            o.address,
            o.bytes.map_or("-".into(), |b| b.to_string()),
            o.messages.map_or("-".into(), |m| m.to_string()),
            format!("{:04o}", o.mode),
            o.uid,
            creator,
            users
        );
    }
}
