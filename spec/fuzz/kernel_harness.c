// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/kernel_harness.c: drives the kernel layer (luaext/kernel*.c)
 * without Lua: open (drops = true: the drop hook too) -> set_filter ->
 * stats, drop stats -> test_run -> close, in each mode given, built with ASan/LSan/UBSan by spec/fuzz/run (asan, failinj).
 *
 *   kernel_harness all     [MODES]   cycle, then failinj
 *   kernel_harness cycle   [MODES]   one cycle per mode (default "tc,cgroup"),
 *                                     with exact counts checked
 *   kernel_harness failinj [MODES]   then, in tc mode over clsact + netlink on lo
 *                                     and a veth it creates, each netlink
 *                                     operation failing in turn, and in each
 *                                     mode each allocation of the kernel layer
 *                                     (-Wl,--wrap) failing in turn; a filter
 *                                     the kernel would not remove must keep its
 *                                     state file, and the next start's sweep
 *                                     must remove it
 *                                     for k = 1, 2, ...: a child runs one cycle
 *                                     with the k-th bpf() call failing (the
 *                                     shim, spec/support/failinj.c, is linked
 *                                     in), until a cycle makes fewer than k
 *                                     calls.  After each child: no ti_ BPF
 *                                     program, no tc filter of ours, no state
 *                                     file of the child is left; the child
 *                                     itself checks that a failing step
 *                                     returned -errno and that what it
 *                                     reports matches what it did.
 *
 * Ends with "N passed, N failed" (checks); exits 0 when every check held.
 * Root; tc mode on lo.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <net/if.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h" /* the layer's API, and ti_tc_sweep_stale */
#include "tcpinspect.skel.h"

extern long ti_failinj_calls, ti_failinj_failed; /* spec/support/failinj.c */
extern long ti_failinj_nl_calls, ti_failinj_nl_failed;
extern int ti_failinj_paused;

/* Allocation failures in the kernel layer's own code: the harness is linked
 * with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc (spec/fuzz/run), so
 * these see every allocation of kernel*.c (not libbpf's, a shared library).
 * alloc_fail_at = K: the K-th one fails. */
static long alloc_calls, alloc_failed, alloc_fail_at;
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);

static bool alloc_fails(void)
{
	if (!alloc_fail_at || ti_failinj_paused)
		return false;
	if (++alloc_calls != alloc_fail_at)
		return false;
	alloc_failed++;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n)
{
	return alloc_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t n, size_t size)
{
	return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : __real_realloc(p, n);
}

/* tc on a second interface too (the netlink pass: a veth pair it creates) */
#define EXTRA_DEV "ti-fh0"
static bool extra_dev;

static int checks, failures;

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		checks++;                                                               \
		if (!(cond)) {                                                          \
			failures++;                                                     \
			fprintf(stderr, "kernel_harness: %s:%d: ", __FILE__, __LINE__); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
		}                                                                       \
	} while (0)

/* An Ethernet + IPv4 + TCP SYN frame to lo (dst MAC 0: PACKET_HOST there),
 * 127.0.0.1:40000 -> 127.0.0.1:9, as spec/bench/common.lua builds it. */
static size_t frame(unsigned char *f, unsigned dport)
{
	static const unsigned char ip[20] = { 0x45, 0, 0, 40, 0, 1, 0, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1 };
	unsigned char *t = f + 14 + 20;

	memset(f, 0, 14 + 40);
	f[12] = 0x08;
	memcpy(f + 14, ip, sizeof(ip));
	t[0] = 40000 >> 8, t[1] = 40000 & 0xff;
	t[2] = (unsigned char)(dport >> 8), t[3] = dport & 0xff;
	t[7] = 1;     /* seq 1 */
	t[12] = 0x50; /* data offset 5 words */
	t[13] = 0x02; /* SYN */
	t[14] = 0xff, t[15] = 0xff;
	return 14 + 40;
}

/* The IDs of the programs a kernel object has loaded, into ids[8]. */
static int prog_ids(const struct ti_kernel *k, __u32 *ids)
{
	struct bpf_program *p;
	int n = 0;

	ti_failinj_paused++; /* the harness's own calls */

	bpf_object__for_each_program(p, k->skel->obj)
	{
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int fd = bpf_program__fd(p);

		if (fd >= 0 && n < 8 && !bpf_obj_get_info_by_fd(fd, &info, &len))
			ids[n++] = info.id;
	}
	ti_failinj_paused--;
	return n;
}

