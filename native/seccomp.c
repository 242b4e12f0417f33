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
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "addon.h"

#define SECCOMP_SET_MODE_FILTER_ 1
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
		return throw_msg(env, rc < 0 ? -rc : EIO, "seccomp: export the filter: %s", strerror(rc < 0 ? -rc : EIO));
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
