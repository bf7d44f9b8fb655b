// SPDX-License-Identifier: GPL-2.0-only
/* kernel_tc.c: tc ingress attachments of one kernel object, the link
 * monitor that follows interfaces appearing and going, and the sweep of the
 * filters that dead tcpinspect processes left behind.
 *
 * A tcx link where the kernel has tcx (Linux 6.6+: the kernel removes it when
 * the last fd closes); otherwise clsact + a netlink cls_bpf filter, recorded
 * in /run/tcpinspect/tc-PID-HANDLE.  The owner holds an flock on that file
 * for as long as the filter is its own, so liveness is proved by a lock
 * that dies with its holder, not by a PID (PIDs are reused, and PID
 * namespaces that share /run repeat them): the next tc/auto start removes
 * a filter whose file nobody holds.  Handles are chosen so they cannot
 * collide: a handle in use on the device (EEXIST) or a state file that
 * exists already makes us take another.  The qdisc is created if missing
 * and never deleted (other tools' filters may hang off it), and no foreign
 * filter is ever touched.
 *
 * Interfaces are read over rtnetlink in the current network namespace
 * (type, flags, master), never from /sys/class/net, which shows the
 * namespace sysfs was mounted in.
 *
 * A session scoped to another network namespace (netns=, container=) keeps
 * an fd of it and enters it (setns, this thread only) around every netlink
 * and tcx call: the attach, the link monitor's refreshes, the netlink
 * detach; each comes back before returning, on every path.  The monitor's
 * socket, opened inside, keeps reporting that namespace's links.
 */
#define _GNU_SOURCE /* CLONE_NEWNET */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_arp.h>
#include <linux/nsfs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"

#define TI_TC_PRIO 0x7149 /* our filters' tc priority */
#define TI_TC_STATE_DIR "/run/tcpinspect"
#define TI_BPF_TCX_INGRESS 46 /* enum bpf_attach_type, Linux 6.6+ */

/* ---- interfaces, over rtnetlink -------------------------------------------------- */

struct ti_link {
	int ifindex;
	int master;	/* IFLA_MASTER: a bridge port's bridge, a bond slave's bond */
	unsigned type;	/* ARPHRD_* */
	unsigned flags; /* IFF_* */
	char name[IFNAMSIZ];
	char kind[16]; /* IFLA_INFO_KIND: "bridge", "bond", "veth", ... */
};

static void parse_link(struct nlmsghdr *h, struct ti_link *l)
{
	struct ifinfomsg *ifi = NLMSG_DATA(h);
	int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*ifi));
	struct rtattr *a;

	memset(l, 0, sizeof(*l));
	l->ifindex = ifi->ifi_index;
	l->type = ifi->ifi_type;
	l->flags = ifi->ifi_flags;
	for (a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == IFLA_IFNAME)
			snprintf(l->name, sizeof(l->name), "%.*s", (int)RTA_PAYLOAD(a), (char *)RTA_DATA(a));
		else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= 4)
			memcpy(&l->master, RTA_DATA(a), 4);
		else if (a->rta_type == IFLA_LINKINFO) {
			int ilen = (int)RTA_PAYLOAD(a);

			for (struct rtattr *b = RTA_DATA(a); RTA_OK(b, ilen); b = RTA_NEXT(b, ilen))
				if (b->rta_type == IFLA_INFO_KIND)
					snprintf(l->kind, sizeof(l->kind), "%.*s", (int)RTA_PAYLOAD(b),
						 (char *)RTA_DATA(b));
		}
	}
}

/* Every interface of the current network namespace: 0 and *out (free it),
 * or -errno. */
static int links_dump(struct ti_link **out, int *n)
{
	struct {
		struct nlmsghdr h;
		struct ifinfomsg i;
	} req = { .h = { .nlmsg_len = sizeof(req),
			 .nlmsg_type = RTM_GETLINK,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP,
			 .nlmsg_seq = 1 },
		  .i = { .ifi_family = AF_UNSPEC } };
	static char buf[32768];
	struct ti_link *v = NULL;
	int fd, cap = 0, cnt = 0, err = 0;
	bool done = false;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	if (send(fd, &req, sizeof(req), 0) < 0) {
		err = -errno;
		goto out;
	}
	while (!done) {
		ssize_t r = recv(fd, buf, sizeof(buf), 0);
		int len = (int)r;

		if (r < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		for (struct nlmsghdr *h = (void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = true;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);

				err = e->error ? e->error : -EPROTO;
				goto out;
			}
			if (h->nlmsg_type != RTM_NEWLINK)
				continue;
			if (cnt == cap) {
				struct ti_link *nv = realloc(v, (size_t)(cap = cap ? cap * 2 : 16) * sizeof(*v));

				if (!nv) {
					err = -ENOMEM;
					goto out;
				}
				v = nv;
			}
			parse_link(h, &v[cnt++]);
		}
	}
out:
	close(fd);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	*n = cnt;
	return 0;
}

