/*
 * minibox-init: a tiny init for `minibox run --init` (like tini / docker-init).
 *
 *   minibox-init [--] CMD [ARGS...]
 *   minibox-init --wait PID
 *
 * A shell script or a program that was never written to be PID 1 neither
 * reaps the orphans that get reparented to it (they pile up as zombies) nor
 * acts on SIGTERM (the kernel drops signals to a namespace's init that has
 * no handler), so `stop` has to wait for its SIGKILL. This init runs CMD as
 * its child and does those two jobs for it:
 *   - every catchable asynchronous signal (TERM, INT, HUP, QUIT, USR1, USR2,
 *     WINCH, CONT, TSTP, TTIN, TTOU, ALRM, ...) is forwarded to the child.
 *     As tini does by default, the child gets its own process group (and the
 *     terminal's foreground, if stdin is one), and only the child is
 *     signalled, not its group.
 *   - every child that exits is reaped, the orphans included. Outside a PID
 *     namespace it makes itself a child subreaper so orphans still come to it.
 * It exits with the child's status, 128+N if the child was killed by
 * signal N. When CMD cannot be executed it exits 127 (not found) or 126
 * (anything else) after one line `minibox-init: exec CMD: <reason>`.
 *
 * With --wait it runs nothing: PID, already its child, is the command. The
 * helper of `minibox exec` forks the command and then becomes this program
 * (fexecve), so what waits for an exec'd command, forwards its signals and
 * reports its status keeps ~100 kB in the container's cgroup, not a Python.
 *
 * It is bind-mounted into containers whose root has no libc we could rely
 * on, so it is linked statically. It never allocates.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 125

/* Signals the kernel raises for a fault of this very process: blocking
 * them would make a crash hang instead of die. */
static const int sync_signals[] = {SIGFPE, SIGILL, SIGSEGV, SIGBUS, SIGABRT, SIGTRAP, SIGSYS};

static int status_code(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static void run_child(char **cmd, const sigset_t *orig)
{
	/* Own process group, like tini, so a terminal's job control (and a
	 * Ctrl-C) goes to the command rather than to init. SIGTTOU is still
	 * blocked here, so tcsetpgrp from the new background group is allowed. */
	if (setpgid(0, 0) < 0)
		dprintf(STDERR_FILENO, "minibox-init: setpgid: %s\n", strerror(errno));
	if (isatty(STDIN_FILENO) && tcsetpgrp(STDIN_FILENO, getpgrp()) < 0 && errno != ENOTTY &&
	    errno != ENXIO)
		dprintf(STDERR_FILENO, "minibox-init: tcsetpgrp: %s\n", strerror(errno));
	sigprocmask(SIG_SETMASK, orig, NULL);
	execvp(cmd[0], cmd);
	int err = errno;
	dprintf(STDERR_FILENO, "minibox-init: exec %s: %s\n", cmd[0], strerror(err));
	_exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

int main(int argc, char **argv)
{
	char **cmd = argv + 1;
	sigset_t all, orig;
	pid_t child = 0;

	if (argc == 3 && strcmp(argv[1], "--wait") == 0) {
		char *end;
		long pid = strtol(argv[2], &end, 10);
		if (*end || pid <= 0) {
			dprintf(STDERR_FILENO, "minibox-init: --wait %s: not a pid\n", argv[2]);
			return EXIT_USAGE;
		}
		child = (pid_t)pid;
	} else if (argc > 1 && strcmp(argv[1], "--") == 0) {
		cmd++;
	}
	if (!child && !*cmd) {
		dprintf(STDERR_FILENO, "usage: minibox-init [--] CMD [ARGS...] | --wait PID\n");
		return EXIT_USAGE;
	}

	/* Every other signal stays pending until sigtimedwait picks it up.
	 * Blocked signals are queued even for a namespace's PID 1, where a
	 * signal with the default disposition would be dropped. */
	sigfillset(&all);
	for (size_t i = 0; i < sizeof(sync_signals) / sizeof(sync_signals[0]); i++)
		sigdelset(&all, sync_signals[i]);
	if (sigprocmask(SIG_SETMASK, &all, &orig) < 0) {
		dprintf(STDERR_FILENO, "minibox-init: sigprocmask: %s\n", strerror(errno));
		return EXIT_USAGE;
	}
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		dprintf(STDERR_FILENO, "minibox-init: prctl PR_SET_CHILD_SUBREAPER: %s\n",
			strerror(errno));

	if (!child) {
		child = fork();
		if (child < 0) {
			dprintf(STDERR_FILENO, "minibox-init: fork: %s\n", strerror(errno));
			return EXIT_USAGE;
		}
		if (child == 0)
			run_child(cmd, &orig);
	}

	for (;;) {
		/* Reap first: with --wait the command may have exited before this
		 * program was exec'd, its SIGCHLD long gone. */
		for (;;) {
			int st;
			pid_t w = waitpid(-1, &st, WNOHANG);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			if (w == child)
				return status_code(st);
		}
		siginfo_t si;
		/* The timeout only bounds how long a lost SIGCHLD could delay a reap. */
		struct timespec ts = {.tv_sec = 1};
		int sig = sigtimedwait(&all, &si, &ts);

		if (sig < 0 && errno != EAGAIN && errno != EINTR) {
			dprintf(STDERR_FILENO, "minibox-init: sigtimedwait: %s\n", strerror(errno));
			sleep(1);
		}
		if (sig > 0 && sig != SIGCHLD && kill(child, sig) < 0 && errno != ESRCH)
			dprintf(STDERR_FILENO, "minibox-init: kill %d: %s\n", (int)child,
				strerror(errno));
	}
}
