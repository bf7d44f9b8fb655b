/* hooks.c: choose, load and attach the kernel hooks of one session, and undo
 * it all.  One skeleton holds every program; before loading, only those of
 * the chosen mode are marked for autoload.
 *
 *   fentry, kprobe   tcp_v4_rcv / tcp_v6_rcv (a missing one is reported, not fatal)
 *   tc               tcx link where the kernel has tcx, else clsact + netlink
 *   cgroup           cgroup_skb/ingress link on a cgroup v2 directory
 *
 * Every failure is turned into one readable line that says what to do.
 */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <net/if.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <bpf/btf.h>
#include "ti.h"
#include "tcpinspect.skel.h"

#define TI_TC_PRIO 0x7149 /* our filters' tc priority */
#define TI_TC_STATE_DIR "/run/tcpinspect"
#define TI_BPF_TCX_INGRESS 46 /* enum bpf_attach_type, Linux 6.6+ */

/* ---- libbpf's messages: kept for error reports, printed with TCPINSPECT_DEBUG */

static char last_log[512];

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;
	va_list copy;

	if (getenv("TCPINSPECT_DEBUG")) {
		va_copy(copy, ap);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	vsnprintf(line, sizeof(line), fmt, ap);
	if (level == LIBBPF_DEBUG)
		return 0;
	n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	if (n)
		memcpy(last_log, line, n + 1);
	return 0;
}

void ti_libbpf_log_init(void)
{
	libbpf_set_print(libbpf_print);
}

const char *ti_libbpf_last_error(void)
{
	return last_log;
}

/* ---- privileges and kernel facts ------------------------------------------ */

#ifndef CAP_PERFMON
#define CAP_PERFMON 38
#endif
#ifndef CAP_BPF
#define CAP_BPF 39
#endif

static bool has_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {};

	if (syscall(SYS_capget, &h, d))
		return geteuid() == 0;
	return d[cap / 32].effective & (1u << (cap % 32));
}

/* 0, or -EPERM with the missing capabilities named in why. */
int ti_check_privileges(enum ti_mode mode, char *why, size_t whylen)
{
	bool tracing = mode == TI_MODE_FENTRY || mode == TI_MODE_KPROBE;
	int second = tracing ? CAP_PERFMON : CAP_NET_ADMIN;
	const char *second_name = tracing ? "CAP_PERFMON" : "CAP_NET_ADMIN";
	bool bpf = has_cap(CAP_BPF), other = has_cap(second);

	if (has_cap(CAP_SYS_ADMIN) && (tracing || has_cap(CAP_NET_ADMIN)))
		return 0;
	if (bpf && other)
		return 0;
	snprintf(why, whylen, "%s mode needs CAP_BPF and %s; missing %s%s%s: run as root or grant them (setpriv/setcap)",
		 ti_mode_name(mode), second_name, bpf ? "" : "CAP_BPF", !bpf && !other ? " and " : "",
		 other ? "" : second_name);
	return -EPERM;
}

/* Does the kernel's BTF (loaded once per open, it is megabytes) have it? */
static bool kernel_btf_has_func(struct btf **btf, const char *name)
{
	if (!*btf)
		*btf = btf__load_vmlinux_btf();
	return *btf && btf__find_by_name_kind(*btf, name, BTF_KIND_FUNC) >= 0;
}

static bool kallsyms_has(const char *name)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[256], sym[200];
	bool found = false;

	if (!f)
		return true; /* cannot tell: let the attach decide */
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "%*s %*s %199s", sym) == 1 && !strcmp(sym, name);
	fclose(f);
	return found;
}

static bool have_kprobes(void)
{
	return access("/sys/bus/event_source/devices/kprobe", F_OK) == 0 ||
	       access("/sys/kernel/tracing/kprobe_events", F_OK) == 0 ||
	       access("/sys/kernel/debug/tracing/kprobe_events", F_OK) == 0;
}

static int perf_paranoid(void)
{
	FILE *f = fopen("/proc/sys/kernel/perf_event_paranoid", "r");
	int v = 2;

	if (f) {
		if (fscanf(f, "%d", &v) != 1)
			v = 2;
		fclose(f);
	}
	return v;
}

int ti_cgroup_root(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/mounts", "r");
	char dev[256], dir[512], type[64];
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (fscanf(f, "%255s %511s %63s %*[^\n]", dev, dir, type) == 3) {
		if (!strcmp(type, "cgroup2")) {
			snprintf(buf, len, "%s", dir);
			rc = 0;
			break;
		}
	}
	fclose(f);
	return rc;
}

/* ---- error translation ---------------------------------------------------- */

