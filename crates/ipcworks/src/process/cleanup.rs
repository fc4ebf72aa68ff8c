//! Removing named objects when this process is ended by a signal.

use crate::registry::{self, Kind};
use crate::sys::Errno;
use crate::{Error, Result};

/// Most objects [`remove_on_terminate`] keeps, over all its calls: the
/// handler has room for 32 removals, and each object takes two (itself and
/// its registry entry).
const MAX_OBJECTS: usize = 16;

/// Arranges for named objects to be removed if this process is ended by
/// `SIGINT` (Ctrl-C), `SIGTERM` or `SIGHUP`; then the signal takes its
/// default effect, so the process dies of it as a shell expects (status
/// 130 after Ctrl-C). A command or demo interrupted half-way leaves no
/// segment, queue, FIFO or socket behind.
///
/// Each object is given as its [`Kind`] and its name as the
/// [`registry`] knows it: the `/dev/shm` file name of a segment (a
/// mutex's, semaphore's, channel's or queue's segment included), a POSIX
/// semaphore's or queue's name without the leading `/`, a System V key in
/// decimal, the absolute path of a FIFO or Unix socket
/// ([`registry::path_name`]). The object's registry entry goes with it.
/// An object that does not exist (yet, or any more) when the signal
/// comes is skipped: call this before creating the objects, so no window
/// is left.
///
/// Calls add to the list, at most 16 objects in all (more is
/// [`Error::LimitExceeded`]); `&[]` only installs the handler. The handler
/// makes only async-signal-safe system calls (`unlink`, `mq_unlink`,
/// `msgget`, `msgctl`). It replaces this process's handlers of the three
/// signals: for programs that own their signal handling (a command-line
/// tool, a demo), not for a library to call on its own.
///
/// (Replaces `sys::signal::remove_on_terminate` and `registry::removals`,
/// private since the kernel layer is.)
///
/// ```no_run
/// use ipcworks::process::remove_on_terminate;
/// use ipcworks::registry::Kind;
///
/// # fn main() -> ipcworks::Result<()> {
/// remove_on_terminate(&[(Kind::PosixQueue, "jobs"), (Kind::Fifo, "/tmp/jobs.fifo")])?;
/// # Ok(())
/// # }
/// ```
#[doc(alias = "sigaction")]
pub fn remove_on_terminate(objects: &[(Kind, &str)]) -> Result<()> {
    let mut removals = Vec::new();
    for &(kind, name) in objects {
        if kind == Kind::SysvQueue && name.parse::<i32>().is_err() {
            return Err(Error::InvalidArgument(format!(
                "System V queue key {name:?} is not a number"
            )));
        }
        removals.extend(registry::removals(kind, name));
    }
    crate::sys::signal::remove_on_terminate(&removals).map_err(|e| match e {
        Errno::NOSPC => Error::LimitExceeded {
            limit: "objects removed on termination".into(),
            value: MAX_OBJECTS.to_string(),
            hint: format!("remove_on_terminate keeps at most {MAX_OBJECTS} objects"),
        },
        Errno::INVAL => Error::InvalidArgument("a name to remove holds a NUL byte".into()),
        other => Error::io("sigaction", other),
    })
}
