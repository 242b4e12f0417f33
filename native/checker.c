/*
 * tsrun-checker: the in-container probe used by tsrun's tests.
 *
 * Run as (or under) a container's process, it prints ONE JSON object on
 * stdout describing the environment the process actually observes, so the
 * tests can compare it with what the OCI config asked for.  Extra argv modes
 * give the tests small, scriptable primitives (read/stat/write a path, read a
 * sysctl, make a raw syscall, exit with a code, sleep, report signals, echo stdin,
 * hold a file lock, listen on a TCP port, serve or send unix datagrams).
 *
 * Design constraints:
 *   - Built with `musl-gcc -static`, so it runs in any rootfs (even one that
 *     has no libc) and depends on nothing but libc.
 *   - Every source may be missing (no /proc, no /dev, ...): a missing source
 *     yields JSON null for that field, never a crash or a partial object.
 *   - Output is always valid JSON (strict UTF-8, escaped control chars), so
 *     the TypeScript side can JSON.parse() it without guarding.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "sched-attr.h"

extern char **environ;

/* `checker read` must not exhaust memory on endless files like /dev/zero. */
#define READ_MODE_MAX (4u * 1024u * 1024u)
/* Report-mode reads of /proc files: generous, mountinfo can be long. */
#define PROC_READ_MAX (16u * 1024u * 1024u)

/* ------------------------------------------------------------------------ */
/* JSON writer                                                              */
/* ------------------------------------------------------------------------ */

/*
 * A tiny streaming writer.  Each open container remembers how many members
 * it already has, so commas are placed automatically; a key sets a flag so
 * the value that follows it does not get a comma of its own.
 */
#define JSON_MAX_DEPTH 32
static unsigned json_count[JSON_MAX_DEPTH];
static int json_depth;
static int json_after_key;

static void json_prefix(void)
{
	if (json_after_key) {
		json_after_key = 0;
		return;
	}
	if (json_depth > 0 && json_count[json_depth]++ > 0)
		putchar(',');
}

/*
 * Length of the valid UTF-8 sequence starting at s, or 0 if the bytes there
 * are not valid UTF-8 (overlong forms, surrogates and > U+10FFFF included),
 * because strict JSON parsers reject such bytes.
 */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0) {
		len = 2;
		cp = c & 0x1f;
	} else if ((c & 0xf0) == 0xe0) {
		len = 3;
		cp = c & 0x0f;
	} else if ((c & 0xf8) == 0xf0) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000))
		return 0;
	if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/*
 * Control characters (and DEL) become \u00XX.  Bytes that are not valid
 * UTF-8 are also written as \u00XX (i.e. read back as Latin-1 code points):
 * lossy for binary data, but it keeps the output parseable and the byte
 * value recoverable.
 */
static void json_raw_string(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	putchar('"');
	while (i < n) {
		unsigned char c = s[i];
		size_t len;

		if (c == '"' || c == '\\') {
			putchar('\\');
			putchar(c);
			i++;
		} else if (c < 0x20 || c == 0x7f) {
			printf("\\u%04x", c);
			i++;
		} else if ((len = utf8_seq_len(s + i, n - i)) == 0) {
			printf("\\u%04x", c);
			i++;
		} else {
			fwrite(s + i, 1, len, stdout);
			i += len;
		}
	}
	putchar('"');
}

static void json_begin(char open)
{
	json_prefix();
	if (json_depth + 1 >= JSON_MAX_DEPTH)
		abort(); /* programming error: our documents are shallow */
	putchar(open);
	json_count[++json_depth] = 0;
}

static void json_end(char close)
{
	putchar(close);
	json_depth--;
}

static void json_begin_object(void)
{
	json_begin('{');
}
static void json_end_object(void)
{
	json_end('}');
}
static void json_begin_array(void)
{
	json_begin('[');
}
static void json_end_array(void)
{
	json_end(']');
}

static void json_key(const char *key)
{
	if (json_count[json_depth]++ > 0)
		putchar(',');
	json_raw_string(key, strlen(key));
	putchar(':');
	json_after_key = 1;
}

static void json_null(void)
{
	json_prefix();
	fputs("null", stdout);
}

static void json_bool(int v)
{
	json_prefix();
	fputs(v ? "true" : "false", stdout);
}

static void json_int(long long v)
{
	json_prefix();
	printf("%lld", v);
}

static void json_uint(unsigned long long v)
{
	json_prefix();
	printf("%llu", v);
}

static void json_strn(const char *s, size_t n)
{
	json_prefix();
	json_raw_string(s, n);
}

/* A NULL string is written as null: that is how "unknown" is spelled. */
static void json_str(const char *s)
{
	if (s)
		json_strn(s, strlen(s));
	else
		json_null();
}

/* Permission bits (including setuid/setgid/sticky) as e.g. "0755". */
static void json_mode(mode_t mode)
{
	char buf[16];

	snprintf(buf, sizeof buf, "%04o", (unsigned)(mode & 07777));
	json_str(buf);
}

static void json_kstr(const char *k, const char *v)
{
	json_key(k);
	json_str(v);
}
static void json_kint(const char *k, long long v)
{
	json_key(k);
	json_int(v);
}
static void json_kuint(const char *k, unsigned long long v)
{
	json_key(k);
	json_uint(v);
}
static void json_kbool(const char *k, int v)
{
	json_key(k);
	json_bool(v);
}
static void json_knull(const char *k)
{
	json_key(k);
	json_null();
}

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/*
 * errno -> symbolic name.  musl has no strerrorname_np(), and tests are much
 * easier to write against "EROFS" than against localisable messages.  A
 * table (not a switch) because some names alias (EAGAIN/EWOULDBLOCK...).
 */
