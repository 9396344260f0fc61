/*
 * Extended attributes of a path without following symlinks (llistxattr/lgetxattr).
 * Node has no xattr API; `gitroot commit` needs them to record security.capability and
 * friends in the manifest. Exposed as readXattrs(path) -> Array<[name, Buffer]>.
 */
#include "gitroot_native.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

static napi_value throw_errno(napi_env env, const char *what, const char *path, int err) {
  char msg[4200];
  snprintf(msg, sizeof msg, "%s %s: %s", what, path, strerror(err));
  napi_value code, message, error;
  napi_create_string_utf8(env, err == ENOENT ? "ENOENT" : "EIO", NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_value errnum;
  napi_create_int32(env, err, &errnum);
  napi_set_named_property(env, error, "errno", errnum);
  napi_throw(env, error);
  return NULL;
}

napi_value native_read_xattrs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char path[4096];
  size_t plen;
  if (argc < 1 || napi_get_value_string_utf8(env, argv[0], path, sizeof path, &plen) != napi_ok) {
    napi_throw_type_error(env, NULL, "readXattrs(path: string)");
    return NULL;
  }
  napi_value result;
  napi_create_array(env, &result);

  char *names = NULL;
  ssize_t nlen;
  for (;;) {
    nlen = llistxattr(path, NULL, 0);
    if (nlen < 0) {
      if (errno == ENOTSUP) return result;
      return throw_errno(env, "cannot list extended attributes of", path, errno);
    }
    if (nlen == 0) return result;
    free(names);
    names = malloc((size_t)nlen);
    ssize_t got = llistxattr(path, names, (size_t)nlen);
    if (got >= 0) { nlen = got; break; }
    if (errno != ERANGE) { int e = errno; free(names); return throw_errno(env, "cannot list extended attributes of", path, e); }
  }

  uint32_t idx = 0;
  for (char *name = names; name < names + nlen; name += strlen(name) + 1) {
    void *val = NULL;
    ssize_t vlen;
    for (;;) {
      vlen = lgetxattr(path, name, NULL, 0);
      if (vlen < 0) break;
      free(val);
      val = malloc(vlen > 0 ? (size_t)vlen : 1);
      ssize_t got = lgetxattr(path, name, val, (size_t)vlen);
      if (got >= 0) { vlen = got; break; }
      if (errno != ERANGE) { vlen = -1; break; }
    }
    if (vlen < 0) {
      int e = errno;
      free(val);
      if (e == ENODATA) continue; /* removed meanwhile */
      free(names);
      return throw_errno(env, "cannot read extended attribute of", path, e);
    }
    napi_value pair, jname, jval;
    void *copy;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &jname);
    napi_create_buffer_copy(env, (size_t)vlen, val, &copy, &jval);
    napi_set_element(env, pair, 0, jname);
    napi_set_element(env, pair, 1, jval);
    napi_set_element(env, result, idx++, pair);
    free(val);
  }
  free(names);
  return result;
}
