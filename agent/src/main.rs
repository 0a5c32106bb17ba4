//! kiln-agent: runs inside a sandbox and serves Kiln's host over one framed
//! byte stream (stdin/stdout). See docs/protocol.md.
// The fuzz build (`--cfg kiln_fuzz`) uses only the decoding half.
#![cfg_attr(kiln_fuzz, allow(dead_code, unused_imports))]

mod files;
mod frame;
#[cfg(not(kiln_fuzz))]
mod idmap;
#[cfg(kiln_fuzz)]
mod fuzz;
mod json;
mod net;
mod process;
mod request;
mod sys;
mod watch;

use frame::{Frame, ReadError, Writer};
use json::{n, obj, s, Value};
use request::{Input, Request};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader};
use std::os::fd::FromRawFd;
use std::sync::Arc;

pub const PROTOCOL: u32 = 1;
pub const VERSION: &str = "0.1.0";

const OPS: &[&str] = &[
    "ping", "spawn", "signal", "resize", "stat", "list", "read", "write", "mkdir", "remove", "rename", "symlink", "chmod", "utimes", "connect",
    "watch", "clock", "hold", "adopt",
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

#[cfg(kiln_fuzz)]
fn main() {
    fuzz::main()
}

#[cfg(not(kiln_fuzz))]
fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--idmap-exec") {
        idmap::main(&args[2..], idmap::Then::EnterUserNamespace);
    }
    if args.get(1).map(String::as_str) == Some("--idmap-stage") {
        idmap::main(&args[2..], idmap::Then::StayHostRoot);
    }
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
    let input = match request::decode(f) {
        Ok(input) => input,
        Err(e) => return out.error(id, &e),
    };
    match input {
        Input::Request(req) => request(out, uploads, id, req),
        Input::Stdin(bytes) => process::stdin_data(out, id, bytes),
        Input::StdinClose => process::stdin_close(id),
        // DATA/END for a write that already failed are dropped on purpose.
        Input::Data(bytes) => {
            if net::is_conn(id) {
                net::data(id, bytes);
            } else if let Some(up) = uploads.get_mut(&id) {
                if let Err(e) = files::write_data(up, &bytes) {
                    uploads.remove(&id);
                    out.error(id, &e);
                }
            }
        }
        Input::End => {
            if net::is_conn(id) {
                net::end(id);
            } else if let Some(up) = uploads.remove(&id) {
                match files::write_end(up) {
                    Ok(v) => out.json(frame::RESPONSE, id, &v),
                    Err(e) => out.error(id, &e),
                }
            }
        }
        Input::Cancel => {
            if net::is_conn(id) {
                net::cancel(id);
            } else if uploads.remove(&id).is_some() {
                out.error(id, &Fail::new("ECANCELED", "write cancelled".into()));
            } else if !watch::cancel(id) {
                files::read_cancel(id);
            }
        }
        Input::Credit(Some(bytes)) => {
            files::read_credit(id, bytes);
            net::credit(id, bytes);
        }
        Input::Credit(None) => {}
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
fn set_clock(ms: f64) -> Result<Value, Fail> {
    if !VM.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Fail::new("ENOTSUP", "only a virtual machine's agent sets its clock".into()));
    }
    sys::set_clock_ms(ms).map_err(|e| Fail::io(e, "clock_settime"))?;
    Ok(obj(vec![]))
}

