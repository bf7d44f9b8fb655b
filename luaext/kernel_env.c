// SPDX-License-Identifier: GPL-2.0-only
/* kernel_env.c: what the kernel layer needs to know about its environment,
 * and how it says what went wrong.
 *
 *   mode names     ti_mode_names (kernel.h)
 *   privileges     the capabilities each mode needs, checked up front;
 *                  dropping them for a user (tcpdump's -Z)
 *   kernel facts   BTF, kallsyms, kprobes, perf_event_paranoid, cgroup2 mount
 *   drops' names   enum skb_drop_reason from the kernel's BTF; a drop's
 *                  location as a kernel function, from /proc/kallsyms
 *   libbpf's log   kept for error reports; all of it on stderr when verbose
 *                  (ti_kernel_set_verbose: the CLI's -v, tcpinspect.set_debug)
 *   ti_explain     one line: what failed, strerror, what to do
 *   scopes         a network namespace or cgroup v2 directory given by name,
 *                  path, inode or PID, resolved and checked; entering a
 *                  network namespace and coming back (tc mode)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
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
static bool verbose;

void ti_kernel_set_verbose(bool on)
{
	verbose = on;
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;
	va_list copy;

	if (verbose) {
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

bool ti_can_read_kernel(void)
{
	return has_cap(CAP_PERFMON) || has_cap(CAP_SYS_ADMIN);
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
	snprintf(why, whylen,
		 "%s mode needs CAP_BPF and %s; missing %s%s%s: run as root or grant them (setpriv/setcap)",
		 ti_mode_names[mode], second_name, bpf ? "" : "CAP_BPF", !bpf && !other ? " and " : "",
		 other ? "" : second_name);
	return -EPERM;
}

int ti_drop_privileges(const char *user, char *why, size_t whylen)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;
	int e;

	errno = 0;
	pw = getpwnam(user);
	if (!pw) {
		e = errno;
		if (!e || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM) {
			snprintf(why, whylen, "no user '%s' (getpwnam)", user);
			return -ENOENT;
		}
		snprintf(why, whylen, "looking up user '%s' failed: %s", user, strerror(e));
		return -e;
	}
	uid = pw->pw_uid, gid = pw->pw_gid;
	if (initgroups(pw->pw_name, gid)) {
		e = errno;
		snprintf(why, whylen,
			 "setting the groups of '%s' failed (initgroups): %s; only root can drop "
			 "to another user",
			 user, strerror(e));
		return -e;
	}
	if (setgid(gid)) {
		e = errno;
		snprintf(why, whylen, "setgid(%u) for '%s' failed: %s", (unsigned)gid, user, strerror(e));
		return -e;
	}
	if (setuid(uid)) {
		e = errno;
		snprintf(why, whylen, "setuid(%u) for '%s' failed: %s", (unsigned)uid, user, strerror(e));
		return -e;
	}
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0))) {
		snprintf(why, whylen, "dropping to '%s' did not take (ids %u/%u, %u/%u)", user, (unsigned)getuid(),
			 (unsigned)geteuid(), (unsigned)getgid(), (unsigned)getegid());
		return -EPERM;
	}
	return 0;
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

/* /proc/kallsyms, one pass for the names in n[0..count): each found one's
 * address in addr[] (0 where kptr_restrict hides it) and found[] set.  The
 * file is ~100k lines ("ffffffff81000000 T _stext", a module's with
 * "\t[mod]" after): fscanf on every line (libbpf's way, for __ksym externs)
 * took 0.36-0.48 s in the emulated 6.1 test guest, so a line is split by
 * hand and the pass ends at the last name wanted (page_offset_base, about
 * half way: 0.11 s there).  The first of a name wins.  -errno where the
 * file cannot be opened. */