static int explain(int err, char *why, size_t whylen, enum ti_mode mode, const char *step)
{
	const char *hint = "";
	const char *log = ti_libbpf_last_error();

	if (err > 0)
		err = -err;
	if (access("/sys/kernel/btf/vmlinux", R_OK) && (mode == TI_MODE_FENTRY || mode == TI_MODE_KPROBE)) {
		snprintf(why, whylen, "%s: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); it needs CONFIG_DEBUG_INFO_BTF=y, or use mode='tc'",
			 ti_mode_name(mode));
		return err;
	}
	switch (mode) {
	case TI_MODE_FENTRY:
		if (err == -EPERM || err == -524 || err == -EOPNOTSUPP || err == -EACCES)
			hint = "fentry is refused on this kernel (a security policy, or no BPF trampoline support); try mode='kprobe', 'tc' or 'cgroup'";
		break;
	case TI_MODE_KPROBE:
		if ((err == -EACCES || err == -EPERM) && perf_paranoid() > 2 && !has_cap(CAP_SYS_ADMIN))
			hint = "kernel.perf_event_paranoid is 3 (a Debian setting): perf events, kprobes included, need CAP_SYS_ADMIN; run as root, or sysctl kernel.perf_event_paranoid=2, or use mode='fentry'";
		else if (!have_kprobes())
			hint = "this kernel has no kprobes (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off); try mode='tc' or 'cgroup'";
		else if (err == -ENOENT || err == -EINVAL)
			hint = "the function cannot be probed (inlined, renamed or blacklisted); try mode='tc' or 'cgroup'";
		break;
	case TI_MODE_TC:
		if (err == -EEXIST)
			hint = "a filter with tcpinspect's handle already exists on the device";
		else
			hint = "tc ingress attach failed; check CONFIG_NET_CLS_BPF/CONFIG_NET_SCH_INGRESS, or try mode='cgroup'";
		break;
	case TI_MODE_CGROUP:
		hint = "check that the cgroup v2 path exists and CONFIG_CGROUP_BPF=y";
		break;
	default:
		break;
	}
	if (err == -EPERM && !*hint)
		hint = "permission denied: run as root (needs CAP_BPF plus CAP_PERFMON or CAP_NET_ADMIN)";
	snprintf(why, whylen, "%s: %s failed: %s%s%s%s%s", ti_mode_name(mode), step, strerror(-err),
		 *hint ? "; " : "", hint, *log ? " [libbpf: " : "", *log ? log : "");
	if (*log)
		strncat(why, "]", whylen - strlen(why) - 1);
	return err;
}

/* ---- tc ------------------------------------------------------------------- */

static uint32_t netns_inode(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) ? 0 : (uint32_t)st.st_ino;
}

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
void ti_sweep_stale_tc(void)
{
	DIR *d = opendir(TI_TC_STATE_DIR);
	struct dirent *de;
	uint32_t ns = netns_inode();

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

static int tc_attach_dev(struct ti_session *s, int prog_fd, const char *dev, char *why,
			 size_t whylen)
{
	static unsigned seq;
	struct ti_tc_hook *t = &s->tc[s->ntc];
	int ifindex = if_nametoindex(dev);
	char path[256];
	FILE *f;
	int err;

	if (!ifindex)
		return explain(-ENODEV, why, whylen, TI_MODE_TC, dev);
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
		s->ntc++;
		return 0;
	}
	/* clsact + netlink filter; create the qdisc only if it is missing and
	 * never delete it: other tools' filters may hang off it. */
	{
		DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
				    .attach_point = BPF_TC_INGRESS);
		DECLARE_LIBBPF_OPTS(bpf_tc_opts, o, .prog_fd = prog_fd, .priority = TI_TC_PRIO);

		err = bpf_tc_hook_create(&hook);
		if (err && err != -EEXIST)
			return explain(err, why, whylen, TI_MODE_TC, "creating the clsact qdisc");
		o.handle = ((uint32_t)getpid() << 8) | (++seq & 0xff);
		err = bpf_tc_attach(&hook, &o);
		if (err)
			return explain(err, why, whylen, TI_MODE_TC, "attaching the tc filter");
		t->handle = o.handle;
	}
	mkdir(TI_TC_STATE_DIR, 0700);
	tc_state_path(path, sizeof(path), getpid(), t->handle);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%u %d %u\n", netns_inode(), ifindex, t->handle);
		fclose(f);
	}
	s->ntc++;
	return 0;
}

