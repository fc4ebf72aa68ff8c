//! Names of named objects (segments, semaphores, queues): one set of rules,
//! each broken rule reported in plain words.

use crate::sys::Errno;
use crate::{Error, Result};

/// The longest name accepted, in bytes. Linux allows 255 for a file in
/// `/dev/shm`; the rest is kept for the prefixes ipcworks and glibc add
/// (`sem.`, `ipcworks.mutex.`).
pub const MAX_NAME_LEN: usize = 200;

/// Checks a name for a POSIX named object and returns it without its
/// optional leading `/` (`"/jobs"` and `"jobs"` name the same object).
///
/// Rules: 1 to [`MAX_NAME_LEN`] bytes; no `/` after the leading one; no NUL
/// or control characters; not `.` or `..`.
pub fn validate(name: &str) -> Result<&str> {
    let bad = |rule| {
        Err(Error::NameInvalid {
            name: name.to_string(),
            rule,
        })
    };
    let bare = name.strip_prefix('/').unwrap_or(name);
    if bare.is_empty() {
        return bad("a name must not be empty");
    }
    if bare.len() > MAX_NAME_LEN {
        return bad("a name must be at most 200 bytes long");
    }
    if bare.contains('/') {
        return bad("a name must not contain '/' (except one leading '/')");
    }
    if bare.chars().any(|c| c == '\0' || c.is_control()) {
        return bad("a name must not contain NUL or control characters");
    }
    if bare == "." || bare == ".." {
        return bad("a name must not be '.' or '..'");
    }
    Ok(bare)
}

/// Turns an errno from a call on a named POSIX object (`/dev/shm`,
/// `/dev/mqueue`) into the user's terms: missing, taken, not ours to use, a
/// symlink planted under the name, a name too long; anything else is
/// [`Error::Io`] naming the call `op`. `kind` names what the object is.
pub(crate) fn errno_error(e: Errno, kind: &'static str, name: &str, op: &'static str) -> Error {
    let name = name.to_string();
    match e {
        Errno::NOENT => Error::NotFound { kind, name },
        Errno::EXIST => Error::AlreadyExists { kind, name },
        Errno::ACCESS | Errno::PERM => Error::PermissionDenied { name },
        Errno::LOOP => Error::Refused {
            name,
            reason: "it is a symbolic link".into(),
        },
        Errno::NAMETOOLONG => Error::NameInvalid {
            name,
            rule: "a name must be at most 200 bytes long",
        },
        other => Error::io(op, other),
    }
}

/// Opens a named object if it exists, else creates it: `create` must fail
/// with [`Error::AlreadyExists`] when the name is taken, `open` with
/// [`Error::NotFound`] when it is not. Loops, because the object may vanish
/// between a failed create and the open; gives up (naming `op`) when another
/// process keeps creating and removing it. Returns the object and whether
/// this call created it.
pub(crate) fn open_or_create<T>(
    op: &'static str,
    mut create: impl FnMut() -> Result<T>,
    mut open: impl FnMut() -> Result<T>,
) -> Result<(T, bool)> {
    for _ in 0..100 {
        match create() {
            Ok(t) => return Ok((t, true)),
            Err(Error::AlreadyExists { .. }) => {}
            Err(e) => return Err(e),
        }
        match open() {
            Ok(t) => return Ok((t, false)),
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Error::io(
        op,
        std::io::Error::other(
            "the name kept appearing and vanishing; another process is racing on it",
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_and_slashed() {
        assert_eq!(validate("jobs").unwrap(), "jobs");
        assert_eq!(validate("/jobs").unwrap(), "jobs");
        assert_eq!(validate("a.b-c_d").unwrap(), "a.b-c_d");
    }

    #[test]
    fn rejects_each_rule_with_its_reason() {
        for (name, needle) in [
            ("", "empty"),
            ("/", "empty"),
            ("a/b", "'/'"),
            ("//a", "'/'"),
            ("..", "'..'"),
            ("a\nb", "control"),
            ("a\0b", "NUL"),
        ] {
            let e = validate(name).unwrap_err().to_string();
            assert!(e.contains(needle), "{name:?}: {e}");
        }
        let long = "x".repeat(MAX_NAME_LEN + 1);
        assert!(validate(&long).unwrap_err().to_string().contains("200"));
        assert!(validate(&"x".repeat(MAX_NAME_LEN)).is_ok());
    }
}
