/*
 * CRIU's service mode, as checkpoint and restore drive it (src/lib/criu/).
 *
 *   spawnCriu(path, argv, stdio, extra) -> { pid, sock }
 *   packetSend(sock, data)
 *   packetRecv(sock, timeoutMs) -> { data, fd? } | null
 *   bindMount(source, target)
 *   makeMountPoint(rootfs, rel, isFile)
 *   resolveInRoot(rootfs, rel) -> string | null
 *
 * `criu swrk 3` takes requests over a SOCK_SEQPACKET socket at its fd 3,
 * one protobuf message per packet, no framing of ours.  The socketpair is
 * made here so CRIU's peer (SO_PEERCRED) is this process: CRIU opens the
 * images and work directories a request names as /proc/<our pid>/fd/N.
 * CRIU's fds 4.. are `extra` (a namespace it joins by inherit_fd), its
 * stdio the restored tree's (the pipes a foreground restore reads).
 * Node ignores SIGPIPE and may block signals: CRIU starts with defaults,
 * as the container's init does (addon.c, spawnInit).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"
#include "in-root.h"

extern char **environ;

#define MAX_ARGS  16
#define MAX_EXTRA 8
/* runc reads CRIU's answers into 40 KiB; a criu_resp is a few hundred bytes. */
#define MAX_PACKET (64 * 1024)

static int get_int(napi_env env, napi_value v, int32_t *out)
{
	return napi_get_value_int32(env, v, out) != napi_ok;
}

static int get_length(napi_env env, napi_value v, uint32_t *out)
{
	bool is_array = false;
	return napi_is_array(env, v, &is_array) != napi_ok || !is_array ||
	       napi_get_array_length(env, v, out) != napi_ok;
}

/* A string argument (a path, an argv word), refused when it does not fit. */
static int get_path(napi_env env, napi_value v, char *buf, size_t size)
{
	size_t len;
	return napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok || len >= size - 1;
}

static napi_value type_error(napi_env env, const char *usage)
{
	napi_throw_type_error(env, NULL, usage);
	return NULL;
}

