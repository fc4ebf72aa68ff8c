//! Endpoints, the top floor of the library: one address names one
//! mechanism (`shm:jobs`, `queue:jobs`, `mq:jobs`, `sysv:0x2a`,
//! `fifo:/tmp/f`, `unix:/tmp/s`, `tcp:127.0.0.1:7000`, `zenoh:site/jobs`,
//! `-`), and
//! [`open_sender`]/[`open_receiver`] open it as a
//! [`MessageSender`]/[`MessageReceiver`] trait object. The CLI's `send`,
//! `recv` and `relay` go through here.
//!
//! Each kind's policy — who creates the object, who listens, what `-`
//! means, what `--create` does — lives in its own file: [`shm`] (the
//! channel), [`queue`] (the native queue), [`mq`] (POSIX queues),
//! [`sysv`] (System V queues), [`stream`] (FIFOs, Unix and TCP
//! streams, stdio) and [`zenoh`] (publish/subscribe across hosts,
//! feature `zenoh`). The
//! mechanisms below know nothing of endpoints: dispatch happens here, on
//! top, and nothing below imports this module.
//!
//! ```no_run
//! use ipcworks::endpoint::{Endpoint, Options, open_receiver, open_sender};
//! use ipcworks::message::Meta;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let ep: Endpoint = "mq:jobs".parse()?;
//! let mut tx = open_sender(&ep, &Options::default())?; // creates mq:jobs (0600)
//! tx.send_with(b"urgent", Meta::with_priority(9))?;
//! let mut rx = open_receiver(&ep, &Options::default())?;
//! let (msg, meta) = rx.recv_with_meta()?;
//! assert_eq!((msg.as_slice(), meta.priority), (&b"urgent"[..], 9));
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::message::{MessageReceiver, MessageSender};
use crate::{Error, Result, name};

pub mod mq;
pub mod multi;
pub mod queue;
pub mod relay;
pub mod shm;
pub mod stream;
pub mod sysv;
pub mod zenoh;

#[cfg(feature = "server")]
#[cfg_attr(docsrs, doc(cfg(feature = "server")))]
pub use stream::bind_server;
pub use zenoh::ZenohOptions;

/// A parsed endpoint address: `"shm:jobs".parse::<Endpoint>()`. An
/// address that does not parse is [`Error::InvalidEndpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `shm:NAME` — shared-memory channel.
    Shm(String),
    /// `queue:NAME` — native shared-memory priority queue.
    Queue(String),
    /// `mq:NAME` — POSIX message queue `/NAME`.
    Mq(String),
    /// `sysv:KEY` — System V message queue (decimal or `0x` key).
    Sysv(i32),
    /// `fifo:PATH` — named pipe.
    Fifo(PathBuf),
    /// `unix:PATH` — Unix-domain stream socket.
    Unix(PathBuf),
    /// `tcp:HOST:PORT` — TCP socket (`HOST` may be `[::1]`).
    Tcp {
        /// Host name or address (brackets removed).
        host: String,
        /// Port number.
        port: u16,
    },
    /// `-` — standard input/output.
    Stdio,
    /// `zenoh:KEYEXPR` — Zenoh publication/subscription on a key
    /// expression, across hosts (feature `zenoh`; see [`zenoh`]).
    Zenoh(String),
}

const KINDS: &str = "shm:NAME, queue:NAME, mq:NAME, sysv:KEY, fifo:PATH, unix:PATH, \
     tcp:HOST:PORT, zenoh:KEYEXPR or -";

