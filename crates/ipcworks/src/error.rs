//! The one error type of the library.

use std::io;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ipcworks, in the user's terms.
///
/// Every variant converts into [`std::io::Error`] with a fitting
/// [`io::ErrorKind`], so `?` works in functions returning `io::Result`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name given for a named object breaks a rule; `rule` says which.
    #[error("invalid name {name:?}: {rule}")]
    NameInvalid {
        /// The name as given.
        name: String,
        /// The rule it breaks, in plain words.
        rule: &'static str,
    },

    /// No object of that name exists.
    #[error("{kind} {name:?} does not exist")]
    NotFound {
        /// What kind of object was looked for ("shared memory segment", …).
        kind: &'static str,
        /// Its name.
        name: String,
    },

    /// An object of that name exists already and exclusive creation was asked.
    #[error("{kind} {name:?} already exists (open it, or remove it first)")]
    AlreadyExists {
        /// What kind of object.
        kind: &'static str,
        /// Its name.
        name: String,
    },

    /// The kernel refused access to the object.
    #[error("permission denied for {name:?} (check its owner and mode)")]
    PermissionDenied {
        /// The object's name.
        name: String,
    },

    /// An object could not be created where it was asked for: the
    /// directory is missing or not a directory, not writable, read-only …
    /// `error` is what the kernel said, as `mkfifo(1)` reports it.
    #[error("cannot create {kind} {name:?}: {error}")]
    CannotCreate {
        /// What kind of object ("FIFO", …).
        kind: &'static str,
        /// Its name or path.
        name: String,
        /// Why, from the kernel.
        error: io::Error,
    },

    /// The kernel's access rule for an operation refused it; `rule` says
    /// which rule and what would satisfy it (reading another user's
    /// process memory map needs ptrace access, …).
    #[error("{what} is not permitted: {rule}")]
    NotPermitted {
        /// What was attempted ("reading the memory map of process 42").
        what: String,
        /// The rule that refused it, and how to satisfy it.
        rule: String,
    },

    /// An object exists under the name but is not safe to use: owned by
    /// another user, looser mode than asked, a symlink, or the wrong kind.
    #[error("refusing to use {name:?}: {reason}")]
    Refused {
        /// The object's name.
        name: String,
        /// Why it was refused.
        reason: String,
    },

    /// A message is longer than the mechanism allows.
    #[error("message of {len} bytes is larger than the maximum of {max} bytes")]
    MessageTooLarge {
        /// The message's length.
        len: usize,
        /// The largest length allowed.
        max: usize,
    },

    /// The peer is gone: its end was closed or its process died.
    #[error("disconnected: the peer closed its end or died")]
    Disconnected,

    /// A blocking call reached its deadline.
    #[error("timed out")]
    Timeout,

    /// A non-blocking call could not proceed right now (full, empty, locked).
    #[error("operation would block")]
    WouldBlock,

    /// The holder of a lock died while holding it; the protected data may be
    /// inconsistent.
    #[error("the previous holder of {what} died while holding it; its data may be inconsistent")]
    OwnerDead {
        /// What was being locked.
        what: String,
    },

    /// A lock's data was left inconsistent by a dead holder and nobody
    /// repaired it; the lock can no longer be used.
    #[error(
        "{what} is not recoverable: a holder died and the next one released it without marking it consistent (remove and recreate it)"
    )]
    NotRecoverable {
        /// What was being locked.
        what: String,
    },

    /// Shared memory holds values no correct peer would write.
    #[error("shared memory is corrupted: {what}")]
    Corrupted {
        /// What was found wrong.
        what: String,
    },

    /// Another process truncated the shared-memory segment under this one
    /// (`ftruncate` of `/dev/shm/NAME`): part of what was shared is gone.
    /// What this process reads from there from now on is zeros of its own,
    /// no longer shared, so the object cannot be used any more.
    #[error(
        "the shared-memory segment {name:?} was truncated by another process; it is unusable: remove it and create it again"
    )]
    Truncated {
        /// The segment's name (`(anonymous)` for one without a name).
        name: String,
    },

    /// A system limit refused the request.
    #[error("system limit {limit} = {value} refused the request ({hint})")]
    LimitExceeded {
        /// The limit's name (e.g. `/proc/sys/fs/mqueue/msg_max`).
        limit: String,
        /// Its current value.
        value: String,
        /// What to do about it.
        hint: String,
    },

    /// The object was removed by someone else while in use (a System V
    /// queue removed with `IPC_RMID` while this process waited on it).
    #[error("{what} was removed by someone else while in use")]
    Removed {
        /// What was removed.
        what: String,
    },

    /// An argument is out of range or inconsistent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// An endpoint address does not parse: an unknown kind (`foo:bar`), a
    /// bad port, key, name or path. A usage error: the CLI exits 2.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The address as given.
        endpoint: String,
        /// What is wrong with it, and what is expected.
        reason: String,
    },

    /// A configuration is invalid or incomplete: a Zenoh configuration
    /// file that cannot be read or parsed, an endpoint that does not
    /// parse, a `zenoh:` endpoint with nothing to connect to or listen
    /// on. `reason` says what is wrong and what to add. A usage error: the
    /// CLI exits 2.
    #[error("invalid {what}: {reason}")]
    InvalidConfig {
        /// What was being configured ("Zenoh configuration file x.json5").
        what: String,
        /// What is wrong with it, and what to do.
        reason: String,
    },

    /// A `zenoh:` sender waited for a subscriber on its key and none
    /// appeared: a message published now would go to nobody.
    #[error(
        "no subscriber for zenoh:{key} appeared within {}: start the receiver first (e.g. `ipcworks recv zenoh:{key} --listen tcp/HOST:PORT`) and check that one side's --listen is the other's --connect",
        humanize(*waited)
    )]
    NoSubscriber {
        /// The key expression published on.
        key: String,
        /// How long the sender waited.
        waited: std::time::Duration,
    },

    /// Zenoh refused or failed an operation (`op`): a listener that cannot
    /// bind, a peer that cannot be reached, a malformed sample.
    #[error("zenoh {op} failed: {reason}")]
    Zenoh {
        /// The operation ("open", "declare_publisher", "put", …).
        op: &'static str,
        /// Zenoh's reason, or ours.
        reason: String,
    },

    /// A child command could not be started: the program does not exist
    /// (`source` of kind `NotFound`), is not executable
    /// (`PermissionDenied`), or the like. The reason is the error's
    /// [`source`](std::error::Error::source), not repeated in its message.
    #[error("cannot run {program:?}")]
    Spawn {
        /// The program, as given.
        program: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },

    /// Any other failure of a system call, with the call named.
    ///
    /// The message includes the kernel's error (`connect failed: Connection
    /// refused (os error 111)`), so [`source`](std::error::Error::source)
    /// returns `None`: a report walking the chain (anyhow, `{:#}`) prints
    /// the OS error once. Match the variant to reach `error` itself.
    #[error("{op} failed: {error}")]
    Io {
        /// The operation (usually the system call) that failed.
        op: &'static str,
        /// The error the kernel returned. (Named `source` before; renamed
        /// so it is no longer also reported as the error's source.)
        error: io::Error,
    },
}

