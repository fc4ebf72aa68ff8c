//! `iceoryx2` (feature `peers`): the iceoryx2 0.10 publish-subscribe
//! services `…/ping` and `…/pong` carrying byte slices, zero-copy in shared
//! memory. Poll mode spins on `receive()`; block mode pairs each direction
//! with an iceoryx2 event service (the sender notifies, the receiver waits
//! in `Listener::blocking_wait`).
//!
//! `iceoryx2-loan` is the same publish-subscribe, measured the way
//! `shm-loan` is: the publisher loans a sample, writes its first and last
//! cache line in place and sends it; the subscriber reads the same two
//! lines from the sample in place. Round trips only (poll), at
//! [`LOAN_SIZES`](crate::run::LOAN_SIZES).
//!
//! iceoryx2 removes a node's and a service's files when they drop, but
//! keeps a global management file in `/dev/shm` (`iox2_…global_mgmt`) and
//! its folders under `/tmp/iceoryx2` after the last node is gone. Each
//! case removes what it made appear once no node is left ([`Leftovers`]),
//! so `ipcworks bench --peers` leaves nothing behind.

use std::io;

use iceoryx2::port::listener::Listener;
use iceoryx2::port::notifier::Notifier;
use iceoryx2::port::publisher::Publisher;
use iceoryx2::port::subscriber::Subscriber;
use iceoryx2::prelude::*;

use crate::harness::{Case, Handoff, Link, Mechanism, Setup, relax};
use crate::schema::Wait;

/// iceoryx2 publish-subscribe.
pub struct Iceoryx2;

/// iceoryx2 publish-subscribe, zero-copy: only the first and last cache
/// line of each sample are written and read.
pub struct Iceoryx2Loan;

/// The `iceoryx2-loan` row.
pub static LOAN: Iceoryx2Loan = Iceoryx2Loan;

/// A cache line.
const LINE: usize = 64;

/// iceoryx2's default folder for node and service details (its config's
/// `global.root-path`), and the prefix of its files in `/dev/shm`
/// (`global.prefix`).
const ROOT: &str = "/tmp/iceoryx2";
const SHM_PREFIX: &str = "iox2_";

/// What iceoryx2 leaves once its last node is gone, as it was before a
/// case: dropped after the case (both ends' nodes gone), it removes the
/// `iox2_` files of `/dev/shm` that appeared meanwhile and the folders of
/// [`ROOT`] if they did not exist, provided no node (anyone's) is left.
pub struct Leftovers {
    shm_before: Vec<std::ffi::OsString>,
    root_before: bool,
}

fn iox_files() -> Vec<std::ffi::OsString> {
    std::fs::read_dir("/dev/shm")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name())
                .filter(|n| n.to_string_lossy().starts_with(SHM_PREFIX))
                .collect()
        })
        .unwrap_or_default()
}

impl Leftovers {
    /// What is there now.
    pub fn now() -> Leftovers {
        Leftovers {
            shm_before: iox_files(),
            root_before: std::path::Path::new(ROOT).exists(),
        }
    }
}

impl Drop for Leftovers {
    fn drop(&mut self) {
        let root = std::path::Path::new(ROOT);
        // A node still registered (another iceoryx2 program) needs them.
        let nodes = std::fs::read_dir(root.join("nodes")).map_or(0, |d| d.count());
        if nodes > 0 {
            return;
        }
        for n in iox_files() {
            if !self.shm_before.contains(&n) {
                let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(n));
            }
        }
        if !self.root_before {
            // remove_dir: only folders that are empty.
            let _ = std::fs::remove_dir(root.join("nodes"));
            let _ = std::fs::remove_dir(root.join("services"));
            let _ = std::fs::remove_dir(root);
        }
    }
}

/// Samples a subscriber may hold queued.
const BUFFER: usize = 8;

fn err(what: &str, e: impl std::fmt::Debug) -> io::Error {
    io::Error::other(format!("iceoryx2 {what}: {e:?}"))
}

struct Ice {
    publisher: Publisher<ipc::Service, [u8], ()>,
    subscriber: Subscriber<ipc::Service, [u8], ()>,
    notifier: Option<Notifier<ipc::Service>>,
    listener: Option<Listener<ipc::Service>>,
    /// Write and read only the first and last line (`iceoryx2-loan`).
    loan: bool,
    _node: Node<ipc::Service>,
}

