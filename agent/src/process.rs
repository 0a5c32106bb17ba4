//! Process table: spawning `bash -c`, pumping stdio, reaping and signals.
//!
//! Threads per process: a pump (polls stdout+stderr and an exit-notification
//! pipe) and, with piped stdin, a stdin writer. A single reaper thread calls
//! waitpid(-1) so orphans are reaped too (we may be PID 1 / a subreaper).

use crate::frame::{self, Writer};
use crate::json::{n, obj, Value};
use crate::request::Spawn;
use crate::sys::{self, PollFd};
use crate::Fail;
use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

enum StdinMsg {
    Data(Vec<u8>),
    Close,
}

struct Entry {
    pid: i32,
    stdin: Option<Sender<StdinMsg>>,
    /// The pty's master side, for `resize` (processes started with a terminal).
    pty: Option<File>,
}

#[derive(Default)]
struct Table {
    /// Live processes by the host's request id.
    by_id: HashMap<u32, Entry>,
    /// Where the reaper reports each child's wait status.
    exit_pipes: HashMap<i32, File>,
    /// Set by spawn so a reaper that saw ECHILD wakes up.
    spawned: bool,
}

static TABLE: LazyLock<(Mutex<Table>, Condvar)> = LazyLock::new(|| (Mutex::new(Table::default()), Condvar::new()));

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the reaper thread.
pub fn start_reaper() {
    let started = crate::thread(|| loop {
        match sys::wait_any() {
            Ok(Some((pid, status))) => {
                // Unknown pids are orphans (or failed execs): reaping is all they need.
                if let Some(mut pipe) = table().exit_pipes.remove(&pid) {
                    let _ = pipe.write_all(&status.to_ne_bytes());
                }
            }
            Ok(None) | Err(_) => {
                let mut t = table();
                while !t.spawned {
                    // The timeout is a safety net for children we did not spawn ourselves.
                    let (g, timeout) = TABLE.1.wait_timeout(t, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner());
                    t = g;
                    if timeout.timed_out() {
                        break;
                    }
                }
                t.spawned = false;
            }
        }
    });
    if let Err(e) = started {
        // Without a reaper no exit is ever reported: better to stop at once, visibly.
        eprintln!("kiln-agent: cannot start the reaper: {}", e.message);
        std::process::exit(1);
    }
}

/// Prefer bash; fall back to sh so minimal (busybox) images still work.
fn shell() -> &'static str {
    ["/bin/bash", "/usr/bin/bash", "/bin/sh"].into_iter().find(|p| std::path::Path::new(p).exists()).unwrap_or("/bin/sh")
}

/// Handles `spawn`: starts the process and answers RESPONSE {pid}; EXIT follows later.
pub fn spawn(out: &Arc<Writer>, id: u32, req: &Spawn) -> Result<(), Fail> {
    let Spawn { command, cwd, piped, .. } = req;
    let piped = *piped;
    let mut envp = Vec::new();
    for (k, v) in &req.env {
        envp.push(sys::cstr(&format!("{}={}", k, v))?);
    }
    let size = req.pty;
    let program = shell();
    let plan = sys::ExecPlan {
        program: sys::cstr(program)?,
        argv: vec![sys::cstr(program.rsplit('/').next().unwrap_or("sh"))?, sys::cstr("-c")?, sys::cstr(command)?],
        envp,
        cwd: sys::cstr(cwd)?,
        ctty: size.is_some(),
    };
    // With a terminal, the child's stdin, stdout and stderr are the pty's slave
    // side; its output (both streams, as on a terminal) comes from the master,
    // and stderr's pipe is closed at once.
    let (in_r, in_w, out_r, out_w, err_r, err_w, master) = match size {
        Some((cols, rows)) => {
            let (master, slave) = sys::open_pty(cols, rows)
                .map_err(|e| Fail::new("ENOTTY", format!("cannot open a terminal: {}", Fail::io(e, "open a pty").message)))?;
            let (err_r, err_w) = sys::pipe()?;
            drop(err_w);
            let err_w = slave.try_clone()?;
            (slave.try_clone()?, master.try_clone()?, master.try_clone()?, slave, err_r, err_w, Some(master))
        }
        None => {
            let (in_r, in_w) = sys::pipe()?;
            let (out_r, out_w) = sys::pipe()?;
            let (err_r, err_w) = sys::pipe()?;
            (in_r, in_w, out_r, out_w, err_r, err_w, None)
        }
    };
    let (exit_r, exit_w) = sys::pipe()?;

    // Threads first, forks second: when the process limit leaves no room for a
    // thread, nothing has been started and the host gets EAGAIN. The pump waits
    // at a gate until RESPONSE has gone out (it must precede the first STDOUT).
    let (gate_tx, gate_rx) = channel::<bool>();
    let pump_out = out.clone();
    crate::thread(move || {
        if gate_rx.recv() == Ok(true) {
            pump(pump_out, id, out_r, err_r, exit_r);
        }
    })?;
    let stdin = if piped {
        match start_stdin(out.clone(), id, in_w, size.is_some()) {
            Ok(tx) => Some(tx),
            Err(e) => {
                let _ = gate_tx.send(false);
                return Err(e);
            }
        }
    } else {
        drop(in_w);
        None
    };

    // Holding the table lock across fork means the reaper cannot look up the
    // new pid before it is registered.
    let mut t = table();
    if t.by_id.contains_key(&id) {
        let _ = gate_tx.send(false);
        return Err(Fail::new("EINVAL", format!("process id {} is in use", id)));
    }
    let pid = match sys::spawn(&plan, in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()) {
        Ok(pid) => pid,
        Err(e) => {
            let _ = gate_tx.send(false);
            return Err(Fail::io(e, &format!("spawn in {}", cwd)));
        }
    };
    drop((in_r, out_w, err_w)); // the child's ends
    t.by_id.insert(id, Entry { pid, stdin, pty: master });
    t.exit_pipes.insert(pid, exit_w);
    t.spawned = true;
    drop(t);
    TABLE.1.notify_all();

    out.json(frame::RESPONSE, id, &obj(vec![("pid", n(pid))]));
    let _ = gate_tx.send(true);
    Ok(())
}

