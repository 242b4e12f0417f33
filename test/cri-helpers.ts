/**
 * A Kubernetes node in miniature for the CRI tests: a private containerd
 * with its CRI plugin on, reached the way a kubelet reaches it (gRPC on a
 * unix socket, CRI v1 from test/cri/api.proto), with two runtime handlers
 * that differ only in the runc binary the io.containerd.runc.v2 shim runs:
 * "runc" (Debian's runc 1.1.5) and "tsrun", as a RuntimeClass names one.
 *
 * containerd runs in a network namespace this file makes, so the CNI bridge,
 * the pods' veths and their addresses live there and never touch the host's
 * network; its root, state, socket, CNI config and IPAM data are in the
 * test's own directory, and the pods' network namespaces are mounted under
 * its state dir.  The sandbox image is built here: a static pause program
 * (test/cri/pause.c).  Streams (Exec) go through containerd's CRI
 * streaming server on 127.0.0.1 in that namespace, spoken to with the
 * WebSocket form of Kubernetes' remotecommand protocol (v4.channel.k8s.io),
 * which the streaming server takes beside SPDY; this file has the small
 * WebSocket client that needs, as Node 20 has none.
 */
import { type ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import type * as net from 'net';
import * as path from 'path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROJECT_ROOT, runCommand, type RunResult, tarOf, waitFor } from './helpers';
import { CGROUP_MANAGER, Daemon, IMAGE, busyboxArchive, runtimeWrapper } from './engine-helpers';
import { imageOf, dockerArchive } from './image-helpers';

export const PAUSE_IMAGE = 'localhost/tsrun-pause:test';
export const BUSYBOX = IMAGE;
export const HANDLERS = ['runc', 'tsrun'] as const;
export type Handler = (typeof HANDLERS)[number];
/** The pods' subnet on the CNI bridge, inside the node's own network namespace. */
export const POD_SUBNET = '10.88.77.0/24';

type Callback = (err: grpc.ServiceError | null, res: any) => void;
type Client = grpc.Client & Record<string, (req: object, opts: grpc.CallOptions, cb: Callback) => void>;

/** The CRI's runtime service, loaded from the proto with enums as names and int64 as numbers. */
function runtimeService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync(path.join(PROJECT_ROOT, 'test', 'cri', 'api.proto'), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(def) as any;
  return pkg.runtime.v1.RuntimeService;
}

/** What a kubelet holds: the CRI runtime service on containerd's socket, each call a promise. */
export class CriClient {
  private readonly runtime: Client;

  constructor(socket: string) {
    const service = runtimeService();
    this.runtime = new service(`unix://${socket}`, grpc.credentials.createInsecure()) as Client;
  }

  /** One RuntimeService call; a gRPC error becomes an Error carrying containerd's message. */
  call(method: string, req: object = {}, timeoutMs = 120_000): Promise<any> {
    return new Promise((resolve, reject) => {
      this.runtime[method](req, { deadline: Date.now() + timeoutMs }, (err, res) =>
        err ? reject(new Error(`${method}: ${err.details || err.message}`)) : resolve(res),
      );
    });
  }

  close(): void {
    this.runtime.close();
  }
}

export interface CriNode {
  work: string;
  socket: string;
  netns: string;
  cri: CriClient;
  daemon: Daemon;
  /** Each handler's runtime state dir (the shim's --root is ROOT/k8s.io). */
  roots: Record<Handler, string>;
  argvLog: string;
  /** The cgroup every pod of this node goes under (relative to each hierarchy, or a slice with systemd). */
  cgroupParent: (pod: string) => string;
  ctr: (args: string[]) => RunResult;
  /** Runs an Exec response's URL (see streamExec) through a relay into the node's network namespace. */
  stream: (url: string, opts?: StreamOptions) => Promise<StreamResult>;
  stop: () => Promise<void>;
}

export interface StreamOptions {
  input?: string[];
  delayMs?: number;
  resize?: { Width: number; Height: number };
  timeoutMs?: number;
}

/**
 * The streaming server's 127.0.0.1 is the node's loopback, out of the
 * test's reach: a relay, a node process in the node's network namespace,
 * takes connections on a unix socket in the test's dir and joins each to
 * 127.0.0.1:PORT there.
 */
const RELAY = `const net = require('net');
const [sock, port] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(Number(port), '127.0.0.1');
  c.pipe(u); u.pipe(c);
  u.on('error', () => c.destroy()); c.on('error', () => u.destroy());
}).listen(sock);`;

/** Runs `argv` in the node's network namespace (only the network one: mounts and cgroups stay the host's). */
function inNetns(netns: string, argv: string[]): RunResult {
  return runCommand(['nsenter', `--net=/run/netns/${netns}`, ...argv]);
}

/**
 * Starts the node: its network namespace (lo up), the CNI bridge config,
 * containerd with the CRI plugin, and the pause and busybox images imported
 * into the CRI's k8s.io namespace.
 */
export async function startCriNode(work: string): Promise<CriNode> {
  const socket = path.join(work, 'containerd.sock');
  const netns = `tsrun-cri-${process.pid}`;
  const argvLog = path.join(work, 'argv.log');
  const roots = { runc: path.join(work, 'runc-root'), tsrun: path.join(work, 'tsrun-root') };
  const systemd = CGROUP_MANAGER === 'systemd';
  const wrapper = runtimeWrapper(path.join(work, 'bin'), 'tsrun', path.join(work, 'tsrun-unused'), argvLog);

  if (runCommand(['ip', 'netns', 'add', netns]).status !== 0) throw new Error(`ip netns add ${netns} failed`);
  inNetns(netns, ['ip', 'link', 'set', 'lo', 'up']);

  const cniConf = path.join(work, 'cni');
  fs.mkdirSync(cniConf, { recursive: true });
  fs.writeFileSync(
    path.join(cniConf, '10-tsrun-pods.conflist'),
    JSON.stringify({
      cniVersion: '0.4.0',
      name: 'tsrun-pods',
      plugins: [
        {
          type: 'bridge',
          bridge: 'tsrcri0',
          isGateway: true,
          ipMasq: false,
          ipam: {
            type: 'host-local',
            ranges: [[{ subnet: POD_SUBNET }]],
            routes: [{ dst: '0.0.0.0/0' }],
            dataDir: path.join(work, 'cni-ipam'),
          },
        },
      ],
    }),
  );

  const handler = (name: Handler, binary: string): string => `
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.${name}.options]
        BinaryName = "${binary}"
        Root = "${roots[name]}"
        SystemdCgroup = ${systemd}`;
  // A kubelet asks -998 for a sandbox; lowering oom_score_adj takes CAP_SYS_RESOURCE, which this host's bounding set
  // lacks (runc fails there as tsrun does): containerd then keeps each pod's at or above its own.
  const restrictOomScoreAdj = !boundingHas(CAP_SYS_RESOURCE);
  const config = path.join(work, 'config.toml');
  fs.writeFileSync(
    config,
    `version = 2
root = "${work}/root"
state = "${work}/state"

[grpc]
  address = "${socket}"

[ttrpc]
  address = "${socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  netns_mounts_under_state_dir = true
  restrict_oom_score_adj = ${restrictOomScoreAdj}
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
${handler('runc', runCommand(['sh', '-c', 'command -v runc']).stdout.trim())}
${handler('tsrun', wrapper)}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${cniConf}"
`,
  );

  const ctr = (args: string[]): RunResult =>
    runCommand(['ctr', '--address', socket, '--namespace', 'k8s.io', ...args], { timeoutMs: 120_000 });
  let daemon: Daemon;
  try {
    daemon = await Daemon.start(
      'containerd',
      ['nsenter', `--net=/run/netns/${netns}`, 'containerd', '--config', config],
      path.join(work, 'containerd.log'),
      () => fs.existsSync(socket) && ctr(['version']).status === 0,
    );
  } catch (e) {
    runCommand(['ip', 'netns', 'delete', netns]);
    throw e;
  }
  const cri = new CriClient(socket);
  const relays = new Map<string, ChildProcess>();
  const node: CriNode = {
    work,
    socket,
    netns,
    cri,
    daemon,
    roots,
    argvLog,
    cgroupParent: (pod) =>
      systemd ? `tsrun_cri_${process.pid}-${pod.replace(/-/g, '_')}.slice` : `/tsrun-cri-${process.pid}/${pod}`,
    ctr,
    stream: async (url, opts) => {
      const port = new URL(url).port;
      const sock = path.join(work, `stream-${port}.sock`);
      if (!relays.has(port)) {
        const child = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, '-e', RELAY, sock, port], {
          stdio: 'ignore',
        });
        relays.set(port, child);
        if (!(await waitFor(() => fs.existsSync(sock), 10_000, 50))) throw new Error('the stream relay did not start');
      }
      return streamExec(url, sock, opts);
    },
    stop: async () => {
      for (const child of relays.values()) child.kill('SIGKILL');
      cri.close();
      await daemon.stop();
      runCommand(['ip', 'netns', 'delete', netns]);
    },
  };
  for (const [name, archive] of [
    [PAUSE_IMAGE, await pauseArchive(work)],
    [BUSYBOX, await busyboxArchive(path.join(work, 'busybox.tar'))],
  ]) {
    const r = ctr(['images', 'import', archive]);
    if (r.status !== 0) {
      await node.stop();
      throw new Error(`ctr images import ${name}: ${r.stderr}`);
    }
  }
  return node;
}

