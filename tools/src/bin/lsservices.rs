//! lsservices ?host ?user-glob??: the port manager's allocations as a table.

use std::process::ExitCode;

use daqflow::portmgr::Client;
use daqflow_tools::glob;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() > 2 || args.first().is_some_and(|a| a == "-h" || a == "--help") {
        eprintln!("Usage: lsservices ?host ?user-glob??");
        return ExitCode::from(255);
    }
    let host = args.first().map(String::as_str);
    let pattern = args.get(1).map_or("*", String::as_str);
    let allocations = match Client::connect(host, None).and_then(|mut c| c.list()) {
        Ok(list) => list,
        Err(e) => {
            eprintln!("lsservices: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The names are the server's, and the server may be anyone's: printed raw, a name
    // holding an escape sequence could rewrite the operator's screen.
    let rows: Vec<_> = allocations
        .iter()
        .filter(|a| glob::matches(pattern, &a.user))
        .map(|a| (a.port, printable(&a.application), printable(&a.user)))
        .collect();
    let service_width =
        rows.iter().map(|(_, application, _)| application.chars().count()).max().unwrap_or(0).max("Service".len());
    let user_width = rows.iter().map(|(_, _, user)| user.chars().count()).max().unwrap_or(0).max("User".len());
    println!("{:<5}  {:<service_width$}  {:<user_width$}", "Port", "Service", "User");
    println!("{:-<5}  {:-<service_width$}  {:-<user_width$}", "", "", "");
    for (port, application, user) in rows {
        println!("{port:<5}  {application:<service_width$}  {user:<user_width$}");
    }
    ExitCode::SUCCESS
}

/// `text` with every control character (an escape sequence's ESC among them) as `?`,
/// as ps shows them.
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}
