/*
 * An image's overlay rootfs as a detached mount, for src/lib/image/rootfs.ts.
 *
 *   overlayOpen(source, lowers, upper, work, staging, legacy, userxattr) -> mount fd
 *       lowers: the layer directories, topmost first (overlayfs's order)
 *       staging: an empty directory only root can reach (the legacy path
 *                mounts there for an instant)
 *       legacy: use mount(2) even where "lowerdir+" exists (tests cover both)
 *       userxattr: a user's store, mounted in a user namespace: overlayfs
 *                keeps its own attributes in user.overlay.* (trusted.*
 *                needs CAP_SYS_ADMIN in the host's namespace)
 *
 * The overlay is never attached in the host's mount namespace: the fd goes
 * to tsrun-init, which attaches it at the rootfs path only inside the
 * container's own mount namespace (OP_ROOTFS_PREPARE).  A mount in the
 * host's namespace would be reachable by every local user who can reach
 * its path, with setuid binaries and device nodes of the image (or put
 * there by the container) live on it (issue 14; moby CVE-2021-41091).
 * The mount disappears with the container's last process; nothing of it
 * is left for delete to unmount.
 *
 * The option-length limit.  A legacy mount(2) takes every option in one
 * page, so "lowerdir=a:b:c..." of 100 layers under a long store path does
 * not fit; fsconfig(2) limits each string to 256 bytes.  Linux 6.8 added
 * "lowerdir+", one layer per fsconfig call, so any number of layers (up to
 * overlayfs's own 500) mounts through the new mount API, which yields a
 * detached mount directly.  On an older kernel (Debian 12's own 6.1; the
 * release tells, see has_lowerdir_plus) the fallback is one legacy mount
 * whose layers are named "/proc/self/fd/N" through O_PATH fds: about 17
 * bytes a layer whatever the store's path, so some 220 layers fit in the
 * page.  mount(2) needs a place: the staging directory, mounted nosuid and
 * nodev, cloned into a detached copy at once and detached; the copy gets
 * suid back.  A path of 256 bytes or more is passed the same way to
 * fsconfig.
 *
 * Either way the overlay is nodev, as containers/storage mounts its
 * overlays by default: a device node in a layer (image content) or one the
 * container makes in its rootfs opens nothing, neither for the container
 * nor for a host user of the same uid who walks /proc/<pid>/root to it
 * (docs/security.md, "Limits").  Not nosuid: the image's setuid binaries
 * work in the container, and the kernel honours setuid only within the
 * mount's own mount namespace.
 *
 * Errors carry the kernel's own explanation where it gives one (the
 * fs_context log read from the fsopen fd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "addon.h"

#ifndef FSCONFIG_SET_STRING
#define FSCONFIG_SET_FLAG   0
#define FSCONFIG_SET_STRING 1
#define FSCONFIG_CMD_CREATE 6
#endif
#ifndef FSOPEN_CLOEXEC
#define FSOPEN_CLOEXEC	1
#define FSMOUNT_CLOEXEC 1
#endif
#ifndef OPEN_TREE_CLONE
#define OPEN_TREE_CLONE 1
#endif
#ifndef MOUNT_ATTR_NOSUID
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV  0x4
#endif
struct mount_attr_ {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};

#define MAX_LAYERS	    500 /* overlayfs's OVL_MAX_STACK */
#define FSCONFIG_STRING_MAX 256 /* fsconfig copies at most this much of a string */
#define PATH_CAP	    4096

struct overlay_args {
	char staging[PATH_CAP], source[256], upper[PATH_CAP], work[PATH_CAP];
	char lowers[MAX_LAYERS][PATH_CAP];
	uint32_t nlowers;
	bool userxattr;
};

static int fail(char *msg, size_t size, int err, const char *fmt, const char *what)
{
	snprintf(msg, size, fmt, what);
	return err;
}

/* The kernel's fs_context messages ("e overlay: ..."), joined, without their prefixes. */
static void read_fs_log(int fsfd, char *out, size_t size)
{
	char line[512];
	size_t used = 0;
	ssize_t n;
	out[0] = '\0';
	while ((n = read(fsfd, line, sizeof(line) - 1)) > 0) {
		line[n] = '\0';
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		const char *text = n > 2 && line[1] == ' ' ? line + 2 : line;
		used += snprintf(out + used, used < size ? size - used : 0, "%s%s", used ? "; " : "", text);
		if (used >= size)
			break;
	}
}

