/**
 * The ENOSYS stub (native/seccomp.c), runc's answer to profiles older than
 * the kernel: normalizeSeccomp asks for it when the default action denies,
 * and names every syscall the profile names; the compiled program then
 * starts with it.  No root needed: libseccomp compiles in this process.
 * (What a container then sees, next to runc, is test/compat's.)
 */
import t from 'tap';
import { native } from '../../src/lib/native';
import { normalizeSeccomp } from '../../src/lib/seccomp';

const BPF_LD_W_ABS = 0x20;
const BPF_JEQ_K = 0x15;
const BPF_JGT_K = 0x25;
const BPF_RET_K = 0x06;
const RET_ENOSYS = 0x0005_0000 | 38;
const AUDIT_ARCH_X86_64 = 0xc000003e;
const AUDIT_ARCH_I386 = 0x40000003;

function insns(program: Buffer): Array<{ code: number; jt: number; jf: number; k: number }> {
  const out = [];
  for (let at = 0; at < program.length; at += 8) {
    out.push({
      code: program.readUInt16LE(at),
      jt: program.readUInt8(at + 2),
      jf: program.readUInt8(at + 3),
      k: program.readUInt32LE(at + 4),
    });
  }
  return out;
}

const profile = (defaultAction: string, extra: Record<string, unknown> = {}): unknown => ({
  defaultAction,
  syscalls: [
    { names: ['read', 'write', 'openat'], action: 'SCMP_ACT_ALLOW' },
    // Repeats the default: dropped from the rules, yet still a syscall the profile knows.
    { names: ['close_range'], action: defaultAction },
  ],
  ...extra,
});

t.test('a denying default asks for the stub; an allowing one does not', async (t) => {
  for (const a of ['SCMP_ACT_ERRNO', 'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_TRAP'])
    t.equal(normalizeSeccomp(profile(a)).input.enosys, true, a);
  for (const a of ['SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_TRACE'])
    t.equal(normalizeSeccomp(profile(a)).input.enosys, false, a);
  t.same(
    normalizeSeccomp(profile('SCMP_ACT_ERRNO')).input.named,
    ['close_range', 'openat', 'read', 'write'],
    'every name, the dropped rule too',
  );
});

t.test('the stub: per arch, a call above the largest named one returns ENOSYS, else on to the filter', async (t) => {
  const filter = normalizeSeccomp(profile('SCMP_ACT_ERRNO', { architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'] }));
  const plain = native.seccompCompile({ ...filter.input, enosys: false }).program;
  const stubbed = native.seccompCompile(filter.input).program;
  const stub = insns(stubbed).slice(0, insns(stubbed).length - plain.length / 8);
  t.same(stubbed.subarray(stubbed.length - plain.length), plain, "libseccomp's program follows unchanged");
  t.same(stub[0], { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: 4 }, 'the stub loads the arch first');
  const limits = new Map<number, number>();
  stub.forEach((insn, i) => {
    if (insn.code === BPF_JEQ_K && stub[i + 1]?.code === BPF_LD_W_ABS && stub[i + 1].k === 0) {
      const jgt = stub[i + 2];
      t.equal(jgt.code, BPF_JGT_K, 'compares the number');
      t.same(stub[i + 3], { code: BPF_RET_K, jt: 0, jf: 0, k: RET_ENOSYS }, 'and returns ENOSYS above it');
      limits.set(insn.k, jgt.k);
    }
  });
  // close_range is the largest named: 436 on x86_64, 436 on i386 too.
  t.same(
    [...limits.entries()].sort(),
    [
      [AUDIT_ARCH_I386, 436],
      [AUDIT_ARCH_X86_64, 436],
    ].sort(),
    'a limit for each arch, from the largest name',
  );
  t.equal(native.seccompCompile({ ...filter.input, named: [] }).program.length, plain.length, 'nothing named: no stub');
});
