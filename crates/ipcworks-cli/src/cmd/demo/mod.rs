//! `ipcworks demo TOPIC`: short live runs that show a concept happening
//! between real threads and processes, step by step, in plain words.
//!
//! A demo's other processes are this program started again as the internal
//! `ipcworks demo-child TOPIC ROLE ARGS…` (see [`child`]), which no help
//! text lists.

use std::process::ExitCode;

mod child;
mod memory;
mod message;
mod pipe;
mod queue;
mod race;
mod robust;
mod shm;
mod socket;

/// Arguments of `ipcworks demo`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  ipcworks demo            # list the topics
  ipcworks demo memory     # what threads share, and what a forked child does not
  ipcworks demo socket     # socket, bind, listen, accept: one new socket per client")]
pub struct Args {
    /// The topic to show; leave out to list them.
    topic: Option<String>,
}

pub use child::CHILD;

/// Arguments of the internal `ipcworks demo-child`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "ipcworks demo-child",
    about = "A demo's child process (started by `ipcworks demo`)."
)]
pub struct ChildArgs {
    /// The demo that started this process.
    topic: String,
    /// What this process does in it.
    role: String,
    /// The role's arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs `ipcworks demo-child`: one role of a demo, printing its part.
pub fn run_child(a: ChildArgs) -> anyhow::Result<ExitCode> {
    let args = a.args.as_slice();
    match a.topic.as_str() {
        "memory" => memory::child(&a.role, args),
        "race" => race::child(&a.role, args),
        "robust" => robust::child(&a.role, args),
        "shm" => shm::child(&a.role, args),
        "message" => message::child(&a.role, args),
        "pipe" => pipe::child(&a.role, args),
        "queue" => queue::child(&a.role, args),
        "socket" => socket::child(&a.role, args),
        other => anyhow::bail!("no demo {other:?} has children"),
    }?;
    Ok(ExitCode::SUCCESS)
}

type Demo = fn() -> anyhow::Result<()>;

/// The topics: name, one line, and the demo.
const TOPICS: &[(&str, &str, Demo)] = &[
    (
        "memory",
        "threads share code, data and heap; a child process has its own; each thread has its own stack",
        memory::run,
    ),
    (
        "race",
        "lost updates without a lock, exact counts with the mutex, at most N inside a semaphore",
        race::run,
    ),
    (
        "mutex",
        "a holder killed mid-update: the next locker is told (OwnerDead) and repairs",
        robust::mutex,
    ),
    (
        "semaphore",
        "P and V between processes; a killed worker's permit comes back to the pool",
        robust::semaphore,
    ),
    (
        "shm",
        "two processes share a segment: torn updates without a lock, none with the mutex",
        shm::run,
    ),
    (
        "message",
        "kernel message passing over Unix sockets: boundaries, the peer's pid, passing a descriptor",
        message::run,
    ),
    (
        "pipe",
        "a pipe is one-way (the reader cannot write back); two pipes for both ways; a named FIFO",
        pipe::run,
    ),
    (
        "queue",
        "a message queue reorders by priority and makes a sender wait while it is full",
        queue::run,
    ),
    (
        "socket",
        "a server's socket/bind/listen/accept and two clients' socket/connect, a new socket each",
        socket::run,
    ),
];

/// Runs `ipcworks demo`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.topic.as_deref() {
        None => {
            println!("Topics (ipcworks demo TOPIC):");
            for (name, what, _) in TOPICS {
                println!("  {name:<10} {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(t) => match TOPICS.iter().find(|(n, _, _)| *n == t) {
            Some((_, _, demo)) => demo().map(|()| ExitCode::SUCCESS),
            None => {
                anyhow::bail!("unknown demo topic {t:?}; run `ipcworks demo` to list the topics")
            }
        },
    }
}

/// Prints a numbered step heading.
pub(crate) fn step(n: u32, title: &str) {
    println!("\n[{n}] {title}");
}
