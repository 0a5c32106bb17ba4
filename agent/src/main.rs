//! kiln-agent: runs inside a sandbox and serves Kiln's host over one framed
//! byte stream (stdin/stdout). See docs/protocol.md.

mod files;
mod frame;
mod json;
mod net;
mod process;
mod sys;
mod watch;

use frame::{Frame, ReadError, Writer};
use json::{n, obj, s, Value};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::fd::FromRawFd;
use std::sync::Arc;

pub const PROTOCOL: u32 = 1;
pub const VERSION: &str = "0.1.0";

const OPS: &[&str] = &[
    "ping", "spawn", "signal", "resize", "stat", "list", "read", "write", "mkdir", "remove", "rename", "symlink", "chmod", "utimes", "connect",
    "watch", "clock", "hold",
];

/// An error reported to the host: errno-style code plus a message.
pub struct Fail {
    pub errno: String,
    pub message: String,
}

impl Fail {
    pub fn new(errno: &str, message: String) -> Fail {
        Fail { errno: errno.to_string(), message }
    }
    pub fn io(e: io::Error, context: &str) -> Fail {
        let errno = sys::errno_name(e.raw_os_error().unwrap_or(5));
        let text = e.to_string();
        let text = text.split(" (os error").next().unwrap_or(&text);
        Fail::new(errno, format!("{}: {}", context, text))
    }
}

impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        Fail::io(e, "agent")
    }
}

/// Starts a helper thread. Small stacks: the agent runs up to two threads
/// per process and should stay light (its buffers live on the heap).
/// Fails with EAGAIN when the sandbox's process limit leaves no room for a
/// thread (a fork bomb): callers answer their request with that error, so
/// the host never waits for a reply that cannot come.
pub fn thread<F: FnOnce() + Send + 'static>(f: F) -> Result<(), Fail> {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .map(|_| ())
        .map_err(|_| Fail::new("EAGAIN", "no room for another thread (the process limit is reached)".into()))
}

/// Kills our processes and exits. Called on EOF, on a broken output stream
/// and on a malformed frame.
pub fn shutdown(code: i32) -> ! {
    // Kill and reap until no child is left (killing a parent re-parents its
    // children to us), so the sandbox is empty when we are gone. Bounded,
    // since a process stuck in the kernel cannot be reaped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        process::kill_all();
        if !sys::reap_some() || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    if VM.load(std::sync::atomic::Ordering::Relaxed) {
        // The guest ends with us: its disks must hold what was written.
        sys::sync_and_power_off();
    }
    std::process::exit(code)
}

/// Set by `--vm`: the agent is PID 1 of a virtual machine (the microvm tier).
/// Programs it starts get no capabilities, and its exit syncs and powers off.
static VM: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn main() {
    if std::env::args().skip(1).any(|a| a == "--vm") {
        VM.store(true, std::sync::atomic::Ordering::Relaxed);
        sys::drop_bounding_set();
    }
    sys::set_subreaper();
    // fd 1 is the protocol stream; nothing else may write to it.
    let out = Arc::new(Writer::new(unsafe { File::from_raw_fd(1) }));
    process::start_reaper();
    let hello = obj(vec![
        ("protocol", n(PROTOCOL)),
        ("version", s(VERSION)),
        ("pid", n(sys::pid())),
        ("ops", Value::Arr(OPS.iter().map(|o| s(o)).collect())),
    ]);
    out.json(frame::HELLO, 0, &hello);

    let mut input = BufReader::with_capacity(256 * 1024, unsafe { File::from_raw_fd(0) });
    let mut uploads: HashMap<u32, files::Upload> = HashMap::new();
    // A `hold` in force: the output stream stays locked until the host's next frame.
    let mut held = None;
    loop {
        match frame::read_frame(&mut input) {
            Ok(f) => {
                // Any frame from the host ends a hold.
                drop(held.take());
                if is_hold(&f) {
                    held = Some(out.hold(f.id));
                } else {
                    dispatch(&out, &mut uploads, f);
                }
            }
            Err(ReadError::Eof) => shutdown(0),
            Err(ReadError::Io(e)) => {
                eprintln!("kiln-agent: input error: {}", e);
                shutdown(1);
            }
            Err(ReadError::Malformed(why)) => {
                // Lengths cannot be trusted any more, so the stream is lost: say why, then go.
                eprintln!("kiln-agent: protocol error: {}", why);
                out.error(0, &Fail::new("EPROTO", why));
                shutdown(2);
            }
        }
    }
}