static const struct {
	int num;
	const char *name;
} errno_names[] = {
	{EPERM, "EPERM"},
	{ENOENT, "ENOENT"},
	{ESRCH, "ESRCH"},
	{EINTR, "EINTR"},
	{EIO, "EIO"},
	{ENXIO, "ENXIO"},
	{E2BIG, "E2BIG"},
	{ENOEXEC, "ENOEXEC"},
	{EBADF, "EBADF"},
	{ECHILD, "ECHILD"},
	{EAGAIN, "EAGAIN"},
	{ENOMEM, "ENOMEM"},
	{EACCES, "EACCES"},
	{EFAULT, "EFAULT"},
	{EBUSY, "EBUSY"},
	{EEXIST, "EEXIST"},
	{EXDEV, "EXDEV"},
	{ENODEV, "ENODEV"},
	{ENOTDIR, "ENOTDIR"},
	{EISDIR, "EISDIR"},
	{EINVAL, "EINVAL"},
	{ENFILE, "ENFILE"},
	{EMFILE, "EMFILE"},
	{ENOTTY, "ENOTTY"},
	{ETXTBSY, "ETXTBSY"},
	{EFBIG, "EFBIG"},
	{ENOSPC, "ENOSPC"},
	{ESPIPE, "ESPIPE"},
	{EROFS, "EROFS"},
	{EMLINK, "EMLINK"},
	{EPIPE, "EPIPE"},
	{ERANGE, "ERANGE"},
	{ENAMETOOLONG, "ENAMETOOLONG"},
	{ENOSYS, "ENOSYS"},
	{ENOTEMPTY, "ENOTEMPTY"},
	{ELOOP, "ELOOP"},
	{ENODATA, "ENODATA"},
	{EOVERFLOW, "EOVERFLOW"},
	{EOPNOTSUPP, "EOPNOTSUPP"},
	{ESTALE, "ESTALE"},
	{EDQUOT, "EDQUOT"},
	{ECONNREFUSED, "ECONNREFUSED"},
};

static const char *errno_name(int e)
{
	size_t i;

	for (i = 0; i < sizeof errno_names / sizeof errno_names[0]; i++)
		if (errno_names[i].num == e)
			return errno_names[i].name;
	return NULL;
}

/*
 * Writes the common error triple of the single-path modes:
 * "errno": n, "code": "ENOENT"|null, "error": "ENOENT: No such file..."|null.
 */
static void json_errno_fields(int e)
{
	char buf[256];
	const char *name;

	json_kint("errno", e);
	if (e == 0) {
		json_knull("code");
		json_knull("error");
		return;
	}
	name = errno_name(e);
	if (name)
		snprintf(buf, sizeof buf, "%s: %s", name, strerror(e));
	else
		snprintf(buf, sizeof buf, "errno %d: %s", e, strerror(e));
	json_kstr("code", name);
	json_kstr("error", buf);
}

/*
 * Reads a whole file into a NUL-terminated malloc'd buffer.  /proc files
 * report st_size 0, so we grow until EOF instead of trusting fstat.  At most
 * `max` bytes are kept; *truncated says whether there was more.  Returns NULL
 * with errno set on failure.  The fd is always closed again, so later fd
 * listings are not polluted.
 */