const CAP_SYS_RESOURCE = 24;

/** Whether this process's bounding set has capability number CAP. */
function boundingHas(cap: number): boolean {
  const bits = /^CapBnd:\s*([0-9a-f]+)/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0';
  return ((BigInt(`0x${bits}`) >> BigInt(cap)) & 1n) === 1n;
}

/** The sandbox image: test/cri/pause.c built static, alone in one layer, as /pause. */
async function pauseArchive(work: string): Promise<string> {
  const bin = path.join(work, 'pause');
  const cc = runCommand([
    'musl-gcc',
    '-static',
    '-Os',
    '-s',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-o',
    bin,
    path.join(PROJECT_ROOT, 'test', 'cri', 'pause.c'),
  ]);
  if (cc.status !== 0) throw new Error(`musl-gcc pause.c: ${cc.stderr}`);
  const layer = await tarOf([{ name: 'pause', type: 'file', mode: 0o755, content: fs.readFileSync(bin) }]);
  const file = path.join(work, 'pause.tar');
  fs.writeFileSync(file, await dockerArchive(imageOf([layer], { Entrypoint: ['/pause'] }), PAUSE_IMAGE));
  return file;
}

/** One line of a container's log in the CRI format: `TIME STREAM TAG CONTENT`, TAG F (full) or P (partial). */
export interface CriLogLine {
  time: string;
  stream: 'stdout' | 'stderr';
  tag: 'F' | 'P';
  content: string;
}

