//! The fuzz harness, built only with `--cfg kiln_fuzz` (`scripts/build-agent.sh
//! --fuzz` → agent/target/kiln-agent-fuzz): reads the host → agent byte stream
//! from stdin through the agent's own frame reader and request decoder, and
//! answers errors as the agent would (into /dev/null), but runs nothing.
//!
//! It exits 0 at the end of its input or at the first frame error (where the
//! agent stops too), after printing one line of counts to stdout, e.g.
//! `frames=3 requests=2 errors=1 end=eof`, so that a driver can tell that its
//! input was decoded. A panic aborts (SIGABRT); a hang or an allocation past
//! a bound is for the driver to catch (a time limit, an address-space limit).

use crate::frame::{self, ReadError, Writer};
use crate::request::{self, Input};
use std::fs::OpenOptions;
use std::io::{self, BufReader};

pub fn main() {
    let sink = OpenOptions::new().write(true).open("/dev/null").expect("open /dev/null");
    let out = Writer::new(sink);
    let mut input = BufReader::with_capacity(256 * 1024, io::stdin().lock());
    let (mut frames, mut requests, mut errors) = (0u64, 0u64, 0u64);
    let end = loop {
        match frame::read_frame(&mut input) {
            Ok(f) => {
                frames += 1;
                let id = f.id;
                match request::decode(f) {
                    Ok(Input::Request(_)) => requests += 1,
                    Ok(_) => {}
                    Err(e) => {
                        errors += 1;
                        out.error(id, &e);
                    }
                }
            }
            Err(ReadError::Eof) => break "eof",
            Err(ReadError::Malformed(_)) => break "malformed",
            Err(ReadError::Io(_)) => break "io",
        }
    };
    println!("frames={} requests={} errors={} end={}", frames, requests, errors, end);
}