/* Is program id still loaded, a second after?  The kernel frees a program
 * after an RCU grace period once its last reference goes. */
static bool prog_exists(__u32 id)
{
	bool exists = true;

	ti_failinj_paused++;
	for (int i = 0; i < 100 && exists; i++) {
		int fd = bpf_prog_get_fd_by_id(id);

		exists = fd >= 0;
		if (exists) {
			close(fd);
			usleep(10000);
		}
	}
	ti_failinj_paused--;
	return exists;
}

/* A netlink tc filter of process pid still on lo's ingress?  Its handles are
 * pid << 8 | seq (luaext/kernel_tc.c), seq from 1 in a fresh process. */
static bool tc_filter_of(pid_t pid)
{
	int ifindexes[2] = { 1, extra_dev ? (int)if_nametoindex(EXTRA_DEV) : 0 };
	bool found = false;

	ti_failinj_paused++;
	for (int i = 0; i < 2 && !found; i++) {
		for (unsigned seq = 1; ifindexes[i] && seq <= 8 && !found; seq++) {
			DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindexes[i], .attach_point = BPF_TC_INGRESS);
			DECLARE_LIBBPF_OPTS(bpf_tc_opts, q, .handle = ((uint32_t)pid << 8) | seq, .priority = 0x7149);

			found = !bpf_tc_query(&hook, &q);
		}
	}
	ti_failinj_paused--;
	return found;
}

static int open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n - 1; /* the directory's own fd */
}

static bool state_files_of(pid_t pid)
{
	char prefix[32];
	DIR *d = opendir("/run/tcpinspect");
	struct dirent *de;
	bool found = false;

	snprintf(prefix, sizeof(prefix), "tc-%d-", (int)pid);
	while (d && (de = readdir(d)))
		found |= !strncmp(de->d_name, prefix, strlen(prefix));
	if (d)
		closedir(d);
	return found;
}

static enum ti_mode mode_of(const char *name)
{
	for (int m = 0; m < TI_MODE_COUNT; m++)
		if (!strcmp(ti_mode_names[m], name))
			return (enum ti_mode)m;
	fprintf(stderr, "kernel_harness: unknown mode '%s'\n", name);
	exit(2);
}

/* One cycle.  Returns 0 when it ran to the end, 1 when a step failed as
 * failure injection may make it (the step returned -errno, nothing
 * half-done was reported); counts checks on the way. */
