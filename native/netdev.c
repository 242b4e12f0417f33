/*
 * linux.netDevices: move a host network interface into a container's
 * network namespace, as runtime-spec 1.3 asks and runc 1.3+ does.
 *
 *   moveNetDevice(hostName, newName, netnsPath)
 *
 * In order, over rtnetlink:
 *   1. read its addresses: only the permanent ones of global scope are
 *      carried (the spec's rule; others belong to the host's context);
 *      first, as IPv6 drops them when the link goes down;
 *   2. set the interface down on the host (nothing of the host keeps
 *      using it while it changes);
 *   3. move and rename it in one RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME),
 *      so it never holds the new name on the host or the old one in the
 *      container; a name already taken there is EEXIST, and a "%d"
 *      template lets the kernel number it;
 *   4. from a socket made inside the container's namespace (by a thread of
 *      its own that joins it, so Node's threads never change namespace),
 *      add the addresses back (the kernel drops them on the move) and set
 *      the interface up.
 * Giving it back is the kernel's: when the namespace dies a physical
 * interface returns to the host, a virtual one is destroyed (the spec
 * forbids moving it out before).
 *
 * The caller passes the init's /proc/PID/ns/net while that init waits
 * for the parent, before any of the container's own code has run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "addon.h"

#define NL_BUF 32768
#define MAX_ADDRESSES 256

struct carried_address {
	uint32_t flags; /* the ones worth keeping: IFA_F_NODAD, IFA_F_NOPREFIXROUTE */
	unsigned char family, prefixlen;
	unsigned char addr[16];
};

struct nl_request {
	struct nlmsghdr nh;
	union {
		struct ifinfomsg ifi;
		struct ifaddrmsg ifa;
	};
	unsigned char attrs[256];
};