static char *read_whole_file(const char *path, size_t max, size_t *len_out, int *truncated)
{
	size_t cap = 4096, len = 0;
	char *buf, *nbuf;
	int fd, saved;
	ssize_t n;

	if (truncated)
		*truncated = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	buf = malloc(cap + 1);
	if (!buf) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	for (;;) {
		if (len == cap) {
			if (cap >= max) {
				char probe;

				/* Buffer full: one more byte tells us if it was cut. */
				do
					n = read(fd, &probe, 1);
				while (n < 0 && errno == EINTR);
				if (n > 0 && truncated)
					*truncated = 1;
				break;
			}
			cap = cap * 2 > max ? max : cap * 2;
			nbuf = realloc(buf, cap + 1);
			if (!nbuf) {
				free(buf);
				close(fd);
				errno = ENOMEM;
				return NULL;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			saved = errno;
			free(buf);
			close(fd);
			errno = saved;
			return NULL;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len_out)
		*len_out = len;
	return buf;
}

/* read_whole_file() for small text sources, dropping trailing newlines. */
static char *read_trimmed(const char *path)
{
	size_t len;
	char *buf = read_whole_file(path, PROC_READ_MAX, &len, NULL);

	if (!buf)
		return NULL;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
		buf[--len] = '\0';
	return buf;
}

/* readlink() into a malloc'd NUL-terminated string; NULL on failure. */
static char *read_link(const char *path)
{
	size_t cap = 256;

	for (;;) {
		char *buf = malloc(cap);
		ssize_t n;

		if (!buf)
			return NULL;
		n = readlink(path, buf, cap);
		if (n < 0) {
			free(buf);
			return NULL;
		}
		if ((size_t)n < cap) {
			buf[n] = '\0';
			return buf;
		}
		/* Possibly truncated: retry with a larger buffer. */
		free(buf);
		cap *= 2;
	}
}

/* A directory's entry names (without "." and ".."), for stable sorting. */
struct name_list {
	char **v;
	size_t n;
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Numeric order, so fds print as 0,1,2,10 rather than 0,1,10,2. */
static int cmp_numeric_names(const void *a, const void *b)
{
	long x = strtol(*(char *const *)a, NULL, 10);
	long y = strtol(*(char *const *)b, NULL, 10);

	return (x > y) - (x < y);
}

static void free_names(struct name_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

/*
 * Lists a directory, sorted with `cmp`.  When skip_own_fd is set (listing
 * /proc/self/fd) the entry for the directory stream's own descriptor is left
 * out: it is an artefact of looking, not part of what the container got.
 * Returns -1 if the directory cannot be read.
 */
static int list_dir(const char *path, struct name_list *out, int (*cmp)(const void *, const void *),
		    int skip_own_fd)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t cap = 0;
	char own[32];

	out->v = NULL;
	out->n = 0;
	if (!d)
		return -1;
	snprintf(own, sizeof own, "%d", dirfd(d));
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (skip_own_fd && !strcmp(de->d_name, own))
			continue;
		if (out->n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 32;
			nv = realloc(out->v, cap * sizeof *nv);
			if (!nv)
				break;
			out->v = nv;
		}
		out->v[out->n] = strdup(de->d_name);
		if (out->v[out->n])
			out->n++;
	}
	closedir(d);
	if (out->n)
		qsort(out->v, out->n, sizeof *out->v, cmp);
	return 0;
}

/*
 * Value of "Name:" in a /proc/<pid>/status buffer, whitespace-trimmed and
 * malloc'd; NULL if the buffer or the field is missing (old kernels lack
 * e.g. Umask or CapAmb).
 */
static char *status_field(const char *status, const char *name)
{
	size_t nlen = strlen(name);
	const char *line = status;

	if (!status)
		return NULL;
	while (line && *line) {
		const char *eol = strchr(line, '\n');

		if (!strncmp(line, name, nlen) && line[nlen] == ':') {
			const char *v = line + nlen + 1;
			const char *end = eol ? eol : v + strlen(v);

			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
				end--;
			return strndup(v, (size_t)(end - v));
		}
		line = eol ? eol + 1 : NULL;
	}
	return NULL;
}

/* A status field written as a string (null when missing). */
static void json_kstatus_str(const char *status, const char *key, const char *field)
{
	char *v = status_field(status, field);

	json_kstr(key, v);
	free(v);
}

/* A numeric status field written as a number (null when missing). */
static void json_kstatus_int(const char *status, const char *key, const char *field)
{
	char *v = status_field(status, field);
	char *end;
	long long n;

	json_key(key);
	if (v) {
		errno = 0;
		n = strtoll(v, &end, 10);
		if (!errno && end != v && *end == '\0')
			json_int(n);
		else
			json_str(v);
	} else {
		json_null();
	}
	free(v);
}

static const char *file_type(mode_t m)
{
	if (S_ISREG(m))
		return "f";
	if (S_ISDIR(m))
		return "d";
	if (S_ISLNK(m))
		return "l";
	if (S_ISCHR(m))
		return "c";
	if (S_ISBLK(m))
		return "b";
	if (S_ISFIFO(m))
		return "p";
	if (S_ISSOCK(m))
		return "s";
	return "?";
}

/* ------------------------------------------------------------------------ */
/* Report sections (full report mode)                                       */
/* ------------------------------------------------------------------------ */

static void report_process_ids(void)
{
	json_kint("pid", getpid());
	json_kint("ppid", getppid());
	json_kint("sid", getsid(0));
	json_kint("pgid", getpgrp());
}

static void report_uts(void)
{
	struct utsname u;

	if (uname(&u) == 0) {
		json_kstr("hostname", u.nodename);
		json_kstr("domainname", u.domainname);
		json_kstr("kernelRelease", u.release);
	} else {
		json_knull("hostname");
		json_knull("domainname");
		json_knull("kernelRelease");
	}
}

static void report_credentials(void)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	gid_t *groups;
	int n, i;

	/* getres*id: the saved ids matter when checking setuid-style drops. */
	if (getresuid(&ru, &eu, &su) == 0) {
		json_kuint("uid", ru);
		json_kuint("euid", eu);
		json_kuint("suid", su);
	} else {
		json_knull("uid");
		json_knull("euid");
		json_knull("suid");
	}
	if (getresgid(&rg, &eg, &sg) == 0) {
		json_kuint("gid", rg);
		json_kuint("egid", eg);
		json_kuint("sgid", sg);
	} else {
		json_knull("gid");
		json_knull("egid");
		json_knull("sgid");
	}

	json_key("groups");
	n = getgroups(0, NULL);
	groups = n > 0 ? malloc((size_t)n * sizeof *groups) : NULL;
	if (n > 0 && groups)
		n = getgroups(n, groups);
	if (n < 0 || (n > 0 && !groups)) {
		json_null();
	} else {
		json_begin_array();
		for (i = 0; i < n; i++)
			json_uint(groups[i]);
		json_end_array();
	}
	free(groups);
}

static void report_umask(const char *status)
{
	char *v = status_field(status, "Umask");
	char buf[16];
	mode_t m;

	if (v) {
		json_kstr("umask", v);
		free(v);
		return;
	}
	/*
	 * No /proc (or a pre-4.7 kernel): umask() can only be read by setting
	 * it, so set-and-restore.  We are single-threaded, so this is safe.
	 */
	m = umask(022);
	umask(m);
	snprintf(buf, sizeof buf, "%04o", (unsigned)m);
	json_kstr("umask", buf);
}

static void report_cwd(void)
{
	char *cwd = getcwd(NULL, 0);

	json_kstr("cwd", cwd);
	free(cwd);
}

static void report_env_args(int argc, char **argv)
{
	char **e;
	int i;

	json_key("env");
	json_begin_array();
	for (e = environ; e && *e; e++)
		json_str(*e);
	json_end_array();

	json_key("args");
	json_begin_array();
	for (i = 0; i < argc; i++)
		json_str(argv[i]);
	json_end_array();
}

static void report_namespaces(void)
{
	struct name_list l;
	char path[PATH_MAX];
	size_t i;

	json_key("namespaces");
	if (list_dir("/proc/self/ns", &l, cmp_names, 0) < 0) {
		json_null();
		return;
	}
	json_begin_object();
	for (i = 0; i < l.n; i++) {
		char *target;

		snprintf(path, sizeof path, "/proc/self/ns/%s", l.v[i]);
		target = read_link(path);
		json_kstr(l.v[i], target);
		free(target);
	}
	json_end_object();
	free_names(&l);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo; undo it. */
static void unescape_octal(char *s)
{
	char *out = s;

	while (*s) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0' &&
		    s[3] <= '7') {
			*out++ = (char)(((s[1] - '0') << 6) | ((s[2] - '0') << 3) | (s[3] - '0'));
			s += 4;
		} else {
			*out++ = *s++;
		}
	}
	*out = '\0';
}

