/*
 * tsrun's N-API addon: the few things Node cannot do itself.
 *
 * It never forks into JavaScript.  spawnInit() posix_spawns the static
 * tsrun-init helper from a sealed memfd (glibc uses CLONE_VM|CLONE_VFORK,
 * and the child only dup2s and execs), handing it the plan and a
 * SOCK_SEQPACKET sync socket.  Everything else here is a thin wrapper over
 * one syscall each: message send/recv, waitpid, pidfd waits, mkfifo,
 * flock, unix-socket connect and SCM_RIGHTS.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <limits.h>
#include <stdbool.h>
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <sys/mount.h>
#include <termios.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <node_api.h>

#include "addon.h"
#include "plan.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x10
#endif

extern char **environ;

/* ---- small N-API helpers ------------------------------------------------ */

#define CHECK(call)                                                              \
	do {                                                                     \
		if ((call) != napi_ok) {                                         \
			napi_throw_error(env, NULL, "napi call failed: " #call); \
			return NULL;                                             \
		}                                                                \
	} while (0)

/* An Error with this message and .errno = err. */
static napi_value error_with_errno(napi_env env, int err, const char *message)
{
	napi_value error, text, code;
	napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text);
	napi_create_error(env, NULL, text, &error);
	napi_create_int32(env, err, &code);
	napi_set_named_property(env, error, "errno", code);
	return error;
}

napi_value throw_with_errno(napi_env env, int err, const char *message)
{
	napi_throw(env, error_with_errno(env, err, message));
	return NULL;
}

/* Throw "what: strerror" carrying .errno and .syscall, like Node's own fs errors. */
static napi_value throw_errno(napi_env env, int err, const char *what)
{
	char msg[512];
	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_value error = error_with_errno(env, err, msg), syscall_name;
	napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &syscall_name);
	napi_set_named_property(env, error, "syscall", syscall_name);
	napi_throw(env, error);
	return NULL;
}

static int arg_int(napi_env env, napi_value v, int32_t *out)
{
	return napi_get_value_int32(env, v, out) == napi_ok ? 0 : -1;
}

static int arg_string(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;
	if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok)
		return -1;
	return len + 1 >= size ? -1 : 0; /* refuse silent truncation */
}

static napi_value make_int(napi_env env, int64_t v)
{
	napi_value out;
	napi_create_int64(env, v, &out);
	return out;
}

static napi_value make_bool(napi_env env, bool v)
{
	napi_value out;
	napi_get_boolean(env, v, &out);
	return out;
}

static napi_value make_undefined(napi_env env)
{
	napi_value out;
	napi_get_undefined(env, &out);
	return out;
}