static int attach_tc(struct ti_session *s, const struct ti_options *o, char *why, size_t whylen)
{
	int fd = bpf_program__fd(s->skel->progs.ti_tc_ingress);
	int err;

	if (o->ndevs) {
		for (int i = 0; i < o->ndevs; i++) {
			if (if_ok_for_tc(o->devs[i], true)) {
				snprintf(why, whylen, "tc: interface '%s' is not Ethernet or loopback; tc mode reads Ethernet frames",
					 o->devs[i]);
				return -EOPNOTSUPP;
			}
			if ((err = tc_attach_dev(s, fd, o->devs[i], why, whylen)))
				return err;
		}
		return 0;
	}
	{
		struct if_nameindex *ifs = if_nameindex(), *i;

		if (!ifs)
			return explain(-errno, why, whylen, TI_MODE_TC, "listing interfaces");
		for (i = ifs; i->if_index && s->ntc < TI_MAX_DEVS; i++) {
			if (if_ok_for_tc(i->if_name, false))
				continue;
			if ((err = tc_attach_dev(s, fd, i->if_name, why, whylen))) {
				if_freenameindex(ifs);
				return err;
			}
		}
		if_freenameindex(ifs);
	}
	if (!s->ntc) {
		snprintf(why, whylen, "tc: no interface is up; give dev={...}");
		return -ENODEV;
	}
	return 0;
}

/* ---- the modes ------------------------------------------------------------ */

static int attach_probes(struct ti_session *s, const struct ti_options *o, bool fentry,
			 struct bpf_program *const progs[2], char *why, size_t whylen)
{
	static const char *const fn[2] = { "tcp_v4_rcv", "tcp_v6_rcv" };

	for (int i = 0; i < 2; i++) {
		struct bpf_link *l;

		if (!bpf_program__autoload(progs[i]))
			continue;
		l = fentry ? bpf_program__attach_trace(progs[i])
			   : bpf_program__attach_kprobe(progs[i], false, fn[i]);
		if (!l)
			return explain(-errno, why, whylen, fentry ? TI_MODE_FENTRY : TI_MODE_KPROBE,
				       fn[i]);
		s->links[s->nlinks++] = l;
		snprintf(s->probe_status[i], sizeof(s->probe_status[i]), "attached");
	}
	(void)o;
	return 0;
}

static int attach_cgroup(struct ti_session *s, const struct ti_options *o, char *why, size_t whylen)
{
	struct bpf_link *l;
	int fd, err;

	if (o->cgroup[0])
		snprintf(s->cgroup_path, sizeof(s->cgroup_path), "%s", o->cgroup);
	else if ((err = ti_cgroup_root(s->cgroup_path, sizeof(s->cgroup_path)))) {
		snprintf(why, whylen, "cgroup: no cgroup v2 hierarchy is mounted in this mount namespace (`ip netns exec` remounts /sys); give cgroup=PATH, or mount -t cgroup2 none /sys/fs/cgroup");
		return err;
	}
	fd = open(s->cgroup_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "cgroup: cannot open '%s': %s; give cgroup= a cgroup v2 directory",
			 s->cgroup_path, strerror(errno));
		return err;
	}
	l = bpf_program__attach_cgroup(s->skel->progs.ti_cgroup_ingress, fd);
	err = -errno;
	close(fd);
	if (!l)
		return explain(err, why, whylen, TI_MODE_CGROUP, "attaching to the cgroup");
	s->links[s->nlinks++] = l;
	return 0;
}

/* TCPINSPECT_HIDE_FUNCS="tcp_v6_rcv": act as if the kernel lacked these
 * functions.  A test hook: it lets the specs prove the gap report on kernels
 * that have both. */
static bool hidden_for_test(const char *name)
{
	const char *h = getenv("TCPINSPECT_HIDE_FUNCS");

	return h && strstr(h, name);
}

/* Choose which programs load: only those of the mode, and of the probed
 * functions the kernel has.  Returns 0 or -ENOENT with why filled. */