/*
 * One mountinfo line:
 *   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
 * Fields are split on single spaces (not runs of them) because the kernel
 * can print an empty source.  The optional fields run until the "-".
 */
static void report_mount_line(char *line)
{
	char *f[64];
	size_t nf = 0, sep, i, optlen = 0, linelen = strlen(line);
	char *p = line, *optional;

	for (;;) {
		char *sp = strchr(p, ' ');

		if (nf < sizeof f / sizeof f[0])
			f[nf++] = p;
		if (!sp)
			break;
		*sp = '\0';
		p = sp + 1;
	}
	for (sep = 6; sep < nf; sep++)
		if (!strcmp(f[sep], "-"))
			break;
	if (nf < 6 || sep + 2 >= nf) {
		/* Malformed (should not happen): keep the text visible anyway. */
		for (i = 0; i < linelen; i++)
			if (line[i] == '\0')
				line[i] = ' ';
		json_begin_object();
		json_kstr("raw", line);
		json_end_object();
		return;
	}
	for (i = 0; i < nf; i++)
		unescape_octal(f[i]);

	/* Optional fields (propagation: "shared:N master:M ...") joined. */
	for (i = 6; i < sep; i++)
		optlen += strlen(f[i]) + 1;
	optional = malloc(optlen + 1);
	if (optional) {
		optional[0] = '\0';
		for (i = 6; i < sep; i++) {
			if (i > 6)
				strcat(optional, " ");
			strcat(optional, f[i]);
		}
	}

	json_begin_object();
	json_kint("id", strtol(f[0], NULL, 10));
	json_kint("parent", strtol(f[1], NULL, 10));
	json_kstr("major_minor", f[2]);
	json_kstr("root", f[3]);
	json_kstr("mountpoint", f[4]);
	json_kstr("options", f[5]);
	json_kstr("optional", optional);
	json_kstr("fstype", f[sep + 1]);
	json_kstr("source", f[sep + 2]);
	json_kstr("superOptions", sep + 3 < nf ? f[sep + 3] : "");
	json_end_object();
	free(optional);
}

static void report_mounts(void)
{
	char *buf = read_whole_file("/proc/self/mountinfo", PROC_READ_MAX, NULL, NULL);
	char *line, *next;

	json_key("mounts");
	if (!buf) {
		json_null();
		return;
	}
	json_begin_array();
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line)
			report_mount_line(line);
	}
	json_end_array();
	free(buf);
}