static const struct ti_link *link_by_index(const struct ti_link *v, int n, int ifindex)
{
	for (int i = 0; i < n; i++)
		if (v[i].ifindex == ifindex)
			return &v[i];
	return NULL;
}

/* Can tc mode attach to l?  0, or fill why (for session.probes or the
 * error) and return -EOPNOTSUPP. */
static int link_refused(const struct ti_link *l, const struct ti_link *all, int n, char *why, size_t whylen)
{
	if (l->type != ARPHRD_ETHER && l->type != ARPHRD_LOOPBACK) {
		if (l->type == ARPHRD_NONE)
			snprintf(
				why, whylen,
				"an L3 device (%s: IP without an Ethernet header); tc mode reads Ethernet frames: use mode='fentry', 'kprobe' or 'cgroup'",
				l->kind[0] ? l->kind : "tun, wireguard");
		else
			snprintf(why, whylen,
				 "not Ethernet or loopback (link type %u%s%s); tc mode reads Ethernet frames", l->type,
				 l->kind[0] ? ", " : "", l->kind);
		return -EOPNOTSUPP;
	}
	if (l->master) {
		const struct ti_link *m = link_by_index(all, n, l->master);

		snprintf(why, whylen,
			 "a port of %s '%s': its segments reach the IP stack on '%s' and are counted there (dev='%s')",
			 m && m->kind[0] ? m->kind : "device", m ? m->name : "?", m ? m->name : "its master",
			 m ? m->name : "?");
		return -EOPNOTSUPP;
	}
	return 0;
}

static void add_skipped(struct ti_kernel *k, int ns, const char *name, const char *why)
{
	if (k->ntc_skipped >= TI_MAX_SKIPPED)
		return;
	/* cut to fit */
	snprintf(k->tc_skipped[k->ntc_skipped].name, sizeof(k->tc_skipped[0].name), "%.*s",
		 (int)sizeof(k->tc_skipped[0].name) - 1, name);
	snprintf(k->tc_skipped[k->ntc_skipped].why, sizeof(k->tc_skipped[0].why), "%.*s",
		 (int)sizeof(k->tc_skipped[0].why) - 1, why);
	k->tc_skipped[k->ntc_skipped].ns = ns;
	k->ntc_skipped++;
}

/* Forget the skipped entries of namespace ns (before it is listed again). */
static void clear_skipped(struct ti_kernel *k, int ns)
{
	int j = 0;

	for (int i = 0; i < k->ntc_skipped; i++)
		if (k->tc_skipped[i].ns != ns)
			k->tc_skipped[j++] = k->tc_skipped[i];
	k->ntc_skipped = j;
}

/* ---- state files and the sweep ---------------------------------------------------- */

static void tc_state_path(char *buf, size_t len, pid_t pid, uint32_t handle)
{
	snprintf(buf, len, TI_TC_STATE_DIR "/tc-%d-%u", (int)pid, handle);
}

static bool ours(int ifindex, uint32_t handle)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = handle, .priority = TI_TC_PRIO);
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);
	int fd;
	bool match;

	if (bpf_tc_query(&hook, &q))
		return false;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return false;
	match = !bpf_obj_get_info_by_fd(fd, &info, &len) && !strncmp(info.name, "ti_tc_ingress", 13);
	close(fd);
	return match;
}

/* Remove one of our netlink filters: 0 when it is gone (or was already),
 * else -errno after a second try (netlink can fail for want of memory). */
static int tc_detach_one(int ifindex, uint32_t handle)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle, .priority = TI_TC_PRIO);
	int err = 0;

	for (int try = 0; try < 2; try++) {
		err = bpf_tc_detach(&hook, &o);
		if (!err || err == -ENOENT || err == -ENODEV)
			return 0;
	}
	return err;
}

/* Read a state file's line: how many of NETNS IFINDEX HANDLE CONFIRMED it
 * holds (files of older versions have no CONFIRMED: they were written
 * after the attach). */
static int state_read(FILE *f, unsigned *fns, int *ifindex, unsigned *handle, int *confirmed)
{
	int n = fscanf(f, "%u %d %u %d", fns, ifindex, handle, confirmed);

	if (n == 3)
		*confirmed = 1;
	return n;
}

/* Does a living tcpinspect process (one holding its state file's lock)
 * record this filter?  Then a dead process's unconfirmed file that names
 * the same handle describes an attach that failed (EEXIST): its filter is
 * the living one's. */
