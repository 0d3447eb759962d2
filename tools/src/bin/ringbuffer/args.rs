//! The command line: NSCLDAQ's `ringbuffer` subcommands and `--option=value` switches
//! (a value may also be the next word), in any order around the positional words.

use std::time::Duration;

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create { name: String, data_bytes: u64, max_consumers: u32 },
    Format { name: String, max_consumers: u32 },
    Delete { name: String },
    List { host: Option<String>, json: bool },
    Status { host: Option<String>, owners: Owners, pattern: String, json: bool },
    Top { interval: Duration, pattern: String },
    Help,
}

/// NSCLDAQ's defaults: 8 MiB of data, 100 consumers.
const DEFAULT_DATA_BYTES: u64 = 8 << 20;
const DEFAULT_MAX_CONSUMERS: u32 = 100;
const DEFAULT_INTERVAL_MS: u64 = 250;

/// The words of one subcommand: switches by name, and the other words in order.
struct Words {
    switches: Vec<(String, Option<String>)>,
    positional: Vec<String>,
}

impl Words {
    /// Splits `args`; `valued` names the switches that take a value.
    fn split(args: &[String], valued: &[&str], flags: &[&str]) -> Result<Words, String> {
        let mut words = Words { switches: Vec::new(), positional: Vec::new() };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                words.positional.extend(it.by_ref().cloned());
                break;
            }
            if !arg.starts_with("--") {
                words.positional.push(arg.clone());
                continue;
            }
            let (name, inline) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (arg.as_str(), None),
            };
            if valued.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => it.next().cloned().ok_or_else(|| format!("{name} needs a value ({name}=...)"))?,
                };
                words.switches.push((name.to_string(), Some(value)));
            } else if flags.contains(&name) {
                if inline.is_some() {
                    return Err(format!("{name} takes no value"));
                }
                words.switches.push((name.to_string(), None));
            } else {
                return Err(format!("unknown option {arg}"));
            }
        }
        Ok(words)
    }

    /// The last value given for `name` (later words override earlier ones).
    fn value(&self, name: &str) -> Option<&str> {
        self.switches.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    fn flag(&self, name: &str) -> bool {
        self.switches.iter().any(|(n, _)| n == name)
    }

    /// Exactly one positional word: the ring's name.
    fn one_name(&self, command: &str) -> Result<String, String> {
        match self.positional.as_slice() {
            [name] => Ok(name.clone()),
            [] => Err(format!("{command} needs a ring name")),
            more => Err(format!("{command} takes one ring name, not {}", more.len())),
        }
    }

    fn at_most_one_pattern(&self, command: &str) -> Result<String, String> {
        match self.positional.as_slice() {
            [] => Ok("*".to_string()),
            [pattern] => Ok(pattern.clone()),
            more => Err(format!("{command} takes at most one pattern, not {}", more.len())),
        }
    }

    fn none(&self, command: &str) -> Result<(), String> {
        match self.positional.first() {
            None => Ok(()),
            Some(extra) => Err(format!("{command} takes no argument {extra:?}")),
        }
    }
}

/// `n`, `nk`, `nm` or `ng` (powers of 1024, either case), as NSCLDAQ's --datasize.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (digits, shift) = match text.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&text[..text.len() - 1], 10),
        Some('m') => (&text[..text.len() - 1], 20),
        Some('g') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let bad = || format!("--datasize={text} is not a size (n, nk, nm or ng)");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let bytes = n.checked_mul(1 << shift).ok_or_else(|| format!("--datasize={text} is too large"))?;
    if bytes == 0 {
        return Err("--datasize must be more than 0".to_string());
    }
    Ok(bytes)
}

fn parse_consumers(words: &Words) -> Result<u32, String> {
    match words.value("--maxconsumers") {
        None => Ok(DEFAULT_MAX_CONSUMERS),
        Some(text) => match text.parse::<u32>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("--maxconsumers={text} is not a whole number of at least 1")),
        },
    }
}

fn parse_host(words: &Words) -> Result<Option<String>, String> {
    match words.value("--host") {
        Some("") => Err("--host needs a host name".to_string()),
        other => Ok(other.map(String::from)),
    }
}

/// Parses the words after the program's name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((command, rest)) = args.split_first() else {
        return Err("a subcommand is needed".to_string());
    };
    match command.as_str() {
        "create" => {
            let words = Words::split(rest, &["--datasize", "--maxconsumers"], &[])?;
            let data_bytes = words.value("--datasize").map_or(Ok(DEFAULT_DATA_BYTES), parse_size)?;
            Ok(Command::Create { name: words.one_name("create")?, data_bytes, max_consumers: parse_consumers(&words)? })
        }
        "format" => {
            let words = Words::split(rest, &["--maxconsumers"], &[])?;
            Ok(Command::Format { name: words.one_name("format")?, max_consumers: parse_consumers(&words)? })
        }
        "delete" => Ok(Command::Delete { name: Words::split(rest, &[], &[])?.one_name("delete")? }),
        "list" => {
            let words = Words::split(rest, &["--host"], &["--json"])?;
            words.none("list")?;
            Ok(Command::List { host: parse_host(&words)?, json: words.flag("--json") })
        }
        "status" => {
            let words = Words::split(rest, &["--host", "--user"], &["--all", "--json"])?;
            let owners = match (words.flag("--all"), words.value("--user")) {
                (true, Some(_)) => return Err("--all and --user cannot be used together".to_string()),
                (true, None) => Owners::All,
                (false, Some(list)) => {
                    let users: Vec<String> = list.split(',').filter(|u| !u.is_empty()).map(String::from).collect();
                    if users.is_empty() {
                        return Err("--user needs at least one user name".to_string());
                    }
                    Owners::Users(users)
                }
                (false, None) => Owners::Me,
            };
            Ok(Command::Status {
                host: parse_host(&words)?,
                owners,
                pattern: words.at_most_one_pattern("status")?,
                json: words.flag("--json"),
            })
        }
        "top" => {
            let words = Words::split(rest, &["--interval"], &[])?;
            let ms = match words.value("--interval") {
                None => DEFAULT_INTERVAL_MS,
                Some(text) => match text.parse::<u64>() {
                    Ok(ms) if (50..=10_000).contains(&ms) => ms,
                    _ => return Err(format!("--interval={text} is not a number of milliseconds from 50 to 10000")),
                },
            };
            Ok(Command::Top { interval: Duration::from_millis(ms), pattern: words.at_most_one_pattern("top")? })
        }
        "help" | "-h" | "--help" => Ok(Command::Help),
        other => Err(format!("unknown subcommand {other:?}")),
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
        assert_eq!(p("create r --maxconsumers 4 --datasize 1m"), Ok(want));
        assert_eq!(p("create r"), Ok(Command::Create { name: "r".into(), data_bytes: 8 << 20, max_consumers: 100 }));
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
        assert_eq!(p("help"), Ok(Command::Help));
        assert!(p("").is_err());
        assert!(p("frobnicate").is_err());
    }
}
