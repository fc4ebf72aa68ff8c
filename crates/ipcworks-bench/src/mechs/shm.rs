//! `shm-spin`, `shm` and `shm-block`: ipcworks' lock-free shared-memory
//! channel (`ipcworks::channel`), two anonymous channels (ping and pong)
//! handed to the peer by descriptor. The three differ only in how a
//! waiting end waits:
//!
//! - `shm-spin`: `WaitStrategy::Spin` — busy-waits, never sleeps (poll rows);
//! - `shm`: the default `SpinThenBlock` — spins ~100 µs, then sleeps on the
//!   futex (block rows: what a default user gets);
//! - `shm-block`: `WaitStrategy::Block` — sleeps on the futex at once
//!   (block rows, beside `eventfd` and `futex`).
//!
//! A message is copied into the ring by `send` and out of it straight into
//! the harness's buffer (`recv_into_until`, through the library's message
//! interface: [`Messages`]): two copies, like every other mechanism here.
//!
//! `shm-loan` is `shm-spin` without the copies: the zero-copy API. The
//! sender borrows a slot in the ring ([`Sender::loan`]), writes the
//! message's first and last cache line in place (as a producer filling in
//! a header and a trailer would; the rest of the slot is left as it is),
//! and publishes it; the receiver borrows the message in place
//! ([`Receiver::recv_ref`]) and reads the same two lines. What crosses
//! between the cores is those lines and the ring's indices, whatever the
//! size, so its round trip should barely grow with the message. Round
//! trips only (poll), at [`LOAN_SIZES`](crate::run::LOAN_SIZES) beside
//! `shm-spin` and iceoryx2's loan API (`iceoryx2-loan`).
//!
//! `shm-batch` is `shm-spin`'s stream sent with [`Sender::send_batch`]:
//! the sender collects up to [`BATCH`] messages and publishes them with
//! one store and one look at whether the receiver sleeps (`shm-spin` pays
//! those per message, `send` by `send`); the receiver takes them one by
//! one as usual. Collecting costs one copy of each message into the
//! batch's buffer (a program that batches has its messages at hand
//! already), so the row runs at the sizes where batching matters, up to
//! 4 KiB. Throughput only: a round trip has one message in flight.

use std::io;

use ipcworks::channel::{Channel, Receiver, Sender, WaitStrategy};

use super::message::Messages;
use crate::harness::{Case, Handoff, Link, Mechanism, STOP, SYNC, Setup, tag};
use crate::schema::Wait;

/// One flavour of the channel.
pub struct Shm {
    name: &'static str,
    strategy: fn() -> WaitStrategy,
    waits: &'static [Wait],
    /// How a message is sent and received.
    kind: Kind,
}

/// How a flavour sends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `send` and `recv_into`: one copy in, one out.
    Copy,
    /// Zero-copy: loans and references instead of `send`/`recv`.
    Loan,
    /// `send_batch` of up to [`BATCH`] messages, `recv_into` one by one.
    Batch,
}

/// Busy-waiting ends.
pub static SPIN: Shm = Shm {
    name: "shm-spin",
    strategy: || WaitStrategy::Spin,
    waits: &[Wait::Poll],
    kind: Kind::Copy,
};

/// The default: spin briefly, then sleep.
pub static DEFAULT: Shm = Shm {
    name: "shm",
    strategy: WaitStrategy::default,
    waits: &[Wait::Block],
    kind: Kind::Copy,
};

/// Sleep on the futex at once.
pub static BLOCK: Shm = Shm {
    name: "shm-block",
    strategy: || WaitStrategy::Block,
    waits: &[Wait::Block],
    kind: Kind::Copy,
};

/// Busy-waiting ends, zero-copy: loans and references.
pub static LOAN: Shm = Shm {
    name: "shm-loan",
    strategy: || WaitStrategy::Spin,
    waits: &[Wait::Poll],
    kind: Kind::Loan,
};

