/*
 * Writing one image layer's entries into its directory, for
 * src/lib/image/unpack.ts.  TypeScript parses the tar stream (tar-stream)
 * and hands each entry here; every path is resolved from the layer
 * directory's fd with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), and
 * the last component is acted on with the *at() calls that do not follow
 * it.  So no name, symlink or hardlink in a layer can make tsrun write
 * anywhere but inside that layer's directory: "../x", "/x", a symlink
 * followed by a file through it, a hardlink to something outside: each is
 * refused with the entry's name.
 *
 *   layerEntry(rootFd, entry) -> fd of a new regular file to fill, or -1
 *   layerFinishFile(fd, entry)   owner, mode, xattrs, times; closes fd
 *   layerSetTimes(rootFd, name, sec, nsec)   for directories, at the end
 *   layerIsOpaque(dir)           reading a layer back: is dir marked opaque
 */
#define _GNU_SOURCE
#include <ctype.h>
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
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "addon.h"

#define RESOLVE_NO_MAGICLINKS_ 0x02
#define RESOLVE_NO_SYMLINKS_   0x04
#define RESOLVE_BENEATH_       0x08
struct open_how_ {
	uint64_t flags, mode, resolve;
};

/* Entry kinds, as src/lib/image/unpack.ts numbers them. */
enum layer_kind {
	KIND_FILE = 0,
	KIND_DIR = 1,
	KIND_SYMLINK = 2,
	KIND_HARDLINK = 3,
	KIND_CHAR = 4,
	KIND_BLOCK = 5,
	KIND_FIFO = 6,
	KIND_WHITEOUT = 7, /* name: the path to hide, as an overlay whiteout */
	KIND_OPAQUE = 8,   /* name: the directory to mark opaque */
	/* The same for an overlay mounted with userxattr (a user's store, made
	 * in a user namespace, where trusted.* cannot be set). */
	KIND_OPAQUE_USER = 9,
};

struct entry {
	uint32_t kind, mode, uid, gid, major, minor;
	int64_t mtime_sec, mtime_nsec;
	char name[4096], linkname[4096];
	napi_value xattrs;
};

static napi_value throw_entry(napi_env env, int err, const char *what, const char *name)
{
	char msg[4300], reason[128];
	/* Lower case, as tsrun's other messages ("no such file or directory"). */
	snprintf(reason, sizeof(reason), "%s", strerror(err));
	reason[0] = (char)tolower((unsigned char)reason[0]);
	snprintf(msg, sizeof(msg), "%s: %s: %s", name, what, reason);
	return throw_with_errno(env, err, msg);
}

static int get_u32(napi_env env, napi_value obj, const char *key, uint32_t *out)
{
	napi_value v;
	*out = 0;
	return napi_get_named_property(env, obj, key, &v) == napi_ok &&
			       napi_get_value_uint32(env, v, out) == napi_ok
		       ? 0
		       : -1;
}

static int get_str(napi_env env, napi_value obj, const char *key, char *buf, size_t size)
{
	napi_value v;
	size_t len;
	if (napi_get_named_property(env, obj, key, &v) != napi_ok ||
	    napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok)
		return -1;
	return len + 1 >= size ? -1 : 0;
}

static int read_entry(napi_env env, napi_value obj, struct entry *e)
{
	napi_value v;
	double sec = 0, nsec = 0;
	if (get_u32(env, obj, "kind", &e->kind) || get_u32(env, obj, "mode", &e->mode) ||
	    get_u32(env, obj, "uid", &e->uid) || get_u32(env, obj, "gid", &e->gid) ||
	    get_u32(env, obj, "major", &e->major) || get_u32(env, obj, "minor", &e->minor) ||
	    get_str(env, obj, "name", e->name, sizeof(e->name)) ||
	    get_str(env, obj, "linkname", e->linkname, sizeof(e->linkname)))
		return -1;
	napi_get_named_property(env, obj, "mtimeSec", &v);
	napi_get_value_double(env, v, &sec);
	napi_get_named_property(env, obj, "mtimeNsec", &v);
	napi_get_value_double(env, v, &nsec);
	e->mtime_sec = (int64_t)sec;
	e->mtime_nsec = (int64_t)nsec;
	napi_get_named_property(env, obj, "xattrs", &e->xattrs);
	return 0;
}

