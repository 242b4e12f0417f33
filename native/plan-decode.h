/*
 * GENERATED from src/lib/plan-format.ts (OP_SCHEMA) by `npm run plan-header`:
 * change that, then regenerate.  test/unit/plan-header.test.ts fails while
 * this file differs.
 *
 * Included by init.c after struct cursor, the readers (rd_u32, rd_u64,
 * rd_str, rd_strv, rd_u32v, rd_bytes) and plan_op_end; init.c defines one
 * handler per op, named after it (op_setns for OP_SETNS), which takes the
 * decoded struct (or nothing).
 */
#ifndef TSRUN_PLAN_DECODE_H
#define TSRUN_PLAN_DECODE_H

#include "plan-ops.h"

/*
 * decode_<op> reads an op's fields in wire order into its struct and
 * requires the op to end where they do (plan_op_end); run_<op> decodes
 * and calls the handler.
 */
static inline void decode_setns(struct cursor *c, struct op_setns *o)
{
	o->nstype = rd_u32(c);
	o->path = rd_str(c);
	plan_op_end(c, OP_SETNS);
}
static void op_setns(const struct op_setns *o);
static void run_setns(struct cursor *c)
{
	struct op_setns o;
	decode_setns(c, &o);
	op_setns(&o);
}
static void op_unshare_user(void);
static void run_unshare_user(struct cursor *c)
{
	plan_op_end(c, OP_UNSHARE_USER);
	op_unshare_user();
}
static inline void decode_unshare(struct cursor *c, struct op_unshare *o)
{
	o->flags = rd_u64(c);
	plan_op_end(c, OP_UNSHARE);
}
static void op_unshare(const struct op_unshare *o);
static void run_unshare(struct cursor *c)
{
	struct op_unshare o;
	decode_unshare(c, &o);
	op_unshare(&o);
}
static void op_become_root(void);
static void run_become_root(struct cursor *c)
{
	plan_op_end(c, OP_BECOME_ROOT);
	op_become_root();
}
static inline void decode_timens_offsets(struct cursor *c, struct op_timens_offsets *o)
{
	o->content = rd_str(c);
	plan_op_end(c, OP_TIMENS_OFFSETS);
}
static void op_timens_offsets(const struct op_timens_offsets *o);
static void run_timens_offsets(struct cursor *c)
{
	struct op_timens_offsets o;
	decode_timens_offsets(c, &o);
	op_timens_offsets(&o);
}
static inline void decode_clone_init(struct cursor *c, struct op_clone_init *o)
{
	o->cgroup_dir = rd_str(c);
	plan_op_end(c, OP_CLONE_INIT);
}
static void op_clone_init(const struct op_clone_init *o);
static void run_clone_init(struct cursor *c)
{
	struct op_clone_init o;
	decode_clone_init(c, &o);
	op_clone_init(&o);
}
static void op_setsid(void);
static void run_setsid(struct cursor *c)
{
	plan_op_end(c, OP_SETSID);
	op_setsid();
}
static inline void decode_sethostname(struct cursor *c, struct op_sethostname *o)
{
	o->name = rd_str(c);
	plan_op_end(c, OP_SETHOSTNAME);
}
static void op_sethostname(const struct op_sethostname *o);
static void run_sethostname(struct cursor *c)
{
	struct op_sethostname o;
	decode_sethostname(c, &o);
	op_sethostname(&o);
}
static inline void decode_setdomainname(struct cursor *c, struct op_setdomainname *o)
{
	o->name = rd_str(c);
	plan_op_end(c, OP_SETDOMAINNAME);
}
static void op_setdomainname(const struct op_setdomainname *o);
static void run_setdomainname(struct cursor *c)
{
	struct op_setdomainname o;
	decode_setdomainname(c, &o);
	op_setdomainname(&o);
}
static inline void decode_rootfs_prepare(struct cursor *c, struct op_rootfs_prepare *o)
{
	o->rootfs = rd_str(c);
	o->propagation = rd_u32(c);
	plan_op_end(c, OP_ROOTFS_PREPARE);
}
static void op_rootfs_prepare(const struct op_rootfs_prepare *o);
static void run_rootfs_prepare(struct cursor *c)
{
	struct op_rootfs_prepare o;
	decode_rootfs_prepare(c, &o);
	op_rootfs_prepare(&o);
}
static inline void decode_mount(struct cursor *c, struct op_mount *o)
{
	o->kind = rd_u32(c);
	o->recursive_bind = rd_u32(c);
	o->create = rd_u32(c);
	o->source = rd_str(c);
	o->dest = rd_str(c);
	o->fstype = rd_str(c);
	o->data = rd_str(c);
	o->attr_set = rd_u32(c);
	o->attr_clr = rd_u32(c);
	o->rec_attr_set = rd_u32(c);
	o->rec_attr_clr = rd_u32(c);
	o->propagation = rd_u32(c);
	o->propagation_recursive = rd_u32(c);
	o->copy_up = rd_u32(c);
	o->slot = rd_u32(c);
	plan_op_end(c, OP_MOUNT);
}
static void op_mount(const struct op_mount *o);
static void run_mount(struct cursor *c)
{
	struct op_mount o;
	decode_mount(c, &o);
	op_mount(&o);
}
static inline void decode_mknod(struct cursor *c, struct op_mknod *o)
{
	o->path = rd_str(c);
	o->type = rd_u32(c);
	o->major = rd_u32(c);
	o->minor = rd_u32(c);
	o->mode = rd_u32(c);
	o->uid = rd_u32(c);
	o->gid = rd_u32(c);
	o->bind_from_host = rd_u32(c);
	plan_op_end(c, OP_MKNOD);
}
static void op_mknod(const struct op_mknod *o);
static void run_mknod(struct cursor *c)
{
	struct op_mknod o;
	decode_mknod(c, &o);
	op_mknod(&o);
}
static inline void decode_symlink(struct cursor *c, struct op_symlink *o)
{
	o->target = rd_str(c);
	o->path = rd_str(c);
	plan_op_end(c, OP_SYMLINK);
}
static void op_symlink(const struct op_symlink *o);
static void run_symlink(struct cursor *c)
{
	struct op_symlink o;
	decode_symlink(c, &o);
	op_symlink(&o);
}
static inline void decode_mkdir(struct cursor *c, struct op_mkdir *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_MKDIR);
}
static void op_mkdir(const struct op_mkdir *o);
static void run_mkdir(struct cursor *c)
{
	struct op_mkdir o;
	decode_mkdir(c, &o);
	op_mkdir(&o);
}
static void op_parent_hooks(void);
static void run_parent_hooks(struct cursor *c)
{
	plan_op_end(c, OP_PARENT_HOOKS);
	op_parent_hooks();
}
static inline void decode_hook(struct cursor *c, struct op_hook *o)
{
	o->stage = rd_u32(c);
	o->path = rd_str(c);
	o->args = rd_strv(c);
	o->env = rd_strv(c);
	o->timeout = rd_u32(c);
	o->cwd = rd_str(c);
	o->process_env = rd_u32(c);
	plan_op_end(c, OP_HOOK);
}
static void op_hook(const struct op_hook *o);
static void run_hook(struct cursor *c)
{
	struct op_hook o;
	decode_hook(c, &o);
	op_hook(&o);
}
static inline void decode_pivot_root(struct cursor *c, struct op_pivot_root *o)
{
	o->mode = rd_u32(c);
	plan_op_end(c, OP_PIVOT_ROOT);
}
static void op_pivot_root(const struct op_pivot_root *o);
static void run_pivot_root(struct cursor *c)
{
	struct op_pivot_root o;
	decode_pivot_root(c, &o);
	op_pivot_root(&o);
}
static void op_remount_root_ro(void);
static void run_remount_root_ro(struct cursor *c)
{
	plan_op_end(c, OP_REMOUNT_ROOT_RO);
	op_remount_root_ro();
}
static inline void decode_root_propagation(struct cursor *c, struct op_root_propagation *o)
{
	o->flags = rd_u32(c);
	plan_op_end(c, OP_ROOT_PROPAGATION);
}
static void op_root_propagation(const struct op_root_propagation *o);
static void run_root_propagation(struct cursor *c)
{
	struct op_root_propagation o;
	decode_root_propagation(c, &o);
	op_root_propagation(&o);
}
static inline void decode_sysctl(struct cursor *c, struct op_sysctl *o)
{
	o->key = rd_str(c);
	o->value = rd_str(c);
	plan_op_end(c, OP_SYSCTL);
}
static void op_sysctl(const struct op_sysctl *o);
static void run_sysctl(struct cursor *c)
{
	struct op_sysctl o;
	decode_sysctl(c, &o);
	op_sysctl(&o);
}
static inline void decode_console(struct cursor *c, struct op_console *o)
{
	o->rows = rd_u32(c);
	o->cols = rd_u32(c);
	o->bind_dev_console = rd_u32(c);
	plan_op_end(c, OP_CONSOLE);
}
static void op_console(const struct op_console *o);
static void run_console(struct cursor *c)
{
	struct op_console o;
	decode_console(c, &o);
	op_console(&o);
}
static void op_parent_rlimits(void);
static void run_parent_rlimits(struct cursor *c)
{
	plan_op_end(c, OP_PARENT_RLIMITS);
	op_parent_rlimits();
}
static inline void decode_oom_score_adj(struct cursor *c, struct op_oom_score_adj *o)
{
	o->value = rd_u32(c);
	plan_op_end(c, OP_OOM_SCORE_ADJ);
}
static void op_oom_score_adj(const struct op_oom_score_adj *o);
static void run_oom_score_adj(struct cursor *c)
{
	struct op_oom_score_adj o;
	decode_oom_score_adj(c, &o);
	op_oom_score_adj(&o);
}
static void op_no_new_privs(void);
static void run_no_new_privs(struct cursor *c)
{
	plan_op_end(c, OP_NO_NEW_PRIVS);
	op_no_new_privs();
}
static inline void decode_user(struct cursor *c, struct op_user *o)
{
	o->uid = rd_u32(c);
	o->gid = rd_u32(c);
	o->umask = rd_u32(c);
	o->groups = rd_u32v(c);
	plan_op_end(c, OP_USER);
}
static void op_user(const struct op_user *o);
static void run_user(struct cursor *c)
{
	struct op_user o;
	decode_user(c, &o);
	op_user(&o);
}
static inline void decode_chdir(struct cursor *c, struct op_chdir *o)
{
	o->cwd = rd_str(c);
	o->stage = rd_u32(c);
	plan_op_end(c, OP_CHDIR);
}
static void op_chdir(const struct op_chdir *o);
static void run_chdir(struct cursor *c)
{
	struct op_chdir o;
	decode_chdir(c, &o);
	op_chdir(&o);
}
static inline void decode_exec_prepare(struct cursor *c, struct op_exec_prepare *o)
{
	o->name = rd_str(c);
	o->argv = rd_strv(c);
	o->env = rd_strv(c);
	plan_op_end(c, OP_EXEC_PREPARE);
}
static void op_exec_prepare(const struct op_exec_prepare *o);
static void run_exec_prepare(struct cursor *c)
{
	struct op_exec_prepare o;
	decode_exec_prepare(c, &o);
	op_exec_prepare(&o);
}
static void op_wait_start(void);
static void run_wait_start(struct cursor *c)
{
	plan_op_end(c, OP_WAIT_START);
	op_wait_start();
}
static void op_exec(void);
static void run_exec(struct cursor *c)
{
	plan_op_end(c, OP_EXEC);
	op_exec();
}
static inline void decode_session_keyring(struct cursor *c, struct op_session_keyring *o)
{
	o->name = rd_str(c);
	plan_op_end(c, OP_SESSION_KEYRING);
}
static void op_session_keyring(const struct op_session_keyring *o);
static void run_session_keyring(struct cursor *c)
{
	struct op_session_keyring o;
	decode_session_keyring(c, &o);
	op_session_keyring(&o);
}
static inline void decode_idmap_prepare(struct cursor *c, struct op_idmap_prepare *o)
{
	o->slot = rd_u32(c);
	o->source = rd_str(c);
	o->recursive_bind = rd_u32(c);
	o->uid_map = rd_str(c);
	o->gid_map = rd_str(c);
	o->attr_set = rd_u32(c);
	o->attr_clr = rd_u32(c);
	o->rec_attr_set = rd_u32(c);
	o->rec_attr_clr = rd_u32(c);
	o->idmap_recursive = rd_u32(c);
	plan_op_end(c, OP_IDMAP_PREPARE);
}
static void op_idmap_prepare(const struct op_idmap_prepare *o);
static void run_idmap_prepare(struct cursor *c)
{
	struct op_idmap_prepare o;
	decode_idmap_prepare(c, &o);
	op_idmap_prepare(&o);
}
static inline void decode_caps_bounding(struct cursor *c, struct op_caps_bounding *o)
{
	o->keep = rd_u64(c);
	plan_op_end(c, OP_CAPS_BOUNDING);
}
static void op_caps_bounding(const struct op_caps_bounding *o);
static void run_caps_bounding(struct cursor *c)
{
	struct op_caps_bounding o;
	decode_caps_bounding(c, &o);
	op_caps_bounding(&o);
}
static inline void decode_caps_set(struct cursor *c, struct op_caps_set *o)
{
	o->effective = rd_u64(c);
	o->permitted = rd_u64(c);
	o->inheritable = rd_u64(c);
	o->ambient = rd_u64(c);
	plan_op_end(c, OP_CAPS_SET);
}
static void op_caps_set(const struct op_caps_set *o);
static void run_caps_set(struct cursor *c)
{
	struct op_caps_set o;
	decode_caps_set(c, &o);
	op_caps_set(&o);
}
static inline void decode_readonly_path(struct cursor *c, struct op_readonly_path *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_READONLY_PATH);
}
static void op_readonly_path(const struct op_readonly_path *o);
static void run_readonly_path(struct cursor *c)
{
	struct op_readonly_path o;
	decode_readonly_path(c, &o);
	op_readonly_path(&o);
}
static inline void decode_mask_path(struct cursor *c, struct op_mask_path *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_MASK_PATH);
}
static void op_mask_path(const struct op_mask_path *o);
static void run_mask_path(struct cursor *c)
{
	struct op_mask_path o;
	decode_mask_path(c, &o);
	op_mask_path(&o);
}
static inline void decode_seccomp(struct cursor *c, struct op_seccomp *o)
{
	o->flags = rd_u32(c);
	o->notify = rd_u32(c);
	o->at_exec = rd_u32(c);
	o->program = rd_bytes(c);
	plan_op_end(c, OP_SECCOMP);
}
static void op_seccomp(const struct op_seccomp *o);
static void run_seccomp(struct cursor *c)
{
	struct op_seccomp o;
	decode_seccomp(c, &o);
	op_seccomp(&o);
}
static inline void decode_join_cgroup(struct cursor *c, struct op_join_cgroup *o)
{
	o->dir = rd_str(c);
	o->file = rd_str(c);
	plan_op_end(c, OP_JOIN_CGROUP);
}
static void op_join_cgroup(const struct op_join_cgroup *o);
static void run_join_cgroup(struct cursor *c)
{
	struct op_join_cgroup o;
	decode_join_cgroup(c, &o);
	op_join_cgroup(&o);
}
static inline void decode_hide_host_fs(struct cursor *c, struct op_hide_host_fs *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_HIDE_HOST_FS);
}
static void op_hide_host_fs(const struct op_hide_host_fs *o);
static void run_hide_host_fs(struct cursor *c)
{
	struct op_hide_host_fs o;
	decode_hide_host_fs(c, &o);
	op_hide_host_fs(&o);
}
static void op_loopback_up(void);
static void run_loopback_up(struct cursor *c)
{
	plan_op_end(c, OP_LOOPBACK_UP);
	op_loopback_up();
}
static inline void decode_scheduler(struct cursor *c, struct op_scheduler *o)
{
	o->policy = rd_u32(c);
	o->flags = rd_u64(c);
	o->nice = rd_u32(c);
	o->priority = rd_u32(c);
	o->runtime = rd_u64(c);
	o->deadline = rd_u64(c);
	o->period = rd_u64(c);
	o->cpuset_limited = rd_u32(c);
	plan_op_end(c, OP_SCHEDULER);
}
static void op_scheduler(const struct op_scheduler *o);
static void run_scheduler(struct cursor *c)
{
	struct op_scheduler o;
	decode_scheduler(c, &o);
	op_scheduler(&o);
}
static inline void decode_ioprio(struct cursor *c, struct op_ioprio *o)
{
	o->value = rd_u32(c);
	plan_op_end(c, OP_IOPRIO);
}
static void op_ioprio(const struct op_ioprio *o);
static void run_ioprio(struct cursor *c)
{
	struct op_ioprio o;
	decode_ioprio(c, &o);
	op_ioprio(&o);
}
static inline void decode_personality(struct cursor *c, struct op_personality *o)
{
	o->persona = rd_u32(c);
	plan_op_end(c, OP_PERSONALITY);
}
static void op_personality(const struct op_personality *o);
static void run_personality(struct cursor *c)
{
	struct op_personality o;
	decode_personality(c, &o);
	op_personality(&o);
}
static inline void decode_mempolicy(struct cursor *c, struct op_mempolicy *o)
{
	o->mode = rd_u32(c);
	o->nodemask = rd_bytes(c);
	o->maxnode = rd_u32(c);
	plan_op_end(c, OP_MEMPOLICY);
}
static void op_mempolicy(const struct op_mempolicy *o);
static void run_mempolicy(struct cursor *c)
{
	struct op_mempolicy o;
	decode_mempolicy(c, &o);
	op_mempolicy(&o);
}
static inline void decode_cpu_affinity(struct cursor *c, struct op_cpu_affinity *o)
{
	o->stage = rd_u32(c);
	o->mask = rd_bytes(c);
	plan_op_end(c, OP_CPU_AFFINITY);
}
static void op_cpu_affinity(const struct op_cpu_affinity *o);
static void run_cpu_affinity(struct cursor *c)
{
	struct op_cpu_affinity o;
	decode_cpu_affinity(c, &o);
	op_cpu_affinity(&o);
}
static inline void decode_home(struct cursor *c, struct op_home *o)
{
	o->uid = rd_u32(c);
	plan_op_end(c, OP_HOME);
}
static void op_home(const struct op_home *o);
static void run_home(struct cursor *c)
{
	struct op_home o;
	decode_home(c, &o);
	op_home(&o);
}
static inline void decode_remount_ro(struct cursor *c, struct op_remount_ro *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_REMOUNT_RO);
}
static void op_remount_ro(const struct op_remount_ro *o);
static void run_remount_ro(struct cursor *c)
{
	struct op_remount_ro o;
	decode_remount_ro(c, &o);
	op_remount_ro(&o);
}
static inline void decode_chroot(struct cursor *c, struct op_chroot *o)
{
	o->path = rd_str(c);
	plan_op_end(c, OP_CHROOT);
}
static void op_chroot(const struct op_chroot *o);
static void run_chroot(struct cursor *c)
{
	struct op_chroot o;
	decode_chroot(c, &o);
	op_chroot(&o);
}
static void op_mount_source_server(void);
static void run_mount_source_server(struct cursor *c)
{
	plan_op_end(c, OP_MOUNT_SOURCE_SERVER);
	op_mount_source_server();
}
static inline void decode_mount_sources_join(struct cursor *c, struct op_mount_sources_join *o)
{
	o->userns = rd_u32(c);
	plan_op_end(c, OP_MOUNT_SOURCES_JOIN);
}
static void op_mount_sources_join(const struct op_mount_sources_join *o);
static void run_mount_sources_join(struct cursor *c)
{
	struct op_mount_sources_join o;
	decode_mount_sources_join(c, &o);
	op_mount_sources_join(&o);
}
static void op_mount_sources_done(void);
static void run_mount_sources_done(struct cursor *c)
{
	plan_op_end(c, OP_MOUNT_SOURCES_DONE);
	op_mount_sources_done();
}
static void op_reopen_dev_null(void);
static void run_reopen_dev_null(struct cursor *c)
{
	plan_op_end(c, OP_REOPEN_DEV_NULL);
	op_reopen_dev_null();
}