#define GET_ARGS(n)                                                            \
	size_t argc = n;                                                       \
	napi_value args[n];                                                    \
	CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));           \
	if (argc < n) {                                                        \
		napi_throw_type_error(env, NULL, "expected " #n " arguments"); \
		return NULL;                                                   \
	}

/* ---- the helper, sealed in a memfd ------------------------------------ */

static int helper_memfd = -1;

/*
 * Copy the helper into a memfd once per process and seal it, so what the
 * container's processes run (and can see as /proc/<pid>/exe) can never be
 * written, from the host or from inside.
 */
static int sealed_helper(const char *path)
{
	if (helper_memfd >= 0)
		return helper_memfd;
	int src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -1;
	int mfd = memfd_create("tsrun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
	if (mfd < 0 && errno == EINVAL) /* kernels before 6.3 lack MFD_EXEC */
		mfd = memfd_create("tsrun-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		goto fail_src;
	char buf[65536];
	for (;;) {
		ssize_t n = read(src, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail_both;
		if (n == 0)
			break;
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(mfd, buf + off, n - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				goto fail_both;
			off += w;
		}
	}
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) < 0)
		goto fail_both;
	close(src);
	helper_memfd = mfd;
	return mfd;
fail_both:;
	int saved = errno;
	close(mfd);
	errno = saved;
fail_src:
	saved = errno;
	close(src);
	errno = saved;
	return -1;
}

/*
 * execRelease(helperPath, fifoFd, lockFd): become the sealed helper in its
 * release mode (init.c), which writes the exec fifo's byte and exits.  The
 * exec drops this process's memory (Node's or Bun's, some tens of MiB)
 * before the container is released, so an engine waiting for `start` sees
 * it end as the container's program begins, as runc's does, instead of
 * several ms later: containerd's shim only watches a container's cgroup for
 * OOM kills once `start` has returned.  lockFd (the container's flock) stays
 * open until the helper exits; so do stdio.  Returns only on failure.
 */
static napi_value exec_release(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	char helper_path[4096];
	int32_t fifo_fd, lock_fd;
	if (arg_string(env, args[0], helper_path, sizeof(helper_path)) || arg_int(env, args[1], &fifo_fd) ||
	    arg_int(env, args[2], &lock_fd) || fifo_fd < 3 || lock_fd < 3) {
		napi_throw_type_error(env, NULL, "execRelease(helperPath, fifoFd, lockFd)");
		return NULL;
	}
	int helper = sealed_helper(helper_path);
	if (helper < 0)
		return throw_errno(env, errno, "load tsrun-init helper");
	/* Node marks stdio close-on-exec too: keep stderr for the helper's one line if the write fails. */
	int keep[] = {0, 1, 2, fifo_fd, lock_fd};
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
		if (fcntl(keep[i], F_SETFD, 0) < 0 && errno != EBADF)
			return throw_errno(env, errno, "keep an fd across the exec");
	char a_fifo[16];
	snprintf(a_fifo, sizeof(a_fifo), "%d", fifo_fd);
	char *argv[] = {"tsrun-init", "release", a_fifo, NULL};
	char *envp[] = {NULL};
	syscall(SYS_execveat, helper, "", argv, envp, AT_EMPTY_PATH);
	int e = errno;
	fcntl(fifo_fd, F_SETFD, FD_CLOEXEC);
	fcntl(lock_fd, F_SETFD, FD_CLOEXEC);
	return throw_errno(env, e, "exec tsrun-init to release the container");
}

/* The plan travels in its own sealed memfd: no size limit, no parsing races. */
static int plan_memfd(const void *data, size_t len)
{
	int fd = memfd_create("tsrun-plan", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -1;
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(fd, (const char *)data + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			close(fd);
			return -1;
		}
		off += w;
	}
	fcntl(fd, F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE);
	return fd;
}

/*
 * Node ignores SIGPIPE/SIGXFSZ and may block signals: what it spawns
 * starts with every signal at its default and none blocked.
 */
void spawn_with_clean_signals(posix_spawnattr_t *attr)
{
	sigset_t all, none;
	sigfillset(&all);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(attr, &all);
	posix_spawnattr_setsigmask(attr, &none);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
}

/* A copy of fd at or above `floor`, so the dup2 plan below cannot collide. */
static int dup_above(int fd, int floor)
{
	return fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, floor);
}

/*
 * spawnInit(helperPath, plan: Buffer, fifoFd, consoleFd, rootfsFd, preserveFds, stdio)
 *   -> { pid, syncFd }
 *
 * The helper gets: fds 0-2 as they are (or stdio's three fds: a foreground
 * run's or exec's pipes), 3..3+preserveFds-1 as they are,
 * then sync, plan, fifo, console, the rootfs mount (a detached overlay the
 * container's init attaches; -1 for none) and its own memfd right after
 * them; nothing else.
 */
#define SPAWN_FDS 6
static napi_value spawn_init(napi_env env, napi_callback_info info)
{
	GET_ARGS(7);
	char helper_path[4096];
	int32_t fifo_fd, console_fd, rootfs_fd, preserve, stdio[3] = {0, 1, 2};
	napi_valuetype stdio_type;
	CHECK(napi_typeof(env, args[6], &stdio_type));
	if (stdio_type != napi_null && stdio_type != napi_undefined) {
		for (uint32_t i = 0; i < 3; i++) {
			napi_value v;
			if (napi_get_element(env, args[6], i, &v) != napi_ok || arg_int(env, v, &stdio[i]) ||
			    stdio[i] < 0) {
				napi_throw_type_error(env, NULL, "spawnInit: stdio must be three fds");
				return NULL;
			}
		}
	}
	void *plan;
	size_t plan_len;
	if (arg_string(env, args[0], helper_path, sizeof(helper_path)) ||
	    napi_get_buffer_info(env, args[1], &plan, &plan_len) != napi_ok ||
	    arg_int(env, args[2], &fifo_fd) || arg_int(env, args[3], &console_fd) ||
	    arg_int(env, args[4], &rootfs_fd) || arg_int(env, args[5], &preserve) || preserve < 0 ||
	    preserve > 10000) {
		napi_throw_type_error(
			env, NULL,
			"spawnInit(helperPath, plan, fifoFd, consoleFd, rootfsFd, preserveFds, stdio)");
		return NULL;
	}

	int helper = sealed_helper(helper_path);
	if (helper < 0)
		return throw_errno(env, errno, "load tsrun-init helper");

	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return throw_errno(env, errno, "socketpair");
	int pfd = plan_memfd(plan, plan_len);
	if (pfd < 0) {
		int e = errno;
		close(pair[0]);
		close(pair[1]);
		return throw_errno(env, e, "memfd for launch plan");
	}

	const int base = 3 + preserve;
	/* The helper's own memfd rides along last so the exec can find it
	 * after closefrom; the helper closes it first thing. */
	int targets[SPAWN_FDS], sources[SPAWN_FDS];
	for (int i = 0; i < SPAWN_FDS; i++)
		targets[i] = base + i;
	const int given[SPAWN_FDS] = {pair[1], pfd, fifo_fd, console_fd, rootfs_fd, helper};
	for (int i = 0; i < SPAWN_FDS; i++)
		sources[i] = dup_above(given[i], base + SPAWN_FDS);
	/* Above every target too, so no dup2 below can overwrite one first. */
	int stdio_sources[3];
	for (int i = 0; i < 3; i++)
		stdio_sources[i] = stdio[i] == i ? i : dup_above(stdio[i], base + SPAWN_FDS);
	for (int i = 0; i < 3; i++)
		if (stdio_sources[i] < 0) {
			/* Never our own fd in its place (the caller's terminal). */
			int e = errno;
			for (int j = 0; j < 3; j++)
				if (stdio_sources[j] >= 0 && stdio_sources[j] != j)
					close(stdio_sources[j]);
			for (int j = 0; j < SPAWN_FDS; j++)
				if (sources[j] >= 0)
					close(sources[j]);
			close(pfd);
			close(pair[0]);
			close(pair[1]);
			return throw_errno(env, e, "dup the process's stdio");
		}
	char a_sync[16], a_plan[16], a_fifo[16], a_console[16], a_rootfs[16], a_preserve[16], exe[64];
	snprintf(a_sync, sizeof(a_sync), "%d", targets[0]);
	snprintf(a_plan, sizeof(a_plan), "%d", targets[1]);
	snprintf(a_fifo, sizeof(a_fifo), "%d", fifo_fd >= 0 ? targets[2] : -1);
	snprintf(a_console, sizeof(a_console), "%d", console_fd >= 0 ? targets[3] : -1);
	snprintf(a_rootfs, sizeof(a_rootfs), "%d", rootfs_fd >= 0 ? targets[4] : -1);
	snprintf(a_preserve, sizeof(a_preserve), "%d", preserve);
	snprintf(exe, sizeof(exe), "/proc/self/fd/%d", targets[5]);
	char *argv[] = {"tsrun-init", a_sync, a_plan, a_fifo, a_console, a_rootfs, a_preserve, NULL};
	char *envp[] = {NULL}; /* nothing of ours leaks into the container */

	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	/* Node marks stdio and every inherited fd close-on-exec at start-up;
	 * dup2 onto itself clears the flag for stdio and the preserved fds. */
	for (int fd = 0; fd < base; fd++)
		posix_spawn_file_actions_adddup2(&fa, fd < 3 ? stdio_sources[fd] : fd, fd);
	for (int i = 0; i < SPAWN_FDS; i++)
		if (sources[i] >= 0)
			posix_spawn_file_actions_adddup2(&fa, sources[i], targets[i]);
	posix_spawn_file_actions_addclosefrom_np(&fa, base + SPAWN_FDS);
	spawn_with_clean_signals(&attr);

	pid_t pid;
	int rc = posix_spawn(&pid, exe, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	for (int i = 0; i < SPAWN_FDS; i++)
		if (sources[i] >= 0)
			close(sources[i]);
	for (int i = 0; i < 3; i++)
		if (stdio_sources[i] != i && stdio_sources[i] >= 0)
			close(stdio_sources[i]);
	close(pfd);
	close(pair[1]);
	if (rc != 0) {
		close(pair[0]);
		return throw_errno(env, rc, "spawn tsrun-init");
	}

	napi_value out;
	CHECK(napi_create_object(env, &out));
	CHECK(napi_set_named_property(env, out, "pid", make_int(env, pid)));
	CHECK(napi_set_named_property(env, out, "syncFd", make_int(env, pair[0])));
	return out;
}

/* ---- sync messages ------------------------------------------------------ */

/* sendMessage(fd, type, value, payload?: Buffer) */
static napi_value send_message(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value args[4];
	CHECK(napi_get_cb_info(env, info, &argc, args, NULL, NULL));
	int32_t fd, type, value;
	if (argc < 3 || arg_int(env, args[0], &fd) || arg_int(env, args[1], &type) ||
	    arg_int(env, args[2], &value)) {
		napi_throw_type_error(env, NULL, "sendMessage(fd, type, value, payload?)");
		return NULL;
	}
	void *payload = NULL;
	size_t len = 0;
	if (argc > 3) {
		bool is_buffer = false;
		napi_is_buffer(env, args[3], &is_buffer);
		if (is_buffer)
			CHECK(napi_get_buffer_info(env, args[3], &payload, &len));
	}
	if (sync_packet_send(fd, (unsigned)type, value, payload, len) < 0)
		return throw_errno(env, errno, "send sync message");
	return make_undefined(env);
}

/* poll(2) for input (or hang-up) on one fd, EINTR retried: 1, 0 on timeout, -1 with errno. */
static int poll_in(int fd, int timeout_ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, timeout_ms);
	while (rc < 0 && errno == EINTR);
	return rc;
}

/*
 * One packet of a SOCK_SEQPACKET socket and the fd that came with it
 * (SCM_RIGHTS, close-on-exec; -1 for none), waiting up to timeout_ms (-1:
 * for good).  Its length, 0 at the peer's end (with no fd); -1 with errno:
 * ETIMEDOUT when nothing came in time, EMSGSIZE for a packet longer than
 * `size` (its fd closed).  recvMessage's and criu.c's packetRecv's.
 */
ssize_t recv_packet(int fd, int timeout_ms, void *buf, size_t size, int *passed_fd)
{
	*passed_fd = -1;
	int rc = poll_in(fd, timeout_ms);
	if (rc <= 0) {
		if (rc == 0)
			errno = ETIMEDOUT;
		return -1;
	}
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {buf, size};
	struct msghdr mh = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(passed_fd, CMSG_DATA(cm), sizeof(int));
	if ((n == 0 || (mh.msg_flags & MSG_TRUNC)) && *passed_fd >= 0) {
		close(*passed_fd);
		*passed_fd = -1;
	}
	if (mh.msg_flags & MSG_TRUNC) {
		errno = EMSGSIZE;
		return -1;
	}
	return n;
}

/*
 * recvMessage(fd, timeoutMs) -> { type, value, payload: Buffer, fd? } | null (EOF)
 * `fd` is present when the message carried one (SCM_RIGHTS), e.g. the
 * seccomp listener.  Throws with errno ETIMEDOUT when nothing arrives in time.
 */
static napi_value recv_message(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t fd, timeout;
	if (arg_int(env, args[0], &fd) || arg_int(env, args[1], &timeout)) {
		napi_throw_type_error(env, NULL, "recvMessage(fd, timeoutMs)");
		return NULL;
	}
	char *buf = malloc(SYNC_MAX_PACKET);
	if (!buf)
		return throw_errno(env, ENOMEM, "receive sync message");
	int passed_fd;
	ssize_t n = recv_packet(fd, timeout, buf, SYNC_MAX_PACKET, &passed_fd);
	if (n < 0) {
		int e = errno;
		free(buf);
		return throw_errno(env, e,
				   e == ETIMEDOUT ? "wait for container init" : "receive sync message");
	}
	if (n == 0) {
		free(buf);
		napi_value null_value;
		napi_get_null(env, &null_value);
		return null_value;
	}
	struct sync_header h = {0};
	size_t len;
	if (sync_packet_parse(buf, n, &h, &len) < 0) {
		free(buf);
		if (passed_fd >= 0)
			close(passed_fd);
		return throw_errno(env, EPROTO, "receive sync message");
	}
	napi_value out, payload;
	void *dst;
	napi_create_buffer_copy(env, len, buf + sizeof(h), &dst, &payload);
	free(buf);
	CHECK(napi_create_object(env, &out));
	CHECK(napi_set_named_property(env, out, "type", make_int(env, h.type)));
	CHECK(napi_set_named_property(env, out, "value", make_int(env, h.value)));
	CHECK(napi_set_named_property(env, out, "payload", payload));
	if (passed_fd >= 0)
		CHECK(napi_set_named_property(env, out, "fd", make_int(env, passed_fd)));
	return out;
}

/* ---- processes ---------------------------------------------------------- */

static napi_value wait_result(napi_env env, int status)
{
	napi_value out, null_value;
	napi_get_null(env, &null_value);
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "code",
				WIFEXITED(status) ? make_int(env, WEXITSTATUS(status)) : null_value);
	napi_set_named_property(env, out, "signal",
				WIFSIGNALED(status) ? make_int(env, WTERMSIG(status)) : null_value);
	return out;
}

