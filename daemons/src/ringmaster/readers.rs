//! Who may read which ring's data through REMOTE.
//!
//! The daemon usually runs as root and could stream any ring; it streams one only to a
//! client that could read it itself: a user of this host who may open the ring's
//! /dev/shm object for reading (judged from its owner, group and mode, as the kernel
//! would, with the user's groups from the user database), and another host only a ring
//! every user may read, unless the operator says otherwise (`--remote-rings all`). A
//! POSIX access ACL on the object is part of that judgement (see `acl`).

use std::fmt;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;

use nix::unistd::{Gid, Uid, User, getgrouplist};

use super::acl::Acl;
use super::peer::Who;

/// Which rings other hosts may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RemoteRings {
    /// Those whose mode lets every user read them.
    #[default]
    WorldReadable,
    /// Every ring (the legacy daemon's behaviour).
    All,
}

impl std::str::FromStr for RemoteRings {
    type Err = String;

    fn from_str(text: &str) -> Result<RemoteRings, String> {
        match text {
            "world-readable" => Ok(RemoteRings::WorldReadable),
            "all" => Ok(RemoteRings::All),
            _ => Err(format!("{text:?} is neither world-readable nor all")),
        }
    }
}

impl fmt::Display for RemoteRings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RemoteRings::WorldReadable => "world-readable",
            RemoteRings::All => "all",
        })
    }
}

/// Whether `who` may read the ring whose object has `meta` and `acl`.
pub fn may_read(who: Who, meta: &Metadata, acl: &Acl, remote: RemoteRings) -> bool {
    let mode = meta.mode();
    // Without an ACL, the mode's "others" bits; with one, every entry that could apply.
    let everyone = || acl.everyone_may_read().unwrap_or(mode & 0o004 != 0);
    match who {
        Who::User(0) => true,
        Who::User(uid) => {
            let groups = groups_of(uid);
            let in_group = |gid: u32| groups.contains(&gid);
            acl.user_may_read(uid, meta.uid(), &in_group, meta.gid())
                .unwrap_or_else(|| user_may_read(uid, meta.uid(), meta.gid(), mode))
        }
        // A client of this host that could be anyone: what anyone may read.
        Who::Unidentified(_) => everyone(),
        Who::Host(_) => remote == RemoteRings::All || everyone(),
    }
}

/// The kernel's rule for a read permission: root may; the owner by the owner bits
/// alone; a member of the group by the group bits alone; anyone else by the others'.
fn user_may_read(uid: u32, owner: u32, group: u32, mode: u32) -> bool {
    if uid == 0 {
        return true;
    }
    if uid == owner {
        return mode & 0o400 != 0;
    }
    if groups_of(uid).contains(&group) {
        return mode & 0o040 != 0;
    }
    mode & 0o004 != 0
}

/// The groups of `uid` in the user database: its primary group and those listing its
/// name. Empty for a uid without an entry (it is then only an owner or an other).
fn groups_of(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return vec![user.gid.as_raw()];
    };
    getgrouplist(&name, user.gid)
        .map_or_else(|_| vec![user.gid.as_raw()], |g| g.iter().map(|g| Gid::as_raw(*g)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kernels_rule() {
        // uid 1 (daemon) has primary group 1 on Debian.
        assert!(user_may_read(0, 5, 5, 0o000));
        assert!(user_may_read(5, 5, 5, 0o400));
        assert!(!user_may_read(5, 5, 5, 0o044), "the owner is judged by the owner bits alone");
        assert!(user_may_read(1, 5, 1, 0o040));
        assert!(!user_may_read(1, 5, 1, 0o404), "a group member by the group bits alone");
        assert!(user_may_read(1, 5, 5, 0o004));
        assert!(!user_may_read(1, 5, 5, 0o640));
        assert!(!user_may_read(3_999_999_999, 5, 5, 0o660), "a uid with no entry has no groups");
    }

    #[test]
    fn unidentified_clients_and_other_hosts_get_what_everyone_may_read() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("daqflow-readers-{}", std::process::id()));
        std::fs::write(&path, b"").unwrap();
        let here = Who::Unidentified("127.0.0.1".parse().unwrap());
        let there = Who::Host("10.0.0.9".parse().unwrap());
        for (mode, everyone) in [(0o600, false), (0o640, false), (0o604, true), (0o644, true)] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            let acl = Acl::None;
            assert_eq!(may_read(here, &meta, &acl, RemoteRings::All), everyone, "{mode:o}");
            assert_eq!(may_read(there, &meta, &acl, RemoteRings::WorldReadable), everyone, "{mode:o}");
            assert!(may_read(there, &meta, &acl, RemoteRings::All), "{mode:o}");
            assert!(may_read(Who::User(0), &meta, &acl, RemoteRings::WorldReadable), "{mode:o}");
            assert!(may_read(Who::User(0), &meta, &Acl::Unusable, RemoteRings::WorldReadable), "{mode:o}");
            assert!(!may_read(there, &meta, &Acl::Unusable, RemoteRings::WorldReadable), "{mode:o}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn remote_rings() {
        assert_eq!("all".parse::<RemoteRings>(), Ok(RemoteRings::All));
        assert_eq!("world-readable".parse::<RemoteRings>(), Ok(RemoteRings::WorldReadable));
        assert!("yes".parse::<RemoteRings>().is_err());
    }
}
