/*
 * minibox-monitor: the one small process that watches a detached container.
 *
 * minibox has no daemon. Each detached container gets one monitor that holds
 * the container's stdio, writes its output to a log file, reaps it, records
 * how it ended, and then hands over to minibox again for the clean-up. It has
 * to stay tiny (its RSS is benchmarked against containerd-shim-runc-v2), so it
 * is one poll() loop in C: no threads, no heap, static buffers only.
 *
 * PROTOCOL (what the Python side does)
 *   1. fork(). In the child:
 *        setsid();                                  own session, no terminal
 *        prctl(PR_SET_CHILD_SUBREAPER, 1);          orphans of the container come to us
 *        chdir("/"); stdin/stdout/stderr -> /dev/null or a monitor log file;
 *        create the container's init as a CHILD of this process with its
 *          stdout/stderr (and stdin with -i) connected to pipes; close the
 *          container's ends of the pipes here, keep the monitor's ends
 *          (without O_CLOEXEC, they must survive the exec below; so must
 *          the --ready-fd pipe);
 *        reset SIGPIPE to SIG_DFL in the container's process before its execve
 *          (Python ignores SIGPIPE and that disposition survives exec);
 *        execv() this program. Children survive exec, so PID stays our child:
 *
 *   minibox-monitor --pid PID --log LOGFILE --exit-file EXITFILE
 *                   [--stdout-fd N] [--stderr-fd N]
 *                   [--stdin-fd N] [--stdin-once] [--attach-socket PATH]
 *                   [--tty] [--wait-attach] [--attach-wait-ms MS] [--ready-fd N]
 *                   [--grace-ms MS]
 *                   [-- POST_EXIT_COMMAND ARGS...]
 *
 *   2. The monitor:
 *      - appends every output line of the pipes to LOGFILE (O_APPEND, one
 *        write() per record, so `logs -f` never sees half a record) as
 *        docker's json-file records:
 *          {"log":"out\n","stream":"stdout","time":"2026-11-27T01:53:49.123456789Z"}
 *        A line longer than 16 KiB is split into records without "\n"
 *        (docker's partial messages); a last line without "\n" is written
 *        when its pipe closes. Invalid UTF-8 becomes U+FFFD, as in docker.
 *        With --tty the single output fd (a pty master, EIO = EOF) is logged
 *        as "stdout".
 *      - --attach-socket PATH: listens on a unix stream socket (mode 0600).
 *        Every connected client receives the output: raw with --tty, else in
 *        docker's attach framing, an 8 byte header {stream 1|2, 0, 0, 0,
 *        big-endian u32 length} followed by the bytes. Bytes a client sends
 *        go to the container's stdin (--stdin-fd). A client that shuts down
 *        its writing side keeps receiving output; with --stdin-once the
 *        container's stdin is closed when the first client's input ends
 *        (docker's `run -i`). With --wait-attach nothing is read from the
 *        output pipes until the first client has connected (or PID exited
 *        and the grace passed, or --attach-wait-ms, default 10 s, went by
 *        with no client: a CLI that died before it attached must not stall
 *        the container on a full pipe), so a foreground client misses
 *        nothing, even from a container that is already gone; the pipes
 *        hold the output meanwhile. Once it has started, reading never
 *        stops again, with or without clients.
 *      - --ready-fd N: one byte "1" is written to N and N is closed once the
 *        log file is open and the socket listens. A reader that sees EOF
 *        without that byte knows the monitor failed (reason on stderr).
 *      - reaps every child with waitpid (it is a subreaper) and keeps the
 *        status of PID.
 *      - if PID was made by unshare(CLONE_NEWPID) + fork() in this process,
 *        setns()es its pid_for_children back to its own PID namespace: once
 *        the container's PID 1 is gone, fork() into that namespace fails,
 *        and the post-exit command must be able to fork.
 *      - forwards SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 to
 *        PID while PID lives, so stopping the monitor stops the container.
 *      - once PID has exited and every output pipe reached EOF, or PID
 *        exited and the grace (--grace-ms, default 500) passed, drains what
 *        is left in the pipes without blocking and writes EXITFILE
 *        atomically (EXITFILE.tmp.<pid> in the same directory, fsync,
 *        rename, fsync of the directory):
 *          {"exit_code":N,"signal":S,"finished_at":"2026-...Z"}
 *        exit_code is the exit status, or 128+S when killed by signal S
 *        (S is 0 for a normal exit). Attached clients then see EOF, so a
 *        client that reads EXITFILE on EOF always finds it.
 *      - then execvp()s POST_EXIT_COMMAND (e.g. `minibox --root R _finish ID`)
 *        with the signal mask and dispositions it started with, or exits 0.
 *   LOGFILE and EXITFILE are created mode 0600. exec keeps the pid and its
 *   start time, so the forked child's pid names the monitor and then the
 *   post-exit command for the whole life of the container.
 *   Exit codes of the monitor itself: 125 for bad usage or a failed setup
 *   (PID is then SIGKILLed and reaped: a container must never run unwatched),
 *   127 when POST_EXIT_COMMAND cannot be executed.
 *   Errors are one line on stderr naming the syscall and the path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_BYTES 16384 /* docker's json-file splits longer lines here */