static const struct {
	const char *name;
	int resource;
} rlimit_table[] = {
	{"RLIMIT_CPU", RLIMIT_CPU},	      {"RLIMIT_FSIZE", RLIMIT_FSIZE},
	{"RLIMIT_DATA", RLIMIT_DATA},	      {"RLIMIT_STACK", RLIMIT_STACK},
	{"RLIMIT_CORE", RLIMIT_CORE},	      {"RLIMIT_RSS", RLIMIT_RSS},
	{"RLIMIT_NPROC", RLIMIT_NPROC},	      {"RLIMIT_NOFILE", RLIMIT_NOFILE},
	{"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},   {"RLIMIT_AS", RLIMIT_AS},
	{"RLIMIT_LOCKS", RLIMIT_LOCKS},	      {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
	{"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE}, {"RLIMIT_NICE", RLIMIT_NICE},
	{"RLIMIT_RTPRIO", RLIMIT_RTPRIO},     {"RLIMIT_RTTIME", RLIMIT_RTTIME},
};

static void json_rlim(rlim_t v)
{
	if (v == RLIM_INFINITY)
		json_str("unlimited");
	else
		json_uint((unsigned long long)v);
}

static void report_rlimits(void)
{
	size_t i;

	json_key("rlimits");
	json_begin_object();
	for (i = 0; i < sizeof rlimit_table / sizeof rlimit_table[0]; i++) {
		struct rlimit r;

		json_key(rlimit_table[i].name);
		if (getrlimit(rlimit_table[i].resource, &r) != 0) {
			json_null();
			continue;
		}
		json_begin_object();
		json_key("soft");
		json_rlim(r.rlim_cur);
		json_key("hard");
		json_rlim(r.rlim_max);
		json_end_object();
	}
	json_end_object();
}

/* One lstat'ed node as a device-table entry (also used by `checker stat`). */
static void json_node_fields(const char *path, const struct stat *st)
{
	json_kstr("type", file_type(st->st_mode));
	json_key("mode");
	json_mode(st->st_mode);
	json_kuint("uid", st->st_uid);
	json_kuint("gid", st->st_gid);
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode)) {
		json_kuint("major", major(st->st_rdev));
		json_kuint("minor", minor(st->st_rdev));
	} else {
		json_knull("major");
		json_knull("minor");
	}
	json_key("link");
	if (S_ISLNK(st->st_mode)) {
		char *t = read_link(path);

		json_str(t);
		free(t);
	} else {
		json_null();
	}
}

/* Entries of one directory as device-table objects; 0 if it was readable. */
static int report_device_dir(const char *dir)
{
	struct name_list l;
	char path[PATH_MAX];
	size_t i;

	if (list_dir(dir, &l, cmp_names, 0) < 0)
		return -1;
	for (i = 0; i < l.n; i++) {
		struct stat st;

		snprintf(path, sizeof path, "%s/%s", dir, l.v[i]);
		if (lstat(path, &st) != 0)
			continue; /* vanished meanwhile */
		json_begin_object();
		json_kstr("path", path);
		json_node_fields(path, &st);
		json_end_object();
	}
	free_names(&l);
	return 0;
}

/*
 * /dev (non-recursive) plus the /dev/pts entries, which is what OCI's
 * default devices and devpts mount are about.  /dev/shm, /dev/mqueue etc.
 * show up as "d" entries of /dev itself.
 */
static void report_devices(void)
{
	struct stat st;

	json_key("devices");
	if (lstat("/dev", &st) != 0 || !S_ISDIR(st.st_mode)) {
		json_null();
		return;
	}
	json_begin_array();
	report_device_dir("/dev");
	if (lstat("/dev/pts", &st) == 0 && S_ISDIR(st.st_mode))
		report_device_dir("/dev/pts");
	json_end_array();
}

/* Writes the fds object (value only): fd number -> readlink text. */
static void json_fds_value(void)
{
	struct name_list l;
	char path[64];
	size_t i;

	if (list_dir("/proc/self/fd", &l, cmp_numeric_names, 1) < 0) {
		json_null();
		return;
	}
	json_begin_object();
	for (i = 0; i < l.n; i++) {
		char *t;

		snprintf(path, sizeof path, "/proc/self/fd/%s", l.v[i]);
		t = read_link(path);
		json_kstr(l.v[i], t);
		free(t);
	}
	json_end_object();
	free_names(&l);
}

static void report_fds(void)
{
	json_key("fds");
	json_fds_value();
}

/*
 * Signal state twice over: the kernel's masks from /proc (complete, but
 * need /proc), and what libc reports directly (works without /proc; musl
 * refuses sigaction() on its internal signals 32-34, which are skipped).
 */
static void report_signals(const char *status)
{
	sigset_t blocked;
	int sig;

	json_key("signals");
	json_begin_object();
	json_kstatus_str(status, "pending", "SigPnd");
	json_kstatus_str(status, "blocked", "SigBlk");
	json_kstatus_str(status, "ignored", "SigIgn");
	json_kstatus_str(status, "caught", "SigCgt");

	json_key("ignoredSignals");
	json_begin_array();
	for (sig = 1; sig <= 64; sig++) {
		struct sigaction old;

		if (sigaction(sig, NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			json_int(sig);
	}
	json_end_array();

	json_key("blockedSignals");
	if (sigprocmask(SIG_BLOCK, NULL, &blocked) != 0) {
		json_null();
	} else {
		json_begin_array();
		for (sig = 1; sig <= 64; sig++)
			if (sigismember(&blocked, sig) == 1)
				json_int(sig);
		json_end_array();
	}
	json_end_object();
}

static void report_security(const char *status)
{
	int v;

	json_key("capabilities");
	if (!status) {
		json_null();
	} else {
		json_begin_object();
		json_kstatus_str(status, "CapInh", "CapInh");
		json_kstatus_str(status, "CapPrm", "CapPrm");
		json_kstatus_str(status, "CapEff", "CapEff");
		json_kstatus_str(status, "CapBnd", "CapBnd");
		json_kstatus_str(status, "CapAmb", "CapAmb");
		json_end_object();
	}

	/* prctl works without /proc, so prefer it over the status fields. */
	v = prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
	json_key("noNewPrivs");
	if (v < 0)
		json_null();
	else
		json_bool(v);

	json_kstatus_int(status, "seccomp", "Seccomp");
	json_kstatus_int(status, "seccompFilters", "Seccomp_filters");

	v = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	json_key("dumpable");
	if (v < 0)
		json_null();
	else
		json_int(v);

	{
		/* The LSM label (AppArmor profile / SELinux context), if any. */
		char *label = read_trimmed("/proc/self/attr/current");

		json_kstr("lsmLabel", label);
		free(label);
	}
}

static void report_oom_score_adj(void)
{
	char *v = read_trimmed("/proc/self/oom_score_adj");

	json_key("oomScoreAdj");
	if (v)
		json_int(strtol(v, NULL, 10));
	else
		json_null();
	free(v);
}

static void report_nice(void)
{
	int prio;

	/* getpriority can legitimately return -1, so errno is the signal. */
	errno = 0;
	prio = getpriority(PRIO_PROCESS, 0);
	json_key("nice");
	if (errno)
		json_null();
	else
		json_int(prio);
}

/* Task attributes set by process.scheduler, process.ioPriority,
 * linux.personality, linux.memoryPolicy and process.execCPUAffinity. */

/* Set bits of a mask of `bits` bits as a list "0-3,7" (a JSON string). */
static void json_bit_list(const unsigned long *mask, unsigned bits)
{
	char out[4096];
	size_t used = 0;
	out[0] = '\0';
	for (unsigned i = 0; i < bits; i++) {
		if (!(mask[i / (8 * sizeof(long))] & (1UL << (i % (8 * sizeof(long))))))
			continue;
		unsigned j = i;
		while (j + 1 < bits &&
		       (mask[(j + 1) / (8 * sizeof(long))] & (1UL << ((j + 1) % (8 * sizeof(long))))))
			j++;
		int n = j > i ? snprintf(out + used, sizeof(out) - used, "%s%u-%u", used ? "," : "", i, j)
			      : snprintf(out + used, sizeof(out) - used, "%s%u", used ? "," : "", i);
		if (n < 0 || (size_t)n >= sizeof(out) - used)
			break;
		used += n;
		i = j;
	}
	json_str(out);
}

static void report_task_attrs(void)
{
	struct tsrun_sched_attr attr;
	memset(&attr, 0, sizeof(attr));
	json_key("scheduler");
	if (syscall(SYS_sched_getattr, 0, &attr, sizeof(attr), 0) < 0) {
		json_null();
	} else {
		json_begin_object();
		json_key("policy");
		json_uint(attr.sched_policy);
		json_key("flags");
		json_uint(attr.sched_flags);
		json_key("nice");
		json_int(attr.sched_nice);
		json_key("priority");
		json_uint(attr.sched_priority);
		json_key("runtime");
		json_uint(attr.sched_runtime);
		json_key("deadline");
		json_uint(attr.sched_deadline);
		json_key("period");
		json_uint(attr.sched_period);
		json_end_object();
	}

	long ioprio = syscall(SYS_ioprio_get, 1 /* IOPRIO_WHO_PROCESS */, 0);
	json_key("ioPriority");
	if (ioprio < 0) {
		json_null();
	} else {
		json_begin_object();
		json_key("class");
		json_int(ioprio >> 13);
		json_key("level");
		json_int(ioprio & 0x1fff);
		json_end_object();
	}

	long persona = syscall(SYS_personality, 0xffffffffUL);
	json_key("personality");
	if (persona < 0)
		json_null();
	else
		json_int(persona);

	static unsigned long cpus[8192 / (8 * sizeof(long))];
	json_key("cpuAffinity");
	if (syscall(SYS_sched_getaffinity, 0, sizeof(cpus), cpus) < 0)
		json_null();
	else
		json_bit_list(cpus, 8192);

	static unsigned long nodes[1024 / (8 * sizeof(long))];
	int mode = 0;
	json_key("memoryPolicy");
	if (syscall(SYS_get_mempolicy, &mode, nodes, 1024 + 1, NULL, 0UL) < 0) {
		json_null();
	} else {
		json_begin_object();
		json_key("mode");
		json_int(mode);
		json_key("nodes");
		json_bit_list(nodes, 1024);
		json_end_object();
	}
}

static void report_tty(void)
{
	char *stat, *p;
	int tty_nr, tpgid;

	json_key("tty");
	json_begin_object();
	json_kbool("stdin", isatty(0));
	json_kbool("stdout", isatty(1));
	json_kbool("stderr", isatty(2));
	json_kstr("ttyname", ttyname(0));
	json_end_object();

	/*
	 * Controlling terminal from /proc/self/stat.  comm may contain spaces
	 * and ')' so the fixed fields start after the LAST ')'.
	 */
	json_key("ctty");
	stat = read_trimmed("/proc/self/stat");
	p = stat ? strrchr(stat, ')') : NULL;
	if (p && sscanf(p + 1, " %*c %*d %*d %*d %d %d", &tty_nr, &tpgid) == 2) {
		unsigned u = (unsigned)tty_nr;

		json_begin_object();
		json_kint("tty_nr", tty_nr);
		json_kuint("major", (u >> 8) & 0xfff);
		json_kuint("minor", (u & 0xff) | ((u >> 12) & 0xfff00));
		json_kint("tpgid", tpgid);
		json_end_object();
	} else {
		json_null();
	}
	free(stat);
}

static void report_cgroup(void)
{
	char *buf = read_trimmed("/proc/self/cgroup");
	char *line, *next;

	json_key("cgroup");
	if (!buf) {
		json_null();
		return;
	}
	json_begin_array();
	for (line = buf; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		json_str(line);
	}
	json_end_array();
	free(buf);
}

static void report_exe(void)
{
	char *exe = read_link("/proc/self/exe");

	json_kstr("exe", exe);
	free(exe);
}

static int mode_report(int argc, char **argv)
{
	/* Read once so every status-derived field describes the same instant. */
	char *status = read_whole_file("/proc/self/status", PROC_READ_MAX, NULL, NULL);

	json_begin_object();
	report_process_ids();
	report_uts();
	report_credentials();
	report_umask(status);
	report_cwd();
	report_env_args(argc, argv);
	report_namespaces();
	report_mounts();
	report_rlimits();
	report_devices();
	report_signals(status);
	report_security(status);
	report_oom_score_adj();
	report_nice();
	report_task_attrs();
	report_tty();
	report_cgroup();
	report_exe();
	/* Last, so no fd opened by the sections above can be mistaken for ours. */
	report_fds();
	json_end_object();
	free(status);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Single-purpose modes                                                     */
/* ------------------------------------------------------------------------ */

static int mode_read(const char *path)
{
	size_t len = 0;
	int truncated = 0;
	char *buf = read_whole_file(path, READ_MODE_MAX, &len, &truncated);
	int e = buf ? 0 : errno;

	json_begin_object();
	json_kstr("path", path);
	json_key("content");
	if (buf)
		json_strn(buf, len);
	else
		json_null();
	json_kbool("truncated", truncated);
	json_errno_fields(e);
	json_end_object();
	free(buf);
	return 0;
}

static int mode_stat(const char *path)
{
	struct stat st;
	int e = lstat(path, &st) == 0 ? 0 : errno;

	json_begin_object();
	json_kstr("path", path);
	if (e == 0) {
		json_node_fields(path, &st);
		json_kint("size", (long long)st.st_size);
	} else {
		static const char *const fields[] = {
			"type", "mode", "uid", "gid", "major", "minor", "link", "size",
		};
		size_t i;

		for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
			json_knull(fields[i]);
	}
	json_errno_fields(e);
	json_end_object();
	return 0;
}

/* No O_CREAT: the tests probe existing files (sysfs, /proc, ro mounts). */
static int mode_write(const char *path, const char *text)
{
	size_t len = strlen(text), off = 0;
	int e = 0;
	int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		e = errno;
	} else {
		while (off < len) {
			ssize_t n = write(fd, text + off, len - off);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				e = errno;
				break;
			}
			off += (size_t)n;
		}
		/* Some pseudo-files only report errors at close. */
		if (close(fd) != 0 && e == 0 && errno != EINTR)
			e = errno;
	}
	json_begin_object();
	json_kstr("path", path);
	json_kbool("ok", e == 0);
	json_kuint("written", off);
	json_errno_fields(e);
	json_end_object();
	return 0;
}

/* net.ipv4.ip_forward -> /proc/sys/net/ipv4/ip_forward; names with '/' kept. */
static int mode_sysctl(const char *name)
{
	char path[PATH_MAX];
	char *value;
	size_t i, off;
	int e, keep_dots = strchr(name, '/') != NULL;

	/* Like sysctl(8): a name containing '/' is a path, dots and all. */
	off = (size_t)snprintf(path, sizeof path, "/proc/sys/");
	for (i = 0; name[i] && off + 1 < sizeof path; i++)
		path[off++] = (name[i] == '.' && !keep_dots) ? '/' : name[i];
	path[off] = '\0';

	value = read_trimmed(path);
	e = value ? 0 : errno;
	json_begin_object();
	json_kstr("name", name);
	json_kstr("path", path);
	json_kstr("value", value);
	json_errno_fields(e);
	json_end_object();
	free(value);
	return 0;
}

/*
 * `checker syscall NR`: make raw syscall NR with all-zero arguments and say
 * what came back, for seccomp tests (a filter's answer to a call it names
 * or not: the default errno, or ENOSYS).  Only numbers the tests choose:
 * zero arguments are harmless for the calls they ask about.
 */
static int usage_error(const char *mode);

static int mode_syscall(const char *text)
{
	char *end;
	long nr = strtol(text, &end, 0);
	if (*text == '\0' || *end != '\0' || nr < 0)
		return usage_error("syscall");
	errno = 0;
	long ret = syscall(nr, 0L, 0L, 0L, 0L, 0L, 0L);
	int e = ret < 0 ? errno : 0;
	json_begin_object();
	json_kint("nr", nr);
	json_kint("ret", ret);
	json_errno_fields(e);
	json_end_object();
	return 0;
}

static int mode_fds(void)
{
	json_fds_value();
	return 0;
}

static int mode_exit(const char *code)
{
	fflush(stdout);
	exit((int)strtol(code, NULL, 10));
}

static int mode_sleep(const char *seconds)
{
	double s = strtod(seconds, NULL);
	struct timespec ts, rem;

	if (s < 0)
		s = 0;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	/* Restart after signals that have handlers installed by someone else. */
	while (nanosleep(&ts, &rem) != 0 && errno == EINTR)
		ts = rem;
	return 0;
}

/* Sleeps until killed: what holds a lock or a socket for a checkpoint test. */
__attribute__((noreturn)) static int pause_forever(void)
{
	for (;;)
		pause();
}

/*
 * flock PATH [hold]: takes an exclusive flock(2) on PATH (made if missing)
 * without waiting, and prints {"locked":true} or {"locked":false,"errno":N}.
 * With "hold" it keeps the lock until killed (a lock CRIU must carry over,
 * --file-locks); without, it tells whether somebody else holds it.
 */
static int mode_flock(const char *file, int hold)
{
	int fd = open(file, O_RDWR | O_CREAT, 0644);
	int locked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
	int err = locked ? 0 : errno;

	json_begin_object();
	json_kbool("locked", locked);
	if (!locked)
		json_kint("errno", err);
	json_end_object();
	putchar('\n');
	fflush(stdout);
	if (!locked)
		return 1;
	return hold ? pause_forever() : 0;
}

/*
 * listen PORT: a TCP socket listening on 0.0.0.0:PORT that never accepts,
 * so a connection made to it stays in its accept queue (in flight, for
 * --tcp-skip-in-flight); prints {"listening":PORT} and waits until killed.
 */
static int mode_listen(const char *port)
{
	struct sockaddr_in addr;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM, 0);

	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)atoi(port));
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 8) != 0) {
		json_begin_object();
		json_kint("errno", errno);
		json_end_object();
		putchar('\n');
		return 1;
	}
	json_begin_object();
	json_kint("listening", atoi(port));
	json_end_object();
	putchar('\n');
	fflush(stdout);
	return pause_forever();
}