/* waitPid(pid, noHang) -> { code, signal } | null (still running, noHang) */
static napi_value wait_pid(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t pid;
	bool no_hang = false;
	if (arg_int(env, args[0], &pid))
		return throw_errno(env, EINVAL, "waitpid");
	napi_get_value_bool(env, args[1], &no_hang);
	int status = 0;
	pid_t rc;
	do
		rc = waitpid(pid, &status, no_hang ? WNOHANG : 0);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return throw_errno(env, errno, "waitpid");
	if (rc == 0) {
		napi_value null_value;
		napi_get_null(env, &null_value);
		return null_value;
	}
	return wait_result(env, status);
}

struct async_wait {
	napi_async_work work;
	napi_deferred deferred;
	pid_t pid;
	int status, err;
};

static void async_wait_execute(napi_env env, void *data)
{
	(void)env;
	struct async_wait *w = data;
	pid_t rc;
	do
		rc = waitpid(w->pid, &w->status, 0);
	while (rc < 0 && errno == EINTR);
	w->err = rc < 0 ? errno : 0;
}

static void async_wait_complete(napi_env env, napi_status status, void *data)
{
	(void)status;
	struct async_wait *w = data;
	if (w->err) {
		napi_value error, message, code;
		napi_create_string_utf8(env, strerror(w->err), NAPI_AUTO_LENGTH, &message);
		napi_create_error(env, NULL, message, &error);
		napi_create_int32(env, w->err, &code);
		napi_set_named_property(env, error, "errno", code);
		napi_reject_deferred(env, w->deferred, error);
	} else {
		napi_resolve_deferred(env, w->deferred, wait_result(env, w->status));
	}
	napi_delete_async_work(env, w->work);
	free(w);
}

