/*
 * linux.netDevices: move a host network interface into a container's
 * network namespace, as runtime-spec 1.3 asks and runc 1.3+ does.
 *
 *   moveNetDevice(fromName, toName, toNs, fromNs, setUp)
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
 * forbids moving it out before).  Only a create that fails gives back
 * what it moved (the same steps the other way, fromNs the container's):
 * the container never existed, and a namespace joined by path would
 * keep the host's interface for good.
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

#define NL_BUF	      32768
#define MAX_ADDRESSES 256

struct carried_address {
	uint32_t flags; /* the ones worth keeping: IFA_F_NODAD, IFA_F_NOPREFIXROUTE */
	unsigned char family, prefixlen, has_broadcast;
	unsigned char addr[16];
	unsigned char broadcast[4];
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
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
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
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
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
			const void *local = NULL, *address = NULL, *broadcast = NULL;
			int len = IFA_PAYLOAD(h);
			for (struct rtattr *rta = IFA_RTA(ifa); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
				if (rta->rta_type == IFA_FLAGS)
					memcpy(&flags, RTA_DATA(rta), sizeof(flags));
				else if (rta->rta_type == IFA_LOCAL)
					local = RTA_DATA(rta);
				else if (rta->rta_type == IFA_ADDRESS)
					address = RTA_DATA(rta);
				else if (rta->rta_type == IFA_BROADCAST && ifa->ifa_family == AF_INET)
					broadcast = RTA_DATA(rta);
			}
			/* IPv4 names the interface's own address IFA_LOCAL (IFA_ADDRESS is a peer's). */
			const void *own = local ? local : address;
			if (!(flags & IFA_F_PERMANENT) || !own ||
			    (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6))
				continue;
			if (count == MAX_ADDRESSES)
				return -E2BIG;
			out[count].flags = flags & (IFA_F_NODAD | IFA_F_NOPREFIXROUTE);
			out[count].family = ifa->ifa_family;
			out[count].prefixlen = ifa->ifa_prefixlen;
			memcpy(out[count].addr, own, ifa->ifa_family == AF_INET ? 4 : 16);
			out[count].has_broadcast = broadcast != NULL;
			if (broadcast)
				memcpy(out[count].broadcast, broadcast, 4);
			count++;
		}
	}
}

/* derive_broadcast: an IPv4 address that had none gets the usual one (runc's netlink library does so). */
static int add_address(int sock, int index, const struct carried_address *a, bool derive_broadcast)
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
	if (a->has_broadcast) {
		add_attr(&req, IFA_BROADCAST, a->broadcast, 4);
	} else if (derive_broadcast && a->family == AF_INET && a->prefixlen < 31) {
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

/*
 * One link as seen through `sock`'s namespace, asked for by name (index 0)
 * or by index: its index, flags and name (each when asked); 0 or an errno.
 */
static int get_link(int sock, const char *name, int index, int *out_index, unsigned *flags, char *out_name)
{
	struct nl_request req;
	link_request(&req, index, 0, 0);
	req.nh.nlmsg_type = RTM_GETLINK;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = 7;
	if (name)
		add_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
	if (send(sock, &req, req.nh.nlmsg_len, 0) < 0)
		return errno;
	for (;;) {
		ssize_t n = nl_recv(sock);
		if (n < 0)
			return errno;
		for (struct nlmsghdr *h = (struct nlmsghdr *)nl_buf; NLMSG_OK(h, (size_t)n);
		     h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_ERROR)
				return -((struct nlmsgerr *)NLMSG_DATA(h))->error;
			if (h->nlmsg_type != RTM_NEWLINK)
				continue;
			struct ifinfomsg *ifi = NLMSG_DATA(h);
			if (out_index)
				*out_index = ifi->ifi_index;
			if (flags)
				*flags = ifi->ifi_flags;
			if (!out_name)
				return 0;
			int len = IFLA_PAYLOAD(h);
			for (struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len))
				if (rta->rta_type == IFLA_IFNAME) {
					snprintf(out_name, IFNAMSIZ, "%s", (const char *)RTA_DATA(rta));
					return 0;
				}
			return ENODEV;
		}
	}
}

