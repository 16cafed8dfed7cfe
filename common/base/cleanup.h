/* common/base/cleanup.h — scoped cleanup, in the style of crun.
 *
 *   cleanup_free char *buf = malloc(n);   freed when buf goes out of scope
 *   cleanup_close int fd = open(...);     closed when fd goes out of scope
 *   return steal_pointer(&buf);           hand ownership out; nothing is freed
 */
#ifndef KEEL_COMMON_BASE_CLEANUP_H
#define KEEL_COMMON_BASE_CLEANUP_H

#include <stdlib.h>
#include <unistd.h>

static inline void keel_cleanup_freep(void *p) {
  free(*(void **)p);
}
static inline void keel_cleanup_closep(int *fd) {
  if (*fd >= 0) close(*fd);
}

#define cleanup_free __attribute__((cleanup(keel_cleanup_freep)))
#define cleanup_close __attribute__((cleanup(keel_cleanup_closep)))

static inline void *keel_steal_pointer(void *pp) {
  void **p = (void **)pp;
  void *v = *p;
  *p = NULL;
  return v;
}
#define steal_pointer(pp) keel_steal_pointer(pp)

#define KEEL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
