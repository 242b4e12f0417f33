/**
 * cgroup v2 has no devices.allow/deny: a BPF_PROG_TYPE_CGROUP_DEVICE
 * program decides each access.  This compiles device rules into that
 * program's bytecode, in TypeScript (the addon only loads and attaches
 * it).  It compiles what the rules come to (effectiveDeviceRules: a
 * default and exceptions to it, as cgroup v1's controller keeps them),
 * not the rules one by one, so that v2 decides as v1 does:
 *  - an allow exception lets an access through only when it grants all
 *    of it (an O_RDWR open needs "rw" in one exception);
 *  - a deny exception refuses an access when it takes any part of it.
 *    runc's filter checks a deny as it checks an allow, so under an
 *    allow-all a rule denying "w" let an O_RDWR open through there;
 *    cgroup v1's kernel refuses it, and so does tsrun.
 * Context (struct bpf_cgroup_dev_ctx): u32 access_type = access << 16 | type,
 * u32 major, u32 minor.
 */

import { type DeviceRule, type DeviceRuleSet } from './devices';

export type { DeviceRule, DeviceRuleSet };

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
const JMP_JEQ_K = 0x15; // if dst == imm goto +off
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

const isJump = (i: Insn): boolean => i.code === JMP_JNE_K || i.code === JMP_JEQ_K;

/** One exception: fall through to the next block unless it applies; else the exception's verdict. */
function exceptionBlock(rule: DeviceRule): Insn[] {
  const checks: Insn[] = [insn(JMP_JNE_K, 2, 0, 0, rule.type === 'b' ? DEV_BLOCK : DEV_CHAR)];
  const access = accessBits(rule.access);
  if (rule.allow) {
    // all of the requested access granted: requested & ~access == 0 (always so for "rwm")
    if (access !== (ACC_MKNOD | ACC_READ | ACC_WRITE))
      checks.push(insn(ALU64_MOV_X, 1, 3), insn(ALU64_AND_K, 1, 0, 0, ~access & 7), insn(JMP_JNE_K, 1, 0, 0, 0));
  } else {
    // any of it denied: requested & access != 0.  Checked for "rwm" too: an access asking for
    // nothing (faccessat's F_OK, a stat of the node's permissions) takes no part of a deny, as on v1.
    checks.push(insn(ALU64_MOV_X, 1, 3), insn(ALU64_AND_K, 1, 0, 0, access), insn(JMP_JEQ_K, 1, 0, 0, 0));
  }
  if (rule.major >= 0) checks.push(insn(JMP_JNE_K, 4, 0, 0, rule.major));
  if (rule.minor >= 0) checks.push(insn(JMP_JNE_K, 5, 0, 0, rule.minor));
  const block = [...checks, insn(ALU64_MOV_K, 0, 0, 0, rule.allow ? 1 : 0), insn(EXIT)];
  // Each jump skips to the end of this block.
  block.forEach((i, at) => {
    if (isJump(i)) i.off = block.length - at - 1;
  });
  return block;
}

export function compileDeviceInsns(set: DeviceRuleSet): Insn[] {
  const prologue = [
    insn(LDX_MEM_W, 2, 1, 0),
    insn(ALU64_AND_K, 2, 0, 0, 0xffff), // r2 = type
    insn(LDX_MEM_W, 3, 1, 0),
    insn(ALU64_RSH_K, 3, 0, 0, 16), // r3 = requested access
    insn(LDX_MEM_W, 4, 1, 4), // r4 = major
    insn(LDX_MEM_W, 5, 1, 8), // r5 = minor
  ];
  // Every exception has the same verdict (the default's opposite), so their order does not matter.
  const out = [...prologue];
  for (const rule of set.exceptions) {
    if (rule.type === 'a' || rule.allow === set.defaultAllow)
      throw new Error(`device filter: "${rule.type} ${rule.major}:${rule.minor}" is not an exception to the default`);
    out.push(...exceptionBlock(rule));
  }
  out.push(insn(ALU64_MOV_K, 0, 0, 0, set.defaultAllow ? 1 : 0), insn(EXIT)); // no exception applies
  return out;
}

/** The program as the kernel takes it: 8 bytes per instruction. */
export function compileDeviceProgram(set: DeviceRuleSet): Buffer {
  const insns = compileDeviceInsns(set);
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
      case JMP_JEQ_K:
        if (reg[i.dst] === i.imm >>> 0) pc += i.off;
        break;
      case EXIT:
        return reg[0] === 1;
      default:
        throw new Error(`unknown opcode ${i.code}`);
    }
  }
  throw new Error('program fell off its end');
}
