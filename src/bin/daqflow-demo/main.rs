//! `daqflow-demo`: a ring, one producer process and several consumer processes moving
//! NSCLDAQ-style ring items, every byte checked at every consumer. `make demo` runs it.
//!
//!   daqflow-demo [--consumers N] [--megabytes M]   the whole demo
//!   daqflow-demo produce RING MEGABYTES            a producer process
//!   daqflow-demo consume RING                      a consumer process

mod items;
mod roles;
mod run;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: daqflow-demo [--consumers N] [--megabytes M]\n       daqflow-demo produce RING MEGABYTES\n       daqflow-demo consume RING");
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
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["produce", ring, mb] => match mb.parse::<u64>() {
            Ok(mb) => report(roles::produce(ring, mb << 20)),
            Err(_) => usage(),
        },
        ["consume", ring] => report(roles::consume(ring)),
        options => match run::Options::parse(options) {
            Some(options) => report(run::run(&options)),
            None => usage(),
        },
    }
}
