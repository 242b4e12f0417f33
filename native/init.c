/*
 * tsrun-init: executes a launch plan compiled by tsrun's TypeScript side.
 *
 * Why a separate program: Node is multithreaded, so a process cloned from
 * it may only make raw syscalls until it execs.  Instead the addon execs
 * this small static binary from a sealed memfd.  It starts single-threaded
 * with nothing of Node in it, so it may use libc freely, and
 * /proc/<pid>/exe of every process the container can see is
 * "memfd:tsrun-init", never a writable host file (CVE-2019-5736).
 *
 * usage (from the addon only):
 *   tsrun-init SYNC_FD PLAN_FD FIFO_FD CONSOLE_FD ROOTFS_FD PRESERVE_FDS
 * FIFO_FD, CONSOLE_FD and ROOTFS_FD are -1 when unused; ROOTFS_FD is a
 * detached mount (an image's overlay) that OP_ROOTFS_PREPARE attaches.  Plan format and protocol:
 * plan.h.  This program decides nothing: every choice was made in
 * TypeScript and is an op in the plan.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "sched-attr.h"

#include "plan.h"

#include "in-root.h"

/* Kernel ABI bits musl does not ship headers for. */

#define OPEN_TREE_CLONE		1
#define AT_RECURSIVE		0x8000
#define MOVE_MOUNT_F_EMPTY_PATH 0x04
#define MOVE_MOUNT_T_EMPTY_PATH 0x40
#define FSOPEN_CLOEXEC		1
#define FSMOUNT_CLOEXEC		1
#define FSCONFIG_SET_FLAG	0
#define FSCONFIG_SET_STRING	1
#define FSCONFIG_CMD_CREATE	6
#define MOUNT_ATTR_RDONLY	0x1
struct mount_attr {
	uint64_t attr_set, attr_clr, propagation, userns_fd;
};
#define MOUNT_ATTR_IDMAP 0x00100000

#define CLOSE_RANGE_CLOEXEC 4
#define PROC_SUPER_MAGIC    0x9fa0
#define DEVPTS_SUPER_MAGIC  0x1cd1
#ifndef TIOCGPTPEER
#define TIOCGPTPEER 0x5441
#endif

/* ---- state shared by the ops ------------------------------------------ */

static int sync_fd = -1, fifo_fd = -1, console_fd = -1, rootfs_mount_fd = -1, preserve_fds;
static int start_released; /* OP_WAIT_START has read start's byte */
/* Namespaces to join, opened by open_namespaces() before any is joined. */
#define MAX_SETNS 16
static struct {
	const unsigned char *op;
	int fd;
} setns_fds[MAX_SETNS];
static int setns_count;
static int clone_cgroup_fd = -1; /* OP_CLONE_INIT's cgroup, opened with the namespaces */
static int root_fd = -1;	 /* the rootfs, before pivot_root */
static const char *rootfs_path;	 /* for error messages */
/* State JSON for the container's hooks, as the container sees it (pid 1
 * in a pid namespace): one for createContainer, one for startContainer. */
static const char *create_hook_state, *start_hook_state;
static char *hook_states;
static const char *exec_path; /* resolved by OP_EXEC_PREPARE */
static char **exec_argv, **exec_env;
/* statfs magics (linux/magic.h) of pipes and sysfs. */
#define PIPEFS_MAGIC_ 0x50495045
#define SYSFS_MAGIC_  0x62656572
/* The pty slave OP_CONSOLE made: the one character device give_stdio_to chowns. */
static struct stat console_peer;
static int console_peer_set;
static int prepared_mounts[MAX_PREPARED_MOUNTS]; /* slot -> detached tree fd */
static int send_with_fd(int sock, int fd, const void *data, size_t len);

/* ---- talking to the parent --------------------------------------------- */

/* The mount-source server (see op_mount_source_server). */
static int source_server_sock = -1; /* -1: binds are prepared in place */
static pid_t source_server_pid;
static int in_source_server;

static int sync_send(unsigned type, int value, const void *data, unsigned len)
{
	/* The mount-source server speaks only to the helper, which forwards
	 * its failure after reaping it (so no orphan outlives tsrun). */
	return sync_packet_send(in_source_server ? source_server_sock : sync_fd, type, value, data, len);
}

/*
 * Report a failed step and exit.  The parent prints "<detail>: <strerror>",
 * so `detail` reads as the action that failed, e.g. "mount proc on rootfs/proc".
 */
__attribute__((noreturn, format(printf, 4, 5))) static void fail(int err, const char *step, const char *path,
								 const char *fmt, ...)
{
	char detail[1024], payload[3072];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	int n = snprintf(payload, sizeof(payload), "%s%c%s%c%s", step, 0, path ? path : "", 0, detail);
	if (n >= (int)sizeof(payload))
		n = sizeof(payload) - 1;
	/* A server still waiting for work ends on EOF: reap it before we go. */
	if (!in_source_server && source_server_sock >= 0) {
		close(source_server_sock);
		while (waitpid(source_server_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	int channel = in_source_server ? source_server_sock : sync_fd;
	if (channel < 0 || sync_send(SYNC_ERROR, err, payload, n + 1) < 0)
		/* Past READY the parent is gone: stderr is all that is left. */
		dprintf(2, "tsrun-init: %s: %s\n", detail, strerror(err));
	/* Released by start: tell it, through the fifo, that no exec came. */
	if (start_released && fifo_fd >= 0 && write(fifo_fd, "F", 1) < 0) {
		/* start is gone: stderr said it */
	}
	_exit(1);
}

/* Wait for one message of the expected type; returns a malloc'd payload. */
static char *sync_expect(unsigned type)
{
	/* One byte past the largest packet: the payload is NUL-terminated in place. */
	char *buf = malloc(SYNC_MAX_PACKET + 1);
	if (!buf)
		fail(ENOMEM, "sync", NULL, "allocate sync buffer");
	ssize_t n;
	do
		n = recv(sync_fd, buf, SYNC_MAX_PACKET, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail(errno, "sync", NULL, "read from parent");
	if (n == 0)
		_exit(1); /* parent gave up on us; it cleans up */
	struct sync_header h;
	size_t len;
	if (sync_packet_parse(buf, n, &h, &len) < 0)
		fail(EPROTO, "sync", NULL, "malformed message from parent");
	if (h.type != type)
		fail(EPROTO, "sync", NULL, "expected message %u, got %u", type, h.type);
	memmove(buf, buf + sizeof(h), len);
	buf[len] = 0;
	return buf;
}

/* ---- reading the plan --------------------------------------------------- */

struct cursor {
	const unsigned char *p, *end;
};

static uint32_t rd_u32(struct cursor *c)
{
	uint32_t v;
	if (c->end - c->p < 4)
		fail(EINVAL, "plan", NULL, "truncated launch plan");
	memcpy(&v, c->p, 4);
	c->p += 4;
	return v;
}

static uint64_t rd_u64(struct cursor *c)
{
	uint64_t v;
	if (c->end - c->p < 8)
		fail(EINVAL, "plan", NULL, "truncated launch plan");
	memcpy(&v, c->p, 8);
	c->p += 8;
	return v;
}

/* Strings point into the plan buffer, which stays mapped until exec. */
static const char *rd_str(struct cursor *c)
{
	uint32_t len = rd_u32(c);
	/* In uint32_t, len + 4 wraps to 0 for len >= 2^32-4, and c->p[len]
	 * then reads 4 GiB past the plan: compute in size_t, and check len
	 * first so the sum cannot wrap where size_t has 32 bits either. */
	size_t left = c->end - c->p;
	size_t padded = ((size_t)len + 1 + 3) & ~(size_t)3;
	if (len >= left || left < padded || c->p[len] != 0)
		fail(EINVAL, "plan", NULL, "malformed string in launch plan");
	const char *s = (const char *)c->p;
	c->p += padded;
	return s;
}

/* Raw bytes (a BPF program, a CPU mask). */
static struct plan_bytes rd_bytes(struct cursor *c)
{
	struct plan_bytes b;
	b.len = rd_u32(c);
	size_t padded = (b.len + 3) & ~(size_t)3;
	if ((size_t)(c->end - c->p) < padded)
		fail(EINVAL, "plan", NULL, "malformed byte field in launch plan");
	b.at = c->p;
	c->p += padded;
	return b;
}

/* A list of u32s, left in the plan and read with plan_u32v_at. */
static struct plan_u32v rd_u32v(struct cursor *c)
{
	struct plan_u32v v;
	v.count = rd_u32(c);
	if (v.count > (size_t)(c->end - c->p) / 4)
		fail(EINVAL, "plan", NULL, "malformed number list in launch plan");
	v.at = c->p;
	c->p += (size_t)v.count * 4;
	return v;
}

static uint32_t plan_u32v_at(struct plan_u32v v, uint32_t i)
{
	uint32_t x;
	memcpy(&x, v.at + (size_t)i * 4, 4);
	return x;
}

static char **rd_strv(struct cursor *c)
{
	uint32_t n = rd_u32(c);
	if (n > 65536)
		fail(EINVAL, "plan", NULL, "string list too long in launch plan");
	char **v = calloc(n + 1, sizeof(char *));
	if (!v)
		fail(ENOMEM, "plan", NULL, "allocate string list");
	for (uint32_t i = 0; i < n; i++)
		v[i] = (char *)rd_str(c);
	return v;
}

/* An op's fields end where the op does: anything after them is a plan
 * this helper does not understand, not padding to skip. */
static void plan_op_end(struct cursor *c, uint32_t code)
{
	if (c->p != c->end)
		fail(EINVAL, "plan", NULL, "op %u has %zu bytes past its fields", code,
		     (size_t)(c->end - c->p));
}

/* The op being run, for handlers that find what was prepared for it. */
static const unsigned char *current_op;

#include "plan-decode.h"

static unsigned char *read_plan(int fd, size_t *len)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		fail(errno, "plan", NULL, "stat launch plan");
	unsigned char *buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf)
		fail(ENOMEM, "plan", NULL, "allocate launch plan");
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t n = pread(fd, buf + got, st.st_size - got, got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail(n < 0 ? errno : EIO, "plan", NULL, "read launch plan");
		got += n;
	}
	*len = got;
	return buf;
}

/* ---- signals and fds ---------------------------------------------------- */

/*
 * Node ignores SIGPIPE and SIGXFSZ, and ignored dispositions survive
 * execve.  Reset every signal with raw syscalls (musl refuses to touch its
 * internal ones through sigaction) and empty the mask.
 */
static void reset_signals(void)
{
	struct {
		void *handler;
		unsigned long flags;
		void *restorer;
		uint64_t mask;
	} dfl = {0};
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, 8);
	uint64_t empty = 0;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &empty, NULL, 8);
}