impl Error {
    /// Wraps a system call's error, naming the call.
    pub fn io(op: &'static str, source: impl Into<io::Error>) -> Self {
        Error::Io {
            op,
            error: source.into(),
        }
    }

    /// Builds a [`Error::Corrupted`] with a description.
    pub fn corrupted(what: impl Into<String>) -> Self {
        Error::Corrupted { what: what.into() }
    }

    /// The `io::ErrorKind` this error maps to.
    pub fn kind(&self) -> io::ErrorKind {
        use io::ErrorKind as K;
        match self {
            Error::NameInvalid { .. }
            | Error::InvalidArgument(_)
            | Error::InvalidEndpoint { .. }
            | Error::InvalidConfig { .. } => K::InvalidInput,
            Error::NoSubscriber { .. } => K::TimedOut,
            Error::Zenoh { .. } => K::Other,
            Error::NotFound { .. } => K::NotFound,
            Error::AlreadyExists { .. } => K::AlreadyExists,
            Error::CannotCreate { error, .. } => error.kind(),
            Error::PermissionDenied { .. } | Error::NotPermitted { .. } | Error::Refused { .. } => {
                K::PermissionDenied
            }
            Error::MessageTooLarge { .. } => K::InvalidInput,
            Error::Disconnected => K::BrokenPipe,
            Error::Timeout => K::TimedOut,
            Error::WouldBlock => K::WouldBlock,
            Error::OwnerDead { .. }
            | Error::NotRecoverable { .. }
            | Error::Corrupted { .. }
            | Error::Truncated { .. } => K::InvalidData,
            Error::LimitExceeded { .. } => K::QuotaExceeded,
            Error::Removed { .. } => K::NotFound,
            Error::Io { error, .. } => error.kind(),
            Error::Spawn { source, .. } => source.kind(),
        }
    }
}

/// A duration as people write it: `5s`, `1.5s`, `200ms`.
fn humanize(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        io::Error::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_io_error_names_the_call_and_the_os_error_once() {
        let e = Error::io("connect", io::Error::from_raw_os_error(111));
        assert_eq!(
            e.to_string(),
            "connect failed: Connection refused (os error 111)"
        );
        // The message holds the OS error, so it is not also the source: a
        // report walking the chain prints it once.
        assert!(std::error::Error::source(&e).is_none());
        let io: io::Error = e.into();
        assert_eq!(io.kind(), io::ErrorKind::ConnectionRefused);
        assert!(std::error::Error::source(&io).is_none());
    }
}