/* The string fsconfig gets for a path: the path, or /proc/self/fd/N when it is too long. */
static int path_value(const char *path, char *value, size_t size, int *fd)
{
	*fd = -1;
	if (strlen(path) < FSCONFIG_STRING_MAX) {
		snprintf(value, size, "%s", path);
		return 0;
	}
	*fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0)
		return -1;
	snprintf(value, size, "/proc/self/fd/%d", *fd);
	return 0;
}

static int set_path(int fsfd, const char *key, const char *path)
{
	char value[FSCONFIG_STRING_MAX];
	int fd, rc;
	if (path_value(path, value, sizeof(value), &fd) < 0)
		return -1;
	rc = (int)syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, key, value, 0);
	int saved = errno;
	if (fd >= 0)
		close(fd);
	errno = saved;
	return rc;
}

/*
 * "lowerdir+" came with Linux 6.8.  Asking the kernel is no help: before
 * 6.5 overlayfs took its options through the legacy context, which accepts
 * any key at fsconfig time, so the release is the one reliable sign.
 */
static bool has_lowerdir_plus(void)
{
	struct utsname u;
	int major = 0, minor = 0;
	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 8);
}

/* The new mount API with "lowerdir+": *mnt gets the detached mount; returns 0 or an errno, with msg set. */
static int mount_new_api(const struct overlay_args *a, int *mnt, char *msg, size_t size)
{
	char log[1024];
	int fsfd = (int)syscall(SYS_fsopen, "overlay", FSOPEN_CLOEXEC);
	if (fsfd < 0)
		return fail(msg, size, errno, "fsopen(%s)", "overlay");
	int err = 0;
	const char *step = "";
	if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "source", a->source, 0) < 0) {
		err = errno, step = "source";
		goto out;
	}
	for (uint32_t i = 0; i < a->nlowers; i++) {
		if (set_path(fsfd, "lowerdir+", a->lowers[i]) < 0) {
			err = errno, step = a->lowers[i];
			goto out;
		}
	}
	if (set_path(fsfd, "upperdir", a->upper) < 0) {
		err = errno, step = "upperdir";
		goto out;
	}
	if (set_path(fsfd, "workdir", a->work) < 0) {
		err = errno, step = "workdir";
		goto out;
	}
	/* index=off: layers are shared by many overlays and must not carry one overlay's index. */
	if (syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, "index", "off", 0) < 0) {
		err = errno, step = "index=off";
		goto out;
	}
	if (a->userxattr && syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, "userxattr", NULL, 0) < 0) {
		err = errno, step = "userxattr";
		goto out;
	}
	if (syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
		err = errno, step = "create";
		goto out;
	}
	*mnt = (int)syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_NODEV);
	if (*mnt < 0)
		err = errno, step = "fsmount";
out:
	if (err) {
		read_fs_log(fsfd, log, sizeof(log));
		char where[PATH_CAP + 32];
		snprintf(where, sizeof(where), "%s%s%s", step, log[0] ? ": " : "", log);
		fail(msg, size, err, "overlay %s", where);
	}
	close(fsfd);
	return err;
}

/*
 * mount(2) with every layer as /proc/self/fd/N, for kernels before 6.8: on
 * the staging directory (nosuid, nodev), cloned into a detached copy, then
 * detached; the copy gets suid back (it stays nodev).  *mnt gets the copy.
 */