export function readCriLog(file: string): CriLogLine[] {
  let text = '';
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const m = /^(\S+) (stdout|stderr) ([FP]) (.*)$/.exec(line);
      if (!m) throw new Error(`not a CRI log line: ${JSON.stringify(line)}`);
      return { time: m[1], stream: m[2] as 'stdout' | 'stderr', tag: m[3] as 'F' | 'P', content: m[4] };
    });
}

/** What an Exec stream gave: each output channel's bytes, and the exit code the error channel reported. */
export interface StreamResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** The v4 error channel's status, as the streaming server sent it. */
  status: any;
}

/**
 * Runs an Exec URL over WebSocket with the v4.channel.k8s.io subprotocol:
 * each binary message's first byte is its channel (0 stdin, 1 stdout,
 * 2 stderr, 3 error: a Kubernetes Status in JSON when the command ends,
 * 4 resize); the client's messages are masked, as RFC 6455 requires.
 * `input` chunks go to stdin one by one, `delayMs` apart, after the server
 * says the stream is open; `resize` is sent first, as kubectl does with a tty.
 * The streaming server listens on 127.0.0.1 in the node's network
 * namespace, so the connection goes through `socketPath`, the node's relay.
 */
export function streamExec(url: string, socketPath: string, opts: StreamOptions = {}): Promise<StreamResult> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({
      socketPath,
      path: target.pathname + target.search,
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        'Sec-WebSocket-Protocol': 'v4.channel.k8s.io',
      },
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`exec stream ${url}: no end in ${opts.timeoutMs ?? 60_000} ms`));
    }, opts.timeoutMs ?? 60_000);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    req.on('response', (res) => {
      clearTimeout(timer);
      reject(new Error(`exec stream ${url}: HTTP ${res.statusCode}, not an upgrade`));
    });
    req.on('upgrade', (res, socket: net.Socket, head: Buffer) => {
      if (res.headers['sec-websocket-protocol'] !== 'v4.channel.k8s.io') {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(`exec stream: subprotocol ${res.headers['sec-websocket-protocol']}`));
        return;
      }
      const out: Buffer[][] = [[], [], [], [], []];
      let buf = head;
      let opened = false;
      const send = (channel: number, data: Buffer): void => {
        socket.write(frame(Buffer.concat([Buffer.from([channel]), data])));
      };
      const open = async (): Promise<void> => {
        if (opts.resize) send(4, Buffer.from(JSON.stringify(opts.resize)));
        for (const chunk of opts.input ?? []) {
          await new Promise((r) => setTimeout(r, opts.delayMs ?? 200));
          if (socket.destroyed) return;
          send(0, Buffer.from(chunk));
        }
      };
      const finish = (): void => {
        clearTimeout(timer);
        const text = (c: number): string => Buffer.concat(out[c]).toString('utf8');
        const statusText = text(3);
        const status = statusText ? JSON.parse(statusText) : undefined;
        let exitCode = 0;
        if (status && status.status !== 'Success') {
          const cause = status.details?.causes?.find((c: any) => c.reason === 'ExitCode');
          exitCode = cause ? Number(cause.message) : -1;
        }
        resolve({ stdout: text(1), stderr: text(2), exitCode, status });
      };
      socket.on('data', (data: Buffer) => {
        buf = Buffer.concat([buf, data]);
        for (;;) {
          const f = parseFrame(buf);
          if (!f) break;
          buf = buf.subarray(f.size);
          if (f.opcode === 8) {
            socket.end();
            continue;
          }
          if (f.opcode === 9) {
            socket.write(frame(f.payload, 10));
            continue;
          }
          if (f.payload.length === 0) continue;
          out[f.payload[0]]?.push(f.payload.subarray(1));
          if (!opened) {
            opened = true;
            void open();
          }
        }
      });
      socket.on('close', finish);
      if (buf.length) socket.emit('data', Buffer.alloc(0));
    });
    req.end();
  });
}

/** A client frame: FIN, the opcode (2: binary), masked with a fresh key. */
function frame(payload: Buffer, opcode = 2): Buffer {
  const len = payload.length;
  const header =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff])
        : (() => {
            const h = Buffer.alloc(10);
            h[0] = 0x80 | opcode;
            h[1] = 0x80 | 127;
            h.writeBigUInt64BE(BigInt(len), 2);
            return h;
          })();
  const key = crypto.randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ key[i % 4]));
  return Buffer.concat([header, key, masked]);
}

/** One server frame off the front of `buf` (servers do not mask), or undefined until it is all there. */
function parseFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined;
  let len = buf[1] & 0x7f;
  let off = 2;
  if (len === 126) {
    if (buf.length < 4) return undefined;
    len = buf.readUInt16BE(2);
    off = 4;
  } else if (len === 127) {
    if (buf.length < 10) return undefined;
    len = Number(buf.readBigUInt64BE(2));
    off = 10;
  }
  if (buf.length < off + len) return undefined;
  return { opcode: buf[0] & 0x0f, payload: buf.subarray(off, off + len), size: off + len };
}
