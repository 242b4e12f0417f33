/**
 * Typed access to the N-API addon (native/addon.c) and the paths of the
 * static helpers built beside it.
 */
import path = require('path');

export interface WaitResult {
  code: number | null;
  signal: number | null;
}

/** What native/seccomp.c compiles: names and numbers only, already validated. */
export interface SeccompCompileInput {
  defaultAction: number;
  /** libseccomp's architecture names: "x86_64", "x86", ... */
  arches: string[];
  rules: Array<{
    name: string;
    action: number;
    args: Array<{ index: number; op: number; value: bigint; valueTwo: bigint }>;
  }>;
  /** Every syscall the profile names, whatever its action: the ENOSYS stub's measure of what the profile knows. */
  named: string[];
  /** Put runc's ENOSYS stub ahead of the filter (native/seccomp.c says why). */
  enosys: boolean;
}

export interface NativeAddon {
  /** rootfsFd: a detached mount (an image's overlay) the init attaches at its rootfs path, or -1. */
  /** stdio: the helper's fds 0-2 (null: ours). */
  spawnInit(
    helperPath: string,
    plan: Buffer,
    fifoFd: number,
    consoleFd: number,
    rootfsFd: number,
    preserveFds: number,
    stdio: [number, number, number] | null,
  ): { pid: number; syncFd: number };
  /**
   * Become the sealed helper (helperPath) in its release mode: it writes the exec fifo's byte and exits 0 (1 with a
   * line on stderr if the write fails), lockFd held until then.  Returns only by throwing.
   */
  execRelease(helperPath: string, fifoFd: number, lockFd: number): never;
  /** pipe2(O_CLOEXEC): [read end, write end]. */
  pipe(): [number, number];
  /**
   * Our stdin into stdinWrite, stdoutRead and stderrRead out to our 1 and 2, on a pool thread, until both outputs end
   * and stdin is done (closed, or stopRead at EOF); closes the four (native/addon.c).
   */
  copyStdio(
    stdinWrite: number,
    stdoutRead: number,
    stderrRead: number,
    stopRead: number,
    drainOnStop: boolean,
  ): Promise<void>;
  /** TIOCGWINSZ on `from`, TIOCSWINSZ on `to`: whether `from` was a terminal. */
  copyWinsize(from: number, to: number): boolean;
  /** TIOCGWINSZ: the terminal's [columns, rows], [0, 0] when fd is no terminal. */
  terminalSize(fd: number): [number, number];
  /** Make the terminal at fd raw: its settings before, or null when fd is no terminal. */
  setRaw(fd: number): Buffer | null;
  restoreTerminal(fd: number, settings: Buffer): void;
  /** dup(2), close-on-exec. */
  dup(fd: number): number;
  sendMessage(fd: number, type: number, value: number, payload?: Buffer): void;
  recvMessage(fd: number, timeoutMs: number): { type: number; value: number; payload: Buffer; fd?: number } | null;
  waitPid(pid: number, noHang: boolean): WaitResult | null;
  waitPidAsync(pid: number): Promise<WaitResult>;
  waitExit(pid: number, timeoutMs: number): boolean;
  setSubreaper(): void;
  mkfifo(path: string, mode: number): void;
  flock(fd: number, exclusive: boolean, wait: boolean): boolean;
  connectUnix(path: string): number;
  /** poll(2) for input (or hang-up) on fd: whether it came within timeoutMs. */
  waitReadable(fd: number, timeoutMs: number): boolean;
  /** SIOCOUTQ: bytes written to a stream socket that its peer has not read yet. */
  unreadByPeer(fd: number): number;
  listenUnix(path: string): number;
  acceptUnix(fd: number, timeoutMs: number): number;
  recvFd(fd: number, timeoutMs: number): number;
  /** The fd and the text that came with it (a console socket's sender names the pty there). */
  recvFdNamed(fd: number, timeoutMs: number): { fd: number; name: string };
  sendFd(sock: number, fd: number, payload: Buffer): void;
  prlimit(pid: number, resource: number, soft: bigint, hard: bigint): void;
  seccompCompile(spec: SeccompCompileInput): { program: Buffer; ignored: string[] };
  seccompVersion(): string;
  layerOpenRoot(dir: string): number;
  layerEntry(rootFd: number, entry: object): number;
  layerOpenFile(rootFd: number, name: string): number;
  layerFinishFile(fd: number, entry: object): void;
  layerSetTimes(rootFd: number, name: string, sec: number, nsec: number): void;
  layerIsOpaque(dir: string): boolean;
  /**
   * An overlay of `lowers` (topmost first) as a detached mount, never attached on the host: its fd.
   * `staging`: an empty root-only directory the legacy path (mount(2), forced by `legacy`) uses for an instant.
   * `userxattr`: a user's store, mounted in its user namespace (overlayfs's attributes in user.overlay.*).
   */
  overlayOpen(
    source: string,
    lowers: string[],
    upper: string,
    work: string,
    staging: string,
    legacy: boolean,
    userxattr: boolean,
  ): number;
  /** Remove a tree without following a symlink or entering a mount point, whatever changes in it meanwhile (native/remove.c). */
  removeTree(path: string): void;
  /**
   * linux.netDevices: move an interface out of the namespace at fromNs (null: ours, the host's) into the one at toNs,
   * renamed, with its addresses, up if setUp (native/netdev.c).  fromIndex > 0 names it by index (one we moved there).
   * Its final name and index there, and whether it was up before.
   */
  moveNetDevice(
    fromName: string,
    toName: string,
    toNs: string,
    fromNs: string | null,
    setUp: boolean,
    fromIndex: number,
  ): { name: string; index: number; wasUp: boolean };
  seccompFlagSupported(flags: number): boolean;
  seccompActionAvailable(action: number): boolean;
  /** The pty stops turning "\n" into "\r\n" (tsrun's own foreground terminal, as runc's). */
  clearOnlcr(fd: number): void;
  /** umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW): whether a mount was there. */
  detachMount(path: string): boolean;
  /**
   * The id of the mount `path` resolves to (magic links followed: /proc/PID/root): mountinfo's (reused once the mount
   * is gone), or with `unique` the one never reused (Linux 6.8+; null before).
   */
  mountId(path: string, unique: false): number;
  mountId(path: string, unique: true): number | null;
  attachDeviceProgram(cgroupDir: string, insns: Buffer): void;
  /**
   * CRIU's service mode (native/criu.c): `path` run with argv, its fd 3 one end of a SOCK_SEQPACKET socketpair
   * (`sock`, ours, the other), 0-2 `stdio` (null: ours), 4.. `extra`.
   */
  spawnCriu(
    path: string,
    argv: string[],
    stdio: [number, number, number] | null,
    extra: number[],
  ): {
    pid: number;
    sock: number;
  };
  /** One packet, as it is. */
  packetSend(sock: number, data: Buffer): void;
  /** One packet and the fd that came with it; null at the peer's end; ETIMEDOUT after timeoutMs (-1: wait). */
  packetRecv(sock: number, timeoutMs: number): { data: Buffer; fd?: number } | null;
  /** mount(source, target, MS_BIND | MS_REC): restore's criu-root. */
  bindMount(source: string, target: string): void;
  /** A missing mount point `rel` made beneath `rootfs`, scoped to it (native/in-root.h): restore's, before CRIU mounts. */
  makeMountPoint(rootfs: string, rel: string, isFile: boolean): void;
  /** Where `rel` resolves beneath `rootfs`, its symlinks followed there ("/run/x"); null when missing. */
  resolveInRoot(rootfs: string, rel: string): string | null;
  close(fd: number): void;
  strerror(errno: number): string;
}

/**
 * The checkout: dist/src/lib -> three levels up on Node; in the compiled
 * executable, the checkout it was built from, which scripts/compile-exe.js
 * writes in (--define TSRUN_BUILD_ROOT), so bin/tsrun, a link to it or a
 * copy of it anywhere finds the addon and the helpers there.
 */
declare const TSRUN_BUILD_ROOT: string | undefined;
export const PROJECT_ROOT =
  typeof TSRUN_BUILD_ROOT === 'string' ? TSRUN_BUILD_ROOT : path.resolve(__dirname, '..', '..', '..');
export const INIT_HELPER = path.join(PROJECT_ROOT, 'native', 'out', 'tsrun-init');
export const CHECKER = path.join(PROJECT_ROOT, 'native', 'out', 'tsrun-checker');

let addon: NativeAddon | undefined;

/** Loaded on first use so verbs that need no syscalls (spec, features) start faster. */
export const native: NativeAddon = new Proxy({} as NativeAddon, {
  get(_target, name: string) {
    addon ??= require(path.join(PROJECT_ROOT, 'build', 'Release', 'tsrun_native.node')) as NativeAddon;
    return (addon as unknown as Record<string, unknown>)[name];
  },
});