static int kallsyms_scan(const char *const *n, size_t count, uint64_t *addr, bool *found)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	size_t left = count;
	char line[1024];

	if (!f)
		return -errno;
	while (left && fgets(line, sizeof(line), f)) {
		char *t = strchr(line, ' '), *name, *end;
		size_t len;

		if (!t || !(name = strchr(t + 1, ' ')))
			continue;
		name++;
		end = name + strcspn(name, " \t\n");
		len = (size_t)(end - name);
		for (size_t i = 0; i < count; i++) {
			if (found[i] || n[i][0] != name[0] || strncmp(name, n[i], len) || n[i][len])
				continue;
			found[i] = true;
			addr[i] = strtoull(line, NULL, 16);
			left--;
			break;
		}
	}
	fclose(f);
	return 0;
}

/* The TI_KSYMS, resolved once per process: the addresses are constant for
 * a boot, and every open wants some of them (fentry and kprobe: the page
 * bases; drops with sockets: the overflow locations; kprobe: its targets).
 * A module loaded later (ipv6) stays unseen by this process. */
static const char *const ksym_wanted[TI_KSYM_COUNT] = {
#define TI_X(id, name) name,
	TI_KSYMS(TI_X)
#undef TI_X
};
static uint64_t ksym_wanted_addr[TI_KSYM_COUNT];
static bool ksym_wanted_found[TI_KSYM_COUNT];
static bool ksym_wanted_read;

/* 0, or -errno where kallsyms cannot be opened: then nothing is kept, and
 * the next open tries again (a failure may be passing: EMFILE, ENOMEM) */
static int ksyms_wanted_load(void)
{
	int err = 0;

	if (!ksym_wanted_read &&
	    !(err = kallsyms_scan(ksym_wanted, TI_KSYM_COUNT, ksym_wanted_addr, ksym_wanted_found)))
		ksym_wanted_read = true;
	return err;
}

uint64_t ti_kallsyms_addr(enum ti_ksym s)
{
	if (ksyms_wanted_load())
		return 0;
	return s < TI_KSYM_COUNT ? ksym_wanted_addr[s] : 0;
}

bool ti_kallsyms_has(const char *name)
{
	uint64_t addr = 0;
	bool found = false;

	if (ksyms_wanted_load())
		return true; /* cannot tell: let the attach decide */
	for (size_t i = 0; i < TI_KSYM_COUNT; i++)
		if (!strcmp(name, ksym_wanted[i]))
			return ksym_wanted_found[i];
	/* not one of the TI_KSYMS: a pass of its own */
	return kallsyms_scan(&name, 1, &addr, &found) ? true : found;
}

static void btf_facts(void);

/* ---- drops' names ------------------------------------------------------------ */

/* The running kernel's enum skb_drop_reason, read once: the values differ
 * between kernels (6.1's NO_SOCKET is 2, 6.18's 3: SKB_CONSUMED came
 * before it), so the names come from its BTF, never from a header. */
struct drop_reason {
	uint32_t value;
	char *name;
};
static struct drop_reason *drop_reasons;
static size_t ndrop_reasons;

static int drop_reason_cmp(const void *a, const void *b)
{
	const struct drop_reason *x = a, *y = b;

	return x->value < y->value ? -1 : x->value > y->value;
}

static void drop_reasons_from(const struct btf *btf)
{
	int id = btf__find_by_name_kind(btf, "skb_drop_reason", BTF_KIND_ENUM);

	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e = btf_enum(t);
		size_t n = btf_vlen(t);

		drop_reasons = calloc(n ? n : 1, sizeof(*drop_reasons));
		for (size_t i = 0; drop_reasons && i < n; i++) {
			const char *name = btf__name_by_offset(btf, e[i].name_off);

			/* the bound and the subsystem mask are not reasons */
			if (!name || !strcmp(name, "SKB_DROP_REASON_MAX") ||
			    !strcmp(name, "SKB_DROP_REASON_SUBSYS_MASK"))
				continue;
			if (!strncmp(name, "SKB_DROP_REASON_", 16))
				name += 16;
			else if (!strncmp(name, "SKB_", 4))
				name += 4;
			drop_reasons[ndrop_reasons].value = (uint32_t)e[i].val;
			if (!(drop_reasons[ndrop_reasons].name = strdup(name)))
				break;
			ndrop_reasons++;
		}
		if (drop_reasons)
			qsort(drop_reasons, ndrop_reasons, sizeof(*drop_reasons), drop_reason_cmp);
	}
}

