//! `ipc-channel` (feature `peers`): Servo's ipc-channel byte channels
//! (Unix sockets underneath on Linux), bootstrapped through an
//! `IpcOneShotServer` whose name the peer receives.

use std::io;
use std::time::{Duration, Instant};

use ipc_channel::ipc::{
    self, IpcBytesReceiver, IpcBytesSender, IpcOneShotServer, IpcSender, TryRecvError,
};

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, relax};
use crate::schema::Wait;

/// ipc-channel byte channels.
pub struct IpcChannel;

type Bootstrap = (IpcBytesSender, IpcBytesReceiver);

fn err(what: &str, e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("ipc-channel {what}: {e:?}"))
}

struct Chan {
    tx: IpcBytesSender,
    rx: IpcBytesReceiver,
    wait: Wait,
}

impl Link for Chan {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        self.tx.send(msg)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        let data = match self.wait {
            Wait::Block => self.rx.recv().map_err(|e| err("recv", e))?,
            Wait::Poll => loop {
                match self.rx.try_recv() {
                    Ok(d) => break d,
                    Err(TryRecvError::Empty) => relax(),
                    Err(e) => return Err(err("try_recv", e)),
                }
            },
        };
        if data.len() != buf.len() {
            return Err(io::Error::other(format!(
                "ipc-channel delivered {} bytes, expected {}",
                data.len(),
                buf.len()
            )));
        }
        buf.copy_from_slice(&data);
        Ok(())
    }
}

impl Mechanism for IpcChannel {
    fn name(&self) -> &'static str {
        "ipc-channel"
    }

    fn is_peer(&self) -> bool {
        true
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let (server, name) = IpcOneShotServer::<Bootstrap>::new()?;
        let wait = case.wait;
        // `accept` has no timeout: run it on a thread and give up on it
        // (leaking the thread) if the peer never connects.
        let connect = Box::new(move |deadline: Instant| -> io::Result<Box<dyn Link>> {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = done_tx.send(server.accept().map_err(|e| err("accept", e)));
            });
            let left = deadline.saturating_duration_since(Instant::now());
            let (_boot, (tx, rx)) = done_rx
                .recv_timeout(left.max(Duration::from_millis(1)))
                .map_err(|_| io::Error::other("ipc-channel: the peer never connected"))??;
            Ok(Box::new(Chan { tx, rx, wait }) as Box<dyn Link>)
        });
        Ok(Setup {
            fds: vec![],
            args: vec![name],
            connect,
            keep: vec![],
        })
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        let boot: IpcSender<Bootstrap> = IpcSender::connect(h.arg(0)?.to_string())?;
        let (ping_tx, ping_rx) = ipc::bytes_channel()?;
        let (pong_tx, pong_rx) = ipc::bytes_channel()?;
        boot.send((ping_tx, pong_rx))
            .map_err(|e| err("bootstrap send", e))?;
        Ok(Box::new(Chan {
            tx: pong_tx,
            rx: ping_rx,
            wait: case.wait,
        }))
    }
}