/// Handles one frame on the reader thread. Anything that may block for long
/// (file reads, listings, removals) runs on its own thread.
fn dispatch(out: &Arc<Writer>, uploads: &mut HashMap<u32, files::Upload>, f: Frame) {
    let id = f.id;
    match f.ty {
        frame::REQUEST => match json::parse(&f.payload) {
            Ok(req) => request(out, uploads, id, req),
            Err(e) => out.error(id, &Fail::new("EINVAL", format!("bad request JSON: {}", e))),
        },
        frame::STDIN => process::stdin_data(out, id, f.payload),
        frame::STDIN_CLOSE => process::stdin_close(id),
        // DATA/END for a write that already failed are dropped on purpose.
        frame::DATA => {
            if net::is_conn(id) {
                net::data(id, f.payload);
            } else if let Some(up) = uploads.get_mut(&id) {
                if let Err(e) = files::write_data(up, &f.payload) {
                    uploads.remove(&id);
                    out.error(id, &e);
                }
            }
        }
        frame::END => {
            if net::is_conn(id) {
                net::end(id);
            } else if let Some(up) = uploads.remove(&id) {
                match files::write_end(up) {
                    Ok(v) => out.json(frame::RESPONSE, id, &v),
                    Err(e) => out.error(id, &e),
                }
            }
        }
        frame::CANCEL => {
            if net::is_conn(id) {
                net::cancel(id);
            } else if uploads.remove(&id).is_some() {
                out.error(id, &Fail::new("ECANCELED", "write cancelled".into()));
            } else if !watch::cancel(id) {
                files::read_cancel(id);
            }
        }
        frame::CREDIT => {
            if f.payload.len() == 4 {
                let b = &f.payload;
                let bytes = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                files::read_credit(id, bytes);
                net::credit(id, bytes);
            }
        }
        other => out.error(id, &Fail::new("EPROTO", format!("unknown frame type 0x{:02x}", other))),
    }
}

/// A `hold` request: the host is about to save the VM, and wants every frame written so far to
/// have reached it, and no frame begun, while the VM stands still (a frame cut in two would reach
/// the next host as garbage). Answered from the reader thread, which keeps the output locked.
fn is_hold(f: &Frame) -> bool {
    f.ty == frame::REQUEST
        && f.payload.len() < 64
        && json::parse(&f.payload).ok().map(|v| v.str("op") == Some("hold")).unwrap_or(false)
}

/// Sets a VM's wall clock to the host's (`timeMs`): a restored guest's clock stood still while its
/// state was saved. Anywhere else the clock is the host's own, and not the agent's to set.
fn set_clock(req: &Value) -> Result<Value, Fail> {
    if !VM.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Fail::new("ENOTSUP", "only a virtual machine's agent sets its clock".into()));
    }
    let ms = req.num("timeMs").filter(|m| m.is_finite() && *m > 0.0);
    let ms = ms.ok_or_else(|| Fail::new("EINVAL", "clock needs timeMs".into()))?;
    sys::set_clock_ms(ms).map_err(|e| Fail::io(e, "clock_settime"))?;
    Ok(obj(vec![]))
}

fn request(out: &Arc<Writer>, uploads: &mut HashMap<u32, files::Upload>, id: u32, req: Value) {
    let op = req.str("op").unwrap_or("").to_string();
    let result = match op.as_str() {
        "ping" => Ok(obj(vec![("version", s(VERSION))])),
        "clock" => set_clock(&req),
        // spawn answers by itself: RESPONSE must precede the first STDOUT frame.
        "spawn" => match process::spawn(out, id, &req) {
            Ok(()) => return,
            Err(e) => Err(e),
        },
        "signal" => process::signal(&req),
        // connect answers by itself, from its own thread, once the socket is open.
        "connect" => match net::connect(out, id, &req) {
            Ok(()) => return,
            Err(e) => Err(e),
        },
        // watch answers by itself (RESPONSE once watching, then DATA frames).
        "watch" => match watch::watch(out, id, &req) {
            Ok(()) => return,
            Err(e) => Err(e),
        },
        "resize" => process::resize(&req),
        "write" => match files::write_begin(id, &req) {
            Ok(up) => {
                uploads.insert(id, up);
                return; // RESPONSE comes at END
            }
            Err(e) => Err(e),
        },
        "read" => {
            files::read_begin(id, &req);
            let reader = out.clone();
            match thread(move || files::read(&reader, id, &req)) {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        "stat" | "list" | "mkdir" | "remove" | "rename" | "symlink" | "chmod" | "utimes" => {
            let worker = out.clone();
            let started = thread(move || {
                let out = worker;
                let r = match op.as_str() {
                    "stat" => files::stat(&req),
                    "list" => files::list(&req),
                    "mkdir" => files::mkdir(&req),
                    "remove" => files::remove(&req),
                    "rename" => files::rename(&req),
                    "symlink" => files::symlink(&req),
                    "chmod" => files::chmod(&req),
                    _ => files::utimes(&req),
                };
                match r {
                    Ok(v) => out.json(frame::RESPONSE, id, &v),
                    Err(e) => out.error(id, &e),
                }
            });
            match started {
                Ok(()) => return,
                Err(e) => Err(e),
            }
        }
        "" => Err(Fail::new("EINVAL", "request has no 'op'".into())),
        other => Err(Fail::new("ENOSYS", format!("unknown op '{}'", other))),
    };
    match result {
        Ok(v) => out.json(frame::RESPONSE, id, &v),
        Err(e) => out.error(id, &e),
    }
}