/* A promise settled by `complete` once `execute` has run on a pool thread. */
static napi_value queue_work(napi_env env, const char *label, napi_async_execute_callback execute,
			     napi_async_complete_callback complete, void *data, napi_deferred *deferred,
			     napi_async_work *work)
{
	napi_value promise, name;
	CHECK(napi_create_promise(env, deferred, &promise));
	napi_create_string_utf8(env, label, NAPI_AUTO_LENGTH, &name);
	CHECK(napi_create_async_work(env, NULL, name, execute, complete, data, work));
	CHECK(napi_queue_async_work(env, *work));
	return promise;
}

/* waitPidAsync(pid) -> Promise<{ code, signal }>, waiting on a pool thread. */
static napi_value wait_pid_async(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t pid;
	if (arg_int(env, args[0], &pid))
		return throw_errno(env, EINVAL, "waitpid");
	struct async_wait *w = calloc(1, sizeof(*w));
	if (!w)
		return throw_errno(env, ENOMEM, "waitpid");
	w->pid = pid;
	return queue_work(env, "tsrun.waitpid", async_wait_execute, async_wait_complete, w, &w->deferred,
			  &w->work);
}

/*
 * copyStdio(stdinWrite, stdoutRead, stderrRead, stopRead, drainOnStop) -> Promise<void>:
 * a foreground run's or exec's pipes (src/lib/stdio-pipes.ts), copied on a
 * pool thread from before the process exists: our fd 0 into the process's
 * stdin, its stdout and stderr out to our 1 and 2.  It ends once both
 * outputs are at EOF (every writer gone) and either the process's stdin
 * is closed (our EOF, or no reader left) or we are told to stop (stopRead
 * at EOF: the process has exited), as runc's copies end; the four pipe
 * ends are closed by then.  The process's stdin is kept non-blocking, so
 * one that never reads it cannot stall its output; an output we cannot
 * write (EPIPE) is closed, so the process's next write to it fails.
 * stderrRead may be -1 (a pty has one output).  drainOnStop (a pty): once
 * told to stop, what the outputs hold is copied and the copy ends, as
 * runc's console copy ends when it shuts the console.
 */
struct stdio_copy {
	napi_async_work work;
	napi_deferred deferred;
	int in_w, out_r, err_r, stop_r;
	bool drain_on_stop; /* a pty: once told to stop, take what is there and end (a daemon may hold it) */
	char in_buf[65536], out_buf[65536];
};

/*
 * A write to a pipe whose reader is gone raises SIGPIPE at the writing
 * thread.  Node would take it as a signal to the process (run forwards
 * SIGPIPE to the container, and once it stops listening the default
 * action would kill tsrun), so the copying thread blocks it and takes
 * each one back (sigtimedwait) after a failed write.
 */
static void take_sigpipe(void)
{
	sigset_t pipe_set;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	struct timespec now = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &now) == SIGPIPE)
		;
}

/* All of buf to fd, waiting for room when it is non-blocking; false once it takes no more. */
static bool write_fully(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n > 0) {
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, -1);
			continue;
		}
		take_sigpipe();
		return false;
	}
	return true;
}

static void stdio_copy_execute(napi_env env, void *data)
{
	(void)env;
	struct stdio_copy *c = data;
	size_t in_len = 0, in_off = 0;
	bool stdin_open = true, stopped = false;
	int outs[2] = {c->out_r, c->err_r};
	sigset_t pipe_set, old_mask;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
	fcntl(c->in_w, F_SETFL, fcntl(c->in_w, F_GETFL) | O_NONBLOCK);
	while (outs[0] >= 0 || outs[1] >= 0 || (c->in_w >= 0 && !stopped)) {
		struct pollfd p[5];
		int n = 0, in_at = -1, stdin_at = -1, stop_at = -1, out_at[2] = {-1, -1};
		for (int i = 0; i < 2; i++)
			if (outs[i] >= 0) {
				out_at[i] = n;
				p[n++] = (struct pollfd){.fd = outs[i], .events = POLLIN};
			}
		if (c->in_w >= 0) {
			/* POLLERR with no events asked: no reader is left. */
			in_at = n;
			p[n++] = (struct pollfd){.fd = c->in_w, .events = in_len > in_off ? POLLOUT : 0};
			if (in_len <= in_off && stdin_open) {
				stdin_at = n;
				p[n++] = (struct pollfd){.fd = 0, .events = POLLIN};
			}
		}
		if (!stopped) {
			stop_at = n;
			p[n++] = (struct pollfd){.fd = c->stop_r, .events = POLLIN};
		}
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (stop_at >= 0 && p[stop_at].revents) {
			stopped = true;
			if (c->drain_on_stop) {
				for (int i = 0; i < 2; i++) {
					if (outs[i] < 0)
						continue;
					fcntl(outs[i], F_SETFL, fcntl(outs[i], F_GETFL) | O_NONBLOCK);
					ssize_t got;
					while ((got = read(outs[i], c->out_buf, sizeof(c->out_buf))) > 0 &&
					       write_fully(i + 1, c->out_buf, got))
						;
					close(outs[i]);
					outs[i] = -1;
				}
				break;
			}
		}
		for (int i = 0; i < 2; i++) {
			if (out_at[i] < 0 || !p[out_at[i]].revents)
				continue;
			ssize_t got = read(outs[i], c->out_buf, sizeof(c->out_buf));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			/* EOF; or ours takes no more (a reader gone): close it, so the
			 * process's next write fails (SIGPIPE), as with runc. */
			if (got <= 0 || !write_fully(i + 1, c->out_buf, got)) {
				close(outs[i]);
				outs[i] = -1;
			}
		}
		if (c->in_w < 0)
			continue;
		if (stdin_at >= 0 && p[stdin_at].revents) {
			ssize_t got = read(0, c->in_buf, sizeof(c->in_buf));
			if (got > 0) {
				in_len = got;
				in_off = 0;
			} else if (!(got < 0 && (errno == EINTR || errno == EAGAIN))) {
				stdin_open =
					false; /* our EOF: the process sees it once its stdin is closed */
				close(c->in_w);
				c->in_w = -1;
				continue;
			}
		}
		if (in_len > in_off) {
			ssize_t put = write(c->in_w, c->in_buf + in_off, in_len - in_off);
			if (put > 0)
				in_off += put;
			else if (put < 0 && errno != EAGAIN && errno != EINTR)
				p[in_at].revents |= POLLERR;
		}
		if (p[in_at].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			take_sigpipe();
			close(c->in_w); /* no reader left: what is left of our stdin stays unread */
			c->in_w = -1;
		}
	}
	if (c->in_w >= 0)
		close(c->in_w);
	for (int i = 0; i < 2; i++)
		if (outs[i] >= 0)
			close(outs[i]);
	close(c->stop_r);
	take_sigpipe();
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
}

