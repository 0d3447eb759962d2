//! A ring object's POSIX access ACL (`system.posix_acl_access`), read and evaluated as
//! the kernel does (`posix_acl_permission`), so that REMOTE serves a ring to exactly
//! those the kernel would let open it for reading.
//!
//! The mode bits alone are not the kernel's whole answer once a file carries an ACL: a
//! 0644 ring with `user:mallory:---` is closed to mallory although its "others" bits
//! say r, and `user:bob:r--` opens a 0600 ring to bob. An ACL that cannot be read or
//! parsed is taken as closing the ring to everyone but root (fail closed).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::sys::{XattrOf, getxattr};

const NAME: &CStr = c"system.posix_acl_access";
/// `POSIX_ACL_XATTR_VERSION` and the entry tags of `linux/posix_acl_xattr.h`.
const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const READ: u16 = 0x04;
/// Far more entries than the kernel stores on tmpfs (a page's worth); a longer value is
/// no ACL we can evaluate.
const MAX_BYTES: usize = 4 + 8 * 8192;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    tag: u16,
    perm: u16,
    id: u32,
}

/// What a ring object's access ACL says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acl {
    /// None beyond the mode bits.
    None,
    /// Its entries, in the kernel's order (by tag, then id).
    Entries(Vec<Entry>),
    /// There is one (or may be), but it could not be read or understood.
    Unusable,
}

impl Acl {
    /// The ACL of the file `path` names (not following a symbolic link).
    pub fn of_path(path: &Path) -> Acl {
        let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
            return Acl::Unusable;
        };
        read(|buf| getxattr(XattrOf::Path(&path), NAME, buf))
    }

    /// The ACL of an open file (the object actually attached to).
    pub fn of_file(file: &File) -> Acl {
        read(|buf| getxattr(XattrOf::File(file.as_fd()), NAME, buf))
    }

    /// Whether the user `uid`, member of `in_group`, may read, by the kernel's rule:
    /// the owner by its entry; a named user by its entry within the mask; a member of
    /// the owning or a named group if one of those entries grants it within the mask
    /// (and not at all if it is a member of one but none grants); anyone else by the
    /// others' entry. `None` when there is no ACL (the mode bits decide).
    pub fn user_may_read(&self, uid: u32, owner: u32, in_group: &dyn Fn(u32) -> bool, group: u32) -> Option<bool> {
        let entries = match self {
            Acl::None => return None,
            Acl::Unusable => return Some(false),
            Acl::Entries(entries) => entries,
        };
        let perm_of = |tag| entries.iter().find(|e| e.tag == tag).map(|e| e.perm);
        let masked = |perm: u16| perm & perm_of(MASK).unwrap_or(!0) & READ != 0;
        if uid == owner {
            return Some(perm_of(USER_OBJ).is_some_and(|p| p & READ != 0));
        }
        if let Some(named) = entries.iter().find(|e| e.tag == USER && e.id == uid) {
            return Some(masked(named.perm));
        }
        let groups: Vec<&Entry> = entries
            .iter()
            .filter(|e| (e.tag == GROUP_OBJ && in_group(group)) || (e.tag == GROUP && in_group(e.id)))
            .collect();
        if !groups.is_empty() {
            return Some(groups.iter().any(|e| masked(e.perm)));
        }
        Some(perm_of(OTHER).is_some_and(|p| p & READ != 0))
    }

    /// Whether every user but the owner may read: the others' entry and every named user
    /// and group entry (the owning group's included) grant it within the mask. `None`
    /// when there is no ACL.
    pub fn everyone_may_read(&self) -> Option<bool> {
        let entries = match self {
            Acl::None => return None,
            Acl::Unusable => return Some(false),
            Acl::Entries(entries) => entries,
        };
        let mask = entries.iter().find(|e| e.tag == MASK).map_or(!0, |e| e.perm);
        let others = entries.iter().any(|e| e.tag == OTHER && e.perm & READ != 0);
        let named =
            entries.iter().filter(|e| matches!(e.tag, USER | GROUP_OBJ | GROUP)).all(|e| e.perm & mask & READ != 0);
        Some(others && named)
    }
}

/// Reads the attribute with `get` (a `getxattr` flavour) and parses it.
fn read(get: impl Fn(&mut [u8]) -> io::Result<usize>) -> Acl {
    let mut buf = vec![0u8; MAX_BYTES];
    let n = match get(&mut buf) {
        Ok(n) => n,
        // No ACL, or a file system without ACLs: the mode bits are the whole answer.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) => return Acl::None,
        Err(_) => return Acl::Unusable,
    };
    buf.truncate(n);
    parse(&buf).map_or(Acl::Unusable, Acl::Entries)
}

