//! Thin FFI layer over the libc calls std does not expose. We declare them by
//! hand because the agent may not depend on any crate (not even `libc`).
#![allow(non_camel_case_types)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::os::raw::{c_char, c_int, c_long, c_ulong, c_void};

#[repr(C)]
pub struct PollFd {
    pub fd: c_int,
    pub events: i16,
    pub revents: i16,
}

#[repr(C)]
pub struct Timespec {
    pub sec: i64,
    pub nsec: c_long,
}

extern "C" {
    fn fork() -> c_int;
    fn setsid() -> c_int;
    fn chdir(path: *const c_char) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn execve(path: *const c_char, argv: *const *const c_char, envp: *const *const c_char) -> c_int;
    fn _exit(code: c_int) -> !;
    fn write(fd: c_int, buf: *const c_void, n: usize) -> isize;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn poll(fds: *mut PollFd, n: c_ulong, timeout: c_int) -> c_int;
    fn kill(pid: c_int, sig: c_int) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn prctl(option: c_int, arg2: c_ulong, arg3: c_ulong, arg4: c_ulong, arg5: c_ulong) -> c_int;
    fn signal(sig: c_int, handler: usize) -> usize;
    fn getpid() -> c_int;
    fn sync();
    fn reboot(cmd: c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, arg: c_int) -> c_int;
    fn utimensat(dirfd: c_int, path: *const c_char, times: *const Timespec, flags: c_int) -> c_int;
    fn __errno_location() -> *mut c_int;
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
    fn clock_settime(clock: c_int, tp: *const Timespec) -> c_int;
    fn sethostname(name: *const c_char, len: usize) -> c_int;
    fn mount(src: *const c_char, target: *const c_char, fstype: *const c_char, flags: c_ulong, data: *const c_void) -> c_int;
}

pub const POLLIN: i16 = 0x1;
pub const POLLERR: i16 = 0x8;
pub const POLLHUP: i16 = 0x10;
pub const SIGKILL: i32 = 9;
pub const EINTR: i32 = 4;
const O_CLOEXEC: c_int = 0o2000000;
const O_NONBLOCK: c_int = 0o4000;
const F_GETFL: c_int = 3;
const F_SETFL: c_int = 4;
const SIGPIPE: c_int = 13;
const SIG_DFL: usize = 0;
const PR_SET_CHILD_SUBREAPER: c_int = 36;
const AT_FDCWD: c_int = -100;
const AT_SYMLINK_NOFOLLOW: c_int = 0x100;
const UTIME_OMIT: c_long = (1 << 30) - 2;
const TIOCSWINSZ: c_ulong = 0x5414;
const TIOCSCTTY: c_ulong = 0x540E;
const TIOCSPTLCK: c_ulong = 0x4004_5431;
const TIOCGPTN: c_ulong = 0x8004_5430;
const O_NOCTTY: i32 = 0o400;

#[repr(C)]
struct Winsize {
    rows: u16,
    cols: u16,
    xpixel: u16,
    ypixel: u16,
}

/// Sets a terminal's size (the kernel sends SIGWINCH to its foreground group).
pub fn set_winsize(fd: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = Winsize { rows, cols, xpixel: 0, ypixel: 0 };
    check(unsafe { ioctl(fd, TIOCSWINSZ, &ws as *const Winsize) }).map(|_| ())
}

/// A new pseudo-terminal of `cols` x `rows` from the sandbox's /dev/ptmx, as
/// (master, slave); neither becomes the agent's controlling terminal.
pub fn open_pty(cols: u16, rows: u16) -> io::Result<(File, File)> {
    use std::os::unix::fs::OpenOptionsExt;
    let open = |path: &str| std::fs::OpenOptions::new().read(true).write(true).custom_flags(O_NOCTTY).open(path);
    let master = open("/dev/ptmx")?;
    use std::os::fd::AsRawFd;
    let unlock: c_int = 0;
    check(unsafe { ioctl(master.as_raw_fd(), TIOCSPTLCK, &unlock as *const c_int) })?;
    let mut n: c_int = 0;
    check(unsafe { ioctl(master.as_raw_fd(), TIOCGPTN, &mut n as *mut c_int) })?;
    let slave = open(&format!("/dev/pts/{}", n))?;
    set_winsize(master.as_raw_fd(), cols, rows)?;
    Ok((master, slave))
}

pub fn errno() -> i32 {
    unsafe { *__errno_location() }
}

fn check(r: c_int) -> io::Result<c_int> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

pub fn pid() -> i32 {
    unsafe { getpid() }
}

/// Become a subreaper so orphaned grandchildren are re-parented to us (and
/// reaped by our waitpid loop) even when we are not PID 1.
const PR_CAPBSET_DROP: c_int = 24;
const RB_POWER_OFF: c_int = 0x4321fedc;