/* ---- TCP state names ------------------------------------------------------------ */

#define TI_SK_STATES 32
static char *state_names[TI_SK_STATES];

/* The enum whose enumerators include TCP_ESTABLISHED (anonymous in the
 * kernel's headers; BPF's BPF_TCP_ESTABLISHED is another name, not this
 * one), each name without its TCP_ prefix; TCP_MAX_STATES is a bound. */
static void sk_states_from(const struct btf *btf)
{
	int n = (int)btf__type_cnt(btf);

	for (int id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_enum *e;
		bool ours = false;

		if (!btf_is_enum(t))
			continue;
		e = btf_enum(t);
		for (int i = 0; i < btf_vlen(t) && !ours; i++)
			ours = !strcmp(btf__name_by_offset(btf, e[i].name_off), "TCP_ESTABLISHED");
		if (!ours)
			continue;
		for (int i = 0; i < btf_vlen(t); i++) {
			const char *name = btf__name_by_offset(btf, e[i].name_off);

			if (e[i].val < 0 || e[i].val >= TI_SK_STATES || strncmp(name, "TCP_", 4) ||
			    !strcmp(name, "TCP_MAX_STATES"))
				continue;
			state_names[e[i].val] = strdup(name + 4);
		}
		break;
	}
}

const char *ti_sk_state_name(uint32_t v)
{
	btf_facts();
	return v < TI_SK_STATES ? state_names[v] : NULL;
}

int ti_sk_state_value(const char *name)
{
	btf_facts();
	for (int v = 1; v < TI_SK_STATES; v++)
		if (state_names[v] && !strcmp(state_names[v], name))
			return v;
	return -1;
}

const char *ti_sk_state_at(size_t i)
{
	size_t k = 0;

	btf_facts();
	for (int v = 1; v < TI_SK_STATES; v++)
		if (state_names[v] && k++ == i)
			return state_names[v];
	return NULL;
}

/* skb:kfree_skb's BTF prototype (the typedef btf_trace_kfree_skb: a
 * pointer to a function of (void *, skb, location, reason[, rx_sk])) has
 * rx_sk from 6.11 on. */
static bool drop_rx_sk;

static void drop_rx_sk_from(const struct btf *btf)
{
	int id = btf__find_by_name_kind(btf, "btf_trace_kfree_skb", BTF_KIND_TYPEDEF);

	if (id > 0) {
		const struct btf_type *t = btf__type_by_id(btf, btf__type_by_id(btf, id)->type);

		if (t && btf_is_ptr(t))
			t = btf__type_by_id(btf, t->type);
		drop_rx_sk = t && btf_is_func_proto(t) && btf_vlen(t) >= 5;
	}
}

bool ti_kernel_drop_has_rx_sk(void)
{
	btf_facts();
	return drop_rx_sk;
}

/* The names and shapes user space takes from the running kernel's BTF
 * (drop reasons, TCP states, kfree_skb's rx_sk), read in one parse of /sys/kernel/btf/vmlinux (it is
 * megabytes), the first time any of them is asked for. */
static void btf_facts(void)
{
	static bool read;
	struct btf *btf;

	if (read)
		return;
	read = true;
	btf = btf__load_vmlinux_btf();
	if (!btf)
		return;
	drop_reasons_from(btf);
	sk_states_from(btf);
	drop_rx_sk_from(btf);
	btf__free(btf);
}

const char *ti_drop_reason_name(uint32_t v)
{
	struct drop_reason key = { .value = v }, *r;

	btf_facts();
	if (!ndrop_reasons)
		return v == TI_DROP_LISTEN_OVERFLOW ? "TCP_LISTEN_OVERFLOW" : NULL;
	r = bsearch(&key, drop_reasons, ndrop_reasons, sizeof(*drop_reasons), drop_reason_cmp);
	/* a listen overflow where the kernel has no name for it (6.1):
	 * reported by the receive hooks with a value of our own */
	if (!r && v == TI_DROP_LISTEN_OVERFLOW && ti_drop_reason_value("TCP_LISTEN_OVERFLOW", &(uint32_t){ 0 }))
		return "TCP_LISTEN_OVERFLOW";
	return r ? r->name : NULL;
}

