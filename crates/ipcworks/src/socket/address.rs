//! Where a stream server listens (or a client connects): a TCP host and
//! port, or a Unix socket path.

use std::fmt;
use std::path::PathBuf;

/// The address of a stream socket: what [`ServerOptions::bind`](super::ServerOptions::bind)
/// binds. Displays as the endpoint syntax (`tcp:HOST:PORT`, `unix:PATH`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// A TCP socket: a host name or address (IPv6 without brackets) and a
    /// port (0: any free one).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port number.
        port: u16,
    },
    /// A Unix-domain stream socket at this path.
    Unix(PathBuf),
}

impl Address {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Address {
        Address::Tcp {
            host: host.into(),
            port,
        }
    }

    /// A Unix socket path.
    pub fn unix(path: impl Into<PathBuf>) -> Address {
        Address::Unix(path.into())
    }

    /// `HOST:PORT` as `std::net` resolves it (an IPv6 host in brackets);
    /// for a Unix address, its path.
    pub fn authority(&self) -> String {
        match self {
            Address::Tcp { host, port } if host.contains(':') => format!("[{host}]:{port}"),
            Address::Tcp { host, port } => format!("{host}:{port}"),
            Address::Unix(p) => p.display().to_string(),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Tcp { .. } => write!(f, "tcp:{}", self.authority()),
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}
