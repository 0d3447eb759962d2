//! lsservices ?host ?user-glob??: the port manager's allocations as a table.

use std::process::ExitCode;

use daqflow::portmgr::Client;

/// Shell-style glob (`*`, `?`, `[...]`) as Tcl's `string match`, which the legacy tool
/// used for the user pattern.
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some(('*', rest)) => (0..=text.len()).any(|skip| glob_match(rest, &text[skip..])),
        Some(('?', rest)) => !text.is_empty() && glob_match(rest, &text[1..]),
        Some(('[', rest)) => {
            let Some(close) = rest.iter().position(|&c| c == ']') else {
                return text.first() == Some(&'[') && glob_match(rest, &text[1..]);
            };
            let (set, after) = (&rest[..close], &rest[close + 1..]);
            let Some(&c) = text.first() else { return false };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == '-' {
                    hit |= (set[i].min(set[i + 2])..=set[i].max(set[i + 2])).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            hit && glob_match(after, &text[1..])
        }
        Some(('\\', [escaped, rest @ ..])) => text.first() == Some(escaped) && glob_match(rest, &text[1..]),
        Some((&c, rest)) => text.first() == Some(&c) && glob_match(rest, &text[1..]),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 2 || args.first().is_some_and(|a| a == "-h" || a == "--help") {
        eprintln!("Usage: lsservices ?host ?user-glob??");
        return ExitCode::from(255);
    }
    let host = args.first().map(String::as_str);
    let pattern: Vec<char> = args.get(1).map_or("*", String::as_str).chars().collect();
    let allocations = match Client::connect(host, None).and_then(|mut c| c.list()) {
        Ok(list) => list,
        Err(e) => {
            eprintln!("lsservices: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rows: Vec<_> =
        allocations.iter().filter(|a| glob_match(&pattern, &a.user.chars().collect::<Vec<_>>())).collect();
    let service_width = rows.iter().map(|a| a.application.chars().count()).max().unwrap_or(0).max("Service".len());
    let user_width = rows.iter().map(|a| a.user.chars().count()).max().unwrap_or(0).max("User".len());
    println!("{:<5}  {:<service_width$}  {:<user_width$}", "Port", "Service", "User");
    println!("{:-<5}  {:-<service_width$}  {:-<user_width$}", "", "", "");
    for a in rows {
        println!("{:<5}  {:<service_width$}  {:<user_width$}", a.port, a.application, a.user);
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        let m = |p: &str, t: &str| glob_match(&p.chars().collect::<Vec<_>>(), &t.chars().collect::<Vec<_>>());
        assert!(m("*", "alice"));
        assert!(m("a*", "alice"));
        assert!(!m("b*", "alice"));
        assert!(m("?lice", "alice"));
        assert!(m("[a-c]lice", "blice"));
        assert!(!m("[x-z]lice", "alice"));
        assert!(m("a\\*", "a*"));
        assert!(!m("alice", "alic"));
    }
}