static bool claimed_by_living(DIR *d, const char *skip, unsigned ns, int ifindex, unsigned handle)
{
	struct dirent *de;
	bool found = false;
	long pos = telldir(d);

	rewinddir(d);
	while (!found && (de = readdir(d))) {
		char path[512];
		unsigned fns, h;
		int ifi, confirmed, fd;
		FILE *f;

		if (strncmp(de->d_name, "tc-", 3) || !strcmp(de->d_name, skip))
			continue;
		snprintf(path, sizeof(path), TI_TC_STATE_DIR "/%s", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (!flock(fd, LOCK_SH | LOCK_NB) || errno != EWOULDBLOCK || !(f = fdopen(fd, "r"))) {
			close(fd); /* nobody holds it: not a living owner's */
			continue;
		}
		found = state_read(f, &fns, &ifi, &h, &confirmed) >= 3 && fns == ns && ifi == ifindex && h == handle;
		fclose(f);
	}
	seekdir(d, pos);
	return found;
}

/* Remove the netlink tc filters of tcpinspect processes that died without
 * detaching (SIGKILL).  A state file whose flock we can take has no living
 * owner.  Only filters recorded in such files, still running our program,
 * in our network namespace, are touched; the files of namespaces that no
 * longer exist are removed (their filters went with them).  The file is
 * written before the attach, so an owner killed at any instant of it left
 * one: an unconfirmed one names a filter that may or may not exist. */
void ti_tc_sweep_stale(void)
{
	DIR *d = opendir(TI_TC_STATE_DIR);
	struct dirent *de;
	uint32_t ns = ti_netns_inode();

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[512], gone[300];
		int pid, ifindex, fd, confirmed;
		unsigned handle, fns;
		struct stat st;
		FILE *f;

		if (sscanf(de->d_name, "tc-%d-%u", &pid, &handle) != 2)
			continue;
		snprintf(path, sizeof(path), TI_TC_STATE_DIR "/%s", de->d_name);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) || fstat(fd, &st) || st.st_nlink == 0) {
			close(fd); /* its owner holds it, or another sweep removed it */
			continue;
		}
		f = fdopen(fd, "r");
		if (!f) {
			close(fd);
			continue;
		}
		if (state_read(f, &fns, &ifindex, &handle, &confirmed) >= 3) {
			/* a filter that cannot be removed now keeps its file; one
			 * in a namespace that is gone went with it (nothing holds
			 * that namespace that a sweep could enter it by) */
			bool drop;

			if (fns != ns)
				drop = ti_netns_find(fns, gone, sizeof(gone)) != 0;
			else if (!ours(ifindex, handle))
				drop = true;
			else if (!confirmed && claimed_by_living(d, de->d_name, fns, ifindex, handle))
				drop = true; /* its attach found the handle taken */
			else
				drop = !tc_detach_one(ifindex, handle);
			if (drop)
				unlink(path);
		} else if (st.st_mtime < time(NULL) - 60) {
			/* an owner that died between creating and writing it,
			 * before any attach (a fresh one may be a living owner's
			 * between its open and its flock) */
			unlink(path);
		}
		fclose(f); /* and the lock with it */
	}
	closedir(d);
}

/* A handle for pid's next filter: pid<<8|seq first, random ones when that
 * is taken. */
static uint32_t next_handle(int attempt)
{
	static unsigned seq;
	uint32_t h = 0;

	if (attempt == 0)
		return ((uint32_t)getpid() << 8) | (++seq & 0xff);
	if (getrandom(&h, sizeof(h), 0) != sizeof(h))
		h = (uint32_t)rand();
	return h ? h : 1;
}

/* ---- attach and detach ------------------------------------------------------------ */

/* The state file's one line, "NETNS IFINDEX HANDLE CONFIRMED", in place
 * (same length either way, so a reader never sees a mix).  0 or -1. */
static int state_write(int fd, int ifindex, uint32_t handle, bool confirmed)
{
	char line[64];
	int n = snprintf(line, sizeof(line), "%u %d %u %d\n", ti_netns_inode(), ifindex, handle, confirmed ? 1 : 0);

	return pwrite(fd, line, (size_t)n, 0) == n ? 0 : -1;
}

