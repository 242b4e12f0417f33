import { Command } from './args';
import { TsrunError } from '../lib/errors';
import type * as ImageImport from '../lib/image/import';
import { DEFAULT_STORE, ImageStore, isUnnamed } from '../lib/image/store';
import { collect, out, verb } from './common';
import { progressBar } from './progress';

/** The importer (tar-stream, zlib) loads only for `image import`, not at every tsrun start. */
const importer = (): typeof ImageImport => require('../lib/image/import') as typeof ImageImport;

function storeOpt(cmd: Command): Command {
  return cmd.option('--store <dir>', 'the image store', DEFAULT_STORE);
}

const storeOf = (cmd: Command): ImageStore => new ImageStore(cmd.opts().store as string);

/** `tsrun image import|ls|inspect|rm|gc`: the image store (src/lib/image/). */
export function imageCommand(): Command {
  const image = new Command('image').description('import and manage images (docker-archive, OCI layout, OCI archive)');
  image.addCommand(storeOpt(new Command('import'))
    .description('import a docker-archive, an OCI image layout directory or an OCI archive')
    .argument('<path>')
    .option('-t, --tag <ref>', 'also name the image so (repeatable)', collect, [])
    .action(verb('image import', async function (this: Command, input: string) {
      const bar = progressBar();
      try {
        const r = await importer().importImage(storeOf(this), input, this.opts().tag as string[], bar?.update);
        bar?.finish();
        out(r.refs.map((ref) => `${ref}\n`).join(''));
      } catch (err) {
        bar?.finish(); // the error goes on a line of its own
        throw err;
      }
    }, () => undefined)));
  image.addCommand(storeOpt(new Command('ls'))
    .description('list images')
    .option('-q, --quiet', 'print references only')
    .action(verb('image ls', function (this: Command) {
      const images = Object.entries(storeOf(this).images()).sort(([a], [b]) => a.localeCompare(b));
      if (this.opts().quiet) return out(images.map(([ref]) => `${ref}\n`).join(''));
      out((require('./image-table') as typeof import('./image-table')).imageTable(storeOf(this)));
    }, () => undefined)));
  image.addCommand(storeOpt(new Command('inspect'))
    .description('print images as JSON, in docker inspect\'s shape: names, config, layers, manifest')
    .argument('<ref...>')
    .action(verb('image inspect', function (this: Command, refs: string[]) {
      const store = storeOf(this);
      const names = store.images();
      out(JSON.stringify(refs.map((ref) => {
        const { image: img } = store.resolve(ref);
        const config = JSON.parse(store.readBlob(img.config).toString('utf8'));
        const all = Object.entries(names).filter(([, other]) => other.config === img.config).map(([name]) => name).sort();
        return {
          Id: img.config,
          RepoTags: all.filter((n) => !isUnnamed(n) && !n.includes('@')),
          RepoDigests: img.manifest ? all.filter((n) => !isUnnamed(n)).map((n) => `${n.replace(/[:@].*$/, '')}@${img.manifest}`).filter((v, i, a) => a.indexOf(v) === i) : [],
          Created: config.created ?? null,
          Architecture: config.architecture,
          Os: config.os,
          Author: config.author,
          Config: config.config ?? {},
          RootFS: { Type: 'layers', Layers: img.layers },
          Manifest: img.manifest ?? null,
          History: config.history ?? [],
          Imported: img.imported,
        };
      }), null, 4) + '\n');
    }, (refs) => refs.join(' '))));
  image.addCommand(storeOpt(new Command('rm'))
    .description('remove image references, then the layers nothing uses')
    .argument('<ref...>')
    .action(verb('image rm', function (this: Command, refs: string[]) {
      storeOf(this).removeImages(refs);
    }, (refs) => refs.join(' '))));
  image.addCommand(storeOpt(new Command('gc'))
    .description('remove layers and blobs no image or container uses')
    .action(verb('image gc', function (this: Command) {
      const store = storeOf(this);
      out(store.withLock('exclusive', () => store.gc()).map((r) => `${r}\n`).join(''));
    }, () => undefined)));
  image.action(() => {
    throw new TsrunError('a subcommand is needed (import, ls, inspect, rm, gc)');
  });
  return image;
}
