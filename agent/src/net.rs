//! Port connections: `connect` opens a TCP connection to a port on the
//! sandbox's own loopback and tunnels its bytes over the frame stream, like
//! `kubectl port-forward`. The host needs no network path into the sandbox.
//!
//! Per connection: the thread that connects then reads the socket (DATA to
//! the host, within the CREDIT the host grants), and a writer thread that
//! takes the host's DATA from a queue, writes it and answers CREDIT (a→h)
//! with the bytes written, so the host never has more than its window in
//! flight and the input thread never blocks on a socket.

use crate::frame::{self, Writer};
use crate::json::obj;
use crate::Fail;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

/// Most connections open at once; beyond it `connect` answers EAGAIN.
const MAX_CONNS: usize = 1024;
/// How long a connect may take before ETIMEDOUT.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

enum Msg {
    Data(Vec<u8>),
    End,
}

struct Conn {
    /// Queue to the writer thread; None once the host ended or cancelled.
    tx: Option<Sender<Msg>>,
    /// The socket, once connected (for CANCEL to shut it down).
    sock: Option<TcpStream>,
    /// Bytes the reader may still send before the host grants more.
    credit: i64,
    cancelled: bool,
    /// Threads (reader, writer) still using this entry.
    users: u32,
}

static CONNS: LazyLock<(Mutex<HashMap<u32, Conn>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashMap::new()), Condvar::new()));

fn conns() -> std::sync::MutexGuard<'static, HashMap<u32, Conn>> {
    CONNS.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// True when `id` is an open connection (frames for it belong here).
pub fn is_conn(id: u32) -> bool {
    conns().contains_key(&id)
}

/// Drops a thread's hold on the entry; the last one removes it.
fn release(id: u32) {
    let mut map = conns();
    if let Some(c) = map.get_mut(&id) {
        c.users -= 1;
        if c.users == 0 {
            map.remove(&id);
        }
    }
}

/// Handles `connect` {port, window}: answers RESPONSE {} once connected
/// (ERROR ECONNREFUSED, ETIMEDOUT... otherwise), then DATA..., END or ERROR.
pub fn connect(out: &Arc<Writer>, id: u32, port: u16, window: i64) -> Result<(), Fail> {
    let (tx, rx) = channel();
    {
        let mut map = conns();
        if map.len() >= MAX_CONNS {
            return Err(Fail::new("EAGAIN", format!("connect: {} connections are open", MAX_CONNS)));
        }
        map.insert(id, Conn { tx: Some(tx), sock: None, credit: window, cancelled: false, users: 1 });
    }
    let worker = out.clone();
    let started = crate::thread(move || run(worker, id, port, rx));
    if let Err(e) = started {
        conns().remove(&id);
        return Err(e);
    }
    Ok(())
}

fn dial(port: u16) -> std::io::Result<TcpStream> {
    let v4 = SocketAddr::from(([127, 0, 0, 1], port));
    match TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        // A server may listen on the IPv6 loopback only.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            let v6 = SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], port));
            TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT).map_err(|_| e)
        }
        r => r,
    }
}

/// The connection's first thread: connects, starts the writer, then reads.
fn run(out: Arc<Writer>, id: u32, port: u16, rx: Receiver<Msg>) {
    let sock = match dial(port) {
        Ok(s) => s,
        Err(e) => {
            conns().remove(&id);
            out.error(id, &Fail::io(e, &format!("connect 127.0.0.1:{}", port)));
            return;
        }
    };
    let _ = sock.set_nodelay(true);
    let (writer_sock, cancel_sock) = match (sock.try_clone(), sock.try_clone()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            conns().remove(&id);
            out.error(id, &Fail::new("EMFILE", "connect: no file descriptor left".into()));
            return;
        }
    };
    {
        let mut map = conns();
        match map.get_mut(&id) {
            Some(c) if !c.cancelled => {
                c.sock = Some(cancel_sock);
                c.users += 1;
            }
            _ => {
                map.remove(&id);
                drop(map);
                out.error(id, &Fail::new("ECANCELED", "connect cancelled".into()));
                return;
            }
        }
    }
    out.json(frame::RESPONSE, id, &obj(vec![]));
    let wout = out.clone();
    if crate::thread(move || write_loop(wout, id, writer_sock, rx)).is_err() {
        // No writer: the host's bytes cannot go anywhere, so the connection ends now.
        let _ = sock.shutdown(Shutdown::Both);
        release(id);
    }
    read_loop(&out, id, sock);
    release(id);
}

fn read_loop(out: &Writer, id: u32, mut sock: TcpStream) {
    let mut buf = vec![0u8; frame::CHUNK];
    loop {
        let k = match sock.read(&mut buf) {
            Ok(k) => k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !cancelled(id) {
                    out.error(id, &Fail::io(e, "read from the port"));
                }
                return;
            }
        };
        if k == 0 {
            if !cancelled(id) {
                out.send(frame::END, id, &[]);
            }
            return;
        }
        if !take_credit(id, k) {
            return;
        }
        out.send(frame::DATA, id, &buf[..k]);
    }
}

fn cancelled(id: u32) -> bool {
    conns().get(&id).is_none_or(|c| c.cancelled)
}

/// Waits for credit; false when cancelled.
fn take_credit(id: u32, want: usize) -> bool {
    let mut map = conns();
    loop {
        match map.get_mut(&id) {
            None => return false,
            Some(c) if c.cancelled => return false,
            Some(c) if c.credit > 0 => {
                c.credit -= want as i64;
                return true;
            }
            _ => map = CONNS.1.wait(map).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

fn write_loop(out: Arc<Writer>, id: u32, mut sock: TcpStream, rx: Receiver<Msg>) {
    let mut broken = false;
    // Ends when the host ends, cancels (the sender is dropped) or the agent shuts down.
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Data(bytes) => {
                // After a failed write the bytes are dropped but still credited, so the host
                // never waits for a window that cannot open; the reader reports the end.
                if !broken && sock.write_all(&bytes).is_err() {
                    broken = true;
                    let _ = sock.shutdown(Shutdown::Both);
                }
                out.send(frame::CREDIT, id, &(bytes.len() as u32).to_be_bytes());
            }
            Msg::End => {
                let _ = sock.shutdown(Shutdown::Write);
                break;
            }
        }
    }
    release(id);
}

/// DATA from the host: queued for the writer thread.
pub fn data(id: u32, bytes: Vec<u8>) {
    if let Some(tx) = conns().get(&id).and_then(|c| c.tx.as_ref()) {
        let _ = tx.send(Msg::Data(bytes));
    }
}

/// END from the host: its side is done; the socket's write half closes after the queued bytes.
pub fn end(id: u32) {
    if let Some(tx) = conns().get_mut(&id).and_then(|c| c.tx.take()) {
        let _ = tx.send(Msg::End);
    }
}

/// CANCEL from the host: closes the connection at once; nothing more is sent for it.
pub fn cancel(id: u32) {
    let mut map = conns();
    if let Some(c) = map.get_mut(&id) {
        c.cancelled = true;
        c.tx = None;
        if let Some(s) = c.sock.as_ref() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
    CONNS.1.notify_all();
}

/// CREDIT from the host: it consumed `bytes` more.
pub fn credit(id: u32, bytes: u32) {
    if let Some(c) = conns().get_mut(&id) {
        c.credit += bytes as i64;
    }
    CONNS.1.notify_all();
}