static int mount_legacy(const struct overlay_args *a, int *mnt, char *msg, size_t size)
{
	static char data[4096 + 512];
	int fds[MAX_LAYERS];
	uint32_t opened = 0;
	int err = 0;
	size_t used = (size_t)snprintf(data, sizeof(data), "lowerdir=");
	for (; opened < a->nlowers; opened++) {
		fds[opened] = open(a->lowers[opened], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (fds[opened] < 0) {
			err = fail(msg, size, errno, "overlay layer %s", a->lowers[opened]);
			goto out;
		}
		used += (size_t)snprintf(data + used, sizeof(data) - used, "%s/proc/self/fd/%d",
					 opened ? ":" : "", fds[opened]);
	}
	used += (size_t)snprintf(data + used, sizeof(data) - used, ",upperdir=%s,workdir=%s,index=off%s",
				 a->upper, a->work, a->userxattr ? ",userxattr" : "");
	if (used >= 4096) {
		err = fail(msg, size, E2BIG, "overlay: %s",
			   "the layers' options do not fit in one page on this kernel (before Linux 6.8); "
			   "fewer layers or a shorter store path");
		goto out;
	}
	if (mount(a->source, a->staging, "overlay", MS_NOSUID | MS_NODEV, data) < 0) {
		err = fail(msg, size, errno, "overlay mount on %s", a->staging);
		goto out;
	}
	*mnt = (int)syscall(SYS_open_tree, AT_FDCWD, a->staging, OPEN_TREE_CLONE | O_CLOEXEC);
	if (*mnt < 0)
		err = fail(msg, size, errno, "detached copy of the overlay on %s", a->staging);
	if (umount2(a->staging, MNT_DETACH | UMOUNT_NOFOLLOW) < 0 && !err)
		err = fail(msg, size, errno, "unmount the staging overlay on %s", a->staging);
	struct mount_attr_ back = {.attr_clr = MOUNT_ATTR_NOSUID};
	if (!err && syscall(SYS_mount_setattr, *mnt, "", AT_EMPTY_PATH, &back, sizeof(back)) < 0)
		err = fail(msg, size, errno, "set suid on the overlay of %s", a->staging);
	if (err && *mnt >= 0) {
		close(*mnt);
		*mnt = -1;
	}
out:
	while (opened > 0)
		close(fds[--opened]);
	return err;
}

static napi_value overlay_open(napi_env env, napi_callback_info info)
{
	static struct overlay_args a; /* large; the addon runs on Node's main thread only */
	size_t argc = 7, len;
	napi_value args[7];
	bool legacy = false;
	char msg[PATH_CAP + 1200];
	memset(&a, 0, sizeof(a));
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	bool is_array = false;
	if (argc < 7 || napi_get_value_bool(env, args[5], &legacy) != napi_ok ||
	    napi_get_value_bool(env, args[6], &a.userxattr) != napi_ok ||
	    napi_is_array(env, args[1], &is_array) != napi_ok || !is_array ||
	    napi_get_value_string_utf8(env, args[0], a.source, sizeof(a.source), &len) != napi_ok ||
	    napi_get_value_string_utf8(env, args[2], a.upper, sizeof(a.upper), &len) != napi_ok ||
	    napi_get_value_string_utf8(env, args[3], a.work, sizeof(a.work), &len) != napi_ok ||
	    napi_get_value_string_utf8(env, args[4], a.staging, sizeof(a.staging), &len) != napi_ok ||
	    napi_get_array_length(env, args[1], &a.nlowers) != napi_ok)
		return throw_with_errno(env, EINVAL, "overlayOpen: bad arguments");
	if (a.nlowers == 0 || a.nlowers > MAX_LAYERS)
		return throw_with_errno(env, EINVAL,
					a.nlowers ? "overlay: more than 500 layers (overlayfs's limit)"
						  : "overlay: no layers");
	for (uint32_t i = 0; i < a.nlowers; i++) {
		napi_value v;
		if (napi_get_element(env, args[1], i, &v) != napi_ok ||
		    napi_get_value_string_utf8(env, v, a.lowers[i], PATH_CAP, &len) != napi_ok ||
		    len + 1 >= PATH_CAP)
			return throw_with_errno(env, EINVAL, "overlayOpen: bad layer path");
	}
	int mnt = -1;
	int err = !legacy && has_lowerdir_plus() ? mount_new_api(&a, &mnt, msg, sizeof(msg))
						 : mount_legacy(&a, &mnt, msg, sizeof(msg));
	if (err) {
		char full[sizeof(msg) + 128];
		snprintf(full, sizeof(full), "%s: %s", msg, strerror(err));
		return throw_with_errno(env, err, full);
	}
	napi_value out;
	napi_create_int32(env, mnt, &out);
	return out;
}

void overlay_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("overlayOpen", overlay_open),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
