/**
 * Generates native/plan-ops.h, the helper's half of the launch plan's
 * contract, from OP_SCHEMA: the op and sync numbers, the constants some
 * fields take, one struct per op, one decoder per op that reads the fields
 * in wire order, and the handler table init.c dispatches through.  The
 * field order is therefore written once, in plan-format.ts.
 *
 * `npm run plan-header` writes the file; test/unit/plan-header.test.ts
 * fails while the committed one differs, so the C build never needs Node.
 */
import {
  AffinityStage,
  ChdirStage,
  CreateKind,
  type FieldType,
  HookStage,
  MountKind,
  Op,
  OP_DOCS,
  OP_SCHEMA,
  PivotMode,
  PLAN_MAGIC,
  PLAN_VERSION,
  Sync,
} from './plan-format';

/** Each field type as a struct member, and the cursor reader (init.c) that fills it. */
const C_TYPES: Record<FieldType, { decl: string; reader: string }> = {
  u32: { decl: 'uint32_t ', reader: 'rd_u32' },
  u64: { decl: 'uint64_t ', reader: 'rd_u64' },
  str: { decl: 'const char *', reader: 'rd_str' },
  strv: { decl: 'char **', reader: 'rd_strv' },
  u32v: { decl: 'struct plan_u32v ', reader: 'rd_u32v' },
  bytes: { decl: 'struct plan_bytes ', reader: 'rd_bytes' },
};

/** The constant groups some fields take: C enum tag, name prefix, values. */
const CONSTANTS: Array<[tag: string, prefix: string, values: Record<string, number>, doc: string]> = [
  ['plan_mount_kind', 'MOUNT_KIND_', MountKind, 'OP_MOUNT kind'],
  ['plan_create', 'CREATE_', CreateKind, 'OP_MOUNT create: what to make where the destination is missing'],
  ['plan_hook_stage', 'HOOK_', HookStage, 'OP_HOOK stage (the other stages are run by the parent)'],
  ['plan_affinity_stage', 'AFFINITY_', AffinityStage, 'OP_CPU_AFFINITY stage'],
  ['plan_pivot_mode', 'PIVOT_', PivotMode, 'OP_PIVOT_ROOT mode'],
  ['plan_chdir_stage', 'CHDIR_', ChdirStage, 'OP_CHDIR stage'],
];

const snake = (name: string): string => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const opCodes = (): Array<[name: string, code: Op]> =>
  Object.entries(Op)
    .filter((e): e is [string, Op] => typeof e[1] === 'number')
    .sort((a, b) => a[1] - b[1]);

/** A comment wrapped to fit, at one tab of indent. */
function comment(text: string, indent = '\t'): string[] {
  const words = text.split(/\s+/);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line && line.length + w.length + 1 > 88) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  lines.push(line);
  if (lines.length === 1) return [`${indent}/* ${lines[0]} */`];
  return [`${indent}/* ${lines[0]}`, ...lines.slice(1).map((l) => `${indent} * ${l}`), `${indent} */`];
}

