/*
 * The launch plan and the parent/child sync protocol, shared by the
 * tsrun-init helper (init.c) and the N-API addon (addon.c).  The TypeScript
 * side mirrors these numbers in src/lib/plan-format.ts and src/lib/sync.ts;
 * test/unit/plan-format.test.ts checks the two copies agree.
 *
 * A plan is one flat little-endian buffer: a header, then a sequence of ops.
 * TypeScript has already decided everything (paths, ids, flags, order); the
 * helper executes the ops in order and never has to look anything up.
 *
 *   header: u32 magic, u32 version, u32 total_length, u32 op_count
 *   op:     u16 code, u16 zero, u32 size (header included, multiple of 4),
 *           then the op's fields in the order listed below.
 *   field:  u32 | u64 (little-endian) | str = u32 length, bytes, NUL, zero
 *           padding to 4 | strv = u32 count, then count strs |
 *           u32v = u32 count, then count u32s | bytes = u32 length, bytes,
 *           zero padding to 4.
 */
#ifndef TSRUN_PLAN_H
#define TSRUN_PLAN_H

#define PLAN_MAGIC   0x50525354u /* "TSRP" */
#define PLAN_VERSION 1u

enum plan_op {
	/* Run by the helper before the container's init exists. */
	/* u32 nstype, str path */
	OP_SETNS = 1,
	/* -- ; parent writes uid/gid maps meanwhile */
	OP_UNSHARE_USER = 2,
	/* u64 clone flags */
	OP_UNSHARE = 3,
	/* -- ; setresuid/setresgid 0 inside the userns */
	OP_BECOME_ROOT = 4,
	/* str content for /proc/self/timens_offsets */
	OP_TIMENS_OFFSETS = 5,
	/* str cgroup_dir ('' = none) ; fork the init (into that cgroup: CLONE_INTO_CGROUP),
	 * report its pid, exit
	 */
	OP_CLONE_INIT = 6,
	/* Run by the container's init. */
	/* -- */
	OP_SETSID = 7,
	/* str */
	OP_SETHOSTNAME = 8,
	/* str */
	OP_SETDOMAINNAME = 9,
	/* str rootfs, u32 propagation of "/" (0: the host's mount namespace: "/" left alone,
	 * the rootfs bind made private)
	 */
	OP_ROOTFS_PREPARE = 10,
	/* see struct plan_mount in init.c (and OP_SCHEMA) */
	OP_MOUNT = 11,
	/* str path, u32 type, u32 major, u32 minor, u32 mode, u32 uid, u32 gid, u32
	 * bind_from_host
	 */
	OP_MKNOD = 12,
	/* str target, str path */
	OP_SYMLINK = 13,
	/* str path ; process.cwd: mkdir -p in the rootfs (0755), what exists left as it is */
	OP_MKDIR = 14,
	/* -- ; parent runs prestart/createRuntime */
	OP_PARENT_HOOKS = 15,
	/* u32 stage, str path, strv args, strv env, u32 timeout_seconds (0 = none), str cwd
	 * ('' = ours), u32 process_env (no env of its own: the process's, from
	 * OP_EXEC_PREPARE)
	 */
	OP_HOOK = 16,
	/* u32 mode: 0 pivot_root, 1 move + chroot (--no-pivot), 2 chroot alone (the host's
	 * mount namespace: nothing of it may move)
	 */
	OP_PIVOT_ROOT = 17,
	/* -- */
	OP_REMOUNT_ROOT_RO = 18,
	/* u32 MS_* propagation flags */
	OP_ROOT_PROPAGATION = 19,
	/* str key (dotted), str value */
	OP_SYSCTL = 20,
	/* u32 rows, u32 cols, u32 bind_dev_console */
	OP_CONSOLE = 21,
	/* -- ; parent sets our rlimits (prlimit) meanwhile */
	OP_PARENT_RLIMITS = 22,
	/* u32 value (two's complement) */
	OP_OOM_SCORE_ADJ = 23,
	/* -- */
	OP_NO_NEW_PRIVS = 24,
	/* u32 uid, u32 gid, u32 umask, u32 ngroups, ngroups x u32 gid */
	OP_USER = 25,
	/* str cwd, u32 stage: before the user switch (refused: tried again after it), or after */
	OP_CHDIR = 26,
	/* str name, strv argv, strv env */
	OP_EXEC_PREPARE = 27,
	/* -- ; report ready, block on the exec fifo */
	OP_WAIT_START = 28,
	/* -- ; close fds, reset signals, execve */
	OP_EXEC = 29,
	/* str name ; a fresh session keyring */
	OP_SESSION_KEYRING = 30,
	/* u64 keep ; drop every other cap from the bounding set, and keep caps across the user
	 * switch
	 */
	OP_CAPS_BOUNDING = 32,
	/* u64 effective, u64 permitted, u64 inheritable, u64 ambient ; after the user switch */
	OP_CAPS_SET = 33,
	/* str path (in the container, after pivot_root) */
	OP_READONLY_PATH = 34,
	/* str path (in the container, after pivot_root) */
	OP_MASK_PATH = 35,
	/* u32 seccomp(2) flags, u32 notify, u32 at_exec, bytes program (struct sock_filter[])
	 * ; with notify, the listener fd goes to the parent; at_exec (never with notify): load
	 * it in OP_EXEC, right before execve
	 */
	OP_SECCOMP = 36,
	/* str dir, str file ; write "0" to dir/file: the helper moves * itself. "tasks"
	 * (cgroup v1) moves the one thread it has and * needs no cgroup_threadgroup_rwsem
	 * write lock, whose RCU grace * period (some 10 ms) a cgroup.procs write pays;
	 * "cgroup.procs" * (cgroup2) only where the init cannot be cloned into it.
	 */
	OP_JOIN_CGROUP = 37,
	/* str path ; --no-pivot: detach (or cover) a host proc or sysfs mount before the
	 * rootfs moves over "/"
	 */
	OP_HIDE_HOST_FS = 38,
	/* -- ; bring "lo" up in the network namespace the container made (runc does; it starts
	 * down)
	 */
	OP_LOOPBACK_UP = 39,
	/* u32 policy, u64 flags, u32 nice (two's complement), u32 priority, u64 runtime, u64
	 * deadline, u64 period, u32 cpuset_limited ; sched_setattr(2)
	 */
	OP_SCHEDULER = 40,
	/* u32 value (class << 13 | level) ; ioprio_set(2) */
	OP_IOPRIO = 41,
	/* u32 persona ; personality(2) */
	OP_PERSONALITY = 42,
	/* u32 mode (| flags), bytes nodemask (unsigned longs), u32 maxnode ; set_mempolicy(2) */
	OP_MEMPOLICY = 43,
	/* u32 stage, bytes mask ; sched_setaffinity(2): stage 0 initial (before the cgroups
	 * are joined), 1 final, 2 reset to every CPU (an exec that names no affinity; failure
	 * ignored)
	 */
	OP_CPU_AFFINITY = 44,
	/* u32 uid ; HOME from the container's /etc/passwd, replacing the HOME=/ the plan put
	 * last in the next OP_EXEC_PREPARE's env
	 */
	OP_HOME = 45,
	/* str path (after pivot_root) ; make that mount read-only: a read-only /dev, once its
	 * devices, links, mounts and console are in
	 */
	OP_REMOUNT_RO = 46,
	/* str path ; exec into a container without a mount namespace of its own: its init's
	 * root (/proc/PID/root), not the host's
	 */
	OP_CHROOT = 47,
	/* u32 slot, str source, u32 recursive_bind, str uid_map, str gid_map, u32 attr_set,
	 * u32 attr_clr, u32 rec_attr_set, u32 rec_attr_clr, u32 idmap_recursive ; a bind's
	 * tree, built in the host user namespace before it is attached; empty maps: a plain
	 * bind. With a mount-source server, the server builds it and the helper receives it
	 */
	OP_IDMAP_PREPARE = 31,
	/* -- ; fork the mount-source server (init.c): a container with a user namespace takes
	 * its bind sources from inside its own mount namespace, keeping the kernel's locks
	 */
	OP_MOUNT_SOURCE_SERVER = 48,
	/* -- ; the server joins the helper's (the container's) mount namespace */
	OP_MOUNT_SOURCES_JOIN = 49,
	/* -- ; the server exits, the helper reaps it */
	OP_MOUNT_SOURCES_DONE = 50,
	OP_MAX
};