static void stdio_copy_complete(napi_env env, napi_status status, void *data)
{
	(void)status;
	struct stdio_copy *c = data;
	napi_value undefined;
	napi_get_undefined(env, &undefined);
	napi_resolve_deferred(env, c->deferred, undefined);
	napi_delete_async_work(env, c->work);
	free(c);
}

static napi_value copy_stdio(napi_env env, napi_callback_info info)
{
	GET_ARGS(5);
	struct stdio_copy *c = calloc(1, sizeof(*c));
	if (!c)
		return throw_errno(env, ENOMEM, "copyStdio");
	if (arg_int(env, args[0], &c->in_w) || arg_int(env, args[1], &c->out_r) ||
	    arg_int(env, args[2], &c->err_r) || arg_int(env, args[3], &c->stop_r) ||
	    napi_get_value_bool(env, args[4], &c->drain_on_stop) != napi_ok) {
		free(c);
		return throw_errno(env, EINVAL, "copyStdio");
	}
	return queue_work(env, "tsrun.stdio", stdio_copy_execute, stdio_copy_complete, c, &c->deferred,
			  &c->work);
}

/*
 * waitExit(pid, timeoutMs) -> true once the process has exited (zombie or
 * gone), false on timeout.  Works for processes that are not our children.
 */
static napi_value wait_exit(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t pid, timeout;
	if (arg_int(env, args[0], &pid) || arg_int(env, args[1], &timeout))
		return throw_errno(env, EINVAL, "pidfd_open");
	napi_value result;
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		if (errno == ESRCH) {
			napi_get_boolean(env, true, &result);
			return result;
		}
		return throw_errno(env, errno, "pidfd_open");
	}
	struct pollfd p = {.fd = pidfd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, timeout);
	while (rc < 0 && errno == EINTR);
	close(pidfd);
	napi_get_boolean(env, rc > 0, &result);
	return result;
}

/* setSubreaper(): orphaned container processes are reparented to us. */
static napi_value set_subreaper(napi_env env, napi_callback_info info)
{
	(void)info;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return throw_errno(env, errno, "prctl(PR_SET_CHILD_SUBREAPER)");
	return make_undefined(env);
}

/* ---- files and sockets -------------------------------------------------- */

static napi_value do_mkfifo(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char path[4096];
	int32_t mode;
	if (arg_string(env, args[0], path, sizeof(path)) || arg_int(env, args[1], &mode))
		return throw_errno(env, EINVAL, "mkfifo");
	if (mkfifo(path, mode) < 0)
		return throw_errno(env, errno, "mkfifo");
	return make_undefined(env);
}

/* flock(fd, exclusive, wait) -> true if taken (false only when !wait). */
static napi_value do_flock(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	int32_t fd;
	bool exclusive = true, wait = true;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "flock");
	napi_get_value_bool(env, args[1], &exclusive);
	napi_get_value_bool(env, args[2], &wait);
	int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
	int rc;
	do
		rc = flock(fd, op);
	while (rc < 0 && errno == EINTR);
	napi_value result;
	if (rc < 0 && errno == EWOULDBLOCK && !wait) {
		napi_get_boolean(env, false, &result);
		return result;
	}
	if (rc < 0)
		return throw_errno(env, errno, "flock");
	napi_get_boolean(env, true, &result);
	return result;
}

static int unix_address(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(sa->sun_path, path);
	return 0;
}

/* connectUnix(path) -> fd of a connected SOCK_STREAM socket (close-on-exec). */
static napi_value connect_unix(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	char path[4096];
	struct sockaddr_un sa;
	if (arg_string(env, args[0], path, sizeof(path)) || unix_address(path, &sa) < 0)
		return throw_errno(env, ENAMETOOLONG, "connect");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return throw_errno(env, errno, "socket");
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, "connect");
	}
	return make_int(env, fd);
}

/*
 * waitReadable(fd, timeoutMs) -> whether fd has something to read (or its
 * peer hung up) within the time: the D-Bus client's bounded wait before a
 * blocking read (src/lib/dbus/client.ts).
 */
static napi_value wait_readable(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t fd, timeout;
	if (arg_int(env, args[0], &fd) || arg_int(env, args[1], &timeout)) {
		napi_throw_type_error(env, NULL, "waitReadable(fd, timeoutMs)");
		return NULL;
	}
	int rc = poll_in(fd, timeout);
	if (rc < 0)
		return throw_errno(env, errno, "poll");
	napi_value out;
	napi_get_boolean(env, rc > 0, &out);
	return out;
}

/*
 * unreadByPeer(fd) -> how many bytes written to the stream socket fd its
 * peer has not read yet (SIOCOUTQ; a unix socket's data stays charged to
 * the sender until the reader has taken it).  The D-Bus client waits for
 * 0 after BEGIN (src/lib/dbus/client.ts says why).
 */
