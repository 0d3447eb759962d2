//! The command line: NSCLDAQ's `ringbuffer` subcommands and `--option=value` switches
//! (a value may also be the next word; the last of a repeated switch wins), in any order
//! around the positional words. clap parses it; the text NSCLDAQ users know (USAGE) stays
//! the top-level help and follows every usage error, and each subcommand's own `--help`
//! is clap's, from the comments below.

use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

pub const USAGE: &str = "\
Usage:
  ringbuffer create ?--datasize=n[k|m|g]? ?--maxconsumers=n? name
  ringbuffer format ?--maxconsumers=n? name
  ringbuffer delete name
  ringbuffer list   ?--host=h? ?--json?
  ringbuffer status ?--host=h? ?--all? ?--user=u1,u2? ?--json? ?pattern?
  ringbuffer top    ?--interval=ms? ?pattern?
  ringbuffer help

Exit status: 0 done, 1 failed, 2 no such ring, 3 ring exists, 4 ring in use,
5 permission denied, 6 remote host or ring master not reachable, 255 usage error.
See ringbuffer(1).
";

/// Whose rings `status` shows (by the owner of /dev/shm/NAME).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owners {
    Me,
    All,
    Users(Vec<String>),
}

/// What to do. `Help` carries the text to print: USAGE for `help`, `-h` and `--help`, a
/// subcommand's own for `help CMD` and `CMD --help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create { name: String, data_bytes: u64, max_consumers: u32 },
    Format { name: String, max_consumers: u32 },
    Delete { name: String },
    List { host: Option<String>, json: bool },
    Status { host: Option<String>, owners: Owners, pattern: String, json: bool },
    Top { interval: Duration, pattern: String },
    Help(String),
}

#[derive(Parser)]
#[command(
    name = "ringbuffer",
    help_template = USAGE,
    disable_version_flag = true,
    subcommand_required = true,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Words,
}

// The words after `ringbuffer`; the defaults are NSCLDAQ's: 8 MiB of data, 100 consumers.
#[derive(Subcommand)]
enum Words {
    /// Creates ring NAME (world read-write, as NSCLDAQ makes them)
    Create {
        /// Bytes of data: n, nk, nm or ng (times 1024, 1024^2, 1024^3)
        #[arg(long, value_name = "n[k|m|g]", value_parser = parse_size, default_value = "8m")]
        datasize: u64,
        /// Consumer slots
        #[arg(long, value_name = "n", value_parser = parse_consumers, default_value = "100")]
        maxconsumers: u32,
        /// The ring's name (/dev/shm/NAME)
        name: String,
    },
    /// Makes the shared-memory object NAME an empty ring (refused while in use)
    Format {
        /// Consumer slots
        #[arg(long, value_name = "n", value_parser = parse_consumers, default_value = "100")]
        maxconsumers: u32,
        /// The ring's name (/dev/shm/NAME)
        name: String,
    },
    /// Removes ring NAME
    Delete {
        /// The ring's name (/dev/shm/NAME)
        name: String,
    },
    /// Lists the rings of this host, or of another through its ring master
    List {
        /// Another host (its ring master answers)
        #[arg(long, value_name = "h", value_parser = parse_host)]
        host: Option<String>,
        /// One JSON document for scripts
        #[arg(long)]
        json: bool,
    },
    /// Shows each ring's use, producer and consumers (mine, unless --all or --user)
    Status {
        /// Another host (its ring master answers)
        #[arg(long, value_name = "h", value_parser = parse_host)]
        host: Option<String>,
        /// Everyone's rings
        #[arg(long, conflicts_with = "user")]
        all: bool,
        /// The rings of these users (comma-separated)
        #[arg(long, value_name = "u1,u2", value_parser = parse_users)]
        user: Option<Users>,
        /// One JSON document for scripts
        #[arg(long)]
        json: bool,
        /// Rings whose names match this glob pattern
        #[arg(default_value = "*")]
        pattern: String,
    },
    /// A live view of this host's rings: fill, rates, the consumer holding the producer back
    Top {
        /// Milliseconds between redraws, 50 to 10000
        #[arg(long, value_name = "ms", value_parser = parse_interval, default_value = "250")]
        interval: Duration,
        /// Rings whose names match this glob pattern
        #[arg(default_value = "*")]
        pattern: String,
    },
}