#define READ_BYTES 8192
#define MAX_CLIENTS 8
#define STDIN_BUF PIPE_BUF /* a non-blocking pipe write this size is all or nothing */
#define EXIT_SETUP 125
/* How long --wait-attach waits for its first client by default: the CLI
 * that started the monitor connects within milliseconds. */
#define ATTACH_WAIT_MS 10000

/* After the grace, what a default 64 KiB pipe holds, twice: bounded, since
 * whoever holds the pipe may keep writing. */
#define DRAIN_READS 16

struct stream {
	int fd;           /* read end of the container's pipe; -1 after EOF */
	int id;           /* 1 stdout, 2 stderr: docker's attach framing */
	const char *name; /* value of "stream" in the log */
	size_t len;       /* bytes of an unfinished line in buf */
	char buf[LINE_MAX_BYTES];
};

struct client {
	int fd;      /* -1: free slot */
	int reading; /* still sends input (has not shut down its writing side) */
};

static struct stream streams[2] = {
	{.fd = -1, .id = 1, .name = "stdout"},
	{.fd = -1, .id = 2, .name = "stderr"},
};
static struct client clients[MAX_CLIENTS];
static int nclients;

static pid_t child_pid;
static int child_verified; /* child_pid is our child: safe to kill and reap */
static int child_exited;
static int child_status;
static int log_fd = -1;
static int listen_fd = -1;
static const char *attach_path;
static int stdin_fd = -1;
static int stdin_once;
static int stdin_close_pending;
static char stdin_buf[STDIN_BUF];
static size_t stdin_len;
static int tty_mode;
static int log_error_reported;

/* Worst case: every byte of a line becomes a 6 byte \u00XX escape. */
static char record[LINE_MAX_BYTES * 6 + 128];

static void warn(const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(STDERR_FILENO, "minibox-monitor: %s\n", msg);
}

