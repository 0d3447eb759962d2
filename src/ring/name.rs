//! Ring names: validated up front so a bad name gets a reason, not an errno from
//! `shm_open`, and so every ring can travel in Tcl lists and RingMaster requests.

use crate::error::{Error, Result};

/// Longest name: a file name in /dev/shm.
pub const MAX_NAME: usize = 255;

pub fn validate(name: &str) -> Result<()> {
    let refuse = |why: &str| Err(Error::new(libc::EINVAL, format!("invalid ring name {name:?}: {why}")));
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > MAX_NAME {
        return refuse(&format!("it is {} bytes long, the limit is {MAX_NAME}", name.len()));
    }
    if name == "." || name == ".." {
        return refuse("it names a directory");
    }
    if let Some(c) =
        name.chars().find(|c| matches!(c, '/' | '{' | '}' | '"' | '\\') || c.is_whitespace() || c.is_control())
    {
        return refuse(&format!(
            "it contains {c:?} (no '/', whitespace, control characters, braces, quotes or backslashes: they break paths and Tcl lists)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::validate;

    #[test]
    fn names() {
        for good in ["ring", "fox", "ORDERER:fox:evb1", "a.b-c_d", &"x".repeat(255)] {
            assert!(validate(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "a\tb", "{a}", "a\"b", "a\\b", "a\nb", &"x".repeat(256)] {
            let err = validate(bad).unwrap_err();
            assert_eq!(err.errno(), libc::EINVAL);
            assert!(err.message().contains("invalid ring name"), "{}", err.message());
        }
    }
}