/* Mount kinds for OP_MOUNT. */
/* PREPARED: a tree built by OP_IDMAP_PREPARE, attached by slot. */
enum plan_mount_kind {
	MOUNT_KIND_FS = 0,
	MOUNT_KIND_BIND = 1,
	MOUNT_KIND_PREPARED = 2
};
#define MAX_PREPARED_MOUNTS 512
/* What to create when a mount destination is missing.  PLAIN_DIR (proc,
 * sysfs): the destination must be a directory reached through no symlink
 * at all, and after mounting it must resolve to the new mount. */
enum plan_create {
	CREATE_DIR = 0,
	CREATE_FILE = 1,
	CREATE_PLAIN_DIR = 2
};
/* Hook stages run by the helper (the others are run by TypeScript). */
enum plan_hook_stage {
	HOOK_CREATE_CONTAINER = 3,
	HOOK_START_CONTAINER = 4
};
/* OP_CPU_AFFINITY stages. */
enum plan_affinity_stage {
	AFFINITY_INITIAL = 0,
	AFFINITY_FINAL = 1,
	AFFINITY_RESET = 2
};
/* OP_PIVOT_ROOT modes. */
enum plan_pivot_mode {
	PIVOT_PIVOT = 0,
	PIVOT_MOVE = 1,
	PIVOT_CHROOT = 2
};
/* OP_CHDIR stages. */
enum plan_chdir_stage {
	CHDIR_BEFORE_USER = 0,
	CHDIR_AFTER_USER = 1
};