/// Empties the capability bounding set: every program started from now on
/// runs without privileges, even as uid 0 (the agent keeps its own).
pub fn drop_bounding_set() {
    for cap in 0..64 {
        unsafe { prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) };
    }
}

/// Writes every filesystem's dirty data out, then powers the machine off
/// (the agent as a VM's PID 1; returns only if the power-off was refused).
pub fn sync_and_power_off() {
    unsafe {
        sync();
        reboot(RB_POWER_OFF);
    }
}

/// Sets the system's wall clock (CLOCK_REALTIME) to `ms` milliseconds since the epoch.
pub fn set_clock_ms(ms: f64) -> io::Result<()> {
    let t = Timespec { sec: (ms / 1000.0).floor() as i64, nsec: ((ms % 1000.0) * 1_000_000.0) as c_long };
    check(unsafe { clock_settime(0, &t) }).map(|_| ())
}

const RNDADDENTROPY: c_ulong = 0x4008_5203;
const RNDRESEEDCRNG: c_ulong = 0x5207;
const MS_RDONLY: c_ulong = 1;
const MS_REMOUNT: c_ulong = 32;

/// Mixes `bytes` into the kernel's input pool, credited as entropy, then reseeds the kernel's
/// generator from it at once (else it would reseed only at its next interval, and two guests
/// restored from one saved state would read the same bytes until then). Needs CAP_SYS_ADMIN.
pub fn add_entropy(bytes: &[u8]) -> io::Result<()> {
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let mut info = Vec::with_capacity(8 + bytes.len());
    info.extend_from_slice(&((bytes.len() * 8) as i32).to_ne_bytes());
    info.extend_from_slice(&(bytes.len() as i32).to_ne_bytes());
    info.extend_from_slice(bytes);
    let f = std::fs::OpenOptions::new().write(true).open("/dev/urandom")?;
    use std::os::fd::AsRawFd;
    check(unsafe { ioctl(f.as_raw_fd(), RNDADDENTROPY, info.as_ptr()) })?;
    check(unsafe { ioctl(f.as_raw_fd(), RNDRESEEDCRNG) }).map(|_| ())
}

/// Sets the kernel's hostname (the UTS namespace's).
pub fn set_hostname(name: &str) -> io::Result<()> {
    check(unsafe { sethostname(name.as_ptr() as *const c_char, name.len()) }).map(|_| ())
}

/// Remounts the filesystem mounted at `target` read-only or read-write, its other options kept.
pub fn remount(target: &str, readonly: bool) -> io::Result<()> {
    let t = CString::new(target).map_err(|_| io::Error::from_raw_os_error(22))?;
    let flags = MS_REMOUNT | if readonly { MS_RDONLY } else { 0 };
    check(unsafe { mount(std::ptr::null(), t.as_ptr(), std::ptr::null(), flags, std::ptr::null()) }).map(|_| ())
}

pub fn set_subreaper() {
    unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
}

/// A close-on-exec pipe as (read end, write end).
pub fn pipe() -> io::Result<(File, File)> {
    let mut fds = [0 as c_int; 2];
    check(unsafe { pipe2(fds.as_mut_ptr(), O_CLOEXEC) })?;
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

pub fn set_nonblocking(fd: RawFd) {
    unsafe {
        let flags = fcntl(fd, F_GETFL, 0);
        if flags >= 0 {
            fcntl(fd, F_SETFL, flags | O_NONBLOCK);
        }
    }
}

/// poll(2), retried on EINTR.
pub fn poll_fds(fds: &mut [PollFd], timeout_ms: i32) -> io::Result<usize> {
    loop {
        let r = unsafe { poll(fds.as_mut_ptr(), fds.len() as c_ulong, timeout_ms) };
        if r >= 0 {
            return Ok(r as usize);
        }
        if errno() != EINTR {
            return Err(io::Error::last_os_error());
        }
    }
}

pub fn send_signal(pid: i32, sig: i32) -> io::Result<()> {
    check(unsafe { kill(pid, sig) }).map(|_| ())
}

/// Blocking waitpid(-1): Ok(Some((pid, raw status))), Ok(None) when there is no child.
pub fn wait_any() -> io::Result<Option<(i32, i32)>> {
    let mut status: c_int = 0;
    loop {
        let r = unsafe { waitpid(-1, &mut status, 0) };
        if r > 0 {
            return Ok(Some((r, status)));
        }
        match errno() {
            EINTR => continue,
            10 => return Ok(None), // ECHILD
            _ => return Err(io::Error::last_os_error()),
        }
    }
}

/// Reaps one exited child without blocking. Ok(true) while children remain.
pub fn reap_some() -> bool {
    let mut status: c_int = 0;
    let r = unsafe { waitpid(-1, &mut status, 1 /* WNOHANG */) };
    r >= 0 || errno() == EINTR
}

/// Shell convention: the exit code, or 128+N after signal N. Also returns N.
pub fn decode_status(status: i32) -> (i32, Option<i32>) {
    let sig = status & 0x7f;
    if sig == 0 { ((status >> 8) & 0xff, None) } else { (128 + sig, Some(sig)) }
}

pub fn set_times(path: &str, atime_ms: Option<f64>, mtime_ms: Option<f64>) -> io::Result<()> {
    let ts = |ms: Option<f64>| match ms {
        Some(ms) => {
            let sec = (ms / 1000.0).floor();
            Timespec { sec: sec as i64, nsec: ((ms - sec * 1000.0) * 1_000_000.0) as c_long }
        }
        None => Timespec { sec: 0, nsec: UTIME_OMIT },
    };
    let times = [ts(atime_ms), ts(mtime_ms)];
    let c = cstr(path)?;
    check(unsafe { utimensat(AT_FDCWD, c.as_ptr(), times.as_ptr(), AT_SYMLINK_NOFOLLOW) }).map(|_| ())
}

pub fn cstr(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from_raw_os_error(22))
}

