/*
 * What the addon's parts share: addon.c (processes, sync, sockets),
 * seccomp.c (filters compiled with libseccomp), layer.c (image layers),
 * overlay.c (image rootfs mounts), remove.c (removing trees safely),
 * netdev.c (linux.netDevices) and criu.c (CRIU's service mode).
 */
#ifndef TSRUN_ADDON_H
#define TSRUN_ADDON_H

#include <node_api.h>

/* One exported function in a napi_property_descriptor table. */
#define METHOD(name, fn)                                             \
	{                                                            \
		name, NULL, fn, NULL, NULL, NULL, napi_default, NULL \
	}

/* Throw an Error with this message and .errno = err (defined in addon.c). */
napi_value throw_with_errno(napi_env env, int err, const char *message);

#include <spawn.h>
#include <sys/types.h>

/* One SOCK_SEQPACKET packet and the fd sent with it (defined in addon.c, which says more). */
ssize_t recv_packet(int fd, int timeout_ms, void *buf, size_t size, int *passed_fd);

/* Every signal at its default and none blocked in what posix_spawn starts (defined in addon.c). */
void spawn_with_clean_signals(posix_spawnattr_t *attr);

/* Each part adds its functions to the module's exports. */
void seccomp_register(napi_env env, napi_value exports);
void layer_register(napi_env env, napi_value exports);
void overlay_register(napi_env env, napi_value exports);
void remove_register(napi_env env, napi_value exports);
void netdev_register(napi_env env, napi_value exports);
void criu_register(napi_env env, napi_value exports);

#endif
