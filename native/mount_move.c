/*
 * Moves prepared mounts into place, one after the other, without leaving the calling thread
 * (mount(2) with MS_MOVE): `gitroot apply-live` mounts its fresh overlay views aside before
 * the switch and moves them over the root's directories just after it, so the moment in which
 * the old views see the new revision (and fail with ESTALE) lasts microseconds, not the time
 * of starting mount(8) once per view. Exposed as moveMounts([src0, dst0, src1, dst1, ...]) ->
 * [moved, errno]: how many were moved, in order, and the errno of the one that failed (0).
 */
#include "gitroot_native.h"
#include <errno.h>
#include <stdlib.h>
#include <sys/mount.h>

napi_value native_move_mounts(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  bool is_array = false;
  uint32_t n = 0;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok || n % 2 != 0) {
    napi_throw_type_error(env, NULL, "moveMounts(paths: string[]): source, target pairs");
    return NULL;
  }
  char (*paths)[4096] = calloc(n > 0 ? n : 1, sizeof *paths);
  if (paths == NULL) {
    napi_throw_error(env, NULL, "moveMounts: out of memory");
    return NULL;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    size_t len;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok ||
        napi_get_value_string_utf8(env, v, paths[i], sizeof paths[i], &len) != napi_ok || len >= sizeof paths[i] - 1) {
      free(paths);
      napi_throw_type_error(env, NULL, "moveMounts: every path must be a string shorter than 4095 bytes");
      return NULL;
    }
  }
  /* All strings are read before the first move: the moves run back to back. */
  uint32_t moved = 0;
  int err = 0;
  for (; moved < n / 2; moved++) {
    if (mount(paths[2 * moved], paths[2 * moved + 1], NULL, MS_MOVE, NULL) != 0) {
      err = errno;
      break;
    }
  }
  free(paths);
  napi_value result, a, b;
  napi_create_array_with_length(env, 2, &result);
  napi_create_uint32(env, moved, &a);
  napi_create_int32(env, err, &b);
  napi_set_element(env, result, 0, a);
  napi_set_element(env, result, 1, b);
  return result;
}
