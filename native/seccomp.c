/*
 * Seccomp for tsrun, on the parent's side only.
 *
 * libseccomp turns rules into a BPF program here, in tsrun's own (Node)
 * process, never in a forked child: libseccomp allocates, and only a
 * freshly exec'd single-threaded program may do that after a fork.  The
 * program travels in the launch plan as plain bytes; tsrun-init loads it
 * with seccomp(2) and needs no library at all.  TypeScript
 * (src/lib/seccomp.ts) has already validated the section and turned names
 * into numbers; what is left here is syscall-name resolution and code
 * generation, which is what libseccomp is for.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addon.h"

#define SECCOMP_SET_MODE_FILTER_  1
#define SECCOMP_GET_ACTION_AVAIL_ 2

static napi_value throw_msg(napi_env env, int err, const char *fmt, const char *arg)
{
	char msg[512];
	snprintf(msg, sizeof(msg), fmt, arg);
	return throw_with_errno(env, err, msg);
}

static uint32_t get_u32(napi_env env, napi_value obj, const char *key)
{
	napi_value v;
	uint32_t out = 0;
	napi_get_named_property(env, obj, key, &v);
	napi_get_value_uint32(env, v, &out);
	return out;
}

static uint64_t get_u64(napi_env env, napi_value obj, const char *key)
{
	napi_value v;
	uint64_t out = 0;
	bool lossless;
	napi_get_named_property(env, obj, key, &v);
	napi_get_value_bigint_uint64(env, v, &out, &lossless);
	return out;
}

static uint32_t array_length(napi_env env, napi_value obj, const char *key, napi_value *array)
{
	uint32_t n = 0;
	napi_get_named_property(env, obj, key, array);
	napi_get_array_length(env, *array, &n);
	return n;
}

/* Read one rule's conditions; returns how many, or -1 when there are too many. */
static int read_conditions(napi_env env, napi_value rule, struct scmp_arg_cmp *conds)
{
	napi_value args;
	uint32_t n = array_length(env, rule, "args", &args);
	if (n > 6)
		return -1;
	for (uint32_t i = 0; i < n; i++) {
		napi_value arg;
		napi_get_element(env, args, i, &arg);
		conds[i].arg = get_u32(env, arg, "index");
		conds[i].op = get_u32(env, arg, "op");
		conds[i].datum_a = get_u64(env, arg, "value");
		conds[i].datum_b = get_u64(env, arg, "valueTwo");
	}
	return n;
}

/*
 * The ENOSYS stub, runc's answer to profiles older than the kernel (its
 * libcontainer/seccomp/patchbpf does the same job; this is tsrun's own
 * code).  A profile whose default action denies names the syscalls that
 * existed when it was written; a newer one it does not name would get the
 * default errno (EPERM), and glibc, musl and Go then give up instead of
 * falling back to the older call they try next on ENOSYS (faccessat2 to
 * faccessat, clone3 to clone, close_range to a loop).  So ahead of
 * libseccomp's program, for each architecture of the filter: a syscall
 * number above every one the profile names returns ENOSYS, as the kernel
 * would if it had no such call; everything else goes to the filter.
 *
 *   ld [arch]
 *   jeq ARCH, 0, next-arch; ld [nr]; jgt LARGEST, 0, 1; ret ERRNO(ENOSYS); ja filter
 *   (the next arch's jeq; after the last one, the filter)
 *
 * x86_64 and x32 share one audit arch; x32 numbers carry bit 30, so with
 * both in the filter the block first asks which one the call is.
 */
#define X32_SYSCALL_BIT	  0x40000000u
#define SECCOMP_DATA_NR	  0 /* offsetof(struct seccomp_data, nr) */
#define SECCOMP_DATA_ARCH 4 /* offsetof(struct seccomp_data, arch) */
#define RET_ENOSYS	  (SCMP_ACT_ERRNO(ENOSYS))
#define MAX_ARCHES	  32
#define MAX_BLOCK	  9 /* jeq, ld, jge, then two limits of 3 */
#define MAX_STUB	  (1 + MAX_ARCHES * MAX_BLOCK)

