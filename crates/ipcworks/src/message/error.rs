//! Per-operation errors, as `crossbeam-channel` and `std::sync::mpsc` have
//! them: the cases a caller of `try_recv`, `recv_timeout`, `try_send` or
//! `send_timeout` must tell apart are variants of their own, so a `match`
//! over them is exhaustive; everything else (corruption, I/O, a removed
//! queue, a truncated segment, a message too large) stays reachable
//! through `Other`.
//!
//! Each converts into [`Error`] (and so into [`std::io::Error`]), so `?`
//! keeps working in functions returning [`crate::Result`] or
//! `io::Result`: `Empty` and `Full` become [`Error::WouldBlock`],
//! `Timeout` [`Error::Timeout`], `Disconnected` [`Error::Disconnected`],
//! and `Other(e)` is `e`.

use std::fmt;
use std::io;

use crate::Error;

/// Why [`try_recv`](super::MessageReceiver::try_recv) returned no message.
#[derive(Debug)]
pub enum TryRecvError {
    /// Nothing to receive now (the queue or channel is empty).
    Empty,
    /// The peer is gone and everything it sent was received: nothing will
    /// come any more.
    Disconnected,
    /// Anything else: corruption found in shared memory, an I/O error, a
    /// queue removed by someone else, a truncated segment …
    Other(Error),
}

/// Why [`recv_timeout`](super::MessageReceiver::recv_timeout) returned no
/// message.
#[derive(Debug)]
pub enum RecvTimeoutError {
    /// The timeout passed with nothing to receive.
    Timeout,
    /// The peer is gone and everything it sent was received.
    Disconnected,
    /// Anything else (see [`TryRecvError::Other`]).
    Other(Error),
}

/// Why [`try_send`](super::MessageSender::try_send) did not send.
#[derive(Debug)]
pub enum TrySendError {
    /// No room now (the queue or channel is full).
    Full,
    /// The receiver is gone: nobody would ever receive the message.
    Disconnected,
    /// Anything else: the message is too large
    /// ([`Error::MessageTooLarge`]), an invalid priority or type,
    /// corruption, an I/O error …
    Other(Error),
}

/// Why [`send_timeout`](super::MessageSender::send_timeout) did not send.
#[derive(Debug)]
pub enum SendTimeoutError {
    /// The timeout passed without room for the message.
    Timeout,
    /// The receiver is gone.
    Disconnected,
    /// Anything else (see [`TrySendError::Other`]).
    Other(Error),
}

/// The `Display`, `Error` and conversion impls of one per-operation error
/// whose "not now" variant is `$would`, which stands for `Error::$err`.
macro_rules! conversions {
    ($name:ident, $would:ident, $err:ident, $text:literal) => {
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $name::$would => f.write_str($text),
                    $name::Disconnected => fmt::Display::fmt(&Error::Disconnected, f),
                    $name::Other(e) => fmt::Display::fmt(e, f),
                }
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $name::Other(e) => e.source(),
                    _ => None,
                }
            }
        }

        impl From<Error> for $name {
            /// Sorts an [`Error`] into this operation's cases:
            #[doc = concat!("`Error::", stringify!($err), "` is `", stringify!($would), "`,")]
            /// `Error::Disconnected` is `Disconnected`, the rest `Other`.
            fn from(e: Error) -> Self {
                match e {
                    Error::$err => $name::$would,
                    Error::Disconnected => $name::Disconnected,
                    e => $name::Other(e),
                }
            }
        }

        impl From<$name> for Error {
            fn from(e: $name) -> Self {
                match e {
                    $name::$would => Error::$err,
                    $name::Disconnected => Error::Disconnected,
                    $name::Other(e) => e,
                }
            }
        }

        impl From<$name> for io::Error {
            fn from(e: $name) -> Self {
                Error::from(e).into()
            }
        }

        impl $name {
            /// Whether the peer is gone.
            pub fn is_disconnected(&self) -> bool {
                matches!(self, $name::Disconnected)
            }
        }
    };
}

conversions!(TryRecvError, Empty, WouldBlock, "nothing to receive now");
conversions!(
    RecvTimeoutError,
    Timeout,
    Timeout,
    "timed out waiting for a message"
);
conversions!(TrySendError, Full, WouldBlock, "no room to send now");
conversions!(
    SendTimeoutError,
    Timeout,
    Timeout,
    "timed out waiting for room to send"
);

impl TryRecvError {
    /// Whether there was nothing to receive now.
    pub fn is_empty(&self) -> bool {
        matches!(self, TryRecvError::Empty)
    }
}

impl RecvTimeoutError {
    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, RecvTimeoutError::Timeout)
    }
}

impl TrySendError {
    /// Whether there was no room now.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySendError::Full)
    }
}

impl SendTimeoutError {
    /// Whether the timeout passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, SendTimeoutError::Timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_sort_and_convert_back() {
        assert!(TryRecvError::from(Error::WouldBlock).is_empty());
        assert!(TryRecvError::from(Error::Disconnected).is_disconnected());
        assert!(matches!(
            TryRecvError::from(Error::corrupted("x")),
            TryRecvError::Other(Error::Corrupted { .. })
        ));
        assert!(RecvTimeoutError::from(Error::Timeout).is_timeout());
        assert!(TrySendError::from(Error::WouldBlock).is_full());
        assert!(SendTimeoutError::from(Error::Timeout).is_timeout());
        assert!(matches!(Error::from(TrySendError::Full), Error::WouldBlock));
        assert!(matches!(
            Error::from(RecvTimeoutError::Timeout),
            Error::Timeout
        ));
        let io: io::Error = TryRecvError::Disconnected.into();
        assert_eq!(io.kind(), io::ErrorKind::BrokenPipe);
        let io: io::Error = SendTimeoutError::Timeout.into();
        assert_eq!(io.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            TryRecvError::Other(Error::Timeout).to_string(),
            Error::Timeout.to_string()
        );
    }

    #[test]
    fn question_mark_works_in_both_result_types() {
        fn lib() -> crate::Result<()> {
            Err(TryRecvError::Empty)?
        }
        fn io() -> io::Result<()> {
            Err(RecvTimeoutError::Timeout)?
        }
        assert!(matches!(lib(), Err(Error::WouldBlock)));
        assert_eq!(io().unwrap_err().kind(), io::ErrorKind::TimedOut);
    }
}
