//! `kiln-agent --idmap-exec BASE COUNT STAGE SOURCE... -- PROGRAM ARGS...`:
//! run on the host, as root, by the namespace tier before bubblewrap. It makes
//! a user namespace whose ids 0..COUNT are host ids BASE..BASE+COUNT (the
//! sandbox's own range: its root is never host root), enters a private mount
//! namespace, mounts a small tmpfs at STAGE and each SOURCE (a folder or a
//! file) at STAGE/<its position>, idmapped through that user namespace (files
//! stored as uid 0 show as uid 0 inside, and are written as such, so images
//! need no chown and move between tiers as they are), then runs PROGRAM in
//! that user namespace as its root.
//!
//! `--device PATH` options (before BASE, any number): the program is given
//! its own node of each host character device PATH, owned by the range's root
//! (mode 0600) and bound over PATH in the private mount namespace, for a device
//! it must open by path that the host keeps to host root (QEMU's /dev/net/tun).
//!
//! `kiln-agent --idmap-stage ...` (same arguments): the same stage, plus the
//! user namespace itself bound at STAGE/user, then PROGRAM runs as host root
//! in the private mount namespace. For an OCI runtime: it joins that user
//! namespace by path for the container (`linux.namespaces`), while keeping
//! the host root it needs for cgroups.
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::raw::{c_char, c_int, c_long, c_uint, c_ulong, c_void};

extern "C" {
    fn syscall(n: c_long, ...) -> c_long;
    fn unshare(flags: c_int) -> c_int;
    fn mount(src: *const c_char, target: *const c_char, fstype: *const c_char, flags: c_ulong, data: *const c_void) -> c_int;
    fn fork() -> c_int;
    fn pipe2(fds: *mut c_int, flags: c_int) -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn _exit(code: c_int) -> !;
    fn setns(fd: c_int, nstype: c_int) -> c_int;
    fn setgroups(size: usize, list: *const c_uint) -> c_int;
    fn setresgid(r: c_uint, e: c_uint, s: c_uint) -> c_int;
    fn setresuid(r: c_uint, e: c_uint, s: c_uint) -> c_int;
    fn mknod(path: *const c_char, mode: c_uint, dev: u64) -> c_int;
    fn chown(path: *const c_char, uid: c_uint, gid: c_uint) -> c_int;
}

const CLONE_NEWNS: c_int = 0x0002_0000;
const CLONE_NEWUSER: c_int = 0x1000_0000;
const MS_REC: c_ulong = 0x4000;
const MS_BIND: c_ulong = 0x1000;
const MS_PRIVATE: c_ulong = 1 << 18;
const MS_NOSUID: c_ulong = 2;
const MS_NODEV: c_ulong = 4;
const O_CLOEXEC: c_int = 0o2000000;
const AT_FDCWD: c_int = -100;
const AT_EMPTY_PATH: c_uint = 0x1000;
const AT_RECURSIVE: c_uint = 0x8000;
const OPEN_TREE_CLONE: c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: c_uint = 4;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
// x86_64 and aarch64 share these numbers (the new mount API came after the tables converged).
const SYS_OPEN_TREE: c_long = 428;
const SYS_MOVE_MOUNT: c_long = 429;
const SYS_MOUNT_SETATTR: c_long = 442;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn fail(what: &str, e: io::Error) -> ! {
    eprintln!("kiln-idmap: {}: {}", what, e);
    std::process::exit(125)
}

fn check(r: c_long, what: &str) -> c_long {
    if r < 0 {
        fail(what, io::Error::last_os_error());
    }
    r
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| fail("argument", io::Error::from(io::ErrorKind::InvalidInput)))
}