static int cycle(enum ti_mode mode, bool verbose)
{
	struct ti_kernel *k;
	struct ti_filter *f;
	struct ti_load_opts o = { .mode = mode,
				  .sample = 1,
				  .events = true,
				  .aggregates = true,
				  .ring_size = 1 << 16,
				  .max_flows = 64,
				  .wakeup = 1,
				  .drops = true };
	uint64_t st[TI_STAT_MAX];
	unsigned char fr[64];
	size_t n;
	char why[2048];
	int err, retval, rc = 0;
	uint32_t ns;
	__u32 ids[8];
	int nids = 0;

	ti_failinj_paused++; /* the harness's own allocations */
	k = malloc(sizeof(*k));
	f = calloc(1, sizeof(*f));
	ti_failinj_paused--;
	if (!k || !f)
		return 1;
	ti_kernel_init(k);
	if (mode == TI_MODE_TC) {
		o.ndevs = 1;
		strcpy(o.devs[0], "lo");
		if (extra_dev)
			strcpy(o.devs[o.ndevs++], EXTRA_DEV);
	}
	/* filter: dport 9, saddr 127.0.0.0/8 (the LPM trie is written too) */
	f->cfg.match = TI_M_DPORT | TI_M_SADDR;
	f->cfg.dport_bits[9 >> 3] |= 1u << (9 & 7);
	f->saddr[0] = (struct ti_cidr){ .family = 4, .plen = 8, .addr = { 127 } };
	f->nsaddr = 1;

	err = ti_kernel_open_live(k, &o, f, why, sizeof(why));
	if (err) {
		CHECK(err < 0 && why[0], "open failed without -errno and a reason: %d '%s'", err, why);
		CHECK(!k->skel && !k->nlinks && !k->ntc, "a failed open left kernel objects");
		if (verbose)
			fprintf(stderr, "  open: %s\n", why);
		rc = 1;
		goto out;
	}
	nids = prog_ids(k, ids);
	CHECK(nids >= 1, "%s: no program loaded", ti_mode_names[mode]);
	n = frame(fr, 9);
	if ((err = ti_kernel_test_run(k, fr, n, 10, &retval, &ns, why, sizeof(why)))) {
		rc = 1;
		goto close;
	}
	n = frame(fr, 10); /* filtered out */
	if ((err = ti_kernel_test_run(k, fr, n, 5, &retval, &ns, why, sizeof(why)))) {
		rc = 1;
		goto close;
	}
	if ((err = ti_kernel_stats(k, st))) {
		rc = 1;
		goto close;
	}
	/* exact for our frames; other traffic on lo (another test, a benchmark)
	 * can only add to filtered (and seen, read last, may be ahead) */
	CHECK(st[TI_STAT_MATCHED] == 10 && st[TI_STAT_FILTERED] >= 5 &&
		      st[TI_STAT_SEEN] >= st[TI_STAT_FILTERED] + st[TI_STAT_MATCHED],
	      "%s: seen %llu matched %llu filtered %llu, expected 10 matched of 15+", ti_mode_names[mode],
	      (unsigned long long)st[TI_STAT_SEEN], (unsigned long long)st[TI_STAT_MATCHED],
	      (unsigned long long)st[TI_STAT_FILTERED]);
	/* drops = true: the drop hook's counters (seen read last: it can only
	 * be ahead), or, where an injected failure kept the hook out, why */
	{
		uint64_t dv[TI_DROP_CTR_SLOTS];

		err = ti_kernel_drop_stats(k, dv, why, sizeof(why));
		if (err && err != -EOPNOTSUPP) {
			rc = 1;
			goto close;
		}
		CHECK(err || dv[TI_DROP_REASON_SLOTS + TI_DROP_SEEN] >=
				      dv[TI_DROP_REASON_SLOTS + TI_DROP_FILTERED] +
					      dv[TI_DROP_REASON_SLOTS + TI_DROP_MATCHED],
		      "%s: drops: seen < filtered + matched", ti_mode_names[mode]);
		CHECK(!err || (why[0] && strstr(k->drop_status, "not attached")),
		      "%s: no drop counters, and no reason: '%s' '%s'", ti_mode_names[mode], why, k->drop_status);
	}
	/* the maps: the one flow of our 10 segments, read, looked up, deleted */
	{
		struct ti_snapshot snap;
		struct ti_flow_key key = { .family = 4,
					   .saddr = { 127, 0, 0, 1 },
					   .daddr = { 127, 0, 0, 1 },
					   .sport = 40000,
					   .dport = 9 };
		struct ti_flow_val v;

		if ((err = ti_kernel_map_snapshot(k, TI_MAP_FLOWS, &snap))) {
			rc = 1;
			goto close;
		}
		CHECK(snap.n == 1 && ((struct ti_flow_val *)(snap.e + snap.ksize))->packets == 10,
		      "%s: flows snapshot: %zu entries", ti_mode_names[mode], snap.n);
		ti_snapshot_free(&snap);
		if ((err = ti_kernel_map_lookup(k, TI_MAP_FLOWS, &key, &v))) {
			CHECK(err != -ENOENT, "%s: our flow is missing", ti_mode_names[mode]);
			rc = 1;
			goto close;
		}
		CHECK(v.packets == 10 && v.flags_seen == TI_SYN, "%s: our flow: %llu packets", ti_mode_names[mode],
		      (unsigned long long)v.packets);
		if ((err = ti_kernel_map_delete(k, TI_MAP_FLOWS, &key)) ||
		    (err = ti_kernel_map_clear(k, TI_MAP_PORTS))) {
			rc = 1;
			goto close;
		}
		err = ti_kernel_map_lookup(k, TI_MAP_FLOWS, &key, &v);
		if (err && err != -ENOENT) { /* the lookup itself failed (injected) */
			rc = 1;
			goto close;
		}
		CHECK(err == -ENOENT, "%s: deleted flow still there", ti_mode_names[mode]);
	}
	/* a new filter: dport 10 only; then everything (NULL) */
	memset(f, 0, sizeof(*f));
	f->cfg.match = TI_M_DPORT;
	f->cfg.dport_bits[10 >> 3] |= 1u << (10 & 7);
	if ((err = ti_kernel_set_filter(k, f))) {
		CHECK(err < 0, "set_filter failed without -errno: %d", err);
		rc = 1;
		goto close;
	}
	if ((err = ti_kernel_test_run(k, fr, n, 3, &retval, &ns, why, sizeof(why))) || (err = ti_kernel_stats(k, st))) {
		rc = 1;
		goto close;
	}
	CHECK(st[TI_STAT_MATCHED] == 13, "after set_filter: matched %llu, expected 13",
	      (unsigned long long)st[TI_STAT_MATCHED]);
	if ((err = ti_kernel_set_filter(k, NULL))) {
		rc = 1;
		goto close;
	}
close:
	ti_kernel_release(k);
	ti_kernel_release(k); /* idempotent */
	CHECK(!k->skel && !k->nlinks && !k->ntc && !k->slot_filter[0] && !k->slot_filter[1], "close left state behind");
	if (tc_filter_of(getpid())) {
		/* only when the kernel refused to remove it (netlink failures
		 * injected): then its state file stays, for the next start's sweep
		 * (the parent checks that the sweep removes it) */
		CHECK(ti_failinj_nl_failed && state_files_of(getpid()),
		      "%s: a tc filter of ours is left after close, without a state file", ti_mode_names[mode]);
	} else {
		for (int i = 0; i < nids; i++)
			CHECK(!prog_exists(ids[i]), "%s: program %u still loaded after close", ti_mode_names[mode],
			      ids[i]);
	}
out:
	free(f);
	free(k);
	return rc;
}