/* Open a directory of the layer: beneath the root, through no symlink. */
static int open_dir_beneath(int root, const char *rel)
{
	struct open_how_ how = {
		.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH_ | RESOLVE_NO_SYMLINKS_ | RESOLVE_NO_MAGICLINKS_,
	};
	return syscall(SYS_openat2, root, rel[0] ? rel : ".", &how, sizeof(how));
}

/* The parent of `name` (created as 0755 directories where missing), and its last component. */
static int parent_of(int root, const char *name, char *base, size_t size)
{
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", name);
	char *slash = strrchr(dir, '/');
	const char *last = slash ? slash + 1 : dir;
	if (strlen(last) >= size) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(base, last);
	if (!slash)
		return open_dir_beneath(root, "");
	*slash = 0;
	int fd = open_dir_beneath(root, dir);
	if (fd >= 0 || errno != ENOENT)
		return fd;
	/* Walk down, making what is missing, never through a symlink. */
	int cur = open_dir_beneath(root, "");
	for (char *part = dir, *next; cur >= 0 && part && *part; part = next) {
		next = strchr(part, '/');
		if (next)
			*next++ = 0;
		if (mkdirat(cur, part, 0755) < 0 && errno != EEXIST) {
			close(cur);
			return -1;
		}
		int child = open_dir_beneath(cur, part);
		close(cur);
		cur = child;
	}
	return cur;
}