/// A user namespace mapping 0..count to base..base+count (uids and gids), as an open fd.
fn user_namespace(base: u64, count: u64) -> File {
    let mut ready = [0 as c_int; 2];
    let mut release = [0 as c_int; 2];
    check(unsafe { pipe2(ready.as_mut_ptr(), O_CLOEXEC) } as c_long, "pipe");
    check(unsafe { pipe2(release.as_mut_ptr(), O_CLOEXEC) } as c_long, "pipe");
    let pid = check(unsafe { fork() } as c_long, "fork") as c_int;
    if pid == 0 {
        // The holder: a process in the new user namespace, until the parent has its fd.
        let ok = unsafe { unshare(CLONE_NEWUSER) } == 0;
        let mut w = unsafe { File::from_raw_fd(ready[1]) };
        let _ = w.write_all(if ok { b"y" } else { b"n" });
        drop(w);
        let mut r = unsafe { File::from_raw_fd(release[0]) };
        let _ = unsafe { libc_close(release[1]) };
        let mut b = [0u8; 1];
        let _ = r.read(&mut b);
        unsafe { _exit(0) }
    }
    unsafe {
        libc_close(ready[1]);
        libc_close(release[0]);
    }
    let mut r = unsafe { File::from_raw_fd(ready[0]) };
    let mut b = [0u8; 1];
    if r.read(&mut b).ok() != Some(1) || b[0] != b'y' {
        fail("unshare(CLONE_NEWUSER)", io::Error::from(io::ErrorKind::PermissionDenied));
    }
    let map = format!("0 {} {}\n", base, count);
    for f in ["uid_map", "gid_map"] {
        fs::write(format!("/proc/{}/{}", pid, f), &map).unwrap_or_else(|e| fail(f, e));
    }
    let ns = File::open(format!("/proc/{}/ns/user", pid)).unwrap_or_else(|e| fail("ns/user", e));
    unsafe {
        libc_close(release[1]);
        let mut status = 0;
        waitpid(pid, &mut status, 0);
    }
    ns
}

extern "C" {
    #[link_name = "close"]
    fn libc_close(fd: c_int) -> c_int;
}

/// A detached copy of the mount tree at `path` (a directory, or a single file), idmapped through `ns`.
fn idmapped_tree(path: &str, ns: &File) -> c_int {
    let p = cstr(path);
    let empty = cstr("");
    let tree = check(
        unsafe { syscall(SYS_OPEN_TREE, AT_FDCWD, p.as_ptr(), OPEN_TREE_CLONE | O_CLOEXEC as c_uint | AT_RECURSIVE) },
        &format!("open_tree {}", path),
    ) as c_int;
    let attr = MountAttr { attr_set: MOUNT_ATTR_IDMAP, attr_clr: 0, propagation: 0, userns_fd: ns.as_raw_fd() as u64 };
    check(
        unsafe {
            syscall(
                SYS_MOUNT_SETATTR,
                tree,
                empty.as_ptr(),
                AT_EMPTY_PATH | AT_RECURSIVE,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        },
        &format!("mount_setattr (idmap) {}", path),
    );
    tree
}

/// Attaches the detached tree `tree` at `target`.
fn attach(tree: c_int, target: &str) {
    let t = cstr(target);
    let empty = cstr("");
    check(
        unsafe { syscall(SYS_MOVE_MOUNT, tree, empty.as_ptr(), AT_FDCWD, t.as_ptr(), MOVE_MOUNT_F_EMPTY_PATH) },
        &format!("move_mount {}", target),
    );
    unsafe { libc_close(tree) };
}

/// What runs PROGRAM once the stage is mounted.
pub enum Then {
    /// As root of the new user namespace (`--idmap-exec`).
    EnterUserNamespace,
    /// As host root, with the user namespace bound at STAGE/user (`--idmap-stage`).
    StayHostRoot,
}

/// Binds the namespace `ns` (an nsfs fd) at `target`, a new empty file: it lives as long as the mount.
fn bind_namespace(ns: &File, target: &str) {
    File::create(target).unwrap_or_else(|e| fail(target, e));
    let src = cstr(&format!("/proc/self/fd/{}", ns.as_raw_fd()));
    let t = cstr(target);
    check(
        unsafe { mount(src.as_ptr(), t.as_ptr(), std::ptr::null(), MS_BIND, std::ptr::null()) } as c_long,
        "bind the user namespace",
    );
}

/// Gives the range's root (host uid `base`) its own node of each host character device in
/// `devices`, bound over the device's path: the nodes live in a tmpfs at STAGE/dev that allows
/// devices (the stage itself does not).
fn own_devices(stage: &str, devices: &[String], base: u64) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    if devices.is_empty() {
        return;
    }
    let dir = format!("{}/dev", stage);
    fs::create_dir(&dir).unwrap_or_else(|e| fail(&dir, e));
    let (d, tmpfs, opts) = (cstr(&dir), cstr("tmpfs"), cstr("mode=0755,size=4k"));
    check(
        unsafe { mount(tmpfs.as_ptr(), d.as_ptr(), tmpfs.as_ptr(), MS_NOSUID, opts.as_ptr() as *const c_void) } as c_long,
        "mount the device folder",
    );
    for (i, path) in devices.iter().enumerate() {
        let meta = fs::metadata(path).unwrap_or_else(|e| fail(path, e));
        if !meta.file_type().is_char_device() {
            fail(path, io::Error::from(io::ErrorKind::InvalidInput));
        }
        let node = format!("{}/{}", dir, i);
        let n = cstr(&node);
        check(unsafe { mknod(n.as_ptr(), 0o020000 | 0o600, meta.rdev()) } as c_long, &format!("mknod {}", node));
        check(unsafe { chown(n.as_ptr(), base as c_uint, base as c_uint) } as c_long, &format!("chown {}", node));
        let t = cstr(path);
        check(
            unsafe { mount(n.as_ptr(), t.as_ptr(), std::ptr::null(), MS_BIND, std::ptr::null()) } as c_long,
            &format!("bind over {}", path),
        );
    }
}