static int run_cycle(char *modes)
{
	int fds = open_fds();

	for (char *m = strtok(modes, ","); m; m = strtok(NULL, ",")) {
		int rc = cycle(mode_of(m), true);

		CHECK(rc == 0, "%s: the cycle failed without failure injection", m);
		CHECK(open_fds() == fds, "%s: %d fds before, %d after", m, fds, open_fds());
		printf("kernel_harness: cycle %s: %s\n", m, rc ? "FAILED" : "ok");
	}
	return failures;
}

/* One child per k: the k-th bpf() call fails with ENOMEM (and, for every
 * third k, EPERM, so both kinds of error path run). */
/* The kinds of failure injected, each armed in a child before its cycle:
 * the k-th bpf() call, the k-th netlink operation, or the k-th allocation
 * of the kernel layer, failing. */
enum inject { INJECT_BPF, INJECT_NETLINK, INJECT_ALLOC };

static const char *const inject_what[] = { "bpf() calls", "netlink operations", "allocations" };

static void arm(enum inject what, int k)
{
	char buf[16];

	/* the parent's calls and checks are not this child's */
	ti_failinj_calls = ti_failinj_failed = ti_failinj_nl_calls = ti_failinj_nl_failed = 0;
	alloc_calls = alloc_failed = 0;
	checks = failures = 0;
	snprintf(buf, sizeof(buf), "%d", k);
	switch (what) {
	case INJECT_BPF:
		setenv("TI_FAILINJ_NTH", buf, 1);
		setenv("TI_FAILINJ_ERRNO", k % 3 ? "12" : "1", 1); /* ENOMEM, EPERM */
		break;
	case INJECT_NETLINK:
		setenv("TI_FAILINJ_NL_NTH", buf, 1);
		setenv("TI_FAILINJ_ERRNO", k % 2 ? "105" : "1", 1); /* ENOBUFS, EPERM */
		break;
	case INJECT_ALLOC: alloc_fail_at = k; break;
	}
}

static long injected(enum inject what)
{
	return what == INJECT_BPF ? ti_failinj_failed : what == INJECT_NETLINK ? ti_failinj_nl_failed : alloc_failed;
}

/* For k = 1, 2, ...: a child arms the k-th failure of one kind and runs one
 * cycle, until a cycle makes fewer than k such calls.  After each child: it
 * ended as a cycle may (done, or stopped at the failing step with -errno),
 * and once the next start's sweep has run, no tc filter or state file of it
 * is left (programs and links go with its fds). */