/// Everything the forked child needs, prepared before fork: after fork in a
/// multithreaded process only async-signal-safe calls are allowed (no malloc).
pub struct ExecPlan {
    pub program: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// Make stdin (a terminal) the child's controlling terminal.
    pub ctty: bool,
}

/// fork + setsid + chdir + dup2 + execve. We do not use std::process::Command
/// because on exec/chdir failure it calls waitpid on the child itself, which
/// races with our global waitpid(-1) reaper. Returns the child's pid.
pub fn spawn(plan: &ExecPlan, stdin: RawFd, stdout: RawFd, stderr: RawFd) -> io::Result<i32> {
    let argv: Vec<*const c_char> =
        plan.argv.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const c_char> =
        plan.envp.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // The child reports a failing errno through this pipe; exec closes it on success.
    let (err_r, err_w) = pipe()?;
    use std::os::fd::AsRawFd;
    let err_fd = err_w.as_raw_fd();
    let pid = check(unsafe { fork() })?;
    if pid == 0 {
        unsafe {
            let fail = |fd: c_int| -> ! {
                let e: i32 = *__errno_location();
                write(fd, &e as *const i32 as *const c_void, 4);
                _exit(127)
            };
            setsid(); // own session and process group, so kill(-pid) reaches descendants
            // Rust's runtime ignores SIGPIPE; ignored dispositions survive exec.
            signal(SIGPIPE, SIG_DFL);
            if chdir(plan.cwd.as_ptr()) < 0 {
                fail(err_fd);
            }
            if dup2(stdin, 0) < 0 || dup2(stdout, 1) < 0 || dup2(stderr, 2) < 0 {
                fail(err_fd);
            }
            // A session leader without a terminal takes its pty as controlling terminal.
            if plan.ctty && ioctl(0, TIOCSCTTY, 0 as c_int) < 0 {
                fail(err_fd);
            }
            execve(plan.program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            fail(err_fd);
        }
    }
    drop(err_w);
    let mut buf = [0u8; 4];
    let mut got = 0;
    let mut r = err_r;
    use std::io::Read;
    while got < 4 {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got == 4 {
        // The child already exited (code 127); the reaper collects it.
        return Err(io::Error::from_raw_os_error(i32::from_ne_bytes(buf)));
    }
    Ok(pid)
}

/// errno-style name for an OS error number.
pub fn errno_name(code: i32) -> &'static str {
    match code {
        1 => "EPERM",
        2 => "ENOENT",
        3 => "ESRCH",
        4 => "EINTR",
        5 => "EIO",
        7 => "E2BIG",
        8 => "ENOEXEC",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        13 => "EACCES",
        16 => "EBUSY",
        17 => "EEXIST",
        18 => "EXDEV",
        20 => "ENOTDIR",
        21 => "EISDIR",
        22 => "EINVAL",
        23 | 24 => "EMFILE",
        26 => "ETXTBSY",
        27 => "EFBIG",
        28 => "ENOSPC",
        30 => "EROFS",
        31 => "EMLINK",
        32 => "EPIPE",
        36 => "ENAMETOOLONG",
        38 => "ENOSYS",
        39 => "ENOTEMPTY",
        40 => "ELOOP",
        71 => "EPROTO",
        95 => "EOPNOTSUPP",
        99 => "EADDRNOTAVAIL",
        101 => "ENETUNREACH",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        111 => "ECONNREFUSED",
        113 => "EHOSTUNREACH",
        122 => "EDQUOT",
        _ => "EIO",
    }
}
