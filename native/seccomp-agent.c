/*
 * tsrun-seccomp-agent: a minimal seccomp agent, for tsrun's tests of
 * SCMP_ACT_NOTIFY (it is not part of the runtime).
 *
 * usage: tsrun-seccomp-agent SOCKET LOG ERRNO
 *
 * Listens on SOCKET (AF_UNIX, SOCK_STREAM) the way config-linux.md's
 * listenerPath describes.  For every connection it reads the container
 * process state (JSON) and the listener fd that came with it (SCM_RIGHTS),
 * and appends "state <json>" to LOG.  Every notification it then gets on
 * any listener is answered with -ERRNO (or, for ERRNO 0, a fake success
 * returning 0) and logged as "notify <syscall nr> pid <pid>".  It runs
 * until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* <linux/seccomp.h>, which musl's headers lack. */
struct seccomp_data_ {
	int nr;
	uint32_t arch;
	uint64_t ip;
	uint64_t args[6];
};
struct seccomp_notif_ {
	uint64_t id;
	uint32_t pid, flags;
	struct seccomp_data_ data;
};
struct seccomp_notif_resp_ {
	uint64_t id;
	int64_t val;
	int32_t error;
	uint32_t flags;
};
#define NOTIF_RECV _IOWR('!', 0, struct seccomp_notif_)
#define NOTIF_SEND _IOWR('!', 1, struct seccomp_notif_resp_)

#define MAX_FDS 64

static FILE *log_file;

/* One connection: the state JSON and the listener fd. */
static int receive_listener(int conn)
{
	static char json[65536];
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	size_t used = 0;
	int listener = -1;
	for (;;) {
		struct iovec iov = {json + used, sizeof(json) - 1 - used};
		struct msghdr msg = {.msg_iov = &iov,
				     .msg_iovlen = 1,
				     .msg_control = cbuf,
				     .msg_controllen = sizeof(cbuf)};
		ssize_t n = recvmsg(conn, &msg, MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
			if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && listener < 0)
				memcpy(&listener, CMSG_DATA(cm), sizeof(int));
		used += n;
		if (used >= sizeof(json) - 1)
			break;
	}
	json[used] = 0;
	fprintf(log_file, "state %s\n", json);
	fflush(log_file);
	return listener;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: tsrun-seccomp-agent SOCKET LOG ERRNO\n");
		return 2;
	}
	int answer = atoi(argv[3]);
	log_file = fopen(argv[2], "a");
	if (!log_file)
		return 1;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (strlen(argv[1]) >= sizeof(sa.sun_path))
		return 1;
	strcpy(sa.sun_path, argv[1]);
	int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0 || bind(sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(sock, 8) < 0) {
		perror("tsrun-seccomp-agent: listen");
		return 1;
	}
	fprintf(log_file, "listening\n");
	fflush(log_file);

	struct pollfd fds[MAX_FDS + 1] = {{.fd = sock, .events = POLLIN}};
	int n = 1;
	for (;;) {
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (fds[0].revents & POLLIN) {
			int conn = accept4(sock, NULL, NULL, SOCK_CLOEXEC);
			if (conn >= 0) {
				int listener = receive_listener(conn);
				close(conn);
				if (listener >= 0 && n <= MAX_FDS)
					fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
			}
		}
		for (int i = 1; i < n; i++) {
			if (fds[i].revents & (POLLHUP | POLLERR)) {
				/* Every process under this filter has exited. */
				close(fds[i].fd);
				fds[i--] = fds[--n];
				continue;
			}
			if (!(fds[i].revents & POLLIN))
				continue;
			struct seccomp_notif_ req;
			memset(&req, 0, sizeof(req));
			if (ioctl(fds[i].fd, NOTIF_RECV, &req) < 0)
				continue; /* the caller went away meanwhile */
			struct seccomp_notif_resp_ resp = {
				.id = req.id, .val = 0, .error = -answer, .flags = 0};
			ioctl(fds[i].fd, NOTIF_SEND, &resp);
			fprintf(log_file, "notify %d pid %u\n", req.data.nr, req.pid);
			fflush(log_file);
		}
	}
}