/// Writes queued stdin chunks into the pipe, acknowledging each one (the
/// host limits bytes in flight, which bounds this queue).
fn start_stdin(out: Arc<Writer>, id: u32, pipe: File, pty: bool) -> Result<Sender<StdinMsg>, Fail> {
    let (tx, rx) = channel();
    crate::thread(move || {
        let mut pipe = Some(pipe);
        for msg in rx {
            match msg {
                StdinMsg::Close => {
                    // A terminal has no end of its input to close: closing it is typing
                    // the end-of-file character (Ctrl-D), as a user would.
                    if let (true, Some(p)) = (pty, pipe.as_mut()) {
                        let _ = p.write_all(&[4]);
                    }
                    pipe = None
                }
                StdinMsg::Data(bytes) => {
                    let res = match pipe.as_mut() {
                        Some(p) => p.write_all(&bytes).map_err(|e| Fail::io(e, "write stdin")),
                        None => Err(Fail::new("EPIPE", "stdin is closed".into())),
                    };
                    match res {
                        Ok(()) => out.send(frame::STDIN_ACK, id, &[]),
                        Err(e) => {
                            pipe = None;
                            let v = obj(vec![("errno", crate::json::s(&e.errno)), ("message", crate::json::s(&e.message))]);
                            out.json(frame::STDIN_ACK, id, &v);
                        }
                    }
                }
            }
        }
    })?;
    Ok(tx)
}

