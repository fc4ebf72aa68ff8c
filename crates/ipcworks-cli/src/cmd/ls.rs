//! `ipcworks ls`: every IPC object on the machine, who made it, who uses it.

use std::process::ExitCode;

use ipcworks::inventory::{self, Object, ObjectKind};

/// Arguments of `ipcworks ls`.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Columns: ADDRESS is what `ipcworks rm` takes; ITEMS counts the messages \
waiting in a queue or the semaphores of a System V set; UID is the owner (and the creator \
when another); CREATOR is the pid of the ipcworks process that made it (alive or dead: \
judged by pid and start time, so a reused pid cannot fool it); USERS are live processes \
that map or hold it open (a System V segment also shows how often it is attached, and when \
it is removed but still attached).

Addresses: segment:NAME (a /dev/shm file), shm:NAME (a channel), queue:NAME, mutex:NAME, \
sem:NAME, posix-sem:NAME, mq:NAME, fifo:PATH, unix:PATH; System V objects by key: \
sysv:0x2a (a queue, ipcs -q), sysv-shm:0x2a (a segment, ipcs -m), sysv-sem:0x2a (a \
semaphore set, ipcs -s), or by id where there is no key (IPC_PRIVATE, or a segment \
removed but still attached): sysv-shm:id=32768. Bytes of a name that are not UTF-8 show as \
\\xHH.

POSIX queues are listed from /dev/mqueue, where the mqueue file system must be mounted \
(as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue); without it ls says so \
on stderr, and `ipcworks rm mq:NAME` still removes one by name.

JSON (--json): an array with one object per IPC object:
  {\"kind\": \"segment\" | \"mutex\" | \"semaphore\" | \"channel\" | \"queue\" | \"posix-semaphore\"
           | \"posix-queue\" | \"sysv-queue\" | \"sysv-segment\" | \"sysv-semaphore\" | \"fifo\"
           | \"unix-socket\",
   \"address\": \"fifo:/tmp/f\",      what `ipcworks rm` takes
   \"path\": \"/tmp/f\" | null,       the file behind it (null for System V objects)
   \"bytes\": 4096 | null,          size (segments) or bytes queued (queues)
   \"messages\": 3 | null,          messages queued (queues; null when ls may not open one)
   \"semaphores\": 3 | null,        semaphores in a System V set (nsems)
   \"attached\": 1 | null,          attaches of a System V segment (nattch)
   \"pending_removal\": false | null,  a System V segment removed, waiting for its last detach
   \"id\": 32768 | null,            System V identifier (msqid, shmid, semid)
   \"uid\": 1000, \"mode\": 384,      owner and permission bits (decimal: 384 = 0o600)
   \"creator_uid\": 1000 | null,    the user who created it (System V objects)
   \"creator\": {\"pid\": 4242, \"alive\": false, \"persistent\": false} | null,
                                   null: not made by ipcworks (or not recorded)
   \"users\": [4243]}               live processes (not ls itself) mapping or holding it open
Every key is always there; null where it does not apply. An object is stale (--stale) when
creator is not null, alive is false and persistent is false.

Examples:
  ipcworks ls
  ipcworks ls --stale                # made by ipcworks processes that have died
  ipcworks ls --kind sysv-shm        # like ipcs -m (sysv-sem: ipcs -s, sysv: ipcs -q)
  ipcworks ls --kind mq,queue,sysv   # every kind of message queue
  ipcworks ls --json | jq '.[] | select(.kind == \"sysv-queue\")'"
)]
pub struct Args {
    /// Only objects whose creator has died.
    #[arg(long)]
    stale: bool,
    /// Only objects of these kinds, by address prefix (segment, mutex, sem,
    /// shm or chan, queue, posix-sem, mq, sysv, sysv-shm, sysv-sem, fifo,
    /// unix) or JSON kind; repeat or separate with commas.
    #[arg(long, value_name = "KIND", value_delimiter = ',', value_parser = parse_kind)]
    kind: Vec<ObjectKind>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn parse_kind(name: &str) -> Result<ObjectKind, String> {
    ObjectKind::parse(name).ok_or_else(|| {
        let valid: Vec<&str> = ObjectKind::ALL.iter().map(|k| k.prefix()).collect();
        format!(
            "no such kind; the kinds are {} (also chan for shm, and the JSON names such as \
             sysv-segment)",
            valid.join(", ")
        )
    })
}

/// Runs `ipcworks ls`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let kinds = if args.kind.is_empty() {
        ObjectKind::ALL.to_vec()
    } else {
        args.kind.clone()
    };
    let objects: Vec<Object> = inventory::list_of(&kinds)
        .into_iter()
        .filter(|o| !args.stale || o.is_stale())
        .collect();
    if kinds.contains(&ObjectKind::PosixQueue) && !inventory::posix_queues_listable() {
        eprintln!(
            "note: POSIX message queues cannot be listed until the mqueue file system is \
             mounted (as root: mkdir -p /dev/mqueue && mount -t mqueue none /dev/mqueue); \
             `ipcworks rm mq:NAME` works without"
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&objects)?);
        return Ok(ExitCode::SUCCESS);
    }
    if objects.is_empty() {
        let what = if args.stale {
            "stale objects"
        } else {
            "IPC objects"
        };
        if args.kind.is_empty() {
            println!("no {what}");
        } else {
            let names: Vec<&str> = args.kind.iter().map(|k| k.prefix()).collect();
            println!("no {what} of kind {}", names.join(", "));
        }
    } else {
        print_table(&objects);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(objects: &[Object]) {
    println!(
        "{:<40} {:>10} {:>8} {:>5} {:>6} {:<14} USERS",
        "ADDRESS", "BYTES", "ITEMS", "MODE", "UID", "CREATOR"
    );
    for o in objects {
        let creator = match o.creator {
            None => "-".to_string(),
            Some(c) if c.alive => format!("{} alive", c.pid),
            Some(c) if c.persistent => format!("{} gone, kept", c.pid),
            Some(c) => format!("{} dead STALE", c.pid),
        };
        let items = match (o.messages, o.semaphores) {
            (Some(1), _) => "1 msg".to_string(),
            (Some(m), _) => format!("{m} msgs"),
            (None, Some(1)) => "1 sem".to_string(),
            (None, Some(s)) => format!("{s} sems"),
            (None, None) => "-".to_string(),
        };
        let uid = match o.creator_uid {
            Some(c) if c != o.uid => format!("{} (made by {c})", o.uid),
            _ => o.uid.to_string(),
        };
        let mut users = if o.users.is_empty() {
            "-".to_string()
        } else {
            o.users
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        if let Some(n) = o.attached.filter(|&n| n > 0) {
            users += &format!(" (attached {n})");
        }
        if o.pending_removal == Some(true) {
            users += " removed, freed on last detach";
        }
        println!(
            "{:<40} {:>10} {:>8} {:>5} {:>6} {:<14} {}",
            o.address,
            o.bytes.map_or("-".into(), |b| b.to_string()),
            items,
            format!("{:04o}", o.mode),
            uid,
            creator,
            users
        );
    }
}