/* A setup failure: the container must not run unwatched, so it goes too. */
static void die_setup(const char *fmt, ...)
{
	va_list ap;
	char msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(STDERR_FILENO, "minibox-monitor: %s\n", msg);
	if (child_verified && !child_exited) {
		kill(child_pid, SIGKILL);
		while (waitpid(child_pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (attach_path && listen_fd >= 0)
		unlink(attach_path);
	_exit(EXIT_SETUP);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void rfc3339_now(char *out, size_t size)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

static long long monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when it is invalid
 * or cut short by the end of the buffer. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		need = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		need = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		need = 4;
		if (c == 0xF0)
			lo = 0x90;
		if (c == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n < need)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < need; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return need;
}

/* JSON string body for n bytes of container output. */
static size_t json_escape(char *out, const unsigned char *in, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	size_t i = 0;

	while (i < n) {
		unsigned char c = in[i];
		if (c >= 0x80) {
			size_t l = utf8_len(in + i, n - i);
			if (l == 0) {
				memcpy(o, "\\ufffd", 6);
				o += 6;
				i++;
			} else {
				memcpy(o, in + i, l);
				o += l;
				i += l;
			}
			continue;
		}
		i++;
		switch (c) {
		case '"': *o++ = '\\'; *o++ = '"'; break;
		case '\\': *o++ = '\\'; *o++ = '\\'; break;
		case '\n': *o++ = '\\'; *o++ = 'n'; break;
		case '\r': *o++ = '\\'; *o++ = 'r'; break;
		case '\t': *o++ = '\\'; *o++ = 't'; break;
		case '\b': *o++ = '\\'; *o++ = 'b'; break;
		case '\f': *o++ = '\\'; *o++ = 'f'; break;
		default:
			if (c < 0x20) {
				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				o += 6;
			} else
				*o++ = (char)c;
		}
	}
	return (size_t)(o - out);
}

static void log_record(const struct stream *s, const char *data, size_t n)
{
	char now[96];
	size_t len;

	if (log_fd < 0)
		return;
	rfc3339_now(now, sizeof(now));
	len = (size_t)snprintf(record, sizeof(record), "{\"log\":\"");
	len += json_escape(record + len, (const unsigned char *)data, n);
	len += (size_t)snprintf(record + len, sizeof(record) - len,
				"\",\"stream\":\"%s\",\"time\":\"%s\"}\n", s->name, now);
	if (write_all(log_fd, record, len) < 0 && !log_error_reported) {
		/* Keep running: losing log lines is better than killing the container. */
		log_error_reported = 1;
		warn("write log: %s", strerror(errno));
	}
}

static void drop_client(int i)
{
	close(clients[i].fd);
	clients[i].fd = -1;
	nclients--;
}

/* Output to every attached client; a client that cannot take it is dropped. */
static void broadcast(const struct stream *s, const char *data, size_t n)
{
	unsigned char hdr[8] = {(unsigned char)s->id, 0, 0, 0,
				(unsigned char)(n >> 24), (unsigned char)(n >> 16),
				(unsigned char)(n >> 8), (unsigned char)n};

	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0)
			continue;
		struct iovec iov[2] = {{hdr, 8}, {(void *)data, n}};
		struct msghdr msg = {.msg_iov = tty_mode ? iov + 1 : iov,
				     .msg_iovlen = tty_mode ? 1 : 2};
		size_t want = n + (tty_mode ? 0 : 8);
		ssize_t w;
		do
			w = sendmsg(clients[i].fd, &msg, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		/* A short send means the client stopped reading for the whole
		 * SO_SNDTIMEO: it would garble the framing, so it goes. */
		if (w < 0 || (size_t)w != want)
			drop_client(i);
	}
}

/* The last byte at which a full buffer may be cut without splitting a
 * UTF-8 sequence. */
static size_t utf8_cut(const char *buf, size_t n)
{
	for (size_t back = 1; back <= 3 && back < n; back++) {
		unsigned char c = (unsigned char)buf[n - back];
		if (c < 0x80)
			break;
		if (c >= 0xC0) {
			size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
			return need > back ? n - back : n;
		}
	}
	return n;
}

static void stream_feed(struct stream *s, const char *data, size_t n)
{
	broadcast(s, data, n);
	while (n > 0) {
		size_t room = sizeof(s->buf) - s->len;
		size_t take = n < room ? n : room;
		const char *nl = memchr(data, '\n', take);
		if (nl)
			take = (size_t)(nl - data) + 1;
		memcpy(s->buf + s->len, data, take);
		s->len += take;
		data += take;
		n -= take;
		if (nl) {
			log_record(s, s->buf, s->len);
			s->len = 0;
		} else if (s->len == sizeof(s->buf)) {
			size_t cut = utf8_cut(s->buf, s->len);
			log_record(s, s->buf, cut);
			memmove(s->buf, s->buf + cut, s->len - cut);
			s->len -= cut;
		}
	}
}

static void stream_eof(struct stream *s)
{
	if (s->len > 0)
		log_record(s, s->buf, s->len);
	s->len = 0;
	close(s->fd);
	s->fd = -1;
}

/* One read from a stream; returns 0 when there may be more, -1 at EOF or
 * when nothing is there (non-blocking drain). */
static int stream_read(struct stream *s)
{
	char data[READ_BYTES];
	ssize_t r;

	do
		r = read(s->fd, data, sizeof(data));
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		stream_feed(s, data, (size_t)r);
		return 0;
	}
	if (r < 0 && errno == EAGAIN)
		return -1;
	/* 0 is EOF; a pty master reports EIO once the last slave fd closed. */
	if (r < 0 && errno != EIO)
		warn("read %s pipe: %s", s->name, strerror(errno));
	stream_eof(s);
	return -1;
}

static void reap(void)
{
	for (;;) {
		int st;
		pid_t w = waitpid(-1, &st, WNOHANG);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* 0: children left but none exited; ECHILD: none left */
		if (w == child_pid) {
			child_status = st;
			child_exited = 1;
		}
	}
}

static void close_stdin(void)
{
	if (stdin_fd >= 0)
		close(stdin_fd);
	stdin_fd = -1;
	stdin_len = 0;
	stdin_close_pending = 0;
}

static void flush_stdin(void)
{
	ssize_t w;

	do
		w = write(stdin_fd, stdin_buf, stdin_len);
	while (w < 0 && errno == EINTR);
	if (w < 0) {
		if (errno == EAGAIN)
			return;
		/* EPIPE: the container closed its stdin; nobody will read more. */
		close_stdin();
		return;
	}
	memmove(stdin_buf, stdin_buf + w, stdin_len - (size_t)w);
	stdin_len -= (size_t)w;
	if (stdin_len == 0 && stdin_close_pending)
		close_stdin();
}

static void client_input(int i)
{
	ssize_t r;

	do
		r = read(clients[i].fd, stdin_buf, sizeof(stdin_buf));
	while (r < 0 && errno == EINTR);
	if (r > 0) {
		if (stdin_fd >= 0) {
			stdin_len = (size_t)r;
			flush_stdin();
		}
		return;
	}
	if (r < 0 && errno != ECONNRESET) {
		warn("read attach client: %s", strerror(errno));
	}
	if (r < 0) {
		drop_client(i);
		return;
	}
	/* EOF on input: the client may still want output. */
	clients[i].reading = 0;
	if (stdin_once && stdin_fd >= 0) {
		if (stdin_len == 0)
			close_stdin();
		else
			stdin_close_pending = 1;
	}
}

static void accept_client(void)
{
	struct timeval tv = {.tv_sec = 5};
	int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);

	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			warn("accept %s: %s", attach_path, strerror(errno));
		return;
	}
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0) {
			/* Bounded blocking sends: a client that stops reading stalls
			 * the loop for at most this long, then is dropped. */
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
			clients[i].fd = fd;
			clients[i].reading = 1;
			nclients++;
			return;
		}
	}
	close(fd); /* full: the client sees EOF at once */
}