const char *ti_drop_reason_at(size_t i)
{
	btf_facts();
	return i < ndrop_reasons ? drop_reasons[i].name : NULL;
}

int ti_drop_reason_value(const char *name, uint32_t *v)
{
	btf_facts();
	for (size_t i = 0; i < ndrop_reasons; i++)
		if (!strcmp(drop_reasons[i].name, name)) {
			*v = drop_reasons[i].value;
			return 0;
		}
	return -ENOENT;
}

/* /proc/kallsyms' text symbols, sorted by address, read once. */
struct ksym {
	uint64_t addr;
	char *name;
};
static struct ksym *ksyms;
static size_t nksyms;
static uint64_t ksym_stext;
static bool ksyms_read;

static int ksym_cmp(const void *a, const void *b)
{
	const struct ksym *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static void ksyms_load(void)
{
	FILE *f = fopen("/proc/kallsyms", "re");
	char line[512], name[256], type;
	unsigned long long addr;
	size_t cap = 0;

	ksyms_read = true;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%llx %c %255s", &addr, &type, name) != 3 || !addr)
			continue;
		if (!strcmp(name, "_stext"))
			ksym_stext = addr;
		if (type != 't' && type != 'T')
			continue;
		if (nksyms == cap) {
			struct ksym *n = realloc(ksyms, (cap ? cap * 2 : 4096) * sizeof(*ksyms));

			if (!n)
				break;
			ksyms = n;
			cap = cap ? cap * 2 : 4096;
		}
		if (!(ksyms[nksyms].name = strdup(name)))
			break;
		ksyms[nksyms++].addr = addr;
	}
	fclose(f);
	if (ksyms)
		qsort(ksyms, nksyms, sizeof(*ksyms), ksym_cmp);
}