static napi_value unread_by_peer(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	if (arg_int(env, args[0], &fd)) {
		napi_throw_type_error(env, NULL, "unreadByPeer(fd)");
		return NULL;
	}
	int queued = 0;
	if (ioctl(fd, SIOCOUTQ, &queued) < 0)
		return throw_errno(env, errno, "ioctl SIOCOUTQ");
	return make_int(env, queued);
}

/* listenUnix(path) -> fd of a listening SOCK_STREAM socket. */
static napi_value listen_unix(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	char path[4096];
	struct sockaddr_un sa;
	if (arg_string(env, args[0], path, sizeof(path)) || unix_address(path, &sa) < 0)
		return throw_errno(env, ENAMETOOLONG, "bind");
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return throw_errno(env, errno, "socket");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		int e = errno;
		close(fd);
		return throw_errno(env, e, "bind");
	}
	return make_int(env, fd);
}

/* acceptUnix(fd, timeoutMs) -> fd of the accepted connection. */
static napi_value accept_unix(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t fd, timeout;
	if (arg_int(env, args[0], &fd) || arg_int(env, args[1], &timeout))
		return throw_errno(env, EINVAL, "accept");
	struct pollfd p = {.fd = fd, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, timeout);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return throw_errno(env, rc == 0 ? ETIMEDOUT : errno, "accept");
	int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
	if (conn < 0)
		return throw_errno(env, errno, "accept");
	return make_int(env, conn);
}

/*
 * One message with an fd (SCM_RIGHTS) from sock, waiting up to timeout ms:
 * the fd, and the bytes that came with it in `data` (a console socket's
 * sender names the pty there: runc sends "/dev/ptmx").  0 or an errno.
 */
static int recv_fd_message(int sock, int timeout, int *fd, char *data, size_t size, size_t *len)
{
	struct pollfd p = {.fd = sock, .events = POLLIN};
	int rc;
	do
		rc = poll(&p, 1, timeout);
	while (rc < 0 && errno == EINTR);
	if (rc <= 0)
		return rc == 0 ? ETIMEDOUT : errno;
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {data, size};
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_type != SCM_RIGHTS)
		return EBADMSG;
	memcpy(fd, CMSG_DATA(cm), sizeof(int));
	*len = n;
	return 0;
}

/* The (sock, timeoutMs) arguments of recvFd and recvFdNamed, and the message; NULL after a throw. */
static bool recv_fd_args(napi_env env, napi_callback_info info, int *fd, char *data, size_t size, size_t *len)
{
	size_t argc = 2;
	napi_value args[2];
	int32_t sock, timeout;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 2 || arg_int(env, args[0], &sock) || arg_int(env, args[1], &timeout)) {
		throw_errno(env, EINVAL, "recvmsg");
		return false;
	}
	int err = recv_fd_message(sock, timeout, fd, data, size, len);
	if (err) {
		throw_errno(env, err, "recvmsg");
		return false;
	}
	return true;
}

/* recvFd(sock, timeoutMs) -> the fd received with SCM_RIGHTS. */
static napi_value recv_fd(napi_env env, napi_callback_info info)
{
	char data[256];
	size_t len;
	int fd;
	return recv_fd_args(env, info, &fd, data, sizeof(data), &len) ? make_int(env, fd) : NULL;
}

/* recvFdNamed(sock, timeoutMs) -> { fd, name }: the fd and the text sent with it. */
static napi_value recv_fd_named(napi_env env, napi_callback_info info)
{
	char data[256];
	size_t len;
	int fd;
	if (!recv_fd_args(env, info, &fd, data, sizeof(data), &len))
		return NULL;
	napi_value out, name;
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "fd", make_int(env, fd));
	napi_create_string_latin1(env, data, len, &name);
	napi_set_named_property(env, out, "name", name);
	return out;
}

/*
 * sendFd(sock, fd, payload: Buffer): one sendmsg carrying the payload and
 * the fd (SCM_RIGHTS), as the seccomp listener protocol wants; the whole
 * payload is written, the fd only with the first part.
 */
static napi_value send_fd(napi_env env, napi_callback_info info)
{
	GET_ARGS(3);
	int32_t sock, fd;
	void *data;
	size_t len;
	if (arg_int(env, args[0], &sock) || arg_int(env, args[1], &fd) ||
	    napi_get_buffer_info(env, args[2], &data, &len) != napi_ok || len == 0)
		return throw_errno(env, EINVAL, "sendmsg");
	char cbuf[CMSG_SPACE(sizeof(int))];
	memset(cbuf, 0, sizeof(cbuf));
	size_t off = 0;
	while (off < len) {
		struct iovec iov = {(char *)data + off, len - off};
		struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
		if (off == 0) {
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
			cm->cmsg_level = SOL_SOCKET;
			cm->cmsg_type = SCM_RIGHTS;
			cm->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(cm), &fd, sizeof(int));
		}
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return throw_errno(env, errno, "sendmsg");
		off += n;
	}
	return make_undefined(env);
}

/* prlimit(pid, resource, soft: bigint, hard: bigint): set another process's limit. */
static napi_value do_prlimit(napi_env env, napi_callback_info info)
{
	GET_ARGS(4);
	int32_t pid, resource;
	uint64_t soft, hard;
	bool lossless;
	if (arg_int(env, args[0], &pid) || arg_int(env, args[1], &resource) ||
	    napi_get_value_bigint_uint64(env, args[2], &soft, &lossless) != napi_ok ||
	    napi_get_value_bigint_uint64(env, args[3], &hard, &lossless) != napi_ok)
		return throw_errno(env, EINVAL, "prlimit");
	struct rlimit rl = {soft, hard};
	if (prlimit(pid, resource, &rl, NULL) < 0)
		return throw_errno(env, errno, "prlimit");
	return make_undefined(env);
}

/* ---- cgroup v2 device filter ------------------------------------------- */

#define BPF_PROG_LOAD_CMD	     5
#define BPF_PROG_ATTACH_CMD	     8
#define BPF_PROG_DETACH_CMD	     9
#define BPF_PROG_GET_FD_BY_ID_CMD    13
#define BPF_PROG_QUERY_CMD	     16
#define BPF_PROG_TYPE_CGROUP_DEVICE_ 15
#define BPF_CGROUP_DEVICE_	     6
#define BPF_F_ALLOW_MULTI_	     2

