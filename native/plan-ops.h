/*
 * GENERATED from src/lib/plan-format.ts (OP_SCHEMA, OP_DOCS and the
 * constants) by `npm run plan-header`: change those, then regenerate.
 * test/unit/plan-header.test.ts fails while this file differs.
 * plan-decode.h, generated with it, reads each op into its struct.
 */
#ifndef TSRUN_PLAN_OPS_H
#define TSRUN_PLAN_OPS_H

#include <stddef.h>
#include <stdint.h>

#define PLAN_MAGIC   0x50525354u /* "TSRP" */
#define PLAN_VERSION 1u

enum plan_op {
	/* join the namespace of that type at path (opened before any is joined: once in the
	 * container's mount namespace the host's /proc no longer resolves)
	 */
	OP_SETNS = 1,
	/* a new user namespace; the parent writes its uid/gid maps meanwhile */
	OP_UNSHARE_USER = 2,
	/* unshare(2) these clone flags */
	OP_UNSHARE = 3,
	/* setresuid/setresgid 0 inside the user namespace */
	OP_BECOME_ROOT = 4,
	/* written to /proc/self/timens_offsets */
	OP_TIMENS_OFFSETS = 5,
	/* fork the container's init (into cgroupDir with CLONE_INTO_CGROUP; '' = none), report its
	 * pid, exit; the init runs the ops after it
	 */
	OP_CLONE_INIT = 6,
	/* setsid(2) */
	OP_SETSID = 7,
	/* sethostname(2) */
	OP_SETHOSTNAME = 8,
	/* setdomainname(2) */
	OP_SETDOMAINNAME = 9,
	/* open the rootfs (or attach the detached image overlay) and set the propagation of "/"
	 * (0: the host's mount namespace: "/" left alone, the rootfs bind made private)
	 */
	OP_ROOTFS_PREPARE = 10,
	/* one mount of config.json under the rootfs: kind FS (fsopen/fsmount), BIND (open_tree) or
	 * PREPARED (the tree OP_IDMAP_PREPARE built in that slot); create says what to make when
	 * dest is missing
	 */
	OP_MOUNT = 11,
	/* a device node under the rootfs, or a bind of the host's node where mknod is not allowed
	 * (bindFromHost)
	 */
	OP_MKNOD = 12,
	/* a symlink at path (in the rootfs) to target */
	OP_SYMLINK = 13,
	/* process.cwd: mkdir -p in the rootfs (0755), what exists left as it is */
	OP_MKDIR = 14,
	/* the parent runs the prestart and createRuntime hooks; it answers with the state JSON the
	 * helper's hooks get
	 */
	OP_PARENT_HOOKS = 15,
	/* a createContainer or startContainer hook (stage); timeout in seconds (0 = none); cwd ''
	 * = ours; processEnv: no env of its own, the process's (OP_EXEC_PREPARE's)
	 */
	OP_HOOK = 16,
	/* mode: PIVOT pivot_root, MOVE move + chroot (--no-pivot), CHROOT chroot alone (the host's
	 * mount namespace: nothing of it may move)
	 */
	OP_PIVOT_ROOT = 17,
	/* root.readonly: make "/" read-only */
	OP_REMOUNT_ROOT_RO = 18,
	/* linux.rootfsPropagation: MS_* propagation flags for "/" */
	OP_ROOT_PROPAGATION = 19,
	/* write value to /proc/sys/<key> (key with "/" for ".") */
	OP_SYSCTL = 20,
	/* a pty: the master goes to the console socket, the slave becomes stdio (and /dev/console,
	 * bindDevConsole)
	 */
	OP_CONSOLE = 21,
	/* the parent sets process.rlimits with prlimit(2) meanwhile */
	OP_PARENT_RLIMITS = 22,
	/* value (two's complement) to /proc/self/oom_score_adj */
	OP_OOM_SCORE_ADJ = 23,
	/* prctl(PR_SET_NO_NEW_PRIVS) */
	OP_NO_NEW_PRIVS = 24,
	/* setgroups, setresgid, setresuid and umask; ids past 2^31-1 refused */
	OP_USER = 25,
	/* process.cwd; stage BEFORE_USER (refused: tried again after the user switch) or
	 * AFTER_USER
	 */
	OP_CHDIR = 26,
	/* resolve name on the PATH of env; keep argv and env for OP_EXEC */
	OP_EXEC_PREPARE = 27,
	/* report ready, block on the exec fifo until `start` */
	OP_WAIT_START = 28,
	/* close fds, reset signals, load a pending seccomp filter, execve */
	OP_EXEC = 29,
	/* join a fresh session keyring of that name */
	OP_SESSION_KEYRING = 30,
	/* a bind's tree, built in the host user namespace before it is attached (idmapped where
	 * maps are given; empty maps: a plain bind); with a mount-source server, the server builds
	 * it and the helper receives it
	 */
	OP_IDMAP_PREPARE = 31,
	/* drop every capability not in keep from the bounding set, and keep capabilities across
	 * the user switch
	 */
	OP_CAPS_BOUNDING = 32,
	/* the other capability sets, after the user switch */
	OP_CAPS_SET = 33,
	/* bind path read-only over itself (in the container, after pivot_root) */
	OP_READONLY_PATH = 34,
	/* cover path with /dev/null or an empty read-only tmpfs (after pivot_root) */
	OP_MASK_PATH = 35,
	/* load program (struct sock_filter[]) with seccomp(2) flags; notify: the listener fd goes
	 * to the parent; atExec (never with notify): loaded in OP_EXEC, right before execve
	 */
	OP_SECCOMP = 36,
	/* write "0" to dir/file: "tasks" (cgroup v1) moves the one thread there is without the
	 * cgroup_threadgroup_rwsem write lock a cgroup.procs write waits an RCU grace period for;
	 * "cgroup.procs" (cgroup2) only where the init cannot be cloned into it
	 */
	OP_JOIN_CGROUP = 37,
	/* --no-pivot: detach (or cover) a host proc or sysfs mount before the rootfs moves over
	 * "/"
	 */
	OP_HIDE_HOST_FS = 38,
	/* bring "lo" up in the network namespace the container made (it starts down; runc brings
	 * it up)
	 */
	OP_LOOPBACK_UP = 39,
	/* sched_setattr(2); nice in two's complement */
	OP_SCHEDULER = 40,
	/* ioprio_set(2): class << 13 | level */
	OP_IOPRIO = 41,
	/* personality(2) */
	OP_PERSONALITY = 42,
	/* set_mempolicy(2): mode (with flags), nodemask as unsigned longs */
	OP_MEMPOLICY = 43,
	/* sched_setaffinity(2): stage INITIAL (before the cgroups are joined), FINAL, or RESET to
	 * every CPU (an exec that names none; failure ignored)
	 */
	OP_CPU_AFFINITY = 44,
	/* HOME from the container's /etc/passwd for uid, replacing the HOME=/ the plan put last in
	 * the next OP_EXEC_PREPARE's env
	 */
	OP_HOME = 45,
	/* make the mount at path read-only (after pivot_root): a read-only /dev, once its devices,
	 * links, mounts and console are in
	 */
	OP_REMOUNT_RO = 46,
	/* exec into a container without a mount namespace of its own: its init's root
	 * (/proc/PID/root)
	 */
	OP_CHROOT = 47,
	/* fork the mount-source server: a container with a user namespace takes its bind sources
	 * from inside its own mount namespace, keeping the kernel's locks (init.c)
	 */
	OP_MOUNT_SOURCE_SERVER = 48,
	/* the server joins the helper's (the container's) mount namespace, and first its user
	 * namespace with userns (tsrun is not root)
	 */
	OP_MOUNT_SOURCES_JOIN = 49,
	/* the server exits; the helper reaps it */
	OP_MOUNT_SOURCES_DONE = 50,
	/* stdio that is the host's /dev/null becomes the container's own (runc's reOpenDevNull):
	 * no fd of a host mount stays, which CRIU could not dump
	 */
	OP_REOPEN_DEV_NULL = 51,
	OP_MAX
};