/* Mark every fd past stdio and the preserved ones close-on-exec. */
static void cloexec_from(unsigned first)
{
	if (syscall(SYS_close_range, first, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	for (unsigned fd = first; fd < 65536; fd++) /* pre-5.11 kernels */
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

/* ---- paths inside the rootfs ----------------------------------------- */

static int open_in_root(const char *rel, int flags)
{
	return in_root_open(root_fd, rel, flags);
}

_Static_assert(CREATE_DIR == IN_ROOT_DIR && CREATE_FILE == IN_ROOT_FILE,
	       "in-root.h names the plan's create kinds");

static int make_in_root(const char *rel, int create, mode_t file_mode)
{
	return in_root_make(root_fd, rel, create, file_mode);
}

/* "rootfs/proc" style name for messages. */
static const char *in_rootfs(const char *rel, char *buf, size_t size)
{
	snprintf(buf, size, "rootfs/%s", rel);
	return buf;
}

/* ---- mounts ------------------------------------------------------------- */

/*
 * tmpcopyup: copy what lies under a tmpfs mount point into the (still
 * detached) tmpfs, keeping modes, owners and links; nothing is followed.
 */
static int copy_tree(int src, int dst, int depth)
{
	if (depth > 64) {
		errno = ELOOP;
		return -1;
	}
	int list_fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = list_fd < 0 ? NULL : fdopendir(list_fd);
	if (!dir)
		return -1;
	int rc = 0;
	for (struct dirent *e; rc == 0 && (e = readdir(dir));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		struct stat st;
		if (fstatat(src, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -1;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			int from = -1, to = -1;
			rc = mkdirat(dst, e->d_name, st.st_mode & 07777);
			if (rc == 0) {
				from = openat(src, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				to = openat(dst, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				rc = from < 0 || to < 0 ? -1 : copy_tree(from, to, depth + 1);
			}
			if (from >= 0)
				close(from);
			if (to >= 0)
				close(to);
		} else if (S_ISREG(st.st_mode)) {
			int from = openat(src, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			int to = openat(dst, e->d_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
					st.st_mode & 07777);
			char buf[65536];
			ssize_t n = 0;
			if (from < 0 || to < 0)
				rc = -1;
			while (rc == 0 && (n = read(from, buf, sizeof(buf))) > 0)
				if (write(to, buf, n) != n)
					rc = -1;
			if (n < 0)
				rc = -1;
			if (from >= 0)
				close(from);
			if (to >= 0)
				close(to);
		} else if (S_ISLNK(st.st_mode)) {
			char target[4096];
			ssize_t n = readlinkat(src, e->d_name, target, sizeof(target) - 1);
			if (n < 0)
				rc = -1;
			else {
				target[n] = 0;
				rc = symlinkat(target, dst, e->d_name);
			}
		} else {
			rc = mknodat(dst, e->d_name, st.st_mode, st.st_rdev);
		}
		if (rc == 0 && fchownat(dst, e->d_name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) < 0)
			rc = -1;
		if (rc == 0 && !S_ISLNK(st.st_mode)) {
			/* chown cleared setuid bits; put the mode back exactly. */
			char p[64];
			int fd = openat(dst, e->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
			snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
			rc = fd < 0 ? -1 : chmod(p, st.st_mode & 07777);
			if (fd >= 0)
				close(fd);
		}
	}
	int saved = errno;
	closedir(dir);
	errno = saved;
	return rc;
}

static int copy_up(int underlying, int mnt)
{
	struct stat st;
	if (fstat(underlying, &st) < 0 || copy_tree(underlying, mnt, 0) < 0)
		return -1;
	/* The tmpfs root takes the mode and owner of the directory it covers. */
	char p[64];
	snprintf(p, sizeof(p), "/proc/self/fd/%d", mnt);
	if (chown(p, st.st_uid, st.st_gid) < 0 || chmod(p, st.st_mode & 07777) < 0)
		return -1;
	return 0;
}

/* Build a detached filesystem mount: fsopen, one fsconfig per option, fsmount. */
static int make_fs_mount(const struct op_mount *m, const char **failed_option)
{
	int fs = syscall(SYS_fsopen, m->fstype, FSOPEN_CLOEXEC);
	if (fs < 0)
		return -1;
	if (m->source[0] && syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", m->source, 0) < 0) {
		*failed_option = "source";
		goto err;
	}
	char opts[4096];
	snprintf(opts, sizeof(opts), "%s", m->data);
	for (char *save = NULL, *opt = strtok_r(opts, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(opt, '=');
		int rc;
		if (eq) {
			*eq = 0;
			rc = syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, opt, eq + 1, 0);
		} else {
			rc = syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, opt, NULL, 0);
		}
		if (rc < 0) {
			/* Point the message at the option the kernel refused. */
			static char bad[256];
			snprintf(bad, sizeof(bad), "%s", opt);
			*failed_option = bad;
			goto err;
		}
	}
	/* A read-only mount is read-only at the superblock too, as mount(2)'s
	 * MS_RDONLY makes it for runc (a superblock already in use keeps its own). */
	if ((m->attr_set & MOUNT_ATTR_RDONLY) &&
	    syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
		goto err;
	if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		goto err;
	int mnt = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, m->attr_set);
	int saved = errno;
	close(fs);
	errno = saved;
	return mnt;
err:
	saved = errno;
	close(fs);
	errno = saved;
	return -1;
}

/*
 * A destination for proc or sysfs: a directory, reached through no symlink
 * (CVE-2023-27561/28642: a rootfs whose /proc is a symlink would have us
 * mount procfs wherever it points, and write through it later).
 */
static int plain_dir_in_root(const char *rel, const char *where)
{
	struct open_how how = {
		/* No O_NOFOLLOW: a final symlink must fail (ELOOP), not be opened. */
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOENT) {
		int made = make_in_root(rel, CREATE_DIR, 0);
		if (made >= 0)
			close(made);
		fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
	}
	if (fd < 0 && errno == ELOOP)
		fail(ELOOP, "mount", where, "mount destination %s is a symlink (or lies behind one)", where);
	if (fd < 0)
		return -1;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))
		fail(ENOTDIR, "mount", where, "mount destination %s must be a directory", where);
	return fd;
}

/* After move_mount: the destination, looked up afresh, is the mount we made. */
static void check_landed(int mnt, const char *rel, const char *where, const char *what)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC | O_DIRECTORY,
		.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd = syscall(SYS_openat2, root_fd, rel, &how, sizeof(how));
	struct stat want, got;
	struct statfs want_fs, got_fs;
	if (fd < 0 || fstat(mnt, &want) < 0 || fstat(fd, &got) < 0 || fstatfs(mnt, &want_fs) < 0 ||
	    fstatfs(fd, &got_fs) < 0 || want.st_dev != got.st_dev || want.st_ino != got.st_ino ||
	    want_fs.f_type != got_fs.f_type)
		fail(fd < 0 ? errno : EXDEV, "mount", where, "%s did not land on %s", what, where);
	close(fd);
}

static void op_mount(const struct op_mount *o)
{
	struct op_mount m = *o;
	char where[4200];
	in_rootfs(m.dest, where, sizeof(where));
	/* "mount proc (proc)" for filesystems, "mount /host/dir" for binds. */
	char what[4200];
	if (m.kind == MOUNT_KIND_BIND)
		snprintf(what, sizeof(what), "%s", m.source);
	else
		snprintf(what, sizeof(what), "%s (%s)", m.source[0] ? m.source : "none", m.fstype);

	int target = m.create == CREATE_PLAIN_DIR ? plain_dir_in_root(m.dest, where)
						  : make_in_root(m.dest, m.create, 0644);
	if (target < 0)
		fail(errno, "mount", where, "create mount point %s", where);
	/* A destination that a symlink in the image turns into the root itself
	 * would be stacked under pivot_root's new root: refuse it, as the
	 * plan compiler refuses "/" (runc ends up failing too). */
	struct stat target_st, root_st;
	if (fstat(target, &target_st) == 0 && fstat(root_fd, &root_st) == 0 &&
	    target_st.st_dev == root_st.st_dev && target_st.st_ino == root_st.st_ino)
		fail(EINVAL, "mount", where, "mount destination %s resolves to the container's root", where);

	int mnt;
	const char *failed_option = NULL;
	if (m.kind == MOUNT_KIND_PREPARED) {
		mnt = m.slot < MAX_PREPARED_MOUNTS ? prepared_mounts[m.slot] : -1;
		if (mnt <= 0)
			fail(EINVAL, "mount", where, "no prepared tree for %s", where);
		prepared_mounts[m.slot] = -1;
	} else if (m.kind == MOUNT_KIND_BIND) {
		mnt = syscall(SYS_open_tree, AT_FDCWD, m.source,
			      OPEN_TREE_CLONE | O_CLOEXEC | (m.recursive_bind ? AT_RECURSIVE : 0));
	} else {
		mnt = make_fs_mount(&m, &failed_option);
	}
	if (mnt < 0) {
		if (failed_option)
			fail(errno, "mount", where, "mount %s on %s (option %s)", what, where, failed_option);
		fail(errno, "mount", where, "mount %s on %s", what, where);
	}

	/* Per-mount flags on the top mount, then the r* options on the tree. */
	struct mount_attr top = {.attr_set = m.attr_set, .attr_clr = m.attr_clr};
	if (m.kind == MOUNT_KIND_BIND && (top.attr_set || top.attr_clr) &&
	    syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH, &top, sizeof(top)) < 0)
		fail(errno, "mount", where, "set options of %s", where);
	struct mount_attr rec = {.attr_set = m.rec_attr_set, .attr_clr = m.rec_attr_clr};
	if ((rec.attr_set || rec.attr_clr) &&
	    syscall(SYS_mount_setattr, mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, &rec, sizeof(rec)) < 0)
		fail(errno, "mount", where, "set recursive options of %s", where);

	if (m.copy_up && copy_up(target, mnt) < 0)
		fail(errno, "mount", where, "copy the content of %s into its tmpfs (tmpcopyup)", where);

	if (syscall(SYS_move_mount, mnt, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
	    0)
		fail(errno, "mount", where, "mount %s on %s", what, where);

	/* Propagation can only be changed once the mount is attached. */
	if (m.propagation) {
		struct mount_attr prop = {.propagation = m.propagation};
		if (syscall(SYS_mount_setattr, mnt, "",
			    AT_EMPTY_PATH | (m.propagation_recursive ? AT_RECURSIVE : 0), &prop,
			    sizeof(prop)) < 0)
			fail(errno, "mount", where, "set propagation of %s", where);
	}
	if (m.create == CREATE_PLAIN_DIR)
		check_landed(mnt, m.dest, where, what);
	close(mnt);
	close(target);
}

static void op_rootfs_prepare(const struct op_rootfs_prepare *o)
{
	rootfs_path = o->rootfs;
	uint32_t propagation = o->propagation;
	/* Keep our mounts from leaking to the host (and host mounts from
	 * arriving, unless asked); pivot_root also requires a non-shared parent.
	 * 0: we are in the host's mount namespace, whose "/" is not ours to change. */
	if (propagation && mount(NULL, "/", NULL, propagation, NULL) < 0)
		fail(errno, "rootfs", "/", "set propagation of /");
	if (rootfs_mount_fd >= 0) {
		/* An image's overlay, made by tsrun as a detached mount: attached
		 * here, in our own mount namespace only, so the host never has it
		 * (see native/overlay.c).  It is a mount point, as pivot_root needs. */
		if (syscall(SYS_move_mount, rootfs_mount_fd, "", AT_FDCWD, rootfs_path,
			    MOVE_MOUNT_F_EMPTY_PATH) < 0)
			fail(errno, "rootfs", rootfs_path, "attach the image rootfs on %s", rootfs_path);
		close(rootfs_mount_fd);
		rootfs_mount_fd = -1;
	} else if (mount(rootfs_path, rootfs_path, NULL, MS_BIND | MS_REC, NULL) < 0) {
		/* pivot_root needs the new root to be a mount point. */
		fail(errno, "rootfs", rootfs_path, "bind mount rootfs %s", rootfs_path);
	}
	/* In the host's namespace the bind is made private, so what we mount
	 * under it does not propagate to the host's peers. */
	if (!propagation && mount(NULL, rootfs_path, NULL, MS_PRIVATE | MS_REC, NULL) < 0)
		fail(errno, "rootfs", rootfs_path, "make rootfs %s private", rootfs_path);
	root_fd = open(rootfs_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (root_fd < 0)
		fail(errno, "rootfs", rootfs_path, "open rootfs %s", rootfs_path);
}

/*
 * --no-pivot only: a full proc or sysfs mount of the host (path as the
 * plan compiler read it from mountinfo, outside the rootfs) goes away from
 * our mount namespace before the rootfs is moved over "/".  MS_MOVE and
 * chroot leave the host's mounts beneath the rootfs, and the kernel lets a
 * new user namespace mount procfs or sysfs wherever a fully visible one
 * exists in its mount namespace, masked paths or not (runc's msMoveRoot
 * does the same).  Detached where we may; where the mount is locked (we
 * are in a user namespace) a read-only tmpfs on top keeps it from being
 * fully visible.
 */
static void op_hide_host_fs(const struct op_hide_host_fs *o)
{
	const char *path = o->path;
	if (mount(NULL, path, NULL, MS_SLAVE | MS_REC, NULL) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return; /* not there in our namespace */
		fail(errno, "pivot_root", path, "make host mount %s a slave", path);
	}
	if (umount2(path, MNT_DETACH | UMOUNT_NOFOLLOW) == 0)
		return;
	if (errno != EINVAL && errno != EPERM)
		fail(errno, "pivot_root", path, "detach host mount %s", path);
	if (mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0") < 0)
		fail(errno, "pivot_root", path, "cover host mount %s", path);
}

static void op_pivot_root(const struct op_pivot_root *o)
{
	uint32_t mode = o->mode;
	if (root_fd < 0)
		fail(EINVAL, "pivot_root", NULL, "pivot_root before the rootfs was prepared");
	if (fchdir(root_fd) < 0)
		fail(errno, "pivot_root", rootfs_path, "chdir to rootfs %s", rootfs_path);
	if (mode == PIVOT_CHROOT) {
		/* The host's mount namespace: pivot_root or a move would change
		 * the host's root; a chroot changes only ours (runc's choice too). */
		if (chroot(".") < 0)
			fail(errno, "pivot_root", rootfs_path, "chroot to rootfs %s", rootfs_path);
	} else if (mode == PIVOT_MOVE) {
		/* --no-pivot: for ramfs roots, where pivot_root is impossible. */
		if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
			fail(errno, "pivot_root", rootfs_path, "move rootfs %s to /", rootfs_path);
		if (chroot(".") < 0)
			fail(errno, "pivot_root", rootfs_path, "chroot to rootfs %s", rootfs_path);
	} else {
		int old_root = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (old_root < 0)
			fail(errno, "pivot_root", "/", "open old root");
		/* Stack the old root under the new one, then detach it: no
		 * directory for put_old is needed inside the rootfs. */
		if (syscall(SYS_pivot_root, ".", ".") < 0)
			fail(errno, "pivot_root", rootfs_path, "pivot_root to %s", rootfs_path);
		/* Work on the old root by fd: "." after pivot_root is not
		 * guaranteed to be it, and making the new root rslave would undo
		 * the container's own mount propagation. */
		if (fchdir(old_root) < 0)
			fail(errno, "pivot_root", "/", "chdir to old root");
		if (mount(NULL, ".", NULL, MS_SLAVE | MS_REC, NULL) < 0)
			fail(errno, "pivot_root", "/", "make old root a slave");
		if (umount2(".", MNT_DETACH) < 0)
			fail(errno, "pivot_root", "/", "detach old root");
		close(old_root);
	}
	if (chdir("/") < 0)
		fail(errno, "pivot_root", "/", "chdir to /");
	close(root_fd);
	root_fd = -1;
}

/* Write under /proc only after checking the fd really is procfs. */
/*
 * The host's /proc, for the mount-source server once it has joined the
 * container's mount namespace (where /proc may be another pid namespace's,
 * if that namespace was joined by path); -1: "/proc" as it resolves.
 */
static int host_proc_fd = -1;

/* `path` is "/proc/..."; with host_proc_fd it is taken below that instead. */
static int open_proc_path(const char *path, int flags)
{
	if (host_proc_fd >= 0 && strncmp(path, "/proc/", 6) == 0)
		return openat(host_proc_fd, path + 6, flags);
	return open(path, flags);
}

static int write_proc_file(const char *path, const char *value)
{
	int fd = open_proc_path(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct statfs sfs;
	if (fstatfs(fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC) {
		close(fd);
		errno = EXDEV;
		return -1;
	}
	ssize_t n = write(fd, value, strlen(value));
	int saved = errno;
	close(fd);
	errno = saved;
	return n < 0 ? -1 : 0;
}

/*
 * A user namespace holding the given maps, as an fd: a child unshares it
 * and waits while we, still in the host's user namespace, write its maps.
 */
static int userns_with_maps(const char *uid_map, const char *gid_map)
{
	int ready[2], hold[2];
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		/* Only the parent's copy of hold[1] may keep us waiting. */
		close(hold[1]);
		close(ready[0]);
		char byte = unshare(CLONE_NEWUSER) == 0;
		if (write(ready[1], &byte, 1) != 1)
			_exit(1);
		while (read(hold[0], &byte, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	close(ready[1]);
	close(hold[0]);
	char ok = 0, path[64];
	int fd = -1, saved = EPERM;
	if (read(ready[0], &ok, 1) == 1 && ok) {
		char gid_path[64];
		snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
		snprintf(gid_path, sizeof(gid_path), "/proc/%d/gid_map", pid);
		if (write_proc_file(path, uid_map) == 0 && write_proc_file(gid_path, gid_map) == 0) {
			snprintf(path, sizeof(path), "/proc/%d/ns/user", pid);
			fd = open_proc_path(path, O_RDONLY | O_CLOEXEC);
		}
		saved = errno;
	}
	close(ready[0]);
	close(hold[1]); /* lets the child exit */
	waitpid(pid, NULL, 0);
	errno = saved;
	return fd;
}

/*
 * The mount-source server: bind sources of a container with a user
 * namespace (runc: goCreateMountSources, and nsexec's mount sources in 1.1).
 *
 * Why: a bind cloned in the host's mount namespace carries none of the
 * kernel's locks.  When the container's mount namespace is copied into its
 * less privileged user namespace, every mount from the host is locked: the
 * flags the host set (ro, nosuid, nodev, noexec, atime) cannot be cleared
 * and a mount inside a tree cannot be unmounted to show what it covers.
 * A clone taken from the host's namespace has no such locks, so the
 * container's root could remount it writable or unmount its submounts.
 * Cloning from inside the container's mount namespace keeps them.
 *
 * Why not from the helper itself: by then it is the container's root,
 * which may not reach a source (a 0700 directory of a host user on the
 * way) and may not idmap a host filesystem.  So, before any namespace
 * changes, the helper forks this server, which stays in the host's user
 * namespace (when tsrun is root; a user's tsrun has no say there, so its
 * server joins the container's user namespace, staying that user).  Protocol, over a SOCK_SEQPACKET pair:
 *
 *   OP_MOUNT_SOURCE_SERVER   fork; the server walks the rest of the plan
 *                            doing only the three ops below
 *   OP_MOUNT_SOURCES_JOIN    helper -> server: its user namespace (fd),
 *                            with userns (tsrun is not root), then its
 *                            mount namespace (fd); the server joins them
 *   OP_IDMAP_PREPARE (each)  server -> helper: u32 slot + the tree (fd)
 *   OP_MOUNT_SOURCES_DONE    the server exits; the helper reaps it
 *
 * A failure in the server comes to the helper instead of a tree, as the
 * sync message it would have sent tsrun; the helper reaps the server and
 * forwards the message.
 */
static ssize_t recv_with_fd(int sock, void *data, size_t len, int *fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {data, len};
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	ssize_t n;
	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	*fd = -1;
	struct cmsghdr *cm = n > 0 ? CMSG_FIRSTHDR(&msg) : NULL;
	if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(fd, CMSG_DATA(cm), sizeof(int));
	return n;
}

static void op_mount_source_server(void)
{
	int pair[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		fail(errno, "mount", NULL, "socket pair for the mount-source server");
	pid_t pid = fork();
	if (pid < 0)
		fail(errno, "mount", NULL, "fork the mount-source server");
	if (pid == 0) {
		close(pair[0]);
		in_source_server = 1;
		source_server_sock = pair[1];
		/* Only the socket to the helper and the host's /proc: an orphaned
		 * server (stuck on a slow filesystem) must not hold tsrun's sync
		 * socket, the exec fifo or the console open. */
		host_proc_fd = open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
		int *held[] = {&sync_fd, &fifo_fd, &console_fd, &rootfs_mount_fd, &clone_cgroup_fd};
		for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++)
			if (*held[i] >= 0) {
				close(*held[i]);
				*held[i] = -1;
			}
		for (int i = 0; i < setns_count; i++)
			close(setns_fds[i].fd);
		setns_count = 0;
		return;
	}
	close(pair[1]);
	source_server_sock = pair[0];
	source_server_pid = pid;
}

static void op_mount_sources_join(const struct op_mount_sources_join *o)
{
	uint32_t join_userns = o->userns;
	if (!in_source_server) {
		if (join_userns) {
			int userns = open("/proc/self/ns/user", O_RDONLY | O_CLOEXEC);
			if (userns < 0 || send_with_fd(source_server_sock, userns, "u", 1) < 0)
				fail(errno, "mount", NULL,
				     "hand the user namespace to the mount-source server");
			close(userns);
		}
		int mntns = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
		if (mntns < 0 || send_with_fd(source_server_sock, mntns, "j", 1) < 0)
			fail(errno, "mount", NULL, "hand the mount namespace to the mount-source server");
		close(mntns);
		return;
	}
	char byte;
	if (join_userns) {
		/* tsrun is a user without privilege in the host's user namespace:
		 * its container's, which it owns, gives the server the say over
		 * the container's mount namespace.  It stays that user on the
		 * host, so it reaches the sources that user may. */
		int userns;
		if (recv_with_fd(source_server_sock, &byte, 1, &userns) != 1 || userns < 0)
			_exit(1); /* the helper is gone; it has reported */
		if (setns(userns, CLONE_NEWUSER) < 0)
			fail(errno, "mount", NULL,
			     "join the container's user namespace to take its bind sources");
		close(userns);
		/* Not dumpable in there either: the container's root must not
		 * ptrace it or take its fds while it serves. */
		prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	}
	int mntns;
	if (recv_with_fd(source_server_sock, &byte, 1, &mntns) != 1 || mntns < 0)
		_exit(1); /* the helper is gone; it has reported */
	if (setns(mntns, CLONE_NEWNS) < 0)
		fail(errno, "mount", NULL, "join the container's mount namespace to take its bind sources");
	close(mntns);
}

/* The server sent its failure (or died): reap it, then tell tsrun. */
__attribute__((noreturn)) static void source_server_failed(ssize_t n, int fd, const char *report)
{
	if (fd >= 0)
		close(fd);
	/* Closed first: a server still sending would otherwise block on a full queue while we wait. */
	close(source_server_sock);
	source_server_sock = -1;
	while (waitpid(source_server_pid, NULL, 0) < 0 && errno == EINTR)
		;
	struct sync_header h;
	size_t len;
	if (n > 0 && sync_packet_parse(report, n, &h, &len) == 0) {
		if (h.type == SYNC_ERROR) {
			ssize_t sent;
			do
				sent = send(sync_fd, report, n, MSG_NOSIGNAL);
			while (sent < 0 && errno == EINTR);
			_exit(1);
		}
	}
	fail(EPROTO, "mount", NULL, "the mount-source server ended without a bind source");
}

static void op_mount_sources_done(void)
{
	if (in_source_server)
		_exit(0);
	close(source_server_sock);
	source_server_sock = -1;
	while (waitpid(source_server_pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * A bind mount's tree, built before it is attached: an idmapped one (only
 * from the host's user namespace may a host filesystem be idmapped), and
 * every bind of a container with a user namespace (by the server above).
 * The container's init later attaches the tree by its slot.
 */
static void op_idmap_prepare(const struct op_idmap_prepare *o)
{
	uint32_t slot = o->slot;
	const char *source = o->source;
	uint32_t recursive_bind = o->recursive_bind;
	const char *uid_map = o->uid_map, *gid_map = o->gid_map;
	uint32_t attr_set = o->attr_set, attr_clr = o->attr_clr;
	uint32_t rec_attr_set = o->rec_attr_set, rec_attr_clr = o->rec_attr_clr;
	uint32_t idmap_recursive = o->idmap_recursive;
	if (slot >= MAX_PREPARED_MOUNTS)
		fail(EINVAL, "mount", source, "more than %d bind mounts to prepare", MAX_PREPARED_MOUNTS);
	if (source_server_sock >= 0 && !in_source_server) {
		uint32_t got = ~0u;
		int tree;
		static char report[4096 + sizeof(struct sync_header)];
		ssize_t n = recv_with_fd(source_server_sock, report, sizeof(report), &tree);
		if (n != sizeof(got) || tree < 0)
			source_server_failed(n, tree, report);
		memcpy(&got, report, sizeof(got));
		if (got != slot)
			fail(EPROTO, "mount", source, "mount-source server sent slot %u for %u", got, slot);
		prepared_mounts[slot] = tree;
		return;
	}
	int tree = syscall(SYS_open_tree, AT_FDCWD, source,
			   OPEN_TREE_CLONE | O_CLOEXEC | (recursive_bind ? AT_RECURSIVE : 0));
	if (tree < 0 && errno == EINVAL && !recursive_bind && in_source_server)
		fail(errno, "mount", source,
		     "bind %s: it has mounts under it that the container's user namespace "
		     "may not uncover; bind it with rbind",
		     source);
	if (tree < 0)
		fail(errno, "mount", source, "open %s for a bind mount", source);
	if (uid_map[0]) {
		int userns = userns_with_maps(uid_map, gid_map);
		if (userns < 0)
			fail(errno, "mount", source, "user namespace for the idmapped mount of %s", source);
		struct mount_attr idmap = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns};
		if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | (idmap_recursive ? AT_RECURSIVE : 0),
			    &idmap, sizeof(idmap)) < 0)
			fail(errno, "mount", source, "idmap mount of %s", source);
		close(userns);
	}
	struct mount_attr top = {.attr_set = attr_set, .attr_clr = attr_clr};
	if ((attr_set || attr_clr) &&
	    syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &top, sizeof(top)) < 0)
		fail(errno, "mount", source, "set options of the bind mount of %s", source);
	struct mount_attr rec = {.attr_set = rec_attr_set, .attr_clr = rec_attr_clr};
	if ((rec_attr_set || rec_attr_clr) &&
	    syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &rec, sizeof(rec)) < 0)
		fail(errno, "mount", source, "set recursive options of the bind mount of %s", source);
	if (in_source_server) {
		if (send_with_fd(source_server_sock, tree, &slot, sizeof(slot)) < 0)
			_exit(1); /* the helper is gone; it has reported */
		close(tree);
		return;
	}
	prepared_mounts[slot] = tree;
}

/* ---- devices ------------------------------------------------------------ */

static void op_mknod(const struct op_mknod *o)
{
	const char *path = o->path;
	uint32_t type = o->type, major_ = o->major, minor_ = o->minor;
	uint32_t mode = o->mode, uid = o->uid, gid = o->gid;
	uint32_t bind_from_host = o->bind_from_host;
	char where[4200];
	in_rootfs(path, where, sizeof(where));

	char parent_path[4096];
	snprintf(parent_path, sizeof(parent_path), "%s", path);
	char *slash = strrchr(parent_path, '/');
	const char *name = path;
	int parent;
	if (slash) {
		*slash = 0;
		name = slash + 1;
		parent = make_in_root(parent_path, CREATE_DIR, 0);
	} else {
		parent = dup(root_fd);
	}
	if (parent < 0)
		fail(errno, "device", where, "create parent directory of %s", where);

	if (bind_from_host) {
		/* mknod is not allowed in a user namespace: bind the host's node.
		 * The mount point is created, never opened: what the image put
		 * there may be a FIFO (an open would block) or a device. */
		struct op_mount m = {0};
		int fd = openat(parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno != EEXIST)
			fail(errno, "device", where, "create %s", where);
		if (fd >= 0)
			close(fd);
		char host[4200];
		snprintf(host, sizeof(host), "/%s", path);
		int tree = syscall(SYS_open_tree, AT_FDCWD, host, OPEN_TREE_CLONE | O_CLOEXEC);
		if (tree < 0)
			fail(errno, "device", host, "open host device %s", host);
		int target = open_in_root(path, O_NOFOLLOW);
		struct stat st;
		if (target >= 0 && fstat(target, &st) == 0 && S_ISLNK(st.st_mode)) {
			close(target);
			target = -1;
			errno = ELOOP;
		}
		if (target < 0)
			fail(errno, "device", where, "create %s", where);
		if (syscall(SYS_move_mount, tree, "", target, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(errno, "device", where, "bind %s on %s", host, where);
		(void)m;
		close(tree);
		close(target);
		close(parent);
		return;
	}

	unlinkat(parent, name, 0); /* a config may replace a default device */
	if (mknodat(parent, name, type | (mode & 07777), makedev(major_, minor_)) < 0)
		fail(errno, "device", where, "mknod %s", where);
	if (fchownat(parent, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		fail(errno, "device", where, "chown %s", where);
	/* mknod applied the umask; the config's mode is exact. */
	int fd = openat(parent, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", fd);
	if (fd < 0 || chmod(fdpath, mode & 07777) < 0)
		fail(errno, "device", where, "chmod %s", where);
	close(fd);
	close(parent);
}

static void op_symlink(const struct op_symlink *o)
{
	const char *target = o->target, *path = o->path;
	char where[4200];
	in_rootfs(path, where, sizeof(where));
	char parent_path[4096];
	snprintf(parent_path, sizeof(parent_path), "%s", path);
	char *slash = strrchr(parent_path, '/');
	const char *name = path;
	int parent = slash ? (*slash = 0, name = slash + 1, make_in_root(parent_path, CREATE_DIR, 0))
			   : dup(root_fd);
	if (parent < 0)
		fail(errno, "symlink", where, "create parent directory of %s", where);
	if (symlinkat(target, parent, name) < 0 && errno != EEXIST)
		fail(errno, "symlink", where, "symlink %s -> %s", where, target);
	close(parent);
}

/* process.cwd, made as runc makes it: `mkdir -p`, 0755, root's; what exists is left as it is. */
static void op_mkdir(const struct op_mkdir *o)
{
	const char *path = o->path;
	char where[4200];
	in_rootfs(path, where, sizeof(where));
	if (root_fd < 0)
		fail(EBADF, "cwd", where, "process.cwd: create %s before the rootfs is prepared", where);
	/* Only a missing one is made; anything else there (a magic link, a
	 * loop) is left for OP_CHDIR to judge and name. */
	int fd = open_in_root(path, 0);
	if (fd >= 0 || errno != ENOENT) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fd = make_in_root(path, CREATE_DIR, 0);
	if (fd < 0)
		fail(errno, "cwd", where, "process.cwd: create %s", where);
	close(fd);
}

/* ---- hooks run inside the container's namespaces ---------------------- */

static const char *hook_stage_name(uint32_t stage)
{
	return stage == HOOK_CREATE_CONTAINER ? "createContainer" : "startContainer";
}

/* The last line a hook wrote (stdout and stderr share one pipe), for its failure message. */
static char hook_said[512];
static size_t hook_said_len;

static void hook_output(const char *buf, size_t n)
{
	if (n >= sizeof(hook_said)) {
		memcpy(hook_said, buf + n - sizeof(hook_said), sizeof(hook_said));
		hook_said_len = sizeof(hook_said);
		return;
	}
	if (hook_said_len + n > sizeof(hook_said)) {
		size_t drop = hook_said_len + n - sizeof(hook_said);
		memmove(hook_said, hook_said + drop, hook_said_len - drop);
		hook_said_len -= drop;
	}
	memcpy(hook_said + hook_said_len, buf, n);
	hook_said_len += n;
}

/* " (stderr: LINE)" from what the hook said last, or "". */
static const char *hook_said_suffix(char *out, size_t size)
{
	size_t end = hook_said_len;
	while (end && (hook_said[end - 1] == '\n' || hook_said[end - 1] == '\r'))
		end--;
	size_t start = end;
	while (start && hook_said[start - 1] != '\n')
		start--;
	if (start == end)
		return "";
	snprintf(out, size, " (stderr: %.*s)", (int)(end - start), hook_said + start);
	return out;
}

static void op_hook(const struct op_hook *o)
{
	uint32_t stage = o->stage;
	const char *path = o->path;
	char **args = o->args, **env = o->env;
	uint32_t timeout = o->timeout;
	const char *cwd = o->cwd;
	/* A hook that names no env gets the process's, as runc's does (its
	 * hooks inherit the init's environment). */
	if (o->process_env && exec_env)
		env = exec_env;
	const char *stage_name = hook_stage_name(stage);
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
		fail(errno, "hook", path, "%s hook %s: pipe", stage_name, path);
	pid_t pid = fork();
	if (pid < 0)
		fail(errno, "hook", path, "%s hook %s: fork", stage_name, path);
	if (pid == 0) {
		/* The state on stdin; stdout and stderr to us, never the
		 * container's stdio (runc keeps a hook's output too, and the
		 * runtime hooks' goes to tsrun).  Nothing else: not the sync
		 * socket, the exec fifo or the console, which a hook binary from
		 * the image could misuse. */
		dup2(in[0], 0);
		dup2(out[1], 1);
		dup2(out[1], 2);
		cloexec_from(3);
		if (cwd[0] && chdir(cwd) < 0) {
			dprintf(2, "chdir %s: %s\n", cwd, strerror(errno));
			_exit(127);
		}
		char *default_argv[] = {(char *)path, NULL};
		execve(path, args[0] ? args : default_argv, env);
		dprintf(2, "%s\n", strerror(errno));
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	const char *state = stage == HOOK_CREATE_CONTAINER ? create_hook_state : start_hook_state;
	if (!state)
		state = "{}";
	size_t len = strlen(state), off = 0;
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	hook_said_len = 0;

	/* Feed its stdin, drain its output and wait for it, all at once: a
	 * hook that reads nothing or says much must not stall us, and one
	 * that outlives its timeout is killed. */
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	/* A hook that closes its stdin first makes our write fail with EPIPE,
	 * and raise SIGPIPE, which would kill us: held back while we feed it,
	 * and taken away after (runc's hooks ignore EPIPE on stdin too). */
	sigset_t pipe_set, old_mask;
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	sigprocmask(SIG_BLOCK, &pipe_set, &old_mask);
	long long deadline_ms = -1;
	struct timespec now;
	if (timeout) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		deadline_ms = now.tv_sec * 1000LL + now.tv_nsec / 1000000 + (long long)timeout * 1000;
	}
	int status = 0;
	bool exited = false, out_open = true;
	static char buf[4096];
	while (!exited) {
		struct pollfd p[3];
		int n = 0, in_at = -1, out_at = -1;
		if (off < len && in[1] >= 0) {
			in_at = n;
			p[n++] = (struct pollfd){.fd = in[1], .events = POLLOUT};
		}
		if (out_open) {
			out_at = n;
			p[n++] = (struct pollfd){.fd = out[0], .events = POLLIN};
		}
		int pid_at = n;
		p[n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
		int wait_ms = -1;
		if (deadline_ms >= 0) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			long long left = deadline_ms - (now.tv_sec * 1000LL + now.tv_nsec / 1000000);
			wait_ms = left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
		}
		int rc = pidfd >= 0 ? poll(p, n, wait_ms) : 1;
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc == 0) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			fail(ETIMEDOUT, "hook", path, "%s hook %s timed out after %us", stage_name, path,
			     timeout);
		}
		if (in_at >= 0 && p[in_at].revents) {
			ssize_t w = write(in[1], state + off, len - off);
			if (w > 0)
				off += w;
			else if (w < 0 && errno != EAGAIN && errno != EINTR)
				off = len; /* the hook need not read its stdin */
			if (off >= len) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (out_at >= 0 && p[out_at].revents) {
			ssize_t r = read(out[0], buf, sizeof(buf));
			if (r > 0)
				hook_output(buf, r);
			else if (!(r < 0 && errno == EINTR))
				out_open = false;
		}
		if (pidfd < 0 || p[pid_at].revents) {
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			exited = true;
		}
	}
	struct timespec no_wait = {0, 0};
	while (sigtimedwait(&pipe_set, NULL, &no_wait) == SIGPIPE)
		;
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	/* What it wrote before it exited; not what a child it left behind writes later. */
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	for (ssize_t r; out_open && (r = read(out[0], buf, sizeof(buf))) > 0;)
		hook_output(buf, r);
	if (in[1] >= 0)
		close(in[1]);
	close(out[0]);
	if (pidfd >= 0)
		close(pidfd);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return;
	char said[600];
	const char *suffix = hook_said_suffix(said, sizeof(said));
	if (WIFSIGNALED(status))
		fail(ECANCELED, "hook", path, "%s hook %s killed by signal %d%s", stage_name, path,
		     WTERMSIG(status), suffix);
	fail(ECANCELED, "hook", path, "%s hook %s exited with status %d%s", stage_name, path,
	     WEXITSTATUS(status), suffix);
}

/* ---- process attributes ------------------------------------------------- */

/*
 * Our own handle on procfs, for writes into it (CVE-2025-52881): a fresh
 * procfs instance mounted nowhere, so nothing the container (or a hook)
 * mounted over a file in its /proc can be in the way.  Where a new procfs
 * may not be made, a clone of the container's /proc mount alone, which
 * likewise leaves out whatever is mounted inside it.
 */
#define PROC_ROOT_INO	  1
#define MOUNT_ATTR_NOSUID 0x2
#define MOUNT_ATTR_NODEV  0x4
#define MOUNT_ATTR_NOEXEC 0x8
static int proc_fd = -1;

static int proc_handle(void)
{
	if (proc_fd >= 0)
		return proc_fd;
	int fs = syscall(SYS_fsopen, "proc", FSOPEN_CLOEXEC);
	if (fs >= 0) {
		if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
			proc_fd = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC,
					  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
		close(fs);
	}
	if (proc_fd < 0)
		proc_fd = syscall(SYS_open_tree, AT_FDCWD, "/proc",
				  OPEN_TREE_CLONE | O_CLOEXEC | AT_SYMLINK_NOFOLLOW);
	if (proc_fd < 0)
		return -1;
	struct statfs sfs;
	struct stat st;
	if (fstatfs(proc_fd, &sfs) < 0 || sfs.f_type != PROC_SUPER_MAGIC || fstat(proc_fd, &st) < 0 ||
	    st.st_ino != PROC_ROOT_INO) {
		close(proc_fd);
		proc_fd = -1;
		errno = EXDEV;
		return -1;
	}
	return proc_fd;
}

/* Open a file under our procfs handle: no symlink, no other mount, no way out. */
static int open_in_proc(const char *rel, int flags)
{
	int proc = proc_handle();
	if (proc < 0)
		return -1;
	struct open_how how = {
		.flags = flags | O_CLOEXEC | O_NOFOLLOW,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd;
	do
		fd = syscall(SYS_openat2, proc, rel, &how, sizeof(how));
	while (fd < 0 && errno == EAGAIN);
	return fd;
}

/* key: the path under /proc/sys, as the plan compiler made it. */
static void op_sysctl(const struct op_sysctl *o)
{
	const char *key = o->key, *value = o->value;
	char rel[512], shown[520];
	int len = snprintf(rel, sizeof(rel), "sys/%s", key);
	if (len < 0 || (size_t)len >= sizeof(rel))
		fail(ENAMETOOLONG, "sysctl", NULL, "set sysctl /proc/sys/%.64s...: name too long", key);
	snprintf(shown, sizeof(shown), "/proc/%s", rel);
	int fd = open_in_proc(rel, O_WRONLY);
	if (fd < 0)
		fail(errno, "sysctl", shown, "set sysctl %s", shown);
	ssize_t n = write(fd, value, strlen(value));
	int saved = errno;
	close(fd);
	if (n < 0)
		fail(saved, "sysctl", shown, "set sysctl %s", shown);
}

/* "lo" up in our (new) network namespace, as runc does. */
static void op_loopback_up(void)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		fail(errno, "network", "lo", "read the flags of lo");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		fail(errno, "network", "lo", "bring lo up");
	close(s);
}

/*
 * The per-task attributes of process-attrs.ts, one syscall each.  Errors
 * name the config field, since the kernel's errno alone does not say which
 * of them it refused.
 */

static void op_scheduler(const struct op_scheduler *o)
{
	struct tsrun_sched_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.size = sizeof(attr);
	attr.sched_policy = o->policy;
	attr.sched_flags = o->flags;
	attr.sched_nice = (int32_t)o->nice;
	attr.sched_priority = o->priority;
	attr.sched_runtime = o->runtime;
	attr.sched_deadline = o->deadline;
	attr.sched_period = o->period;
	uint32_t cpuset_limited = o->cpuset_limited;
	if (syscall(SYS_sched_setattr, 0, &attr, 0) < 0) {
		/* runc's explanation: SCHED_DEADLINE's admission test wants
		 * every CPU of the root domain. */
		if (errno == EPERM && cpuset_limited)
			fail(errno, "scheduler", NULL,
			     "process.scheduler: cannot be used together with linux.resources.cpu.cpus");
		fail(errno, "scheduler", NULL, "process.scheduler: set policy %u", attr.sched_policy);
	}
}

static void op_ioprio(const struct op_ioprio *o)
{
	uint32_t value = o->value;
	if (syscall(SYS_ioprio_set, 1 /* IOPRIO_WHO_PROCESS */, 0, value) < 0)
		fail(errno, "ioPriority", NULL, "process.ioPriority: set class %u level %u", value >> 13,
		     value & 7);
}

static void op_personality(const struct op_personality *o)
{
	uint32_t persona = o->persona;
	if (syscall(SYS_personality, persona) < 0)
		fail(errno, "personality", NULL, "linux.personality: set 0x%x", persona);
}

static void op_mempolicy(const struct op_mempolicy *o)
{
	uint32_t mode = o->mode;
	size_t len = o->nodemask.len;
	const unsigned char *mask = o->nodemask.at;
	uint32_t maxnode = o->maxnode;
	if (maxnode > len * 8u)
		fail(EINVAL, "plan", NULL, "memory policy mask shorter than its node count");
	/* set_mempolicy reads maxnode - 1 bits (a kernel quirk every caller pads for). */
	if (syscall(SYS_set_mempolicy, mode, len ? mask : NULL, len ? (unsigned long)maxnode + 1 : 0) < 0)
		fail(errno, "memoryPolicy", NULL, "linux.memoryPolicy: set mode 0x%x", mode);
}

static void op_cpu_affinity(const struct op_cpu_affinity *o)
{
	uint32_t stage = o->stage;
	size_t len = o->mask.len;
	const unsigned char *mask = o->mask.at;
	if (syscall(SYS_sched_setaffinity, 0, len, mask) == 0 || stage == AFFINITY_RESET)
		return; /* a reset is best effort, as runc's is */
	fail(errno, "affinity", NULL, "process.execCPUAffinity.%s: set CPU affinity",
	     stage == AFFINITY_INITIAL ? "initial" : "final");
}

static void op_timens_offsets(const struct op_timens_offsets *o)
{
	const char *content = o->content;
	if (write_proc_file("/proc/self/timens_offsets", content) < 0)
		fail(errno, "timens", "/proc/self/timens_offsets", "write time namespace offsets");
}

/* One sendmsg carrying `len` bytes of `data` and the fd (SCM_RIGHTS). */
static int send_with_fd(int sock, int fd, const void *data, size_t len)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {(void *)data, len};
	struct msghdr msg = {
		.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf)};
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	ssize_t n;
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -1 : 0;
}

/*
 * The container's terminal: a pty from the container's own devpts, the
 * slave taken straight from the master (TIOCGPTPEER, no path to swap) and
 * bound over /dev/console (CVE-2025-52565); the master goes to the
 * --console-socket as runc's terminals.md describes.
 */
static void op_console(const struct op_console *o)
{
	uint32_t rows = o->rows, cols = o->cols, bind_dev_console = o->bind_dev_console;
	if (console_fd < 0)
		fail(EINVAL, "console", NULL, "process.terminal needs --console-socket");
	int master = open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		master = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (master < 0)
		fail(errno, "console", "/dev/pts/ptmx", "open /dev/pts/ptmx");
	int unlock = 0;
	if (ioctl(master, TIOCSPTLCK, &unlock) < 0)
		fail(errno, "console", "/dev/pts/ptmx", "unlock pty");
	int slave = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		fail(errno, "console", "/dev/pts", "open pty slave");
	struct statfs sfs;
	if (fstatfs(slave, &sfs) < 0 || sfs.f_type != DEVPTS_SUPER_MAGIC)
		fail(EXDEV, "console", "/dev/pts", "pty slave is not on devpts");
	struct stat slave_st;
	if (fstat(slave, &slave_st) == 0) {
		console_peer = slave_st;
		console_peer_set = 1;
	}
	if (rows || cols) {
		struct winsize ws = {.ws_row = rows, .ws_col = cols};
		ioctl(slave, TIOCSWINSZ, &ws);
	}
	/* /dev/console (the init's terminal only, not exec's): created without
	 * following links and never opened (the image's may be a FIFO, which
	 * would block, or a device), a symlink refused; the slave bound on it. */
	if (bind_dev_console) {
		int console =
			open("/dev/console", O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (console < 0 && errno != EEXIST)
			fail(errno, "console", "/dev/console", "create /dev/console");
		if (console >= 0)
			close(console);
		int target = open("/dev/console", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat st;
		if (target >= 0 && fstat(target, &st) == 0 && S_ISLNK(st.st_mode)) {
			close(target);
			errno = ELOOP;
			fail(errno, "console", "/dev/console", "create /dev/console");
		}
		int tree = syscall(SYS_open_tree, slave, "", OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
		if (target < 0 || tree < 0 ||
		    syscall(SYS_move_mount, tree, "", target, "",
			    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
			fail(errno, "console", "/dev/console", "bind pty on /dev/console");
		close(tree);
		close(target);
	}
	/* The name runc sends with the fd: engines may use it as the file's name. */
	if (send_with_fd(console_fd, master, "/dev/ptmx", sizeof("/dev/ptmx") - 1) < 0)
		fail(errno, "console", NULL, "send pty master to console socket");
	close(master);
	close(console_fd);
	console_fd = -1;
	if (ioctl(slave, TIOCSCTTY, 0) < 0)
		fail(errno, "console", "/dev/console", "make pty the controlling terminal");
	for (int fd = 0; fd < 3; fd++)
		if (dup2(slave, fd) < 0)
			fail(errno, "console", "/dev/console", "attach pty to stdio");
	close(slave);
}

/*
 * The process's stdio becomes its user's, as runc's fixStdioPermissions
 * does, so the process can reopen it (`echo > /dev/stdout`, the pty of
 * `--tty`): a user other than root, and root too in a user namespace,
 * where the owner may be the caller's id (a rootless caller's pipes).  Only what is the container's own or holds no
 * data of the host: the pty tsrun made (console_fd's peer), pipes and
 * sockets.  Never a regular file, the host's terminal or another device:
 * runc chowns those too (a host file given to `run --detach` becomes the
 * container user's on the host), which tsrun does not, on purpose.  As
 * in runc, only the owner changes, and a stdio whose owner is not mapped
 * here is left alone.
 */

static void give_stdio_to(uint32_t uid)
{
	for (int fd = 0; fd <= 2; fd++) {
		struct stat st;
		if (fstat(fd, &st) < 0 || st.st_uid == uid)
			continue;
		/* A FIFO only when anonymous (pipefs): a named one is a host file. */
		struct statfs sfs;
		int anonymous_pipe =
			S_ISFIFO(st.st_mode) && fstatfs(fd, &sfs) == 0 && sfs.f_type == PIPEFS_MAGIC_;
		int ours = anonymous_pipe || S_ISSOCK(st.st_mode) ||
			   (S_ISCHR(st.st_mode) && console_peer_set && st.st_rdev == console_peer.st_rdev &&
			    st.st_dev == console_peer.st_dev);
		if (ours && fchown(fd, uid, (gid_t)-1) < 0 && errno != EINVAL && errno != EPERM &&
		    errno != EROFS)
			fail(errno, "user", NULL, "give stdio %d to uid %u", fd, uid);
	}
}

static void op_user(const struct op_user *o)
{
	uint32_t uid = o->uid, gid = o->gid, mask = o->umask, ngroups = o->groups.count;
	gid_t groups[65536];
	if (ngroups > 65536)
		fail(EINVAL, "user", NULL, "too many additional groups");
	/* (uid_t)-1 means "leave unchanged" to setresuid and friends, so
	 * 4294967295 would keep us root: refuse anything past 2^31-1, as
	 * runc does (the parent has refused it already). */
	if (uid > INT32_MAX || gid > INT32_MAX)
		fail(EINVAL, "user", NULL, "uid %u, gid %u: uids and gids must be in range 0-2147483647", uid,
		     gid);
	for (uint32_t i = 0; i < ngroups; i++) {
		groups[i] = plan_u32v_at(o->groups, i);
		if (groups[i] > INT32_MAX)
			fail(EINVAL, "user", NULL,
			     "additional gid %u: uids and gids must be in range 0-2147483647",
			     (unsigned)groups[i]);
	}
	give_stdio_to(uid);
	if (setgroups(ngroups, groups) < 0 && !(errno == EPERM && ngroups == 0))
		fail(errno, "user", NULL, "setgroups");
	if (setresgid(gid, gid, gid) < 0)
		fail(errno, "user", NULL, "setgid %u", gid);
	if (setresuid(uid, uid, uid) < 0)
		fail(errno, "user", NULL, "setuid %u", uid);
	/* As in op_become_root: not dumpable until execve, whatever fs.suid_dumpable says. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	umask(mask);
}

/*
 * runc's order: the cwd is entered before the user switch (a directory
 * only root may enter works), and tried again after it only when that
 * first try was refused (one only the container's user may enter works).
 */
static int chdir_refused;

static void op_chdir(const struct op_chdir *o)
{
	const char *cwd = o->cwd;
	uint32_t stage = o->stage;
	if (stage == CHDIR_AFTER_USER && !chdir_refused)
		return;
	if (chdir(cwd) < 0) {
		if (stage == CHDIR_BEFORE_USER && (errno == EACCES || errno == EPERM)) {
			chdir_refused = 1;
			return;
		}
		fail(errno, "cwd", cwd, "chdir to cwd %s", cwd);
	}
	/* A cwd outside our root reads back as "(unreachable)" (CVE-2024-21626). */
	char buf[4096];
	if (!getcwd(buf, sizeof(buf)) || buf[0] != '/')
		fail(errno ? errno : EPERM, "cwd", cwd, "cwd %s is outside the container", cwd);
}

static int is_executable_file(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode)) {
		errno = EACCES;
		return -1;
	}
	/* OP_USER made the real ids the effective ones, so access(2)'s check is
	 * the AT_EACCESS one; faccessat with a flag is faccessat2 (Linux 5.8),
	 * which a seccomp profile written before it does not name. */
	return (int)syscall(SYS_faccessat, AT_FDCWD, path, X_OK);
}

/* Find the program now, so a typo fails `create` rather than `start`. */
/*
 * HOME from the container's /etc/passwd, as runc sets it when the config
 * names none: the home of the process's uid, "/" (the entry the plan put
 * last in the env) when there is no such line.  Read inside the
 * container's root, as root, before the user switch; only a regular
 * file, so a FIFO or device planted there cannot stall or feed us.
 */
static char home_entry[4096 + 8];

static void op_home(const struct op_home *o)
{
	uint32_t uid = o->uid;
	static char passwd[1 << 20];
	int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return;
	struct stat st;
	struct statfs sfs;
	size_t len = 0;
	/* Not procfs or sysfs either: an image's /etc/passwd -> /proc/kmsg read
	 * by us, with every capability, would drain the host's kernel log. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fstatfs(fd, &sfs) == 0 &&
	    sfs.f_type != PROC_SUPER_MAGIC && sfs.f_type != SYSFS_MAGIC_) {
		ssize_t n;
		while (len < sizeof(passwd) - 1 && (n = read(fd, passwd + len, sizeof(passwd) - 1 - len)) > 0)
			len += n;
	}
	close(fd);
	passwd[len] = '\0';
	for (char *line = passwd; line && *line;) {
		char *next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		/* name:password:uid:gid:gecos:home:shell */
		char *field[7] = {line};
		int n = 1;
		for (char *p = line; *p && n < 7; p++)
			if (*p == ':') {
				*p = '\0';
				field[n++] = p + 1;
			}
		char *end;
		if (n >= 6 && field[2][0] && strtoul(field[2], &end, 10) == uid && !*end && field[5][0]) {
			char *colon = strchr(field[5], ':');
			if (colon)
				*colon = '\0';
			snprintf(home_entry, sizeof(home_entry), "HOME=%s", field[5]);
			return;
		}
		line = next;
	}
}

static void op_exec_prepare(const struct op_exec_prepare *o)
{
	const char *name = o->name;
	exec_argv = o->argv;
	exec_env = o->env;
	/* The plan put HOME=/ last when the config named no HOME: op_home's find replaces it. */
	if (home_entry[0]) {
		char **last = exec_env;
		while (last[0] && last[1])
			last++;
		if (last[0] && strcmp(last[0], "HOME=/") == 0)
			last[0] = home_entry;
	}
	if (strchr(name, '/')) {
		if (is_executable_file(name) < 0)
			fail(errno, "exec", name, "exec %s", name);
		exec_path = name;
		return;
	}
	const char *search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	for (char **e = exec_env; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			search = *e + 5;
	static char found[4096];
	int last_err = ENOENT;
	for (const char *dir = search;;) {
		const char *end = strchrnul(dir, ':');
		int len = end - dir;
		snprintf(found, sizeof(found), "%.*s/%s", len ? len : 1, len ? dir : ".", name);
		if (is_executable_file(found) == 0) {
			exec_path = found;
			return;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			last_err = errno;
		if (!*end)
			break;
		dir = end + 1;
	}
	if (last_err == ENOENT)
		fail(ENOENT, "exec", name, "exec %s: executable file not found in $PATH", name);
	fail(last_err, "exec", name, "exec %s", name);
}

static void op_wait_start(void)
{
	if (fifo_fd < 0)
		fail(EINVAL, "start", NULL, "no exec fifo to wait on");
	if (sync_send(SYNC_READY, 0, NULL, 0) < 0)
		_exit(1);
	close(sync_fd);
	sync_fd = -1;
	/* `tsrun start` writes one byte; until then we sit here. */
	char byte;
	ssize_t n;
	do
		n = read(fifo_fd, &byte, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		_exit(1);
	/* Kept until the exec closes it (close-on-exec): `start` holds the
	 * fifo open too, and a failure from here on (a startContainer hook,
	 * the exec) leaves it one byte saying so, which no reaper of ours can
	 * take away (fail()). */
	start_released = 1;
}

static long seccomp_load(uint32_t flags, const unsigned char *program, size_t len);

/* A filter OP_SECCOMP left for the last moment (no_new_privs, no listener). */
static const unsigned char *pending_filter;
static size_t pending_filter_len;
static uint32_t pending_filter_flags;

static void op_exec(void)
{
	if (!exec_path)
		fail(EINVAL, "exec", NULL, "plan has no process to exec");
	if (sync_fd >= 0) { /* an exec without a create/start split */
		sync_send(SYNC_READY, 0, NULL, 0);
		close(sync_fd);
		sync_fd = -1;
	}
	cloexec_from(3 + preserve_fds);
	reset_signals();
	/* After this, execve is our only syscall: a profile need allow nothing of ours. */
	if (pending_filter)
		seccomp_load(pending_filter_flags, pending_filter, pending_filter_len);
	execve(exec_path, exec_argv, exec_env);
	fail(errno, "exec", exec_path, "exec %s", exec_path);
}

/*
 * Load the seccomp program compiled by the parent (libseccomp never runs
 * here).  The plan puts this op where runc loads its filter: before the
 * capabilities are dropped when no_new_privs is off (loading then needs
 * CAP_SYS_ADMIN), otherwise as late as the sync socket allows, so the
 * fewest of our own syscalls run under the container's filter.
 */
struct sock_filter_ {
	uint16_t code;
	uint8_t jt, jf;
	uint32_t k;
};
struct sock_fprog_ {
	unsigned short len;
	const struct sock_filter_ *filter;
};
#define SECCOMP_SET_MODE_FILTER_ 1

/* seccomp(2) with the program; returns what it returns (a listener fd with NEW_LISTENER). */
static long seccomp_load(uint32_t flags, const unsigned char *program, size_t len)
{
	struct sock_fprog_ prog = {len / sizeof(struct sock_filter_), (const struct sock_filter_ *)program};
	long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, flags, &prog);
	if (fd < 0)
		fail(errno, "seccomp", NULL, "load seccomp filter (flags %#x)", flags);
	return fd;
}

static void op_seccomp(const struct op_seccomp *o)
{
	uint32_t flags = o->flags, notify = o->notify, at_exec = o->at_exec;
	size_t len = o->program.len;
	const unsigned char *program = o->program.at;
	if (len == 0 || len % sizeof(struct sock_filter_) != 0 || len / sizeof(struct sock_filter_) > 0xffff)
		fail(EINVAL, "seccomp", NULL, "malformed seccomp program in launch plan");
	if (at_exec && !notify) {
		/* The plan is mapped until execve: keep a pointer, load in op_exec. */
		pending_filter = program;
		pending_filter_len = len;
		pending_filter_flags = flags;
		return;
	}
	long fd = seccomp_load(flags, program, len);
	if (!notify)
		return;
	/* The listener goes to the parent, which hands it to listenerPath. */
	int listener = (int)fd;
	struct sync_header h = {SYNC_SECCOMP_LISTENER, 0, 0, 0};
	if (send_with_fd(sync_fd, listener, &h, sizeof(h)) < 0)
		fail(errno, "seccomp", NULL, "send the seccomp listener to tsrun");
	close(listener);
	free(sync_expect(SYNC_CONTINUE));
}

/* ---- namespaces and the init's birth ------------------------------------ */

/*
 * Namespace paths are all opened before any is joined: once we are in the
 * container's mount namespace, /proc/<host pid>/ns/... no longer resolves.
 */

static void open_namespaces(const unsigned char *ops, const unsigned char *end, uint32_t op_count)
{
	struct cursor c = {ops, end};
	for (uint32_t i = 0; i < op_count; i++) {
		const unsigned char *op_start = c.p;
		uint32_t code = rd_u32(&c) & 0xffff, size = rd_u32(&c);
		if (size < 8 || size > (size_t)(end - op_start))
			fail(EINVAL, "plan", NULL, "bad size for op %u", code);
		if (code == OP_SETNS) {
			struct cursor f = {c.p, op_start + size};
			struct op_setns o;
			decode_setns(&f, &o);
			const char *path = o.path;
			if (setns_count == MAX_SETNS)
				fail(EINVAL, "setns", path, "too many namespaces to join");
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				fail(errno, "setns", path, "open namespace %s", path);
			setns_fds[setns_count].op = op_start;
			setns_fds[setns_count++].fd = fd;
		} else if (code == OP_CLONE_INIT) {
			struct cursor f = {c.p, op_start + size};
			struct op_clone_init o;
			decode_clone_init(&f, &o);
			const char *dir = o.cgroup_dir;
			if (dir[0] && (clone_cgroup_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
				fail(errno, "cgroup", dir, "open cgroup %s", dir);
		}
		c.p = op_start + size;
	}
}

static void op_setns(const struct op_setns *o)
{
	uint32_t type = o->nstype;
	const char *path = o->path;
	int fd = -1;
	for (int i = 0; i < setns_count; i++)
		if (setns_fds[i].op == current_op)
			fd = setns_fds[i].fd;
	if (fd < 0)
		fail(EBADF, "setns", path, "namespace %s was not opened", path);
	if (setns(fd, type) < 0)
		fail(errno, "setns", path, "join namespace %s (is it the right type?)", path);
	close(fd);
}

static void op_unshare_user(void)
{
	/* The parent, outside, writes our maps: only it may map arbitrary ids. */
	if (unshare(CLONE_NEWUSER) < 0)
		fail(errno, "namespace", NULL, "unshare user namespace");
	/* Our /proc/<pid>/uid_map must be writable by the parent in between. */
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (sync_send(SYNC_USERNS_READY, getpid(), NULL, 0) < 0)
		_exit(1);
	free(sync_expect(SYNC_MAPS_WRITTEN));
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void op_become_root(void)
{
	if (setresgid(0, 0, 0) < 0)
		fail(errno, "namespace", NULL, "become gid 0 in the user namespace");
	if (setresuid(0, 0, 0) < 0)
		fail(errno, "namespace", NULL, "become uid 0 in the user namespace");
	/* A credential change resets dumpability to fs.suid_dumpable, which
	 * a host may have set to 1: say 0 again ourselves. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static void op_unshare(const struct op_unshare *o)
{
	uint64_t flags = o->flags;
	if (unshare((int)flags) < 0)
		fail(errno, "namespace", NULL, "unshare namespaces (flags 0x%llx)",
		     (unsigned long long)flags);
}

/*
 * Fork the container's init as a sibling (CLONE_PARENT): its parent is the
 * tsrun process, which can wait for it, and when that exits it passes to
 * the engine's subreaper, as with runc.  A new pid namespace (unshared
 * above) makes the init its pid 1.
 */
struct clone_args_v0 {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
		set_tid_size, cgroup;
};
#define CLONE_INTO_CGROUP_ 0x200000000ULL

static void op_clone_init(const struct op_clone_init *o)
{
	(void)o; /* its cgroup was opened by open_namespaces() */
	pid_t pid = -1;
	if (clone_cgroup_fd >= 0) {
		/*
		 * Born inside its cgroup: nothing of it ever runs elsewhere, and
		 * no cgroup.procs write (which waits for an RCU grace period).
		 * clone3 refuses an exit_signal with CLONE_PARENT: the child
		 * takes our own (SIGCHLD, from posix_spawn) for our parent.
		 */
		struct clone_args_v0 args = {
			.flags = CLONE_PARENT | CLONE_INTO_CGROUP_,
			.exit_signal = 0,
			.cgroup = (uint64_t)clone_cgroup_fd,
		};
		pid = syscall(SYS_clone3, &args, sizeof(args));
		if (pid < 0 && errno != ENOSYS && errno != E2BIG && errno != EINVAL)
			fail(errno, "clone", NULL, "start container init in its cgroup");
	}
	if (pid < 0) {
		pid = syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, NULL, NULL, 0);
		if (pid < 0)
			fail(errno, "clone", NULL, "start container init");
		if (pid > 0 && clone_cgroup_fd >= 0) {
			/* No clone3 here: move the init before it is let go. */
			char value[16];
			int procs = openat(clone_cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
			int len = snprintf(value, sizeof(value), "%d", pid);
			if (procs < 0 || write(procs, value, len) != len)
				fail(errno, "cgroup", "cgroup.procs", "move the init into its cgroup");
			close(procs);
		}
	}
	if (pid > 0) {
		sync_send(SYNC_INIT_PID, pid, NULL, 0);
		_exit(0);
	}
	if (clone_cgroup_fd >= 0)
		close(clone_cgroup_fd);
	free(sync_expect(SYNC_CONTINUE));
}

/* ---- masked and read-only paths ---------------------------------------- */

/*
 * The target, opened without following a final symlink; a missing path
 * needs no protecting (runc skips it too), and neither does a symlink.
 */
static int open_protect_target(const char *path)
{
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return -1;
		fail(errno, "protect", path, "open %s", path);
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || S_ISLNK(st.st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void attach(int tree, int target, const char *path, const char *what)
{
	if (syscall(SYS_move_mount, tree, "", target, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) <
	    0)
		fail(errno, "protect", path, "%s %s", what, path);
	close(tree);
	close(target);
}

static void op_readonly_path(const struct op_readonly_path *o)
{
	const char *path = o->path;
	int target = open_protect_target(path);
	if (target < 0)
		return;
	int tree = syscall(SYS_open_tree, target, "",
			   OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	if (tree < 0 ||
	    syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &ro, sizeof(ro)) < 0)
		fail(errno, "protect", path, "make %s read-only", path);
	attach(tree, target, path, "make read-only");
}

/*
 * Files are masked with the container's /dev/null, but only once it is
 * proven to be the real thing: a character device 1:3 reached without
 * following links (CVE-2025-31133).  Directories get a read-only tmpfs.
 */
static void op_mask_path(const struct op_mask_path *o)
{
	const char *path = o->path;
	int target = open_protect_target(path);
	if (target < 0)
		return;
	struct stat st;
	if (fstat(target, &st) < 0)
		fail(errno, "protect", path, "stat %s", path);
	int tree;
	if (S_ISDIR(st.st_mode)) {
		int fs = syscall(SYS_fsopen, "tmpfs", FSOPEN_CLOEXEC);
		/* Empty and read-only, superblock and mount, as runc's mask is;
		 * its source named "tmpfs" in mountinfo, as runc's mount(2) names it. */
		if (fs < 0 || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, "source", "tmpfs", 0) < 0 ||
		    syscall(SYS_fsconfig, fs, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0 ||
		    syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
			fail(errno, "protect", path, "tmpfs to mask %s", path);
		tree = syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY);
		close(fs);
	} else {
		int null = open("/dev/null", O_PATH | O_NOFOLLOW | O_CLOEXEC);
		struct stat ns;
		if (null < 0 || fstat(null, &ns) < 0 || !S_ISCHR(ns.st_mode) || ns.st_rdev != makedev(1, 3))
			fail(null < 0 ? errno : EPERM, "protect", "/dev/null",
			     "mask %s: /dev/null is not the null device", path);
		tree = syscall(SYS_open_tree, null, "", OPEN_TREE_CLONE | O_CLOEXEC | AT_EMPTY_PATH);
		close(null);
	}
	if (tree < 0)
		fail(errno, "protect", path, "mask %s", path);
	attach(tree, target, path, "mask");
}

/* ---- capabilities -------------------------------------------------------- */

struct cap_header {
	uint32_t version;
	int pid;
};
struct cap_data {
	uint32_t effective, permitted, inheritable;
};
#define CAP_VERSION_3 0x20080522

static void op_caps_bounding(const struct op_caps_bounding *o)
{
	uint64_t keep = o->keep;
	for (int cap = 0; cap < 64; cap++)
		if (!(keep & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			fail(errno, "capabilities", NULL, "drop capability %d from the bounding set", cap);
	/* The user switch would clear the permitted set; capset follows it. */
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
		fail(errno, "capabilities", NULL, "keep capabilities across the user switch");
}

static void op_caps_set(const struct op_caps_set *o)
{
	uint64_t effective = o->effective, permitted = o->permitted, inheritable = o->inheritable,
		 ambient = o->ambient;
	struct cap_header hdr = {CAP_VERSION_3, 0};
	struct cap_data now[2];
	if (syscall(SYS_capget, &hdr, now) < 0)
		fail(errno, "capabilities", NULL, "read capabilities");
	/* What this process may still hold bounds what it can be given
	 * (TypeScript has warned about the rest). */
	uint64_t have = now[0].permitted | ((uint64_t)now[1].permitted << 32);
	permitted &= have;
	effective &= permitted;
	struct cap_data set[2] = {
		{(uint32_t)effective, (uint32_t)permitted, (uint32_t)inheritable},
		{(uint32_t)(effective >> 32), (uint32_t)(permitted >> 32), (uint32_t)(inheritable >> 32)},
	};
	hdr.version = CAP_VERSION_3;
	hdr.pid = 0;
	if (syscall(SYS_capset, &hdr, set) < 0)
		fail(errno, "capabilities", NULL, "set capabilities");
	prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		fail(errno, "capabilities", NULL, "clear ambient capabilities");
	for (int cap = 0; cap < 64; cap++)
		if ((ambient & (1ULL << cap)) && (permitted & inheritable & (1ULL << cap)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail(errno, "capabilities", NULL, "raise ambient capability %d", cap);
}

/* ---- the interpreter ---------------------------------------------------- */

/* ---- the ops without a section of their own ----------------------------- */

static void op_join_cgroup(const struct op_join_cgroup *o)
{
	char file[PATH_MAX];
	if ((size_t)snprintf(file, sizeof(file), "%s/%s", o->dir, o->file) >= sizeof(file))
		fail(ENAMETOOLONG, "cgroup", o->dir, "join cgroup %s", o->dir);
	int fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "0", 1) != 1)
		fail(errno, "cgroup", o->dir, "join cgroup %s", o->dir);
	close(fd);
}

static void op_setsid(void)
{
	if (setsid() < 0)
		fail(errno, "setsid", NULL, "setsid");
}

static void op_sethostname(const struct op_sethostname *o)
{
	if (sethostname(o->name, strlen(o->name)) < 0)
		fail(errno, "hostname", o->name, "set hostname %s", o->name);
}

static void op_setdomainname(const struct op_setdomainname *o)
{
	if (setdomainname(o->name, strlen(o->name)) < 0)
		fail(errno, "domainname", o->name, "set domainname %s", o->name);
}

static void op_parent_hooks(void)
{
	if (sync_send(SYNC_RUN_HOOKS, 0, NULL, 0) < 0)
		_exit(1);
	free(hook_states);
	hook_states = sync_expect(SYNC_HOOKS_DONE);
	create_hook_state = hook_states;
	start_hook_state = hook_states + strlen(hook_states) + 1;
}

/*
 * runc's reOpenDevNull: each of fds 0-2 that is a /dev/null (an engine's:
 * conmon's, containerd's shim's) is replaced by the container's own, opened
 * after pivot_root.  The host's /dev/null lives on a mount the container
 * never sees, which CRIU cannot dump ("Can't lookup mount"); the container's
 * is on its /dev.  Done before the user switch, so the new fd is root's open.
 */
static void op_reopen_dev_null(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	struct stat null_st, st;
	if (fd < 0 || fstat(fd, &null_st) < 0)
		fail(errno, "reopen /dev/null", "/dev/null", "open the container's /dev/null");
	if (!S_ISCHR(null_st.st_mode))
		fail(ENOTTY, "reopen /dev/null", "/dev/null", "the container's /dev/null is not a device");
	for (int i = 0; i < 3; i++)
		if (fstat(i, &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == null_st.st_rdev &&
		    dup3(fd, i, 0) < 0)
			fail(errno, "reopen /dev/null", "/dev/null", "put the container's /dev/null on fd %d",
			     i);
	close(fd);
}

static void op_remount_root_ro(void)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", 0, &ro, sizeof(ro)) < 0)
		fail(errno, "rootfs", "/", "make rootfs read-only");
}

static void op_chroot(const struct op_chroot *o)
{
	int fd = open(o->path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fchdir(fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		fail(errno, "pivot_root", o->path, "enter the container's root %s", o->path);
	close(fd);
}

static void op_remount_ro(const struct op_remount_ro *o)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	if (syscall(SYS_mount_setattr, AT_FDCWD, o->path, AT_SYMLINK_NOFOLLOW, &ro, sizeof(ro)) < 0)
		fail(errno, "mount", o->path, "make %s read-only", o->path);
}

static void op_root_propagation(const struct op_root_propagation *o)
{
	if (mount(NULL, "/", NULL, o->flags, NULL) < 0)
		fail(errno, "rootfs", "/", "set rootfs propagation");
}

static void op_parent_rlimits(void)
{
	/* runc's order: the parent sets them with prlimit(2), from outside any
	 * user namespace we are in, so raising a hard limit is judged by the
	 * host's capabilities, not ours. */
	if (sync_send(SYNC_SET_RLIMITS, 0, NULL, 0) < 0)
		_exit(1);
	free(sync_expect(SYNC_CONTINUE));
}

static void op_oom_score_adj(const struct op_oom_score_adj *o)
{
	char value[16];
	snprintf(value, sizeof(value), "%d", (int32_t)o->value);
	if (write_proc_file("/proc/self/oom_score_adj", value) < 0)
		fail(errno, "oomScoreAdj", "/proc/self/oom_score_adj", "set oom_score_adj to %s", value);
}

static void op_no_new_privs(void)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errno, "noNewPrivileges", NULL, "set no_new_privs");
}

static void op_session_keyring(const struct op_session_keyring *o)
{
	/* Keys the host's session holds stay out of the container. */
	if (syscall(SYS_keyctl, 1 /* KEYCTL_JOIN_SESSION_KEYRING */, o->name) < 0 && errno != ENOSYS)
		fail(errno, "keyring", NULL, "create session keyring %s", o->name);
}

/*
 * `start` of a container without hooks after the release execs this
 * helper (addon.c, execRelease): one byte into the exec fifo lets the init
 * exec the container's program, and the process the engine waits on ends
 * at once.
 */
static int release_exec_fifo(int fd)
{
	static const char byte = 0;
	for (;;) {
		if (write(fd, &byte, 1) == 1)
			return 0;
		if (errno != EINTR) {
			fprintf(stderr, "tsrun: start: release the container: %s\n", strerror(errno));
			return 1;
		}
	}
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "release") == 0)
		return release_exec_fifo(atoi(argv[2]));
	if (argc != 7) {
		fprintf(stderr, "tsrun-init is started by tsrun, not by hand\n");
		return 2;
	}
	sync_fd = atoi(argv[1]);
	int plan_fd = atoi(argv[2]);
	fifo_fd = atoi(argv[3]);
	console_fd = atoi(argv[4]);
	rootfs_mount_fd = atoi(argv[5]);
	preserve_fds = atoi(argv[6]);

	/* Drop the memfd we were exec'd from (and anything past our fds). */
	syscall(SYS_close_range, 3 + preserve_fds + 5, ~0u, 0);
	/* Nothing may read our memory or ptrace us until the final exec. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* Our name until the exec (the memfd gives only an fd number): `start`
	 * reads it off a dead init to tell a failed set-up from a program that
	 * ran and ended at once (state.ts, initDiedBeforeExec). */
	prctl(PR_SET_NAME, "tsrun-init", 0, 0, 0);
	reset_signals();
	umask(0);

	size_t plan_len;
	unsigned char *plan = read_plan(plan_fd, &plan_len);
	close(plan_fd);
	struct cursor c = {plan, plan + plan_len};
	if (rd_u32(&c) != PLAN_MAGIC || rd_u32(&c) != PLAN_VERSION)
		fail(EINVAL, "plan", NULL, "launch plan has the wrong magic or version");
	if (rd_u32(&c) != plan_len)
		fail(EINVAL, "plan", NULL, "launch plan length mismatch");
	uint32_t op_count = rd_u32(&c);

	free(sync_expect(SYNC_CONTINUE));
	open_namespaces(c.p, c.end, op_count);

	for (uint32_t i = 0; i < op_count; i++) {
		const unsigned char *op_start = c.p;
		uint32_t head = rd_u32(&c), size = rd_u32(&c);
		uint32_t code = head & 0xffff;
		if (size < 8 || size > (size_t)(c.end - op_start))
			fail(EINVAL, "plan", NULL, "bad size for op %u", code);
		struct cursor op = {c.p, op_start + size};
		c.p = op_start + size;
		/* The mount-source server runs only its own ops (see above). */
		if (in_source_server && code != OP_MOUNT_SOURCES_JOIN && code != OP_IDMAP_PREPARE &&
		    code != OP_MOUNT_SOURCES_DONE)
			continue;
		if (code == 0 || code >= OP_MAX || !plan_handlers[code])
			fail(EINVAL, "plan", NULL, "unknown op %u in launch plan", code);
		current_op = op_start;
		plan_handlers[code](&op);
		c.p = op_start + size;
	}
	fail(EINVAL, "plan", NULL, "launch plan ended without exec");
}