/* The handler of each op, by number. */
static void (*const plan_handlers[OP_MAX])(struct cursor *) = {
	[OP_SETNS] = run_setns,
	[OP_UNSHARE_USER] = run_unshare_user,
	[OP_UNSHARE] = run_unshare,
	[OP_BECOME_ROOT] = run_become_root,
	[OP_TIMENS_OFFSETS] = run_timens_offsets,
	[OP_CLONE_INIT] = run_clone_init,
	[OP_SETSID] = run_setsid,
	[OP_SETHOSTNAME] = run_sethostname,
	[OP_SETDOMAINNAME] = run_setdomainname,
	[OP_ROOTFS_PREPARE] = run_rootfs_prepare,
	[OP_MOUNT] = run_mount,
	[OP_MKNOD] = run_mknod,
	[OP_SYMLINK] = run_symlink,
	[OP_MKDIR] = run_mkdir,
	[OP_PARENT_HOOKS] = run_parent_hooks,
	[OP_HOOK] = run_hook,
	[OP_PIVOT_ROOT] = run_pivot_root,
	[OP_REMOUNT_ROOT_RO] = run_remount_root_ro,
	[OP_ROOT_PROPAGATION] = run_root_propagation,
	[OP_SYSCTL] = run_sysctl,
	[OP_CONSOLE] = run_console,
	[OP_PARENT_RLIMITS] = run_parent_rlimits,
	[OP_OOM_SCORE_ADJ] = run_oom_score_adj,
	[OP_NO_NEW_PRIVS] = run_no_new_privs,
	[OP_USER] = run_user,
	[OP_CHDIR] = run_chdir,
	[OP_EXEC_PREPARE] = run_exec_prepare,
	[OP_WAIT_START] = run_wait_start,
	[OP_EXEC] = run_exec,
	[OP_SESSION_KEYRING] = run_session_keyring,
	[OP_IDMAP_PREPARE] = run_idmap_prepare,
	[OP_CAPS_BOUNDING] = run_caps_bounding,
	[OP_CAPS_SET] = run_caps_set,
	[OP_READONLY_PATH] = run_readonly_path,
	[OP_MASK_PATH] = run_mask_path,
	[OP_SECCOMP] = run_seccomp,
	[OP_JOIN_CGROUP] = run_join_cgroup,
	[OP_HIDE_HOST_FS] = run_hide_host_fs,
	[OP_LOOPBACK_UP] = run_loopback_up,
	[OP_SCHEDULER] = run_scheduler,
	[OP_IOPRIO] = run_ioprio,
	[OP_PERSONALITY] = run_personality,
	[OP_MEMPOLICY] = run_mempolicy,
	[OP_CPU_AFFINITY] = run_cpu_affinity,
	[OP_HOME] = run_home,
	[OP_REMOUNT_RO] = run_remount_ro,
	[OP_CHROOT] = run_chroot,
	[OP_MOUNT_SOURCE_SERVER] = run_mount_source_server,
	[OP_MOUNT_SOURCES_JOIN] = run_mount_sources_join,
	[OP_MOUNT_SOURCES_DONE] = run_mount_sources_done,
	[OP_REOPEN_DEV_NULL] = run_reopen_dev_null,
};

#endif