struct arch_limit {
	uint32_t audit_arch;
	int64_t largest;     /* -1: the profile names nothing this arch knows */
	int64_t largest_x32; /* x86_64's audit arch only */
};

static int64_t largest_named(uint32_t arch, napi_env env, napi_value names, uint32_t count)
{
	int64_t largest = -1;
	for (uint32_t i = 0; i < count; i++) {
		napi_value v;
		char name[128];
		size_t len;
		napi_get_element(env, names, i, &v);
		if (napi_get_value_string_utf8(env, v, name, sizeof(name), &len) != napi_ok)
			continue;
		int nr = seccomp_syscall_resolve_name_arch(arch, name);
		if (nr >= 0 && nr > largest) /* unknown (__NR_SCMP_ERROR) or not on this arch (< 0) */
			largest = nr;
	}
	return largest;
}

/* One "nr > limit: ENOSYS, else: the filter" test; `to_filter` counts from the ja's own slot. */
static uint32_t emit_limit(struct sock_filter *out, uint32_t at, int64_t limit, uint32_t stub_len)
{
	out[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGT | BPF_K, (uint32_t)limit, 0, 1);
	out[at++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, RET_ENOSYS);
	out[at] = (struct sock_filter)BPF_STMT(BPF_JMP | BPF_JA, stub_len - at - 1);
	return at + 1;
}

/* Both x86_64 and x32 limits in one block. */
static bool split_x32(const struct arch_limit *l)
{
	return l->largest >= 0 && l->largest_x32 >= 0;
}

/* The instructions of an arch's block after its jeq; 0: nothing named, no block. */
static uint32_t block_body(const struct arch_limit *l)
{
	if (l->largest < 0 && l->largest_x32 < 0)
		return 0;
	return split_x32(l) ? 1 + 1 + 3 + 3 : 1 + 3; /* ld, [jge,] one or two limits */
}

/* The stub for these limits (at most MAX_ARCHES); its length, or 0 when there is nothing to stub. */
static uint32_t build_enosys_stub(const struct arch_limit *limits, int n, struct sock_filter *out)
{
	/* The length first, for the jumps to the filter that follows the stub. */
	uint32_t len = 1; /* the leading ld [arch] */
	for (int i = 0; i < n; i++)
		len += block_body(&limits[i]) ? 1 + block_body(&limits[i]) : 0;
	if (len == 1)
		return 0;
	uint32_t at = 0;
	out[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH);
	for (int i = 0; i < n; i++) {
		uint32_t block = block_body(&limits[i]);
		if (!block)
			continue;
		out[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, limits[i].audit_arch, 0,
							 block);
		out[at++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR);
		if (split_x32(&limits[i])) {
			out[at++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT,
								 0, 3);
			at = emit_limit(out, at, limits[i].largest_x32, len);
			at = emit_limit(out, at, limits[i].largest, len);
		} else {
			at = emit_limit(out, at,
					limits[i].largest >= 0 ? limits[i].largest : limits[i].largest_x32,
					len);
		}
		/* A jeq that fails skips the block without loading [nr], so the
		 * next block's jeq still compares the arch. */
	}
	return at;
}

/*
 * `program` with the ENOSYS stub ahead of it, for the filter's
 * architectures (the native one and those added), judged by spec.named:
 * every syscall the profile names, whatever its action.  NULL on error.
 */