static int unix_address(const char *file, struct sockaddr_un *addr)
{
	memset(addr, 0, sizeof *addr);
	addr->sun_family = AF_UNIX;
	if (strlen(file) >= sizeof addr->sun_path)
		return -1;
	strcpy(addr->sun_path, file);
	return 0;
}

/*
 * dgram-serve PATH: a unix datagram socket bound at PATH; each datagram
 * received is written to stdout as it came, until killed.
 */
static int mode_dgram_serve(const char *file)
{
	struct sockaddr_un addr;
	char buf[512];
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	if (fd < 0 || unix_address(file, &addr) != 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
		return 1;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);

		if (n < 0 && errno != EINTR)
			return 1;
		if (n > 0 && write(1, buf, (size_t)n) < 0)
			return 1;
	}
}

/*
 * dgram-send PATH: a unix datagram socket connected to PATH (a socket of
 * somebody else's, --ext-unix-sk), sending "1\n", "2\n", ... five times a
 * second until killed; it connects again while the peer is not there.
 */
static int mode_dgram_send(const char *file)
{
	struct sockaddr_un addr;
	struct timespec tick = {0, 200 * 1000 * 1000};
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0), connected = 0;
	unsigned long i = 0;

	if (fd < 0 || unix_address(file, &addr) != 0)
		return 1;
	for (;;) {
		char line[32];
		int len;

		if (!connected)
			connected = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
		if (connected) {
			len = snprintf(line, sizeof line, "%lu\n", ++i);
			if (send(fd, line, (size_t)len, 0) < 0)
				i--;
		}
		nanosleep(&tick, NULL);
	}
}