impl FromStr for Endpoint {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| {
            Err(Error::InvalidEndpoint {
                endpoint: s.to_string(),
                reason: why.to_string(),
            })
        };
        if s == "-" {
            return Ok(Endpoint::Stdio);
        }
        let Some((kind, rest)) = s.split_once(':') else {
            return bad(&format!("expected one of {KINDS}"));
        };
        let named = |rest: &str| -> Result<String> {
            match name::validate(rest) {
                Ok(n) => Ok(n.to_string()),
                Err(e @ Error::NameInvalid { .. }) => Err(Error::InvalidEndpoint {
                    endpoint: s.to_string(),
                    reason: e.to_string(),
                }),
                Err(e) => Err(e),
            }
        };
        match kind {
            "shm" => Ok(Endpoint::Shm(named(rest)?)),
            "queue" => Ok(Endpoint::Queue(named(rest)?)),
            "mq" => Ok(Endpoint::Mq(named(rest)?)),
            "sysv" => {
                let key = if let Some(hex) =
                    rest.strip_prefix("0x").or_else(|| rest.strip_prefix("0X"))
                {
                    u32::from_str_radix(hex, 16).map(|k| k as i32).ok()
                } else {
                    rest.parse::<i32>().ok()
                };
                match key {
                    Some(0) => {
                        bad("key 0 is IPC_PRIVATE, which cannot be found again; pick another key")
                    }
                    Some(k) => Ok(Endpoint::Sysv(k)),
                    None => bad("the key must be a decimal or 0x-prefixed hexadecimal number"),
                }
            }
            "fifo" | "unix" => {
                if rest.is_empty() {
                    return bad("the path is empty");
                }
                if rest.contains('\0') {
                    return bad("the path contains NUL");
                }
                let p = PathBuf::from(rest);
                Ok(if kind == "fifo" {
                    Endpoint::Fifo(p)
                } else {
                    Endpoint::Unix(p)
                })
            }
            "tcp" => {
                let Some((host, port)) = rest.rsplit_once(':') else {
                    return bad("expected tcp:HOST:PORT");
                };
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                if host.is_empty() {
                    return bad("the host is empty");
                }
                match port.parse::<u16>() {
                    Ok(port) => Ok(Endpoint::Tcp {
                        host: host.to_string(),
                        port,
                    }),
                    Err(_) => bad("the port must be a number from 0 to 65535"),
                }
            }
            "zenoh" => match zenoh::check_key(rest) {
                Ok(()) => Ok(Endpoint::Zenoh(rest.to_string())),
                Err(why) => bad(&why),
            },
            other => bad(&format!("unknown kind {other:?}; expected one of {KINDS}")),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Shm(n) => write!(f, "shm:{n}"),
            Endpoint::Queue(n) => write!(f, "queue:{n}"),
            Endpoint::Mq(n) => write!(f, "mq:{n}"),
            Endpoint::Sysv(k) => write!(f, "sysv:{:#x}", *k as u32),
            Endpoint::Fifo(p) => write!(f, "fifo:{}", p.display()),
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "tcp:[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Endpoint::Stdio => write!(f, "-"),
            Endpoint::Zenoh(k) => write!(f, "zenoh:{k}"),
        }
    }
}

/// Options for opening an endpoint by address.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Byte streams carry length-prefixed frames instead of lines.
    pub binary: bool,
    /// Which System V message type to receive (0 = any; see `msgrcv(2)`).
    pub recv_type: i64,
    /// Largest message accepted (mechanism default when `None`).
    pub max_message: Option<usize>,
    /// Capacity in messages of a queue or channel that gets created
    /// (mechanism default when `None`).
    pub capacity: Option<usize>,
    /// Whether [`open_receiver`] creates a persistent queue (`mq:`,
    /// `queue:`, `sysv:`) that does not exist yet. Off by default, so a
    /// receiver on a mistyped name fails with [`Error::NotFound`] instead
    /// of leaving a queue behind. [`open_sender`] always creates one: the
    /// message waits there for its receiver.
    pub create_queue: bool,
    /// How a `zenoh:` endpoint reaches its peers.
    pub zenoh: ZenohOptions,
}