/// Busy-waiting ends, the sender publishing in batches.
pub static BATCH_SPIN: Shm = Shm {
    name: "shm-batch",
    strategy: || WaitStrategy::Spin,
    waits: &[Wait::Poll],
    kind: Kind::Batch,
};

/// Most messages `shm-batch` publishes at once.
pub const BATCH: usize = 32;
/// Largest message `shm-batch` runs at.
const BATCH_MAX_SIZE: usize = 4096;

/// A cache line.
const LINE: usize = 64;

/// `shm-batch`'s ends: messages are collected and sent with `send_batch`
/// when [`BATCH`] are waiting, when one is the harness's sync or stop
/// message (the other side answers those), and before this side receives,
/// so nothing the other side waits for stays behind.
struct Batched {
    tx: Sender,
    rx: Receiver,
    /// Collected messages (`len` of them), buffers reused.
    pending: Vec<Vec<u8>>,
    len: usize,
    _keep: (Channel, Channel),
}

impl Batched {
    fn flush(&mut self) -> io::Result<()> {
        if self.len > 0 {
            let n = std::mem::take(&mut self.len);
            self.tx.send_batch(&self.pending[..n]).map_err(to_io)?;
        }
        Ok(())
    }
}

impl Link for Batched {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        if self.pending.len() == self.len {
            self.pending.push(Vec::with_capacity(msg.len()));
        }
        let b = &mut self.pending[self.len];
        b.clear();
        b.extend_from_slice(msg);
        self.len += 1;
        if self.len == BATCH || tag(msg) & (SYNC | STOP) != 0 {
            self.flush()?;
        }
        Ok(())
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        self.flush()?;
        let want = buf.len();
        self.rx.recv_into(buf).map_err(to_io)?;
        if buf.len() != want {
            return Err(io::Error::other(format!(
                "received {} bytes, expected {want}",
                buf.len()
            )));
        }
        Ok(())
    }
}

/// `shm-loan`'s ends: the first and last cache line of each message are
/// written into a loaned slot and read from a borrowed message.
struct Loaned {
    tx: Sender,
    rx: Receiver,
    _keep: (Channel, Channel),
}

impl Loaned {
    /// Where the message's last line starts (the first line's start when
    /// the message is one line or shorter).
    fn last_line(len: usize) -> usize {
        len.saturating_sub(LINE)
    }
}

impl Link for Loaned {
    fn send(&mut self, msg: &[u8]) -> io::Result<()> {
        let len = msg.len();
        let mut loan = self.tx.loan(len).map_err(to_io)?;
        let first = len.min(LINE);
        loan.write_at(0, &msg[..first]).map_err(to_io)?;
        let last = Self::last_line(len);
        if last > 0 {
            loan.write_at(last, &msg[last..]).map_err(to_io)?;
        }
        loan.publish().map_err(to_io)
    }

    fn recv(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        let len = buf.len();
        let m = self.rx.recv_ref().map_err(to_io)?;
        if m.len() != len {
            return Err(io::Error::other(format!(
                "received {} bytes, expected {len}",
                m.len()
            )));
        }
        let first = len.min(LINE);
        m.read_at(0, &mut buf[..first]).map_err(to_io)?;
        let last = Self::last_line(len);
        if last > 0 {
            m.read_at(last, &mut buf[last..]).map_err(to_io)?;
        }
        Ok(())
    }
}

fn to_io(e: ipcworks::Error) -> io::Error {
    e.into()
}

/// The two ends, keeping the mappings alive as long as they are. `Block`
/// calls for every flavour: they wait the channel's own way (for
/// `shm-spin` that is spinning inside the call, never sleeping).
type Ends = Messages<Sender, Receiver, (Channel, Channel)>;

impl Shm {
    /// Every flavour uses the blocking calls and lets its wait strategy do
    /// the waiting: `Spin` never sleeps (a poll row), the others may.
    fn call_style(&self) -> Wait {
        Wait::Block
    }

