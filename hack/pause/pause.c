/* The sandbox process of every pod on the test node: holds the pod's namespaces open, reaps
 * orphaned children, exits on SIGINT or SIGTERM. Built statically into a one-file image
 * (hack/node.sh), since no registry can be reached for the usual pause image. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, 0, WNOHANG) > 0) {
    }
}

static void leave(int signo) {
    (void)signo;
    _exit(0);
}

int main(void) {
    signal(SIGINT, leave);
    signal(SIGTERM, leave);
    signal(SIGCHLD, reap);
    for (;;) {
        pause();
    }
}
