/*
 * The sandbox ("pause") process of the test cluster's pods: PID 1 of every pod, holding its
 * namespaces open while the containers come and go. It does what Kubernetes' own pause binary does
 * (build/pause/linux/pause.c in the kubernetes/kubernetes repository, shipped as
 * registry.k8s.io/pause), written anew for this project:
 *   - SIGINT or SIGTERM: exit 0, so the runtime can stop the sandbox at once;
 *   - SIGCHLD: reap every exited child. With shareProcessNamespace the pod's processes are its
 *     children once their parent exits (it is the PID namespace's init), so it must wait() for
 *     them, or they stay zombies;
 *   - otherwise block in pause() forever.
 * `-v` prints the version. Built with `gcc -static` by scripts/build-images into an image that
 * holds only /pause, like the upstream one.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.10-jobmetrics"

static void on_stop(int signo) {
  (void)signo;
  _exit(0);
}

static void on_child(int signo) {
  (void)signo;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-v") == 0) {
      printf("pause %s\n", VERSION);
      return 0;
    }
  }
  if (getpid() != 1) {
    /* Not an error: the binary is also run outside a sandbox (the image check does). */
    fprintf(stderr, "pause: warning: not PID 1\n");
  }
  struct sigaction stop = {.sa_handler = on_stop};
  struct sigaction child = {.sa_handler = on_child, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0) return 1;
  if (sigaction(SIGCHLD, &child, NULL) < 0) return 3;
  for (;;) pause();
  return 42; /* not reached */
}