/*
 * Sync protocol over a SOCK_SEQPACKET socketpair, one message per packet:
 * struct sync_header followed by `len` payload bytes.
 *
 *  parent                              helper / init
 *  ------                              -------------
 *  spawn helper, write cgroup
 *  limits, send CONTINUE        ---->  (read plan, run ops: OP_JOIN_CGROUP first)
 *                               <----  USERNS_READY{pid}   (if OP_UNSHARE_USER)
 *  write uid_map/gid_map
 *  MAPS_WRITTEN                 ---->
 *                               <----  INIT_PID{pid}        (helper, then exits)
 *  record pid, reap helper,
 *  move linux.netDevices in
 *  CONTINUE                     ---->  (init: mounts, devices)
 *                               <----  RUN_HOOKS            (if OP_PARENT_HOOKS)
 *  prestart, createRuntime hooks
 *  HOOKS_DONE{state json}       ---->  (createContainer hooks, pivot_root, ...)
 *                               <----  SET_RLIMITS          (if OP_PARENT_RLIMITS)
 *  prlimit() each process.rlimit
 *  CONTINUE                     ---->
 *                               <----  SECCOMP_LISTENER + fd (if OP_SECCOMP notifies)
 *  send fd + state to listenerPath
 *  CONTINUE                     ---->
 *                               <----  READY                (then blocks on fifo)
 *
 * At any point the child may send ERROR{errno; "step\0path\0detail"} and
 * exit; the parent turns it into one CLI error line and cleans up.
 */
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

struct sync_header {
	unsigned int type;
	int value;
	unsigned int len;
	unsigned int reserved;
};

/* Largest packet either side sends (state JSON for hooks is the big one). */
#define SYNC_MAX_PACKET (256 * 1024)

#endif