static int tc_attach_netlink(struct ti_tc_hook *t, int prog_fd, char *why, size_t whylen)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = t->ifindex, .attach_point = BPF_TC_INGRESS);
	char path[256];
	int err = 0;

	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return ti_explain(err, why, whylen, TI_MODE_TC, "creating the clsact qdisc");
	mkdir(TI_TC_STATE_DIR, 0700);
	for (int attempt = 0; attempt < 16; attempt++) {
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .priority = TI_TC_PRIO);
		uint32_t h = next_handle(attempt);
		int fd;

		/* the state file first, locked and written: whenever this
		 * process dies (SIGKILL at any instant), a sweep finds what it
		 * may have attached.  "NS IFINDEX HANDLE 0" until the kernel
		 * confirmed the attach, then "... 1" */
		tc_state_path(path, sizeof(path), getpid(), h);
		fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd >= 0 && (flock(fd, LOCK_EX) || state_write(fd, t->ifindex, h, false))) {
			/* a file a sweep cannot read protects nothing */
			unlink(path);
			close(fd);
			fd = -1;
		}
		o.handle = h;
		err = bpf_tc_attach(&hook, &o);
		if (err) {
			if (fd >= 0) {
				unlink(path);
				close(fd);
			}
			if (err == -EEXIST)
				continue; /* a handle in use on this device: another one */
			return ti_explain(err, why, whylen, TI_MODE_TC, "attaching the tc filter");
		}
		if (fd >= 0)
			state_write(fd, t->ifindex, h, true);
		t->handle = h;
		t->state_fd = fd;
		return 0;
	}
	return ti_explain(-EEXIST, why, whylen, TI_MODE_TC, "choosing a free tc filter handle");
}

/* The label of an interface of namespace ns in session.probes: its name,
 * and in a session over every namespace, "NAME@INODE" for another one's. */
static void hook_label(const struct ti_kernel *k, int ns, const char *name, char *buf, size_t len)
{
	if (k->tc_every_netns && k->tcns[ns].fd >= 0)
		snprintf(buf, len, "%s@%u", name, k->tcns[ns].ino);
	else
		snprintf(buf, len, "%s", name);
}

static int tc_attach_dev(struct ti_kernel *k, int ns, int prog_fd, const char *dev, int ifindex, char *why,
			 size_t whylen)
{
	struct ti_tc_hook *t = &k->tc[k->ntc];
	int err;

	snprintf(t->name, sizeof(t->name), "%s", dev);
	hook_label(k, ns, dev, t->label, sizeof(t->label));
	t->ifindex = ifindex;
	t->ns = ns;
	t->netns = k->tcns[ns].ino;
	t->handle = 0;
	t->state_fd = -1;
	/* tcx: a link the kernel removes when the last fd closes.
	 * TCPINSPECT_TC_NO_TCX=1 (for the specs, undocumented to users) skips
	 * it, to test the clsact + netlink path on kernels that have tcx. */
	if (getenv("TCPINSPECT_TC_NO_TCX") && strcmp(getenv("TCPINSPECT_TC_NO_TCX"), "0"))
		t->link_fd = -1;
	else
		t->link_fd = bpf_link_create(prog_fd, ifindex, TI_BPF_TCX_INGRESS, NULL);
	if (t->link_fd < 0 && (err = tc_attach_netlink(t, prog_fd, why, whylen)))
		return err;
	k->ntc++;
	return 0;
}

/* mine: this process attached it (not a forked child holding copies of the
 * fds): only then is the netlink filter removed and its state file with it;
 * otherwise the fds are closed and nothing else (the flock stays with the
 * owner's descriptor, and a tcx link with the owner's fd).  Called in the
 * hook's namespace. */
static void tc_detach_hook(struct ti_tc_hook *t, bool mine)
{
	if (t->link_fd >= 0) {
		close(t->link_fd);
	} else if (t->handle && mine) {
		char path[256];

		/* a filter the kernel would not remove keeps its state file: once
		 * this process is gone, the next tc start sweeps it */
		tc_state_path(path, sizeof(path), getpid(), t->handle);
		if (!tc_detach_one(t->ifindex, t->handle) && t->state_fd >= 0)
			unlink(path);
	}
	if (t->state_fd >= 0)
		close(t->state_fd);
	t->link_fd = t->state_fd = -1;
	t->handle = 0;
}

/* Take hook i out of the list (the last one moves into its place). */
static void hook_remove(struct ti_kernel *k, int i)
{
	k->tc[i] = k->tc[--k->ntc];
	k->tc[k->ntc].link_fd = k->tc[k->ntc].state_fd = -1;
}

static bool hooked(const struct ti_kernel *k, int ns, int ifindex)
{
	for (int i = 0; i < k->ntc; i++)
		if (k->tc[i].ns == ns && k->tc[i].ifindex == ifindex)
			return true;
	return false;
}

/* Every interface of namespace ns (the current one): attach to each
 * eligible one that is up and not attached yet, up to TI_MAX_HOOKS, and
 * list the others with the reason. */