/*
 * signals-wait: handlers only count deliveries (printing from a handler is
 * not async-signal-safe); the main loop waits in sigsuspend() with the
 * signals blocked otherwise, so no delivery can slip between check and wait.
 */
static const int waited_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
static volatile sig_atomic_t signal_counts[65];

static void count_signal(int sig)
{
	if (sig > 0 && sig < 65)
		signal_counts[sig]++;
}

static int mode_signals_wait(void)
{
	struct sigaction sa;
	sigset_t block, waitmask;
	size_t i;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = count_signal;
	sigfillset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < sizeof waited_signals / sizeof waited_signals[0]; i++) {
		sigaction(waited_signals[i], &sa, NULL);
		sigaddset(&block, waited_signals[i]);
	}
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	/* Wait with whatever mask we inherited, minus the signals we report. */
	for (i = 0; i < sizeof waited_signals / sizeof waited_signals[0]; i++)
		sigdelset(&waitmask, waited_signals[i]);

	json_begin_object();
	json_kbool("ready", 1);
	json_end_object();
	putchar('\n');
	fflush(stdout);

	for (;;) {
		int terminate = 0;

		sigsuspend(&waitmask);
		/* Signals are blocked again here, so the counters are stable. */
		for (i = 0; i < sizeof waited_signals / sizeof waited_signals[0]; i++) {
			int sig = waited_signals[i];

			while (signal_counts[sig] > 0) {
				signal_counts[sig]--;
				json_depth = 0;
				json_begin_object();
				json_kint("signal", sig);
				json_end_object();
				putchar('\n');
				if (sig == SIGTERM)
					terminate = 1;
			}
		}
		fflush(stdout);
		if (terminate)
			return 0;
	}
}