/* OP_MOUNT kind */
enum plan_mount_kind {
	MOUNT_KIND_FS = 0,
	MOUNT_KIND_BIND = 1,
	MOUNT_KIND_PREPARED = 2,
};

/* OP_MOUNT create: what to make where the destination is missing */
enum plan_create {
	CREATE_DIR = 0,
	CREATE_FILE = 1,
	CREATE_PLAIN_DIR = 2,
};

/* OP_HOOK stage (the other stages are run by the parent) */
enum plan_hook_stage {
	HOOK_CREATE_CONTAINER = 3,
	HOOK_START_CONTAINER = 4,
};

/* OP_CPU_AFFINITY stage */
enum plan_affinity_stage {
	AFFINITY_INITIAL = 0,
	AFFINITY_FINAL = 1,
	AFFINITY_RESET = 2,
};

/* OP_PIVOT_ROOT mode */
enum plan_pivot_mode {
	PIVOT_PIVOT = 0,
	PIVOT_MOVE = 1,
	PIVOT_CHROOT = 2,
};

/* OP_CHDIR stage */
enum plan_chdir_stage {
	CHDIR_BEFORE_USER = 0,
	CHDIR_AFTER_USER = 1,
};

/* The sync messages (the protocol: plan.h). */
enum sync_type {
	SYNC_USERNS_READY = 1,
	SYNC_MAPS_WRITTEN = 2,
	SYNC_INIT_PID = 3,
	SYNC_CONTINUE = 4,
	SYNC_RUN_HOOKS = 5,
	SYNC_HOOKS_DONE = 6,
	SYNC_READY = 7,
	SYNC_ERROR = 8,
	SYNC_SET_RLIMITS = 9,
	SYNC_SECCOMP_LISTENER = 10,
};