static int attach_all(struct ti_kernel *k, int ns, const struct ti_link *v, int n, char *why, size_t whylen)
{
	char reason[192], label[48];
	int err;

	clear_skipped(k, ns);
	for (int i = 0; i < n; i++) {
		const struct ti_link *l = &v[i];

		if (hooked(k, ns, l->ifindex) || !(l->flags & IFF_UP))
			continue;
		hook_label(k, ns, l->name, label, sizeof(label));
		if (link_refused(l, v, n, reason, sizeof(reason))) {
			add_skipped(k, ns, label, reason);
			continue;
		}
		if (k->ntc >= TI_MAX_HOOKS) {
			snprintf(reason, sizeof(reason),
				 "not attached: tc mode attaches at most %d interfaces; give dev={...}", TI_MAX_HOOKS);
			add_skipped(k, ns, label, reason);
			continue;
		}
		if ((err = tc_attach_dev(k, ns, k->tc_prog_fd, l->name, l->ifindex, why, whylen)))
			return err;
	}
	return 0;
}

static int monitor_open(void)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* ---- network namespaces ---------------------------------------------------------- */

static int ns_index(const struct ti_kernel *k, uint32_t ino)
{
	for (int i = 0; i < k->ntcns; i++)
		if (k->tcns[i].ino == ino)
			return i;
	return -1;
}

/* Enter namespace ns for its netlink/tcx calls (nothing to do for the
 * process's own): 0 or -errno; ns_leave(back) after. */
static int ns_enter(const struct ti_kernel *k, int ns, int *back)
{
	*back = -1;
	return k->tcns[ns].fd < 0 ? 0 : ti_netns_enter(k->tcns[ns].fd, back);
}

static void ns_leave(int back)
{
	if (back >= 0)
		ti_netns_leave(back);
}

/* A namespace to attach in (fd: entered by, -1 for our own): its index, or
 * -ENOSPC when TI_MAX_NETNS are in use. */
static int ns_add(struct ti_kernel *k, uint32_t ino, int fd)
{
	struct ti_tc_ns *n;

	if (k->ntcns >= TI_MAX_NETNS)
		return -ENOSPC;
	n = &k->tcns[k->ntcns];
	memset(n, 0, sizeof(*n));
	n->ino = ino;
	n->fd = fd;
	n->monitor_fd = -1;
	n->present = true;
	return k->ntcns++;
}

/* Close namespace ns's monitor and fd (its hooks are gone already). */
static void ns_close(struct ti_tc_ns *n)
{
	if (n->monitor_fd >= 0)
		close(n->monitor_fd); /* and out of the wake epoll with it */
	if (n->fd >= 0)
		close(n->fd);
	n->monitor_fd = n->fd = -1;
}

/* Attach in namespace ns, which the thread is in: o->devs, or every
 * Ethernet/loopback interface that is up (and, through its link monitor,
 * those that come up later).  On failure the caller detaches what was
 * made. */
static int tc_attach_ns(struct ti_kernel *k, int ns, const struct ti_load_opts *o, char *why, size_t whylen)
{
	struct ti_link *v = NULL;
	int n = 0, err;

	if (!o || !o->ndevs) {
		/* subscribe before the dump: no interface falls in between */
		struct epoll_event ev = { .events = EPOLLIN, .data.u32 = k->tcns[ns].ino };
		int fd = monitor_open();

		if (fd < 0)
			return ti_explain(fd, why, whylen, TI_MODE_TC, "opening the netlink link monitor");
		k->tcns[ns].monitor_fd = fd;
		if (epoll_ctl(k->tc_wake_fd, EPOLL_CTL_ADD, fd, &ev))
			return ti_explain(-errno, why, whylen, TI_MODE_TC, "watching the link monitor (epoll)");
	}
	if ((err = links_dump(&v, &n)))
		return ti_explain(err, why, whylen, TI_MODE_TC, "listing interfaces");
	if (o && o->ndevs) {
		for (int i = 0; i < o->ndevs && !err; i++) {
			int ifindex = (int)if_nametoindex(o->devs[i]);
			const struct ti_link *l = link_by_index(v, n, ifindex);
			char reason[192];

			if (!l) {
				err = ti_explain(-ENODEV, why, whylen, TI_MODE_TC, o->devs[i]);
			} else if (link_refused(l, v, n, reason, sizeof(reason))) {
				snprintf(why, whylen, "tc: interface '%s' is %s", o->devs[i], reason);
				err = -EOPNOTSUPP;
			} else if (k->ntc >= TI_MAX_HOOKS) {
				err = ti_explain(-ENOSPC, why, whylen, TI_MODE_TC, o->devs[i]);
			} else {
				err = tc_attach_dev(k, ns, k->tc_prog_fd, o->devs[i], ifindex, why, whylen);
			}
		}
	} else {
		err = attach_all(k, ns, v, n, why, whylen);
	}
	free(v);
	return err;
}

