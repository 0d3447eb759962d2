//! `daqflow-demo`: a ring, one producer process and several consumer processes moving
//! NSCLDAQ-style ring items, every byte checked at every consumer. `make demo` runs it.
//!
//!   daqflow-demo [--consumers N] [--seconds S | --megabytes M]   the whole demo
//!   daqflow-demo produce RING LIMIT SERVICE N    a producer process (LIMIT: 3s or 256MiB)
//!   daqflow-demo consume SERVICE                 a consumer process
//!
//! The demo starts its own port manager; the producer allocates a port under SERVICE
//! and the consumers find the ring through it.

mod discovery;
mod items;
mod portmgr;
mod roles;
mod run;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: daqflow-demo [--consumers N] [--seconds S | --megabytes M]\n       daqflow-demo produce RING LIMIT SERVICE N\n       daqflow-demo consume SERVICE"
    );
    ExitCode::from(2)
}

fn report(result: Result<String, String>) -> ExitCode {
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("daqflow-demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    // Rings announced to the local ring master and `tcp://` names, as NSCLDAQ programs do.
    daqflow::client::install();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["produce", ring, limit, service, n] => match (roles::Limit::parse(limit), n.parse::<usize>()) {
            (Some(limit), Ok(n)) => report(roles::produce(ring, limit, service, n)),
            _ => usage(),
        },
        ["consume", service] => report(roles::consume(service)),
        options => match run::Options::parse(options) {
            Some(options) => report(run::run(&options)),
            None => usage(),
        },
    }
}