void ti_kallsyms_name(uint32_t location, char *buf, size_t len)
{
	uint64_t addr, base;
	size_t lo = 0, hi;

	if (!ksyms_read)
		ksyms_load();
	/* the address whose low 32 bits these are, nearest to _stext: kernel
	 * text and modules lie within 2 GiB of it (x86-64: the top 2 GiB) */
	base = ksym_stext ? ksym_stext : 0xffffffff80000000ULL;
	addr = (base & ~0xffffffffULL) | location;
	if (addr > base && addr - base > 0x80000000ULL)
		addr -= 0x100000000ULL;
	else if (addr < base && base - addr > 0x80000000ULL)
		addr += 0x100000000ULL;
	hi = nksyms;
	while (lo < hi) { /* the last symbol at or below addr */
		size_t mid = lo + (hi - lo) / 2;

		if (ksyms[mid].addr <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo > 0 && ksym_stext)
		snprintf(buf, len, "%s", ksyms[lo - 1].name);
	else
		snprintf(buf, len, "0x%llx", (unsigned long long)addr);
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

/* The calling thread's network namespace (setns changes one thread:
 * /proc/self is the main thread's). */
uint32_t ti_netns_inode(void)
{
	struct stat st;

	if (!stat("/proc/thread-self/ns/net", &st) || !stat("/proc/self/ns/net", &st))
		return (uint32_t)st.st_ino;
	return 0;
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

/* ---- scopes: network namespaces and cgroups ------------------------------------- */

/* The checks return 0, -EINVAL for a value that is wrong in itself (no such
 * name, path or process; a file that is not a network namespace; a cgroup v1
 * or non-cgroup directory: the Lua side raises, naming the option), or
 * another -errno for a failure of the environment (EACCES, EPERM, ...: the
 * Lua side returns nil, message, errno).  why says which, and what to do. */

static bool mistake(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ESRCH || err == ELOOP || err == ENAMETOOLONG;
}

/* fd is open on path: is it a network namespace?  Fills *ino. */
static int netns_check_fd(int fd, const char *path, uint32_t *ino, char *why, size_t whylen)
{
	struct stat st;
	int type = ioctl(fd, NS_GET_NSTYPE);

	if (type < 0 || type != CLONE_NEWNET || fstat(fd, &st)) {
		snprintf(why, whylen, "'%s' is not a network namespace%s", path,
			 type < 0 ? "" : " (it is another kind of namespace)");
		return -EINVAL;
	}
	*ino = (uint32_t)st.st_ino;
	return 0;
}

int ti_netns_resolve(const char *spec, struct ti_scope *s, char *why, size_t whylen)
{
	char path[sizeof(s->netns_path)];
	int fd, err;

	if (!spec[0]) {
		snprintf(
			why, whylen,
			"an empty name: give a name from `ip netns list`, a path such as /proc/PID/ns/net or /run/netns/NAME, or an inode number");
		return -EINVAL;
	}
	if (strchr(spec, '/')) {
		if (strlen(spec) >= sizeof(path)) {
			snprintf(why, whylen, "path too long");
			return -EINVAL;
		}
		snprintf(path, sizeof(path), "%s", spec);
	} else if (!strcmp(spec, ".") || !strcmp(spec, "..") ||
		   snprintf(path, sizeof(path), "/run/netns/%s", spec) >= (int)sizeof(path)) {
		snprintf(why, whylen, "'%s' is not a namespace name", spec);
		return -EINVAL;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		if (mistake(err) && !strchr(spec, '/'))
			snprintf(why, whylen, "no network namespace named '%s' (%s: %s; see `ip netns list`)", spec,
				 path, strerror(err));
		else if (mistake(err))
			snprintf(why, whylen, "cannot open '%s': %s", path, strerror(err));
		else
			snprintf(
				why, whylen,
				"cannot open '%s': %s; reading another process's namespace needs root (CAP_SYS_PTRACE)",
				path, strerror(err));
		return mistake(err) ? -EINVAL : -err;
	}
	err = netns_check_fd(fd, path, &s->netns, why, whylen);
	close(fd);
	if (!err)
		snprintf(s->netns_path, sizeof(s->netns_path), "%s", path);
	return err;
}

/* netns given as an inode: a file to enter it by (a /run/netns entry or a
 * process's /proc/PID/ns/net), to name its interfaces (dev, filter.dev) and
 * for tc to attach there; none is needed for this thread's own. */
int ti_netns_resolve_inode(uint32_t ino, struct ti_scope *s, char *why, size_t whylen)
{
	s->netns = ino;
	s->netns_path[0] = '\0';
	if (ino == ti_netns_inode() || !ti_netns_find(ino, s->netns_path, sizeof(s->netns_path)))
		return 0;
	snprintf(
		why, whylen,
		"no /run/netns entry or process is in network namespace %u, so it cannot be entered; give netns= a path (/proc/PID/ns/net, /run/netns/NAME) or container=PID",
		ino);
	return -ENOENT;
}

/* Fill *depth with the number of components of a path ("/" 0, "/a/b" 2). */
static int path_depth(const char *p)
{
	int n = 0;

	for (const char *q = p; *q; q++)
		if (*q != '/' && (q == p || q[-1] == '/'))
			n++;
	return n;
}

/* The cgroup v2 mount that holds real (a canonical path), from mountinfo:
 * its mount point and the cgroup its root is (field 4). */
static int cgroup2_mount_of(const char *real, char *mnt, size_t mlen, char *root, size_t rlen)
{
	FILE *f = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	size_t best = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char r[1024], m[1024], *dash = strstr(line, " - ");
		char type[64];
		size_t ml;

		if (!dash || sscanf(dash, " - %63s", type) != 1 || strcmp(type, "cgroup2"))
			continue;
		if (sscanf(line, "%*s %*s %*s %1023s %1023s", r, m) != 2)
			continue;
		ml = strlen(m);
		if (strncmp(real, m, ml) || (real[ml] && real[ml] != '/' && strcmp(m, "/")))
			continue;
		if (ml >= best) {
			best = ml;
			snprintf(mnt, mlen, "%s", m);
			snprintf(root, rlen, "%s", r);
		}
	}
	fclose(f);
	return best ? 0 : -ENOENT;
}

int ti_cgroup_resolve(const char *path, struct ti_scope *s, char *canon, size_t clen, char *why, size_t whylen)
{
	char real[4096], mnt[1024], root[1024];
	struct statfs sf;
	struct stat st;
	int err;

	if (!path[0]) {
		snprintf(why, whylen, "an empty path: give a cgroup v2 directory, such as /sys/fs/cgroup/system.slice");
		return -EINVAL;
	}
	if (!realpath(path, real) || stat(real, &st) || statfs(real, &sf)) {
		err = errno;
		snprintf(why, whylen, "cannot read '%s': %s%s", path, strerror(err),
			 mistake(err) ? "" : "; run as root");
		return mistake(err) ? -EINVAL : -err;
	}
	if (sf.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode)) {
		char v2[512];

		if (ti_cgroup_root(v2, sizeof(v2)))
			snprintf(v2, sizeof(v2), "%s", "nowhere here: mount -t cgroup2 none /sys/fs/cgroup");
		if (sf.f_type == CGROUP_SUPER_MAGIC)
			snprintf(
				why, whylen,
				"'%s' is a cgroup v1 directory; tcpinspect needs cgroup v2 (the unified hierarchy, mounted %s%s)",
				path, strncmp(v2, "nowhere", 7) ? "at " : "", v2);
		else
			snprintf(why, whylen, "'%s' is not a cgroup v2 directory (cgroup v2 is mounted %s%s)", path,
				 strncmp(v2, "nowhere", 7) ? "at " : "", v2);
		return -EINVAL;
	}
	if (cgroup2_mount_of(real, mnt, sizeof(mnt), root, sizeof(root))) {
		snprintf(why, whylen, "cannot find the cgroup v2 mount of '%s' in /proc/self/mountinfo", path);
		return -ENOENT;
	}
	/* kernfs: a cgroup's id is its directory's inode number (64-bit) */
	s->cgroup_id = (uint64_t)st.st_ino;
	s->cgroup_level = (uint32_t)(path_depth(root) + path_depth(real + (strcmp(mnt, "/") ? strlen(mnt) : 0)));
	snprintf(canon, clen, "%s", real);
	return 0;
}

int ti_container_resolve(int pid, struct ti_scope *s, char *cgroup, size_t clen, char *why, size_t whylen)
{
	char path[64], line[4096], v2[1024], mnt[1024], root[1024];
	const char *rel = NULL;
	FILE *f;
	int err;

	snprintf(path, sizeof(path), "/proc/%d", pid);
	if (access(path, F_OK)) {
		snprintf(why, whylen, "no process %d", pid);
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
	if ((err = ti_netns_resolve(path, s, why, whylen))) {
		if (err == -EINVAL) /* it exited in between */
			snprintf(why, whylen, "no process %d (it exited?)", pid);
		return err;
	}
	s->container = pid;
	/* its cgroup: "0::/PATH" in /proc/PID/cgroup; only cgroup mode needs
	 * it, so a failure here is kept for that mode */
	snprintf(path, sizeof(path), "/proc/%d/cgroup", pid);
	f = fopen(path, "r");
	if (!f) {
		s->cgroup_err = -errno;
		snprintf(s->cgroup_why, sizeof(s->cgroup_why), "cannot read %s: %s", path, strerror(errno));
		return 0;
	}
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "0::", 3)) {
			line[strcspn(line, "\n")] = '\0';
			rel = line + 3;
			break;
		}
	}
	fclose(f);
	if (!rel) {
		s->cgroup_err = -EOPNOTSUPP;
		snprintf(s->cgroup_why, sizeof(s->cgroup_why),
			 "process %d is in no cgroup v2 hierarchy (%s has no 0:: line: cgroup v1 only)", pid, path);
		return 0;
	}
	if (ti_cgroup_root(v2, sizeof(v2)) || cgroup2_mount_of(v2, mnt, sizeof(mnt), root, sizeof(root))) {
		s->cgroup_err = -ENOENT;
		snprintf(
			s->cgroup_why, sizeof(s->cgroup_why),
			"process %d's cgroup is %.100s, but no cgroup v2 hierarchy is mounted here; mount -t cgroup2 none /sys/fs/cgroup",
			pid, rel);
		return 0;
	}
	/* rel is relative to our cgroup namespace's root; the mount shows root */
	if (strcmp(root, "/")) {
		size_t rl = strlen(root);

		if (strncmp(rel, root, rl) || (rel[rl] && rel[rl] != '/')) {
			s->cgroup_err = -ENOENT;
			snprintf(s->cgroup_why, sizeof(s->cgroup_why),
				 "process %d's cgroup %.60s is outside the cgroup v2 mount at %.60s (root %.60s)", pid,
				 rel, mnt, root);
			return 0;
		}
		rel += rl;
	}
	if ((size_t)snprintf(cgroup, clen, "%s%s", strcmp(mnt, "/") ? mnt : "", rel) >= clen) {
		s->cgroup_err = -ENAMETOOLONG;
		snprintf(s->cgroup_why, sizeof(s->cgroup_why), "process %d's cgroup path is too long", pid);
	}
	return 0;
}

