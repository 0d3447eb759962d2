//! Shell-style globs (`*`, `?`, `[...]`, `\` escapes) as Tcl's `string match`, which
//! NSCLDAQ's tools used for their patterns (lsservices' user, ringbuffer's ring names).

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_match(&pattern, &text)
}

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

/// Whether `pattern` has any character `matches` treats specially.
pub fn is_pattern(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '\\'])
}

#[cfg(test)]
mod tests {
    use super::matches as m;

    #[test]
    fn globs() {
        assert!(m("*", "alice"));
        assert!(m("a*", "alice"));
        assert!(!m("b*", "alice"));
        assert!(m("?lice", "alice"));
        assert!(m("[a-c]lice", "blice"));
        assert!(!m("[x-z]lice", "alice"));
        assert!(m("a\\*", "a*"));
        assert!(!m("a\\*", "ab"));
        assert!(!m("alice", "alic"));
        assert!(m("*.ring", "host.example.ring"));
    }
}