/// Opens `ep` for sending. A queue (`mq:`, `queue:`, `sysv:`) that does not
/// exist is created (mode 0600, persistent), so the message waits for a
/// receiver started later. [`Meta`](crate::message::Meta) carries the
/// priority (`mq:`, `queue:`) or type (`sysv:`).
pub fn open_sender(ep: &Endpoint, opts: &Options) -> Result<Box<dyn MessageSender>> {
    match ep {
        Endpoint::Shm(name) => Ok(Box::new(shm::open_sender(name, opts)?)),
        Endpoint::Queue(name) => Ok(Box::new(queue::open(name, opts, true)?)),
        Endpoint::Mq(name) => Ok(Box::new(mq::open(name, opts, true)?)),
        Endpoint::Sysv(key) => Ok(Box::new(sysv::open(*key, opts, true)?)),
        Endpoint::Fifo(_) | Endpoint::Unix(_) | Endpoint::Tcp { .. } | Endpoint::Stdio => {
            Ok(Box::new(stream::StreamSender::open(ep, opts)?))
        }
        #[cfg(feature = "zenoh")]
        Endpoint::Zenoh(key) => Ok(Box::new(zenoh::open_sender(key, opts)?)),
        #[cfg(not(feature = "zenoh"))]
        Endpoint::Zenoh(_) => Err(no_zenoh(ep)),
    }
}

/// Opens `ep` for receiving, creating it where the mechanism's receiver is
/// the creator (a FIFO, a listening socket, a channel). A persistent queue
/// that does not exist is created only with [`Options::create_queue`].
pub fn open_receiver(ep: &Endpoint, opts: &Options) -> Result<Box<dyn MessageReceiver>> {
    open_receiver_listening(ep, opts).map(|(rx, _)| rx)
}

/// [`open_receiver`], and for the kinds that listen (`tcp:`, `unix:`) the
/// address it listens on, with the port the kernel chose when `ep` asked
/// for port 0 (`getsockname`), for a caller to tell its peers; `None` for
/// the kinds that do not listen.
pub fn open_receiver_listening(
    ep: &Endpoint,
    opts: &Options,
) -> Result<(Box<dyn MessageReceiver>, Option<Endpoint>)> {
    let rx: Box<dyn MessageReceiver> = match ep {
        Endpoint::Shm(name) => Box::new(shm::open_receiver(name, opts)?),
        Endpoint::Queue(name) => Box::new(queue::open(name, opts, opts.create_queue)?),
        Endpoint::Mq(name) => Box::new(mq::open(name, opts, opts.create_queue)?),
        Endpoint::Sysv(key) => Box::new(sysv::open_receiver(*key, opts)?),
        Endpoint::Fifo(_) | Endpoint::Unix(_) | Endpoint::Tcp { .. } | Endpoint::Stdio => {
            let rx = stream::StreamReceiver::open(ep, opts)?;
            let local = rx.local_endpoint();
            return Ok((Box::new(rx), local));
        }
        #[cfg(feature = "zenoh")]
        Endpoint::Zenoh(key) => Box::new(zenoh::open_receiver(key, opts)?.0),
        #[cfg(not(feature = "zenoh"))]
        Endpoint::Zenoh(_) => return Err(no_zenoh(ep)),
    };
    Ok((rx, None))
}

/// The error for a `zenoh:` endpoint in a build without Zenoh.
#[cfg(not(feature = "zenoh"))]
fn no_zenoh(ep: &Endpoint) -> Error {
    Error::InvalidEndpoint {
        endpoint: ep.to_string(),
        reason: "this build of ipcworks has no Zenoh: build it with the `zenoh` feature".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_and_prints_it_back() {
        for s in [
            "shm:jobs",
            "queue:q",
            "mq:m",
            "sysv:0x2a",
            "fifo:/tmp/f",
            "unix:/tmp/s",
            "tcp:127.0.0.1:7000",
            "tcp:[::1]:80",
            "-",
        ] {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
        }
        assert_eq!("sysv:42".parse::<Endpoint>().unwrap(), Endpoint::Sysv(42));
    }

    #[test]
    fn rejects_bad_ones_with_reasons() {
        for (s, needle) in [
            ("jobs", "expected one of"),
            ("foo:bar", "unknown kind"),
            ("shm:a/b", "'/'"),
            ("sysv:0", "IPC_PRIVATE"),
            ("sysv:zz", "decimal"),
            ("tcp:host", "tcp:HOST:PORT"),
            ("tcp:h:99999", "port"),
            ("unix:", "empty"),
        ] {
            let e = s.parse::<Endpoint>().unwrap_err();
            assert!(
                matches!(&e, Error::InvalidEndpoint { endpoint, .. } if endpoint == s),
                "{s}: {e:?}"
            );
            let e = e.to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }
}