/* A file that names network namespace ino, for setns: a /run/netns entry
 * or some process's /proc/PID/ns/net.  0, or -ENOENT. */
int ti_netns_find(uint32_t ino, char *path, size_t len)
{
	const char *const dirs[] = { "/run/netns", "/proc" };
	struct stat st;

	for (int i = 0; i < 2; i++) {
		DIR *d = opendir(dirs[i]);
		struct dirent *de;

		if (!d)
			continue;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.' || (i == 1 && (de->d_name[0] < '0' || de->d_name[0] > '9')))
				continue;
			snprintf(path, len, i ? "/proc/%s/ns/net" : "/run/netns/%s", de->d_name);
			if (!stat(path, &st) && (uint32_t)st.st_ino == ino) {
				int fd = open(path, O_RDONLY | O_CLOEXEC);
				int type = fd < 0 ? -1 : ioctl(fd, NS_GET_NSTYPE);

				if (fd >= 0)
					close(fd);
				if (type == CLONE_NEWNET) {
					closedir(d);
					return 0;
				}
			}
		}
		closedir(d);
	}
	path[0] = '\0';
	return -ENOENT;
}

/* Enter the network namespace open on fd (this thread only); *back is
 * where to come back to.  0 or -errno (nothing changed). */
int ti_netns_enter(int fd, int *back)
{
	int err;

	*back = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (*back < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET)) {
		err = -errno;
		close(*back);
		*back = -1;
		return err;
	}
	return 0;
}

