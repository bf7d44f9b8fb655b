// SPDX-License-Identifier: GPL-2.0-only
/* spec/support/failinj.c: an LD_PRELOAD shim that makes bpf(2) fail on
 * demand, for specs and the kernel-layer harness (failure injection).
 *
 * libbpf makes every bpf(2) call through libc's syscall(); this library
 * defines syscall() and hands everything else on to libc's.
 *
 *   TI_FAILINJ_FILE=PATH   while PATH exists, it holds "CMD ERRNO" (decimal):
 *                          every bpf() call with command CMD fails with ERRNO
 *                          (CMD -1: every command).  Lets a Lua spec open a
 *                          session, then make, say, map lookups fail.
 *                          "CMD ERRNO SKIP": the first SKIP matching calls
 *                          after PATH appeared succeed, the rest fail (a
 *                          failure partway through a sequence of updates).
 *   TI_FAILINJ_NTH=K       the K-th bpf() call of the process (from 1) fails,
 *                          with TI_FAILINJ_ERRNO (default ENOMEM).
 *   TI_FAILINJ_NL_NTH=K    the K-th netlink operation fails with
 *                          TI_FAILINJ_ERRNO (default ENOBUFS): opening an
 *                          AF_NETLINK socket, or sending on one (libbpf's tc
 *                          calls and tcpinspect's own link queries both go
 *                          through socket() and send()/sendto()/sendmsg()).
 *   TI_FAILINJ_NL_KILL=K   the process SIGKILLs itself right after its K-th
 *                          netlink operation succeeded (the kernel did it:
 *                          a filter added, a qdisc made), before it can
 *                          act on the answer: a crash at step K.
 *
 * Each failure injected is counted; TI_FAILINJ_REPORT=1 prints the count
 * at exit ("failinj: N bpf calls, M failed; L netlink operations, F failed").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

/* bpf() calls seen and failed; global so that a program linking this file
 * (spec/fuzz/kernel_harness.c) can read and reset them */
long ti_failinj_calls, ti_failinj_failed;
/* nonzero: calls are neither counted nor failed (a harness's own checks) */
int ti_failinj_paused;
/* netlink operations seen and failed */
long ti_failinj_nl_calls, ti_failinj_nl_failed;

static bool file_says_fail(long cmd, int *err)
{
	static long matched; /* matching calls since PATH appeared */
	const char *path = getenv("TI_FAILINJ_FILE");
	FILE *f;
	long want, skip = 0;
	int e, n;

	if (!path || !(f = fopen(path, "re"))) {
		matched = 0;
		return false;
	}
	n = fscanf(f, "%ld %d %ld", &want, &e, &skip);
	fclose(f);
	if (n < 2 || (want != -1 && want != cmd))
		return false;
	if (++matched <= skip)
		return false;
	*err = e;
	return true;
}

static bool nth_says_fail(int *err)
{
	const char *k = getenv("TI_FAILINJ_NTH"), *e = getenv("TI_FAILINJ_ERRNO");

	if (!k || atol(k) != ti_failinj_calls)
		return false;
	*err = e ? atoi(e) : ENOMEM;
	return true;
}

static void report(void)
{
	fprintf(stderr, "failinj: %ld bpf calls, %ld failed; %ld netlink operations, %ld failed\n", ti_failinj_calls,
		ti_failinj_failed, ti_failinj_nl_calls, ti_failinj_nl_failed);
}

/* Like libc's syscall(), it reads six arguments whatever the call takes (the
 * extra ones are ignored by the kernel): not a bug, so not for ASan. */
__attribute__((no_sanitize_address)) long syscall(long nr, ...)
{
	static syscall_fn real;
	long a[6];
	va_list ap;
	int err;

	va_start(ap, nr);
	for (int i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (!real) {
		real = (syscall_fn)dlsym(RTLD_NEXT, "syscall");
		if (getenv("TI_FAILINJ_REPORT"))
			atexit(report);
	}
	if (nr == SYS_bpf && !ti_failinj_paused) {
		ti_failinj_calls++;
		if (nth_says_fail(&err) || file_says_fail(a[0], &err)) {
			ti_failinj_failed++;
			errno = err;
			return -1;
		}
	}
	return real(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}

/* ---- netlink ----------------------------------------------------------------------- */

#define NL_FDS 4096
static unsigned char nl_fd[NL_FDS]; /* fds that are AF_NETLINK sockets */

static void *real_fn(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}

/* Count a netlink operation; true when it is the one to fail. */
static bool nl_fails(int *err)
{
	const char *k = getenv("TI_FAILINJ_NL_NTH"), *e = getenv("TI_FAILINJ_ERRNO");

	if (ti_failinj_paused)
		return false;
	ti_failinj_nl_calls++;
	if (!k || atol(k) != ti_failinj_nl_calls)
		return false;
	*err = e ? atoi(e) : ENOBUFS;
	ti_failinj_nl_failed++;
	return true;
}

/* TI_FAILINJ_NL_KILL=K: die after the K-th netlink operation did its work */
static void nl_done(void)
{
	const char *k = getenv("TI_FAILINJ_NL_KILL");

	if (k && !ti_failinj_paused && atol(k) == ti_failinj_nl_calls)
		kill(getpid(), SIGKILL);
}

static bool is_nl(int fd)
{
	return fd >= 0 && fd < NL_FDS && nl_fd[fd];
}

int socket(int domain, int type, int protocol)
{
	static int (*real)(int, int, int);
	int fd, err;

	if (!real)
		real = (int (*)(int, int, int))real_fn("socket");
	if (domain == AF_NETLINK && nl_fails(&err)) {
		errno = err;
		return -1;
	}
	fd = real(domain, type, protocol);
	if (fd >= 0 && fd < NL_FDS)
		nl_fd[fd] = domain == AF_NETLINK;
	if (fd >= 0 && domain == AF_NETLINK)
		nl_done();
	return fd;
}

int close(int fd)
{
	static int (*real)(int);

	if (!real)
		real = (int (*)(int))real_fn("close");
	if (fd >= 0 && fd < NL_FDS)
		nl_fd[fd] = 0;
	return real(fd);
}

ssize_t send(int fd, const void *buf, size_t len, int flags)
{
	static ssize_t (*real)(int, const void *, size_t, int);
	int err;

	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, int))real_fn("send");
	if (is_nl(fd) && nl_fails(&err)) {
		errno = err;
		return -1;
	}
	{
		ssize_t r = real(fd, buf, len, flags);

		if (r >= 0 && is_nl(fd))
			nl_done();
		return r;
	}
}

ssize_t sendto(int fd, const void *buf, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
	static ssize_t (*real)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
	int err;

	if (!real)
		real = (ssize_t(*)(int, const void *, size_t, int, const struct sockaddr *, socklen_t))real_fn(
			"sendto");
	if (is_nl(fd) && nl_fails(&err)) {
		errno = err;
		return -1;
	}
	{
		ssize_t r = real(fd, buf, len, flags, to, tolen);

		if (r >= 0 && is_nl(fd))
			nl_done();
		return r;
	}
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static ssize_t (*real)(int, const struct msghdr *, int);
	int err;

	if (!real)
		real = (ssize_t(*)(int, const struct msghdr *, int))real_fn("sendmsg");
	if (is_nl(fd) && nl_fails(&err)) {
		errno = err;
		return -1;
	}
	{
		ssize_t r = real(fd, msg, flags);

		if (r >= 0 && is_nl(fd))
			nl_done();
		return r;
	}
}