static void open_attach_socket(void)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	if (strlen(attach_path) >= sizeof(sa.sun_path))
		die_setup("bind %s: path longer than %zu bytes", attach_path,
			  sizeof(sa.sun_path) - 1);
	strcpy(sa.sun_path, attach_path);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (listen_fd < 0)
		die_setup("socket AF_UNIX: %s", strerror(errno));
	/* A socket file left by a monitor that was SIGKILLed. */
	if (unlink(attach_path) < 0 && errno != ENOENT)
		die_setup("unlink %s: %s", attach_path, strerror(errno));
	mode_t old = umask(0177);
	int rc = bind(listen_fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0)
		die_setup("bind %s: %s", attach_path, strerror(errno));
	if (listen(listen_fd, MAX_CLIENTS) < 0)
		die_setup("listen %s: %s", attach_path, strerror(errno));
}

static void write_exit_file(const char *path)
{
	char tmp[PATH_MAX], dir[PATH_MAX], body[224], now[96];
	int code, sig = 0, fd, n;

	if (WIFSIGNALED(child_status)) {
		sig = WTERMSIG(child_status);
		code = 128 + sig;
	} else
		code = WEXITSTATUS(child_status);
	rfc3339_now(now, sizeof(now));
	n = snprintf(body, sizeof(body), "{\"exit_code\":%d,\"signal\":%d,\"finished_at\":\"%s\"}\n",
		     code, sig, now);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
		warn("open %s: path too long", path);
		return;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		warn("open %s: %s", tmp, strerror(errno));
		return;
	}
	if (write_all(fd, body, (size_t)n) < 0) {
		warn("write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fsync(fd) < 0) {
		warn("fsync %s: %s", tmp, strerror(errno));
		goto fail;
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		warn("rename %s: %s", path, strerror(errno));
		unlink(tmp);
		return;
	}
	/* The rename itself is durable only once the directory is synced. */
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(dir, ".");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return;
fail:
	close(fd);
	unlink(tmp);
}