static long bpf_call(int cmd, void *attr, unsigned size)
{
	return syscall(SYS_bpf, cmd, attr, size);
}

/*
 * attachDeviceProgram(cgroupDir, insns: Buffer): load the program compiled
 * by src/lib/cgroup/devices-bpf.ts, attach it to the cgroup, then detach
 * the programs that were there before (new first: no unfiltered window).
 */
static napi_value attach_device_program(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char dir[4096];
	void *insns;
	size_t len;
	if (arg_string(env, args[0], dir, sizeof(dir)) ||
	    napi_get_buffer_info(env, args[1], &insns, &len) != napi_ok || len % 8)
		return throw_errno(env, EINVAL, "attachDeviceProgram");
	int cg = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0)
		return throw_errno(env, errno, "open cgroup");

	/* What is attached now, to detach once ours is in place. */
	uint32_t old_ids[64];
	uint32_t old_count = 0;
	unsigned char query[64] = {0};
	uint64_t ids_ptr = (uint64_t)(uintptr_t)old_ids;
	uint32_t cnt = 64, type = BPF_CGROUP_DEVICE_;
	memcpy(query + 0, &cg, 4);
	memcpy(query + 4, &type, 4);
	memcpy(query + 16, &ids_ptr, 8);
	memcpy(query + 24, &cnt, 4);
	if (bpf_call(BPF_PROG_QUERY_CMD, query, sizeof(query)) == 0)
		memcpy(&old_count, query + 24, 4);

	static char log[65536];
	log[0] = 0;
	const char *license = "Apache-2.0";
	unsigned char load[128] = {0};
	uint32_t prog_type = BPF_PROG_TYPE_CGROUP_DEVICE_, insn_cnt = len / 8, log_level = 1,
		 log_size = sizeof(log);
	uint64_t insns_ptr = (uint64_t)(uintptr_t)insns, license_ptr = (uint64_t)(uintptr_t)license,
		 log_ptr = (uint64_t)(uintptr_t)log;
	memcpy(load + 0, &prog_type, 4);
	memcpy(load + 4, &insn_cnt, 4);
	memcpy(load + 8, &insns_ptr, 8);
	memcpy(load + 16, &license_ptr, 8);
	memcpy(load + 24, &log_level, 4);
	memcpy(load + 28, &log_size, 4);
	memcpy(load + 32, &log_ptr, 8);
	int prog = bpf_call(BPF_PROG_LOAD_CMD, load, sizeof(load));
	if (prog < 0) {
		int e = errno;
		close(cg);
		char what[512];
		snprintf(what, sizeof(what), "bpf(BPF_PROG_LOAD) %.400s", log);
		return throw_errno(env, e, what);
	}
	unsigned char attach[32] = {0};
	uint32_t flags = BPF_F_ALLOW_MULTI_;
	memcpy(attach + 0, &cg, 4);
	memcpy(attach + 4, &prog, 4);
	memcpy(attach + 8, &type, 4);
	memcpy(attach + 12, &flags, 4);
	if (bpf_call(BPF_PROG_ATTACH_CMD, attach, sizeof(attach)) < 0) {
		int e = errno;
		close(prog);
		close(cg);
		return throw_errno(env, e, "bpf(BPF_PROG_ATTACH)");
	}
	close(prog); /* the attachment keeps it alive */
	for (uint32_t i = 0; i < old_count && i < 64; i++) {
		unsigned char get[16] = {0};
		memcpy(get, &old_ids[i], 4);
		int old = bpf_call(BPF_PROG_GET_FD_BY_ID_CMD, get, sizeof(get));
		if (old < 0)
			continue;
		unsigned char detach[32] = {0};
		memcpy(detach + 0, &cg, 4);
		memcpy(detach + 4, &old, 4);
		memcpy(detach + 8, &type, 4);
		bpf_call(BPF_PROG_DETACH_CMD, detach, sizeof(detach));
		close(old);
	}
	close(cg);
	return make_undefined(env);
}

/* copyWinsize(from, to) -> whether `from` is a terminal whose size `to` (a pty) now has. */
static napi_value copy_winsize(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t from, to;
	if (arg_int(env, args[0], &from) || arg_int(env, args[1], &to))
		return throw_errno(env, EINVAL, "ioctl(TIOCGWINSZ)");
	struct winsize ws;
	bool copied = ioctl(from, TIOCGWINSZ, &ws) == 0 && ioctl(to, TIOCSWINSZ, &ws) == 0;
	return make_bool(env, copied);
}

/*
 * terminalSize(fd) -> [columns, rows] of the terminal at fd, [0, 0] when fd
 * is none (the import progress and the pull display fit it).
 */
static napi_value terminal_size(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "ioctl(TIOCGWINSZ)");
	struct winsize ws = {0};
	if (ioctl(fd, TIOCGWINSZ, &ws) != 0)
		ws.ws_col = ws.ws_row = 0;
	napi_value out;
	CHECK(napi_create_array_with_length(env, 2, &out));
	CHECK(napi_set_element(env, out, 0, make_int(env, ws.ws_col)));
	CHECK(napi_set_element(env, out, 1, make_int(env, ws.ws_row)));
	return out;
}

/*
 * setRaw(fd) -> the terminal's settings before (a Buffer), or null when fd
 * is no terminal; restoreTerminal(fd, settings).  The foreground terminal
 * goes raw while a container's pty is attached, as runc's does.
 */
static napi_value set_raw(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	struct termios before, raw;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "tcgetattr");
	if (tcgetattr(fd, &before) < 0) {
		napi_value null_value;
		napi_get_null(env, &null_value);
		return null_value;
	}
	/* Input raw, output still processed ("\n" shown as "\r\n" on our
	 * side, the container's pty having ONLCR cleared): as runc's host
	 * console, and libuv's raw mode that tsrun used on Node. */
	raw = before;
	raw.c_iflag &= ~(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
	raw.c_oflag |= ONLCR;
	raw.c_cflag |= CS8;
	raw.c_lflag &= ~(ECHO | ICANON | IEXTEN | ISIG);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &raw) < 0)
		return throw_errno(env, errno, "tcsetattr");
	napi_value out;
	void *data;
	CHECK(napi_create_buffer_copy(env, sizeof(before), &before, &data, &out));
	return out;
}

