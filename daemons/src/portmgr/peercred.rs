//! Who owns the client's end of a loopback TCP connection (the kernel's answer,
//! `daqflow::sockdiag`), and does the name it sent belong to that user.
//!
//! TCP carries no credentials and the legacy protocol sends the user as plain text, so
//! the daemon asks the kernel instead.

use std::path::Path;

use nix::unistd::{Uid, User};

use super::holders::{SEARCH_LIMIT, holders_of};
use crate::log::printable;

pub use daqflow::sockdiag::{OwnerLookup, SocketId};

/// A user as the daemon knows it: a uid and its passwd name, looked up by uid once.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    uid: u32,
    /// The passwd name of `uid`, when it has one.
    name: Option<Vec<u8>>,
}

impl Account {
    fn lookup(uid: u32) -> Account {
        let name = User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name.into_bytes());
        Account { uid, name }
    }

    /// `user` names this account: its login name or its uid in decimal, byte for byte, or
    /// nothing at all when it has no name (Tcl's `$tcl_platform(user)` is then empty).
    fn is(&self, user: &[u8]) -> bool {
        match &self.name {
            Some(name) => name == user || user == self.uid.to_string().as_bytes(),
            None => user.is_empty() || user == self.uid.to_string().as_bytes(),
        }
    }

    fn shown(&self) -> String {
        format!("uid {}{}", self.uid, self.name.as_ref().map(|n| format!(", {}", printable(n))).unwrap_or_default())
    }
}

/// Who a connection's client is: the owner of its socket, with its login name looked up
/// once (per connection, at its first GIMME) by uid, and, when a GIMME names someone
/// else, the real user of the processes holding the socket (found off the event loop, see
/// `scanner`). No name a client sends is ever resolved, so a slow directory service (LDAP)
/// costs the event loop at most one lookup per client, and a client cannot make the
/// daemon look up names of its choosing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    owner: Account,
    inode: u32,
    /// The real user every process holding the socket shares, found at the first GIMME
    /// that does not name the owner: `Ok(None)` when there is none to accept, `Err` why
    /// the processes could not be checked.
    real: Option<RealUser>,
}

/// The outcome of checking the user a GIMME names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The name is this uid's: its ports count against this uid's limit.
    Accepted(u32),
    /// Why not.
    Refused(String),
    /// Only the processes holding the socket can tell: look for them (`Search::run`),
    /// give the answer to `Owner::learn`, and ask again.
    Unchecked(Search),
}

/// What to look for to learn a socket's real user: the processes holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search {
    pub owner: u32,
    pub inode: u32,
}

/// The real user a search found (opaque: only `Owner` reads it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealUser(Result<Option<Account>, String>);

impl Search {
    /// Walks /proc (or a stand-in): slow on a host with many descriptors, so the daemon
    /// runs it on its scanner thread.
    pub fn run(&self, proc_root: &Path) -> RealUser {
        RealUser(real_user(self.owner, self.inode, proc_root))
    }
}

impl Owner {
    pub fn lookup(socket: SocketId) -> Owner {
        Owner { owner: Account::lookup(socket.uid), inode: socket.inode, real: None }
    }

    /// Checks that `user` is not a lie (docs/portmanager.md, "User verification"): the
    /// socket's owner (by name, decimal uid, or an empty name when it has no passwd
    /// entry); anyone when the owner is root; else the real user of the processes that
    /// hold the socket and have the owner among their ids, when they all share one that
    /// is not root. Root's names are claimed only from a socket of root's: a process whose
    /// real uid is root holding someone else's socket was handed it (over a unix socket,
    /// or by exec), perhaps after its requests were written, and cannot say who wrote them.
    pub fn verify(&self, user: &[u8]) -> Verdict {
        if self.owner.uid == 0 || self.owner.is(user) {
            return Verdict::Accepted(self.owner.uid);
        }
        let Some(RealUser(real)) = &self.real else {
            return Verdict::Unchecked(Search { owner: self.owner.uid, inode: self.inode });
        };
        let why_not = match real {
            Ok(Some(real)) if real.uid != 0 && real.is(user) => return Verdict::Accepted(real.uid),
            Ok(Some(real)) if real.uid == 0 => {
                " nor a name its process may claim (its real user is root, but the socket is not root's)".to_string()
            }
            Ok(Some(real)) if real.uid != self.owner.uid => {
                format!(" nor the real user of its process ({})", real.shown())
            }
            Ok(_) => String::new(),
            Err(why) => format!("; its processes could not be checked: {why}"),
        };
        Verdict::Refused(format!(
            "user {} is not the owner of this connection ({}){why_not}",
            printable(user),
            self.owner.shown()
        ))
    }