/* The runtime may have created the container with unshare(CLONE_NEWPID) and
 * fork() in this very process, leaving our pid_for_children in the
 * container's namespace. Once that namespace's PID 1 is gone every fork()
 * there fails with ENOMEM, and the post-exit command has to fork: go back
 * to the namespace this process lives in. */
static void own_pid_namespace(void)
{
	char ours[64], kids[64];
	ssize_t lo = readlink("/proc/self/ns/pid", ours, sizeof(ours));
	ssize_t lk = readlink("/proc/self/ns/pid_for_children", kids, sizeof(kids));
	int fd;

	if (lo < 0 || lk < 0 || (lo == lk && memcmp(ours, kids, (size_t)lo) == 0))
		return;
	fd = open("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || setns(fd, CLONE_NEWPID) < 0)
		warn("setns /proc/self/ns/pid: %s", strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int parse_fd(const char *opt, const char *val)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(val, &end, 10);
	if (errno || *end || end == val || v < 0 || v > INT_MAX)
		die_setup("%s: not a number: %s", opt, val);
	if (fcntl((int)v, F_GETFD) < 0)
		die_setup("fcntl %s %ld: %s", opt, v, strerror(errno));
	return (int)v;
}

static void own_fd(int fd, int nonblock)
{
	/* Inherited through exec on purpose; not passed on to the post-exit command. */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		die_setup("fcntl F_SETFD %d: %s", fd, strerror(errno));
	if (nonblock) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			die_setup("fcntl F_SETFL %d: %s", fd, strerror(errno));
	}
}

static void usage(void)
{
	die_setup("usage: minibox-monitor --pid PID --log LOGFILE --exit-file EXITFILE "
		  "[--stdout-fd N] [--stderr-fd N] [--stdin-fd N] [--stdin-once] "
		  "[--attach-socket PATH] [--tty] [--wait-attach] [--attach-wait-ms MS] [--ready-fd N] "
		  "[--grace-ms MS] [-- POST_EXIT_COMMAND...]");
}

int main(int argc, char **argv)
{
	const char *log_path = NULL, *exit_path = NULL;
	char **post = NULL;
	int ready_fd = -1, wait_attach = 0, sfd, i;
	long long grace_ms = 500, deadline = 0, attach_wait_ms = ATTACH_WAIT_MS;
	sigset_t mask, orig_mask;
	struct sigaction pipe_ign = {.sa_handler = SIG_IGN}, orig_pipe;

	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	/* --pid first: any later usage error must take the container down too,
	 * but only once it is known to be our child (never kill a stranger). */
	for (i = 1; i + 1 < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "--pid") == 0) {
			char *end;
			long v = strtol(argv[i + 1], &end, 10);
			if (*end == '\0' && v > 0 && v <= INT_MAX)
				child_pid = (pid_t)v;
		}
	}
	if (child_pid > 0) {
		/* WNOWAIT: look, leave a zombie PID for the loop to reap. */
		siginfo_t si = {0};
		if (waitid(P_PID, (id_t)child_pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
			die_setup("waitid %d: %s (the container must be the monitor's child)",
				  (int)child_pid, strerror(errno));
		child_verified = 1;
	}
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (strcmp(a, "--") == 0) {
			if (i + 1 < argc)
				post = argv + i + 1;
			break;
		} else if (strcmp(a, "--stdin-once") == 0)
			stdin_once = 1;
		else if (strcmp(a, "--tty") == 0)
			tty_mode = 1;
		else if (strcmp(a, "--wait-attach") == 0)
			wait_attach = 1;
		else if (!v)
			usage();
		else if (strcmp(a, "--pid") == 0)
			i++;
		else if (strcmp(a, "--log") == 0)
			log_path = argv[++i];
		else if (strcmp(a, "--exit-file") == 0)
			exit_path = argv[++i];
		else if (strcmp(a, "--attach-socket") == 0)
			attach_path = argv[++i];
		else if (strcmp(a, "--stdout-fd") == 0)
			streams[0].fd = parse_fd(a, argv[++i]);
		else if (strcmp(a, "--stderr-fd") == 0)
			streams[1].fd = parse_fd(a, argv[++i]);
		else if (strcmp(a, "--stdin-fd") == 0)
			stdin_fd = parse_fd(a, argv[++i]);
		else if (strcmp(a, "--ready-fd") == 0)
			ready_fd = parse_fd(a, argv[++i]);
		else if (strcmp(a, "--grace-ms") == 0) {
			char *end;
			grace_ms = strtoll(argv[++i], &end, 10);
			if (*end || grace_ms < 0)
				usage();
		} else if (strcmp(a, "--attach-wait-ms") == 0) {
			char *end;
			attach_wait_ms = strtoll(argv[++i], &end, 10);
			if (*end || attach_wait_ms < 0)
				usage();
		} else
			usage();
	}
	if (child_pid <= 0 || !log_path || !exit_path)
		usage();

	/* Signals arrive through a signalfd in the poll loop; the original mask
	 * and SIGPIPE disposition are given back to the post-exit command. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &mask, &orig_mask) < 0)
		die_setup("sigprocmask: %s", strerror(errno));
	sigaction(SIGPIPE, &pipe_ign, &orig_pipe);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		die_setup("signalfd: %s", strerror(errno));

	own_pid_namespace();
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		die_setup("prctl PR_SET_CHILD_SUBREAPER: %s", strerror(errno));

	log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (log_fd < 0)
		die_setup("open %s: %s", log_path, strerror(errno));
	for (i = 0; i < 2; i++)
		if (streams[i].fd >= 0)
			own_fd(streams[i].fd, 1);
	if (stdin_fd >= 0)
		own_fd(stdin_fd, 1);
	if (attach_path)
		open_attach_socket();
	if (ready_fd >= 0) {
		own_fd(ready_fd, 0);
		if (write_all(ready_fd, "1", 1) < 0)
			warn("write ready fd %d: %s", ready_fd, strerror(errno));
		close(ready_fd);
	}
	/* SIGCHLD of a PID that exited before the mask was set is gone. */
	reap();
	if (child_exited)
		deadline = monotonic_ms() + grace_ms;
	long long attach_deadline = monotonic_ms() + attach_wait_ms;

	for (;;) {
		struct pollfd pfd[4 + MAX_CLIENTS];
		int who[4 + MAX_CLIENTS]; /* -1 signalfd, -2/-3 streams, -4 listen, -5 stdin, >=0 client */
		int n = 0, timeout = -1;
		/* With --wait-attach the output waits for the first client even
		 * after PID exited (a quick `start -a` would miss all of it), but
		 * only for the grace: then the drain below logs it. */
		if (wait_attach && (nclients > 0 || monotonic_ms() >= attach_deadline))
			wait_attach = 0; /* from now on, output is read whoever listens */
		int reading_output = !wait_attach;

		if (child_exited && streams[0].fd < 0 && streams[1].fd < 0)
			break;
		if (child_exited) {
			long long left = deadline - monotonic_ms();
			if (left <= 0) {
				/* Something outside the container (a daemonized grandchild
				 * without a PID namespace) still holds a pipe: take what
				 * is buffered and go. */
				for (i = 0; i < 2; i++)
					for (int r = 0; r < DRAIN_READS && streams[i].fd >= 0; r++)
						if (stream_read(&streams[i]) < 0)
							break;
				for (i = 0; i < 2; i++)
					if (streams[i].fd >= 0)
						stream_eof(&streams[i]);
				break;
			}
			timeout = left > INT_MAX ? INT_MAX : (int)left;
		}
		if (wait_attach) {
			long long left = attach_deadline - monotonic_ms();
			if (timeout < 0 || left < timeout)
				timeout = left < 0 ? 0 : (int)left;
		}
		pfd[n] = (struct pollfd){.fd = sfd, .events = POLLIN};
		who[n++] = -1;
		for (i = 0; i < 2; i++)
			if (streams[i].fd >= 0 && reading_output) {
				pfd[n] = (struct pollfd){.fd = streams[i].fd, .events = POLLIN};
				who[n++] = -2 - i;
			}
		if (listen_fd >= 0) {
			pfd[n] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
			who[n++] = -4;
		}
		if (stdin_fd >= 0 && stdin_len > 0) {
			pfd[n] = (struct pollfd){.fd = stdin_fd, .events = POLLOUT};
			who[n++] = -5;
		}
		for (i = 0; i < MAX_CLIENTS; i++)
			if (clients[i].fd >= 0) {
				/* Input only when the last input went out: the container's
				 * stdin is the flow control, and we never block on it. */
				short ev = (clients[i].reading && stdin_len == 0) ? POLLIN : 0;
				pfd[n] = (struct pollfd){.fd = clients[i].fd, .events = ev};
				who[n++] = i;
			}

		if (poll(pfd, (nfds_t)n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			warn("poll: %s", strerror(errno));
			sleep(1);
			continue;
		}
		for (int k = 0; k < n; k++) {
			short re = pfd[k].revents;
			if (!re)
				continue;
			if (who[k] == -1) {
				struct signalfd_siginfo si;
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGCHLD)
						continue;
					if (!child_exited && kill(child_pid, (int)si.ssi_signo) < 0 && errno != ESRCH)
						warn("kill %d: %s", (int)child_pid, strerror(errno));
				}
				int was = child_exited;
				reap();
				if (!was && child_exited)
					deadline = monotonic_ms() + grace_ms;
			} else if (who[k] <= -2 && who[k] >= -3) {
				struct stream *s = &streams[-2 - who[k]];
				if (s->fd >= 0)
					stream_read(s);
			} else if (who[k] == -4) {
				accept_client();
			} else if (who[k] == -5) {
				if (re & (POLLERR | POLLHUP))
					close_stdin();
				else if (stdin_fd >= 0 && stdin_len > 0)
					flush_stdin();
			} else if (clients[who[k]].fd >= 0 && clients[who[k]].fd == pfd[k].fd) {
				if (re & POLLIN)
					client_input(who[k]);
				else if (re & (POLLERR | POLLHUP))
					drop_client(who[k]);
			}
		}
	}

	write_exit_file(exit_path);
	for (i = 0; i < MAX_CLIENTS; i++)
		if (clients[i].fd >= 0)
			drop_client(i);
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(attach_path);
	}
	close_stdin();
	if (log_fd >= 0 && fsync(log_fd) < 0 && errno != EINVAL)
		warn("fsync %s: %s", log_path, strerror(errno));
	if (!post)
		return 0;
	sigaction(SIGPIPE, &orig_pipe, NULL);
	/* Kept across execve otherwise; the post-exit command is no reaper. */
	prctl(PR_SET_CHILD_SUBREAPER, 0);
	close(sfd);
	sigprocmask(SIG_SETMASK, &orig_mask, NULL);
	execvp(post[0], post);
	warn("exec %s: %s", post[0], strerror(errno));
	return 127;
}
