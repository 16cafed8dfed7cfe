/* cli/config_file.c — see config_file.h. */
#define _GNU_SOURCE
#include "cli/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/manifest/yaml.h"

#define CONFIG_MAX (1u << 24)

char *config_file_dir(const char *path) {
  const char *slash = strrchr(path, '/');
  if (!slash) return strdup(".");
  if (slash == path) return strdup("/");
  return strndup(path, (size_t)(slash - path));
}

static int read_all(const char *path, char **text, size_t *len, keel_error *err) {
  FILE *f = fopen(path, "r");
  if (!f) return keel_error_set_errno(err, errno, "%s", path);
  char *buf = NULL;
  size_t cap = 0, n = 0;
  for (;;) {
    if (n + 4096 + 1 > cap) {
      if (cap >= CONFIG_MAX) {
        free(buf);
        fclose(f);
        return keel_error_set(err, EFBIG, "%s: over 16 MiB", path);
      }
      char *b = realloc(buf, cap = cap ? cap * 2 : 8192);
      if (!b) {
        free(buf);
        fclose(f);
        return keel_error_set(err, ENOMEM, "%s: out of memory", path);
      }
      buf = b;
    }
    size_t r = fread(buf + n, 1, cap - n - 1, f);
    n += r;
    if (r == 0) break;
  }
  bool bad = ferror(f);
  fclose(f);
  if (bad) {
    free(buf);
    return keel_error_set(err, EIO, "%s: read error", path);
  }
  buf[n] = 0;
  *text = buf;
  *len = n;
  return 0;
}

int config_file_read(const char *path, json_t **root, keel_error *err) {
  *root = NULL;
  char *text = NULL;
  size_t len = 0;
  int rc = read_all(path, &text, &len, err);
  if (rc < 0) return rc;
  manifest_doc *docs = NULL;
  size_t n = 0;
  rc = manifest_text_parse(text, len, NULL, &docs, &n, err);
  free(text);
  if (rc < 0) return keel_error_wrap(err, "%s:", path);
  if (n == 0) {
    /* An empty file is an empty config (kubectl treats it so). */
    *root = json_object();
    return *root ? 0 : keel_error_set(err, ENOMEM, "out of memory");
  }
  if (n > 1) {
    manifest_docs_free(docs, n);
    return keel_error_set(err, EINVAL, "%s: several YAML documents; a config is one", path);
  }
  if (!json_is_object(docs[0].root)) {
    manifest_docs_free(docs, n);
    return keel_error_set(err, EINVAL, "%s: expected a mapping at the top", path);
  }
  *root = json_incref(docs[0].root);
  manifest_docs_free(docs, n);
  return 0;
}

static int mkdir_p(const char *dir, keel_error *err) {
  struct stat st;
  if (stat(dir, &st) == 0) return 0;
  char *parent = config_file_dir(dir);
  if (parent && strcmp(parent, dir) != 0 && strcmp(parent, ".") != 0 && strcmp(parent, "/") != 0) {
    int rc = mkdir_p(parent, err);
    if (rc < 0) {
      free(parent);
      return rc;
    }
  }
  free(parent);
  if (mkdir(dir, 0700) < 0 && errno != EEXIST) return keel_error_set_errno(err, errno, "mkdir %s", dir);
  return 0;
}

int config_file_write(const char *path, const json_t *root, keel_error *err) {
  char *dir = config_file_dir(path);
  if (!dir) return keel_error_set(err, ENOMEM, "out of memory");
  int rc = mkdir_p(dir, err);
  free(dir);
  if (rc < 0) return rc;
  char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  if (!text) return keel_error_set(err, ENOMEM, "out of memory");
  char *tmp = NULL;
  if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0) {
    free(text);
    return keel_error_set(err, ENOMEM, "out of memory");
  }
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    rc = keel_error_set_errno(err, errno, "write %s", tmp);
    goto out;
  }
  size_t len = strlen(text);
  const char *p = text;
  while (len > 0) {
    ssize_t w = write(fd, p, len);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      rc = keel_error_set_errno(err, errno, "write %s", tmp);
      close(fd);
      unlink(tmp);
      goto out;
    }
    p += w;
    len -= (size_t)w;
  }
  if (write(fd, "\n", 1) != 1 || fsync(fd) < 0) {
    rc = keel_error_set_errno(err, errno, "write %s", tmp);
    close(fd);
    unlink(tmp);
    goto out;
  }
  close(fd);
  if (rename(tmp, path) < 0) {
    rc = keel_error_set_errno(err, errno, "rename %s to %s", tmp, path);
    unlink(tmp);
  }
out:
  free(tmp);
  free(text);
  return rc;
}