static napi_value spawn_criu(napi_env env, napi_callback_info info)
{
	static const char usage[] =
		"spawnCriu(path, argv: string[], stdio: [fd, fd, fd] | null, extra: fd[])";
	size_t argc = 4;
	napi_value args[4];
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 4)
		return type_error(env, usage);
	char path[4096];
	if (get_path(env, args[0], path, sizeof(path)))
		return type_error(env, usage);
	uint32_t nargs, nextra;
	if (get_length(env, args[1], &nargs) || nargs == 0 || nargs > MAX_ARGS ||
	    get_length(env, args[3], &nextra) || nextra > MAX_EXTRA)
		return type_error(env, usage);
	static char argbuf[MAX_ARGS][1024];
	char *argv[MAX_ARGS + 1] = {0};
	for (uint32_t i = 0; i < nargs; i++) {
		napi_value v;
		if (napi_get_element(env, args[1], i, &v) != napi_ok ||
		    get_path(env, v, argbuf[i], sizeof(argbuf[i])))
			return type_error(env, usage);
		argv[i] = argbuf[i];
	}
	int32_t stdio[3] = {0, 1, 2};
	napi_valuetype t;
	if (napi_typeof(env, args[2], &t) != napi_ok)
		return type_error(env, usage);
	if (t != napi_null && t != napi_undefined)
		for (uint32_t i = 0; i < 3; i++) {
			napi_value v;
			if (napi_get_element(env, args[2], i, &v) != napi_ok || get_int(env, v, &stdio[i]) ||
			    stdio[i] < 0)
				return type_error(env, usage);
		}
	int32_t extra[MAX_EXTRA];
	for (uint32_t i = 0; i < nextra; i++) {
		napi_value v;
		if (napi_get_element(env, args[3], i, &v) != napi_ok || get_int(env, v, &extra[i]) ||
		    extra[i] < 0)
			return type_error(env, usage);
	}

	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return throw_with_errno(env, errno, "socketpair for criu");
	/* Every source moved above every target first, so no dup2 overwrites one still to be copied. */
	const int floor = 4 + MAX_EXTRA;
	int sources[4 + MAX_EXTRA];
	int count = 4 + (int)nextra;
	int ok = 1;
	for (int i = 0; i < count; i++) {
		int given = i < 3 ? stdio[i] : i == 3 ? pair[1] : extra[i - 4];
		sources[i] = fcntl(given, F_DUPFD_CLOEXEC, floor);
		if (sources[i] < 0)
			ok = 0;
	}
	int rc = 0;
	pid_t pid = -1;
	if (ok) {
		posix_spawn_file_actions_t fa;
		posix_spawnattr_t attr;
		posix_spawn_file_actions_init(&fa);
		posix_spawnattr_init(&attr);
		for (int i = 0; i < count; i++)
			posix_spawn_file_actions_adddup2(&fa, sources[i], i);
		posix_spawn_file_actions_addclosefrom_np(&fa, count);
		spawn_with_clean_signals(&attr);
		rc = posix_spawn(&pid, path, &fa, &attr, argv, environ);
		posix_spawn_file_actions_destroy(&fa);
		posix_spawnattr_destroy(&attr);
	} else {
		rc = errno;
	}
	for (int i = 0; i < count; i++)
		if (sources[i] >= 0)
			close(sources[i]);
	close(pair[1]);
	if (rc != 0) {
		close(pair[0]);
		return throw_with_errno(env, rc, ok ? "spawn criu" : "dup an fd for criu");
	}
	napi_value out, v;
	napi_create_object(env, &out);
	napi_create_int32(env, pid, &v);
	napi_set_named_property(env, out, "pid", v);
	napi_create_int32(env, pair[0], &v);
	napi_set_named_property(env, out, "sock", v);
	return out;
}

static napi_value packet_send(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2];
	int32_t fd;
	void *data;
	size_t len;
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 ||
	    get_int(env, args[0], &fd) || napi_get_buffer_info(env, args[1], &data, &len) != napi_ok)
		return type_error(env, "packetSend(sock, data: Buffer)");
	ssize_t n;
	do
		n = send(fd, data, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return throw_with_errno(env, errno, "send to criu");
	napi_value undefined;
	napi_get_undefined(env, &undefined);
	return undefined;
}

/* null at EOF (CRIU exited); throws with errno ETIMEDOUT when nothing came in time (timeoutMs -1: wait). */
static napi_value packet_recv(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2];
	int32_t fd, timeout;
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 ||
	    get_int(env, args[0], &fd) || get_int(env, args[1], &timeout))
		return type_error(env, "packetRecv(sock, timeoutMs)");
	char *buf = malloc(MAX_PACKET);
	if (!buf)
		return throw_with_errno(env, ENOMEM, "receive from criu");
	int passed;
	ssize_t n = recv_packet(fd, timeout, buf, MAX_PACKET, &passed);
	/* The peer gone mid-stream reads as its end. */
	if (n == 0 || (n < 0 && errno == ECONNRESET)) {
		free(buf);
		napi_value null_value;
		napi_get_null(env, &null_value);
		return null_value;
	}
	if (n < 0) {
		int e = errno;
		free(buf);
		return throw_with_errno(env, e, e == ETIMEDOUT ? "wait for criu" : "receive from criu");
	}
	napi_value out, data, v;
	void *dst;
	napi_create_buffer_copy(env, n, buf, &dst, &data);
	free(buf);
	napi_create_object(env, &out);
	napi_set_named_property(env, out, "data", data);
	if (passed >= 0) {
		napi_create_int32(env, passed, &v);
		napi_set_named_property(env, out, "fd", v);
	}
	return out;
}

