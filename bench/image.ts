/**
 * Images, side by side:
 *   1. importing a multi-layer image (made here: the busybox base and eight
 *      layers of files, tens of MB, gzip) with `tsrun image import`, against
 *      `umoci unpack` of the same OCI layout (skopeo converted the
 *      docker-archive), each into a fresh directory every round;
 *   2. pulling it from a registry (docker-registry on 127.0.0.1, the
 *      layout pushed there by skopeo) with `tsrun image pull`, against
 *      `skopeo copy` of it to an OCI layout followed by `tsrun image
 *      import` (the way to a store without a pull), each into a fresh store;
 *   3. `run` of /bin/true from the imported image (`run --image`: the
 *      overlay mounted at create and removed at delete) against `run` of a
 *      plain bundle with the same config.json and the image's tree copied
 *      out, and runc on that plain bundle.
 * Paired rounds, medians and ratios.
 *
 *   node dist/bench/image.js [--rounds N] [--runc PATH]
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { type Config } from '../src/lib/config';
import { tarOf, type TarEntry, TSRUN } from '../test/helpers';
import { baseLayer, dockerArchive, imageOf } from '../test/image-helpers';
import { REGISTRY_BIN, startRegistry } from '../test/registry-helpers';
import { Rng } from '../test/rng';
import { arg, execVersion, must, paired } from './common';

const LAYERS = 8;
const FILES_PER_LAYER = 150;

/** A layer of files of 1 KB to 120 KB: half random bytes, half text (so gzip has work of both kinds). */
async function dataLayer(rng: Rng, n: number): Promise<Buffer> {
  const entries: TarEntry[] = [{ name: `data${n}/`, type: 'directory', mode: 0o755 }];
  for (let i = 0; i < FILES_PER_LAYER; i++) {
    const size = 1024 + rng.int(120 * 1024);
    const content =
      i % 2
        ? rng.bytes(size)
        : Buffer.from(`line ${n}.${i} of some text that compresses well\n`.repeat(Math.ceil(size / 48))).subarray(
            0,
            size,
          );
    entries.push({ name: `data${n}/f${i}`, type: 'file', mode: 0o644, content });
  }
  return tarOf(entries);
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

function need(tool: string, pkg: string): void {
  if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
    throw new Error(`${tool} not found: apt-get install ${pkg}`);
}

const ms = (x: number): string => `${x.toFixed(1).padStart(8)} ms`;

async function main(): Promise<void> {
  const rounds = Number(arg('--rounds', '10'));
  const runcPath = arg('--runc', '/usr/sbin/runc');
  need('umoci', 'umoci');
  need('skopeo', 'skopeo');
  if (!fs.existsSync(runcPath)) throw new Error(`${runcPath} not found: apt-get install runc`);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-image-'));
  const root = path.join(work, 'state');
  try {
    const rng = new Rng(5);
    const layers = [baseLayer()];
    for (let i = 1; i <= LAYERS; i++) layers.push(await dataLayer(rng, i));
    const img = imageOf(layers, { Cmd: ['/bin/true'] });
    const archive = path.join(work, 'image.tar');
    fs.writeFileSync(archive, await dockerArchive(img, 'bench:1'));
    const layout = path.join(work, 'layout');
    sh('skopeo', ['copy', '-q', `docker-archive:${archive}`, `oci:${layout}:bench`]);
    const rawMB = layers.reduce((n, l) => n + l.length, 0) / 1e6;
    const blobs = path.join(layout, 'blobs', 'sha256');
    const gzMB = fs.readdirSync(blobs).reduce((n, b) => n + fs.statSync(path.join(blobs, b)).size, 0) / 1e6;
    console.log(
      `image: ${layers.length} layers, ${rawMB.toFixed(1)} MB of tar, ${gzMB.toFixed(1)} MB as the OCI layout (gzip); ${rounds} paired rounds, ${os.cpus().length} cores`,
    );
    console.log(`NODE_EXTRA_CA_CERTS is ${process.env.NODE_EXTRA_CA_CERTS ? 'set' : 'not set'}`);

    const imp = paired(rounds, [
      { name: 'tsrun', once: (r) => sh(TSRUN, ['image', 'import', '--store', path.join(work, `import-${r}`), layout]) },
      {
        name: 'umoci',
        once: (r) => sh('umoci', ['unpack', '--image', `${layout}:bench`, path.join(work, `umoci-${r}`)]),
      },
    ]);
    console.log(
      `import of the layout     tsrun ${ms(imp.tsrun)}   umoci unpack ${ms(imp.umoci)}   ratio ${(imp.tsrun / imp.umoci).toFixed(2)}`,
    );
    for (let r = -2; r < rounds; r++) {
      fs.rmSync(path.join(work, `import-${r + 2}`), { recursive: true, force: true });
      fs.rmSync(path.join(work, `umoci-${r + 2}`), { recursive: true, force: true });
    }

    // A registry of the bench's own, stopped at the end.
    if (fs.existsSync(REGISTRY_BIN)) {
      const cleanups: Array<() => void | Promise<void>> = [];
      try {
        const reg = await startRegistry({ teardown: (fn) => cleanups.push(fn) });
        sh('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layout}:bench`, `docker://${reg.host}/bench:1`]);
        const pull = paired(rounds, [
          {
            name: 'tsrun',
            once: (r) => sh(TSRUN, ['image', 'pull', '--store', path.join(work, `pull-${r}`), `${reg.host}/bench:1`]),
          },
          {
            name: 'skopeo',
            once: (r) => {
              sh('skopeo', [
                'copy',
                '-q',
                '--src-tls-verify=false',
                `docker://${reg.host}/bench:1`,
                `oci:${path.join(work, `copy-${r}`)}:bench`,
              ]);
              sh(TSRUN, [
                'image',
                'import',
                '--store',
                path.join(work, `copied-${r}`),
                '--tag',
                'bench:1',
                path.join(work, `copy-${r}`),
              ]);
            },
          },
        ]);
        console.log(
          `pull from a registry     tsrun ${ms(pull.tsrun)}   skopeo copy + import ${ms(pull.skopeo)}   ratio ${(pull.tsrun / pull.skopeo).toFixed(2)}`,
        );
      } finally {
        for (const fn of cleanups.reverse()) await fn();
      }
      for (let r = 0; r < rounds + 2; r++)
        for (const dir of [`pull-${r}`, `copy-${r}`, `copied-${r}`])
          fs.rmSync(path.join(work, dir), { recursive: true, force: true });
    } else console.log(`pull from a registry     skipped: ${REGISTRY_BIN} not found (apt-get install docker-registry)`);

    // One store for the start comparison; the plain bundle gets the same config and the image's tree.
    const store = path.join(work, 'store');
    // The layout names the image by the tag alone (skopeo's oci:DIR:bench), which names no repository.
    sh(TSRUN, ['image', 'import', '--store', store, '--tag', 'bench', layout]);
    const plain = path.join(work, 'plain');
    sh(TSRUN, ['bundle', '--store', store, 'bench', plain]);
    fs.rmdirSync(path.join(plain, 'rootfs'));
    sh('umoci', ['unpack', '--image', `${layout}:bench`, path.join(work, 'unpacked')]);
    fs.renameSync(path.join(work, 'unpacked', 'rootfs'), path.join(plain, 'rootfs'));
    const config = JSON.parse(fs.readFileSync(path.join(plain, 'config.json'), 'utf8')) as Config;
    for (const key of Object.keys(config.annotations ?? {}))
      if (key.startsWith('org.tsrun.')) delete config.annotations![key];
    fs.writeFileSync(path.join(plain, 'config.json'), JSON.stringify(config));

    const start = paired(rounds * 2, [
      {
        name: 'image',
        once: (r) =>
          must({ name: 'tsrun', argv: [TSRUN] }, root, ['run', '--image', 'bench', '--store', store, `img-${r}`]),
      },
      { name: 'plain', once: (r) => must({ name: 'tsrun', argv: [TSRUN] }, root, ['run', '-b', plain, `plain-${r}`]) },
      {
        name: 'runc',
        once: (r) =>
          must({ name: 'runc', argv: [runcPath] }, path.join(work, 'runc'), ['run', '-b', plain, `runc-${r}`]),
      },
    ]);
    console.log(
      `run /bin/true from the image    tsrun --image ${ms(start.image)}   tsrun -b plain ${ms(start.plain)}   ratio ${(start.image / start.plain).toFixed(2)}`,
    );
    console.log(
      `                                runc -b plain (${execVersion(runcPath)}) ${ms(start.runc)}   tsrun --image / runc ${(start.image / start.runc).toFixed(2)}`,
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
