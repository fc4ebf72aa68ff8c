//! System V IPC calls (libc: rustix has none).

use std::io;

/// `msgctl(msgget(key, 0), IPC_RMID, NULL)`: removes the System V message
/// queue with `key`.
#[doc(alias = "msgctl")]
pub fn remove_queue(key: i32) -> io::Result<()> {
    // SAFETY: msgget takes plain integers.
    let id = unsafe { libc::msgget(key, 0) };
    if id == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: IPC_RMID ignores the buffer pointer, so NULL is allowed.
    if unsafe { libc::msgctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
