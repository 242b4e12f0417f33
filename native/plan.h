/*
 * The launch plan and the parent/child sync protocol, shared by the
 * tsrun-init helper (init.c) and the N-API addon (addon.c).  The op and
 * sync numbers, each op's fields and the constants they take come from
 * plan-ops.h, which is generated from src/lib/plan-format.ts (OP_SCHEMA):
 * "adding an op" in docs/architecture.md says how to change them.
 *
 * A plan is one flat little-endian buffer: a header, then a sequence of ops.
 * TypeScript has already decided everything (paths, ids, flags, order); the
 * helper executes the ops in order and never has to look anything up.
 *
 *   header: u32 magic, u32 version, u32 total_length, u32 op_count
 *   op:     u16 code, u16 zero, u32 size (header included, multiple of 4),
 *           then the op's fields in OP_SCHEMA's order, and nothing after.
 *   field:  u32 | u64 (little-endian) | str = u32 length, bytes, NUL, zero
 *           padding to 4 | strv = u32 count, then count strs |
 *           u32v = u32 count, then count u32s | bytes = u32 length, bytes,
 *           zero padding to 4.
 */
#ifndef TSRUN_PLAN_H
#define TSRUN_PLAN_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "plan-ops.h"

/* OP_IDMAP_PREPARE's slots. */
#define MAX_PREPARED_MOUNTS 512

/*
 * Sync protocol over a SOCK_SEQPACKET socketpair, one message per packet:
 * struct sync_header followed by `len` payload bytes.
 *
 *  parent                              helper / init
 *  ------                              -------------
 *  spawn helper, write cgroup
 *  limits, send CONTINUE        ---->  (read plan, run ops: OP_JOIN_CGROUP first)
 *                               <----  USERNS_READY{pid}   (if OP_UNSHARE_USER)
 *  write uid_map/gid_map
 *  MAPS_WRITTEN                 ---->
 *                               <----  INIT_PID{pid}        (helper, then exits)
 *  record pid, reap helper,
 *  move linux.netDevices in
 *  CONTINUE                     ---->  (init: mounts, devices)
 *                               <----  RUN_HOOKS            (if OP_PARENT_HOOKS)
 *  prestart, createRuntime hooks
 *  HOOKS_DONE{state json}       ---->  (createContainer hooks, pivot_root, ...)
 *                               <----  SET_RLIMITS          (if OP_PARENT_RLIMITS)
 *  prlimit() each process.rlimit
 *  CONTINUE                     ---->
 *                               <----  SECCOMP_LISTENER + fd (if OP_SECCOMP notifies)
 *  send fd + state to listenerPath
 *  CONTINUE                     ---->
 *                               <----  READY                (then blocks on fifo)
 *
 * At any point the child may send ERROR{errno; "step\0path\0detail"} and
 * exit; the parent turns it into one CLI error line and cleans up.
 */
struct sync_header {
	unsigned int type;
	int value;
	unsigned int len;
	unsigned int reserved;
};

/* Largest packet either side sends (state JSON for hooks is the big one). */
#define SYNC_MAX_PACKET (256 * 1024)

/*
 * The framing, written once for both sides: a packet is the header and the
 * payload, sent in one sendmsg (SOCK_SEQPACKET keeps it whole, and nothing
 * is copied or allocated).  Returns 0, or -1 with errno.
 */
static inline int sync_packet_send(int fd, unsigned type, int value, const void *payload, size_t len)
{
	struct sync_header h = {type, value, (unsigned)len, 0};
	struct iovec iov[2] = {{&h, sizeof(h)}, {(void *)payload, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	if (sizeof(h) + len > SYNC_MAX_PACKET) {
		errno = EMSGSIZE;
		return -1;
	}
	ssize_t n;
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/*
 * A received packet of n bytes in buf: its header into *h and the payload's
 * length into *len; the payload starts at buf + sizeof(struct sync_header).
 * Returns 0, or -1 with errno EPROTO when the packet is shorter than a
 * header or than the length the header claims.
 */
static inline int sync_packet_parse(const void *buf, size_t n, struct sync_header *h, size_t *len)
{
	if (n < sizeof(*h)) {
		errno = EPROTO;
		return -1;
	}
	memcpy(h, buf, sizeof(*h));
	*len = n - sizeof(*h);
	if (h->len != *len) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

#endif
