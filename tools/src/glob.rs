//! Shell-style globs (`*`, `?`, `[...]`, `\` escapes) as Tcl's `string match`, which
//! NSCLDAQ's tools used for their patterns (lsservices' user, ringbuffer's ring names).

/// Whether `text` matches `pattern` as a whole.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    glob_match(&pattern, &text)
}

/// One step of the pattern at `at` other than `*`: whether it matches `c`, and where the
/// pattern goes on.
fn element(pattern: &[char], at: usize, c: char) -> (bool, usize) {
    match pattern[at] {
        '?' => (true, at + 1),
        '[' => {
            let rest = &pattern[at + 1..];
            let Some(close) = rest.iter().position(|&c| c == ']') else {
                return (c == '[', at + 1);
            };
            let set = &rest[..close];
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
            (hit, at + 1 + close + 1)
        }
        '\\' if at + 1 < pattern.len() => (pattern[at + 1] == c, at + 2),
        literal => (literal == c, at + 1),
    }
}

/// Matching with backtracking to the last `*` only: a later `*` can do whatever an
/// earlier one would have, so time is at most pattern length x text length. (Trying
/// every split at every `*` took exponential time: `*a*a*a*a*a*a*a*a*b` against a long
/// name of a's hung the command.)
fn glob_match(pattern: &[char], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where to resume after the last `*`: the pattern after it, the text it swallowed up to.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == '*' {
            p += 1;
            star = Some((p, t));
            continue;
        }
        if p < pattern.len() {
            let (hit, next) = element(pattern, p, text[t]);
            if hit {
                p = next;
                t += 1;
                continue;
            }
        }
        match star {
            Some((after, swallowed)) => {
                star = Some((after, swallowed + 1));
                p = after;
                t = swallowed + 1;
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
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
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("**", ""));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(!m("a*b*c", "aXbYbZ"));
        assert!(m("*[0-9]", "ring7"));
        assert!(m("[ab", "[ab"), "an unclosed [ is itself");
        assert!(m("a\\", "a\\"), "a trailing backslash is itself");
        assert!(m("\\[x]", "[x]"));
        assert!(m("*?", "a") && !m("*?", ""));
    }

    #[test]
    fn many_stars_take_linear_time() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let text = "a".repeat(255);
            let _ = tx.send((m("*a*a*a*a*a*a*a*a*a*a*a*a*b", &text), m("*a*a*a*a*a*a*a*a*a*a*a*a", &text)));
        });
        let done = rx.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(done, Ok((false, true)), "a pattern of 12 stars took more than 10 s");
    }
}
