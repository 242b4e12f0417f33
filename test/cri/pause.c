/*
 * The CRI tests' sandbox image: the process a pod's sandbox runs to hold
 * its namespaces, as Kubernetes' pause does.  It waits for signals, reaps
 * what is orphaned to it (it is the pod's pid 1 when the pod shares a pid
 * namespace), and ends with status 0 on SIGINT or SIGTERM, so
 * StopPodSandbox returns at once instead of waiting for its SIGKILL.
 * Built static with musl by the tests (test/cri-helpers.ts).
 */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) {
  (void)sig;
  _exit(0);
}

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = quit;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;)
    pause();
}