export function planOpsHeader(): string {
  const out: string[] = [
    '/*',
    ' * GENERATED from src/lib/plan-format.ts (OP_SCHEMA, OP_DOCS and the',
    ' * constants) by `npm run plan-header`: change those, then regenerate.',
    ' * test/unit/plan-header.test.ts fails while this file differs.',
    ' * plan-decode.h, generated with it, reads each op into its struct.',
    ' */',
    '#ifndef TSRUN_PLAN_OPS_H',
    '#define TSRUN_PLAN_OPS_H',
    '',
    '#include <stddef.h>',
    '#include <stdint.h>',
    '',
    `#define PLAN_MAGIC   0x${PLAN_MAGIC.toString(16)}u /* "TSRP" */`,
    `#define PLAN_VERSION ${PLAN_VERSION}u`,
    '',
    'enum plan_op {',
  ];
  for (const [name, code] of opCodes()) {
    out.push(...comment(OP_DOCS[code]), `\tOP_${name} = ${code},`);
  }
  out.push('\tOP_MAX', '};', '');
  for (const [tag, prefix, values, doc] of CONSTANTS) {
    out.push(...comment(doc, ''), `enum ${tag} {`);
    for (const [name, value] of Object.entries(values)) out.push(`\t${prefix}${name} = ${value},`);
    out.push('};', '');
  }
  out.push('/* The sync messages (the protocol: plan.h). */', 'enum sync_type {');
  for (const [name, value] of Object.entries(Sync).filter(([, v]) => typeof v === 'number'))
    out.push(`\tSYNC_${name} = ${value},`);
  out.push(
    '};',
    '',
    '/* A u32v field: count little-endian u32s at `at` (read them with plan_u32v_at). */',
    'struct plan_u32v {',
    '\tuint32_t count;',
    '\tconst unsigned char *at;',
    '};',
    '/* A bytes field: len bytes at `at`. */',
    'struct plan_bytes {',
    '\tconst unsigned char *at;',
    '\tsize_t len;',
    '};',
    '',
  );
  for (const [name, code] of opCodes()) {
    const schema = OP_SCHEMA[code];
    if (schema.length === 0) continue;
    out.push(`struct op_${name.toLowerCase()} {`);
    for (const [field, type] of schema) out.push(`\t${C_TYPES[type].decl}${snake(field)};`);
    out.push('};');
  }
  out.push('', '#endif', '');
  return out.join('\n');
}

/** native/plan-decode.h: included by init.c once its cursor readers are defined. */
export function planDecodeHeader(): string {
  const out: string[] = [
    '/*',
    ' * GENERATED from src/lib/plan-format.ts (OP_SCHEMA) by `npm run plan-header`:',
    ' * change that, then regenerate.  test/unit/plan-header.test.ts fails while',
    ' * this file differs.',
    ' *',
    ' * Included by init.c after struct cursor, the readers (rd_u32, rd_u64,',
    ' * rd_str, rd_strv, rd_u32v, rd_bytes) and plan_op_end; init.c defines one',
    ' * handler per op, named after it (op_setns for OP_SETNS), which takes the',
    ' * decoded struct (or nothing).',
    ' */',
    '#ifndef TSRUN_PLAN_DECODE_H',
    '#define TSRUN_PLAN_DECODE_H',
    '',
    '#include "plan-ops.h"',
    '',
    '/*',
    " * decode_<op> reads an op's fields in wire order into its struct and",
    ' * requires the op to end where they do (plan_op_end); run_<op> decodes',
    ' * and calls the handler.',
    ' */',
  ];
  for (const [name, code] of opCodes()) {
    const lower = name.toLowerCase();
    const schema = OP_SCHEMA[code];
    if (schema.length === 0) {
      out.push(`static void op_${lower}(void);`);
      out.push(
        `static void run_${lower}(struct cursor *c)`,
        '{',
        `\tplan_op_end(c, OP_${name});`,
        `\top_${lower}();`,
        '}',
      );
      continue;
    }
    out.push(`static inline void decode_${lower}(struct cursor *c, struct op_${lower} *o)`, '{');
    for (const [field, type] of schema) out.push(`\to->${snake(field)} = ${C_TYPES[type].reader}(c);`);
    out.push(`\tplan_op_end(c, OP_${name});`, '}');
    out.push(`static void op_${lower}(const struct op_${lower} *o);`);
    out.push(`static void run_${lower}(struct cursor *c)`, '{', `\tstruct op_${lower} o;`);
    out.push(`\tdecode_${lower}(c, &o);`, `\top_${lower}(&o);`, '}');
  }
  out.push(
    '',
    '/* The handler of each op, by number. */',
    'static void (*const plan_handlers[OP_MAX])(struct cursor *) = {',
  );
  for (const [name] of opCodes()) out.push(`\t[OP_${name}] = run_${name.toLowerCase()},`);
  out.push('};', '', '#endif', '');
  return out.join('\n');
}