/* Detach namespace ns's hooks (entering it for the netlink ones, if this
 * process attached them); the hooks leave the list. */
static void ns_detach_hooks(struct ti_kernel *k, int ns, bool mine)
{
	int back = -1;
	bool netlink = false, in = false;

	for (int i = 0; i < k->ntc; i++)
		if (k->tc[i].ns == ns && k->tc[i].handle)
			netlink = true;
	if (mine && netlink) {
		/* netlink calls from outside would reach this namespace's
		 * devices: if it cannot be entered, leave the filters and their
		 * state files to the sweep of the next tc session there */
		in = !ns_enter(k, ns, &back);
	}
	for (int i = 0; i < k->ntc;) {
		if (k->tc[i].ns != ns) {
			i++;
			continue;
		}
		if (!in)
			k->tc[i].handle = 0;
		tc_detach_hook(&k->tc[i], mine);
		hook_remove(k, i);
	}
	ns_leave(back);
}

/* Drop namespace ns (detached, closed), moving the last one into its place. */
static void ns_drop(struct ti_kernel *k, int ns)
{
	int last = k->ntcns - 1;

	ns_detach_hooks(k, ns, k->owner == (int)getpid());
	clear_skipped(k, ns);
	ns_close(&k->tcns[ns]);
	if (ns != last) {
		k->tcns[ns] = k->tcns[last];
		for (int i = 0; i < k->ntc; i++)
			if (k->tc[i].ns == last)
				k->tc[i].ns = ns;
		for (int i = 0; i < k->ntc_skipped; i++)
			if (k->tc_skipped[i].ns == last)
				k->tc_skipped[i].ns = ns;
	}
	k->ntcns--;
}

/* A namespace found by the scan: enter it, sweep dead owners' filters
 * there, attach to its interfaces, come back.  Failures are listed in
 * session.probes ("@INODE"), never fatal: the session goes on in the
 * namespaces it could enter. */
static void ns_join(struct ti_kernel *k, uint32_t ino, const char *path)
{
	char why[512], label[48];
	int fd, ns, back, err;
	struct stat st;

	snprintf(label, sizeof(label), "@%u", ino);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) || (uint32_t)st.st_ino != ino || ioctl(fd, NS_GET_NSTYPE) != CLONE_NEWNET) {
		/* gone, another namespace by now, or not a namespace (a
		 * /run/netns file `ip netns add` has not mounted yet): the next
		 * scan sees */
		if (fd >= 0)
			close(fd);
		return;
	}
	ns = ns_add(k, ino, fd);
	if (ns < 0) {
		snprintf(why, sizeof(why),
			 "network namespace %u (%s) not attached: tc mode attaches in at most %d namespaces", ino, path,
			 TI_MAX_NETNS);
		add_skipped(k, -1, label, why);
		close(fd);
		return;
	}
	if ((err = ns_enter(k, ns, &back))) {
		snprintf(why, sizeof(why),
			 "entering network namespace %u (%s) failed: %s; setns needs CAP_SYS_ADMIN: run as root", ino,
			 path, strerror(-err));
		ns_drop(k, ns);
		add_skipped(k, -1, label, why);
		return;
	}
	ti_tc_sweep_stale(); /* dead owners' filters in that namespace */
	err = tc_attach_ns(k, ns, NULL, why, sizeof(why));
	ns_leave(back);
	if (err) {
		char line[sizeof(k->tc_skipped[0].why)];

		snprintf(line, sizeof(line), "network namespace %u (%.40s): %.150s", ino, path, why);
		ns_drop(k, ns);
		add_skipped(k, -1, label, line);
	}
}

/* Every network namespace: the /run/netns entries and those of running
 * processes (/proc/PID/ns/net), one per inode.  Joins the new ones, drops
 * those no entry or process holds any more (closing our fd lets the
 * kernel free it).  >0 when the attachments changed. */
