/*
 * Removing a directory tree that untrusted content shaped: a container's
 * overlay upper (written by the container), image layers and imports in
 * progress (written from image content), state directories.  Every
 * recursive removal tsrun makes goes through here (src/lib/remove-tree.ts).
 *
 *   removeTree(path)      path and everything beneath it; a missing path is
 *                         not an error
 *
 * Why not fs.rmSync: it walks by path.  Between its lstat of a directory
 * and its readdir and unlinks inside it, a process that can still write
 * the tree may put a symlink to a host directory in the directory's place,
 * and the removal carries on in the host directory (issue 14: a surviving
 * container process made delete unlink about half of 400 host files).
 *
 * Here every step is taken relative to the fd of a directory already open,
 * so a name is resolved one component at a time and never again:
 *   - an entry is removed with unlinkat(dir, name, 0), which removes a
 *     symlink itself and never what it points to; EISDIR tells a directory;
 *   - a directory is opened with O_DIRECTORY|O_NOFOLLOW, so a symlink put
 *     in its place meanwhile is refused (and then unlinked as an entry);
 *   - a directory on another filesystem (something mounted in the tree) is
 *     never entered: the removal stops with EXDEV and names it;
 *   - a directory that was emptied is removed with AT_REMOVEDIR from its
 *     parent's fd; if something replaced it meanwhile, that is tried again.
 * The open directories are the only state.  A tree deeper than MAX_HELD
 * levels would need an fd per level, so a directory found that deep is
 * first renamed up into the top directory (the same filesystem, so the
 * rename cannot fail for that reason) and emptied from there on a later
 * pass: any depth costs at most MAX_HELD fds and as many stack frames.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addon.h"

#define MAX_HELD  64
#define DENTS_BUF (32 * 1024)
#define RETRIES	  100 /* a name that keeps changing type under us */

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#endif

