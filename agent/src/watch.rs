//! Directory watches over inotify: `watch` answers RESPONSE once the watch is
//! in place, then sends DATA frames, each a JSON object
//! `{"events":[{"type":"create|write|remove|rename|chmod","name":"sub/file"}]}`
//! (names relative to the watched directory), until the host sends CANCEL
//! (answered with END) or the directory itself goes (END).
//!
//! Mapping, as E2B's envd (fsnotify) reports them: IN_CREATE and IN_MOVED_TO
//! are `create`, IN_MODIFY `write`, IN_DELETE `remove`, IN_MOVED_FROM
//! `rename`, IN_ATTRIB `chmod`. A recursive watch adds every directory below,
//! and each new one as it appears.

use crate::frame::{self, Writer};
use crate::json::{obj, s, Value};
use crate::sys;
use crate::Fail;
use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::raw::{c_char, c_int, c_void};
use std::sync::{Arc, LazyLock, Mutex};

extern "C" {
    fn inotify_init1(flags: c_int) -> c_int;
    fn inotify_add_watch(fd: c_int, path: *const c_char, mask: u32) -> c_int;
    fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize;
    fn close(fd: c_int) -> c_int;
}

const IN_NONBLOCK: c_int = 0o4000;
const IN_CLOEXEC: c_int = 0o2000000;
const IN_MODIFY: u32 = 0x2;
const IN_ATTRIB: u32 = 0x4;
const IN_MOVED_FROM: u32 = 0x40;
const IN_MOVED_TO: u32 = 0x80;
const IN_CREATE: u32 = 0x100;
const IN_DELETE: u32 = 0x200;
const IN_DELETE_SELF: u32 = 0x400;
const IN_MOVE_SELF: u32 = 0x800;
const IN_IGNORED: u32 = 0x8000;
const IN_ONLYDIR: u32 = 0x0100_0000;
const IN_DONT_FOLLOW: u32 = 0x0200_0000;
const IN_ISDIR: u32 = 0x4000_0000;
const MASK: u32 = IN_MODIFY | IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;
/// Directories a recursive watch follows at most (each is one inotify watch).
const MAX_WATCHES: usize = 8192;

/// Ids of watches the host cancelled.
static CANCELLED: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));
/// Ids of live watches.
static LIVE: LazyLock<Mutex<HashSet<u32>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// CANCEL for a watch; false when `id` is no watch.
pub fn cancel(id: u32) -> bool {
    if !LIVE.lock().unwrap_or_else(|e| e.into_inner()).contains(&id) {
        return false;
    }
    CANCELLED.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
    true
}

fn cancelled(id: u32) -> bool {
    CANCELLED.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
}

struct Watch {
    fd: c_int,
    /// Watch descriptor -> directory relative to the root ("" for the root).
    dirs: HashMap<c_int, String>,
    root: String,
    recursive: bool,
}

impl Watch {
    fn add(&mut self, rel: &str) -> Result<(), Fail> {
        if self.dirs.len() >= MAX_WATCHES {
            return Ok(());
        }
        let full = if rel.is_empty() { self.root.clone() } else { format!("{}/{}", self.root.trim_end_matches('/'), rel) };
        let c = CString::new(full.clone()).map_err(|_| Fail::new("EINVAL", "path has a NUL byte".into()))?;
        let wd = unsafe { inotify_add_watch(self.fd, c.as_ptr(), MASK | IN_ONLYDIR | IN_DONT_FOLLOW) };
        if wd < 0 {
            return Err(Fail::io(std::io::Error::last_os_error(), &format!("watch {}", full)));
        }
        self.dirs.insert(wd, rel.to_string());
        if self.recursive {
            if let Ok(rd) = std::fs::read_dir(&full) {
                for e in rd.flatten() {
                    if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                        let name = e.file_name().to_string_lossy().into_owned();
                        let sub = if rel.is_empty() { name } else { format!("{}/{}", rel, name) };
                        // A directory that went meanwhile is not an error.
                        let _ = self.add(&sub);
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        unsafe { close(self.fd) };
    }
}

/// `watch {path, recursive}`: on its own thread (a recursive watch walks the
/// tree, which must not hold up the reader), sets the watch up, answers, then
/// streams events. The id is live before the thread starts, so a CANCEL that
/// follows at once is never lost.
pub fn watch(out: &Arc<Writer>, id: u32, path: String, recursive: bool) -> Result<(), Fail> {
    LIVE.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
    let writer = out.clone();
    let started = crate::thread(move || {
        match setup(&path, recursive) {
            Ok(w) => {
                writer.json(frame::RESPONSE, id, &obj(vec![]));
                run(&writer, id, w);
                writer.send(frame::END, id, &[]);
            }
            Err(e) => writer.error(id, &e),
        }
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        CANCELLED.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    });
    if started.is_err() {
        LIVE.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }
    started
}

fn setup(path: &str, recursive: bool) -> Result<Watch, Fail> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| Fail::io(e, &format!("watch {}", path)))?;
    if !meta.is_dir() {
        return Err(Fail::new("ENOTDIR", format!("watch {}: not a directory", path)));
    }
    let fd = unsafe { inotify_init1(IN_NONBLOCK | IN_CLOEXEC) };
    if fd < 0 {
        return Err(Fail::io(std::io::Error::last_os_error(), "inotify_init1"));
    }
    let mut w = Watch { fd, dirs: HashMap::new(), root: path.to_string(), recursive };
    w.add("")?;
    Ok(w)
}

fn run(out: &Writer, id: u32, mut w: Watch) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if cancelled(id) {
            return;
        }
        let mut fds = [sys::PollFd { fd: w.fd, events: sys::POLLIN, revents: 0 }];
        match sys::poll_fds(&mut fds, 200) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let n = unsafe { read(w.fd, buf.as_mut_ptr() as *mut c_void, buf.len()) };
        if n <= 0 {
            continue;
        }
        let mut events = Vec::new();
        let mut at = 0usize;
        let mut root_gone = false;
        while at + 16 <= n as usize {
            let word = |o: usize| u32::from_ne_bytes([buf[at + o], buf[at + o + 1], buf[at + o + 2], buf[at + o + 3]]);
            let wd = word(0) as i32;
            let mask = word(4);
            let len = word(12) as usize;
            let raw = &buf[at + 16..(at + 16 + len).min(n as usize)];
            let name = String::from_utf8_lossy(&raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())]).into_owned();
            at += 16 + len;
            let Some(dir) = w.dirs.get(&wd).cloned() else { continue };
            if mask & IN_IGNORED != 0 {
                w.dirs.remove(&wd);
                if dir.is_empty() {
                    root_gone = true;
                }
                continue;
            }
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF) != 0 {
                if dir.is_empty() {
                    root_gone = true;
                }
                continue;
            }
            let rel = if dir.is_empty() { name } else { format!("{}/{}", dir, name) };
            let kind = if mask & (IN_CREATE | IN_MOVED_TO) != 0 {
                "create"
            } else if mask & IN_DELETE != 0 {
                "remove"
            } else if mask & IN_MOVED_FROM != 0 {
                "rename"
            } else if mask & IN_MODIFY != 0 {
                "write"
            } else if mask & IN_ATTRIB != 0 {
                "chmod"
            } else {
                continue;
            };
            if w.recursive && kind == "create" && mask & IN_ISDIR != 0 {
                let _ = w.add(&rel);
            }
            events.push(obj(vec![("type", s(kind)), ("name", s(&rel))]));
        }
        if !events.is_empty() {
            out.json(frame::DATA, id, &obj(vec![("events", Value::Arr(events))]));
        }
        if root_gone {
            return;
        }
    }
}
