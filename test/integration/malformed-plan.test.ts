/**
 * tsrun-init against launch plans it must refuse.  Each plan goes straight
 * to the helper through the addon's spawnInit, as launch.ts sends it, and
 * the helper must answer with SYNC_ERROR (or just close the socket) and exit
 * with a non-zero status: never killed by a signal (SIGSEGV, SIGBUS,
 * SIGABRT...), never hanging past the sync timeout, and never leaving a
 * process of ours behind.
 *
 * The cases: truncations of a valid plan at every length, a wrong magic,
 * version or length, op sizes of 0, past the end and unaligned, unknown op
 * codes, string lengths that overflow their op (up to 2^32-1), string and
 * group lists of 2^32-1 entries, ops that need state no earlier op made,
 * and a few hundred seeded random plans.
 *
 * Safety: the helper runs as root in the host's namespaces, so no plan may
 * do anything if it were accepted.  Before a plan is run, a walk that
 * mirrors init.c's own op loop finds every op the helper could dispatch;
 * any op outside a short list that only touches the helper itself (or that
 * fails without a rootfs, a fifo or a console) is rewritten to an unknown
 * code, unless the case allows it by name after review (e.g. a SETNS whose
 * path string is malformed, so it fails before anything is opened).
 *
 * TSRUN_MALFORMED_SEED=n changes the random cases, TSRUN_MALFORMED_RANDOM=n
 * their number; TSRUN_MALFORMED_CASE=name runs one case (by name or number)
 * and prints its plan.
 */
import * as fs from 'fs';
import t from 'tap';
import { INIT_HELPER, native } from '../../src/lib/native';
import {
  encodePlan,
  type FieldValue,
  Op,
  OP_SCHEMA,
  PLAN_MAGIC,
  PLAN_VERSION,
  type PlanOp,
} from '../../src/lib/plan-format';
import { receive, send, Sync } from '../../src/lib/sync';
import { IS_ROOT } from '../helpers';
import { Rng } from '../rng';

if (!IS_ROOT) {
  t.plan(
    0,
    'needs root: tsrun-init drops privileges, joins namespaces and mounts as root, so it is only ever run as root',
  );
  process.exit(0);
}

const SEED = Number(process.env.TSRUN_MALFORMED_SEED ?? 424242) >>> 0;
const ONLY = process.env.TSRUN_MALFORMED_CASE;
const RANDOM_CASES = Number(process.env.TSRUN_MALFORMED_RANDOM ?? 500);
/** Per message and per exit: far below SYNC_TIMEOUT_MS, far above what a refusal takes. */
const TIMEOUT_MS = 5_000;
const ECHILD = 10;
const ETIMEDOUT = 110;
const ECONNRESET = 104;

// ---------------------------------------------------------------- building plans by hand