/// The entries of an ACL in its extended attribute form: a little-endian version word,
/// then 8-byte entries (tag, permissions, id). `None` unless it is well formed: every
/// tag known, one owner, owning group and others entry each.
fn parse(value: &[u8]) -> Option<Vec<Entry>> {
    let (version, body) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VERSION || body.len() % 8 != 0 {
        return None;
    }
    let entries: Vec<Entry> = body
        .chunks_exact(8)
        .map(|e| Entry {
            tag: u16::from_le_bytes([e[0], e[1]]),
            perm: u16::from_le_bytes([e[2], e[3]]),
            id: u32::from_le_bytes([e[4], e[5], e[6], e[7]]),
        })
        .collect();
    let count = |tag| entries.iter().filter(|e| e.tag == tag).count();
    let known = entries.iter().all(|e| matches!(e.tag, USER_OBJ | USER | GROUP_OBJ | GROUP | MASK | OTHER));
    (known && count(USER_OBJ) == 1 && count(GROUP_OBJ) == 1 && count(OTHER) == 1 && count(MASK) <= 1).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Acl {
        let mut value = VERSION.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            value.extend_from_slice(&tag.to_le_bytes());
            value.extend_from_slice(&perm.to_le_bytes());
            value.extend_from_slice(&id.to_le_bytes());
        }
        parse(&value).map_or(Acl::Unusable, Acl::Entries)
    }

    const ANY: u32 = u32::MAX;

    #[test]
    fn the_kernels_rule() {
        let groups_of_7 = |g: u32| g == 70 || g == 71;
        let nobody = |_: u32| false;
        // 0644 with user:7:--- (mask r--): the others' bits do not reach a named user.
        let denies = acl(&[(USER_OBJ, 6, ANY), (USER, 0, 7), (GROUP_OBJ, 4, ANY), (MASK, 4, ANY), (OTHER, 4, ANY)]);
        assert_eq!(denies.user_may_read(7, 1, &nobody, 1), Some(false));
        assert_eq!(denies.user_may_read(8, 1, &nobody, 1), Some(true));
        assert_eq!(denies.user_may_read(1, 1, &nobody, 1), Some(true), "the owner");
        assert_eq!(denies.everyone_may_read(), Some(false));
        // 0600 with user:7:r-- opens it to 7 only, within the mask.
        let grants = acl(&[(USER_OBJ, 6, ANY), (USER, 4, 7), (GROUP_OBJ, 0, ANY), (MASK, 4, ANY), (OTHER, 0, ANY)]);
        assert_eq!(grants.user_may_read(7, 1, &nobody, 1), Some(true));
        assert_eq!(grants.user_may_read(8, 1, &nobody, 1), Some(false));
        assert_eq!(grants.everyone_may_read(), Some(false));
        let masked = acl(&[(USER_OBJ, 6, ANY), (USER, 4, 7), (GROUP_OBJ, 0, ANY), (MASK, 0, ANY), (OTHER, 0, ANY)]);
        assert_eq!(masked.user_may_read(7, 1, &nobody, 1), Some(false), "the mask limits named users");
        // A member of a group with an entry that does not grant is refused, whatever others get.
        let group = acl(&[(USER_OBJ, 6, ANY), (GROUP_OBJ, 0, ANY), (GROUP, 4, 71), (MASK, 4, ANY), (OTHER, 4, ANY)]);
        assert_eq!(group.user_may_read(7, 1, &groups_of_7, 70), Some(true), "one of its groups grants");
        assert_eq!(group.user_may_read(7, 1, &|g| g == 70, 70), Some(false), "its only group does not");
        assert_eq!(group.user_may_read(8, 1, &nobody, 70), Some(true), "others");
        // A named user who also owns the file is judged as the owner.
        assert_eq!(denies.user_may_read(7, 7, &nobody, 1), Some(true));
        // Extra grants only: everyone may still read.
        let open = acl(&[(USER_OBJ, 6, ANY), (USER, 6, 7), (GROUP_OBJ, 4, ANY), (MASK, 6, ANY), (OTHER, 4, ANY)]);
        assert_eq!(open.everyone_may_read(), Some(true));
    }

    #[test]
    fn no_acl_leaves_it_to_the_mode_and_a_bad_one_closes_the_ring() {
        assert_eq!(Acl::None.user_may_read(7, 1, &|_| false, 1), None);
        assert_eq!(Acl::None.everyone_may_read(), None);
        assert_eq!(Acl::Unusable.user_may_read(7, 1, &|_| false, 1), Some(false));
        assert_eq!(Acl::Unusable.everyone_may_read(), Some(false));
        for bad in [
            acl(&[(USER_OBJ, 6, ANY), (OTHER, 4, ANY)]),
            acl(&[(USER_OBJ, 6, ANY), (GROUP_OBJ, 4, ANY), (OTHER, 4, ANY), (0x40, 4, 7)]),
        ] {
            assert_eq!(bad, Acl::Unusable);
        }
        assert_eq!(parse(&[2, 0, 0, 0, 1]), None, "a partial entry");
        assert_eq!(parse(&[3, 0, 0, 0]), None, "another version");
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn read_from_a_file() {
        let path = std::env::temp_dir().join(format!("daqflow-acl-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        assert_eq!(Acl::of_path(&path), Acl::None);
        assert_eq!(Acl::of_file(&File::open(&path).unwrap()), Acl::None);
        let _ = std::fs::remove_file(&path);
        assert_eq!(Acl::of_path(&path), Acl::Unusable, "gone: not known to have none");
    }
}