static int mode_echo_stdin(void)
{
	char buf[65536];

	for (;;) {
		ssize_t n = read(0, buf, sizeof buf), off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? 1 : 0;
		while (off < n) {
			ssize_t w = write(1, buf + off, (size_t)(n - off));

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return 1;
			}
			off += w;
		}
	}
}

static int usage_error(const char *mode)
{
	json_begin_object();
	json_kstr("error", "usage");
	json_kstr("mode", mode);
	json_kstr("usage",
		  "checker [report [ARGS...] | read PATH | stat PATH | write PATH TEXT | sysctl NAME | "
		  "exit N | sleep SECONDS | signals-wait | fds | echo-stdin | flock PATH [hold] | listen "
		  "PORT]");
	json_end_object();
	putchar('\n');
	fflush(stdout);
	return 2;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : NULL;
	int rc;

	/* "report ARGS..." lets tests check argv propagation with extra args. */
	if (!mode || !strcmp(mode, "report"))
		rc = mode_report(argc, argv);
	else if (!strcmp(mode, "read") && argc == 3)
		rc = mode_read(argv[2]);
	else if (!strcmp(mode, "stat") && argc == 3)
		rc = mode_stat(argv[2]);
	else if (!strcmp(mode, "write") && argc == 4)
		rc = mode_write(argv[2], argv[3]);
	else if (!strcmp(mode, "sysctl") && argc == 3)
		rc = mode_sysctl(argv[2]);
	else if (!strcmp(mode, "fds") && argc == 2)
		rc = mode_fds();
	else if (!strcmp(mode, "syscall") && argc == 3)
		rc = mode_syscall(argv[2]);
	else if (!strcmp(mode, "exit") && argc == 3)
		return mode_exit(argv[2]);
	else if (!strcmp(mode, "sleep") && argc == 3)
		return mode_sleep(argv[2]);
	else if (!strcmp(mode, "signals-wait") && argc == 2)
		return mode_signals_wait();
	else if (!strcmp(mode, "echo-stdin") && argc == 2)
		return mode_echo_stdin();
	else if (!strcmp(mode, "flock") && (argc == 3 || (argc == 4 && !strcmp(argv[3], "hold"))))
		return mode_flock(argv[2], argc == 4);
	else if (!strcmp(mode, "listen") && argc == 3)
		return mode_listen(argv[2]);
	else if (!strcmp(mode, "dgram-serve") && argc == 3)
		return mode_dgram_serve(argv[2]);
	else if (!strcmp(mode, "dgram-send") && argc == 3)
		return mode_dgram_send(argv[2]);
	else
		return usage_error(mode);

	putchar('\n');
	if (fflush(stdout) != 0 || ferror(stdout))
		return 1;
	return rc;
}
