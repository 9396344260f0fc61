/*
 * Entry point of the gitroot native addon: registers the exported functions.
 * - readXattrs: xattrs of a path (xattr.c), used by `gitroot commit`.
 * - moveMounts: prepared mounts moved into place back to back (mount_move.c), `gitroot apply-live`.
 * - mount/complete/unmount/stats/cached: the FUSE git-fs session (gitfs_fuse.c);
 *   children/drainFreed/swap: switching the revision it serves.
 */
#include "gitroot_native.h"
#include <malloc.h>

static napi_value init(napi_env env, napi_value exports) {
  /* Keep the process's memory bounded while serving: blocks of 128 KiB and more (decoded
   * file contents, pack reads) are mmapped and go back to the kernel when freed. glibc's
   * default raises this threshold dynamically after such frees, after which big blocks
   * come from the heap and RSS ratchets up (measured: +30 MB over one full-tree read). */
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
  /* FUSE worker threads would each get a malloc arena of their own; two are plenty. */
  mallopt(M_ARENA_MAX, 2);
  napi_property_descriptor props[] = {
    {"readXattrs", NULL, native_read_xattrs, NULL, NULL, NULL, napi_default, NULL},
    {"moveMounts", NULL, native_move_mounts, NULL, NULL, NULL, napi_default, NULL},
    {"mount", NULL, gitfs_mount, NULL, NULL, NULL, napi_default, NULL},
    {"complete", NULL, gitfs_complete, NULL, NULL, NULL, napi_default, NULL},
    {"unmount", NULL, gitfs_unmount, NULL, NULL, NULL, napi_default, NULL},
    {"stats", NULL, gitfs_stats, NULL, NULL, NULL, napi_default, NULL},
    {"cached", NULL, gitfs_cached, NULL, NULL, NULL, napi_default, NULL},
    {"children", NULL, gitfs_children, NULL, NULL, NULL, napi_default, NULL},
    {"drainFreed", NULL, gitfs_drain_freed, NULL, NULL, NULL, napi_default, NULL},
    {"swap", NULL, gitfs_swap, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
