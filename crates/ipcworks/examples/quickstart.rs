//! The README's library example: two processes, one shared-memory channel.
//!
//! The parent creates the channel `shm:quickstart-PID` and starts this same
//! program again as its child; the child opens the channel by name and
//! sends three messages; the parent receives them, then sees the channel
//! disconnect when the child exits. The parent removes the segment when
//! `chan` drops.
//!
//! Run: `cargo run -p ipcworks --example quickstart`

use std::time::Duration;

use ipcworks::channel::{Channel, Sender};
use ipcworks::message::RecvTimeoutError;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Ok(name) = std::env::var("QUICKSTART_CHANNEL") {
        // The child: open the parent's channel and send.
        let mut tx = Sender::open(&name)?;
        for i in 1..=3 {
            tx.send(format!("hello {i} from process {}", std::process::id()).as_bytes())?;
        }
        return Ok(());
    }
    // The parent: create the channel (mode 0600), then start the child.
    let name = format!("quickstart-{}", std::process::id());
    let chan = Channel::builder().max_message(1024).create(&name)?;
    let mut rx = chan.receiver()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .env("QUICKSTART_CHANNEL", &name)
        .spawn()?;
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