class Bytes {
  private parts: Buffer[] = [];
  u32(v: number): this {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  u64(v: bigint): this {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt.asUintN(64, v));
    this.parts.push(b);
    return this;
  }
  /** A str field; `len` overrides the length field, `terminator` the byte after the text. */
  str(s: string | Buffer, opts: { len?: number; terminator?: number } = {}): this {
    const bytes = Buffer.isBuffer(s) ? s : Buffer.from(s, 'utf8');
    const padded = (bytes.length + 1 + 3) & ~3;
    const body = Buffer.alloc(padded);
    bytes.copy(body);
    if (opts.terminator !== undefined) body[bytes.length] = opts.terminator;
    this.u32(opts.len ?? bytes.length);
    this.parts.push(body);
    return this;
  }
  raw(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** One op: u16 code, u16 zero, u32 size (default: exact), then the body. */
function rawOp(code: number, body: Buffer = Buffer.alloc(0), size?: number): Buffer {
  return new Bytes()
    .u32(code)
    .u32(size ?? 8 + body.length)
    .raw(body)
    .build();
}

/** A plan from raw ops; header fields can be overridden. */
function rawPlan(
  ops: Buffer[],
  header: { magic?: number; version?: number; length?: number; count?: number } = {},
): Buffer {
  const body = Buffer.concat(ops);
  return new Bytes()
    .u32(header.magic ?? PLAN_MAGIC)
    .u32(header.version ?? PLAN_VERSION)
    .u32(header.length ?? 16 + body.length)
    .u32(header.count ?? ops.length)
    .raw(body)
    .build();
}

/** Any op with any fields: these tests build plans the compiler never would. */
const op = (code: Op, fields: Record<string, FieldValue> = {}): PlanOp => ({ op: code, fields }) as PlanOp;

/** Where nothing can exist, so any lookup of it fails. */
const NOWHERE = '/nonexistent/tsrun-malformed-plan';

/**
 * A valid plan that does nothing beyond the helper itself and then fails:
 * every field type (u32, u64, str, strv, u32v) appears in it.
 */
function harmlessOps(): PlanOp[] {
  return [
    op(Op.NO_NEW_PRIVS),
    op(Op.CHDIR, { cwd: '/', stage: 0 }),
    op(Op.CAPS_BOUNDING, { keep: 0xffff_ffff_ffff_ffffn }),
    op(Op.USER, { uid: 0, gid: 0, umask: 0o22, groups: [0] }),
    op(Op.OOM_SCORE_ADJ, { value: 0 }),
    op(Op.EXEC_PREPARE, { name: NOWHERE, argv: [NOWHERE, 'arg'], env: ['A=b'] }),
  ];
}
const HARMLESS = encodePlan(harmlessOps());

/** The header with total_length set to the buffer's real length. */
function patchLength(buf: Buffer): Buffer {
  const out = Buffer.from(buf);
  if (out.length >= 12) out.writeUInt32LE(out.length, 8);
  return out;
}

// ---------------------------------------------------------------- the safety walk

/**
 * Ops with no effect outside the helper, or that fail before having one
 * (no rootfs yet: MOUNT, MKNOD, SYMLINK, MKDIR, PIVOT_ROOT; no fifo:
 * WAIT_START; no console: CONSOLE).  RLIMIT is left out: a tiny stack limit
 * followed by USER's 256 KiB of groups would crash the helper by design.
 */
const SAFE_OPS = new Set<number>([
  Op.UNSHARE,
  Op.BECOME_ROOT,
  Op.TIMENS_OFFSETS,
  Op.SETSID,
  Op.MOUNT,
  Op.MKNOD,
  Op.SYMLINK,
  Op.MKDIR,
  Op.PIVOT_ROOT,
  Op.CONSOLE,
  Op.OOM_SCORE_ADJ,
  Op.NO_NEW_PRIVS,
  Op.USER,
  Op.CHDIR,
  Op.EXEC_PREPARE,
  Op.WAIT_START,
  Op.CAPS_BOUNDING,
  Op.CAPS_SET,
]);
const DEFUSED = 0xdead;

/** Offsets and codes of every op init.c's loops would reach (both its namespace pre-pass and its main loop). */
function dispatchable(plan: Buffer): Array<{ at: number; code: number }> {
  const out: Array<{ at: number; code: number }> = [];
  if (plan.length < 16 || plan.readUInt32LE(0) !== PLAN_MAGIC || plan.readUInt32LE(4) !== PLAN_VERSION) return out;
  if (plan.readUInt32LE(8) !== plan.length) return out;
  const count = plan.readUInt32LE(12);
  let at = 16;
  for (let i = 0; i < count; i++) {
    if (plan.length - at < 8) break;
    const code = plan.readUInt32LE(at) & 0xffff;
    const size = plan.readUInt32LE(at + 4);
    if (size < 8 || size > plan.length - at) break;
    out.push({ at, code });
    at += size;
  }
  return out;
}

/** The plan with every op that is neither safe nor explicitly allowed turned into an unknown one. */
function defuse(plan: Buffer, allowed: ReadonlySet<number>): { plan: Buffer; defused: string[] } {
  const out = Buffer.from(plan);
  const defused: string[] = [];
  for (const { at, code } of dispatchable(out)) {
    if (SAFE_OPS.has(code) || allowed.has(code) || !(code in Op)) continue;
    out.writeUInt16LE(DEFUSED, at);
    defused.push(`${Op[code]}@${at}`);
  }
  return { plan: out, defused };
}

// ---------------------------------------------------------------- running one plan

interface RunResult {
  /** The first message: the helper's error, a close, or something it must not send. */
  first: 'error' | 'eof' | 'timeout' | string;
  step?: string;
  detail?: string;
  code: number | null;
  signal: number | null;
  hung: boolean;
  leftovers: string[];
}

const pause = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** Our children, from /proc (this kernel may lack /proc/PID/task/TID/children). */
function ourChildren(): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

/** Children of ours that exist now (zombies included), each killed and reaped so the next case starts clean. */
function reapLeftovers(): string[] {
  const found: string[] = [];
  for (;;) {
    let r: { code: number | null; signal: number | null } | null;
    try {
      r = native.waitPid(-1, true);
    } catch (err) {
      if ((err as { errno?: number }).errno === ECHILD) return found; // no children at all
      throw err;
    }
    if (r) {
      found.push(`an exited child (status ${r.code ?? `signal ${r.signal}`}) nobody reaped`);
      continue;
    }
    // Live children: name and kill them.
    for (const pid of ourChildren()) {
      let exe = '?';
      try {
        exe = fs.readlinkSync(`/proc/${pid}/exe`);
      } catch {
        // exited meanwhile
      }
      found.push(`process ${pid} (${exe}) still running`);
      try {
        process.kill(pid, 'SIGKILL');
        native.waitPid(pid, false);
      } catch {
        // already gone
      }
    }
    if (ourChildren().length === 0 && found.length) return found;
    pause(10);
  }
}

/** The helper's words, escaped: its detail echoes plan bytes, and control characters would garble the TAP stream. */
const printable = (s: string): string =>
  s.replace(/[^\x20-\x7e]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);

function runPlan(plan: Buffer): RunResult {
  const { pid, syncFd } = native.spawnInit(INIT_HELPER, plan, -1, -1, -1, 0, null);
  const result: RunResult = { first: 'eof', code: null, signal: null, hung: false, leftovers: [] };
  try {
    try {
      send(syncFd, Sync.CONTINUE);
    } catch {
      // The helper already refused the header and exited: its ERROR is still queued for us.
    }
    try {
      let msg;
      try {
        msg = receive(syncFd, TIMEOUT_MS);
      } catch (err) {
        // The helper exited with our CONTINUE unread: the kernel reports ECONNRESET once, before the messages it queued.
        if ((err as { errno?: number }).errno !== ECONNRESET) throw err;
        msg = receive(syncFd, TIMEOUT_MS);
      }
      if (msg.type === Sync.ERROR) {
        result.first = 'error';
        result.step = printable(msg.failure.step);
        result.detail = printable(msg.failure.detail);
      } else if (msg.type === 'eof') {
        result.first = 'eof';
      } else {
        result.first = Sync[msg.type];
      }
    } catch (err) {
      const errno = (err as { errno?: number }).errno;
      result.first =
        errno === ETIMEDOUT ? 'timeout' : errno === ECONNRESET ? 'eof' : `receive failed: ${(err as Error).message}`;
    }
  } finally {
    fs.closeSync(syncFd);
  }
  const deadline = Date.now() + TIMEOUT_MS;
  let status = native.waitPid(pid, true);
  while (!status && Date.now() < deadline) {
    pause(2);
    status = native.waitPid(pid, true);
  }
  if (!status) {
    result.hung = true;
    process.kill(pid, 'SIGKILL');
    status = native.waitPid(pid, false);
  }
  result.code = status?.code ?? null;
  result.signal = status?.signal ?? null;
  result.leftovers = reapLeftovers();
  return result;
}

// ---------------------------------------------------------------- the cases

interface Case {
  name: string;
  plan: Buffer;
  /** Ops reviewed as harmless in this plan although not in SAFE_OPS. */
  allow?: Op[];
  /** The step the helper must name (e.g. "plan" for anything its reader refuses). */
  step?: string | RegExp;
  /** A control case the helper accepts: READY, then exit 0. */
  accepted?: boolean;
}

const cases: Case[] = [];
const add = (c: Case): void => {
  cases.push(c);
};

// Controls: the harness sees both outcomes.
add({ name: 'control: a valid harmless plan fails at its missing program', plan: HARMLESS, step: 'exec' });
add({
  name: 'control: a valid plan without EXEC is refused',
  plan: encodePlan(harmlessOps().slice(0, 5)),
  step: 'plan',
});
add({
  name: 'control: a valid plan that execs /bin/true is accepted',
  plan: encodePlan([op(Op.EXEC_PREPARE, { name: '/bin/true', argv: ['true'], env: [] }), op(Op.EXEC)]),
  allow: [Op.EXEC],
  accepted: true,
});

// Truncations at every length, with the header's length left alone and with it patched to match.
for (let len = 0; len < HARMLESS.length; len++) {
  add({ name: `truncated to ${len} of ${HARMLESS.length} bytes`, plan: HARMLESS.subarray(0, len), step: 'plan' });
  if (len >= 12)
    add({
      name: `truncated to ${len} bytes, length field matching`,
      plan: patchLength(HARMLESS.subarray(0, len)),
      step: 'plan',
    });
}

// Header.
const header = (magic: number, version: number, length?: number, count?: number): Buffer => {
  const b = Buffer.from(HARMLESS);
  b.writeUInt32LE(magic >>> 0, 0);
  b.writeUInt32LE(version >>> 0, 4);
  if (length !== undefined) b.writeUInt32LE(length >>> 0, 8);
  if (count !== undefined) b.writeUInt32LE(count >>> 0, 12);
  return b;
};
for (const magic of [0, 0x54535250, PLAN_MAGIC ^ 1, 0xffffffff])
  add({ name: `wrong magic 0x${magic.toString(16)}`, plan: header(magic, PLAN_VERSION), step: 'plan' });
for (const version of [0, 2, 0xffffffff])
  add({ name: `wrong version ${version}`, plan: header(PLAN_MAGIC, version), step: 'plan' });
for (const delta of [-1, 1, -4, 4])
  add({
    name: `length field off by ${delta}`,
    plan: header(PLAN_MAGIC, PLAN_VERSION, HARMLESS.length + delta),
    step: 'plan',
  });
for (const length of [0, 16, 0xffffffff])
  add({ name: `length field ${length}`, plan: header(PLAN_MAGIC, PLAN_VERSION, length), step: 'plan' });
add({
  name: 'length matches, but the buffer has 3 trailing bytes',
  plan: patchLength(Buffer.concat([HARMLESS, Buffer.from([1, 2, 3])])),
  step: 'exec',
});
add({ name: 'only a header, no ops', plan: rawPlan([]), step: 'plan' });
for (const count of [0, 7, 100, 0xffffffff])
  add({
    name: `op count ${count} for 6 ops`,
    plan: header(PLAN_MAGIC, PLAN_VERSION, undefined, count),
    step: count < 6 ? 'plan' : /^(plan|exec)$/,
  });

// Op sizes.
const chdirBody = new Bytes().str('/').u32(0).build();
for (const size of [0, 1, 4, 7])
  add({ name: `op size ${size} (below its header)`, plan: rawPlan([rawOp(Op.CHDIR, chdirBody, size)]), step: 'plan' });
for (const size of [8 + chdirBody.length + 1, 8 + chdirBody.length + 4, 4096, 0x7fffffff, 0xffffffff])
  add({ name: `op size ${size} (past the end)`, plan: rawPlan([rawOp(Op.CHDIR, chdirBody, size)]), step: 'plan' });
add({
  name: 'op size 8 for an op with a string (fields past the op)',
  plan: rawPlan([rawOp(Op.CHDIR, chdirBody, 8), rawOp(Op.NO_NEW_PRIVS)]),
  step: 'plan',
});
add({
  name: 'op size 12 for an op with a string',
  plan: rawPlan([rawOp(Op.CHDIR, chdirBody, 12), rawOp(Op.NO_NEW_PRIVS)]),
  step: 'plan',
});
for (const extra of [1, 2, 3, 5]) {
  // An unaligned size: the next op starts off a 4-byte boundary.
  const first = rawOp(Op.CHDIR, Buffer.concat([chdirBody, Buffer.alloc(extra)]));
  add({
    name: `unaligned op size ${first.length}, then a valid op`,
    plan: rawPlan([first, rawOp(Op.NO_NEW_PRIVS), rawOp(Op.CHDIR, chdirBody)]),
    step: 'plan',
  });
  add({
    name: `unaligned op size ${first.length}, then garbage`,
    plan: rawPlan([first, Buffer.from('garbage!garbage!')]),
    step: 'plan',
  });
}
add({
  name: 'op with a u64 field and only 4 bytes',
  plan: rawPlan([rawOp(Op.CAPS_BOUNDING, Buffer.alloc(4))]),
  step: 'plan',
});
add({
  name: 'CAPS_SET with 3 of its 4 u64s',
  plan: rawPlan([rawOp(Op.CAPS_SET, Buffer.alloc(24, 0xff))]),
  step: 'plan',
});

// Unknown op codes, and high bits in the code word.
for (const code of [0, 36, 99, 0x7fff, 0xffff])
  add({ name: `unknown op code ${code}`, plan: rawPlan([rawOp(code)]), step: 'plan' });
add({
  name: 'unknown op code after valid ops',
  plan: rawPlan([rawOp(Op.NO_NEW_PRIVS), rawOp(Op.CHDIR, chdirBody), rawOp(0x1234, Buffer.alloc(12))]),
  step: 'plan',
});
add({
  name: 'high bits in the code word (0xffff0000 | NO_NEW_PRIVS)',
  plan: rawPlan([rawOp(0xffff0000 | Op.NO_NEW_PRIVS)]),
  step: 'plan',
});

// Strings whose length field lies.
const strOps: Array<[string, Op, (b: Bytes) => Bytes]> = [
  ['CHDIR', Op.CHDIR, (b) => b],
  ['EXEC_PREPARE name', Op.EXEC_PREPARE, (b) => b],
  ['MOUNT source', Op.MOUNT, (b) => new Bytes().u32(0).u32(0).u32(0).raw(b.build())],
  ['SETNS path (read before anything runs)', Op.SETNS, (b) => new Bytes().u32(0x40000000).raw(b.build())],
  ['CLONE_INIT cgroup (read before anything runs)', Op.CLONE_INIT, (b) => b],
  ['SYSCTL key', Op.SYSCTL, (b) => b],
  ['HOOK path', Op.HOOK, (b) => new Bytes().u32(3).raw(b.build())],
];
for (const [what, code, prefix] of strOps) {
  for (const len of [0xffffffff, 0xfffffffe, 0xfffffffd, 0xfffffffc, 0xfffffffb, 0x80000000, 0x7fffffff, 9, 8]) {
    const body = prefix(new Bytes().str('abcd', { len })).build();
    add({
      name: `${what}: string length 0x${len.toString(16)} in an op of ${8 + body.length} bytes`,
      plan: rawPlan([rawOp(code, body)]),
      allow: [code],
      step: 'plan',
    });
  }
  const unterminated = prefix(new Bytes().str('abc', { terminator: 0x41 })).build();
  add({
    name: `${what}: string without its NUL`,
    plan: rawPlan([rawOp(code, unterminated)]),
    allow: [code],
    step: 'plan',
  });
}
// A string that fits the op but runs past it into the next op.
{
  const body = new Bytes().str('/', { len: 20 }).build();
  add({
    name: 'CHDIR string runs past its op into the next',
    plan: rawPlan([rawOp(Op.CHDIR, body), rawOp(Op.NO_NEW_PRIVS), rawOp(Op.NO_NEW_PRIVS), rawOp(Op.NO_NEW_PRIVS)]),
    step: 'plan',
  });
}

// String and number lists with absurd counts.
for (const count of [0xffffffff, 0x80000000, 65537, 65536, 3]) {
  const argv = new Bytes().str(NOWHERE).u32(count).str('only-one').build();
  add({
    name: `EXEC_PREPARE argv count ${count} with one string`,
    plan: rawPlan([rawOp(Op.EXEC_PREPARE, argv)]),
    step: 'plan',
  });
  const env = new Bytes().str(NOWHERE).u32(1).str('x').u32(count).build();
  add({
    name: `EXEC_PREPARE env count ${count} with no strings`,
    plan: rawPlan([rawOp(Op.EXEC_PREPARE, env)]),
    step: 'plan',
  });
  const hook = new Bytes().u32(3).str(NOWHERE).u32(count).build();
  add({ name: `HOOK args count ${count}`, plan: rawPlan([rawOp(Op.HOOK, hook)]), allow: [Op.HOOK], step: 'plan' });
  const groups = new Bytes().u32(0).u32(0).u32(0o22).u32(count).u32(0).build();
  add({
    name: `USER groups count ${count} with one gid`,
    plan: rawPlan([rawOp(Op.USER, groups)]),
    step: /^(plan|user)$/,
  });
}

// Ops that need state an earlier op should have made.
const stateCases: Array<[string, PlanOp[], Op[], string]> = [
  ['EXEC with no EXEC_PREPARE', [op(Op.EXEC)], [Op.EXEC], 'exec'],
  ['PIVOT_ROOT before ROOTFS_PREPARE', [op(Op.PIVOT_ROOT, { mode: 0 })], [], 'pivot_root'],
  ['PIVOT_ROOT --no-pivot before ROOTFS_PREPARE', [op(Op.PIVOT_ROOT, { mode: 1 })], [], 'pivot_root'],
  [
    'MOUNT before ROOTFS_PREPARE',
    [
      op(Op.MOUNT, {
        kind: 0,
        recursiveBind: 0,
        create: 0,
        source: 'tmpfs',
        dest: 'tmp',
        fstype: 'tmpfs',
        data: '',
        attrSet: 0,
        attrClr: 0,
        recAttrSet: 0,
        recAttrClr: 0,
        propagation: 0,
        propagationRecursive: 0,
        copyUp: 0,
        slot: 0xffffffff,
      }),
    ],
    [],
    'mount',
  ],
  [
    'MOUNT of a prepared tree that was never prepared',
    [
      op(Op.MOUNT, {
        kind: 2,
        recursiveBind: 0,
        create: 0,
        source: NOWHERE,
        dest: 'vol',
        fstype: '',
        data: '',
        attrSet: 0,
        attrClr: 0,
        recAttrSet: 0,
        recAttrClr: 0,
        propagation: 0,
        propagationRecursive: 0,
        copyUp: 0,
        slot: 0xffffffff,
      }),
    ],
    [],
    'mount',
  ],
  [
    'MKNOD before ROOTFS_PREPARE',
    [
      op(Op.MKNOD, {
        path: 'dev/null',
        type: 0o020000,
        major: 1,
        minor: 3,
        mode: 0o666,
        uid: 0,
        gid: 0,
        bindFromHost: 0,
      }),
    ],
    [],
    'device',
  ],
  [
    'MKNOD at the root before ROOTFS_PREPARE',
    [op(Op.MKNOD, { path: 'null', type: 0o020000, major: 1, minor: 3, mode: 0o666, uid: 0, gid: 0, bindFromHost: 1 })],
    [],
    'device',
  ],
  ['SYMLINK before ROOTFS_PREPARE', [op(Op.SYMLINK, { target: '/proc/self/fd', path: 'dev/fd' })], [], 'symlink'],
  ['MKDIR before ROOTFS_PREPARE', [op(Op.MKDIR, { path: 'a/b' })], [], 'cwd'],
  ['WAIT_START without an exec fifo', [op(Op.WAIT_START)], [], 'start'],
  ['CONSOLE without a console socket', [op(Op.CONSOLE, { rows: 24, cols: 80, bindDevConsole: 1 })], [], 'console'],
  [
    'EXEC_PREPARE of a missing program, then EXEC',
    [op(Op.EXEC_PREPARE, { name: NOWHERE, argv: ['x'], env: [] }), op(Op.EXEC)],
    [Op.EXEC],
    'exec',
  ],
  [
    'SYSCTL with a 300000-byte key (a missing sysctl)',
    [op(Op.SYSCTL, { key: 'x'.repeat(300_000), value: '1' })],
    [Op.SYSCTL],
    'sysctl',
  ],
  [
    'SYSCTL with a 4000-byte dotted key (a missing sysctl)',
    [op(Op.SYSCTL, { key: 'tsrun.'.repeat(700), value: '1' })],
    [Op.SYSCTL],
    'sysctl',
  ],
  [
    'HOOK with a timeout whose milliseconds overflow an int',
    [op(Op.HOOK, { stage: 3, path: NOWHERE, args: [], env: [], timeout: 0xffffffff, cwd: '', processEnv: 0 })],
    [Op.HOOK],
    'hook',
  ],
];
for (const [name, ops, allow, step] of stateCases) add({ name, plan: encodePlan(ops), allow, step });

// ---------------------------------------------------------------- seeded random plans

const INTERESTING_U32 = [
  0, 1, 2, 3, 4, 7, 8, 0xff, 0xffff, 0x10000, 65536, 65537, 0x7fffffff, 0x80000000, 0xfffffffb, 0xfffffffc, 0xfffffffd,
  0xfffffffe, 0xffffffff,
];
const u32Of = (rng: Rng): number => (rng.int(2) ? rng.pick(INTERESTING_U32) : rng.int(2 ** 32));

/** Fields shaped like an op's schema, each value sometimes lying about its size. */
function randomFields(rng: Rng, code: number): Buffer {
  const b = new Bytes();
  const schema =
    OP_SCHEMA[code as Op] ??
    Array.from({ length: rng.int(4) }, () => ['x', rng.pick(['u32', 'u64', 'str', 'strv', 'u32v'] as const)] as const);
  for (const [, type] of schema) {
    const lie = rng.int(4) === 0;
    switch (type) {
      case 'u32':
        b.u32(u32Of(rng));
        break;
      case 'u64':
        b.u64((BigInt(u32Of(rng)) << 32n) | BigInt(u32Of(rng)));
        break;
      case 'str':
        b.str(NOWHERE.slice(0, rng.int(NOWHERE.length + 1)), lie ? { len: u32Of(rng) } : {});
        break;
      case 'strv': {
        const n = rng.int(4);
        b.u32(lie ? u32Of(rng) : n);
        for (let i = 0; i < n; i++) b.str('s'.repeat(rng.int(9)), rng.int(6) === 0 ? { len: u32Of(rng) } : {});
        break;
      }
      case 'u32v': {
        const n = rng.int(4);
        b.u32(lie ? u32Of(rng) : n);
        for (let i = 0; i < n; i++) b.u32(u32Of(rng));
        break;
      }
    }
  }
  if (rng.int(5) === 0) b.raw(rng.bytes(rng.int(12)));
  return b.build();
}

function randomCase(index: number): Case {
  const rng = new Rng(Math.imul(SEED ^ 0x85ebca6b, index + 1) ^ (index * 0x9e3779b9));
  const kind = rng.int(3);
  let plan: Buffer;
  let what: string;
  if (kind === 0) {
    // Random bytes after a valid header.
    const body = rng.bytes(rng.int(600));
    plan = new Bytes()
      .u32(PLAN_MAGIC)
      .u32(PLAN_VERSION)
      .u32(16 + body.length)
      .u32(rng.int(2) ? 1 + rng.int(8) : u32Of(rng))
      .raw(body)
      .build();
    what = `random bytes (${body.length}) after a valid header`;
  } else if (kind === 1) {
    // A soup of ops with schema-shaped fields and sizes that are sometimes wrong.
    const ops: Buffer[] = [];
    const n = 1 + rng.int(6);
    for (let i = 0; i < n; i++) {
      const code = rng.int(5) === 0 ? rng.int(0x10000) : rng.pick([...SAFE_OPS]);
      const body = randomFields(rng, code);
      const size =
        rng.int(4) === 0
          ? rng.pick([0, 4, 8, 8 + body.length - 4, 8 + body.length + 4, 8 + body.length + 1, u32Of(rng)])
          : 8 + body.length;
      ops.push(rawOp(code, body, size));
    }
    plan = rawPlan(ops, rng.int(8) === 0 ? { count: u32Of(rng) } : {});
    what = `${n} random ops`;
  } else {
    // The harmless plan with a few bytes or words changed.
    plan = Buffer.from(HARMLESS);
    const n = 1 + rng.int(6);
    for (let i = 0; i < n; i++) {
      if (rng.int(2)) plan[16 + rng.int(plan.length - 16)] = rng.int(256);
      else plan.writeUInt32LE(u32Of(rng), 16 + 4 * rng.int((plan.length - 16) / 4));
    }
    if (rng.int(4) === 0) plan = patchLength(plan.subarray(0, 16 + rng.int(plan.length - 16)));
    what = `the harmless plan with ${n} changes`;
  }
  return { name: `random #${index}: ${what}`, plan };
}

for (let i = 0; i < RANDOM_CASES; i++) add(randomCase(i));

// ---------------------------------------------------------------- the run

function hex(buf: Buffer, max = 256): string {
  const text = buf
    .subarray(0, max)
    .toString('hex')
    .replace(/(.{8})/g, '$1 ')
    .trim();
  return buf.length > max ? `${text} … (${buf.length} bytes)` : text;
}

/** Our open fds and what they are; the addon keeps one memfd of the helper for the life of the process. */
function openFds(): string[] {
  const out: string[] = [];
  for (const fd of fs.readdirSync('/proc/self/fd')) {
    try {
      const target = fs.readlinkSync(`/proc/self/fd/${fd}`);
      if (!target.startsWith('/memfd:tsrun-init')) out.push(`${fd} -> ${target}`);
    } catch {
      // the directory's own fd, closed by now
    }
  }
  return out.sort();
}

t.test(`tsrun-init refuses malformed plans (${cases.length} cases, seed ${SEED})`, async (t) => {
  const selected = ONLY === undefined ? cases : cases.filter((c, i) => c.name === ONLY || String(i) === ONLY);
  t.ok(selected.length > 0, `cases to run (${ONLY ?? 'all'})`);
  t.same(reapLeftovers(), [], 'no children of ours before we start');
  const fdsBefore = openFds();
  const started = Date.now();
  const tally = new Map<string, number>();
  const examples = new Map<string, string>();
  let failures = 0;

  for (const c of selected) {
    const { plan, defused } = defuse(c.plan, new Set(c.allow ?? []));
    const r = runPlan(plan);
    const problems: string[] = [];
    if (r.signal !== null) problems.push(`killed by signal ${r.signal}`);
    if (r.hung) problems.push(`still running ${TIMEOUT_MS} ms after its last message (killed)`);
    if (r.first === 'timeout') problems.push(`sent nothing and did not close the socket within ${TIMEOUT_MS} ms`);
    if (c.accepted) {
      if (r.first !== 'READY' || r.code !== 0)
        problems.push(`control plan not accepted: first message ${r.first}, exit ${r.code}`);
    } else {
      if (r.first !== 'error' && r.first !== 'eof') problems.push(`answered ${r.first} instead of SYNC_ERROR`);
      if (r.signal === null && !r.hung && r.code === 0) problems.push('exited with status 0');
      if (/\(null\)/.test(r.detail ?? '')) problems.push(`the error shows a NULL string: ${r.detail}`);
      if (
        c.step !== undefined &&
        r.first === 'error' &&
        !(typeof c.step === 'string' ? r.step === c.step : c.step.test(r.step ?? ''))
      )
        problems.push(`failed at step "${r.step}" (${r.detail}), expected ${c.step}`);
    }
    problems.push(...r.leftovers.map((l) => `left behind: ${l}`));
    const outcome =
      r.first === 'error'
        ? `error: ${r.step}: ${(r.detail ?? '').replace(/\d+/g, 'N').slice(0, 50)}`
        : `${r.first}${r.signal !== null ? ` (signal ${r.signal})` : ''}`;
    tally.set(outcome, (tally.get(outcome) ?? 0) + 1);
    if (!examples.has(outcome)) examples.set(outcome, c.name);
    if (problems.length) {
      failures++;
      t.fail(`${c.name}: ${problems.join('; ')}`, {
        diagnostic: true,
        outcome: r,
        defused,
        plan: hex(plan),
        replay: `TSRUN_MALFORMED_SEED=${SEED} TSRUN_MALFORMED_CASE='${c.name}' npx tap dist/test/integration/malformed-plan.test.js`,
      });
    } else if (ONLY !== undefined) {
      t.pass(`${c.name}: ${outcome}, exit ${r.code}`);
      t.comment(`plan: ${hex(plan, 4096)}${defused.length ? `\ndefused: ${defused.join(' ')}` : ''}`);
    }
  }

  t.comment(
    `${selected.length} plans in ${((Date.now() - started) / 1000).toFixed(1)}s; outcomes:\n${[...tally]
      .sort((a, b) => b[1] - a[1])
      .map(([o, n]) => `${String(n).padStart(5)}  ${o}  (e.g. ${examples.get(o)})`)
      .join('\n')}`,
  );
  t.equal(failures, 0, 'every malformed plan is refused cleanly');
  t.same(openFds(), fdsBefore, 'no file descriptors leaked');
  t.same(ourChildren(), [], 'no children of ours remain');
});
