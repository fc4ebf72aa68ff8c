//! Message queues kept by the kernel: discrete messages handed from senders
//! to receivers in order, a sender waiting while the queue is full and a
//! receiver while it is empty.
//!
//! Linux has two, with different rules:
//!
//! | | [`posix::Queue`] | [`sysv::Queue`] |
//! |---|---|---|
//! | named by | a name, `/jobs` (`mq_open`) | a number, the key (`msgget`), often from `ftok(path, id)` |
//! | order | highest **priority** first, FIFO within a priority | FIFO, and the receiver picks by **type** |
//! | limits | `/proc/sys/fs/mqueue/{msg_max,msgsize_max,queues_max}` | `/proc/sys/kernel/{msgmax,msgmnb,msgmni}` |
//! | waiting | timed (`mq_timedsend`), `poll`/`epoll` on the descriptor | no timeout: no-wait calls polled |
//! | seen with | `ls /dev/mqueue` (when mounted) | `ipcs -q` |
//!
//! Both kinds persist until removed, like files: messages sent by one
//! process wait for a receiver started later, and a queue outlives its
//! creator unless removed ([`posix::Queue::remove`],
//! [`sysv::Queue::remove`]). The builders' `remove_on_drop(true)` makes the
//! creator remove it, for tests and demos.
//!
//! ```no_run
//! use ipcworks::mq::posix::Queue;
//!
//! # fn main() -> ipcworks::Result<()> {
//! let q = Queue::options().capacity(8).max_message(256).open_or_create("jobs")?.0;
//! q.send(b"low", 1)?;
//! q.send(b"urgent", 9)?;
//! assert_eq!(q.recv()?, (b"urgent".to_vec(), 9));
//! # Ok(())
//! # }
//! ```

pub mod posix;
pub mod sysv;
