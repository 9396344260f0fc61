/* Shared declarations of the gitroot native addon (see gitroot_native.c). */
#ifndef GITROOT_NATIVE_H
#define GITROOT_NATIVE_H
#include <node_api.h>
#include <stdio.h>

napi_value native_read_xattrs(napi_env env, napi_callback_info info);
napi_value native_move_mounts(napi_env env, napi_callback_info info);
napi_value gitfs_mount(napi_env env, napi_callback_info info);
napi_value gitfs_complete(napi_env env, napi_callback_info info);
napi_value gitfs_unmount(napi_env env, napi_callback_info info);
napi_value gitfs_stats(napi_env env, napi_callback_info info);
napi_value gitfs_cached(napi_env env, napi_callback_info info);
napi_value gitfs_children(napi_env env, napi_callback_info info);
napi_value gitfs_drain_freed(napi_env env, napi_callback_info info);
napi_value gitfs_swap(napi_env env, napi_callback_info info);

#endif
