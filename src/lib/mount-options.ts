// Translation of OCI mount option strings into mount(2) / mount_setattr(2)
// arguments, following runc's interpretation of the option list.

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 1,
  NOSUID: 2,
  NODEV: 4,
  NOEXEC: 8,
  SYNCHRONOUS: 16,
  REMOUNT: 32,
  MANDLOCK: 64,
  DIRSYNC: 128,
  NOSYMFOLLOW: 256,
  NOATIME: 1024,
  NODIRATIME: 2048,
  BIND: 4096,
  MOVE: 8192,
  REC: 16384,
  SILENT: 32768,
  UNBINDABLE: 1 << 17,
  PRIVATE: 1 << 18,
  SLAVE: 1 << 19,
  SHARED: 1 << 20,
  RELATIME: 1 << 21,
  I_VERSION: 1 << 23,
  STRICTATIME: 1 << 24,
  LAZYTIME: 1 << 25,
} as const;

/** mount_setattr(2) attributes (linux/mount.h). */
export const MOUNT_ATTR = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  /** The atime attributes are an enum inside this mask, not independent bits. */
  _ATIME: 0x70,
  RELATIME: 0x0,
  NOATIME: 0x10,
  STRICTATIME: 0x20,
  NODIRATIME: 0x80,
  IDMAP: 0x100000,
  NOSYMFOLLOW: 0x200000,
} as const;

export interface MountOptions {
  /** MS_* bits to pass to mount(2). */
  flags: number;
  /** MS_* bits the options explicitly cleared (e.g. "rw", "suid"); needed when remounting bind mounts. */
  clearFlags: number;
  /** One of MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, with MS_REC for the r-forms; 0 if none. */
  propagation: number;
  /** MOUNT_ATTR_* bits for mount_setattr(AT_RECURSIVE).attr_set. */
  recursiveAttrSet: number;
  /** MOUNT_ATTR_* bits for mount_setattr(AT_RECURSIVE).attr_clr. */
  recursiveAttrClr: number;
  /** Unrecognised options, comma-joined, for mount(2)'s data argument. */
  data: string;
  bind: boolean;
  recursiveBind: boolean;
  /** "idmap" or "ridmap" was given: apply an id-mapping with MOUNT_ATTR_IDMAP. */
  idmap: boolean;
  /** "ridmap" was given: the id-mapping also covers submounts. */
  recursiveIdmap: boolean;
  /** "tmpcopyup": copy the underlying directory's content into the new tmpfs. */
  tmpcopyup: boolean;
}

interface FlagOption {
  flag: number;
  /** true when the option turns the flag off (e.g. "rw" clears MS_RDONLY). */
  clear: boolean;
}

const set = (flag: number): FlagOption => ({ flag, clear: false });
const clear = (flag: number): FlagOption => ({ flag, clear: true });

const FLAG_OPTIONS: ReadonlyMap<string, FlagOption> = new Map([
  ['defaults', set(0)],
  ['ro', set(MS.RDONLY)],
  ['rw', clear(MS.RDONLY)],
  ['nosuid', set(MS.NOSUID)],
  ['suid', clear(MS.NOSUID)],
  ['nodev', set(MS.NODEV)],
  ['dev', clear(MS.NODEV)],
  ['noexec', set(MS.NOEXEC)],
  ['exec', clear(MS.NOEXEC)],
  ['sync', set(MS.SYNCHRONOUS)],
  ['async', clear(MS.SYNCHRONOUS)],
  ['dirsync', set(MS.DIRSYNC)],
  ['remount', set(MS.REMOUNT)],
  ['mand', set(MS.MANDLOCK)],
  ['nomand', clear(MS.MANDLOCK)],
  ['noatime', set(MS.NOATIME)],
  ['atime', clear(MS.NOATIME)],
  ['nodiratime', set(MS.NODIRATIME)],
  ['diratime', clear(MS.NODIRATIME)],
  ['relatime', set(MS.RELATIME)],
  ['norelatime', clear(MS.RELATIME)],
  ['strictatime', set(MS.STRICTATIME)],
  ['nostrictatime', clear(MS.STRICTATIME)],
  ['lazytime', set(MS.LAZYTIME)],
  ['nolazytime', clear(MS.LAZYTIME)],
  ['iversion', set(MS.I_VERSION)],
  ['noiversion', clear(MS.I_VERSION)],
  ['silent', set(MS.SILENT)],
  ['loud', clear(MS.SILENT)],
  ['nosymfollow', set(MS.NOSYMFOLLOW)],
  ['symfollow', clear(MS.NOSYMFOLLOW)],
  ['bind', set(MS.BIND)],
  ['rbind', set(MS.BIND | MS.REC)],
]);

const PROPAGATION_OPTIONS: ReadonlyMap<string, number> = new Map([
  ['shared', MS.SHARED],
  ['rshared', MS.SHARED | MS.REC],
  ['slave', MS.SLAVE],
  ['rslave', MS.SLAVE | MS.REC],
  ['private', MS.PRIVATE],
  ['rprivate', MS.PRIVATE | MS.REC],
  ['unbindable', MS.UNBINDABLE],
  ['runbindable', MS.UNBINDABLE | MS.REC],
]);

