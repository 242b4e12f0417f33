/**
 * The helper's half of the plan contract is generated from OP_SCHEMA
 * (src/lib/plan-header.ts).  These tests fail when the committed headers
 * are not what the schema makes, and check what the generator must keep
 * true for init.c to read every op the way the encoder writes it.
 */
import * as fs from 'fs';
import * as path from 'path';
import t from 'tap';
import { planDecodeHeader, planOpsHeader } from '../../src/lib/plan-header';
import { Op, OP_SCHEMA, PLAN_MAGIC, PLAN_VERSION, Sync } from '../../src/lib/plan-format';
import { PROJECT_ROOT } from '../../src/lib/native';

const committed = (name: string): string => fs.readFileSync(path.join(PROJECT_ROOT, 'native', name), 'utf8');
const numbered = <E extends object>(e: E): Array<[string, number]> =>
  Object.entries(e).filter((entry): entry is [string, number] => typeof entry[1] === 'number');

t.test('the committed headers are what the schema generates (npm run plan-header)', async (t) => {
  t.equal(committed('plan-ops.h'), planOpsHeader(), 'native/plan-ops.h');
  t.equal(committed('plan-decode.h'), planDecodeHeader(), 'native/plan-decode.h');
});

t.test('every op and sync number, and the magic, are in the header with the same value', async (t) => {
  const header = planOpsHeader();
  for (const [name, value] of numbered(Op)) t.match(header, new RegExp(`\\tOP_${name} = ${value},\\n`), `OP_${name}`);
  for (const [name, value] of numbered(Sync))
    t.match(header, new RegExp(`\\tSYNC_${name} = ${value},\\n`), `SYNC_${name}`);
  t.match(header, `#define PLAN_MAGIC   0x${PLAN_MAGIC.toString(16)}u`);
  t.match(header, `#define PLAN_VERSION ${PLAN_VERSION}u`);
});

t.test("each decoder reads its op's fields in the schema's order, then requires the op to end", async (t) => {
  const decode = planDecodeHeader();
  const reader = { u32: 'rd_u32', u64: 'rd_u64', str: 'rd_str', strv: 'rd_strv', u32v: 'rd_u32v', bytes: 'rd_bytes' };
  for (const [name, code] of numbered(Op)) {
    const lower = name.toLowerCase();
    const handler = decode.includes(`\t[OP_${name}] = run_${lower},`);
    t.ok(handler, `OP_${name} has a handler in the table`);
    const schema = OP_SCHEMA[code as Op];
    if (schema.length === 0) continue;
    const body = decode.match(
      new RegExp(
        `static inline void decode_${lower}\\(struct cursor \\*c, struct op_${lower} \\*o\\)\\n\\{\\n([^}]*)\\}`,
      ),
    );
    const expected = [
      ...schema.map(
        ([field, type]) => `\to->${field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)} = ${reader[type]}(c);`,
      ),
      `\tplan_op_end(c, OP_${name});`,
    ].join('\n');
    t.equal(body?.[1].trimEnd(), expected, `decode_${lower}`);
  }
});

t.test('init.c dispatches through the table and defines no decoder of its own', async (t) => {
  const init = committed('init.c');
  t.match(init, 'plan_handlers[code](&op)', 'one call through the handler table');
  t.notMatch(init, /switch \(code\)/, 'no switch over op codes');
  // Any rd_* call outside the readers themselves would be a field read by hand.
  const readers =
    /^static [^\n]*\b(rd_u32|rd_u64|rd_str|rd_strv|rd_u32v|rd_bytes)\(struct cursor \*c\)\n\{\n[\s\S]*?\n\}\n/gm;
  const rest = init.replace(readers, '');
  const byHand = [...rest.matchAll(/\brd_(u32|u64|str|strv|u32v|bytes)\([^)]*\)/g)].map((m) => m[0]);
  t.ok(
    byHand.every((r) => r === 'rd_u32(&c)'),
    'only the plan and op headers are read by hand',
  );
});
