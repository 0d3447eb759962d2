//! lsservices ?host ?user-glob??: the port manager's allocations as a table.

use std::process::ExitCode;

use daqflow::glob;
use daqflow::portmgr::Client;

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
    let rows: Vec<_> =
        allocations.iter().filter(|a| glob::matches(pattern, &a.user)).collect();
    let service_width = rows.iter().map(|a| a.application.chars().count()).max().unwrap_or(0).max("Service".len());
    let user_width = rows.iter().map(|a| a.user.chars().count()).max().unwrap_or(0).max("User".len());
    println!("{:<5}  {:<service_width$}  {:<user_width$}", "Port", "Service", "User");
    println!("{:-<5}  {:-<service_width$}  {:-<user_width$}", "", "", "");
    for a in rows {
        println!("{:<5}  {:<service_width$}  {:<user_width$}", a.port, a.application, a.user);
    }
    ExitCode::SUCCESS
}
