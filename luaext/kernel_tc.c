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
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_arp.h>
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
	int master;         /* IFLA_MASTER: a bridge port's bridge, a bond slave's bond */
	unsigned type;      /* ARPHRD_* */
	unsigned flags;     /* IFF_* */
	char name[IFNAMSIZ];
	char kind[16];      /* IFLA_INFO_KIND: "bridge", "bond", "veth", ... */
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
	} req = { .h = { .nlmsg_len = sizeof(req), .nlmsg_type = RTM_GETLINK,
			 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1 },
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
static int link_refused(const struct ti_link *l, const struct ti_link *all, int n, char *why,
			size_t whylen)
{
	if (l->type != ARPHRD_ETHER && l->type != ARPHRD_LOOPBACK) {
		if (l->type == ARPHRD_NONE)
			snprintf(why, whylen, "an L3 device (%s: IP without an Ethernet header); tc mode reads Ethernet frames: use mode='fentry', 'kprobe' or 'cgroup'",
				 l->kind[0] ? l->kind : "tun, wireguard");
		else
			snprintf(why, whylen, "not Ethernet or loopback (link type %u%s%s); tc mode reads Ethernet frames",
				 l->type, l->kind[0] ? ", " : "", l->kind);
		return -EOPNOTSUPP;
	}
	if (l->master) {
		const struct ti_link *m = link_by_index(all, n, l->master);

		snprintf(why, whylen, "a port of %s '%s': its segments reach the IP stack on '%s' and are counted there (dev='%s')",
			 m && m->kind[0] ? m->kind : "device", m ? m->name : "?", m ? m->name : "its master", m ? m->name : "?");
		return -EOPNOTSUPP;
	}
	return 0;
}

static void add_skipped(struct ti_kernel *k, const char *name, const char *why)
{
	if (k->ntc_skipped >= TI_MAX_SKIPPED)
		return;
	snprintf(k->tc_skipped[k->ntc_skipped].name, sizeof(k->tc_skipped[0].name), "%s", name);
	snprintf(k->tc_skipped[k->ntc_skipped].why, sizeof(k->tc_skipped[0].why), "%s", why);
	k->ntc_skipped++;
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
	match = !bpf_obj_get_info_by_fd(fd, &info, &len) && !strcmp(info.name, "ti_tc_ingress");
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
		found = state_read(f, &fns, &ifi, &h, &confirmed) >= 3 && fns == ns && ifi == ifindex &&
			h == handle;
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
	int n = snprintf(line, sizeof(line), "%u %d %u %d\n", ti_netns_inode(), ifindex, handle,
			 confirmed ? 1 : 0);

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

static int tc_attach_dev(struct ti_kernel *k, int prog_fd, const char *dev, int ifindex, char *why,
			 size_t whylen)
{
	struct ti_tc_hook *t = &k->tc[k->ntc];
	int err;

	snprintf(t->name, sizeof(t->name), "%s", dev);
	t->ifindex = ifindex;
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
 * owner's descriptor, and a tcx link with the owner's fd). */
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

static bool hooked(const struct ti_kernel *k, int ifindex)
{
	for (int i = 0; i < k->ntc; i++)
		if (k->tc[i].ifindex == ifindex)
			return true;
	return false;
}

/* Every interface: attach to each eligible one that is up and not attached
 * yet, up to TI_MAX_DEVS, and list the others with the reason. */
static int attach_all(struct ti_kernel *k, const struct ti_link *v, int n, char *why, size_t whylen)
{
	char reason[192];
	int err;

	k->ntc_skipped = 0;
	for (int i = 0; i < n; i++) {
		const struct ti_link *l = &v[i];

		if (hooked(k, l->ifindex) || !(l->flags & IFF_UP))
			continue;
		if (link_refused(l, v, n, reason, sizeof(reason))) {
			add_skipped(k, l->name, reason);
			continue;
		}
		if (k->ntc >= TI_MAX_DEVS) {
			snprintf(reason, sizeof(reason), "not attached: tc mode attaches at most %d interfaces; give dev={...}",
				 TI_MAX_DEVS);
			add_skipped(k, l->name, reason);
			continue;
		}
		if ((err = tc_attach_dev(k, k->tc_prog_fd, l->name, l->ifindex, why, whylen)))
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

/* Attach prog_fd at the ingress of o->devs, or of every Ethernet/loopback
 * interface that is up (and, through the link monitor, of those that come
 * up later).  On failure the caller detaches what was made. */
static int tc_attach_here(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd,
			  char *why, size_t whylen)
{
	struct ti_link *v = NULL;
	int n = 0, err;

	k->tc_prog_fd = prog_fd;
	if (!o->ndevs) {
		/* subscribe before the dump: no interface falls in between */
		k->tc_monitor_fd = monitor_open();
		if (k->tc_monitor_fd < 0)
			return ti_explain(k->tc_monitor_fd, why, whylen, TI_MODE_TC,
					  "opening the netlink link monitor");
	}
	if ((err = links_dump(&v, &n)))
		return ti_explain(err, why, whylen, TI_MODE_TC, "listing interfaces");
	if (o->ndevs) {
		for (int i = 0; i < o->ndevs && !err; i++) {
			int ifindex = (int)if_nametoindex(o->devs[i]);
			const struct ti_link *l = link_by_index(v, n, ifindex);
			char reason[192];

			if (!l) {
				err = ti_explain(-ENODEV, why, whylen, TI_MODE_TC, o->devs[i]);
			} else if (link_refused(l, v, n, reason, sizeof(reason))) {
				snprintf(why, whylen, "tc: interface '%s' is %s", o->devs[i], reason);
				err = -EOPNOTSUPP;
			} else {
				err = tc_attach_dev(k, prog_fd, o->devs[i], ifindex, why, whylen);
			}
		}
	} else {
		err = attach_all(k, v, n, why, whylen);
		if (!err && !k->ntc) {
			snprintf(why, whylen, "tc: no Ethernet or loopback interface is up; give dev={...}");
			err = -ENODEV;
		}
	}
	free(v);
	return err;
}

/* The scope's network namespace, open in k->tc_netns_fd: by the path the
 * options named, or, given an inode, a /run/netns entry or a process's
 * /proc/PID/ns/net that is that namespace.  0 or -errno with why filled. */
static int tc_netns_open(struct ti_kernel *k, const struct ti_scope *sc, char *why, size_t whylen)
{
	const char *path = sc->netns_path;
	struct stat st;
	int fd;

	if (!path[0]) {
		if (ti_netns_find(sc->netns, k->tc_netns_path, sizeof(k->tc_netns_path))) {
			snprintf(why, whylen, "tc: no /run/netns entry or process is in network namespace %u, so tc cannot enter it to attach; give netns= a path (/proc/PID/ns/net, /run/netns/NAME) or container=PID",
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
		snprintf(why, whylen, "tc: %s is no longer network namespace %u (its process exited?)", path, sc->netns);
		return -ESRCH;
	}
	k->tc_netns_fd = fd;
	k->tc_netns = sc->netns;
	return 0;
}

/* Attach in the session's network namespace: here, or entered and left. */
int ti_tc_attach(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd, char *why,
		 size_t whylen)
{
	int back, err;

	if (!o->scope.netns || o->scope.netns == ti_netns_inode()) {
		k->tc_netns = ti_netns_inode();
		return tc_attach_here(k, o, prog_fd, why, whylen);
	}
	if ((err = tc_netns_open(k, &o->scope, why, whylen)))
		return err;
	if ((err = ti_netns_enter(k->tc_netns_fd, &back))) {
		snprintf(why, whylen, "tc: entering network namespace %u (%s) failed: %s; setns needs CAP_SYS_ADMIN: run as root",
			 o->scope.netns, k->tc_netns_path, strerror(-err));
		return err;
	}
	ti_tc_sweep_stale(); /* dead owners' filters in that namespace */
	err = tc_attach_here(k, o, prog_fd, why, whylen);
	ti_netns_leave(back);
	return err;
}

/* Drain the link monitor: did anything change since the last call?  A
 * change that could not be acted on stays pending (k->tc_news). */
static bool monitor_news(struct ti_kernel *k)
{
	char buf[8192];

	for (;;) {
		ssize_t r = recv(k->tc_monitor_fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r > 0) {
			k->tc_news = true;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ENOBUFS) {
			k->tc_news = true; /* messages were lost: the dump is the truth */
			continue;
		}
		break;
	}
	return k->tc_news;
}

static int tc_refresh_here(struct ti_kernel *k);

int ti_kernel_tc_wake_fd(const struct ti_kernel *k)
{
	return k->mode == TI_MODE_TC ? k->tc_monitor_fd : -1;
}

int ti_kernel_tc_refresh(struct ti_kernel *k)
{
	int back, err;

	if (k->tc_monitor_fd < 0 || k->mode != TI_MODE_TC || !monitor_news(k))
		return 0;
	if (k->tc_netns_fd < 0)
		return tc_refresh_here(k);
	if ((err = ti_netns_enter(k->tc_netns_fd, &back)))
		return err; /* still pending: the next poll tries again */
	err = tc_refresh_here(k);
	ti_netns_leave(back);
	return err;
}

/* The news of the link monitor, acted on in the attachments' namespace. */
static int tc_refresh_here(struct ti_kernel *k)
{
	char why[512];
	struct ti_link *v;
	int n, err, changed = 0;

	if ((err = links_dump(&v, &n)))
		return err; /* still pending */
	k->tc_news = false;
	/* let go of interfaces that went away or joined a master */
	for (int i = 0; i < k->ntc;) {
		const struct ti_link *l = link_by_index(v, n, k->tc[i].ifindex);

		if (!l || l->master) {
			tc_detach_hook(&k->tc[i], k->owner == (int)getpid());
			k->tc[i] = k->tc[--k->ntc];
			k->tc[k->ntc].link_fd = k->tc[k->ntc].state_fd = -1;
			changed = 1;
		} else {
			i++;
		}
	}
	{
		int before = k->ntc;

		err = attach_all(k, v, n, why, sizeof(why));
		if (k->ntc != before)
			changed = 1;
	}
	free(v);
	return err ? err : changed;
}

void ti_tc_detach(struct ti_kernel *k)
{
	int back = -1;
	bool away = false; /* in the scope's namespace, to come back from */
	bool mine = k->owner == (int)getpid(); /* not a forked child's copy */

	for (int i = 0; i < k->ntc; i++) {
		if (mine && k->tc_netns_fd >= 0 && k->tc[i].handle && !away) {
			if (ti_netns_enter(k->tc_netns_fd, &back)) {
				/* netlink calls from here would reach this
				 * namespace's devices: leave the filters and their
				 * state files to the sweep of the next tc session
				 * in that namespace */
				for (int j = i; j < k->ntc; j++)
					k->tc[j].handle = 0;
			} else {
				away = true;
			}
		}
		tc_detach_hook(&k->tc[i], mine);
	}
	if (away)
		ti_netns_leave(back);
	if (k->tc_netns_fd >= 0)
		close(k->tc_netns_fd);
	k->tc_netns_fd = -1;
	k->tc_netns_path[0] = '\0';
	k->ntc = 0;
	k->ntc_skipped = 0;
	if (k->tc_monitor_fd >= 0)
		close(k->tc_monitor_fd);
	k->tc_monitor_fd = -1;
}