static int select_programs(struct ti_session *s, const struct ti_options *o, enum ti_mode mode,
			   char *why, size_t whylen)
{
	struct tcpinspect_bpf *k = s->skel;
	struct bpf_program *prog;
	static const char *const fn[2] = { "tcp_v4_rcv", "tcp_v6_rcv" };
	struct bpf_program *const fe[2] = { k->progs.ti_fentry_v4, k->progs.ti_fentry_v6 };
	struct bpf_program *const kp[2] = { k->progs.ti_kprobe_v4, k->progs.ti_kprobe_v6 };
	struct btf *btf = NULL;
	int n = 0;

	bpf_object__for_each_program(prog, k->obj)
		bpf_program__set_autoload(prog, false);
	switch (mode) {
	case TI_MODE_TC:
		bpf_program__set_autoload(k->progs.ti_tc_ingress, true);
		return 0;
	case TI_MODE_CGROUP:
		bpf_program__set_autoload(k->progs.ti_cgroup_ingress, true);
		return 0;
	default:
		break;
	}
	for (int i = 0; i < 2; i++) {
		bool want = o->family == 0 || o->family == (i ? 6 : 4);
		bool have = !hidden_for_test(fn[i]) &&
			    (mode == TI_MODE_FENTRY ? kernel_btf_has_func(&btf, fn[i])
						    : kallsyms_has(fn[i]));

		if (!want)
			snprintf(s->probe_status[i], sizeof(s->probe_status[i]), "not requested (family)");
		else if (!have)
			snprintf(s->probe_status[i], sizeof(s->probe_status[i]),
				 "missing: %s is not in this kernel%s", fn[i],
				 i ? " (IPv6 disabled or ipv6 module not loaded?)" : "");
		if (want && have) {
			bpf_program__set_autoload(mode == TI_MODE_FENTRY ? fe[i] : kp[i], true);
			n++;
		}
	}
	btf__free(btf);
	if (!n) {
		snprintf(why, whylen, "%s: no probe target: %s; %s", ti_mode_name(mode),
			 o->family == 6 ? s->probe_status[1] : s->probe_status[0],
			 "try mode='tc' or 'cgroup'");
		return -ENOENT;
	}
	return 0;
}

/* Open, load and attach in one mode.  On failure everything is undone and
 * why holds one line saying what went wrong and what to do. */
int ti_hooks_attach(struct ti_session *s, const struct ti_options *o, enum ti_mode mode,
		    char *why, size_t whylen)
{
	struct tcpinspect_bpf *k;
	int err;

	last_log[0] = '\0';
	if ((err = ti_check_privileges(mode, why, whylen)))
		return err;
	if (mode == TI_MODE_KPROBE && !have_kprobes()) {
		snprintf(why, whylen, "kprobe: this kernel has no kprobes (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off); try mode='tc' or 'cgroup'");
		return -EOPNOTSUPP;
	}
	k = s->skel = tcpinspect_bpf__open();
	if (!k)
		return explain(-errno, why, whylen, mode, "opening the BPF object");
	s->mode = mode;
	bpf_map__set_max_entries(k->maps.events, o->ring_size);
	bpf_map__set_max_entries(k->maps.flows, o->max_flows);
	bpf_map__set_max_entries(k->maps.sources, o->max_flows);
	if ((err = select_programs(s, o, mode, why, whylen)))
		goto fail;
	if ((err = tcpinspect_bpf__load(k))) {
		explain(err, why, whylen, mode, "loading the BPF programs");
		goto fail;
	}
	if (mode == TI_MODE_TC)
		s->base.netns = netns_inode();
	if ((err = ti_write_filter(s, s->filter))) {
		explain(err, why, whylen, mode, "writing the filter");
		goto fail;
	}
	switch (mode) {
	case TI_MODE_FENTRY: {
		struct bpf_program *const p[2] = { k->progs.ti_fentry_v4, k->progs.ti_fentry_v6 };

		err = attach_probes(s, o, true, p, why, whylen);
		break;
	}
	case TI_MODE_KPROBE: {
		struct bpf_program *const p[2] = { k->progs.ti_kprobe_v4, k->progs.ti_kprobe_v6 };

		err = attach_probes(s, o, false, p, why, whylen);
		break;
	}
	case TI_MODE_TC:
		err = attach_tc(s, o, why, whylen);
		break;
	case TI_MODE_CGROUP:
		err = attach_cgroup(s, o, why, whylen);
		break;
	default:
		err = -EINVAL;
	}
	if (err)
		goto fail;
	return 0;
fail:
	ti_hooks_detach(s);
	return err;
}

void ti_hooks_detach(struct ti_session *s)
{
	for (int i = 0; i < s->nlinks; i++)
		bpf_link__destroy(s->links[i]);
	s->nlinks = 0;
	for (int i = 0; i < s->ntc; i++) {
		struct ti_tc_hook *t = &s->tc[i];

		if (t->link_fd >= 0) {
			close(t->link_fd);
		} else if (t->handle) {
			char path[256];

			tc_detach_one(t->ifindex, t->handle);
			tc_state_path(path, sizeof(path), getpid(), t->handle);
			unlink(path);
		}
	}
	s->ntc = 0;
	if (s->skel) {
		tcpinspect_bpf__destroy(s->skel);
		s->skel = NULL;
	}
	/* the copies describe the destroyed tries' entries: they go with them */
	for (int i = 0; i < 2; i++) {
		free(s->slot_filter[i]);
		s->slot_filter[i] = NULL;
	}
}
