/*
 * Entry point of the gitroot native addon: registers the exported functions.
 * - readXattrs: xattrs of a path (xattr.c), used by `gitroot commit`.
 * - mount/complete/unmount/stats: the FUSE git-fs session (gitfs_fuse.c).
 */
#include "gitroot_native.h"

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"readXattrs", NULL, native_read_xattrs, NULL, NULL, NULL, napi_default, NULL},
    {"mount", NULL, gitfs_mount, NULL, NULL, NULL, napi_default, NULL},
    {"complete", NULL, gitfs_complete, NULL, NULL, NULL, napi_default, NULL},
    {"unmount", NULL, gitfs_unmount, NULL, NULL, NULL, napi_default, NULL},
    {"stats", NULL, gitfs_stats, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