/// `--user`'s names; a type of its own, since clap reads a `Vec` as a repeatable switch.
#[derive(Debug, Clone)]
struct Users(Vec<String>);

/// `n`, `nk`, `nm` or `ng` (powers of 1024, either case), as NSCLDAQ's --datasize.
fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&text[..text.len() - 1], 10),
        Some('m') => (&text[..text.len() - 1], 20),
        Some('g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let bad = || "not a size (n, nk, nm or ng)".to_string();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(|| "too large".to_string())?;
    if bytes == 0 {
        return Err("must be more than 0".to_string());
    }
    Ok(bytes)
}

fn parse_consumers(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err("not a whole number of at least 1".to_string()),
    }
}

fn parse_host(text: &str) -> Result<String, String> {
    if text.is_empty() { Err("a host name is needed".to_string()) } else { Ok(text.to_string()) }
}

fn parse_users(text: &str) -> Result<Users, String> {
    let users: Vec<String> = text.split(',').filter(|u| !u.is_empty()).map(String::from).collect();
    if users.is_empty() { Err("at least one user name is needed".to_string()) } else { Ok(Users(users)) }
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    match text.parse::<u64>() {
        Ok(ms) if (50..=10_000).contains(&ms) => Ok(Duration::from_millis(ms)),
        _ => Err("not a number of milliseconds from 50 to 10000".to_string()),
    }
}

impl From<Words> for Command {
    fn from(words: Words) -> Command {
        match words {
            Words::Create { datasize, maxconsumers, name } => {
                Command::Create { name, data_bytes: datasize, max_consumers: maxconsumers }
            }
            Words::Format { maxconsumers, name } => Command::Format { name, max_consumers: maxconsumers },
            Words::Delete { name } => Command::Delete { name },
            Words::List { host, json } => Command::List { host, json },
            Words::Status { host, all, user, json, pattern } => {
                // clap has refused --all with --user.
                let owners = match (all, user) {
                    (true, _) => Owners::All,
                    (false, Some(Users(users))) => Owners::Users(users),
                    (false, None) => Owners::Me,
                };
                Command::Status { host, owners, pattern, json }
            }
            Words::Top { interval, pattern } => Command::Top { interval, pattern },
        }
    }
}

/// What clap says went wrong, without its usage line and its pointer to `--help`: the
/// caller follows it with USAGE.
fn reason(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let kept: Vec<&str> = text
        .split("\n\n")
        .filter(|part| !part.starts_with("Usage:") && !part.starts_with("For more information"))
        .collect();
    kept.join("\n\n").trim_end().to_string()
}