static int ns_rescan(struct ti_kernel *k)
{
	const char *const dirs[] = { "/run/netns", "/proc" };
	int before[3] = { k->ntc, k->ntcns, k->ntc_skipped };

	for (int i = 1; i < k->ntcns; i++)
		k->tcns[i].present = false;
	clear_skipped(k, -1); /* the refusals are tried again */
	for (int d = 0; d < 2; d++) {
		DIR *dir = opendir(dirs[d]);
		struct dirent *de;

		if (!dir)
			continue;
		while ((de = readdir(dir))) {
			char path[300], label[48];
			struct stat st;
			bool refused = false;
			int ns;

			if (de->d_name[0] == '.' || (d == 1 && (de->d_name[0] < '0' || de->d_name[0] > '9')))
				continue;
			snprintf(path, sizeof(path), d ? "/proc/%s/ns/net" : "/run/netns/%s", de->d_name);
			if (stat(path, &st))
				continue;
			ns = ns_index(k, (uint32_t)st.st_ino);
			if (ns >= 0) {
				k->tcns[ns].present = true;
				continue;
			}
			snprintf(label, sizeof(label), "@%u", (uint32_t)st.st_ino);
			for (int i = 0; i < k->ntc_skipped && !refused; i++)
				refused = !strcmp(k->tc_skipped[i].name, label);
			if (!refused) /* not refused already in this scan */
				ns_join(k, (uint32_t)st.st_ino, path);
		}
		closedir(dir);
	}
	for (int i = k->ntcns - 1; i >= 1; i--)
		if (!k->tcns[i].present)
			ns_drop(k, i);
	return before[0] != k->ntc || before[1] != k->ntcns || before[2] != k->ntc_skipped;
}

/* The scope's network namespace, open in fd: by the path the options
 * named, or, given an inode, a /run/netns entry or a process's
 * /proc/PID/ns/net that is that namespace.  0 or -errno with why filled. */
static int tc_netns_open(struct ti_kernel *k, const struct ti_scope *sc, int *out, char *why, size_t whylen)
{
	const char *path = sc->netns_path;
	struct stat st;
	int fd;

	if (!path[0]) {
		if (ti_netns_find(sc->netns, k->tc_netns_path, sizeof(k->tc_netns_path))) {
			snprintf(
				why, whylen,
				"tc: no /run/netns entry or process is in network namespace %u, so tc cannot enter it to attach; give netns= a path (/proc/PID/ns/net, /run/netns/NAME) or container=PID",
				sc->netns);
			return -ENOENT;
		}
		path = k->tc_netns_path;
	} else {
		snprintf(k->tc_netns_path, sizeof(k->tc_netns_path), "%s", path);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return ti_explain(-errno, why, whylen, TI_MODE_TC, "opening the network namespace");
	/* the file may name another namespace by now (a reused PID) */
	if (fstat(fd, &st) || (uint32_t)st.st_ino != sc->netns) {
		close(fd);
		snprintf(why, whylen, "tc: %s is no longer network namespace %u (its process exited?)", path,
			 sc->netns);
		return -ESRCH;
	}
	*out = fd;
	return 0;
}

#define TI_TC_RESCAN_MS 1000 /* every namespace: how often namespaces are looked for */

/* Attach: in the scope's network namespace (entered and left), with no
 * scope in this one, and, when k->tc_every_netns, in every other one too,
 * rescanned every TI_TC_RESCAN_MS (a timerfd beside the link monitors). */
int ti_tc_attach(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd, char *why, size_t whylen)
{
	int back, err, fd = -1, ns;

	k->tc_prog_fd = prog_fd;
	if (!o->ndevs) {
		k->tc_wake_fd = epoll_create1(EPOLL_CLOEXEC);
		if (k->tc_wake_fd < 0)
			return ti_explain(-errno, why, whylen, TI_MODE_TC, "creating the link monitor's epoll");
	}
	if (!o->scope.netns || o->scope.netns == ti_netns_inode()) {
		ns = ns_add(k, ti_netns_inode(), -1);
		if ((err = tc_attach_ns(k, ns, o, why, whylen)))
			return err;
		if (k->tc_every_netns) {
			struct itimerspec it = { .it_interval = { TI_TC_RESCAN_MS / 1000,
								  (TI_TC_RESCAN_MS % 1000) * 1000000L } };
			struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 0 };

			it.it_value = it.it_interval;
			k->tc_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
			if (k->tc_timer_fd < 0 || timerfd_settime(k->tc_timer_fd, 0, &it, NULL) ||
			    epoll_ctl(k->tc_wake_fd, EPOLL_CTL_ADD, k->tc_timer_fd, &ev))
				return ti_explain(-errno, why, whylen, TI_MODE_TC, "arming the namespace rescan timer");
			ns_rescan(k);
		}
		if (!k->ntc) {
			snprintf(why, whylen, "tc: no Ethernet or loopback interface is up; give dev={...}");
			return -ENODEV;
		}
		return 0;
	}
	if ((err = tc_netns_open(k, &o->scope, &fd, why, whylen)))
		return err;
	ns = ns_add(k, o->scope.netns, fd);
	if ((err = ns_enter(k, ns, &back))) {
		snprintf(why, whylen,
			 "tc: entering network namespace %u (%s) failed: %s; setns needs CAP_SYS_ADMIN: run as root",
			 o->scope.netns, k->tc_netns_path, strerror(-err));
		return err;
	}
	ti_tc_sweep_stale(); /* dead owners' filters in that namespace */
	err = tc_attach_ns(k, ns, o, why, whylen);
	if (!err && !o->ndevs && !k->ntc) {
		snprintf(why, whylen, "tc: no Ethernet or loopback interface is up; give dev={...}");
		err = -ENODEV;
	}
	ns_leave(back);
	return err;
}

