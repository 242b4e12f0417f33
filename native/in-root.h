/*
 * Paths inside a container's rootfs, resolved by the kernel beneath it:
 * openat2(RESOLVE_IN_ROOT) scopes every symlink and ".." to the root, so a
 * destination is resolved once to an fd, never re-resolved as a string
 * (CVE-2021-30465), and whatever the rootfs's (untrusted) content holds,
 * nothing is made outside it.  Shared by the helper (init.c: mount points
 * as it sets the container up) and the addon (criu.c: restore's mount
 * points, made before CRIU mounts there).
 */
#ifndef TSRUN_IN_ROOT_H
#define TSRUN_IN_ROOT_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Kernel ABI bits musl does not ship headers for. */
#define RESOLVE_NO_XDEV	      0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS   0x04
#define RESOLVE_BENEATH	      0x08
#define RESOLVE_IN_ROOT	      0x10
struct open_how {
	uint64_t flags, mode, resolve;
};

/* What in_root_make makes at the end of the path (plan-ops.h's CREATE_DIR and CREATE_FILE). */
#define IN_ROOT_DIR  0
#define IN_ROOT_FILE 1

/* `rel` resolved beneath `root` (an O_PATH fd of the rootfs): an O_PATH fd, or -1 with errno. */
static inline int in_root_open(int root, const char *rel, int flags)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC | flags,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
	};
	int fd;
	do
		fd = syscall(SYS_openat2, root, rel[0] ? rel : ".", &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd;
}

/*
 * Like `mkdir -p` then open, every step through in_root_open.  A dangling
 * symlink on the way is followed the way the kernel would inside the
 * rootfs: its target is created there (never on the host).
 */
static inline int in_root_make_depth(int root, const char *rel, int create, mode_t file_mode, int depth)
{
	int fd = in_root_open(root, rel, 0);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	if (depth > 40) {
		errno = ELOOP;
		return -1;
	}
	char path[4096];
	if (strlen(rel) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(path, rel);
	char *slash = strrchr(path, '/');
	const char *name = path;
	int parent;
	if (slash) {
		*slash = 0;
		name = slash + 1;
		parent = in_root_make_depth(root, path, IN_ROOT_DIR, 0, depth + 1);
	} else {
		parent = dup(root);
	}
	if (parent < 0)
		return -1;
	int rc;
	if (create == IN_ROOT_FILE) {
		rc = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, file_mode);
		if (rc >= 0)
			close(rc);
	} else {
		rc = mkdirat(parent, name, 0755);
	}
	int saved = errno;
	if (rc < 0 && saved == EEXIST) {
		char link[4096];
		ssize_t n = readlinkat(parent, name, link, sizeof(link) - 1);
		if (n > 0) {
			link[n] = 0;
			char target[8192];
			if (link[0] == '/')
				snprintf(target, sizeof(target), "%s", link + 1);
			else if (slash)
				snprintf(target, sizeof(target), "%s/%s", path, link);
			else
				snprintf(target, sizeof(target), "%s", link);
			close(parent);
			fd = in_root_make_depth(root, target, create, file_mode, depth + 1);
			if (fd < 0)
				return -1;
			close(fd);
			return in_root_open(root, rel, 0);
		}
	}
	close(parent);
	if (rc < 0 && saved != EEXIST) {
		errno = saved;
		return -1;
	}
	return in_root_open(root, rel, 0);
}

static inline int in_root_make(int root, const char *rel, int create, mode_t file_mode)
{
	return in_root_make_depth(root, rel, create, file_mode, 0);
}

#endif