/* Index of `name` as seen through `sock`'s namespace (and its flags); 0 and errno set when absent. */
static int index_of(int sock, const char *name, unsigned *flags)
{
	int index = 0, err = get_link(sock, name, 0, &index, flags, NULL);
	errno = err;
	return err ? 0 : index;
}

/* The name of interface `index` as seen through `sock`'s namespace; 0 or an errno. */
static int name_of(int sock, int index, char *name)
{
	return get_link(sock, NULL, index, NULL, NULL, name);
}

static int fail_with(char *msg, size_t size, int err, const char *fmt, const char *a, const char *b)
{
	snprintf(msg, size, fmt, a, b);
	return err;
}

/*
 * Move interface `index` (seen through `sock`) into the namespace behind
 * `ns_fd`, as `name`, keeping its index there (IFLA_NEW_IFINDEX) so it is
 * found by index, never by a name someone else in that namespace could
 * take meanwhile.  Where the index is taken there, the kernel picks one:
 * *kept says which.
 */
static int move_link(int sock, int index, const char *name, int ns_fd, bool *kept)
{
	struct nl_request req;
	link_request(&req, index, 0, 0);
	add_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
	add_attr(&req, IFLA_NET_NS_FD, &ns_fd, sizeof(ns_fd));
	int keep = index;
	add_attr(&req, IFLA_NEW_IFINDEX, &keep, sizeof(keep));
	int err = nl_transact(sock, &req);
	*kept = !err;
	if (err != EBUSY && err != EEXIST && err != EINVAL)
		return err;
	link_request(&req, index, 0, 0);
	add_attr(&req, IFLA_IFNAME, name, strlen(name) + 1);
	add_attr(&req, IFLA_NET_NS_FD, &ns_fd, sizeof(ns_fd));
	return nl_transact(sock, &req);
}

/* Its addresses given back (the kernel drops them on a move) and, if asked, set up. */
/* restoring: back where it was found, as it was (an address there may have survived the link going down). */
static int settle(int sock, int index, const struct carried_address *addresses, int count, bool up,
		  bool restoring, const char **step)
{
	int err;
	*step = "give back its addresses";
	for (int i = 0; i < count; i++)
		if ((err = add_address(sock, index, &addresses[i], !restoring)) &&
		    !(restoring && err == EEXIST))
			return err;
	*step = "set it up";
	struct nl_request req;
	link_request(&req, index, up ? IFF_UP : 0, IFF_UP);
	return up ? nl_transact(sock, &req) : 0;
}

/*
 * Move `from_name` out of the namespace at from_ns (NULL: ours, the
 * host's) into the one at to_ns as `to_name`, carrying its addresses,
 * and set it up there if `set_up`.  The interface ends where it started
 * or fully moved: a failure after the move moves it back (best effort,
 * said in the message).  Its final name and whether it was up are
 * returned for moving it back later.
 */