    /// What a search for the socket's holders found; kept for the connection's later GIMMEs.
    pub fn learn(&mut self, real: RealUser) {
        self.real = Some(real);
    }
}

/// The real user shared by every process holding the socket `inode` owned by `owner` and
/// having `owner` among its ids: a socket handed to another user's process (over a unix
/// socket) is not theirs to speak for.
fn real_user(owner: u32, inode: u32, proc_root: &Path) -> Result<Option<Account>, String> {
    let holders = holders_of(inode, owner, proc_root, SEARCH_LIMIT).map_err(|e| e.to_string())?;
    let Some(first) = holders.first() else {
        return Ok(None);
    };
    if holders.iter().any(|h| h.real != first.real) {
        return Ok(None);
    }
    Ok(Some(Account::lookup(first.real)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in for /proc: processes (pid, "real effective saved fs") holding socket 777.
    struct FakeProc(std::path::PathBuf);

    impl FakeProc {
        fn new(holders: &[(u32, &str)]) -> FakeProc {
            static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let root = std::env::temp_dir().join(format!("daqflow-fakeproc-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&root);
            for (pid, uids) in holders {
                let dir = root.join(pid.to_string());
                std::fs::create_dir_all(dir.join("fd")).unwrap();
                std::os::unix::fs::symlink("socket:[777]", dir.join("fd/3")).unwrap();
                std::os::unix::fs::symlink("/dev/null", dir.join("fd/0")).unwrap();
                std::fs::write(dir.join("status"), format!("Name:\tx\nUid:\t{}\n", uids.replace(' ', "\t"))).unwrap();
            }
            // A process holding something else, and an entry that is not a process.
            std::fs::create_dir_all(root.join("99/fd")).unwrap();
            std::os::unix::fs::symlink("socket:[7777]", root.join("99/fd/4")).unwrap();
            std::fs::write(root.join("99/status"), "Uid:\t0\t0\t0\t0\n").unwrap();
            std::fs::create_dir_all(root.join("self")).unwrap();
            FakeProc(root)
        }

        fn verify(&self, owner: u32, user: &str) -> Result<u32, String> {
            let mut client = Owner::lookup(SocketId { uid: owner, inode: 777 });
            if let Verdict::Unchecked(search) = client.verify(user.as_bytes()) {
                client.learn(search.run(&self.0));
            }
            match client.verify(user.as_bytes()) {
                Verdict::Accepted(uid) => Ok(uid),
                Verdict::Refused(why) => Err(why),
                Verdict::Unchecked(_) => panic!("asked again after learning"),
            }
        }
    }

    impl Drop for FakeProc {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    const NAMELESS: u32 = 3_999_999_999;

    #[test]
    fn names_and_uids_match_byte_for_byte() {
        let daemon = Account::lookup(1);
        let name = String::from_utf8(daemon.name.clone().expect("uid 1 has a name")).unwrap();
        assert!(daemon.is(name.as_bytes()));
        assert!(daemon.is(b"1"));
        // Only the exact decimal form and the exact name: no parsing, no other lookup.
        for other in
            [&b"01"[..], b"+1", b" 1", name.to_uppercase().as_bytes(), format!("{name} ").as_bytes(), b"", b"root"]
        {
            assert!(!daemon.is(other), "{:?}", String::from_utf8_lossy(other));
        }
        let none = FakeProc::new(&[]);
        let refusal = none.verify(1, "nobody").unwrap_err();
        assert_eq!(refusal, format!("user nobody is not the owner of this connection (uid 1, {name})"));
        assert!(!none.verify(1, "x\ny").unwrap_err().contains('\n'));
        // A uid without a passwd entry is known by its number, or by no name at all.
        assert!(none.verify(NAMELESS, "3999999999").is_ok());
        assert!(none.verify(NAMELESS, "").is_ok());
        assert_eq!(
            none.verify(NAMELESS, "x").unwrap_err(),
            "user x is not the owner of this connection (uid 3999999999)"
        );
        // Root may claim anyone.
        assert!(none.verify(0, "anyone").is_ok());
    }

    #[test]
    fn the_real_user_of_the_holding_processes_is_accepted() {
        // A setuid program: made by its effective user, holding its real one.
        let setuid = FakeProc::new(&[(10, "3999999998 3999999999 3999999999 3999999999")]);
        assert!(setuid.verify(NAMELESS, "3999999998").is_ok());
        assert!(setuid.verify(NAMELESS, "").is_ok(), "an unnamed real user may send no name");
        assert!(setuid.verify(NAMELESS, "root").is_err());
        assert_eq!(setuid.verify(NAMELESS, "3999999998"), Ok(3_999_999_998), "counted as the real user's");
        assert_eq!(setuid.verify(NAMELESS, "3999999999"), Ok(NAMELESS), "counted as the owner's");
        // A process with real uid root holding a socket of another's may have been handed
        // it after its GIMME was written: root's names, or anyone's, are not its to claim.
        let handed = FakeProc::new(&[(10, "0 3999999999 3999999999 3999999999")]);
        for user in ["anyone", "root", "0"] {
            let refusal = handed.verify(NAMELESS, user).unwrap_err();
            assert!(refusal.contains("its real user is root, but the socket is not root's"), "{refusal}");
        }
        assert!(handed.verify(NAMELESS, "3999999999").is_ok());
    }

    #[test]
    fn ids_a_process_gains_after_writing_are_not_accepted() {
        // The client wrote "GIMME x root" and then exec'd a setuid-root program (su,
        // waiting for a password) that inherited the socket: effective and saved uids
        // are root's now, but the real uid, and the socket's owner, are still the
        // client's.
        let su = FakeProc::new(&[(10, "3999999999 0 0 0")]);
        let refusal = su.verify(NAMELESS, "root").unwrap_err();
        assert!(refusal.starts_with("user root is not the owner of this connection (uid 3999999999)"), "{refusal}");
        assert!(su.verify(NAMELESS, "3999999999").is_ok());
        // A socket handed to another user's process (root's, here) over a unix socket.
        let handed = FakeProc::new(&[(10, "0 0 0 0")]);
        assert!(handed.verify(NAMELESS, "root").is_err());
        assert!(handed.verify(NAMELESS, "anyone").is_err());
        // Holders that disagree on their real user: only the owner is accepted.
        let mixed = FakeProc::new(&[
            (10, "3999999998 3999999999 3999999999 3999999999"),
            (11, "3999999999 3999999999 3999999999 3999999999"),
        ]);
        assert!(mixed.verify(NAMELESS, "3999999998").is_err());
        assert!(mixed.verify(NAMELESS, "3999999999").is_ok());
    }

    #[test]
    fn unreadable_processes_are_no_answer() {
        // Not root: /proc of other users' processes cannot be read, so a holder could be
        // missed; only the owner is accepted, and the refusal says why.
        let root = FakeProc::new(&[]);
        std::fs::write(root.0.join("12"), "").unwrap(); // "12/fd" is not a directory
        let refusal = root.verify(NAMELESS, "someone").unwrap_err();
        assert!(refusal.contains("could not be checked"), "{refusal}");
    }
}
