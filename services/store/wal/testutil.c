/* services/store/wal/testutil.c — see testutil.h. */
#define _GNU_SOURCE
#include "services/store/wal/testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag) {
  const char *base = getenv("TEST_TMPDIR");
  if (!base || !*base) base = "/tmp";
  char *p = NULL;
  if (asprintf(&p, "%s/%s.XXXXXX", base, tag) < 0) abort();
  if (!mkdtemp(p)) abort();
  return p;
}

char *tu_mkdtemp_fast(const char *tag) {
  char *p = NULL;
  if (asprintf(&p, "/dev/shm/keel-%s.XXXXXX", tag) < 0) abort();
  if (mkdtemp(p)) return p;
  free(p);
  return tu_mkdtemp(tag);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  remove(path);
  return 0;
}

void tu_rm_rf(const char *path) {
  nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *tu_join(const char *a, const char *b) {
  static char bufs[8][4096];
  static int next;
  char *buf = bufs[next++ % 8];
  snprintf(buf, sizeof(bufs[0]), "%s/%s", a, b);
  return buf;
}

uint8_t *tu_read_file(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return NULL;
  struct stat st;
  fstat(fd, &st);
  uint8_t *buf = malloc((size_t)st.st_size + 1);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(fd);
  *len = got;
  return buf;
}

void tu_write_file(const char *path, const void *data, size_t len) {
  int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
  if (fd < 0) abort();
  const uint8_t *p = data;
  while (len) {
    ssize_t w = write(fd, p, len);
    if (w <= 0) abort();
    p += w;
    len -= (size_t)w;
  }
  close(fd);
}

bool tu_exists(const char *path) {
  return access(path, F_OK) == 0;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

char **tu_list(const char *dir, const char *suffix, int *n) {
  *n = 0;
  DIR *d = opendir(dir);
  if (!d) return NULL;
  char **v = NULL;
  int cap = 0;
  struct dirent *de;
  size_t sl = strlen(suffix);
  while ((de = readdir(d))) {
    size_t l = strlen(de->d_name);
    if (de->d_name[0] == '.' || l < sl || strcmp(de->d_name + l - sl, suffix) != 0) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      v = realloc(v, (size_t)cap * sizeof(*v));
    }
    v[(*n)++] = strdup(de->d_name);
  }
  closedir(d);
  if (*n) qsort(v, (size_t)*n, sizeof(*v), cmp_str);
  return v;
}

void tu_free_names(char **names, int n) {
  for (int i = 0; i < n; i++) free(names[i]);
  free(names);
}

int tu_count_suffix(const char *dir, const char *suffix) {
  int n;
  char **v = tu_list(dir, suffix, &n);
  tu_free_names(v, n);
  return n;
}

void tu_payload(uint64_t seed, uint8_t *buf, size_t len) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + len;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
}

void tu_log_add(tu_log *l, uint64_t index, const void *payload, size_t len) {
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->index = realloc(l->index, l->cap * sizeof(*l->index));
    l->data = realloc(l->data, l->cap * sizeof(*l->data));
    l->len = realloc(l->len, l->cap * sizeof(*l->len));
  }
  l->index[l->n] = index;
  l->data[l->n] = malloc(len ? len : 1);
  memcpy(l->data[l->n], payload, len);
  l->len[l->n] = len;
  l->n++;
}

int tu_collect(void *arg, uint64_t index, const uint8_t *payload, size_t len) {
  tu_log_add(arg, index, payload, len);
  return 0;
}

void tu_log_clear(tu_log *l) {
  for (size_t i = 0; i < l->n; i++) free(l->data[i]);
  l->n = 0;
}

void tu_log_free(tu_log *l) {
  tu_log_clear(l);
  free(l->index);
  free(l->data);
  free(l->len);
  memset(l, 0, sizeof(*l));
}

bool tu_log_prefix_equal(const tu_log *got, const tu_log *want, size_t n) {
  if (got->n != n || want->n < n) return false;
  for (size_t i = 0; i < n; i++) {
    if (got->index[i] != want->index[i] || got->len[i] != want->len[i]) return false;
    if (memcmp(got->data[i], want->data[i], got->len[i]) != 0) return false;
  }
  return true;
}
