{
  "targets": [
    {
      "target_name": "gitroot_native",
      "sources": ["native/gitroot_native.c", "native/gitfs_fuse.c", "native/xattr.c", "native/mount_move.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-std=gnu11",
                 "<!@(pkg-config --cflags fuse3)"],
      "libraries": ["<!@(pkg-config --libs fuse3)", "-lpthread"],
      # Never link libnode (Debian's node-gyp adds -lnode): N-API symbols come from the node
      # process that loads the addon, so the addon needs only libc and libfuse3.
      "libraries!": ["-lnode"],
      "defines": ["FUSE_USE_VERSION=312", "_GNU_SOURCE", "NAPI_VERSION=8"]
    }
  ]
}