static napi_value with_enosys_stub(napi_env env, napi_value spec, napi_value arches, uint32_t n_arches,
				   napi_value program)
{
	struct arch_limit limits[MAX_ARCHES];
	int n = 0;
	napi_value names;
	uint32_t n_names = array_length(env, spec, "named", &names);
	for (uint32_t i = 0; i <= n_arches && n < MAX_ARCHES; i++) {
		uint32_t token = seccomp_arch_native();
		if (i < n_arches) {
			napi_value v;
			char name[64];
			size_t len;
			napi_get_element(env, arches, i, &v);
			napi_get_value_string_utf8(env, v, name, sizeof(name), &len);
			token = seccomp_arch_resolve_name(name);
		}
		uint32_t audit = token == SCMP_ARCH_X32 ? SCMP_ARCH_X86_64 : token;
		int at = 0;
		while (at < n && limits[at].audit_arch != audit)
			at++;
		if (at == n)
			limits[n++] = (struct arch_limit){audit, -1, -1};
		if (token == SCMP_ARCH_X32)
			limits[at].largest_x32 = largest_named(token, env, names, n_names);
		else
			limits[at].largest = largest_named(token, env, names, n_names);
	}
	struct sock_filter stub[MAX_STUB];
	uint32_t stub_len = build_enosys_stub(limits, n, stub);
	if (stub_len == 0)
		return program;
	void *old;
	size_t old_len;
	napi_get_buffer_info(env, program, &old, &old_len);
	size_t total = stub_len * sizeof(struct sock_filter) + old_len;
	if (total / sizeof(struct sock_filter) > BPF_MAXINSNS) {
		throw_msg(env, E2BIG,
			  "seccomp: with the ENOSYS stub the filter is longer than the kernel's %s "
			  "instructions",
			  "4096");
		return NULL;
	}
	napi_value out;
	void *data;
	napi_create_buffer(env, total, &data, &out);
	memcpy(data, stub, stub_len * sizeof(struct sock_filter));
	memcpy((char *)data + stub_len * sizeof(struct sock_filter), old, old_len);
	return out;
}

/* The generated program, read back from a memfd (libseccomp 2.5 exports to fds only). */
static napi_value export_program(napi_env env, scmp_filter_ctx ctx)
{
	int fd = memfd_create("tsrun-seccomp", MFD_CLOEXEC);
	if (fd < 0)
		return throw_msg(env, errno, "seccomp: memfd_create: %s", strerror(errno));
	int rc = seccomp_export_bpf(ctx, fd);
	off_t size = lseek(fd, 0, SEEK_END);
	if (rc < 0 || size < 0 || size % 8 != 0) {
		close(fd);
		return throw_msg(env, rc < 0 ? -rc : EIO, "seccomp: export the filter: %s",
				 strerror(rc < 0 ? -rc : EIO));
	}
	napi_value buffer;
	void *data;
	napi_create_buffer(env, size, &data, &buffer);
	ssize_t got = pread(fd, data, size, 0);
	close(fd);
	if (got != size)
		return throw_msg(env, EIO, "seccomp: read back the filter%s", "");
	return buffer;
}

/*
 * seccompCompile({ defaultAction, arches: string[],
 *                  rules: [{ name, action, args: [{ index, op, value, valueTwo }] }] })
 *   -> { program: Buffer (struct sock_filter[]), ignored: string[] }
 *
 * Actions and operators arrive as libseccomp's numbers, values as bigints.
 * A syscall name libseccomp does not know is skipped and reported in
 * `ignored`, as runc does: profiles name syscalls newer than the library.
 */