/* Come back from ti_netns_enter.  setns into the namespace the thread came
 * from does not fail while the process keeps its privileges; if it ever
 * does, say so loudly (the thread would stay in the other namespace). */
void ti_netns_leave(int back)
{
	if (back < 0)
		return;
	for (int i = 0; i < 3; i++) {
		if (!setns(back, CLONE_NEWNET)) {
			close(back);
			return;
		}
	}
	fprintf(stderr, "tcpinspect: cannot return to the original network namespace: %s\n", strerror(errno));
	close(back);
}

unsigned ti_netns_ifindex(const char *netns_path, const char *dev)
{
	unsigned ifindex;
	int fd, back;

	if (!netns_path || !netns_path[0])
		return if_nametoindex(dev);
	fd = open(netns_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (ti_netns_enter(fd, &back)) {
		close(fd);
		return 0;
	}
	ifindex = if_nametoindex(dev);
	ti_netns_leave(back);
	close(fd);
	return ifindex;
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
		snprintf(
			why, whylen,
			"%s: this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); tcpinspect's programs are CO-RE in every mode and need a kernel built with CONFIG_DEBUG_INFO_BTF=y",
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
	default: break;
	}
out:
	if (!*hint && loading)
		hint = "the kernel refused the BPF object; -v (tcpinspect.set_debug(true)) prints libbpf's log";
	if (err == -EPERM && !*hint)
		hint = "permission denied: run as root (needs CAP_BPF plus CAP_PERFMON or CAP_NET_ADMIN)";
	snprintf(why, whylen, "%s: %s failed: %s%s%s%s%s%s", mname, step, strerror(-err), *hint ? "; " : "", hint,
		 *last_log ? " [libbpf: " : "", last_log, *last_log ? "]" : "");
	return err;
}