/* Drain namespace ns's link monitor: did anything change since the last
 * call?  A change that could not be acted on stays pending (news). */
static bool monitor_news(struct ti_tc_ns *n)
{
	char buf[8192];

	for (;;) {
		ssize_t r = recv(n->monitor_fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r > 0) {
			n->news = true;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ENOBUFS) {
			n->news = true; /* messages were lost: the dump is the truth */
			continue;
		}
		break;
	}
	return n->news;
}

/* The news of namespace ns's link monitor, acted on in it. */
static int tc_refresh_ns(struct ti_kernel *k, int ns)
{
	char why[512];
	struct ti_link *v;
	int n, err, changed = 0, before;

	if ((err = links_dump(&v, &n)))
		return err; /* still pending */
	k->tcns[ns].news = false;
	/* let go of interfaces that went away or joined a master */
	for (int i = 0; i < k->ntc;) {
		const struct ti_link *l = k->tc[i].ns == ns ? link_by_index(v, n, k->tc[i].ifindex) : NULL;

		if (k->tc[i].ns == ns && (!l || l->master)) {
			tc_detach_hook(&k->tc[i], k->owner == (int)getpid());
			hook_remove(k, i);
			changed = 1;
		} else {
			i++;
		}
	}
	before = k->ntc;
	err = attach_all(k, ns, v, n, why, sizeof(why));
	if (k->ntc != before)
		changed = 1;
	free(v);
	return err ? err : changed;
}

int ti_kernel_tc_wake_fd(const struct ti_kernel *k)
{
	return k->mode == TI_MODE_TC ? k->tc_wake_fd : -1;
}

bool ti_kernel_tc_pending(const struct ti_kernel *k)
{
	for (int ns = 0; ns < k->ntcns; ns++)
		if (k->tcns[ns].news)
			return true;
	return false;
}

int ti_kernel_tc_refresh(struct ti_kernel *k)
{
	struct epoll_event ev[16];
	int n, changed = 0, err = 0;

	if (k->tc_wake_fd < 0 || k->mode != TI_MODE_TC)
		return 0;
	do {
		n = epoll_wait(k->tc_wake_fd, ev, 16, 0);
	} while (n < 0 && errno == EINTR);
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u32 == 0) {
			uint64_t ticks;

			if (read(k->tc_timer_fd, &ticks, sizeof(ticks)) == sizeof(ticks) && ns_rescan(k) > 0)
				changed = 1;
		} else {
			int ns = ns_index(k, ev[i].data.u32);

			if (ns >= 0 && k->tcns[ns].monitor_fd >= 0)
				monitor_news(&k->tcns[ns]);
		}
	}
	for (int ns = 0; ns < k->ntcns; ns++) {
		int back, r;

		if (!k->tcns[ns].news)
			continue;
		if ((r = ns_enter(k, ns, &back))) {
			err = r; /* still pending: the next poll tries again */
			continue;
		}
		r = tc_refresh_ns(k, ns);
		ns_leave(back);
		if (r > 0)
			changed = 1;
		else if (r < 0)
			err = r;
	}
	return changed ? 1 : err;
}

void ti_tc_detach(struct ti_kernel *k)
{
	bool mine = k->owner == (int)getpid(); /* not a forked child's copy */

	for (int ns = 0; ns < k->ntcns; ns++)
		ns_detach_hooks(k, ns, mine);
	for (int i = 0; i < k->ntc; i++) /* none left but on a bug: close the fds */
		tc_detach_hook(&k->tc[i], false);
	for (int ns = 0; ns < k->ntcns; ns++)
		ns_close(&k->tcns[ns]);
	k->ntcns = 0;
	k->tc_netns_path[0] = '\0';
	k->ntc = 0;
	k->ntc_skipped = 0;
	if (k->tc_timer_fd >= 0)
		close(k->tc_timer_fd);
	if (k->tc_wake_fd >= 0)
		close(k->tc_wake_fd);
	k->tc_timer_fd = k->tc_wake_fd = -1;
	k->tc_every_netns = false;
}