/** Recursive (mount_setattr) forms of the plain on/off attributes. */
const RECURSIVE_ATTR_OPTIONS: ReadonlyMap<string, FlagOption> = new Map([
  ['rro', set(MOUNT_ATTR.RDONLY)],
  ['rrw', clear(MOUNT_ATTR.RDONLY)],
  ['rnosuid', set(MOUNT_ATTR.NOSUID)],
  ['rsuid', clear(MOUNT_ATTR.NOSUID)],
  ['rnodev', set(MOUNT_ATTR.NODEV)],
  ['rdev', clear(MOUNT_ATTR.NODEV)],
  ['rnoexec', set(MOUNT_ATTR.NOEXEC)],
  ['rexec', clear(MOUNT_ATTR.NOEXEC)],
  ['rnodiratime', set(MOUNT_ATTR.NODIRATIME)],
  ['rdiratime', clear(MOUNT_ATTR.NODIRATIME)],
  ['rnosymfollow', set(MOUNT_ATTR.NOSYMFOLLOW)],
  ['rsymfollow', clear(MOUNT_ATTR.NOSYMFOLLOW)],
]);

// The kernel rejects a partial _ATIME mask in attr_clr, so every recursive
// atime option replaces the whole enum. Options that merely switch a mode off
// ("ratime", "rnorelatime", "rnostrictatime") fall back to the kernel default,
// relatime, exactly as the non-recursive mount(2) flags do.
const RECURSIVE_ATIME_OPTIONS: ReadonlyMap<string, number> = new Map([
  ['rnoatime', MOUNT_ATTR.NOATIME],
  ['rstrictatime', MOUNT_ATTR.STRICTATIME],
  ['rrelatime', MOUNT_ATTR.RELATIME],
  ['ratime', MOUNT_ATTR.RELATIME],
  ['rnorelatime', MOUNT_ATTR.RELATIME],
  ['rnostrictatime', MOUNT_ATTR.RELATIME],
]);

/** Every option string this module interprets itself (all others are filesystem data). */
export function isKnownMountOption(option: string): boolean {
  return (
    FLAG_OPTIONS.has(option) ||
    PROPAGATION_OPTIONS.has(option) ||
    RECURSIVE_ATTR_OPTIONS.has(option) ||
    RECURSIVE_ATIME_OPTIONS.has(option) ||
    option === 'idmap' ||
    option === 'ridmap' ||
    option === 'tmpcopyup'
  );
}

/**
 * Interpret a mount's options in order; later options override earlier ones.
 * `path` names the options array in error messages (e.g. "mounts[2].options").
 */
export function parseMountOptions(options: string[], path: string): MountOptions {
  const result: MountOptions = {
    flags: 0,
    clearFlags: 0,
    propagation: 0,
    recursiveAttrSet: 0,
    recursiveAttrClr: 0,
    data: '',
    bind: false,
    recursiveBind: false,
    idmap: false,
    recursiveIdmap: false,
    tmpcopyup: false,
  };
  const dataOptions: string[] = [];

  options.forEach((option, index) => {
    if (typeof option !== 'string' || option === '') {
      throw new TypeError(`${path}[${index}]: must be a non-empty string`);
    }

    const flagOption = FLAG_OPTIONS.get(option);
    if (flagOption) {
      if (flagOption.clear) {
        result.flags &= ~flagOption.flag;
        result.clearFlags |= flagOption.flag;
      } else {
        result.flags |= flagOption.flag;
        result.clearFlags &= ~flagOption.flag;
      }
      if (option === 'bind') result.bind = true;
      if (option === 'rbind') result.bind = result.recursiveBind = true;
      return;
    }

    const propagation = PROPAGATION_OPTIONS.get(option);
    if (propagation !== undefined) {
      result.propagation = propagation;
      return;
    }

    const attrOption = RECURSIVE_ATTR_OPTIONS.get(option);
    if (attrOption) {
      if (attrOption.clear) {
        result.recursiveAttrSet &= ~attrOption.flag;
        result.recursiveAttrClr |= attrOption.flag;
      } else {
        result.recursiveAttrSet |= attrOption.flag;
        result.recursiveAttrClr &= ~attrOption.flag;
      }
      return;
    }

    const atime = RECURSIVE_ATIME_OPTIONS.get(option);
    if (atime !== undefined) {
      result.recursiveAttrSet = (result.recursiveAttrSet & ~MOUNT_ATTR._ATIME) | atime;
      result.recursiveAttrClr |= MOUNT_ATTR._ATIME;
      return;
    }

    switch (option) {
      case 'idmap':
        result.idmap = true;
        return;
      case 'ridmap':
        result.idmap = result.recursiveIdmap = true;
        return;
      case 'tmpcopyup':
        result.tmpcopyup = true;
        return;
    }

    dataOptions.push(option);
  });

  result.data = dataOptions.join(',');
  return result;
}