static void add_attr(struct nl_request *req, unsigned short type, const void *data, size_t len)
{
	struct rtattr *rta = (struct rtattr *)((char *)req + NLMSG_ALIGN(req->nh.nlmsg_len));
	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	req->nh.nlmsg_len = NLMSG_ALIGN(req->nh.nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/* One read from a netlink socket into the shared buffer: its length, or -1 with errno. */
static char nl_buf[NL_BUF];

static ssize_t nl_recv(int sock)
{
	ssize_t n;
	do
		n = recv(sock, nl_buf, sizeof(nl_buf), 0);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Send one request and wait for its acknowledgement: 0 or an errno. */
static int nl_transact(int sock, struct nl_request *req)
{
	static unsigned seq;
	req->nh.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	req->nh.nlmsg_seq = ++seq;
	if (send(sock, req, req->nh.nlmsg_len, 0) < 0)
		return errno;
	for (;;) {
		ssize_t n = nl_recv(sock);
		if (n < 0)
			return errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_seq != req->nh.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
		}
	}
}

static void link_request(struct nl_request *req, int index, unsigned flags, unsigned change)
{
	memset(req, 0, sizeof(*req));
	req->nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req->nh.nlmsg_type = RTM_NEWLINK;
	req->ifi.ifi_family = AF_UNSPEC;
	req->ifi.ifi_index = index;
	req->ifi.ifi_flags = flags;
	req->ifi.ifi_change = change;
}

/* The permanent, global addresses of interface `index`; their count, or -errno. */
static int read_addresses(int sock, int index, struct carried_address *out)
{
	struct nl_request req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req.nh.nlmsg_type = RTM_GETADDR;
	req.nh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.nh.nlmsg_seq = 1;
	req.ifa.ifa_family = AF_UNSPEC;
	if (send(sock, &req, req.nh.nlmsg_len, 0) < 0)
		return -errno;
	int count = 0;
	for (;;) {
		ssize_t n = nl_recv(sock);
		if (n < 0)
			return -errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE)
				return count;
			if (h->nlmsg_type == NLMSG_ERROR)
				return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type != RTM_NEWADDR)
				continue;
			struct ifaddrmsg *ifa = NLMSG_DATA(h);
			if ((int)ifa->ifa_index != index || ifa->ifa_scope != RT_SCOPE_UNIVERSE)
				continue;
			uint32_t flags = ifa->ifa_flags;
			const void *local = NULL, *address = NULL;
			int len = IFA_PAYLOAD(h);
			for (struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
				if (rta->rta_type == IFA_FLAGS)
					memcpy(&flags, RTA_DATA(rta), sizeof(flags));
				else if (rta->rta_type == IFA_LOCAL)
					local = RTA_DATA(rta);
				else if (rta->rta_type == IFA_ADDRESS)
					address = RTA_DATA(rta);
			}
			/* IPv4 names the interface's own address IFA_LOCAL (IFA_ADDRESS is a peer's). */
			const void *own = local ? local : address;
			if (!(flags & IFA_F_PERMANENT) || !own || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
				continue;
			if (count == MAX_ADDRESSES)
				return -E2BIG;
			out[count].flags = flags & (IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
			out[count].family = ifa->ifa_family;
			out[count].prefixlen = ifa->ifa_prefixlen;
			memcpy(out[count].addr, own, ifa->ifa_family == AF_INET ? 4 : 16);
			count++;
		}
	}
}

static int add_address(int sock, int index, const struct carried_address *a)
{
	struct nl_request req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req.nh.nlmsg_type = RTM_NEWADDR;
	req.nh.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
	req.ifa.ifa_family = a->family;
	req.ifa.ifa_prefixlen = a->prefixlen;
	req.ifa.ifa_scope = RT_SCOPE_UNIVERSE;
	req.ifa.ifa_index = index;
	size_t len = a->family == AF_INET ? 4 : 16;
	add_attr(&req, IFA_LOCAL, a->addr, len);
	add_attr(&req, IFA_ADDRESS, a->addr, len);
	if (a->flags)
		add_attr(&req, IFA_FLAGS, &a->flags, sizeof(a->flags));
	if (a->family == AF_INET && a->prefixlen < 31) {
		/* The broadcast address `ip addr add` and runc's netlink library derive. */
		uint32_t ip, host_bits = a->prefixlen ? 0xffffffffu >> a->prefixlen : 0xffffffffu;
		memcpy(&ip, a->addr, 4);
		uint32_t broadcast = ip | htonl(host_bits);
		add_attr(&req, IFA_BROADCAST, &broadcast, 4);
	}
	return nl_transact(sock, &req);
}

/* A netlink socket of the namespace behind ns_fd, made by a thread that joins it. */
struct ns_socket_job {
	int ns_fd, sock, err;
};

static void *make_socket_in_namespace(void *arg)
{
	struct ns_socket_job *job = arg;
	/* setns(CLONE_NEWNET) changes this thread only; it ends right after. */
	if (setns(job->ns_fd, CLONE_NEWNET) < 0) {
		job->err = errno;
		return NULL;
	}
	job->sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (job->sock < 0)
		job->err = errno;
	return NULL;
}

/* Index of `name` as seen through `sock`'s namespace (and its flags); 0 and errno set when absent. */
static int index_of(int sock, const char *name, unsigned *flags)
{
	struct nl_request req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 7;
	req.ifi.ifi_family = AF_UNSPEC;
	add_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
	if (send(sock, &req, req.nh.nlmsg_len, 0) < 0)
		return 0;
	for (;;) {
		ssize_t n = nl_recv(sock);
		if (n < 0)
			return 0;
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR) {
				errno = -((struct nlmsgerr *)NLMSG_DATA(h))->error;
				return 0;
			}
			if (h->nlmsg_type == RTM_NEWLINK) {
				struct ifinfomsg *ifi = NLMSG_DATA(h);
				if (flags)
					*flags = ifi->ifi_flags;
				return ifi->ifi_index;
			}
		}
	}
}

static int fail_with(char *msg, size_t size, int err, const char *fmt, const char *a, const char *b)
{
	snprintf(msg, size, fmt, a, b);
	return err;
}

