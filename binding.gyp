{
  "targets": [
    {
      "target_name": "gitroot_native",
      "sources": ["native/gitroot_native.c", "native/gitfs_fuse.c", "native/xattr.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11",
                 "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-lpthread"],
      "defines": ["FUSE_USE_VERSION=312", "_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
