import { Command } from './args';
import { TsrunError } from '../lib/errors';
import type * as ImageImport from '../lib/image/import';
import { ImageStore, isUnnamed, repositoryOfKey } from '../lib/image/store';
import {
  collect,
  imageStoreDir,
  inUserStoreNamespace,
  out,
  AUTHFILE_FLAG,
  CREDS_FLAG,
  PLATFORM_FLAG,
  pullOptionsOf,
  pullShown,
  STORE_FLAG,
  verb,
  withRegistryOptions,
} from './common';
import fs = require('fs');
import { warn } from '../lib/log';
import { progressBar } from './progress';

/** The importer (tar-stream, zlib) loads only for `image import`, not at every tsrun start. */
const importer = (): typeof ImageImport => require('../lib/image/import') as typeof ImageImport;

function storeOpt(cmd: Command): Command {
  return cmd.option(...STORE_FLAG);
}

const storeOf = (cmd: Command): ImageStore => new ImageStore(imageStoreDir(cmd));

/** `tsrun image import|pull|push|login|logout|ls|inspect|history|tag|rm|prune|gc`: the image store (src/lib/image/). */
export function imageCommand(): Command {
  const image = new Command('image')
    .description('pull, push, import and manage images (registries, docker-archive, OCI layout, OCI archive)')
    .option(...STORE_FLAG);
  image.addCommand(
    storeOpt(new Command('import'))
      .description(
        'import a docker-archive, an OCI image layout directory or an OCI archive ("-": an archive on stdin)',
      )
      .argument('<path>')
      .option('-t, --tag <ref>', 'also name the image so (repeatable)', collect, [])
      .action(
        verb(
          'image import',
          async function (this: Command, input: string) {
            const elsewhere = inUserStoreNamespace(this, 'image import');
            if (elsewhere !== undefined) return elsewhere;
            const bar = progressBar();
            try {
              // "-": the archive on stdin (a pipe from docker save, say).
              const r = await importer().importImage(
                storeOf(this),
                // Through /proc: a system without udev (a minimal VM, a container) has no /dev/stdin link.
                input === '-' ? '/proc/self/fd/0' : input,
                this.opts().tag as string[],
                bar?.update,
              );
              bar?.finish();
              out(r.refs.map((ref) => `${ref}\n`).join(''));
            } catch (err) {
              bar?.finish(); // the error goes on a line of its own
              throw err;
            }
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    withRegistryOptions(storeOpt(new Command('pull')))
      .description(
        'pull an image from a registry into the store (docker.io when the name has no registry), layers the store has not downloaded',
      )
      .argument('<ref>', 'NAME[:TAG] or NAME@DIGEST')
      .option(...PLATFORM_FLAG)
      .option(...CREDS_FLAG)
      .option('-q, --quiet', 'no progress display and no output (the exit status tells)')
      .action(
        verb(
          'image pull',
          async function (this: Command, ref: string) {
            const options = pullOptionsOf(this, ref); // bad flags said before any namespace
            const elsewhere = inUserStoreNamespace(this, 'image pull');
            if (elsewhere !== undefined) return elsewhere;
            if (this.opts().quiet) {
              await (require('../lib/image/pull') as typeof import('../lib/image/pull')).pullImage(
                storeOf(this),
                ref,
                options,
              );
              return;
            }
            const r = await pullShown(storeOf(this), ref, options);
            out(`${r.ref}\n`);
          },
          () => undefined, // the messages name the repository
        ),
      ),
  );
  image.addCommand(
    withRegistryOptions(storeOpt(new Command('push')))
      .description(
        'push an image of the store to a registry: blobs the repository has are skipped, those of the repository it was pulled from mounted',
      )
      .argument('<source>', 'the image in the store')
      .argument('[dest]', 'NAME[:TAG] to push to (default: the source name)')
      .option(...CREDS_FLAG)
      .option('-q, --quiet', 'no progress display and no output (the exit status tells)')
      .action(
        verb(
          'image push',
          async function (this: Command, source: string, dest: string | undefined) {
            const { pushImage } = require('../lib/image/push') as typeof import('../lib/image/push');
            const options = pullOptionsOf(this, dest ?? storeOf(this).resolve(source).ref);
            const { pullDisplay } = require('./pull-progress') as typeof import('./pull-progress');
            const display = this.opts().quiet ? undefined : pullDisplay();
            let r;
            try {
              r = await pushImage(storeOf(this), source, dest, { ...options, onProgress: display?.update });
            } finally {
              display?.finish();
            }
            if (!this.opts().quiet) out(`${r.ref}@${r.digest}\n`);
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    withRegistryOptions(new Command('login'))
      .description(
        "check a registry's credentials and keep them for pulls, in auth.json ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json) or --authfile",
      )
      .argument('<registry>', 'HOST[:PORT], as image names give it (docker.io for Docker Hub)')
      .option('-u, --username <name>', 'the user')
      .option(
        '-p, --password <password>',
        'the password (seen by other users in the process list: prefer --password-stdin)',
      )
      .option('--password-stdin', 'read the password from stdin')
      .action(
        verb(
          'image login',
          async function (this: Command, registry: string) {
            const o = this.opts();
            if (o.tlsVerify !== 'true' && o.tlsVerify !== 'false')
              throw new TsrunError(`--tls-verify "${String(o.tlsVerify)}": true or false`);
            const { registryDomain, login } =
              require('../lib/registry/login') as typeof import('../lib/registry/login');
            const domain = registryDomain(registry);
            if (o.username === undefined) throw new TsrunError('--username: needed');
            if ((o.password === undefined) === !o.passwordStdin)
              throw new TsrunError('give the password with one of --password-stdin and --password');
            const password = o.passwordStdin ? fs.readFileSync(0, 'utf8').replace(/\r?\n$/, '') : String(o.password);
            if (password === '')
              throw new TsrunError(`${o.passwordStdin ? '--password-stdin' : '--password'}: the password is empty`);
            if (o.password !== undefined)
              warn('--password on the command line is visible to other users; use --password-stdin');
            const file = await login(domain, String(o.username), password, {
              insecure: o.tlsVerify === 'false' ? [domain] : [],
              certDir: o.certDir === undefined ? undefined : String(o.certDir),
              authfile: o.authfile === undefined ? undefined : String(o.authfile),
            });
            out(`Login Succeeded (${file})\n`);
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    new Command('logout')
      .description('forget the credentials `image login` kept for a registry')
      .argument('<registry>', 'HOST[:PORT]')
      .option(...AUTHFILE_FLAG)
      .action(
        verb(
          'image logout',
          function (this: Command, registry: string) {
            const { registryDomain, logout } =
              require('../lib/registry/login') as typeof import('../lib/registry/login');
            const o = this.opts();
            out(
              `Removed login credentials for ${logout(registryDomain(registry), o.authfile as string | undefined)}\n`,
            );
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    storeOpt(new Command('ls'))
      .description('list images')
      .option('-q, --quiet', 'print references only')
      .action(
        verb(
          'image ls',
          function (this: Command) {
            const images = Object.entries(storeOf(this).images()).sort(([a], [b]) => a.localeCompare(b));
            if (this.opts().quiet) return out(images.map(([ref]) => `${ref}\n`).join(''));
            // Sizes walk the layers, whose directories in a user's store may belong to its subordinate ids
            // (an empty store has none to walk).
            const elsewhere = images.length ? inUserStoreNamespace(this, 'image ls') : undefined;
            if (elsewhere !== undefined) return elsewhere;
            out((require('./image-table') as typeof import('./image-table')).imageTable(storeOf(this)));
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    storeOpt(new Command('inspect'))
      .description("print images as JSON, in docker inspect's shape: names, config, layers, manifest")
      .argument('<ref...>')
      .action(
        verb(
          'image inspect',
          function (this: Command, refs: string[]) {
            const store = storeOf(this);
            const names = store.images();
            out(
              JSON.stringify(
                refs.map((ref) => {
                  const { image: img } = store.resolve(ref);
                  const config = JSON.parse(store.readBlob(img.config).toString('utf8'));
                  const all = Object.entries(names)
                    .filter(([, other]) => other.config === img.config)
                    .map(([name]) => name)
                    .sort();
                  return {
                    Id: img.config,
                    RepoTags: all.filter((n) => !isUnnamed(n) && !n.includes('@')),
                    // A multi-platform image's name in a registry is its index's digest, as docker shows it.
                    RepoDigests:
                      (img.index ?? img.manifest)
                        ? [
                            ...new Set(
                              all
                                .map(repositoryOfKey)
                                .filter((r) => r !== undefined)
                                .map((r) => `${r}@${img.index ?? img.manifest}`),
                            ),
                          ]
                        : [],
                    Created: config.created ?? null,
                    Architecture: config.architecture,
                    Os: config.os,
                    Author: config.author,
                    Config: config.config ?? {},
                    RootFS: { Type: 'layers', Layers: img.layers },
                    Manifest: img.manifest
                      ? { Digest: img.manifest, ...JSON.parse(store.readBlob(img.manifest).toString('utf8')) }
                      : null,
                    History: config.history ?? [],
                    Imported: img.imported,
                  };
                }),
                null,
                4,
              ) + '\n',
            );
          },
          (refs) => refs.join(' '),
        ),
      ),
  );
  image.addCommand(
    storeOpt(new Command('rm'))
      .description('remove image references, then the layers nothing uses')
      .argument('<ref...>')
      .option('-f, --force', 'also the last name of an image a container uses (it keeps its layers until deleted)')
      .action(
        verb(
          'image rm',
          function (this: Command, refs: string[]) {
            storeOf(this).removeImages(refs, !!this.opts().force);
          },
          (refs) => refs.join(' '),
        ),
      ),
  );
  image.addCommand(
    storeOpt(new Command('tag'))
      .description('name an image: tag SOURCE TARGET')
      .argument('<source>')
      .argument('<target>')
      .action(
        verb('image tag', function (this: Command, source: string, target: string) {
          out(`${storeOf(this).tag(source, target)}\n`);
        }),
      ),
  );
  image.addCommand(
    storeOpt(new Command('prune'))
      .description('remove images kept under their ID alone that no container uses, then the layers nothing uses')
      .action(
        verb(
          'image prune',
          function (this: Command) {
            const { images, removed } = storeOf(this).prune();
            out([...images, ...removed].map((r) => `${r}\n`).join(''));
          },
          () => undefined,
        ),
      ),
  );
  image.addCommand(
    storeOpt(new Command('history'))
      .description("an image's history, from its config: when, by what, and each layer's size")
      .argument('<ref>')
      .action(
        verb('image history', function (this: Command, ref: string) {
          storeOf(this).resolve(ref); // an unknown name is said here, without a store namespace
          const elsewhere = inUserStoreNamespace(this, 'image history'); // sizes, as for ls
          if (elsewhere !== undefined) return elsewhere;
          out((require('./image-table') as typeof import('./image-table')).historyTable(storeOf(this), ref));
        }),
      ),
  );
  image.addCommand(
    storeOpt(new Command('gc'))
      .description('remove layers and blobs no image or container uses')
      .action(
        verb(
          'image gc',
          function (this: Command) {
            const store = storeOf(this);
            out(
              store
                .withLock('exclusive', () => store.gc())
                .map((r) => `${r}\n`)
                .join(''),
            );
          },
          () => undefined,
        ),
      ),
  );
  image.action(() => {
    throw new TsrunError(
      'a subcommand is needed (import, pull, login, logout, ls, inspect, history, tag, rm, prune, gc)',
    );
  });
  return image;
}
