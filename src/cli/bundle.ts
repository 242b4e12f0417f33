import { Command } from './args';
import { writeBundle } from '../lib/image/bundle';
import { ImageStore } from '../lib/image/store';
import { imageStoreDir, inUserStoreNamespace, overridesOf, pullIfNeeded, verb, withImageOptions } from './common';

/** `tsrun bundle REF DIR [-- CMD...]`: a bundle whose config comes from the image; create mounts its rootfs. */
export function bundleCommand(): Command {
  return withImageOptions(
    new Command('bundle')
      .description(
        "write a bundle for an image: config.json from the image's config, and an empty rootfs that create mounts as the image's overlay",
      )
      .argument('<ref>', 'the image (name[:tag] or config digest)')
      .argument('<dir>', 'the bundle directory (made if missing; must not hold a config.json)')
      .argument('[command...]', "the command, replacing the image's Cmd (after --)")
      .option('--copy', "write the image's tree into DIR/rootfs, a plain bundle any runtime runs (as umoci unpack)"),
  ).action(
    verb('bundle', async function (this: Command, ref: string, dir: string, command: string[]) {
      await pullIfNeeded(this, ref);
      // A user's copy gets the files' owners of its store: it is made in the store's namespace.
      const elsewhere = this.opts().copy ? inUserStoreNamespace(this, 'bundle --copy') : undefined;
      if (elsewhere !== undefined) return elsewhere;
      writeBundle(new ImageStore(imageStoreDir(this)), ref, dir, overridesOf(this, command), !!this.opts().copy);
    }),
  );
}
