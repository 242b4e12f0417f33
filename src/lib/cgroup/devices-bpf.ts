/**
 * cgroup v2 has no devices.allow/deny: a BPF_PROG_TYPE_CGROUP_DEVICE
 * program decides each access.  This compiles runtime-spec device rules
 * into that program's bytecode, in TypeScript (the addon only loads and
 * attaches it).  Semantics are runc's: rules apply in order, so the last
 * rule that matches decides; the program checks them from last to first
 * and returns at the first match; nothing matching means deny.
 *
 * Context (struct bpf_cgroup_dev_ctx): u32 access_type = access << 16 | type,
 * u32 major, u32 minor.
 */

import { type DeviceRule } from './devices';

export type { DeviceRule };

const DEV_BLOCK = 1;
const DEV_CHAR = 2;
const ACC_MKNOD = 1;
const ACC_READ = 2;
const ACC_WRITE = 4;

// Opcodes (linux/bpf.h, linux/bpf_common.h)
const LDX_MEM_W = 0x61; // dst = *(u32 *)(src + off)
const ALU64_AND_K = 0x57;
const ALU64_RSH_K = 0x77;
const ALU64_MOV_X = 0xbf;
const ALU64_MOV_K = 0xb7;
const JMP_JNE_K = 0x55; // if dst != imm goto +off
const EXIT = 0x95;

interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

const insn = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });

function accessBits(access: string): number {
  return (
    (access.includes('m') ? ACC_MKNOD : 0) |
    (access.includes('r') ? ACC_READ : 0) |
    (access.includes('w') ? ACC_WRITE : 0)
  );
}

/** One rule: fall through to the next block unless everything matches. */
function ruleBlock(rule: DeviceRule): Insn[] {
  const checks: Insn[] = [];
  if (rule.type !== 'a') checks.push(insn(JMP_JNE_K, 2, 0, 0, rule.type === 'b' ? DEV_BLOCK : DEV_CHAR));
  const allowed = accessBits(rule.access);
  if (allowed !== (ACC_MKNOD | ACC_READ | ACC_WRITE)) {
    // requested & ~allowed must be 0
    checks.push(insn(ALU64_MOV_X, 1, 3), insn(ALU64_AND_K, 1, 0, 0, ~allowed & 7), insn(JMP_JNE_K, 1, 0, 0, 0));
  }
  if (rule.major >= 0) checks.push(insn(JMP_JNE_K, 4, 0, 0, rule.major));
  if (rule.minor >= 0) checks.push(insn(JMP_JNE_K, 5, 0, 0, rule.minor));
  const verdict = [insn(ALU64_MOV_K, 0, 0, 0, rule.allow ? 1 : 0), insn(EXIT)];
  const block = [...checks, ...verdict];
  // Each jump skips to the end of this block.
  block.forEach((i, at) => {
    if (i.code === JMP_JNE_K) i.off = block.length - at - 1;
  });
  return block;
}

export function compileDeviceInsns(rules: DeviceRule[]): Insn[] {
  const prologue = [
    insn(LDX_MEM_W, 2, 1, 0),
    insn(ALU64_AND_K, 2, 0, 0, 0xffff), // r2 = type
    insn(LDX_MEM_W, 3, 1, 0),
    insn(ALU64_RSH_K, 3, 0, 0, 16), // r3 = requested access
    insn(LDX_MEM_W, 4, 1, 4), // r4 = major
    insn(LDX_MEM_W, 5, 1, 8), // r5 = minor
  ];
  const out = [...prologue];
  for (const rule of [...rules].reverse()) {
    const block = ruleBlock(rule);
    out.push(...block);
    // A rule that matches everything ends the program: the verifier refuses unreachable code.
    if (!block.some((i) => i.code === JMP_JNE_K)) return out;
  }
  out.push(insn(ALU64_MOV_K, 0, 0, 0, 0), insn(EXIT)); // nothing matched: deny
  return out;
}

/** The program as the kernel takes it: 8 bytes per instruction. */
export function compileDeviceProgram(rules: DeviceRule[]): Buffer {
  const insns = compileDeviceInsns(rules);
  const buf = Buffer.alloc(insns.length * 8);
  insns.forEach((i, n) => {
    buf.writeUInt8(i.code, n * 8);
    buf.writeUInt8((i.src << 4) | i.dst, n * 8 + 1);
    buf.writeInt16LE(i.off, n * 8 + 2);
    buf.writeInt32LE(i.imm | 0, n * 8 + 4);
  });
  return buf;
}

/** Run the compiled program on one access, as the kernel would (for tests). */
export function evaluate(insns: Insn[], type: 'b' | 'c', access: string, major: number, minor: number): boolean {
  const reg = new Array<number>(11).fill(0);
  const ctx = [(accessBits(access) << 16) | (type === 'b' ? DEV_BLOCK : DEV_CHAR), major, minor];
  for (let pc = 0; pc < insns.length; pc++) {
    const i = insns[pc];
    switch (i.code) {
      case LDX_MEM_W:
        reg[i.dst] = ctx[i.off / 4] >>> 0;
        break;
      case ALU64_AND_K:
        reg[i.dst] = (reg[i.dst] & i.imm) >>> 0;
        break;
      case ALU64_RSH_K:
        reg[i.dst] = reg[i.dst] >>> i.imm;
        break;
      case ALU64_MOV_X:
        reg[i.dst] = reg[i.src];
        break;
      case ALU64_MOV_K:
        reg[i.dst] = i.imm;
        break;
      case JMP_JNE_K:
        if (reg[i.dst] !== i.imm >>> 0) pc += i.off;
        break;
      case EXIT:
        return reg[0] === 1;
      default:
        throw new Error(`unknown opcode ${i.code}`);
    }
  }
  throw new Error('program fell off its end');
}