static napi_value restore_terminal(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	int32_t fd;
	void *data;
	size_t len;
	if (arg_int(env, args[0], &fd) || napi_get_buffer_info(env, args[1], &data, &len) != napi_ok ||
	    len != sizeof(struct termios))
		return throw_errno(env, EINVAL, "tcsetattr");
	if (tcsetattr(fd, TCSANOW, (struct termios *)data) < 0)
		return throw_errno(env, errno, "tcsetattr");
	return make_undefined(env);
}

/* dup(fd) -> a new fd for the same file, close-on-exec. */
static napi_value do_dup(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "dup");
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return throw_errno(env, errno, "dup");
	return make_int(env, copy);
}

/*
 * clearOnlcr(fd): the pty stops turning "\n" into "\r\n".  For tsrun's own
 * foreground terminal only, as runc's recvtty does: our terminal already
 * does that, and two would print "\r\r\n".  An engine's pty is left as
 * the kernel made it.
 */
static napi_value clear_onlcr(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	struct termios tio;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "tcgetattr");
	if (tcgetattr(fd, &tio) < 0)
		return throw_errno(env, errno, "tcgetattr");
	tio.c_oflag &= ~ONLCR;
	if (tcsetattr(fd, TCSANOW, &tio) < 0)
		return throw_errno(env, errno, "tcsetattr");
	return make_undefined(env);
}

/*
 * detachMount(path) -> whether a mount was there: umount2(MNT_DETACH),
 * never through a final symlink.  delete uses it for a container without
 * a mount namespace of its own, whose mounts tsrun made in the host's.
 */
static napi_value detach_mount(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	char target[PATH_MAX];
	if (arg_string(env, args[0], target, sizeof(target)))
		return throw_errno(env, EINVAL, "umount2");
	if (umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return make_bool(env, true);
	if (errno == EINVAL || errno == ENOENT)
		return make_bool(env, false);
	return throw_errno(env, errno, "umount2");
}

/* pipe() -> [readFd, writeFd], both close-on-exec. */
static napi_value make_pipe(napi_env env, napi_callback_info info)
{
	(void)info;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return throw_errno(env, errno, "pipe");
	napi_value out;
	CHECK(napi_create_array_with_length(env, 2, &out));
	CHECK(napi_set_element(env, out, 0, make_int(env, fds[0])));
	CHECK(napi_set_element(env, out, 1, make_int(env, fds[1])));
	return out;
}

#ifndef STATX_MNT_ID_UNIQUE
#define STATX_MNT_ID_UNIQUE 0x00004000U
#endif

/*
 * mountId(path, unique) -> the id of the mount `path` resolves to,
 * following symlinks and magic links: /proc/PID/root gives the mount a
 * process is chrooted into, even when something was mounted over it.
 * unique false: the id mountinfo shows (reused once the mount is gone);
 * true: the 64-bit id never reused (Linux 6.8+), or null without one.
 */
static napi_value mount_id(napi_env env, napi_callback_info info)
{
	GET_ARGS(2);
	char target[PATH_MAX];
	bool unique = false;
	if (arg_string(env, args[0], target, sizeof(target)) ||
	    napi_get_value_bool(env, args[1], &unique) != napi_ok)
		return throw_errno(env, EINVAL, "statx");
	unsigned mask = unique ? STATX_MNT_ID_UNIQUE : STATX_MNT_ID;
	struct statx stx;
	if (statx(AT_FDCWD, target, AT_STATX_DONT_SYNC, mask, &stx) < 0)
		return throw_errno(env, errno, "statx");
	if (!(stx.stx_mask & mask)) {
		if (!unique)
			return throw_errno(env, ENOSYS, "statx");
		napi_value null_value;
		napi_get_null(env, &null_value);
		return null_value;
	}
	return make_int(env, (int64_t)stx.stx_mnt_id);
}

static napi_value close_fd(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t fd;
	if (arg_int(env, args[0], &fd))
		return throw_errno(env, EINVAL, "close");
	close(fd);
	return make_undefined(env);
}

static napi_value do_strerror(napi_env env, napi_callback_info info)
{
	GET_ARGS(1);
	int32_t err;
	if (arg_int(env, args[0], &err))
		return throw_errno(env, EINVAL, "strerror");
	napi_value out;
	CHECK(napi_create_string_utf8(env, strerror(err), NAPI_AUTO_LENGTH, &out));
	return out;
}

/* ---- module ------------------------------------------------------------- */

static napi_value init_module(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("spawnInit", spawn_init),
		METHOD("execRelease", exec_release),
		METHOD("sendMessage", send_message),
		METHOD("recvMessage", recv_message),
		METHOD("waitPid", wait_pid),
		METHOD("waitPidAsync", wait_pid_async),
		METHOD("waitExit", wait_exit),
		METHOD("setSubreaper", set_subreaper),
		METHOD("mkfifo", do_mkfifo),
		METHOD("flock", do_flock),
		METHOD("connectUnix", connect_unix),
		METHOD("waitReadable", wait_readable),
		METHOD("unreadByPeer", unread_by_peer),
		METHOD("listenUnix", listen_unix),
		METHOD("acceptUnix", accept_unix),
		METHOD("recvFd", recv_fd),
		METHOD("recvFdNamed", recv_fd_named),
		METHOD("clearOnlcr", clear_onlcr),
		METHOD("detachMount", detach_mount),
		METHOD("mountId", mount_id),
		METHOD("pipe", make_pipe),
		METHOD("copyStdio", copy_stdio),
		METHOD("sendFd", send_fd),
		METHOD("prlimit", do_prlimit),
		METHOD("attachDeviceProgram", attach_device_program),
		METHOD("copyWinsize", copy_winsize),
		METHOD("terminalSize", terminal_size),
		METHOD("setRaw", set_raw),
		METHOD("restoreTerminal", restore_terminal),
		METHOD("dup", do_dup),
		METHOD("close", close_fd),
		METHOD("strerror", do_strerror),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
	seccomp_register(env, exports);
	layer_register(env, exports);
	overlay_register(env, exports);
	remove_register(env, exports);
	netdev_register(env, exports);
	criu_register(env, exports);
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
