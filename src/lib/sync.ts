/**
 * The parent side of the sync protocol with tsrun-init (see the diagram in
 * native/plan.h).  Messages are typed here so the create loop in
 * container.ts reads as the protocol it implements.
 */
import { native } from './native';

import { Sync } from './plan-format';

export { Sync };

/** A step of container set-up that failed inside the helper. */
export interface ChildFailure {
  step: string;
  path: string;
  detail: string;
  errno: number;
}

export type ChildMessage =
  | { type: Sync.USERNS_READY; pid: number }
  | { type: Sync.INIT_PID; pid: number }
  | { type: Sync.RUN_HOOKS }
  | { type: Sync.READY }
  | { type: Sync.SET_RLIMITS }
  | { type: Sync.SECCOMP_LISTENER; fd: number }
  | { type: Sync.ERROR; failure: ChildFailure }
  | { type: 'eof' };

/** How long set-up may take between two messages before we give up. */
export const SYNC_TIMEOUT_MS = 60_000;

export function receive(fd: number, timeoutMs = SYNC_TIMEOUT_MS): ChildMessage {
  let msg;
  try {
    msg = native.recvMessage(fd, timeoutMs);
  } catch (err) {
    // A child that exits with our CONTINUE unread makes the kernel report
    // ECONNRESET once, ahead of what the child queued before it (its ERROR).
    if ((err as NodeJS.ErrnoException).errno !== 104) throw err;
    msg = native.recvMessage(fd, timeoutMs);
  }
  if (msg === null) return { type: 'eof' };
  // Only the listener message may carry an fd; never keep one we did not ask for.
  if (msg.fd !== undefined && msg.type !== Sync.SECCOMP_LISTENER) native.close(msg.fd);
  switch (msg.type) {
    case Sync.USERNS_READY:
    case Sync.INIT_PID:
      return { type: msg.type, pid: msg.value };
    case Sync.RUN_HOOKS:
    case Sync.READY:
    case Sync.SET_RLIMITS:
      return { type: msg.type };
    case Sync.SECCOMP_LISTENER:
      if (msg.fd === undefined) throw new Error('container init sent no seccomp listener fd');
      return { type: Sync.SECCOMP_LISTENER, fd: msg.fd };
    case Sync.ERROR: {
      const [step = '', path = '', detail = ''] = msg.payload.toString('utf8').replace(/\0+$/, '').split('\0');
      return { type: Sync.ERROR, failure: { step, path, detail, errno: msg.value } };
    }
    default:
      throw new Error(`unexpected message ${msg.type} from container init`);
  }
}

export function send(fd: number, type: Sync.MAPS_WRITTEN | Sync.CONTINUE | Sync.HOOKS_DONE, payload?: string): void {
  native.sendMessage(fd, type, 0, payload === undefined ? undefined : Buffer.from(payload + '\0'));
}
