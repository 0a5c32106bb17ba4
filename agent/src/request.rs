//! Decoding of the host's frames into what the agent is asked to do. Every
//! field of every request is read and checked here, before anything runs, so
//! decoding touches no file, process or socket: the fuzz harness
//! (`fuzz.rs`, built by `scripts/build-agent.sh --fuzz`) drives exactly this
//! code with hostile bytes. See docs/protocol.md for the fields.

use crate::frame::{self, Frame};
use crate::json::{self, Value};
use crate::Fail;

/// One decoded input frame.
pub enum Input {
    Request(Request),
    Stdin(Vec<u8>),
    StdinClose,
    Data(Vec<u8>),
    End,
    Cancel,
    /// CREDIT with its byte count; `None` when the payload is not a u32 (ignored).
    Credit(Option<u32>),
}

/// `spawn`'s fields.
pub struct Spawn {
    pub command: String,
    pub cwd: String,
    /// `(name, value)` pairs; values that are not strings are left out.
    pub env: Vec<(String, String)>,
    /// `stdin: "pipe"`; anything else is `"null"`.
    pub piped: bool,
    /// Terminal size `(cols, rows)` when `pty` is an object.
    pub pty: Option<(u16, u16)>,
}

/// `adopt`'s fields: what differs between sandboxes restored from one saved VM.
pub struct Adopt {
    /// The sandbox's hostname (one DNS label).
    pub hostname: String,
    /// The sandbox's process limit; `None`: no limit (`max`).
    pub pids: Option<u64>,
    /// Bytes from the host's random source, mixed into the guest's pool (16 to 512).
    pub entropy: Vec<u8>,
}

/// A REQUEST, one variant per op.
pub enum Request {
    Ping,
    /// Set a VM's wall clock to `time_ms` (ms since the epoch; finite and positive).
    Clock { time_ms: f64 },
    /// Keep the output stream whole while the host saves the VM.
    Hold,
    /// Make a VM restored from a shared saved state this sandbox's own (see main.rs `adopt`).
    Adopt(Adopt),
    Spawn(Spawn),
    Signal { target: u32, signal: i32 },
    Resize { target: u32, cols: u16, rows: u16 },
    Stat { path: String },
    List { path: String, depth: u32 },
    Read { path: String, window: Option<i64> },
    Write { path: String, max_bytes: u64 },
    Mkdir { path: String },
    Remove { path: String },
    Rename { from: String, to: String },
    Symlink { target: String, path: String },
    Chmod { path: String, mode: u32 },
    Utimes { path: String, atime_ms: Option<f64>, mtime_ms: Option<f64> },
    Connect { port: u16, window: i64 },
    Watch { path: String, recursive: bool },
}

/// Decodes one frame. An `Err` is the ERROR the agent answers for the frame's id.
pub fn decode(f: Frame) -> Result<Input, Fail> {
    Ok(match f.ty {
        frame::REQUEST => {
            let v = json::parse(&f.payload).map_err(|e| Fail::new("EINVAL", format!("bad request JSON: {}", e)))?;
            Input::Request(request(&v)?)
        }
        frame::STDIN => Input::Stdin(f.payload),
        frame::STDIN_CLOSE => Input::StdinClose,
        frame::DATA => Input::Data(f.payload),
        frame::END => Input::End,
        frame::CANCEL => Input::Cancel,
        frame::CREDIT => Input::Credit(<[u8; 4]>::try_from(f.payload.as_slice()).ok().map(u32::from_be_bytes)),
        other => return Err(Fail::new("EPROTO", format!("unknown frame type 0x{:02x}", other))),
    })
}