static void inject_each(enum inject what, enum ti_mode mode, const char *label)
{
	int k, completed = 0, failed_steps = 0;

	ti_kernel_log_init(); /* libbpf's messages: kept, not printed */
	for (k = 1; k < 100000; k++) {
		int status, fd[2];
		long n = 0;
		pid_t pid;

		if (pipe(fd))
			exit(2);
		pid = fork();
		if (pid == 0) {
			int rc;

			close(fd[0]);
			arm(what, k);
			rc = cycle(mode, false);
			n = injected(what);
			if (write(fd[1], &n, sizeof(n)) < 0)
				_exit(3);
			_exit(failures ? 4 : rc);
		}
		close(fd[1]);
		if (read(fd[0], &n, sizeof(n)) != sizeof(n))
			n = -1;
		close(fd[0]);
		waitpid(pid, &status, 0);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) <= 1, "%s, %s %d failing: child ended with status 0x%x",
		      label, inject_what[what], k, status);
		ti_tc_sweep_stale(); /* what the next tc start does */
		CHECK(!tc_filter_of(pid), "%s, %s %d failing: a tc filter is left", label, inject_what[what], k);
		CHECK(!state_files_of(pid), "%s, %s %d failing: a tc state file is left", label, inject_what[what], k);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 1)
			failed_steps++;
		else
			completed++;
		if (n == 0)
			break; /* the cycle made fewer than k: all done */
	}
	printf("kernel_harness: failinj %s: %d %s failed one by one, %d cycles stopped at the failing step, %d completed (a failure tolerated)\n",
	       label, k - 1, inject_what[what], failed_steps, completed - 1);
}

/* Every bpf() and allocation failure in each mode; in tc mode also over
 * the clsact + netlink path (TCPINSPECT_TC_NO_TCX=1) on lo and a veth,
 * with every netlink operation and allocation failing: every filter
 * attached before a failure must be gone, on both interfaces. */
static int run_failinj(char *modes)
{
	bool tc = false;

	for (char *m = strtok(modes, ","); m; m = strtok(NULL, ",")) {
		inject_each(INJECT_BPF, mode_of(m), m);
		if (mode_of(m) == TI_MODE_TC)
			tc = true;
		else
			inject_each(INJECT_ALLOC, mode_of(m), m);
	}
	if (!tc)
		return failures;
	if (system("ip link add " EXTRA_DEV " type veth peer name ti-fh1 && ip link set " EXTRA_DEV
		   " up && ip link set ti-fh1 up")) {
		CHECK(false, "cannot create the veth pair " EXTRA_DEV);
		return failures;
	}
	extra_dev = true;
	setenv("TCPINSPECT_TC_NO_TCX", "1", 1);
	inject_each(INJECT_NETLINK, TI_MODE_TC, "tc (clsact + netlink, lo and a veth)");
	inject_each(INJECT_ALLOC, TI_MODE_TC, "tc (clsact + netlink, lo and a veth)");
	unsetenv("TCPINSPECT_TC_NO_TCX");
	extra_dev = false;
	if (system("ip link del " EXTRA_DEV))
		CHECK(false, "cannot delete the veth pair " EXTRA_DEV);
	return failures;
}

int main(int argc, char **argv)
{
	char modes[64];
	const char *cmd = argc > 1 ? argv[1] : "";

	if (argc > 3 && !strcmp(cmd, "one")) { /* one MODE K: a single cycle, the K-th call failing */
		setenv("TI_FAILINJ_NTH", argv[3], 1);
		printf("rc %d\n", cycle(mode_of(argv[2]), true));
		printf("kernel_harness: %d checks, %d failed; %ld bpf calls\n", checks, failures, ti_failinj_calls);
		return failures ? 1 : 0;
	}
	if (strcmp(cmd, "cycle") && strcmp(cmd, "failinj") && strcmp(cmd, "all")) {
		fprintf(stderr, "usage: kernel_harness cycle|failinj|all [MODES] | one MODE K\n");
		return 2;
	}
	if (!strcmp(cmd, "cycle") || !strcmp(cmd, "all")) {
		snprintf(modes, sizeof(modes), "%s", argc > 2 ? argv[2] : "tc,cgroup");
		run_cycle(modes);
	}
	if (!strcmp(cmd, "failinj") || !strcmp(cmd, "all")) {
		snprintf(modes, sizeof(modes), "%s", argc > 2 ? argv[2] : "tc,cgroup");
		run_failinj(modes);
	}
	/* the closing line spec/run counts */
	printf("%d passed, %d failed\n", checks - failures, failures);
	return failures ? 1 : 0;
}