static napi_value seccomp_compile(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value spec;
	napi_get_cb_info(env, info, &argc, &spec, NULL, NULL);
	if (argc < 1)
		return throw_msg(env, EINVAL, "seccompCompile(spec)%s", "");

	scmp_filter_ctx ctx = seccomp_init(get_u32(env, spec, "defaultAction"));
	if (!ctx)
		return throw_msg(env, EINVAL, "seccomp: libseccomp refused the default action%s", "");
	napi_value result = NULL, ignored;
	uint32_t ignored_count = 0;
	napi_create_array(env, &ignored);

	napi_value arches;
	uint32_t n_arches = array_length(env, spec, "arches", &arches);
	for (uint32_t i = 0; i < n_arches; i++) {
		napi_value v;
		char name[64];
		size_t len;
		napi_get_element(env, arches, i, &v);
		napi_get_value_string_utf8(env, v, name, sizeof(name), &len);
		uint32_t token = seccomp_arch_resolve_name(name);
		if (token == 0) {
			throw_msg(env, EINVAL, "seccomp: libseccomp does not know the architecture %s", name);
			goto out;
		}
		int rc = seccomp_arch_add(ctx, token);
		if (rc < 0 && rc != -EEXIST) {
			char what[128];
			snprintf(what, sizeof(what), "%s: %s", name, strerror(-rc));
			throw_msg(env, -rc, "seccomp: add architecture %s", what);
			goto out;
		}
	}

	napi_value rules;
	uint32_t n_rules = array_length(env, spec, "rules", &rules);
	for (uint32_t i = 0; i < n_rules; i++) {
		napi_value rule, name_value;
		char name[128];
		size_t len;
		napi_get_element(env, rules, i, &rule);
		napi_get_named_property(env, rule, "name", &name_value);
		napi_get_value_string_utf8(env, name_value, name, sizeof(name), &len);
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR) {
			napi_set_element(env, ignored, ignored_count++, name_value);
			continue;
		}
		struct scmp_arg_cmp conds[6];
		int n_conds = read_conditions(env, rule, conds);
		if (n_conds < 0) {
			throw_msg(env, EINVAL, "seccomp: rule for %s has more than 6 conditions", name);
			goto out;
		}
		int rc = seccomp_rule_add_array(ctx, get_u32(env, rule, "action"), nr, n_conds, conds);
		if (rc < 0) {
			char what[256];
			snprintf(what, sizeof(what), "%s: %s", name, strerror(-rc));
			throw_msg(env, -rc, "seccomp: add the rule for %s", what);
			goto out;
		}
	}

	napi_value program = export_program(env, ctx);
	if (!program)
		goto out;
	napi_value enosys;
	bool wants_stub = false;
	napi_get_named_property(env, spec, "enosys", &enosys);
	napi_get_value_bool(env, enosys, &wants_stub);
	if (wants_stub && !(program = with_enosys_stub(env, spec, arches, n_arches, program)))
		goto out;
	napi_create_object(env, &result);
	napi_set_named_property(env, result, "program", program);
	napi_set_named_property(env, result, "ignored", ignored);
out:
	seccomp_release(ctx);
	return result;
}

/* seccompVersion() -> "2.5.4": part of the compiled-filter cache key. */
static napi_value seccomp_version_string(napi_env env, napi_callback_info info)
{
	const struct scmp_version *v = seccomp_version();
	char text[64];
	snprintf(text, sizeof(text), "%u.%u.%u", v->major, v->minor, v->micro);
	napi_value out;
	napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out);
	return out;
}

/* The one u32 argument of the probes below. */
static uint32_t only_u32_arg(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value arg;
	uint32_t value = 0;
	napi_get_cb_info(env, info, &argc, &arg, NULL, NULL);
	napi_get_value_uint32(env, arg, &value);
	return value;
}

static napi_value make_bool(napi_env env, bool value)
{
	napi_value out;
	napi_get_boolean(env, value, &out);
	return out;
}

/*
 * seccompFlagSupported(flags) -> bool.  seccomp(2) checks the flags before
 * it reads the program, so a NULL program answers EFAULT for flags this
 * kernel knows and EINVAL for the others; nothing is ever loaded.
 */
static napi_value seccomp_flag_supported(napi_env env, napi_callback_info info)
{
	long rc = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER_, only_u32_arg(env, info), NULL);
	return make_bool(env, rc < 0 && errno == EFAULT);
}

/* seccompActionAvailable(action) -> bool, from SECCOMP_GET_ACTION_AVAIL. */
static napi_value seccomp_action_available(napi_env env, napi_callback_info info)
{
	/* The kernel knows return values, not libseccomp's errno-carrying forms. */
	uint32_t action = only_u32_arg(env, info) & 0xffff0000u;
	return make_bool(env, syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL_, 0, &action) == 0);
}

/* Called from the addon's module init (addon.c). */
void seccomp_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("seccompCompile", seccomp_compile),
		METHOD("seccompVersion", seccomp_version_string),
		METHOD("seccompFlagSupported", seccomp_flag_supported),
		METHOD("seccompActionAvailable", seccomp_action_available),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