/// Forwards output until the process exits, drains what it wrote before
/// exiting, then sends EXIT. Output from background descendants that still
/// hold the pipes after that is dropped (they get EPIPE).
fn pump(out: Arc<Writer>, id: u32, stdout: File, stderr: File, mut exit: File) {
    let mut streams = [(Some(stdout), frame::STDOUT), (Some(stderr), frame::STDERR)];
    let mut buf = vec![0u8; frame::CHUNK];
    let status;
    loop {
        let mut fds: Vec<PollFd> = streams
            .iter()
            .map(|(f, _)| PollFd { fd: f.as_ref().map_or(-1, |f| f.as_raw_fd()), events: sys::POLLIN, revents: 0 })
            .collect();
        fds.push(PollFd { fd: exit.as_raw_fd(), events: sys::POLLIN, revents: 0 });
        if sys::poll_fds(&mut fds, -1).is_err() {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        }
        for (i, (file, ty)) in streams.iter_mut().enumerate() {
            if fds[i].revents & (sys::POLLIN | sys::POLLHUP | sys::POLLERR) == 0 {
                continue;
            }
            if let Some(f) = file.as_mut() {
                match f.read(&mut buf) {
                    Ok(0) => *file = None,
                    Ok(k) => out.send(*ty, id, &buf[..k]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => *file = None,
                }
            }
        }
        if fds[2].revents != 0 {
            let mut st = [0u8; 4];
            status = if exit.read_exact(&mut st).is_ok() { i32::from_ne_bytes(st) } else { 0x7f00 };
            break;
        }
    }
    // Whatever the process wrote before it exited is already in the pipes.
    for (file, ty) in streams.iter_mut() {
        if let Some(f) = file.take() {
            sys::set_nonblocking(f.as_raw_fd());
            let mut f = f;
            loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => out.send(*ty, id, &buf[..k]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        }
    }
    table().by_id.remove(&id);
    let (code, sig) = sys::decode_status(status);
    let mut fields = vec![("exitCode", n(code))];
    if let Some(sig) = sig {
        fields.push(("signal", n(sig)));
    }
    out.json(frame::EXIT, id, &obj(fields));
}

/// STDIN frame: queue bytes for the process (acknowledged by its stdin thread).
pub fn stdin_data(out: &Writer, id: u32, bytes: Vec<u8>) {
    let t = table();
    match t.by_id.get(&id).and_then(|e| e.stdin.as_ref()) {
        Some(tx) if tx.send(StdinMsg::Data(bytes)).is_ok() => {}
        _ => {
            drop(t);
            let v = obj(vec![("errno", crate::json::s("EPIPE")), ("message", crate::json::s("no such process or stdin not piped"))]);
            out.json(frame::STDIN_ACK, id, &v);
        }
    }
}

/// STDIN_CLOSE frame: close stdin after the queued chunks.
pub fn stdin_close(id: u32) {
    if let Some(e) = table().by_id.get_mut(&id) {
        if let Some(tx) = e.stdin.take() {
            let _ = tx.send(StdinMsg::Close);
        }
    }
}

/// Handles `resize`: sets the terminal size of process `target` (started with a pty).
pub fn resize(target: u32, cols: u16, rows: u16) -> Result<Value, Fail> {
    let t = table();
    let entry = t.by_id.get(&target).ok_or_else(|| Fail::new("ESRCH", format!("no running process {}", target)))?;
    let pty = entry.pty.as_ref().ok_or_else(|| Fail::new("ENOTTY", format!("process {} has no terminal", target)))?;
    sys::set_winsize(pty.as_raw_fd(), cols, rows).map_err(|e| Fail::io(e, "resize"))?;
    Ok(obj(vec![]))
}

/// Handles `signal`: signals the whole process group of process `target`.
pub fn signal(target: u32, sig: i32) -> Result<Value, Fail> {
    let found = table().by_id.get(&target).map(|e| (e.pid, e.pty.is_some()));
    let (pid, pty) = found.ok_or_else(|| Fail::new("ESRCH", format!("no running process {}", target)))?;
    // An interactive shell on a terminal puts each job in a process group of its own, all in
    // the shell's session: signal the whole session, not only the shell's group.
    if pty {
        for member in session_members(pid) {
            if member != pid {
                let _ = sys::send_signal(member, sig);
            }
        }
    }
    // The group can be gone while the leader is a zombie; fall back to the pid.
    sys::send_signal(-pid, sig).or_else(|_| sys::send_signal(pid, sig)).map_err(|e| Fail::io(e, "kill"))?;
    Ok(obj(vec![]))
}

/// Processes whose session id is `sid` (best effort).
fn session_members(sid: i32) -> Vec<i32> {
    let mut found = Vec::new();
    for_each_process(|pid, f| {
        if f.session == sid {
            found.push(pid);
        }
    });
    found
}

/// The fields of /proc/<pid>/stat that the agent reads.
struct StatFields {
    ppid: i32,
    pgrp: i32,
    session: i32,
}

/// Calls `f` for every process in /proc with its stat fields (best effort:
/// /proc may be absent in a minimal sandbox, and processes come and go).
fn for_each_process(mut f: impl FnMut(i32, &StatFields)) {
    let Ok(dir) = std::fs::read_dir("/proc") else { return };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", pid)) else { continue };
        // The fields after the parenthesised command name: state ppid pgrp session ...
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| fields.get(i).and_then(|f| f.parse::<i32>().ok()).unwrap_or(-1);
        f(pid, &StatFields { ppid: num(1), pgrp: num(2), session: num(3) });
    }
}

/// Kills every process group we started, plus orphans re-parented to us
/// (background jobs of finished commands), and, as PID 1, everything else.
pub fn kill_all() {
    let mut pids: Vec<i32> = table().by_id.values().map(|e| e.pid).collect();
    pids.extend(own_children());
    for pid in pids {
        let _ = sys::send_signal(-pid, sys::SIGKILL);
        let _ = sys::send_signal(pid, sys::SIGKILL);
    }
    if sys::pid() == 1 {
        let _ = sys::send_signal(-1, sys::SIGKILL);
    }
}

/// Our direct children and their process groups (best effort).
fn own_children() -> Vec<i32> {
    let me = sys::pid();
    let mut found = Vec::new();
    for_each_process(|pid, f| {
        if f.ppid == me {
            found.push(pid);
            if f.pgrp > 1 && f.pgrp != me {
                found.push(f.pgrp);
            }
        }
    });
    found
}
