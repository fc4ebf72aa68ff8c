//! The README's library example: two processes, one shared-memory channel.
//!
//! The parent makes an anonymous channel with `channel::pair`, hands its
//! sending end to a child (this same program, started again) and keeps
//! the receiving end; the child takes the inherited descriptor, attaches
//! a sender and sends three messages; the parent receives them, then sees
//! the channel disconnect when the child exits. The channel is a sealed
//! `memfd`: nothing is left in /dev/shm.
//!
//! Run: `cargo run -p ipcworks --example quickstart`

use std::process::Command;
use std::time::Duration;

use ipcworks::channel::{self, Channel};
use ipcworks::message::RecvTimeoutError;
use ipcworks::pipe;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("QUICKSTART_FD").is_some() {
        // The child: take the descriptor the parent handed over, attach a
        // sender to the channel, and send.
        // SAFETY: the parent passed this descriptor to us (pass_fd_env),
        // and nothing else in this process takes it.
        let fd = unsafe { pipe::take_inherited("QUICKSTART_FD")? };
        let mut tx = Channel::from_fd(fd)?.sender()?;
        for i in 1..=3 {
            tx.send(format!("hello {i} from process {}", std::process::id()).as_bytes())?;
        }
        return Ok(());
    }
    // The parent: a channel with room for 16 messages, and both its ends.
    let (tx, mut rx) = channel::pair(16)?;
    // Hand the sending end to the child: the receiver now waits for the
    // child's sender (it does not take this one's leaving for the end).
    let mut command = Command::new(std::env::current_exe()?);
    pipe::pass_fd_env(&mut command, tx.into_inheritable_fd()?, "QUICKSTART_FD")?;
    let mut child = command.spawn()?;
    drop(command); // and with it the parent's copy of the descriptor
    // Receive until the child is gone: `Disconnected` once its sender
    // dropped (or it died), after every message it sent.
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(msg) => println!("{}", String::from_utf8_lossy(&msg)),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(e) => return Err(e.into()), // e.g. Timeout: the child never came
        }
    }
    child.wait()?;
    Ok(())
}