static int move_device(const char *from_name, int from_index, const char *to_name, const char *from_ns,
		       const char *to_ns, bool set_up, char *final_name, int *final_index, bool *was_up,
		       char *msg, size_t size)
{
	static struct carried_address addresses[MAX_ADDRESSES];
	const char *here = from_ns ? "in the container" : "on the host";
	const char *there = from_ns ? "on the host" : "in the container";
	int err = 0, from_fd = -1, to_fd = -1, index, count = 0;
	errno = 0;
	struct ns_socket_job src = {-1, -1, 0}, dst = {-1, -1, 0};
	struct nl_request req;
	pthread_t thread;
	char where[64];

	/* A socket of each side, each made by a thread that joins that namespace. */
	from_fd = open(from_ns ? from_ns : "/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	to_fd = open(to_ns, O_RDONLY | O_CLOEXEC);
	if (from_fd < 0 || to_fd < 0) {
		err = errno;
		fail_with(msg, size, err, "open %s%s",
			  from_fd < 0 ? (from_ns ? from_ns : "our network namespace") : to_ns, "");
		goto out;
	}
	src.ns_fd = from_fd;
	dst.ns_fd = to_fd;
	if ((err = pthread_create(&thread, NULL, make_socket_in_namespace, &src)) == 0) {
		pthread_join(thread, NULL);
		err = src.err;
	}
	if (!err && (err = pthread_create(&thread, NULL, make_socket_in_namespace, &dst)) == 0) {
		pthread_join(thread, NULL);
		err = dst.err;
	}
	if (err) {
		snprintf(where, sizeof(where), "open a netlink socket %s and %s", here, there);
		fail_with(msg, size, err, "%s: %s", from_name, where);
		goto out;
	}
	unsigned flags = 0;
	char name_now[IFNAMSIZ];
	/* By index when we moved it there ourselves: its name there is anyone's to take. */
	if (from_index > 0 && name_of(src.sock, from_index, name_now) == 0)
		index = index_of(src.sock, name_now, &flags) == from_index ? from_index : 0;
	else
		index = from_index > 0 ? 0 : index_of(src.sock, from_name, &flags);
	if (!index) {
		err = errno == ENODEV ? ENODEV : errno;
		if (from_index > 0)
			snprintf(msg, size, "%s: no longer %s (interface %d is gone)", from_name, here,
				 from_index);
		else
			fail_with(msg, size, err, "%s: no such network interface %s", from_name, here);
		goto out;
	}
	*was_up = flags & IFF_UP;
	/* The kernel would move it first and fail the rename after, leaving
	 * the interface to die with the namespace: refuse before anything moves. */
	bool numbered = strchr(to_name, '%') != NULL;
	if (!numbered && index_of(dst.sock, to_name, NULL)) {
		err = EEXIST;
		snprintf(msg, size, "%s: the %s already has an interface named %s", from_name,
			 from_ns ? "host" : "container", to_name);
		goto out;
	}
	/* Read before the link goes down: IPv6 drops its addresses then
	 * (unless keep_addr_on_down), and the spec wants them carried. */
	count = read_addresses(src.sock, index, addresses);
	if (count < 0) {
		err = -count;
		fail_with(msg, size, err, "%s: read its addresses%s", from_name, "");
		goto out;
	}
	link_request(&req, index, 0, IFF_UP);
	if ((err = nl_transact(src.sock, &req))) {
		fail_with(msg, size, err, "%s: set it down%s", from_name, "");
		goto out;
	}
	/* A "%d" template is numbered by the kernel: the interface moves under a
	 * name of our own, found by it on the other side, and is renamed there. */
	char moving_name[IFNAMSIZ];
	snprintf(moving_name, sizeof(moving_name), "tsrun-mv%d", index);
	const char *moved_as = numbered ? moving_name : to_name;
	int inside = 0;
	bool kept = false;
	if ((err = move_link(src.sock, index, moved_as, to_fd, &kept))) {
		fail_with(msg, size, err, "%s: move it as %s", from_name, to_name);
		/* The kernel checks the name and the namespace before it moves
		 * anything, so it should still be here; look rather than trust. */
		if (name_of(src.sock, index, name_now) == 0) {
			const char *step;
			settle(src.sock, index, addresses, count, *was_up, true, &step);
			goto out;
		}
		/* It moved after all: take it back below. */
		inside = index_of(dst.sock, moved_as, NULL);
	} else {
		inside = kept ? index : index_of(dst.sock, moved_as, NULL);
		const char *step = "find it";
		if (!inside)
			err = errno ? errno : ENODEV;
		if (!err && numbered) {
			step = "rename it";
			link_request(&req, inside, 0, 0);
			add_attr(&req, IFLA_IFNAME, to_name, strlen(to_name) + 1);
			err = nl_transact(dst.sock, &req);
		}
		if (!err)
			err = settle(dst.sock, inside, addresses, count, set_up, false, &step);
		if (!err)
			err = name_of(dst.sock, inside, final_name);
		if (!err) {
			*final_index = inside;
			goto out;
		}
		snprintf(where, sizeof(where), "%s %s", step, there);
		fail_with(msg, size, err, "%s: %s", from_name, where);
	}
	/* Moved, then failed: move it back as it was found. */
	{
		bool back_kept = false;
		int back_err = inside ? move_link(dst.sock, inside, from_name, from_fd, &back_kept) : ENODEV;
		if (!back_err) {
			int home = back_kept ? inside : index_of(src.sock, from_name, NULL);
			const char *step;
			back_err = home ? settle(src.sock, home, addresses, count, *was_up, true, &step)
					: ENODEV;
		}
		size_t used = strlen(msg);
		snprintf(msg + used, size - used, back_err ? " (moving it back failed: %s)" : " (moved back)",
			 back_err ? strerror(back_err) : "");
	}
out:
	if (src.sock >= 0)
		close(src.sock);
	if (dst.sock >= 0)
		close(dst.sock);
	if (from_fd >= 0)
		close(from_fd);
	if (to_fd >= 0)
		close(to_fd);
	return err;
}

/*
 * moveNetDevice(fromName, toName, toNs, fromNs, setUp, fromIndex) -> { name, index, wasUp }:
 * fromNs null is our own namespace (the host's); fromIndex > 0 names the
 * interface by index (one we moved), else by fromName.  `name` and `index`
 * are its final name and index there (a "%d" template numbered), `wasUp`
 * its state before the move.
 */
static napi_value move_net_device(napi_env env, napi_callback_info info)
{
	size_t argc = 6, len;
	napi_value args[6];
	/* One byte more than IFNAMSIZ: the length check refuses a string that
	 * fills the buffer, and a 15-byte name with its NUL fills IFNAMSIZ. */
	char from_name[IFNAMSIZ + 1], to_name[IFNAMSIZ + 1], to_ns[256], from_ns[256], msg[512];
	napi_valuetype from_type = napi_null;
	bool set_up = true;
	int32_t from_index = 0;
	napi_get_cb_info(env, info, &argc, args, NULL, NULL);
	if (argc < 6 ||
	    napi_get_value_string_utf8(env, args[0], from_name, sizeof(from_name), &len) != napi_ok ||
	    len + 1 >= sizeof(from_name) ||
	    napi_get_value_string_utf8(env, args[1], to_name, sizeof(to_name), &len) != napi_ok ||
	    len + 1 >= sizeof(to_name) ||
	    napi_get_value_string_utf8(env, args[2], to_ns, sizeof(to_ns), &len) != napi_ok ||
	    len + 1 >= sizeof(to_ns) || napi_typeof(env, args[3], &from_type) != napi_ok ||
	    (from_type != napi_null &&
	     (napi_get_value_string_utf8(env, args[3], from_ns, sizeof(from_ns), &len) != napi_ok ||
	      len + 1 >= sizeof(from_ns))) ||
	    napi_get_value_bool(env, args[4], &set_up) != napi_ok ||
	    napi_get_value_int32(env, args[5], &from_index) != napi_ok)
		return throw_with_errno(env, EINVAL, "moveNetDevice: bad arguments");
	char final_name[IFNAMSIZ] = "";
	int final_index = 0;
	bool was_up = false;
	int err = move_device(from_name, from_index, to_name, from_type == napi_null ? NULL : from_ns, to_ns,
			      set_up, final_name, &final_index, &was_up, msg, sizeof(msg));
	if (err) {
		char full[sizeof(msg) + 128];
		snprintf(full, sizeof(full), "%s: %s", msg, strerror(err));
		return throw_with_errno(env, err, full);
	}
	napi_value out, name, up, index;
	napi_create_object(env, &out);
	napi_create_string_utf8(env, final_name, NAPI_AUTO_LENGTH, &name);
	napi_get_boolean(env, was_up, &up);
	napi_create_int32(env, final_index, &index);
	napi_set_named_property(env, out, "name", name);
	napi_set_named_property(env, out, "index", index);
	napi_set_named_property(env, out, "wasUp", up);
	return out;
}

void netdev_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		METHOD("moveNetDevice", move_net_device),
	};
	napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
}