static int move_device(const char *host_name, const char *new_name, const char *ns_path, char *msg, size_t size)
{
	static struct carried_address addresses[MAX_ADDRESSES];
	int err = 0, host_sock = -1, ns_fd = -1, index, count;
	errno = 0;
	struct ns_socket_job job = { -1, -1, 0 };
	struct nl_request req;
	pthread_t thread;

	host_sock = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (host_sock < 0)
		return fail_with(msg, size, errno, "open a netlink socket%s%s", "", "");
	unsigned host_flags = 0;
	index = index_of(host_sock, host_name, &host_flags);
	if (!index) {
		err = errno == ENODEV ? ENODEV : errno;
		fail_with(msg, size, err, "%s: no such network interface on the host%s", host_name, "");
		goto out;
	}
	ns_fd = open(ns_path, O_RDONLY | O_CLOEXEC);
	if (ns_fd < 0) {
		err = errno;
		fail_with(msg, size, err, "open %s%s", ns_path, "");
		goto out;
	}
	job.ns_fd = ns_fd;
	if ((err = pthread_create(&thread, NULL, make_socket_in_namespace, &job)) == 0) {
		pthread_join(thread, NULL);
		err = job.err;
	}
	if (err) {
		fail_with(msg, size, err, "%s: open a netlink socket in the container's network namespace%s", host_name, "");
		goto out;
	}
	/* The kernel would move it first and fail the rename after, leaving
	 * the interface to die with the namespace: refuse before anything moves. */
	bool numbered = strchr(new_name, '%') != NULL;
	if (!numbered && index_of(job.sock, new_name, NULL)) {
		err = EEXIST;
		fail_with(msg, size, err, "%s: the container already has an interface named %s", host_name, new_name);
		goto out;
	}
	/* Read before the link goes down: IPv6 drops its addresses then
	 * (unless keep_addr_on_down), and the spec wants them carried. */
	count = read_addresses(host_sock, index, addresses);
	if (count < 0) {
		err = -count;
		fail_with(msg, size, err, "%s: read its addresses%s", host_name, "");
		goto out;
	}
	link_request(&req, index, 0, IFF_UP);
	if ((err = nl_transact(host_sock, &req))) {
		fail_with(msg, size, err, "%s: set it down%s", host_name, "");
		goto out;
	}
	/* A "%d" template is numbered by the kernel: the interface moves under a
	 * name of our own, found by it inside, and is renamed there. */
	char moving_name[IFNAMSIZ];
	snprintf(moving_name, sizeof(moving_name), "tsrun-mv%d", index);
	link_request(&req, index, 0, 0);
	add_attr(&req, IFLA_IFNAME, numbered ? moving_name : new_name, strlen(numbered ? moving_name : new_name) + 1);
	add_attr(&req, IFLA_NET_NS_FD, &ns_fd, sizeof(ns_fd));
	if ((err = nl_transact(host_sock, &req))) {
		fail_with(msg, size, err, "%s: move it into the container as %s", host_name, new_name);
		/* Still the host's: leave it as it was found. */
		if (host_flags & IFF_UP) {
			link_request(&req, index, IFF_UP, IFF_UP);
			nl_transact(host_sock, &req);
		}
		goto out;
	}

	int inside = index_of(job.sock, numbered ? moving_name : new_name, NULL);
	if (!inside) {
		err = errno ? errno : ENODEV;
		fail_with(msg, size, err, "%s: find it in the container as %s", host_name, numbered ? moving_name : new_name);
		goto out;
	}
	if (numbered) {
		link_request(&req, inside, 0, 0);
		add_attr(&req, IFLA_IFNAME, new_name, strlen(new_name) + 1);
		if ((err = nl_transact(job.sock, &req))) {
			fail_with(msg, size, err, "%s: name it %s in the container", host_name, new_name);
			goto out;
		}
	}
	for (int i = 0; i < count; i++) {
		if ((err = add_address(job.sock, inside, &addresses[i]))) {
			fail_with(msg, size, err, "%s: give back its address in the container (as %s)", host_name, new_name);
			goto out;
		}
	}
	link_request(&req, inside, IFF_UP, IFF_UP);
	if ((err = nl_transact(job.sock, &req)))
		fail_with(msg, size, err, "%s: set it up in the container (as %s)", host_name, new_name);
out:
	if (job.sock >= 0)
		close(job.sock);
	if (ns_fd >= 0)
		close(ns_fd);
	close(host_sock);
	return err;
}

static napi_value move_net_device(napi_env env, napi_callback_info info)
{
	size_t argc = 3, len;
	napi_value args[3];
	/* One byte more than IFNAMSIZ: the length check refuses a string that
	 * fills the buffer, and a 15-byte name with its NUL fills IFNAMSIZ. */
	char host_name[IFNAMSIZ + 1], new_name[IFNAMSIZ + 1], ns_path[256], msg[512];
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 3 ||
	    napi_get_value_string_utf8(env, args[0], host_name, sizeof(host_name), &len) != napi_ok || len + 1 >= sizeof(host_name) ||
	    napi_get_value_string_utf8(env, args[1], new_name, sizeof(new_name), &len) != napi_ok || len + 1 >= sizeof(new_name) ||
	    napi_get_value_string_utf8(env, args[2], ns_path, sizeof(ns_path), &len) != napi_ok || len + 1 >= sizeof(ns_path))
		return throw_with_errno(env, EINVAL, "moveNetDevice: bad arguments");
	int err = move_device(host_name, new_name, ns_path, msg, sizeof(msg));
	if (err) {
		char full[sizeof(msg) + 128];
		snprintf(full, sizeof(full), "%s: %s", msg, strerror(err));
		return throw_with_errno(env, err, full);
	}
	napi_value out;
	napi_get_undefined(env, &out);
	return out;
}

void netdev_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("moveNetDevice", move_net_device),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