/* Remove whatever is at parent/name, a directory tree included, never following links. */
static int remove_at(int parent, const char *name)
{
	if (unlinkat(parent, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR)
		return -1;
	int dir = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dir < 0)
		return -1;
	int copy = dup(dir);
	DIR *d = copy >= 0 ? fdopendir(copy) : NULL;
	if (!d) {
		close(dir);
		if (copy >= 0)
			close(copy);
		return -1;
	}
	struct dirent *de;
	int rc = 0;
	while (rc == 0 && (de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			rc = remove_at(dir, de->d_name);
	closedir(d);
	close(dir);
	return rc < 0 ? -1 : unlinkat(parent, name, AT_REMOVEDIR);
}

static int set_xattrs(napi_env env, int fd, napi_value xattrs)
{
	uint32_t n = 0;
	bool is_array = false;
	if (napi_is_array(env, xattrs, &is_array) != napi_ok || !is_array)
		return 0;
	napi_get_array_length(env, xattrs, &n);
	for (uint32_t i = 0; i < n; i++) {
		napi_value pair, key_v, value_v;
		char key[256];
		size_t len;
		void *data;
		size_t size;
		napi_get_element(env, xattrs, i, &pair);
		napi_get_element(env, pair, 0, &key_v);
		napi_get_element(env, pair, 1, &value_v);
		if (napi_get_value_string_utf8(env, key_v, key, sizeof(key), &len) != napi_ok ||
		    napi_get_buffer_info(env, value_v, &data, &size) != napi_ok)
			return -1;
		if (fsetxattr(fd, key, data, size, 0) < 0)
			return -1;
	}
	return 0;
}

/* chown before chmod: chown clears setuid/setgid. */
static int set_owner_mode(int fd, const struct entry *e)
{
	if (fchown(fd, e->uid, e->gid) < 0)
		return -1;
	return fchmod(fd, e->mode & 07777);
}

static napi_value layer_entry(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2], out;
	int32_t root;
	struct entry e;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 2 || napi_get_value_int32(env, args[0], &root) != napi_ok ||
	    read_entry(env, args[1], &e) < 0)
		return throw_entry(env, EINVAL, "malformed entry", "layerEntry");

	char base[256];
	int parent = parent_of(root, e.name, base, sizeof(base));
	if (parent < 0)
		return throw_entry(env, errno,
				   errno == ELOOP ? "a parent is a symlink" : "open the parent directory",
				   e.name);
	int fd = -1, err = 0;
	const char *what = "";

	if (e.kind == KIND_OPAQUE || e.kind == KIND_OPAQUE_USER) {
		const char *key = e.kind == KIND_OPAQUE ? "trusted.overlay.opaque" : "user.overlay.opaque";
		int dir = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir < 0 && errno == ENOENT && mkdirat(parent, base, 0755) == 0)
			dir = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir < 0 || fsetxattr(dir, key, "y", 1, 0) < 0)
			err = errno, what = "mark the directory opaque";
		if (dir >= 0)
			close(dir);
		goto done;
	}

	/* A directory over a directory keeps its content; anything else replaces. */
	struct stat st;
	bool keep_dir = e.kind == KIND_DIR && fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			S_ISDIR(st.st_mode);
	if (!keep_dir && remove_at(parent, base) < 0) {
		err = errno, what = "replace what was there";
		goto done;
	}

	switch (e.kind) {
	case KIND_FILE:
		fd = openat(parent, base, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			err = errno, what = "create file";
		break;
	case KIND_DIR: {
		if (!keep_dir && mkdirat(parent, base, 0700) < 0) {
			err = errno, what = "create directory";
			break;
		}
		int dir = openat(parent, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (dir < 0 || set_owner_mode(dir, &e) < 0 || set_xattrs(env, dir, e.xattrs) < 0)
			err = errno, what = "set up directory";
		if (dir >= 0)
			close(dir);
		break;
	}
	case KIND_SYMLINK: {
		struct timespec times[2] = {{e.mtime_sec, e.mtime_nsec}, {e.mtime_sec, e.mtime_nsec}};
		if (symlinkat(e.linkname, parent, base) < 0 ||
		    fchownat(parent, base, e.uid, e.gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    utimensat(parent, base, times, AT_SYMLINK_NOFOLLOW) < 0)
			err = errno, what = "create symlink";
		break;
	}
	case KIND_HARDLINK: {
		/* The target was written earlier in this same layer. */
		char target_base[256];
		int target_parent = parent_of(root, e.linkname, target_base, sizeof(target_base));
		if (target_parent < 0 || linkat(target_parent, target_base, parent, base, 0) < 0)
			err = errno, what = "hardlink to an earlier entry of this layer";
		if (target_parent >= 0)
			close(target_parent);
		break;
	}
	case KIND_CHAR:
	case KIND_BLOCK:
	case KIND_FIFO:
	case KIND_WHITEOUT: {
		mode_t type = e.kind == KIND_BLOCK ? S_IFBLK : e.kind == KIND_FIFO ? S_IFIFO : S_IFCHR;
		/* An overlay whiteout is a character device 0/0. */
		dev_t dev = e.kind == KIND_WHITEOUT ? makedev(0, 0) : makedev(e.major, e.minor);
		struct timespec times[2] = {{e.mtime_sec, e.mtime_nsec}, {e.mtime_sec, e.mtime_nsec}};
		if (mknodat(parent, base, type | (e.kind == KIND_WHITEOUT ? 0 : (e.mode & 07777)), dev) < 0 ||
		    fchownat(parent, base, e.kind == KIND_WHITEOUT ? 0 : e.uid,
			     e.kind == KIND_WHITEOUT ? 0 : e.gid, AT_SYMLINK_NOFOLLOW) < 0 ||
		    (e.kind != KIND_WHITEOUT && fchmodat(parent, base, e.mode & 07777, 0) < 0) ||
		    utimensat(parent, base, times, AT_SYMLINK_NOFOLLOW) < 0)
			err = errno,
			what = e.kind == KIND_WHITEOUT ? "create whiteout" : "create device node";
		break;
	}
	default:
		err = EINVAL, what = "unknown entry kind";
	}
done:
	close(parent);
	if (err)
		return throw_entry(env, err, what, e.name);
	napi_create_int32(env, fd, &out);
	return out;
}

static napi_value layer_finish_file(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2];
	int32_t fd;
	struct entry e;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 2 || napi_get_value_int32(env, args[0], &fd) != napi_ok ||
	    read_entry(env, args[1], &e) < 0)
		return throw_entry(env, EINVAL, "malformed entry", "layerFinishFile");
	struct timespec times[2] = {{e.mtime_sec, e.mtime_nsec}, {e.mtime_sec, e.mtime_nsec}};
	int rc = set_owner_mode(fd, &e) < 0 || set_xattrs(env, fd, e.xattrs) < 0 || futimens(fd, times) < 0
			 ? -1
			 : 0;
	int err = errno;
	close(fd);
	if (rc < 0)
		return throw_entry(env, err, "set owner, mode, xattrs or times", e.name);
	return NULL;
}