/// Parses the words after the program's name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let words = std::iter::once("ringbuffer").chain(args.iter().map(String::as_str));
    match Cli::try_parse_from(words) {
        Ok(cli) => Ok(cli.command.into()),
        Err(e) if e.kind() == ErrorKind::DisplayHelp => Ok(Command::Help(e.render().to_string())),
        // No words at all: clap would show the help as if asked for it.
        Err(e) if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Err("a subcommand is needed".to_string())
        }
        Err(e) => Err(reason(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &str) -> Result<Command, String> {
        parse(&words.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("100000"), Ok(100_000));
        assert_eq!(parse_size("64k"), Ok(64 << 10));
        assert_eq!(parse_size("8m"), Ok(8 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        for bad in ["", "k", "-1", "1.5m", "12q", "0", "0k", "99999999999999999999", "17179869184g"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn create_takes_switches_in_any_order_and_both_forms() {
        let want = Command::Create { name: "r".into(), data_bytes: 1 << 20, max_consumers: 4 };
        assert_eq!(p("create --datasize=1m --maxconsumers=4 r"), Ok(want.clone()));
        assert_eq!(p("create r --maxconsumers 4 --datasize 1m"), Ok(want.clone()));
        assert_eq!(p("create --datasize=2m r --datasize=1m --maxconsumers=4"), Ok(want), "the last one wins");
        assert_eq!(p("create r"), Ok(Command::Create { name: "r".into(), data_bytes: 8 << 20, max_consumers: 100 }));
        assert_eq!(
            p("create -- -r"),
            Ok(Command::Create { name: "-r".into(), data_bytes: 8 << 20, max_consumers: 100 })
        );
        assert!(p("create").is_err());
        assert!(p("create a b").is_err());
        assert!(p("create --maxconsumers=0 r").is_err());
        assert!(p("create --datasize r").is_err(), "the name is not a size");
        assert!(p("create --bogus=1 r").is_err());
    }

    #[test]
    fn status_owners_and_patterns() {
        let status =
            |owners, pattern: &str| Command::Status { host: None, owners, pattern: pattern.into(), json: false };
        assert_eq!(p("status"), Ok(status(Owners::Me, "*")));
        assert_eq!(p("status --all demo*"), Ok(status(Owners::All, "demo*")));
        assert_eq!(p("status --user=ann,bob"), Ok(status(Owners::Users(vec!["ann".into(), "bob".into()]), "*")));
        assert!(p("status --all --user=ann").is_err(), "mutually exclusive, as in NSCLDAQ");
        assert!(p("status --user=,").is_err());
        assert!(p("status a b").is_err());
        assert!(p("status --all=yes").is_err());
        assert_eq!(
            p("status --host=daq1 --json"),
            Ok(Command::Status { host: Some("daq1".into()), owners: Owners::Me, pattern: "*".into(), json: true })
        );
    }

    #[test]
    fn list_top_and_the_rest() {
        assert_eq!(p("list --json"), Ok(Command::List { host: None, json: true }));
        assert!(p("list extra").is_err());
        assert!(p("list --host=").is_err());
        assert_eq!(p("top"), Ok(Command::Top { interval: Duration::from_millis(250), pattern: "*".into() }));
        assert!(p("top --interval=10").is_err());
        assert_eq!(p("delete r"), Ok(Command::Delete { name: "r".into() }));
        assert_eq!(p("format --maxconsumers=7 r"), Ok(Command::Format { name: "r".into(), max_consumers: 7 }));
        assert!(p("").is_err());
        assert!(p("frobnicate").is_err());
    }

    #[test]
    fn help_is_the_usage_and_each_subcommand_has_its_own() {
        for words in ["help", "-h", "--help"] {
            assert_eq!(p(words), Ok(Command::Help(USAGE.to_string())), "{words}");
        }
        for words in ["create --help", "help create"] {
            let Ok(Command::Help(text)) = p(words) else { panic!("{words}: no help") };
            assert!(text.contains("--datasize <n[k|m|g]>") && text.contains("Consumer slots"), "{words}: {text}");
        }
    }

    /// Each refusal says what was wrong with which word, in one paragraph or two (with
    /// clap's tip), and leaves the usage to the caller.
    #[test]
    fn errors_name_the_word_at_fault() {
        let cases = [
            (
                "create --datasize=12q x",
                "invalid value '12q' for '--datasize <n[k|m|g]>': not a size (n, nk, nm or ng)",
            ),
            (
                "create --maxconsumers=0 x",
                "invalid value '0' for '--maxconsumers <n>': not a whole number of at least 1",
            ),
            ("create", "the following required arguments were not provided:\n  <NAME>"),
            ("create a b", "unexpected argument 'b' found"),
            ("list --host=", "invalid value '' for '--host <h>': a host name is needed"),
            ("status --all --user=ann", "the argument '--all' cannot be used with '--user <u1,u2>'"),
            ("status --all=yes", "unexpected value 'yes' for '--all' found; no more were expected"),
            (
                "top --interval=10",
                "invalid value '10' for '--interval <ms>': not a number of milliseconds from 50 to 10000",
            ),
            ("stauts", "unrecognized subcommand 'stauts'\n\n  tip: a similar subcommand exists: 'status'"),
        ];
        for (words, want) in cases {
            assert_eq!(p(words), Err(want.to_string()), "{words}");
        }
        assert_eq!(p(""), Err("a subcommand is needed".to_string()));
    }
}
