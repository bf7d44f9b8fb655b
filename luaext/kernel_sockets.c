// SPDX-License-Identifier: GPL-2.0-only
/* kernel_sockets.c: what user space adds to a record's receiving socket
 * (open's sockets = true; the BPF side fills struct ti_event's sk_* fields):
 *
 *   state names   the running kernel's TCP states (the enum of
 *                 include/net/tcp_states.h, TCP_ESTABLISHED = 1 ...) from
 *                 its BTF, never from a table of our own
 *   owners        the process that holds a socket inode open, as `ss -p`
 *                 finds it: /proc/PID/fd/N -> "socket:[INODE]", cached
 *                 here, the cache rebuilt on a miss at most every
 *                 TI_OWNER_RESCAN_NS
 *   overflow      the value a listen overflow is reported with
 *
 * No per-record allocation: the cache is one table, rebuilt in place.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "kernel_int.h"

/* ---- listen overflow ---------------------------------------------------------------- */

uint32_t ti_listen_overflow_reason(void)
{
	uint32_t v;

	return ti_drop_reason_value("TCP_LISTEN_OVERFLOW", &v) ? TI_DROP_LISTEN_OVERFLOW : v;
}

/* ---- socket owners ---------------------------------------------------------------- */

#define TI_OWNER_SLOTS 8192 /* a power of two; more sockets than this: the rest unnamed */
#define TI_OWNER_RESCAN_NS 100000000ULL
#define TI_OWNER_PIDS 64   /* processes known to hold sockets, rescanned first on a miss */
#define TI_OWNER_MISSES 64 /* inodes missed since the last full scan */

struct owner {
	uint64_t ino; /* 0: free */
	int pid;
	char comm[16];
};
static struct owner *owners;
static uint64_t last_scan_ns;
static bool scanned;
static int known_pids[TI_OWNER_PIDS], nknown;
static uint64_t missed[TI_OWNER_MISSES];
static unsigned nmissed;
/* a process in each network namespace seen holding sockets, to read
 * that namespace's /proc/PID/net/tcp{,6} (listener_ino) */
#define TI_OWNER_NETNS 64
static struct {
	uint64_t netns;
	int pid;
} netns_pid[TI_OWNER_NETNS];
static int nnetns;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct owner *owner_slot(uint64_t ino)
{
	uint64_t h = ino * 0x9e3779b97f4a7c15ULL;

	for (uint32_t i = 0; i < TI_OWNER_SLOTS; i++) {
		struct owner *o = &owners[(h + i) & (TI_OWNER_SLOTS - 1)];

		if (!o->ino || o->ino == ino)
			return o;
	}
	return NULL;
}

static void read_comm(int pid, char comm[16])
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/comm", pid);
	comm[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return;
	if (fgets(comm, 16, f))
		comm[strcspn(comm, "\n")] = '\0';
	fclose(f);
}

/* Add pid's socket fds to the table (an inode already there keeps its
 * first owner, as ss -p lists /proc in order); remember pid as one that
 * holds sockets. */