/// The entry point of `--idmap-exec` and `--idmap-stage`; `args` follow the flag. Never returns.
pub fn main(args: &[String], then: Then) -> ! {
    let mut devices: Vec<String> = Vec::new();
    let mut args = args;
    while args.len() >= 2 && args[0] == "--device" {
        if !args[1].starts_with('/') {
            eprintln!("kiln-idmap: --device needs an absolute path: {}", args[1]);
            std::process::exit(2);
        }
        devices.push(args[1].clone());
        args = &args[2..];
    }
    let split = args.iter().position(|a| a == "--").unwrap_or(args.len());
    let (head, prog) = (&args[..split], args.get(split + 1..).unwrap_or(&[]));
    if head.len() < 3 || prog.is_empty() || !head[2].starts_with('/') {
        eprintln!("usage: kiln-agent --idmap-exec|--idmap-stage [--device PATH]... BASE COUNT STAGE SOURCE... -- PROGRAM ARGS...");
        std::process::exit(2);
    }
    let base: u64 = head[0].parse().unwrap_or(0);
    let count: u64 = head[1].parse().unwrap_or(0);
    // Host root is never in a sandbox's range, nor are the system's own ids below 65536.
    if base < 65536 || count == 0 || count > 1 << 24 || base.checked_add(count).map_or(true, |e| e > u32::MAX as u64) {
        eprintln!("kiln-idmap: bad id range {} {}", head[0], head[1]);
        std::process::exit(2);
    }
    let stage = &head[2];
    let ns = user_namespace(base, count);
    check(unsafe { unshare(CLONE_NEWNS) } as c_long, "unshare(CLONE_NEWNS)");
    let root = cstr("/");
    check(
        unsafe { mount(std::ptr::null(), root.as_ptr(), std::ptr::null(), MS_REC | MS_PRIVATE, std::ptr::null()) } as c_long,
        "make mounts private",
    );
    // Every source is taken before the stage is mounted (a source may lie below it).
    let trees: Vec<(c_int, bool)> = head[3..]
        .iter()
        .map(|src| (idmapped_tree(src, &ns), fs::metadata(src).map(|m| m.is_dir()).unwrap_or(false)))
        .collect();
    // The stage: a private tmpfs that the sandbox's root can walk (the sources' own folders are
    // Kiln's, mode 0700, and the mapped root is nobody there).
    let _ = fs::create_dir_all(stage);
    let (st, tmpfs, opts) = (cstr(stage), cstr("tmpfs"), cstr("mode=0755,size=64k"));
    check(
        unsafe { mount(tmpfs.as_ptr(), st.as_ptr(), tmpfs.as_ptr(), MS_NOSUID | MS_NODEV, opts.as_ptr() as *const c_void) } as c_long,
        "mount the stage",
    );
    for (i, (tree, dir)) in trees.into_iter().enumerate() {
        let target = format!("{}/{}", stage, i);
        let made = if dir { fs::create_dir(&target) } else { File::create(&target).map(|_| ()) };
        made.unwrap_or_else(|e| fail(&target, e));
        attach(tree, &target);
    }
    own_devices(stage, &devices, base);
    match then {
        Then::EnterUserNamespace => {
            // Into the user namespace, as its root (host uid BASE): PROGRAM (bubblewrap) makes the
            // sandbox's other namespaces, owned by this one, with the capabilities root has in it.
            check(unsafe { setns(ns.as_raw_fd(), CLONE_NEWUSER) } as c_long, "setns(user)");
            drop(ns);
            check(unsafe { setgroups(0, std::ptr::null()) } as c_long, "setgroups");
            check(unsafe { setresgid(0, 0, 0) } as c_long, "setresgid");
            check(unsafe { setresuid(0, 0, 0) } as c_long, "setresuid");
        }
        Then::StayHostRoot => {
            bind_namespace(&ns, &format!("{}/user", stage));
            drop(ns);
        }
    }
    let cargs: Vec<CString> = prog.iter().map(|a| cstr(a)).collect();
    let mut argv: Vec<*const c_char> = cargs.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    unsafe { execvp(argv[0], argv.as_ptr()) };
    fail(&format!("exec {}", prog[0]), io::Error::last_os_error())
}
