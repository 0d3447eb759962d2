//! Tcl list syntax, the framing of every request and reply of the port manager protocol.
//!
//! The legacy server and clients are Tcl (or parse with `Tcl_SplitList`), so a request
//! line is read as a Tcl list and a reply line is built the way Tcl's `list` command
//! builds it. Both directions work on bytes: Tcl treats anything that is not list syntax
//! as an ordinary character, and a name must round-trip exactly whatever its encoding.
//! The rules below are Tcl 8.6's, checked against `tclsh` (see the unit tests).

use std::fmt;

/// Why a line is not a Tcl list, in Tcl's own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    UnmatchedBrace,
    UnmatchedQuote,
    /// A closing brace or quote followed by something other than white space.
    JunkAfterClose {
        quote: &'static str,
        junk: u8,
    },
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListError::UnmatchedBrace => f.write_str("unmatched open brace in list"),
            ListError::UnmatchedQuote => f.write_str("unmatched open quote in list"),
            ListError::JunkAfterClose { quote, junk } => {
                write!(f, "list element in {quote} followed by \"{}\" instead of space", junk.escape_ascii())
            }
        }
    }
}

impl std::error::Error for ListError {}

/// Tcl's list white space (`TclIsSpaceProc`).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Splits `line` into its elements, with Tcl's brace, quote and backslash rules.
pub fn parse_list(line: &[u8]) -> Result<Vec<Vec<u8>>, ListError> {
    let mut elements = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i == line.len() {
            return Ok(elements);
        }
        let (element, next) = match line[i] {
            b'{' => parse_braced(line, i + 1)?,
            b'"' => parse_quoted(line, i + 1)?,
            _ => parse_bare(line, i),
        };
        elements.push(element);
        i = next;
    }
}

/// A `{...}` element starting after the brace: literal text, nesting counted, a backslash
/// hiding the next byte from the count. Returns the element and the index after it.
fn parse_braced(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), ListError> {
    let mut depth = 1;
    let mut i = start;
    while i < line.len() {
        match line[i] {
            b'\\' => i += 1,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    check_after_close(line, i + 1, "braces")?;
                    return Ok((line[start..i].to_vec(), i + 1));
                }
            }
            _ => {}
        }
        i += 1;
    }
    Err(ListError::UnmatchedBrace)
}