static void scan_pid(int pid)
{
	char path[300], link[64], comm[16] = "";
	struct dirent *f;
	bool any = false;
	DIR *fds;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	if (!(fds = opendir(path)))
		return;
	while ((f = readdir(fds))) {
		unsigned long long ino;
		struct owner *o;
		ssize_t n;

		if (f->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd/%s", pid, f->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (sscanf(link, "socket:[%llu]", &ino) != 1 || !ino)
			continue;
		any = true;
		if (!(o = owner_slot(ino)) || o->ino)
			continue;
		if (!comm[0])
			read_comm(pid, comm);
		o->ino = ino;
		o->pid = pid;
		memcpy(o->comm, comm, sizeof(o->comm));
	}
	closedir(fds);
	if (any && nnetns < TI_OWNER_NETNS) {
		struct stat st;
		bool have = false;

		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		if (!stat(path, &st)) {
			for (int i = 0; i < nnetns && !have; i++)
				have = netns_pid[i].netns == (uint64_t)st.st_ino;
			if (!have) {
				netns_pid[nnetns].netns = (uint64_t)st.st_ino;
				netns_pid[nnetns++].pid = pid;
			}
		}
	}
	if (any && nknown < TI_OWNER_PIDS) {
		for (int i = 0; i < nknown; i++)
			if (known_pids[i] == pid)
				return;
		known_pids[nknown++] = pid;
	}
}

/* Every process's socket fds, in /proc's order (ss -p's). */
static void owners_scan(void)
{
	DIR *proc = opendir("/proc");
	struct dirent *d;

	last_scan_ns = now_ns();
	scanned = true;
	nknown = 0;
	nmissed = 0;
	nnetns = 0;
	memset(owners, 0, TI_OWNER_SLOTS * sizeof(*owners));
	if (!proc)
		return;
	while ((d = readdir(proc)))
		if (isdigit((unsigned char)d->d_name[0]))
			scan_pid(atoi(d->d_name));
	closedir(proc);
}

static bool was_missed(uint64_t ino)
{
	for (unsigned i = 0; i < nmissed && i < TI_OWNER_MISSES; i++)
		if (missed[i] == ino)
			return true;
	return false;
}

static struct owner *owner_find(uint64_t ino)
{
	struct owner *o = owner_slot(ino);

	return o && o->ino == ino ? o : NULL;
}

/* A hit is answered from the table.  A miss first rescans the processes
 * already known to hold sockets (a new connection is most often its
 * listener's process's: cheap), then, at most every TI_OWNER_RESCAN_NS,
 * all of /proc; an inode still not found is remembered until the next
 * full scan, so that a socket no process holds costs nothing more. */
int ti_sock_owner(uint64_t ino, int *pid, const char **comm)
{
	struct owner *o;

	if (!ino)
		return -ENOENT;
	if (!owners && !(owners = calloc(TI_OWNER_SLOTS, sizeof(*owners))))
		return -ENOMEM;
	if (!scanned)
		owners_scan();
	o = owner_find(ino);
	if (!o && !was_missed(ino)) {
		int pids[TI_OWNER_PIDS], n = nknown;

		memcpy(pids, known_pids, sizeof(pids));
		for (int i = 0; i < n && !o; i++) {
			scan_pid(pids[i]);
			o = owner_find(ino);
		}
	}
	if (!o && now_ns() - last_scan_ns >= TI_OWNER_RESCAN_NS) {
		owners_scan();
		o = owner_find(ino);
	}
	if (!o) {
		missed[nmissed++ % TI_OWNER_MISSES] = ino;
		return -ENOENT;
	}
	*pid = o->pid;
	*comm = o->comm;
	return 0;
}

/* ---- a connection not yet accepted: its listener's owner ---------------------------- */

#define TCP_ESTABLISHED_ 1
#define TCP_CLOSE_WAIT_ 8

/* The inode of the socket listening on e's destination (its address or the
 * wildcard; for IPv4 also a dual-stack IPv6 one) in e's network namespace,
 * from /proc/PID/net/tcp{,6} of a process in it (the session's own when
 * the record names none); 0 when none is found. */
static uint64_t listener_ino(const struct ti_event *e)
{
	static const char *const files[2] = { "tcp", "tcp6" };
	char path[64], line[512];
	int pid = 0;

	for (int i = 0; i < nnetns && !pid; i++)
		if (netns_pid[i].netns == e->netns)
			pid = netns_pid[i].pid;
	for (int f = e->family == 6 ? 1 : 0; f < 2; f++) {
		FILE *fp;

		if (pid)
			snprintf(path, sizeof(path), "/proc/%d/net/%s", pid, files[f]);
		else
			snprintf(path, sizeof(path), "/proc/self/net/%s", files[f]);
		if (!(fp = fopen(path, "re")))
			continue;
		while (fgets(line, sizeof(line), fp)) {
			char addr[40];
			unsigned port, st, n;
			unsigned long long ino;
			uint8_t a[16];
			bool any = true, same = true;

			if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*s %x %*s %*s %*s %*u %*u %llu", addr, &port, &st,
				   &ino) != 4 ||
			    st != 0x0A || port != e->dport)
				continue;
			n = (unsigned)strlen(addr) / 2;
			if (n != 4 && n != 16)
				continue;
			/* /proc prints each 32-bit word of the address in host order */
			for (unsigned w = 0; w < n / 4; w++) {
				char word[9];
				uint32_t v;

				memcpy(word, addr + w * 8, 8);
				word[8] = '\0';
				v = (uint32_t)strtoul(word, NULL, 16);
				memcpy(a + w * 4, &v, 4);
			}
			for (unsigned i = 0; i < n; i++)
				any = any && !a[i];
			if (n == 4)
				same = !memcmp(a, e->daddr, 4);
			else if (e->family == 6)
				same = !memcmp(a, e->daddr, 16);
			else /* an IPv4 connection to an IPv6 socket: ::ffff:a.b.c.d */
				same = !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) && !memcmp(a + 12, e->daddr, 4);
			if ((any || same) && ino) {
				fclose(fp);
				return ino;
			}
		}
		fclose(fp);
	}
	return 0;
}

int ti_sock_owner_of(const struct ti_event *e, int *pid, const char **comm)
{
	uint64_t ino = e->sk_ino;

	/* a full socket that no file holds yet, in a state only a connection
	 * waiting in its listener's accept queue has (once accepted and then
	 * closed it would have moved on: FIN_WAIT*, LAST_ACK, CLOSING) */
	if (!ino && (e->sk_flags & TI_SK_UID) && (e->sk_state == TCP_ESTABLISHED_ || e->sk_state == TCP_CLOSE_WAIT_)) {
		if (!owners && !(owners = calloc(TI_OWNER_SLOTS, sizeof(*owners))))
			return -ENOMEM;
		if (!scanned)
			owners_scan();
		ino = listener_ino(e);
	}
	return ti_sock_owner(ino, pid, comm);
}

/* ---- drops' rx_sk ------------------------------------------------------------------ */

bool ti_kernel_sockets_ok(void)
{
	return ti_can_read_kernel() && ti_kernel_has_btf();
}
