/**
 * Kiln's seccomp policy for x86_64: a denylist of syscalls that a sandboxed
 * program has no business making (kernel modules, kexec, bpf, perf, keyrings,
 * mounts, new namespaces, ptrace of other processes, clock changes, io_uring),
 * in two forms:
 *  - `seccompBpf()`: a classic-BPF program, as `bwrap --seccomp FD` reads it;
 *  - `ociSeccomp()`: the same policy in the OCI runtime-spec JSON (runc, runsc).
 * Denied calls fail with EPERM (clone3 with ENOSYS, so libc falls back to
 * clone, whose flags can be checked); a foreign architecture is killed.
 */

/** Denied syscalls, x86_64 numbers. */
export const DENIED_SYSCALLS: Readonly<Record<string, number>> = Object.freeze({
  acct: 163,
  add_key: 248,
  adjtimex: 159,
  bpf: 321,
  clock_adjtime: 305,
  clock_settime: 227,
  create_module: 174,
  delete_module: 176,
  finit_module: 313,
  fsconfig: 431,
  fsmount: 432,
  fsopen: 430,
  fspick: 433,
  get_kernel_syms: 177,
  init_module: 175,
  io_uring_enter: 426,
  io_uring_register: 427,
  io_uring_setup: 425,
  ioperm: 173,
  iopl: 172,
  kexec_file_load: 320,
  kexec_load: 246,
  keyctl: 250,
  lookup_dcookie: 212,
  mount: 165,
  mount_setattr: 442,
  move_mount: 429,
  name_to_handle_at: 303,
  nfsservctl: 180,
  open_by_handle_at: 304,
  open_tree: 428,
  perf_event_open: 298,
  pivot_root: 155,
  process_vm_readv: 310,
  process_vm_writev: 311,
  ptrace: 101,
  query_module: 178,
  quotactl: 179,
  reboot: 169,
  request_key: 249,
  setns: 308,
  settimeofday: 164,
  swapoff: 168,
  swapon: 167,
  syslog: 103,
  umount2: 166,
  unshare: 272,
  uselib: 134,
  userfaultfd: 323,
  ustat: 136,
  vhangup: 153,
});

const SYS_CLONE = 56;
const SYS_CLONE3 = 435;
/** Every namespace flag of clone(2): a sandbox may not make new namespaces. */
const CLONE_NS_FLAGS = 0x7e020000;
/** The single bits of CLONE_NS_FLAGS: NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET. */
const NS_FLAG_BITS = [0x20000, 0x2000000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000];
const AUDIT_ARCH_X86_64 = 0xc000003e;
const X32_SYSCALL_BIT = 0x40000000;
const EPERM = 1;
const ENOSYS = 38;

const RET_ALLOW = 0x7fff0000;
const RET_KILL_PROCESS = 0x80000000;
const retErrno = (errno: number) => 0x00050000 | errno;

// Classic BPF opcodes.
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const JGE_K = 0x35;
const JSET_K = 0x45;
const RET_K = 0x06;

type Insn = { code: number; jt: number | string; jf: number | string; k: number; label?: string };

/** The filter as a classic-BPF program (8 bytes per instruction, host byte order). */
export function seccompBpf(): Uint8Array {
  const prog: Insn[] = [];
  const op = (code: number, k: number, jt: number | string = 0, jf: number | string = 0, label?: string) =>
    prog.push({ code, jt, jf, k, ...(label ? { label } : {}) });
  op(LD_W_ABS, 4); // seccomp_data.arch
  op(JEQ_K, AUDIT_ARCH_X86_64, 1, 0);
  op(RET_K, RET_KILL_PROCESS);
  op(LD_W_ABS, 0); // seccomp_data.nr
  op(JGE_K, X32_SYSCALL_BIT, "deny", 0);
  op(JEQ_K, SYS_CLONE3, "enosys", 0);
  op(JEQ_K, SYS_CLONE, "clone", 0);
  for (const nr of Object.values(DENIED_SYSCALLS)) op(JEQ_K, nr, "deny", 0);
  op(RET_K, RET_ALLOW);
  // BPF jumps only forward: the clone check comes before the shared returns.
  op(LD_W_ABS, 16, 0, 0, "clone"); // args[0], low 32 bits: the clone flags
  op(JSET_K, CLONE_NS_FLAGS, "deny", 0);
  op(RET_K, RET_ALLOW);
  op(RET_K, retErrno(EPERM), 0, 0, "deny");
  op(RET_K, retErrno(ENOSYS), 0, 0, "enosys");

  const at = new Map(prog.flatMap((p, i) => (p.label ? [[p.label, i] as const] : [])));
  const out = new Uint8Array(prog.length * 8);
  const view = new DataView(out.buffer);
  prog.forEach((p, i) => {
    const rel = (j: number | string) => {
      if (typeof j === "number") return j;
      const off = at.get(j)! - i - 1;
      if (off < 0 || off > 255) throw new Error(`seccomp jump out of range: ${j}`);
      return off;
    };
    view.setUint16(i * 8, p.code, true);
    view.setUint8(i * 8 + 2, rel(p.jt));
    view.setUint8(i * 8 + 3, rel(p.jf));
    view.setUint32(i * 8 + 4, p.k >>> 0, true);
  });
  return out;
}

/** The same policy as an OCI runtime-spec `linux.seccomp` object. */
export function ociSeccomp(): Record<string, unknown> {
  return {
    defaultAction: "SCMP_ACT_ALLOW",
    architectures: ["SCMP_ARCH_X86_64"],
    syscalls: [
      { names: Object.keys(DENIED_SYSCALLS), action: "SCMP_ACT_ERRNO", errnoRet: EPERM },
      { names: ["clone3"], action: "SCMP_ACT_ERRNO", errnoRet: ENOSYS },
      // One rule per namespace flag: "deny when this bit is set" (rules on one syscall are ORed).
      ...NS_FLAG_BITS.map((bit) => ({
        names: ["clone"],
        action: "SCMP_ACT_ERRNO",
        errnoRet: EPERM,
        args: [{ index: 0, value: bit, valueTwo: bit, op: "SCMP_CMP_MASKED_EQ" }],
      })),
    ],
  };
}
