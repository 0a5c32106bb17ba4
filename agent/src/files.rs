//! File operations. Paths arrive absolute and already validated by the host;
//! the agent only executes them (inside the sandbox, that is the whole point).

use crate::frame::{self, Writer};
use crate::json::{n, obj, s, Value};
use crate::Fail;
use std::collections::HashMap;
use std::fs::{self, File, Metadata};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::{Condvar, LazyLock, Mutex};

fn base_name(path: &str) -> String {
    Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "/".into())
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') { format!("{}{}", dir, name) } else { format!("{}/{}", dir, name) }
}

/// EntryInfo for `path` from lstat-like metadata.
fn entry(path: &str, md: &Metadata) -> Value {
    entry_at(path, Path::new(path), md, false)
}

/// EntryInfo shown as `path` for the file at `real`; `lossy` when `path` is not
/// its real name (a name, its own or a parent's, that is not UTF-8), or when a
/// link's target is not UTF-8.
fn entry_at(path: &str, real: &Path, md: &Metadata, mut lossy: bool) -> Value {
    let ft = md.file_type();
    let ty = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "other"
    };
    let mtime_ms = md.mtime() as f64 * 1000.0 + (md.mtime_nsec() / 1_000_000) as f64;
    let mut fields = vec![
        ("name", s(&base_name(path))),
        ("path", s(path)),
        ("type", s(ty)),
        ("size", n(md.size() as f64)),
        ("mode", n(md.mode() & 0o7777)),
        ("mtimeMs", n(mtime_ms)),
    ];
    if ft.is_symlink() {
        if let Ok(t) = fs::read_link(real) {
            lossy |= t.to_str().is_none();
            fields.push(("symlinkTarget", s(&t.to_string_lossy())));
        }
    }
    if lossy {
        fields.push(("lossy", Value::Bool(true)));
    }
    obj(fields)
}

fn lstat(path: &str, op: &str) -> Result<Metadata, Fail> {
    fs::symlink_metadata(path).map_err(|e| Fail::io(e, &format!("{} {}", op, path)))
}

pub fn stat(path: &str) -> Result<Value, Fail> {
    Ok(entry(path, &lstat(path, "stat")?))
}

pub fn list(path: &str, depth: u32) -> Result<Value, Fail> {
    if !lstat(path, "list")?.is_dir() {
        return Err(Fail::new("ENOTDIR", format!("list {}: not a directory", path)));
    }
    let mut out = Vec::new();
    walk(Path::new(path), path, false, depth, &mut out)?;
    Ok(obj(vec![("entries", Value::Arr(out))]))
}

/// Depth-first, children sorted by name; symlinked directories are not entered.
/// `real` is the directory's path as bytes, `shown` as UTF-8 (the same unless
/// `lossy`). Names that are not UTF-8 are listed with U+FFFD and `lossy`, never
/// left out; an entry that vanishes meanwhile is left out, but a directory
/// that cannot be read fails the listing rather than look empty.
fn walk(real: &Path, shown: &str, lossy: bool, depth: u32, out: &mut Vec<Value>) -> Result<(), Fail> {
    let rd = fs::read_dir(real).map_err(|e| Fail::io(e, &format!("list {}", shown)))?;
    let mut names = Vec::new();
    for e in rd {
        names.push(e.map_err(|e| Fail::io(e, &format!("list {}", shown)))?.file_name());
    }
    names.sort();
    for name in names {
        let path = real.join(&name);
        let p = join(shown, &name.to_string_lossy());
        let Ok(md) = fs::symlink_metadata(&path) else { continue };
        let lossy = lossy || name.to_str().is_none();
        out.push(entry_at(&p, &path, &md, lossy));
        if md.is_dir() && depth > 1 {
            match walk(&path, &p, lossy, depth - 1, out) {
                Err(e) if e.errno == "ENOENT" || e.errno == "ENOTDIR" => {}
                r => r?,
            }
        }
    }
    Ok(())
}

pub fn mkdir(path: &str) -> Result<Value, Fail> {
    if let Ok(md) = fs::symlink_metadata(path) {
        if md.is_dir() {
            return Ok(obj(vec![("created", Value::Bool(false))]));
        }
        return Err(Fail::new("EEXIST", format!("mkdir {}: exists and is not a directory", path)));
    }
    fs::create_dir_all(path).map_err(|e| Fail::io(e, &format!("mkdir {}", path)))?;
    Ok(obj(vec![("created", Value::Bool(true))]))
}

pub fn remove(path: &str) -> Result<Value, Fail> {
    let md = lstat(path, "remove")?;
    let r = if md.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
    r.map_err(|e| Fail::io(e, &format!("remove {}", path)))?;
    Ok(obj(vec![]))
}

pub fn rename(from: &str, to: &str) -> Result<Value, Fail> {
    fs::rename(from, to).map_err(|e| Fail::io(e, &format!("rename {} -> {}", from, to)))?;
    Ok(obj(vec![]))
}

pub fn symlink(target: &str, path: &str) -> Result<Value, Fail> {
    std::os::unix::fs::symlink(target, path).map_err(|e| Fail::io(e, &format!("symlink {}", path)))?;
    Ok(obj(vec![]))
}

pub fn chmod(path: &str, mode: u32) -> Result<Value, Fail> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o7777))
        .map_err(|e| Fail::io(e, &format!("chmod {}", path)))?;
    Ok(obj(vec![]))
}