/// Decodes a REQUEST's JSON body `{op, ...fields}`.
pub fn request(v: &Value) -> Result<Request, Fail> {
    Ok(match v.str("op").unwrap_or("") {
        "ping" => Request::Ping,
        "clock" => Request::Clock {
            time_ms: v
                .num("timeMs")
                .filter(|m| m.is_finite() && *m > 0.0)
                .ok_or_else(|| Fail::new("EINVAL", "clock needs timeMs".into()))?,
        },
        "hold" => Request::Hold,
        "adopt" => Request::Adopt(adopt(v)?),
        "spawn" => Request::Spawn(spawn(v)?),
        "signal" => Request::Signal {
            target: target(v)?,
            signal: v.num("signal").unwrap_or(crate::sys::SIGKILL as f64) as i32,
        },
        "resize" => {
            let target = target(v)?;
            let (cols, rows) = term_size(v)?;
            Request::Resize { target, cols, rows }
        }
        "stat" => Request::Stat { path: path(v, "path")? },
        "list" => Request::List { path: path(v, "path")?, depth: v.num("depth").unwrap_or(1.0).max(1.0) as u32 },
        "read" => Request::Read { path: path(v, "path")?, window: v.num("window").map(|w| w as i64) },
        "write" => Request::Write {
            path: path(v, "path")?,
            max_bytes: v.num("maxBytes").map_or(u64::MAX, |m| m.max(0.0) as u64),
        },
        "mkdir" => Request::Mkdir { path: path(v, "path")? },
        "remove" => Request::Remove { path: path(v, "path")? },
        "rename" => Request::Rename { from: path(v, "from")?, to: path(v, "to")? },
        "symlink" => Request::Symlink {
            path: path(v, "path")?,
            target: v.str("target").ok_or_else(|| Fail::new("EINVAL", "missing 'target'".into()))?.to_string(),
        },
        "chmod" => Request::Chmod {
            path: path(v, "path")?,
            mode: v.num("mode").ok_or_else(|| Fail::new("EINVAL", "missing 'mode'".into()))? as u32,
        },
        "utimes" => Request::Utimes { path: path(v, "path")?, atime_ms: v.num("atimeMs"), mtime_ms: v.num("mtimeMs") },
        "connect" => {
            let port = v.num("port").unwrap_or(0.0);
            if !(1.0..=65535.0).contains(&port) || port.fract() != 0.0 {
                return Err(Fail::new("EINVAL", format!("connect: bad port {}", port)));
            }
            Request::Connect { port: port as u16, window: v.num("window").map_or(1 << 20, |w| w.max(1.0) as i64) }
        }
        "watch" => Request::Watch {
            path: v.str("path").ok_or_else(|| Fail::new("EINVAL", "watch needs 'path'".into()))?.to_string(),
            recursive: matches!(v.get("recursive"), Some(Value::Bool(true))),
        },
        "" => return Err(Fail::new("EINVAL", "request has no 'op'".into())),
        other => return Err(Fail::new("ENOSYS", format!("unknown op '{}'", other))),
    })
}

fn adopt(v: &Value) -> Result<Adopt, Fail> {
    let hostname = string(v, "hostname")?;
    let label = hostname.len() <= 63
        && !hostname.starts_with('-')
        && !hostname.ends_with('-')
        && hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if hostname.is_empty() || !label {
        return Err(Fail::new("EINVAL", format!("adopt: not a hostname: {:?}", hostname)));
    }
    let pids = match v.num("pids") {
        Some(p) if p.fract() == 0.0 && p >= 1.0 => Some(p as u64),
        Some(p) => return Err(Fail::new("EINVAL", format!("adopt: bad pids {}", p))),
        None => None,
    };
    let hex = string(v, "entropy")?;
    let entropy = unhex(&hex).ok_or_else(|| Fail::new("EINVAL", "adopt: entropy must be hex".into()))?;
    if !(16..=512).contains(&entropy.len()) {
        return Err(Fail::new("EINVAL", "adopt: entropy must be 16 to 512 bytes".into()));
    }
    Ok(Adopt { hostname, pids, entropy })
}

/// Bytes of a hex string (even length, 0-9a-fA-F), or None.
fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    s.as_bytes().chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

fn spawn(v: &Value) -> Result<Spawn, Fail> {
    let mut env = Vec::new();
    if let Some(Value::Obj(fields)) = v.get("env") {
        for (k, val) in fields {
            if let Value::Str(val) = val {
                env.push((k.clone(), val.clone()));
            }
        }
    }
    Ok(Spawn {
        command: string(v, "command")?,
        cwd: string(v, "cwd")?,
        env,
        piped: v.str("stdin") == Some("pipe"),
        pty: match v.get("pty") {
            Some(p @ Value::Obj(_)) => Some(term_size(p)?),
            _ => None,
        },
    })
}

fn string(v: &Value, key: &str) -> Result<String, Fail> {
    v.str(key).map(str::to_string).ok_or_else(|| Fail::new("EINVAL", format!("missing string field '{}'", key)))
}

/// An absolute path field.
fn path(v: &Value, key: &str) -> Result<String, Fail> {
    match v.str(key) {
        Some(p) if p.starts_with('/') => Ok(p.to_string()),
        Some(p) => Err(Fail::new("EINVAL", format!("'{}' must be absolute: {}", key, p))),
        None => Err(Fail::new("EINVAL", format!("missing string field '{}'", key))),
    }
}

fn target(v: &Value) -> Result<u32, Fail> {
    Ok(v.num("target").ok_or_else(|| Fail::new("EINVAL", "missing 'target'".into()))? as u32)
}

/// The `{cols, rows}` of a terminal (1 to 4096 each).
fn term_size(v: &Value) -> Result<(u16, u16), Fail> {
    let dim = |k: &str| -> Result<u16, Fail> {
        match v.num(k) {
            Some(x) if x.fract() == 0.0 && (1.0..=4096.0).contains(&x) => Ok(x as u16),
            _ => Err(Fail::new("EINVAL", format!("pty '{}' must be an integer from 1 to 4096", k))),
        }
    };
    Ok((dim("cols")?, dim("rows")?))
}