struct linux_dirent64_ {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

struct removal {
	int top;	     /* the tree's root directory */
	dev_t dev;	     /* its filesystem: nothing on another one is entered */
	unsigned long moved; /* directories renamed up into top so far */
	char where[4096];    /* the entry at hand, relative to the tree's root (messages) */
	int err;
	const char *what; /* the failed step, for the message */
};

static int fail(struct removal *r, const char *what)
{
	r->err = errno;
	r->what = what;
	return -1;
}

/* where = where[0..len) + "/" + name, cut short if it does not fit; returns the new length. */
static size_t enter(struct removal *r, size_t len, const char *name)
{
	int n = snprintf(r->where + len, sizeof(r->where) - len, "%s%s", len ? "/" : "", name);
	size_t next = len + (n > 0 ? (size_t)n : 0);
	return next < sizeof(r->where) ? next : sizeof(r->where) - 1;
}

static int empty_dir(struct removal *r, int dir, int depth, size_t len);

/* Remove one entry of `dir`, whatever it is, and everything beneath it. */
static int remove_entry(struct removal *r, int dir, const char *name, int depth, size_t len)
{
	size_t here = enter(r, len, name);
	for (int tries = 0;; tries++) {
		if (unlinkat(dir, name, 0) == 0 || errno == ENOENT)
			return 0;
		if (errno != EISDIR)
			return fail(r, "unlink");
		if (depth + 1 >= MAX_HELD) {
			/* Too deep to hold another fd: empty it later from the top. */
			char moved[64];
			for (;;) {
				snprintf(moved, sizeof(moved), ".tsrun-removing-%lu", r->moved++);
				if (syscall(SYS_renameat2, dir, name, r->top, moved, RENAME_NOREPLACE) == 0 ||
				    errno == ENOENT)
					return 0;
				if (errno != EEXIST)
					return fail(r, "move up a deep directory");
			}
		}
		int sub = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (sub < 0) {
			if (errno == ENOENT)
				return 0;
			/* Replaced by a symlink or a file since the unlink: unlink that. */
			if ((errno == ELOOP || errno == ENOTDIR) && tries < RETRIES)
				continue;
			return fail(r, "open directory");
		}
		struct stat st;
		if (fstat(sub, &st) < 0) {
			close(sub);
			return fail(r, "stat directory");
		}
		if (st.st_dev != r->dev) {
			close(sub);
			errno = EXDEV;
			return fail(r, "enter a mount point (not removed)");
		}
		int rc = empty_dir(r, sub, depth + 1, here);
		close(sub);
		if (rc < 0)
			return -1;
		r->where[here] = '\0';
		if (unlinkat(dir, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			return 0;
		/* Something was put there meanwhile (a new entry, or a symlink in
		 * the directory's place): go round again. */
		if ((errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) && tries < RETRIES)
			continue;
		return fail(r, "remove directory");
	}
}

/*
 * Remove every entry of `dir`, in passes until a pass finds none: entries
 * renamed up from deep below land in the top directory while it is read.
 */
static int empty_dir(struct removal *r, int dir, int depth, size_t len)
{
	char *buf = malloc(DENTS_BUF);
	if (!buf) {
		errno = ENOMEM;
		return fail(r, "allocate");
	}
	int rc = 0;
	for (bool found = true; found && rc == 0;) {
		found = false;
		if (lseek(dir, 0, SEEK_SET) < 0) {
			rc = fail(r, "rewind directory");
			break;
		}
		for (;;) {
			long n = syscall(SYS_getdents64, dir, buf, DENTS_BUF);
			if (n < 0) {
				rc = fail(r, "read directory");
				break;
			}
			if (n == 0)
				break;
			for (long off = 0; off < n && rc == 0;) {
				struct linux_dirent64_ *d = (struct linux_dirent64_ *)(buf + off);
				off += d->d_reclen;
				if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
					continue;
				found = true;
				rc = remove_entry(r, dir, d->d_name, depth, len);
				if (rc == 0)
					r->where[len] = '\0'; /* on failure it names the entry */
			}
			if (rc < 0)
				break;
		}
	}
	free(buf);
	return rc;
}

/*
 * Remove `path` and everything beneath it.  Its parent is opened by path
 * (the callers' own directories: a store, --root), the rest by fd.
 * Returns 0, or -1 with *err and msg set.
 */
static int remove_tree(const char *path, char *msg, size_t size, int *err)
{
	static struct removal r; /* large; the addon runs on Node's main thread only */
	memset(&r, 0, sizeof(r));
	char parent_path[4096];
	snprintf(parent_path, sizeof(parent_path), "%s", path);
	size_t plen = strlen(parent_path);
	while (plen > 1 && parent_path[plen - 1] == '/')
		parent_path[--plen] = '\0';
	char *slash = strrchr(parent_path, '/');
	const char *name;
	int parent;
	if (!slash) {
		name = parent_path;
		parent = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		*slash = '\0';
		name = slash + 1;
		parent = open(slash == parent_path ? "/" : parent_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	}
	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		*err = EINVAL;
		snprintf(msg, size, "remove %s: not a path tsrun removes", path);
		if (parent >= 0)
			close(parent);
		return -1;
	}
	if (parent < 0) {
		*err = errno;
		if (*err == ENOENT)
			return 0;
		snprintf(msg, size, "remove %s: open its parent: %s", path, strerror(*err));
		return -1;
	}
	int rc = 0;
	for (int tries = 0;; tries++) {
		if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
			break;
		if (errno != EISDIR) {
			rc = fail(&r, "unlink");
			break;
		}
		r.top = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (r.top < 0) {
			if (errno == ENOENT)
				break;
			if ((errno == ELOOP || errno == ENOTDIR) && tries < RETRIES)
				continue;
			rc = fail(&r, "open directory");
			break;
		}
		struct stat st;
		if (fstat(r.top, &st) < 0) {
			rc = fail(&r, "stat directory");
		} else {
			r.dev = st.st_dev;
			rc = empty_dir(&r, r.top, 0, 0);
		}
		close(r.top);
		if (rc < 0)
			break;
		if (unlinkat(parent, name, AT_REMOVEDIR) == 0 || errno == ENOENT)
			break;
		if ((errno == ENOTEMPTY || errno == EEXIST || errno == ENOTDIR) && tries < RETRIES)
			continue;
		rc = fail(&r, "remove directory");
		break;
	}
	close(parent);
	if (rc < 0) {
		*err = r.err;
		snprintf(msg, size, "remove %s%s%s: %s: %s", path, r.where[0] ? "/" : "", r.where, r.what,
			 strerror(r.err));
	}
	return rc;
}

static napi_value remove_tree_js(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value args[1];
	char path[4096], msg[4096 + 4096 + 256];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 1 || napi_get_value_string_utf8(env, args[0], path, sizeof(path), &len) != napi_ok ||
	    len + 1 >= sizeof(path))
		return throw_with_errno(env, EINVAL, "removeTree(path): bad arguments");
	int err = 0;
	if (remove_tree(path, msg, sizeof(msg), &err) < 0)
		return throw_with_errno(env, err, msg);
	napi_value out;
	napi_get_undefined(env, &out);
	return out;
}

void remove_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("removeTree", remove_tree_js),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