pub fn utimes(path: &str, atime_ms: Option<f64>, mtime_ms: Option<f64>) -> Result<Value, Fail> {
    crate::sys::set_times(path, atime_ms, mtime_ms)
        .map_err(|e| Fail::io(e, &format!("utimes {}", path)))?;
    Ok(obj(vec![]))
}

// ---- streamed reads -------------------------------------------------------

/// Per active read: cancelled flag and remaining credit (None = unlimited).
struct ReadState {
    cancelled: bool,
    credit: Option<i64>,
}

static READS: LazyLock<(Mutex<HashMap<u32, ReadState>>, Condvar)> =
    LazyLock::new(|| (Mutex::new(HashMap::new()), Condvar::new()));

fn reads() -> std::sync::MutexGuard<'static, HashMap<u32, ReadState>> {
    READS.0.lock().unwrap_or_else(|e| e.into_inner())
}

/// Registers a read before its thread starts, so CANCEL/CREDIT frames that
/// follow the request are never lost.
pub fn read_begin(id: u32, window: Option<i64>) {
    let credit = window;
    reads().insert(id, ReadState { cancelled: false, credit });
}

/// CANCEL for a read (ignored when it already ended).
pub fn read_cancel(id: u32) -> bool {
    let found = reads().get_mut(&id).map(|st| st.cancelled = true).is_some();
    READS.1.notify_all();
    found
}

/// CREDIT: the host consumed `bytes` more.
pub fn read_credit(id: u32, bytes: u32) {
    if let Some(st) = reads().get_mut(&id) {
        if let Some(c) = st.credit.as_mut() {
            *c += bytes as i64;
        }
    }
    READS.1.notify_all();
}

/// Waits for credit; false when cancelled.
fn take_credit(id: u32, want: usize) -> bool {
    let mut map = reads();
    loop {
        match map.get_mut(&id) {
            None => return false,
            Some(st) if st.cancelled => return false,
            Some(ReadState { credit: None, .. }) => return true,
            Some(ReadState { credit: Some(c), .. }) if *c > 0 => {
                *c -= want as i64;
                return true;
            }
            _ => map = READS.1.wait(map).unwrap_or_else(|e| e.into_inner()),
        }
    }
}

/// Runs on its own thread: RESPONSE {size}, DATA*, END (or ERROR).
pub fn read(out: &Writer, id: u32, path: &str) {
    let r = (|| -> Result<(), Fail> {
        let mut f = File::open(path).map_err(|e| Fail::io(e, &format!("read {}", path)))?;
        let md = f.metadata().map_err(|e| Fail::io(e, &format!("read {}", path)))?;
        if md.is_dir() {
            return Err(Fail::new("EISDIR", format!("read {}: is a directory", path)));
        }
        out.json(frame::RESPONSE, id, &obj(vec![("size", n(md.len() as f64))]));
        let mut buf = vec![0u8; frame::CHUNK];
        loop {
            let k = f.read(&mut buf).map_err(|e| Fail::io(e, &format!("read {}", path)))?;
            if k == 0 {
                out.send(frame::END, id, &[]);
                return Ok(());
            }
            if !take_credit(id, k) {
                return Err(Fail::new("ECANCELED", "read cancelled".into()));
            }
            out.send(frame::DATA, id, &buf[..k]);
        }
    })();
    reads().remove(&id);
    if let Err(e) = r {
        out.error(id, &e);
    }
}

// ---- streamed writes ------------------------------------------------------

/// An in-progress write: data goes to a temp file renamed over `path` at END,
/// so a failed or oversized write never leaves a half-written file behind.
pub struct Upload {
    path: String,
    tmp: String,
    file: File,
    written: u64,
    max: u64,
}

impl Drop for Upload {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.tmp); // no-op after the rename succeeded
    }
}

pub fn write_begin(id: u32, path: String, max: u64) -> Result<Upload, Fail> {
    let existing = fs::symlink_metadata(&path).ok();
    if existing.as_ref().is_some_and(|m| m.is_dir()) {
        return Err(Fail::new("EISDIR", format!("write {}: is a directory", path)));
    }
    let parent = Path::new(&path).parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(parent).map_err(|e| Fail::io(e, &format!("write {}", path)))?;
    let tmp = join(&parent.to_string_lossy(), &format!(".{}.kiln-{}-{}", base_name(&path), std::process::id(), id));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Fail::io(e, &format!("write {}", path)))?;
    // Replacing a file keeps its permission bits, like an in-place write would.
    if let Some(m) = existing.filter(|m| m.is_file()) {
        let _ = file.set_permissions(fs::Permissions::from_mode(m.mode() & 0o7777));
    }
    Ok(Upload { path, tmp, file, written: 0, max })
}

pub fn write_data(up: &mut Upload, bytes: &[u8]) -> Result<(), Fail> {
    up.written += bytes.len() as u64;
    if up.written > up.max {
        return Err(Fail::new("EFBIG", format!("write {}: exceeds the limit of {} bytes", up.path, up.max)));
    }
    up.file.write_all(bytes).map_err(|e| Fail::io(e, &format!("write {}", up.path)))
}

pub fn write_end(up: Upload) -> Result<Value, Fail> {
    fs::rename(&up.tmp, &up.path).map_err(|e| Fail::io(e, &format!("write {}", up.path)))?;
    let md = lstat(&up.path, "write")?;
    Ok(entry(&up.path, &md))
}
