//! Endpoints: one address names one mechanism (`shm:jobs`,
//! `tcp:127.0.0.1:7000`, …). The CLI and the benchmark use this parser.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::{Error, Result, name};

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
}

const KINDS: &str =
    "shm:NAME, queue:NAME, mq:NAME, sysv:KEY, fifo:PATH, unix:PATH, tcp:HOST:PORT or -";

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
        }
    }
}

/// Opens a priority queue (`mq:` or `queue:`) for an endpoint, and makes it
/// a [`DynSender`]/[`DynReceiver`] carrying [`Meta::priority`]: POSIX and
/// native queues share this code. `$options` is the queue's builder type
/// (`new`, `capacity`, `max_message`, `open_or_create`); `$queue` has
/// `send(msg, prio)`, `recv()` and `recv_timeout(t)` returning
/// `(Vec<u8>, u32)`.
macro_rules! priority_queue_endpoint {
    ($queue:ty, $options:ty) => {
        /// Opens the queue for an endpoint; with `create`, creates it if
        /// missing (mode 0600, persistent, sizes from `opts`).
        pub(crate) fn open_endpoint(
            name: &str,
            opts: &$crate::endpoint::Options,
            create: bool,
        ) -> $crate::Result<$queue> {
            let mut o = <$options>::new();
            if let Some(c) = opts.capacity {
                o.capacity(c);
            }
            if let Some(m) = opts.max_message {
                o.max_message(m);
            }
            if create {
                Ok(o.open_or_create(name)?.0)
            } else {
                o.open(name)
            }
        }

        impl $crate::endpoint::DynSender for $queue {
            fn send(&mut self, msg: &[u8], meta: $crate::endpoint::Meta) -> $crate::Result<()> {
                <$queue>::send(self, msg, meta.priority)
            }
        }

        impl $crate::endpoint::DynReceiver for $queue {
            fn recv(
                &mut self,
                timeout: Option<std::time::Duration>,
            ) -> $crate::Result<(Vec<u8>, $crate::endpoint::Meta)> {
                let (msg, priority) = match timeout {
                    Some(t) => self.recv_timeout(t)?,
                    None => <$queue>::recv(self)?,
                };
                Ok((
                    msg,
                    $crate::endpoint::Meta {
                        priority,
                        ..Default::default()
                    },
                ))
            }
        }
    };
}
pub(crate) use priority_queue_endpoint;

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

/// What travels beside a message's bytes on the mechanisms that have it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// Priority (POSIX `mq:` and native `queue:`; higher comes out first).
    pub priority: u32,
    /// Message type (System V `sysv:`; must be ≥ 1 when sending).
    pub msg_type: i64,
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
}

/// The sending end of any mechanism, chosen at run time by [`Endpoint`].
pub trait DynSender: Send {
    /// Sends one message, blocking while the mechanism is full.
    fn send(&mut self, msg: &[u8], meta: Meta) -> Result<()>;
}

/// The receiving end of any mechanism, chosen at run time by [`Endpoint`].
pub trait DynReceiver: Send {
    /// Receives one message, waiting at most `timeout` (for ever if `None`).
    /// [`Error::Disconnected`] means the stream ended or the peer is gone.
    fn recv(&mut self, timeout: Option<std::time::Duration>) -> Result<(Vec<u8>, Meta)>;

    /// The address this receiver listens on, for the kinds that listen
    /// (`tcp:`, `unix:`), with the port the kernel chose when the endpoint
    /// asked for port 0 (`getsockname`). `None` for the others.
    fn local_endpoint(&self) -> Option<Endpoint> {
        None
    }
}

#[cfg(loom)]
fn not_built(ep: &Endpoint) -> Error {
    Error::InvalidArgument(format!(
        "endpoint {ep}: this kind of endpoint is not available in this build"
    ))
}

/// Opens `ep` for sending. A queue (`mq:`, `queue:`, `sysv:`) that does not
/// exist is created (mode 0600, persistent), so the message waits for a
/// receiver started later.
pub fn open_sender(ep: &Endpoint, opts: &Options) -> Result<Box<dyn DynSender>> {
    let _ = opts;
    #[allow(clippy::match_single_binding)]
    match ep {
        #[cfg(not(loom))]
        Endpoint::Queue(name) => Ok(Box::new(crate::queue::open_endpoint(name, opts, true)?)),
        Endpoint::Mq(name) => Ok(Box::new(crate::mq::posix::open_endpoint(name, opts, true)?)),
        Endpoint::Sysv(key) => Ok(Box::new(crate::mq::sysv::open_endpoint(*key, opts, true)?)),
        Endpoint::Fifo(_) | Endpoint::Unix(_) | Endpoint::Tcp { .. } | Endpoint::Stdio => {
            crate::socket::stream::open_sender(ep, opts)
        }
        #[cfg(not(loom))]
        Endpoint::Shm(name) => crate::channel::open_sender(name, opts),
        #[cfg(loom)]
        other => Err(not_built(other)),
    }
}

/// Opens `ep` for receiving, creating it where the mechanism's receiver is
/// the creator (a FIFO, a listening socket, a channel). A persistent queue
/// that does not exist is created only with [`Options::create_queue`].
pub fn open_receiver(ep: &Endpoint, opts: &Options) -> Result<Box<dyn DynReceiver>> {
    let _ = opts;
    #[allow(clippy::match_single_binding)]
    match ep {
        #[cfg(not(loom))]
        Endpoint::Queue(name) => Ok(Box::new(crate::queue::open_endpoint(
            name,
            opts,
            opts.create_queue,
        )?)),
        Endpoint::Mq(name) => Ok(Box::new(crate::mq::posix::open_endpoint(
            name,
            opts,
            opts.create_queue,
        )?)),
        Endpoint::Sysv(key) => Ok(Box::new(crate::mq::sysv::EndpointReceiver {
            queue: crate::mq::sysv::open_endpoint(*key, opts, opts.create_queue)?,
            mtype: opts.recv_type,
        })),
        Endpoint::Fifo(_) | Endpoint::Unix(_) | Endpoint::Tcp { .. } | Endpoint::Stdio => {
            crate::socket::stream::open_receiver(ep, opts)
        }
        #[cfg(not(loom))]
        Endpoint::Shm(name) => crate::channel::open_receiver(name, opts),
        #[cfg(loom)]
        other => Err(not_built(other)),
    }
}
