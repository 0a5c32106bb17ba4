//! Frame codec. Layout (all integers big-endian):
//!   u32 length of what follows | u8 type | u32 id | payload (length - 5 bytes)
//! See docs/protocol.md for the meaning of each type.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::Mutex;

pub const HELLO: u8 = 0x01;
pub const REQUEST: u8 = 0x02;
pub const RESPONSE: u8 = 0x03;
pub const ERROR: u8 = 0x04;
pub const STDIN: u8 = 0x10;
pub const STDIN_CLOSE: u8 = 0x11;
pub const STDIN_ACK: u8 = 0x12;
pub const STDOUT: u8 = 0x13;
pub const STDERR: u8 = 0x14;
pub const EXIT: u8 = 0x15;
pub const DATA: u8 = 0x20;
pub const END: u8 = 0x21;
pub const CANCEL: u8 = 0x22;
pub const CREDIT: u8 = 0x23;

/// Largest accepted value of the length field (type + id + payload).
pub const MAX_FRAME: usize = 16 * 1024 * 1024 + 5;
/// Chunk size for stdout/stderr/file data frames.
pub const CHUNK: usize = 64 * 1024;

pub struct Frame {
    pub ty: u8,
    pub id: u32,
    pub payload: Vec<u8>,
}

pub enum ReadError {
    /// The stream ended (cleanly, or in the middle of a frame).
    Eof,
    /// The peer sent something that is not a frame; the stream cannot be resynchronised.
    Malformed(String),
    Io(io::Error),
}

/// Reads one frame; `Eof` when the input ended.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, ReadError> {
    let mut head = [0u8; 9];
    if let Err(e) = r.read_exact(&mut head[..4]) {
        return Err(if e.kind() == io::ErrorKind::UnexpectedEof { ReadError::Eof } else { ReadError::Io(e) });
    }
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if !(5..=MAX_FRAME).contains(&len) {
        return Err(ReadError::Malformed(format!("bad frame length {}", len)));
    }
    r.read_exact(&mut head[4..9]).map_err(|_| ReadError::Eof)?;
    let mut payload = vec![0u8; len - 5];
    r.read_exact(&mut payload).map_err(|_| ReadError::Eof)?;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]);
    Ok(Frame { ty: head[4], id, payload })
}

/// The single output stream. Every frame is written whole under one lock, so
/// threads can send concurrently without interleaving bytes.
pub struct Writer {
    out: Mutex<File>,
}

impl Writer {
    pub fn new(out: File) -> Writer {
        Writer { out: Mutex::new(out) }
    }

    pub fn send(&self, ty: u8, id: u32, payload: &[u8]) {
        let mut buf = Vec::with_capacity(9 + payload.len());
        buf.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
        buf.push(ty);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(payload);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.write_all(&buf).is_err() {
            // The host is gone: nobody can receive output any more.
            crate::shutdown(0);
        }
    }

    /// Answers request `id` with an empty RESPONSE and keeps the stream locked: no other frame is
    /// written until the guard is dropped (the reader thread drops it at the host's next frame).
    pub fn hold(&self, id: u32) -> std::sync::MutexGuard<'_, File> {
        let payload = b"{}";
        let mut buf = Vec::with_capacity(9 + payload.len());
        buf.extend_from_slice(&((payload.len() + 5) as u32).to_be_bytes());
        buf.push(RESPONSE);
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(payload);
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        if out.write_all(&buf).is_err() {
            crate::shutdown(0);
        }
        out
    }

    pub fn json(&self, ty: u8, id: u32, v: &crate::json::Value) {
        self.send(ty, id, v.encode().as_bytes());
    }

    pub fn error(&self, id: u32, e: &crate::Fail) {
        let v = crate::json::obj(vec![("errno", crate::json::s(&e.errno)), ("message", crate::json::s(&e.message))]);
        self.json(ERROR, id, &v);
    }
}