/* A u32v field: count little-endian u32s at `at` (read them with plan_u32v_at). */
struct plan_u32v {
	uint32_t count;
	const unsigned char *at;
};
/* A bytes field: len bytes at `at`. */
struct plan_bytes {
	const unsigned char *at;
	size_t len;
};

struct op_setns {
	uint32_t nstype;
	const char *path;
};
struct op_unshare {
	uint64_t flags;
};
struct op_timens_offsets {
	const char *content;
};
struct op_clone_init {
	const char *cgroup_dir;
};
struct op_sethostname {
	const char *name;
};
struct op_setdomainname {
	const char *name;
};
struct op_rootfs_prepare {
	const char *rootfs;
	uint32_t propagation;
};
struct op_mount {
	uint32_t kind;
	uint32_t recursive_bind;
	uint32_t create;
	const char *source;
	const char *dest;
	const char *fstype;
	const char *data;
	uint32_t attr_set;
	uint32_t attr_clr;
	uint32_t rec_attr_set;
	uint32_t rec_attr_clr;
	uint32_t propagation;
	uint32_t propagation_recursive;
	uint32_t copy_up;
	uint32_t slot;
};
struct op_mknod {
	const char *path;
	uint32_t type;
	uint32_t major;
	uint32_t minor;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t bind_from_host;
};
struct op_symlink {
	const char *target;
	const char *path;
};
struct op_mkdir {
	const char *path;
};
struct op_hook {
	uint32_t stage;
	const char *path;
	char **args;
	char **env;
	uint32_t timeout;
	const char *cwd;
	uint32_t process_env;
};
struct op_pivot_root {
	uint32_t mode;
};
struct op_root_propagation {
	uint32_t flags;
};
struct op_sysctl {
	const char *key;
	const char *value;
};
struct op_console {
	uint32_t rows;
	uint32_t cols;
	uint32_t bind_dev_console;
};
struct op_oom_score_adj {
	uint32_t value;
};
struct op_user {
	uint32_t uid;
	uint32_t gid;
	uint32_t umask;
	struct plan_u32v groups;
};
struct op_chdir {
	const char *cwd;
	uint32_t stage;
};
struct op_exec_prepare {
	const char *name;
	char **argv;
	char **env;
};
struct op_session_keyring {
	const char *name;
};
struct op_idmap_prepare {
	uint32_t slot;
	const char *source;
	uint32_t recursive_bind;
	const char *uid_map;
	const char *gid_map;
	uint32_t attr_set;
	uint32_t attr_clr;
	uint32_t rec_attr_set;
	uint32_t rec_attr_clr;
	uint32_t idmap_recursive;
};
struct op_caps_bounding {
	uint64_t keep;
};
struct op_caps_set {
	uint64_t effective;
	uint64_t permitted;
	uint64_t inheritable;
	uint64_t ambient;
};
struct op_readonly_path {
	const char *path;
};
struct op_mask_path {
	const char *path;
};
struct op_seccomp {
	uint32_t flags;
	uint32_t notify;
	uint32_t at_exec;
	struct plan_bytes program;
};
struct op_join_cgroup {
	const char *dir;
	const char *file;
};
struct op_hide_host_fs {
	const char *path;
};
struct op_scheduler {
	uint32_t policy;
	uint64_t flags;
	uint32_t nice;
	uint32_t priority;
	uint64_t runtime;
	uint64_t deadline;
	uint64_t period;
	uint32_t cpuset_limited;
};
struct op_ioprio {
	uint32_t value;
};
struct op_personality {
	uint32_t persona;
};
struct op_mempolicy {
	uint32_t mode;
	struct plan_bytes nodemask;
	uint32_t maxnode;
};
struct op_cpu_affinity {
	uint32_t stage;
	struct plan_bytes mask;
};
struct op_home {
	uint32_t uid;
};
struct op_remount_ro {
	const char *path;
};
struct op_chroot {
	const char *path;
};
struct op_mount_sources_join {
	uint32_t userns;
};

#endif
