/* kernel_env.c: what the kernel layer needs to know about its environment,
 * and how it says what went wrong.
 *
 *   mode names     ti_mode_names (kernel.h)
 *   privileges     the capabilities each mode needs, checked up front
 *   kernel facts   BTF, kallsyms, kprobes, perf_event_paranoid, cgroup2 mount
 *   libbpf's log   kept for error reports, printed with TCPINSPECT_DEBUG
 *   ti_explain     one line: what failed, strerror, what to do
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"

const char *const ti_mode_names[TI_MODE_COUNT + 1] = {
#define TI_X(id, name) name,
	TI_MODES(TI_X)
#undef TI_X
	NULL,
};

/* ---- libbpf's messages ------------------------------------------------------ */

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
	/* libbpf prefixes its own messages with "libbpf: "; we add our own */
	if (!strncmp(line, "libbpf: ", 8)) {
		memmove(line, line + 8, strlen(line + 8) + 1);
		n = strlen(line);
	}
	if (n)
		memcpy(last_log, line, n + 1);
	return 0;
}

void ti_kernel_log_init(void)
{
	libbpf_set_print(libbpf_print);
}

void ti_libbpf_log_clear(void)
{
	last_log[0] = '\0';
}

/* ---- privileges ---------------------------------------------------------------- */

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
		 ti_mode_names[mode], second_name, bpf ? "" : "CAP_BPF", !bpf && !other ? " and " : "",
		 other ? "" : second_name);
	return -EPERM;
}

/* ---- kernel facts ---------------------------------------------------------------- */

bool ti_kernel_has_btf(void)
{
	return access("/sys/kernel/btf/vmlinux", R_OK) == 0;
}

/* features(): the kernel's BTF loads and parses; the ring buffer map exists. */
bool ti_kernel_btf_loads(void)
{
	struct btf *btf = btf__load_vmlinux_btf();

	btf__free(btf);
	return btf != NULL;
}

bool ti_kernel_has_ringbuf(void)
{
	return libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL) == 1;
}

/* Does the kernel's BTF (loaded once per open, it is megabytes) have it? */
bool ti_kernel_btf_has_func(struct btf **btf, const char *name)
{
	if (!*btf)
		*btf = btf__load_vmlinux_btf();
	return *btf && btf__find_by_name_kind(*btf, name, BTF_KIND_FUNC) >= 0;
}

bool ti_kallsyms_has(const char *name)
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

bool ti_have_kprobes(void)
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

uint32_t ti_netns_inode(void)
{
	struct stat st;

	return stat("/proc/self/ns/net", &st) ? 0 : (uint32_t)st.st_ino;
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

/* ---- failures explained ------------------------------------------------------------ */

int ti_explain(int err, char *why, size_t whylen, enum ti_mode mode, const char *step)
{
	const char *hint = "";
	const char *mname = ti_mode_names[mode];
	bool attaching = strstr(step, "attach") || strstr(step, "creating");
	bool loading = strstr(step, "loading") || strstr(step, "opening");

	if (err > 0)
		err = -err;
	/* every mode's programs are CO-RE (relocated against the kernel's BTF
	 * at load time): without BTF no mode loads, so no other mode is advised */
	if (!ti_kernel_has_btf() && (mode == TI_MODE_FENTRY || mode == TI_MODE_KPROBE || loading)) {
		snprintf(why, whylen, "%s: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); tcpinspect's programs are CO-RE in every mode and need a kernel built with CONFIG_DEBUG_INFO_BTF=y",
			 mname);
		return err;
	}
	if (err == -EMFILE || err == -ENFILE) {
		hint = "out of file descriptors (a session holds about 20): raise the limit (ulimit -n) or close other sessions";
		goto out;
	}
	switch (mode) {
	case TI_MODE_FENTRY:
		if (err == -EPERM || err == -524 || err == -EOPNOTSUPP || err == -EACCES)
			hint = "fentry is refused on this kernel (a security policy, or no BPF trampoline support); try mode='kprobe', 'tc' or 'cgroup'";
		break;
	case TI_MODE_KPROBE:
		if ((err == -EACCES || err == -EPERM) && perf_paranoid() > 2 && !has_cap(CAP_SYS_ADMIN))
			hint = "kernel.perf_event_paranoid is 3 (a Debian setting): perf events, kprobes included, need CAP_SYS_ADMIN; run as root, or sysctl kernel.perf_event_paranoid=2, or use mode='fentry'";
		else if (!ti_have_kprobes())
			hint = "this kernel has no kprobes (CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off); try mode='tc' or 'cgroup'";
		else if (err == -ENOENT || err == -EINVAL)
			hint = "the function cannot be probed (inlined, renamed or blacklisted); try mode='tc' or 'cgroup'";
		break;
	case TI_MODE_TC:
		if (!attaching)
			break;
		if (err == -EEXIST)
			hint = "a filter with tcpinspect's handle already exists on the device";
		else
			hint = "tc ingress attach failed; check CONFIG_NET_CLS_BPF/CONFIG_NET_SCH_INGRESS, or try mode='cgroup'";
		break;
	case TI_MODE_CGROUP:
		if (attaching)
			hint = "check that the cgroup v2 path exists and CONFIG_CGROUP_BPF=y";
		break;
	default:
		break;
	}
out:
	if (!*hint && loading)
		hint = "the kernel refused the BPF object; TCPINSPECT_DEBUG=1 prints libbpf's log";
	if (err == -EPERM && !*hint)
		hint = "permission denied: run as root (needs CAP_BPF plus CAP_PERFMON or CAP_NET_ADMIN)";
	snprintf(why, whylen, "%s: %s failed: %s%s%s%s%s%s", mname, step, strerror(-err), *hint ? "; " : "",
		 hint, *last_log ? " [libbpf: " : "", last_log, *last_log ? "]" : "");
	return err;
}