/// A `"..."` element starting after the quote, with backslash substitution.
fn parse_quoted(line: &[u8], start: usize) -> Result<(Vec<u8>, usize), ListError> {
    let mut out = Vec::new();
    let mut i = start;
    while i < line.len() {
        match line[i] {
            b'"' => {
                check_after_close(line, i + 1, "quotes")?;
                return Ok((out, i + 1));
            }
            b'\\' => i = backslash(line, i, &mut out),
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err(ListError::UnmatchedQuote)
}

/// A bare word: up to the next white space, with backslash substitution.
fn parse_bare(line: &[u8], start: usize) -> (Vec<u8>, usize) {
    let mut out = Vec::new();
    let mut i = start;
    while i < line.len() && !is_space(line[i]) {
        if line[i] == b'\\' {
            i = backslash(line, i, &mut out);
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    (out, i)
}

fn check_after_close(line: &[u8], i: usize, quote: &'static str) -> Result<(), ListError> {
    match line.get(i) {
        Some(&junk) if !is_space(junk) => Err(ListError::JunkAfterClose { quote, junk }),
        _ => Ok(()),
    }
}

/// Substitutes the backslash sequence at `line[i]` (which is `\`) into `out` and returns
/// the index after it (`Tcl_UtfBackslash`).
fn backslash(line: &[u8], i: usize, out: &mut Vec<u8>) -> usize {
    let Some(&c) = line.get(i + 1) else {
        out.push(b'\\');
        return i + 1;
    };
    let simple = match c {
        b'a' => Some(0x07),
        b'b' => Some(0x08),
        b'f' => Some(0x0c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        b't' => Some(b'\t'),
        b'v' => Some(0x0b),
        _ => None,
    };
    if let Some(byte) = simple {
        out.push(byte);
        return i + 2;
    }
    match c {
        b'\n' => {
            // Backslash-newline and the blanks after it become one space.
            let mut j = i + 2;
            while j < line.len() && matches!(line[j], b' ' | b'\t') {
                j += 1;
            }
            out.push(b' ');
            j
        }
        b'x' | b'u' | b'U' => {
            let max = match c {
                b'x' => 2,
                b'u' => 4,
                _ => 8,
            };
            let digits = line[i + 2..].iter().take(max).take_while(|b| b.is_ascii_hexdigit()).count();
            if digits == 0 {
                // No digits: the letter stands for itself.
                out.push(c);
                return i + 2;
            }
            let value = line[i + 2..i + 2 + digits]
                .iter()
                .fold(0u32, |acc, b| acc * 16 + (*b as char).to_digit(16).unwrap_or(0));
            push_code_point(value, out);
            i + 2 + digits
        }
        b'0'..=b'7' => {
            // Tcl reads a third digit only when the first is 0-3, so the value is at most
            // 0o377 and names that code point (`\447` is `$` then `7`, not 0o447 & 0xff).
            let max = if c <= b'3' { 3 } else { 2 };
            let digits = line[i + 1..].iter().take(max).take_while(|b| (b'0'..=b'7').contains(b)).count();
            let value = line[i + 1..i + 1 + digits].iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            push_code_point(value, out);
            i + 1 + digits
        }
        // Any other character stands for itself (a multi-byte one is copied whole by the
        // caller's loop, since only its first byte is consumed here).
        other => {
            out.push(other);
            i + 2
        }
    }
}

fn push_code_point(value: u32, out: &mut Vec<u8>) {
    let ch = char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER);
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

/// How an element must be written so that Tcl reads it back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    None,
    Brace,
    /// Backslash before every special byte, braces included.
    Escape,
    /// As `Escape` but balanced braces are left alone (Tcl's `CONVERT_MASK`).
    EscapeKeepBraces,
}

/// Tcl's `TclScanElement`: which form `element` needs. `quote_hash` is true for the
/// first element of a list, where a leading `#` would read as a comment.
fn scan(element: &[u8], quote_hash: bool) -> Conversion {
    let Some(&first) = element.first() else {
        return Conversion::Brace;
    };
    let mut prefer_brace = first == b'{' || first == b'"';
    let mut prefer_escape = false;
    let mut require_escape = false;
    let mut nesting: i64 = 0;
    let mut i = 0;
    while i < element.len() {
        match element[i] {
            b'{' => nesting += 1,
            b'}' => {
                nesting -= 1;
                if nesting < 0 {
                    require_escape = true;
                }
            }
            b']' | b'"' => prefer_escape = true,
            b'[' | b'$' | b';' | b' ' | b'\x0c' | b'\n' | b'\r' | b'\t' | b'\x0b' => prefer_brace = true,
            b'\\' => {
                match element.get(i + 1) {
                    // A final backslash or a backslash-newline cannot sit inside braces.
                    None | Some(b'\n') => require_escape = true,
                    Some(b'{' | b'}' | b'\\') => i += 1,
                    Some(_) => {}
                }
                prefer_brace = true;
            }
            _ => {}
        }
        i += 1;
    }
    if require_escape || nesting != 0 {
        Conversion::Escape
    } else if prefer_escape && !prefer_brace {
        Conversion::EscapeKeepBraces
    } else if prefer_brace || (quote_hash && first == b'#') {
        Conversion::Brace
    } else {
        Conversion::None
    }
}

/// Appends `element` to `out` in the form Tcl's `list` would give it.
fn append_element(element: &[u8], quote_hash: bool, out: &mut Vec<u8>) {
    match scan(element, quote_hash) {
        Conversion::None => out.extend_from_slice(element),
        Conversion::Brace => {
            out.push(b'{');
            out.extend_from_slice(element);
            out.push(b'}');
        }
        conversion => {
            if quote_hash && element.first() == Some(&b'#') {
                out.push(b'\\');
            }
            for &b in element {
                match b {
                    b']' | b'[' | b'$' | b';' | b' ' | b'\\' | b'"' => out.extend_from_slice(&[b'\\', b]),
                    b'{' | b'}' if conversion == Conversion::Escape => out.extend_from_slice(&[b'\\', b]),
                    b'\x0c' => out.extend_from_slice(b"\\f"),
                    b'\n' => out.extend_from_slice(b"\\n"),
                    b'\r' => out.extend_from_slice(b"\\r"),
                    b'\t' => out.extend_from_slice(b"\\t"),
                    b'\x0b' => out.extend_from_slice(b"\\v"),
                    _ => out.push(b),
                }
            }
        }
    }
}

/// Appends the Tcl list of `elements` to `out` (Tcl's `Tcl_Merge`).
pub fn append_list<E: AsRef<[u8]>>(elements: &[E], out: &mut Vec<u8>) {
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        append_element(element.as_ref(), i == 0, out);
    }
}

/// The Tcl list of `elements` as bytes.
pub fn format_list<E: AsRef<[u8]>>(elements: &[E]) -> Vec<u8> {
    let mut out = Vec::new();
    append_list(elements, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<String>, ListError> {
        parse_list(s.as_bytes()).map(|v| v.into_iter().map(|e| String::from_utf8_lossy(&e).into_owned()).collect())
    }

    #[test]
    fn parses_like_tclsh() {
        // Each expectation was produced by tclsh 8.6.13.
        assert_eq!(parse("GIMME {my app} alice").unwrap(), ["GIMME", "my app", "alice"]);
        assert_eq!(parse("{a\\\n   b}").unwrap(), ["a\\\n   b"]);
        assert_eq!(parse("a\\\n   b").unwrap(), ["a b"]);
        assert_eq!(parse("{a\\}b}").unwrap(), ["a\\}b"]);
        assert_eq!(parse("\"a b\\n\" c").unwrap(), ["a b\n", "c"]);
        assert_eq!(parse("a\\ b c").unwrap(), ["a b", "c"]);
        assert_eq!(parse("a\\x41z \\x4142 \\u00e9 \\101 \\q").unwrap(), ["aAz", "A42", "é", "A", "q"]);
        assert_eq!(parse("{a\\{b}").unwrap(), ["a\\{b"]);
        // Octal escapes: a third digit only after 0-3, the code point unmasked (tclsh
        // 8.6.13: \447 is "$7", \740 "<0", \777 "?7", \1234 "S4", \08 NUL then "8",
        // \377 the single character U+00FF).
        assert_eq!(
            parse("\\447 \\740 \\101 a\\0b \\777 \\1234 \\08 \\377 \\400").unwrap(),
            ["$7", "<0", "A", "a\0b", "?7", "S4", "\08", "\u{ff}", " 0"]
        );
        assert_eq!(parse("a{b c").unwrap(), ["a{b", "c"]);
        assert_eq!(parse("a\"b c").unwrap(), ["a\"b", "c"]);
        assert_eq!(parse("  x   ").unwrap(), ["x"]);
        assert!(parse("").unwrap().is_empty());
        assert_eq!(parse("\\").unwrap(), ["\\"]);
        assert_eq!(parse("{} \"\"").unwrap(), ["", ""]);
        assert_eq!(parse("x \\\nb").unwrap(), ["x", " b"]);
        assert_eq!(parse("{a \\\\} b").unwrap(), ["a \\\\", "b"]);
        assert_eq!(parse("ORDERER:fox:evb1 VMUSBReadout:1").unwrap(), ["ORDERER:fox:evb1", "VMUSBReadout:1"]);
    }

    #[test]
    fn rejects_what_tclsh_rejects() {
        assert_eq!(parse("{a"), Err(ListError::UnmatchedBrace));
        assert_eq!(parse("\"a"), Err(ListError::UnmatchedQuote));
        assert_eq!(parse("GIMME {a}b c"), Err(ListError::JunkAfterClose { quote: "braces", junk: b'b' }));
        assert_eq!(parse("\"a\"b"), Err(ListError::JunkAfterClose { quote: "quotes", junk: b'b' }));
        assert_eq!(
            ListError::JunkAfterClose { quote: "braces", junk: b'b' }.to_string(),
            "list element in braces followed by \"b\" instead of space"
        );
    }

    #[test]
    fn quotes_like_tclsh() {
        // (element, as the first element, as a later element), from tclsh 8.6.13's `list`.
        let cases: &[(&str, &str, &str)] = &[
            ("", "{}", "{}"),
            ("a b", "{a b}", "{a b}"),
            ("a{b", "a\\{b", "a\\{b"),
            ("{a", "\\{a", "\\{a"),
            ("a}", "a\\}", "a\\}"),
            ("\"a", "{\"a}", "{\"a}"),
            ("a\"b", "a\\\"b", "a\\\"b"),
            ("a\\", "a\\\\", "a\\\\"),
            ("a\\b", "{a\\b}", "{a\\b}"),
            ("#a", "{#a}", "#a"),
            ("#", "{#}", "#"),
            ("#a{", "\\#a\\{", "#a\\{"),
            ("a]", "a\\]", "a\\]"),
            ("a[b", "{a[b}", "{a[b}"),
            ("a$b", "{a$b}", "{a$b}"),
            ("a;b", "{a;b}", "{a;b}"),
            ("a\nb", "{a\nb}", "{a\nb}"),
            ("{}", "{{}}", "{{}}"),
            ("a\\\nb", "a\\\\\\nb", "a\\\\\\nb"),
            ("\\{", "{\\{}", "{\\{}"),
            ("{a}b", "{{a}b}", "{{a}b}"),
            ("a\tb", "{a\tb}", "{a\tb}"),
            ("}a{", "\\}a\\{", "\\}a\\{"),
            ("x\\{y", "{x\\{y}", "{x\\{y}"),
            ("a]{}", "a\\]{}", "a\\]{}"),
            ("a\"{}", "a\\\"{}", "a\\\"{}"),
            ("a{}", "a{}", "a{}"),
            ("{}b", "{{}b}", "{{}b}"),
            ("a]b c", "{a]b c}", "{a]b c}"),
            ("a]{", "a\\]\\{", "a\\]\\{"),
            ("a b\\", "a\\ b\\\\", "a\\ b\\\\"),
            ("a{ b", "a\\{\\ b", "a\\{\\ b"),
            ("\"", "{\"}", "{\"}"),
            ("]", "\\]", "\\]"),
            ("a\rb{", "a\\rb\\{", "a\\rb\\{"),
            ("a\x0bb{", "a\\vb\\{", "a\\vb\\{"),
            ("a\x0c", "{a\x0c}", "{a\x0c}"),
            ("\"a}", "\\\"a\\}", "\\\"a\\}"),
            ("ORDERER:fox:evb1", "ORDERER:fox:evb1", "ORDERER:fox:evb1"),
        ];
        for (element, first, later) in cases {
            assert_eq!(String::from_utf8_lossy(&format_list(&[element])), *first, "first: {element:?}");
            let pair = String::from_utf8_lossy(&format_list(&["1", element])).into_owned();
            assert_eq!(pair, format!("1 {later}"), "later: {element:?}");
        }
        assert_eq!(format_list(&["FAIL", "Invalid request GIMME {a"]), b"FAIL Invalid\\ request\\ GIMME\\ \\{a");
        assert_eq!(format_list(&["FAIL", "Invalid request "]), b"FAIL {Invalid request }");
    }

    #[test]
    fn round_trips_arbitrary_bytes() {
        use proptest::prelude::*;
        let config = ProptestConfig { cases: 2000, ..ProptestConfig::default() };
        proptest!(config, |(elements in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..12), 0..5))| {
            let line = format_list(&elements);
            prop_assert_eq!(parse_list(&line).unwrap(), elements);
        });
    }
}
