//! A daqflow client of a ring: see `daqflow_interop::peer` for the arguments and output.

use daqflow::ring::{self, Consumer, Producer};
use daqflow_interop::peer::{self, Args, Op, PATIENCE};

fn run(a: &Args) -> Result<(), String> {
    let text = |e: daqflow::Error| e.to_string();
    match a.op {
        Op::Produce => {
            let mut p = Producer::attach(&a.ring).map_err(text)?;
            peer::transfer(a, || {
                peer::wait_for_consumers(a.consumers, || {
                    ring::usage(&a.ring).map(|u| u.consumers.len()).map_err(text)
                })?;
                peer::produce(a.record, a.total, |data| p.put(data, Some(PATIENCE)).map_err(text))
            })?;
            p.detach().map_err(text)
        }
        Op::Consume => {
            let mut c = Consumer::attach(&a.ring).map_err(text)?;
            peer::transfer(a, || {
                peer::consume(a.record, a.total, |buf| c.get(buf, buf.len() as u64, Some(PATIENCE)).map_err(text))
            })?;
            c.detach().map_err(text)
        }
    }
}

fn main() {
    peer::main(run);
}
