/*
 * Loads libk3core.so with dlopen, as the addon would, makes one real call
 * (argv[2], e.g. listImages, on the store argv[3]) and prints its kind and
 * JSON payload. test/prebuilt.test.js cross-compiles it and runs it under
 * qemu-user against the linux-arm64 library, where Node is not available.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../../golib/k3core.h"

typedef void (*start_fn)(uint64_t, char *, char *, size_t, k3_callback, void *);

static int done[2];

static void on_reply(void *ctx, int kind, char *payload, size_t len) {
  (void)ctx;
  if (kind == K3_EVENT) {
    free(payload);
    return;
  }
  printf("%d %.*s\n", kind, (int)len, payload);
  fflush(stdout);
  free(payload);
  char byte = 1;
  if (write(done[1], &byte, 1) != 1) _exit(3);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: k3call LIBRARY METHOD ROOT\n");
    return 2;
  }
  void *lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) {
    fprintf(stderr, "dlopen: %s\n", dlerror());
    return 1;
  }
  start_fn start = (start_fn)dlsym(lib, "K3Start");
  if (!start) {
    fprintf(stderr, "dlsym K3Start: %s\n", dlerror());
    return 1;
  }
  char request[4096];
  int n = snprintf(request, sizeof request, "{\"root\":\"%s\",\"runtime\":\"\",\"monitor\":\"\",\"args\":[]}", argv[3]);
  if (pipe(done) != 0) return 1;
  start(1, argv[2], request, (size_t)n, on_reply, NULL);
  char byte;
  return read(done[0], &byte, 1) == 1 ? 0 : 1;
}
