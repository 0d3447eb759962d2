//! The manual pages in man/: each renders with `man -l` (fixed MANWIDTH) and `groff -ww`
//! without a warning, fits 80 columns, has the usual sections, and covers what it
//! documents: every function of include/daqflow.h, every option of each program's own
//! usage text, every exit status of ringbuffer.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository (man/ is shared by every package).
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

fn page(name: &str) -> PathBuf {
    Path::new(ROOT).join("man").join(name)
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
}

/// The page as `man` renders it at 80 columns; fails on any warning.
fn render(name: &str) -> String {
    let out = Command::new("man")
        .args(["--warnings", "-l"])
        .arg(page(name))
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("man runs");
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && warnings.trim().is_empty(), "man -l {name}:\n{warnings}");
    let groff = Command::new("groff").args(["-ww", "-z", "-man"]).arg(page(name)).output().expect("groff runs");
    let warnings = String::from_utf8_lossy(&groff.stderr);
    assert!(warnings.trim().is_empty(), "groff -ww {name}:\n{warnings}");
    // Bold and underline come as overstrikes when the output is not a terminal.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut plain = String::new();
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

fn pages() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(Path::new(ROOT).join("man"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Words of a usage text that look like options (`--name`, `-name`).
fn options_in(usage: &str) -> Vec<String> {
    let mut options: Vec<String> = usage
        .split(|c: char| c.is_whitespace() || "[]?=|,".contains(c))
        .filter(|w| w.starts_with('-') && w.len() > 2 && w[1..].chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .map(String::from)
        .collect();
    options.sort();
    options.dedup();
    options
}

fn usage_of(program: &str, args: &[&str]) -> String {
    let exe = Path::new(env!("CARGO_BIN_EXE_ringbuffer")).with_file_name(program);
    let out = Command::new(exe).args(args).output().expect("run the program");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The text of section `title` of a rendered page: up to the next heading (a line that
/// starts in column 0).
fn section<'a>(text: &'a str, title: &str) -> &'a str {
    let start = text.find(&format!("\n{title}\n")).unwrap_or_else(|| panic!("no {title} section")) + title.len() + 1;
    let rest = &text[start..];
    let mut end = 0;
    for line in rest.split_inclusive('\n') {
        if end > 0 && !line.trim().is_empty() && !line.starts_with(' ') {
            break;
        }
        end += line.len();
    }
    &rest[..end]
}

#[test]
fn every_page_renders_cleanly_with_the_usual_sections() {
    if !have("man") || !have("groff") {
        eprintln!(
            "SKIPPED: man or groff is missing, so the manual pages were not rendered (apt-get install man-db groff-base)"
        );
        return;
    }
    let names = pages();
    for expected in
        ["daqflow.3", "daqportmgr.8", "lsservices.1", "portAllocator.n", "ring.n", "ringbuffer.1", "ringmaster.8"]
    {
        assert!(names.iter().any(|n| n == expected), "man/{expected} is missing");
    }
    for name in &names {
        let text = render(name);
        for title in ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO"] {
            assert!(text.contains(&format!("\n{title}\n")), "{name} has no {title} section:\n{text}");
        }
        let (stem, section) = name.rsplit_once('.').unwrap();
        assert!(text.lines().next().unwrap_or_default().contains(&format!("({section})")), "{name}: header");
        assert!(section_first_word(&text).eq_ignore_ascii_case(stem.split('.').next().unwrap()), "{name}: NAME");
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{name}: a line wider than 80 columns:\n{line}");
        }
    }
}

fn section_first_word(text: &str) -> String {
    section(text, "NAME")
        .split(|c: char| c == ',' || c.is_whitespace())
        .find(|w| !w.is_empty())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn daqflow_3_covers_every_function_of_the_header() {
    if !have("man") || !have("groff") {
        eprintln!("SKIPPED: man or groff is missing");
        return;
    }
    let text = render("daqflow.3");
    let header = std::fs::read_to_string(Path::new(ROOT).join("include/daqflow.h")).unwrap();
    let functions: Vec<&str> = header
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#') && !l.starts_with("typedef") && l.contains('('))
        .filter_map(|l| l.split('(').next()?.rsplit([' ', '*']).next())
        .collect();
    assert!(functions.len() > 30, "parsed only {functions:?}");
    let synopsis = section(&text, "SYNOPSIS");
    for f in functions {
        assert!(synopsis.contains(&format!("{f}(")), "daqflow(3) SYNOPSIS lacks {f}");
        assert!(text.matches(f).count() >= 2, "daqflow(3) never describes {f}");
    }
}

#[test]
fn program_pages_cover_every_option_and_exit_status() {
    if !have("man") || !have("groff") {
        eprintln!("SKIPPED: man or groff is missing");
        return;
    }
    let ringbuffer = render("ringbuffer.1");
    let usage = usage_of("ringbuffer", &["help"]);
    for subcommand in ["create", "format", "delete", "list", "status", "top"] {
        assert!(usage.contains(&format!("ringbuffer {subcommand}")), "usage lacks {subcommand}");
        let described =
            section(&ringbuffer, "COMMANDS").lines().any(|l| l.split_whitespace().next() == Some(subcommand));
        assert!(described, "ringbuffer(1) lacks {subcommand}");
    }
    for option in options_in(&usage) {
        assert!(ringbuffer.contains(&option), "ringbuffer(1) lacks {option}");
    }
    // "Exit status: 0 done, 1 failed, ..." in the usage: each code has its entry.
    let statuses = usage.split("Exit status:").nth(1).expect("usage lists exit statuses");
    let exit = section(&ringbuffer, "EXIT STATUS");
    let codes: Vec<&str> =
        statuses.split([',', ' ', '\n']).filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_digit())).collect();
    assert!(codes.len() >= 7, "{codes:?}");
    for code in codes {
        let entry = exit.lines().any(|l| l.starts_with("       ") && l.split_whitespace().next() == Some(code));
        assert!(entry, "ringbuffer(1) EXIT STATUS lacks {code}:\n{exit}");
    }

    for (program, page) in [("daqportmgr", "daqportmgr.8"), ("ringmaster", "ringmaster.8")] {
        let text = render(page);
        let options = options_in(&usage_of(program, &["--help"]));
        assert!(options.len() >= 4, "{program}: {options:?}");
        for option in options {
            let word = option.trim_start_matches('-');
            assert!(text.contains(&format!("-{word}")), "{page} lacks {option}");
        }
        section(&text, "EXIT STATUS");
    }
    let lsservices = render("lsservices.1");
    assert!(section(&lsservices, "EXIT STATUS").contains("255"));
}

#[test]
fn tcl_pages_cover_their_commands() {
    if !have("man") || !have("groff") {
        eprintln!("SKIPPED: man or groff is missing");
        return;
    }
    let ring = render("ring.n");
    for sub in ["create", "format", "disconnect producer", "disconnect consumer", "usage", "list", "remove"] {
        assert!(section(&ring, "SYNOPSIS").contains(&format!("ringbuffer {sub}")), "ring(n) lacks {sub}");
    }
    assert!(ring.contains("package require ring 1.1"));
    let pa = render("portAllocator.n");
    for method in ["create", "listPorts", "findServer", "allocatePort", "destroy"] {
        assert!(section(&pa, "SYNOPSIS").contains(method), "portAllocator(n) lacks {method}");
    }
}