/*
 * bindMount(source, target): a recursive bind, as restore gives CRIU the
 * rootfs (CRIU wants its root to be a mount point whose parent is not
 * mounted over: runc's criu-root in the state directory, 0700 and ours).
 */
static napi_value bind_mount(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2];
	char source[4096], target[4096];
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 ||
	    get_path(env, args[0], source, sizeof(source)) || get_path(env, args[1], target, sizeof(target)))
		return type_error(env, "bindMount(source, target)");
	if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
		return throw_with_errno(env, errno, "bind mount");
	napi_value undefined;
	napi_get_undefined(env, &undefined);
	return undefined;
}

/*
 * makeMountPoint(rootfs, rel, isFile): a missing mount point made beneath
 * the rootfs (in-root.h: whatever symlinks the rootfs holds, nothing is
 * made outside it), as runc's restore makes them before CRIU mounts there.
 */
static napi_value make_mount_point(napi_env env, napi_callback_info info)
{
	size_t argc = 3;
	napi_value args[3];
	char rootfs[4096], rel[4096];
	bool is_file;
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 3 ||
	    get_path(env, args[0], rootfs, sizeof(rootfs)) || get_path(env, args[1], rel, sizeof(rel)) ||
	    napi_get_value_bool(env, args[2], &is_file) != napi_ok)
		return type_error(env, "makeMountPoint(rootfs, rel, isFile)");
	int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return throw_with_errno(env, errno, "open the rootfs");
	int fd = in_root_make(root, rel, is_file ? IN_ROOT_FILE : IN_ROOT_DIR, 0644);
	int e = errno;
	close(root);
	if (fd < 0)
		return throw_with_errno(env, e, "make the mount point");
	close(fd);
	napi_value undefined;
	napi_get_undefined(env, &undefined);
	return undefined;
}

/*
 * resolveInRoot(rootfs, rel) -> the path `rel` resolves to beneath the
 * rootfs, symlinks followed there ("/var/run/x" in an image whose /var/run
 * links to /run: "/run/x"), or null when it does not exist.  Where a mount
 * is in the container: CRIU names external mounts by it, as runc's
 * securejoin does.
 */
static napi_value resolve_in_root(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2];
	char rootfs[4096], rel[4096];
	if (napi_get_cb_info(env, info, &argc, args, NULL, NULL) != napi_ok || argc < 2 ||
	    get_path(env, args[0], rootfs, sizeof(rootfs)) || get_path(env, args[1], rel, sizeof(rel)))
		return type_error(env, "resolveInRoot(rootfs, rel)");
	napi_value out;
	int root = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root < 0)
		return throw_with_errno(env, errno, "open the rootfs");
	int fd = in_root_open(root, rel, 0);
	if (fd < 0) {
		int e = errno;
		close(root);
		if (e == ENOENT || e == ENOTDIR) {
			napi_get_null(env, &out);
			return out;
		}
		return throw_with_errno(env, e, "resolve in the rootfs");
	}
	char link[64], root_path[4096], path[4096];
	ssize_t rn, pn;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", root);
	rn = readlink(link, root_path, sizeof(root_path) - 1);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	pn = readlink(link, path, sizeof(path) - 1);
	close(fd);
	close(root);
	if (rn < 0 || pn < 0 || pn < rn || memcmp(path, root_path, rn) != 0 || (pn > rn && path[rn] != '/'))
		return throw_with_errno(env, EXDEV, "resolve in the rootfs");
	path[pn] = 0;
	napi_create_string_utf8(env, pn == rn ? "/" : path + rn, NAPI_AUTO_LENGTH, &out);
	return out;
}

void criu_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("spawnCriu", spawn_criu),
		METHOD("packetSend", packet_send),
		METHOD("packetRecv", packet_recv),
		METHOD("bindMount", bind_mount),
		METHOD("makeMountPoint", make_mount_point),
		METHOD("resolveInRoot", resolve_in_root),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