/// Makes a VM restored from a saved state that other sandboxes share this sandbox's own: its
/// hostname (the kernel's, and the /etc/hostname and /etc/hosts the init bound from /.kiln), its
/// process limit (the init's cgroup), and its random pool, reseeded with the host's bytes so that
/// no two sandboxes restored from one state share their randomness. Only a VM's agent.
fn adopt(a: &request::Adopt) -> Result<Value, Fail> {
    if !VM.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Fail::new("ENOTSUP", "only a virtual machine's agent adopts an identity".into()));
    }
    sys::add_entropy(&a.entropy).map_err(|e| Fail::io(e, "RNDADDENTROPY"))?;
    sys::set_hostname(&a.hostname).map_err(|e| Fail::io(e, "sethostname"))?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{}\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        a.hostname
    );
    // The init made /.kiln read-only; its files are bound over the template's, so they are
    // rewritten in place (same inodes), never replaced.
    sys::remount("/.kiln", false).map_err(|e| Fail::io(e, "remount /.kiln"))?;
    let written = std::fs::write("/.kiln/hostname", format!("{}\n", a.hostname))
        .and_then(|()| std::fs::write("/.kiln/hosts", hosts));
    sys::remount("/.kiln", true).map_err(|e| Fail::io(e, "remount /.kiln"))?;
    written.map_err(|e| Fail::io(e, "/.kiln"))?;
    let pids = a.pids.map_or("max".to_string(), |p| p.to_string());
    std::fs::write("/sys/fs/cgroup/kiln/pids.max", pids).map_err(|e| Fail::io(e, "pids.max"))?;
    Ok(obj(vec![]))
}

fn request(out: &Arc<Writer>, uploads: &mut HashMap<u32, files::Upload>, id: u32, req: Request) {
    // Ok(None): the op answers by itself (later, or from a thread of its own).
    let result: Result<Option<Value>, Fail> = match req {
        // The ops too: a host that restored the agent (a saved VM) never saw its HELLO.
        Request::Ping => Ok(Some(obj(vec![
            ("version", s(VERSION)),
            ("ops", Value::Arr(OPS.iter().map(|o| s(o)).collect())),
        ]))),
        Request::Clock { time_ms } => set_clock(time_ms).map(Some),
        Request::Adopt(a) => adopt(&a).map(Some),
        // A hold is taken on the reader thread before dispatch; one that gets here holds nothing.
        Request::Hold => Ok(Some(obj(vec![]))),
        // spawn answers by itself: RESPONSE must precede the first STDOUT frame.
        Request::Spawn(sp) => process::spawn(out, id, &sp).map(|()| None),
        Request::Signal { target, signal } => process::signal(target, signal).map(Some),
        Request::Resize { target, cols, rows } => process::resize(target, cols, rows).map(Some),
        // connect answers by itself, from its own thread, once the socket is open.
        Request::Connect { port, window } => net::connect(out, id, port, window).map(|()| None),
        // watch answers by itself (RESPONSE once watching, then DATA frames).
        Request::Watch { path, recursive } => watch::watch(out, id, path, recursive).map(|()| None),
        // RESPONSE comes at END.
        Request::Write { path, max_bytes } => files::write_begin(id, path, max_bytes).map(|up| {
            uploads.insert(id, up);
            None
        }),
        Request::Read { path, window } => {
            files::read_begin(id, window);
            let reader = out.clone();
            thread(move || files::read(&reader, id, &path)).map(|()| None)
        }
        op @ (Request::Stat { .. }
        | Request::List { .. }
        | Request::Mkdir { .. }
        | Request::Remove { .. }
        | Request::Rename { .. }
        | Request::Symlink { .. }
        | Request::Chmod { .. }
        | Request::Utimes { .. }) => {
            let worker = out.clone();
            thread(move || match file_op(op) {
                Ok(v) => worker.json(frame::RESPONSE, id, &v),
                Err(e) => worker.error(id, &e),
            })
            .map(|()| None)
        }
    };
    match result {
        Ok(Some(v)) => out.json(frame::RESPONSE, id, &v),
        Ok(None) => {}
        Err(e) => out.error(id, &e),
    }
}

/// The file operations that may block for long, run on a thread of their own.
fn file_op(req: Request) -> Result<Value, Fail> {
    match req {
        Request::Stat { path } => files::stat(&path),
        Request::List { path, depth } => files::list(&path, depth),
        Request::Mkdir { path } => files::mkdir(&path),
        Request::Remove { path } => files::remove(&path),
        Request::Rename { from, to } => files::rename(&from, &to),
        Request::Symlink { target, path } => files::symlink(&target, &path),
        Request::Chmod { path, mode } => files::chmod(&path, mode),
        Request::Utimes { path, atime_ms, mtime_ms } => files::utimes(&path, atime_ms, mtime_ms),
        _ => Err(Fail::new("ENOSYS", "not a file operation".into())),
    }
}
