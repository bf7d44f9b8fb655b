/* kernel_tc.c: tc ingress attachments of one kernel object, and the sweep of
 * the filters that dead tcpinspect processes left behind.
 *
 * A tcx link where the kernel has tcx (Linux 6.6+: the kernel removes it when
 * the last fd closes); otherwise clsact + a netlink cls_bpf filter with a
 * per-process handle, recorded in /run/tcpinspect/tc-PID-HANDLE so that the
 * next tc/auto start can remove it if its owner died without detaching.  The
 * qdisc is created if missing and never deleted (other tools' filters may
 * hang off it), and no foreign filter is ever touched.
 */
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"

#define TI_TC_PRIO 0x7149 /* our filters' tc priority */
#define TI_TC_STATE_DIR "/run/tcpinspect"
#define TI_BPF_TCX_INGRESS 46 /* enum bpf_attach_type, Linux 6.6+ */

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

/* Is the process that wrote a state file still running?  A zombie is not:
 * it has already closed its fds, and kill(pid, 0) still succeeds on it
 * until its parent reaps it, which kept a SIGKILLed owner's filter from
 * being swept by a start that came right after the kill. */
static bool owner_alive(int pid)
{
	char path[64], buf[256], *rp;
	FILE *f;
	size_t n;

	if (kill(pid, 0) && errno == ESRCH)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return true; /* cannot tell: leave it alone */
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')'); /* "pid (comm) S ...": comm may hold spaces */
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

static void tc_detach_one(int ifindex, uint32_t handle)
{
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .handle = handle, .priority = TI_TC_PRIO);

	bpf_tc_detach(&hook, &o);
}

/* Remove the netlink tc filters of tcpinspect processes that died without
 * detaching (SIGKILL).  Only filters recorded in our state files, still
 * running our program, in our network namespace, are touched. */
void ti_tc_sweep_stale(void)
{
	DIR *d = opendir(TI_TC_STATE_DIR);
	struct dirent *de;
	uint32_t ns = ti_netns_inode();

	if (!d)
		return;
	while ((de = readdir(d))) {
		char path[512];
		int pid, ifindex;
		unsigned handle, fns;
		FILE *f;

		if (sscanf(de->d_name, "tc-%d-%u", &pid, &handle) != 2)
			continue;
		if (owner_alive(pid))
			continue; /* its owner is alive */
		snprintf(path, sizeof(path), TI_TC_STATE_DIR "/%s", de->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%u %d %u", &fns, &ifindex, &handle) == 3 && fns == ns) {
			if (ours(ifindex, handle))
				tc_detach_one(ifindex, handle);
			fclose(f);
			unlink(path);
		} else {
			fclose(f);
		}
	}
	closedir(d);
}

static int if_ok_for_tc(const char *name, bool explicit_dev)
{
	char path[128];
	FILE *f;
	int type = -1;
	struct ifreq ifr = {};
	int sk;

	snprintf(path, sizeof(path), "/sys/class/net/%s/type", name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &type) != 1)
			type = -1;
		fclose(f);
	}
	if (type != 1 && type != 772) /* ARPHRD_ETHER, ARPHRD_LOOPBACK */
		return -EOPNOTSUPP;
	if (explicit_dev)
		return 0;
	sk = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sk < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(sk, SIOCGIFFLAGS, &ifr) || !(ifr.ifr_flags & IFF_UP)) {
		close(sk);
		return -ENETDOWN;
	}
	close(sk);
	return 0;
}

static int tc_attach_dev(struct ti_kernel *k, int prog_fd, const char *dev, char *why,
			 size_t whylen)
{
	static unsigned seq;
	struct ti_tc_hook *t = &k->tc[k->ntc];
	int ifindex = if_nametoindex(dev);
	char path[256];
	FILE *f;
	int err;

	if (!ifindex)
		return ti_explain(-ENODEV, why, whylen, TI_MODE_TC, dev);
	snprintf(t->name, sizeof(t->name), "%s", dev);
	t->ifindex = ifindex;
	t->handle = 0;
	/* tcx: a link the kernel removes when the last fd closes.
	 * TCPINSPECT_TC_NO_TCX=1 (for the specs, undocumented to users) skips
	 * it, to test the clsact + netlink path on kernels that have tcx. */
	if (getenv("TCPINSPECT_TC_NO_TCX") && strcmp(getenv("TCPINSPECT_TC_NO_TCX"), "0"))
		t->link_fd = -1;
	else
		t->link_fd = bpf_link_create(prog_fd, ifindex, TI_BPF_TCX_INGRESS, NULL);
	if (t->link_fd >= 0) {
		k->ntc++;
		return 0;
	}
	{
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
				    .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .priority = TI_TC_PRIO);

		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST)
			return ti_explain(err, why, whylen, TI_MODE_TC, "creating the clsact qdisc");
		o.handle = ((uint32_t)getpid() << 8) | (++seq & 0xff);
		err = bpf_tc_attach(&hook, &o);
		if (err)
			return ti_explain(err, why, whylen, TI_MODE_TC, "attaching the tc filter");
		t->handle = o.handle;
	}
	mkdir(TI_TC_STATE_DIR, 0700);
	tc_state_path(path, sizeof(path), getpid(), t->handle);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%u %d %u\n", ti_netns_inode(), ifindex, t->handle);
		fclose(f);
	}
	k->ntc++;
	return 0;
}

/* Attach prog_fd at the ingress of o->devs, or of every Ethernet/loopback
 * interface that is up.  On failure the caller detaches what was made. */
int ti_tc_attach(struct ti_kernel *k, const struct ti_load_opts *o, int prog_fd, char *why,
		 size_t whylen)
{
	int err;

	if (o->ndevs) {
		for (int i = 0; i < o->ndevs; i++) {
			if (if_ok_for_tc(o->devs[i], true)) {
				snprintf(why, whylen, "tc: interface '%s' is not Ethernet or loopback; tc mode reads Ethernet frames",
					 o->devs[i]);
				return -EOPNOTSUPP;
			}
			if ((err = tc_attach_dev(k, prog_fd, o->devs[i], why, whylen)))
				return err;
		}
		return 0;
	}
	{
		struct if_nameindex *ifs = if_nameindex(), *i;

		if (!ifs)
			return ti_explain(-errno, why, whylen, TI_MODE_TC, "listing interfaces");
		for (i = ifs; i->if_index && k->ntc < TI_MAX_DEVS; i++) {
			if (if_ok_for_tc(i->if_name, false))
				continue;
			if ((err = tc_attach_dev(k, prog_fd, i->if_name, why, whylen))) {
				if_freenameindex(ifs);
				return err;
			}
		}
		if_freenameindex(ifs);
	}
	if (!k->ntc) {
		snprintf(why, whylen, "tc: no interface is up; give dev={...}");
		return -ENODEV;
	}
	return 0;
}

void ti_tc_detach(struct ti_kernel *k)
{
	for (int i = 0; i < k->ntc; i++) {
		struct ti_tc_hook *t = &k->tc[i];

		if (t->link_fd >= 0) {
			close(t->link_fd);
		} else if (t->handle) {
			char path[256];

			tc_detach_one(t->ifindex, t->handle);
			tc_state_path(path, sizeof(path), getpid(), t->handle);
			unlink(path);
		}
		t->link_fd = -1;
		t->handle = 0;
	}
	k->ntc = 0;
}
