//! User and group names for the ids the kernel reports: `getpwuid_r(3)`,
//! `getgrgid_r(3)` (through libc, so NSS sources such as LDAP count too;
//! rustix has neither), for error messages that name who owns or created
//! an object.
//!
//! # References
//! `getpwuid_r(3)`, `getgrgid_r(3)`, `nsswitch.conf(5)`.

use std::ffi::CStr;

/// Bytes of buffer tried first, and the most we grow to on `ERANGE`.
const FIRST: usize = 1024;
const MOST: usize = 1 << 20;

/// `getpwuid_r(uid)`: the user's login name, `None` if no user has `uid`
/// (or the lookup fails).
#[doc(alias = "getpwuid_r")]
pub fn user_name(uid: u32) -> Option<String> {
    let mut len = FIRST;
    loop {
        let mut buf = vec![0u8; len];
        // SAFETY: passwd is plain data; all-zero is a valid value.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: `pw`, `buf` (`len` bytes) and `out` are live and writable
        // for the call; the strings it stores point into `buf`.
        let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr().cast(), len, &mut out) };
        if rc == libc::ERANGE && len < MOST {
            len *= 4;
            continue;
        }
        if rc != 0 || out.is_null() || pw.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success `pw_name` is a NUL-terminated string in `buf`,
        // which is alive here.
        let name = unsafe { CStr::from_ptr(pw.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// `getgrgid_r(gid)`: the group's name, `None` if no group has `gid` (or
/// the lookup fails).
#[doc(alias = "getgrgid_r")]
pub fn group_name(gid: u32) -> Option<String> {
    let mut len = FIRST;
    loop {
        let mut buf = vec![0u8; len];
        // SAFETY: group is plain data; all-zero is a valid value.
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out: *mut libc::group = std::ptr::null_mut();
        // SAFETY: as in `user_name`, with a `group`.
        let rc = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr().cast(), len, &mut out) };
        if rc == libc::ERANGE && len < MOST {
            len *= 4;
            continue;
        }
        if rc != 0 || out.is_null() || gr.gr_name.is_null() {
            return None;
        }
        // SAFETY: on success `gr_name` is a NUL-terminated string in `buf`.
        let name = unsafe { CStr::from_ptr(gr.gr_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}

/// Whether this process acts as a member of group `gid`: its effective
/// group (`getegid`) or a supplementary one (`getgroups`).
#[doc(alias = "getgroups")]
pub fn member_of(gid: u32) -> bool {
    rustix::process::getegid().as_raw() == gid
        || rustix::process::getgroups().is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

/// "user NAME (uid N)", or "uid N" when no name is known.
pub fn describe_user(uid: u32) -> String {
    match user_name(uid) {
        Some(n) => format!("user {n} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// "group NAME (gid N)", or "gid N" when no name is known.
pub fn describe_group(gid: u32) -> String {
    match group_name(gid) {
        Some(n) => format!("group {n} (gid {gid})"),
        None => format!("gid {gid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_an_unused_id_is_not() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(describe_user(0), "user root (uid 0)");
        assert_eq!(group_name(0).as_deref(), Some("root"));
        // Far above any id a distribution hands out, below (uid_t)-1.
        assert_eq!(user_name(4_000_000_000), None);
        assert_eq!(describe_user(4_000_000_000), "uid 4000000000");
        assert_eq!(describe_group(4_000_000_000), "gid 4000000000");
        assert!(member_of(rustix::process::getegid().as_raw()));
        assert!(!member_of(4_000_000_000));
    }
}