/* layerSetTimes(rootFd, name, sec, nsec): a directory's times, once its content is written. */
static napi_value layer_set_times(napi_env env, napi_callback_info info)
{
	size_t argc = 4;
	napi_value args[4];
	int32_t root;
	char name[4096];
	size_t len;
	double sec, nsec;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 4 || napi_get_value_int32(env, args[0], &root) != napi_ok ||
	    napi_get_value_string_utf8(env, args[1], name, sizeof(name), &len) != napi_ok ||
	    napi_get_value_double(env, args[2], &sec) != napi_ok ||
	    napi_get_value_double(env, args[3], &nsec) != napi_ok)
		return throw_entry(env, EINVAL, "bad arguments", "layerSetTimes");
	int dir = open_dir_beneath(root, name);
	struct timespec times[2] = {{(time_t)sec, (long)nsec}, {(time_t)sec, (long)nsec}};
	if (dir < 0 || utimensat(dir, "", times, AT_EMPTY_PATH) < 0) {
		int err = errno;
		if (dir >= 0)
			close(dir);
		return throw_entry(env, err, "set directory times", name);
	}
	close(dir);
	return NULL;
}

/*
 * layerOpenFile(rootFd, name) -> fd open for reading, of a file inside an
 * unpacked archive: symlinks in it are followed as if the archive's
 * directory were "/", so none can lead to a file of the host.
 */
static napi_value layer_open_file(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value args[2], out;
	int32_t root;
	char name[4096];
	size_t len;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 2 || napi_get_value_int32(env, args[0], &root) != napi_ok ||
	    napi_get_value_string_utf8(env, args[1], name, sizeof(name), &len) != napi_ok)
		return throw_entry(env, EINVAL, "bad arguments", "layerOpenFile");
	struct open_how_ how = {.flags = O_RDONLY | O_CLOEXEC,
				.resolve = 0x10 /* RESOLVE_IN_ROOT */ | RESOLVE_NO_MAGICLINKS_};
	int fd = syscall(SYS_openat2, root, name, &how, sizeof(how));
	struct stat st;
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd < 0)
		return throw_entry(env, errno, "open", name);
	napi_create_int32(env, fd, &out);
	return out;
}

/* layerOpenRoot(path) -> fd of a layer directory (O_PATH, close with close()). */
static napi_value layer_open_root(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value arg, out;
	char path[4096];
	size_t len;
	napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
	if (argc < 1 || napi_get_value_string_utf8(env, arg, path, sizeof(path), &len) != napi_ok)
		return throw_entry(env, EINVAL, "bad arguments", "layerOpenRoot");
	int fd = open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return throw_entry(env, errno, "open layer directory", path);
	napi_create_int32(env, fd, &out);
	return out;
}

/*
 * layerIsOpaque(dir) -> whether an unpacked directory is marked opaque:
 * trusted.overlay.opaque=y (root's store), or user.overlay.opaque=y (a
 * user's, mounted with userxattr).  A layer never sets either itself
 * (unpack.ts drops both), so whichever is there was written by tsrun.
 */
static napi_value layer_is_opaque(napi_env env, napi_callback_info info)
{
	size_t argc = 1, len;
	napi_value arg, out;
	char path[4096], value[4];
	napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
	if (argc < 1 || napi_get_value_string_utf8(env, arg, path, sizeof(path), &len) != napi_ok)
		return throw_entry(env, EINVAL, "bad arguments", "layerIsOpaque");
	ssize_t n = lgetxattr(path, "trusted.overlay.opaque", value, sizeof(value));
	if (n != 1)
		n = lgetxattr(path, "user.overlay.opaque", value, sizeof(value));
	napi_get_boolean(env, n == 1 && value[0] == 'y', &out);
	return out;
}

/* Called from the addon's module init (addon.c). */
void layer_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("layerOpenRoot", layer_open_root), METHOD("layerEntry", layer_entry),
		METHOD("layerOpenFile", layer_open_file), METHOD("layerFinishFile", layer_finish_file),
		METHOD("layerSetTimes", layer_set_times), METHOD("layerIsOpaque", layer_is_opaque),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
