//! One wait for everything: a [`WaitSet`] loop over a Unix socket, a native
//! queue and a shared-memory channel, with a deadline.
//!
//! The parent makes the three (all anonymous: nothing named is left
//! behind), hands the child process (this program, started again) its
//! ends, and waits on all three at once; the child writes to each in turn,
//! slowly. The parent prints whatever arrives first, and stops when the
//! child is gone (the channel says `Disconnected`) or after two quiet
//! seconds.
//!
//! `cargo run -p ipcworks --example waitset`

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use ipcworks::channel::{self, Channel};
use ipcworks::message::{Deadline, TryRecvError};
use ipcworks::pipe;
use ipcworks::queue::Queue;
use ipcworks::waitset::WaitSet;

const SOCKET: usize = 0;
const QUEUE: usize = 1;
const CHANNEL: usize = 2;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("WAITSET_CHANNEL").is_some() {
        return child();
    }
    let (tx, mut rx) = channel::pair(16)?;
    let queue = Queue::anonymous()?;
    let (mut sock, child_sock) = UnixStream::pair()?;
    sock.set_nonblocking(true)?;

    let mut set = WaitSet::new()?;
    set.add_fd(SOCKET, &sock)?;
    set.add_queue(QUEUE, &queue)?;
    set.add_channel(CHANNEL, &rx)?;

    let mut command = Command::new(std::env::current_exe()?);
    pipe::pass_fd_env(&mut command, tx.into_inheritable_fd()?, "WAITSET_CHANNEL")?;
    pipe::pass_fd_env(&mut command, queue.inheritable_fd()?, "WAITSET_QUEUE")?;
    pipe::pass_fd_env(&mut command, child_sock, "WAITSET_SOCKET")?;
    let mut child = command.spawn()?;
    drop(command); // and with it the parent's copies of the child's ends

    'wait: loop {
        // Two quiet seconds end the loop, whatever happens.
        let ready = set.wait(Deadline::after(Duration::from_secs(2)))?;
        if ready.is_empty() {
            println!("two quiet seconds: done");
            break;
        }
        // A ready key is a hint: the non-blocking calls below may find
        // nothing (and the next wait goes on waiting).
        for key in ready {
            match key {
                SOCKET => {
                    let mut buf = [0u8; 256];
                    match sock.read(&mut buf) {
                        Ok(0) => {
                            println!("socket: closed");
                            set.remove(SOCKET);
                        }
                        Ok(n) => println!("socket:  {}", String::from_utf8_lossy(&buf[..n])),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                QUEUE => {
                    while let Ok((msg, prio)) = queue.try_recv() {
                        println!(
                            "queue:   {} (priority {prio})",
                            String::from_utf8_lossy(&msg)
                        );
                    }
                }
                CHANNEL => loop {
                    match rx.try_recv() {
                        Ok(msg) => println!("channel: {}", String::from_utf8_lossy(&msg)),
                        Err(TryRecvError::Empty) => break,
                        // Its sender is gone (the child ended, or was killed).
                        Err(TryRecvError::Disconnected) => {
                            println!("channel: the sender is gone");
                            break 'wait;
                        }
                        Err(e) => return Err(e.into()),
                    }
                },
                _ => unreachable!("only three keys were added"),
            }
        }
    }
    child.wait()?;
    Ok(())
}

/// The child: writes to the socket, the queue and the channel in turn.
fn child() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the parent passed these descriptors to us (pass_fd_env), and
    // nothing else in this process takes them.
    let (chan, queue, sock) = unsafe {
        (
            pipe::take_inherited("WAITSET_CHANNEL")?,
            pipe::take_inherited("WAITSET_QUEUE")?,
            pipe::take_inherited("WAITSET_SOCKET")?,
        )
    };
    let mut tx = Channel::from_fd(chan)?.sender()?;
    let queue = Queue::from_fd(queue)?;
    let mut sock = UnixStream::from(sock);
    for i in 1..=3 {
        sock.write_all(format!("hello {i}").as_bytes())?;
        std::thread::sleep(Duration::from_millis(100));
        queue.send(format!("job {i}").as_bytes(), i)?;
        std::thread::sleep(Duration::from_millis(100));
        tx.send(format!("event {i}").as_bytes())?;
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}
