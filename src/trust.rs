//! Whom a client trusts to run the ring master it talks to and to feed the proxy rings
//! it reads: root always (as NSCLDAQ assumes), the accounts the operator names, and, for
//! what lives on this host, the calling user itself.
//!
//! The operator names accounts in `DAQFLOW_TRUSTED_USERS` (user names or uids, separated
//! by commas or white space) when it is set, else in `/etc/daqflow/trusted-users` (one
//! or more per line, `#` starts a comment). The file is used only when root owns it and
//! nobody else can write it: otherwise any user could name themselves.

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::unistd::{Uid, User, geteuid};

pub const TRUSTED_USERS_ENV: &str = "DAQFLOW_TRUSTED_USERS";
pub const TRUSTED_USERS_FILE: &str = "/etc/daqflow/trusted-users";
/// More than any operator writes; a larger file is read up to here.
const MAX_FILE: u64 = 64 * 1024;
const MAX_ACCOUNTS: usize = 64;

/// A configured account: its name and uid as this host knows them (either may be
/// unknown here: a name that exists only on the ring master's host is still matched).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: Option<String>,
    uid: Option<u32>,
}

/// The accounts this process trusts besides root and itself.
#[derive(Debug, Clone)]
pub struct Trust {
    accounts: Vec<Account>,
    me: u32,
}

impl Trust {
    /// The configuration in force now (read on each call: it is cheap next to the
    /// network exchange or ring attach it guards).
    pub fn load() -> Trust {
        let listed = match crate::environ::var_os(TRUSTED_USERS_ENV) {
            Some(list) => list.to_string_lossy().into_owned(),
            None => read_config(Path::new(TRUSTED_USERS_FILE)).unwrap_or_default(),
        };
        Trust::parse(&listed)
    }

    /// From a list of names and uids (commas, white space, `#` comments to the line end).
    pub fn parse(listed: &str) -> Trust {
        let mut accounts = Vec::new();
        let words = listed
            .lines()
            .flat_map(|l| l.split('#').next().unwrap_or("").split(|c: char| c == ',' || c.is_whitespace()));
        for word in words.filter(|w| !w.is_empty()).take(MAX_ACCOUNTS) {
            let account = match word.parse::<u32>() {
                Ok(uid) => Account { name: user_by_uid(uid), uid: Some(uid) },
                Err(_) => Account {
                    name: Some(word.to_string()),
                    uid: User::from_name(word).ok().flatten().map(|u| u.uid.as_raw()),
                },
            };
            if !accounts.contains(&account) {
                accounts.push(account);
            }
        }
        Trust { accounts, me: geteuid().as_raw() }
    }

    /// Whether a local account (a proxy ring's owner, a feeder's user) is trusted: root,
    /// a configured account, or this process's own user.
    pub fn uid(&self, uid: u32) -> bool {
        uid == 0 || uid == self.me || self.accounts.iter().any(|a| a.uid == Some(uid))
    }

    /// Whether `user`, as a port manager lists the owner of a service, is trusted.
    /// `local`: the port manager is this host's, so the name is resolved here and the
    /// calling user counts too (only it, or root, can register under its name). For
    /// another host's, only root and the configured accounts count, by name or uid as
    /// written: an account of ours with the same name there may be someone else.
    pub fn listed_user(&self, user: &str, local: bool) -> bool {
        if local {
            let uid = match user.parse::<u32>() {
                Ok(uid) if !user.starts_with('+') && (user == "0" || !user.starts_with('0')) => Some(uid),
                Ok(_) => None,
                Err(_) => User::from_name(user).ok().flatten().map(|u| u.uid.as_raw()),
            };
            return uid.is_some_and(|uid| self.uid(uid));
        }
        user == "root"
            || user == "0"
            || self
                .accounts
                .iter()
                .any(|a| a.name.as_deref() == Some(user) || a.uid.is_some_and(|uid| uid.to_string() == user))
    }

    /// "root, daq (uid 500)": for error messages.
    pub fn describe(&self) -> String {
        let mut names = vec!["root".to_string()];
        for a in &self.accounts {
            names.push(match (&a.name, a.uid) {
                (Some(name), Some(uid)) => format!("{name} (uid {uid})"),
                (Some(name), None) => name.clone(),
                (None, Some(uid)) => format!("uid {uid}"),
                (None, None) => continue,
            });
        }
        names.join(", ")
    }
}

/// How an operator changes the trusted accounts: for error messages.
pub fn how_to_configure() -> String {
    format!("name the account in {TRUSTED_USERS_ENV} or in {TRUSTED_USERS_FILE} to trust it")
}

/// "alice (uid 1001)", or "uid 1001" for an account with no name here.
pub fn describe_uid(uid: u32) -> String {
    user_by_uid(uid).map_or_else(|| format!("uid {uid}"), |name| format!("{name} (uid {uid})"))
}

fn user_by_uid(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid)).ok().flatten().map(|u| u.name)
}

/// The configuration file's text, when it is root's and writable by root alone.
fn read_config(path: &Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return None;
    }
    let mut text = String::new();
    file.take(MAX_FILE).read_to_string(&mut text).ok()?;
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing_and_matching() {
        let t = Trust::parse("daq-nobody-here, 4242 # a comment, ignored\n# whole line\n\tother");
        assert!(t.listed_user("root", false) && t.listed_user("0", false));
        assert!(
            t.listed_user("daq-nobody-here", false) && t.listed_user("4242", false) && t.listed_user("other", false)
        );
        assert!(!t.listed_user("ignored", false) && !t.listed_user("a", false) && !t.listed_user("", false));
        assert!(t.uid(0) && t.uid(4242) && t.uid(geteuid().as_raw()) && !t.uid(4243));
        // Locally the name is resolved; an unknown name or another spelling of a uid is nobody.
        assert!(t.listed_user("root", true) && t.listed_user("0", true) && t.listed_user("4242", true));
        assert!(
            !t.listed_user("04242", true) && !t.listed_user("+4242", true) && !t.listed_user("no-such-user-here", true)
        );
        let none = Trust::parse("");
        assert!(!none.listed_user("daq", false) && none.listed_user("root", false));
        assert_eq!(none.describe(), "root");
    }

    #[test]
    fn a_file_others_can_write_is_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("daqflow-trust-{}", std::process::id()));
        std::fs::write(&path, "someone\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(read_config(&path), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mine = read_config(&path);
        let _ = std::fs::remove_file(&path);
        assert_eq!(mine.is_some(), geteuid().is_root(), "only a file root owns counts");
    }
}