fn open(base: &str, parent: bool, case: &Case, loan: bool) -> io::Result<Ice> {
    // Its default log level warns on every start that no config file was
    // found; errors still show.
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new()
        .create::<ipc::Service>()
        .map_err(|e| err("node", e))?;
    let (tx, rx) = if parent {
        ("ping", "pong")
    } else {
        ("pong", "ping")
    };
    let name = |n: &str| -> io::Result<ServiceName> {
        format!("{base}/{n}")
            .as_str()
            .try_into()
            .map_err(|e| err("service name", e))
    };
    let pubsub = |n: &str| {
        node.service_builder(&name(n)?)
            .publish_subscribe::<[u8]>()
            .enable_safe_overflow(false)
            .subscriber_max_buffer_size(BUFFER)
            .history_size(0)
            .max_publishers(1)
            .max_subscribers(1)
            .open_or_create()
            .map_err(|e| err("publish_subscribe service", e))
    };
    let tx_service = pubsub(tx)?;
    let rx_service = pubsub(rx)?;
    let publisher = tx_service
        .publisher_builder()
        .initial_max_slice_len(case.size)
        .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
        .create()
        .map_err(|e| err("publisher", e))?;
    let subscriber = rx_service
        .subscriber_builder()
        .buffer_size(BUFFER)
        .create()
        .map_err(|e| err("subscriber", e))?;
    let (mut notifier, mut listener) = (None, None);
    if case.wait == Wait::Block {
        let event = |n: &str| {
            node.service_builder(&name(&format!("{n}-event"))?)
                .event()
                .open_or_create()
                .map_err(|e| err("event service", e))
        };
        notifier = Some(
            event(tx)?
                .notifier_builder()
                .create()
                .map_err(|e| err("notifier", e))?,
        );
        listener = Some(
            event(rx)?
                .listener_builder()
                .create()
                .map_err(|e| err("listener", e))?,
        );
    }
    Ok(Ice {
        publisher,
        subscriber,
        notifier,
        listener,
        loan,
        _node: node,
    })
}

impl Link for Ice {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let mut sample = self
            .publisher
            .loan_slice_uninit(msg.len())
            .map_err(|e| err("loan", e))?;
        if self.loan {
            let len = msg.len();
            let payload = sample.payload_mut();
            let last = len.saturating_sub(LINE);
            for i in (0..len.min(LINE)).chain(last.max(LINE.min(len))..len) {
                payload[i].write(msg[i]);
            }
            // SAFETY: the sample is iceoryx2's shared memory, mapped from
            // a segment the kernel zero-filled and earlier samples wrote:
            // every byte holds a value, and a `u8` has no invalid ones.
            // What is not written here is never read by the receiver,
            // which reads only the two lines written above (iceoryx2's own
            // benchmarks send samples the same way, unwritten).
            let sample = unsafe { sample.assume_init() };
            sample.send().map_err(|e| err("send", e))?;
        } else {
            sample
                .write_from_slice(msg)
                .send()
                .map_err(|e| err("send", e))?;
        }
        if let Some(n) = &self.notifier {
            n.notify().map_err(|e| err("notify", e))?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let buf = buf.as_mut_slice();
        loop {
            if let Some(s) = self.subscriber.receive().map_err(|e| err("receive", e))? {
                let p = s.payload();
                if p.len() != buf.len() {
                    return Err(io::Error::other(format!(
                        "iceoryx2 delivered {} bytes, expected {}",
                        p.len(),
                        buf.len()
                    )));
                }
                if self.loan {
                    let (len, last) = (p.len(), p.len().saturating_sub(LINE));
                    let first = len.min(LINE);
                    buf[..first].copy_from_slice(&p[..first]);
                    buf[last.max(first)..].copy_from_slice(&p[last.max(first)..]);
                } else {
                    buf.copy_from_slice(p);
                }
                return Ok(());
            }
            match &self.listener {
                Some(l) => {
                    l.blocking_wait(|_| {})
                        .map_err(|e| err("blocking_wait", e))?;
                }
                None => relax(),
            }
        }
    }
}

impl Mechanism for Iceoryx2 {
    fn name(&self) -> &'static str {
        "iceoryx2"
    }

    fn is_peer(&self) -> bool {
        true
    }

    fn throughput_wait(&self) -> Wait {
        Wait::Poll
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let left = Leftovers::now();
        let base = super::unique("iceoryx2");
        let link = open(&base, true, case, false)?;
        Ok(Setup::ready(vec![], vec![base], link).keep(left))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(open(h.arg(0)?, false, case, false)?))
    }
}

impl Mechanism for Iceoryx2Loan {
    fn name(&self) -> &'static str {
        "iceoryx2-loan"
    }

    fn is_peer(&self) -> bool {
        true
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        match (case.metric, case.wait) {
            (crate::schema::Metric::Rtt, Wait::Poll) => Ok(()),
            (crate::schema::Metric::Rtt, Wait::Block) => {
                Err("iceoryx2-loan only spins: its figures are the poll rows".into())
            }
            _ => Err(
                "iceoryx2-loan measures round trips only: the loan curve beside shm-loan".into(),
            ),
        }
    }

    fn throughput_wait(&self) -> Wait {
        Wait::Poll
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let left = Leftovers::now();
        let base = super::unique("iceoryx2");
        let link = open(&base, true, case, true)?;
        Ok(Setup::ready(vec![], vec![base], link).keep(left))
    }

    fn peer(&self, case: &Case, h: Handoff) -> io::Result<Box<dyn Link>> {
        Ok(Box::new(open(h.arg(0)?, false, case, true)?))
    }
}