    fn channel(case: &Case) -> io::Result<Channel> {
        // A round trip has one message in flight: a small ring keeps it in
        // few cache lines. A stream wants room for many in flight (the
        // channel's default is 1 MiB), so the sender rarely waits.
        let cap = match case.metric {
            crate::schema::Metric::Rtt => (case.size + 64).saturating_mul(8).max(4096),
            crate::schema::Metric::Throughput => (case.size + 64).saturating_mul(3).max(1 << 20),
        };
        Channel::builder()
            .capacity_bytes(cap)
            .max_message(case.size)
            .anonymous()
            .map_err(to_io)
    }

    fn ends(
        &self,
        ping: Channel,
        pong: Channel,
        parent: bool,
        wait: Wait,
    ) -> io::Result<Box<dyn Link>> {
        let (out, inn) = if parent {
            (&ping, &pong)
        } else {
            (&pong, &ping)
        };
        let mut tx = out.sender().map_err(to_io)?;
        let mut rx = inn.receiver().map_err(to_io)?;
        tx.set_wait_strategy((self.strategy)());
        rx.set_wait_strategy((self.strategy)());
        Ok(match self.kind {
            Kind::Loan => Box::new(Loaned {
                tx,
                rx,
                _keep: (ping, pong),
            }),
            Kind::Batch => Box::new(Batched {
                tx,
                rx,
                pending: Vec::new(),
                len: 0,
                _keep: (ping, pong),
            }),
            Kind::Copy => {
                let ends: Ends = Messages::new(tx, rx, wait, (ping, pong));
                Box::new(ends)
            }
        })
    }
}

impl Mechanism for Shm {
    fn name(&self) -> &'static str {
        self.name
    }

    fn supports(&self, case: &Case) -> Result<(), String> {
        if self.kind == Kind::Batch && case.metric == crate::schema::Metric::Rtt {
            return Err(
                "shm-batch measures streams only: a round trip has one message in flight".into(),
            );
        }
        if self.kind == Kind::Batch && case.size > BATCH_MAX_SIZE {
            return Err(format!(
                "shm-batch runs up to {BATCH_MAX_SIZE} B: a larger message is a publication of its own"
            ));
        }
        if self.kind == Kind::Loan && case.metric == crate::schema::Metric::Throughput {
            return Err(
                "shm-loan measures round trips only: the loan curve beside shm-spin and iceoryx2-loan"
                    .into(),
            );
        }
        if self.waits.contains(&case.wait) {
            Ok(())
        } else {
            Err(match self.name {
                "shm-spin" | "shm-loan" | "shm-batch" => {
                    format!("{} only spins: its figures are the poll rows", self.name)
                }
                _ => format!(
                    "{} sleeps when idle: the busy-waiting figures are shm-spin's",
                    self.name
                ),
            })
        }
    }

    fn throughput_wait(&self) -> Wait {
        self.waits[0]
    }

    fn detects_death(&self) -> bool {
        // shm-loan's and shm-batch's ends are shm-spin's: one detection
        // figure for all three.
        self.kind == Kind::Copy
    }

    fn setup(&self, case: &Case) -> io::Result<Setup> {
        let ping = Self::channel(case)?;
        let pong = Self::channel(case)?;
        let fds = vec![
            ping.inheritable_fd().map_err(to_io)?,
            pong.inheritable_fd().map_err(to_io)?,
        ];
        let link = self.ends(ping, pong, true, self.call_style())?;
        Ok(Setup {
            fds,
            args: vec![],
            connect: Box::new(move |_| Ok(link)),
            keep: Vec::new(),
        })
    }

    fn peer(&self, case: &Case, mut h: Handoff) -> io::Result<Box<dyn Link>> {
        let ping = Channel::from_fd(h.fd(0)?).map_err(to_io)?;
        let pong = Channel::from_fd(h.fd(1)?).map_err(to_io)?;
        let _ = case;
        self.ends(ping, pong, false, self.call_style())
    }
}
