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
 *
 * Each failure injected is counted; TI_FAILINJ_REPORT=1 prints the count
 * at exit ("failinj: N bpf calls, M failed").
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

typedef long (*syscall_fn)(long, ...);

/* bpf() calls seen and failed; global so that a program linking this file
 * (spec/fuzz/kernel_harness.c) can read and reset them */
long ti_failinj_calls, ti_failinj_failed;
/* nonzero: calls are neither counted nor failed (a harness's own checks) */
int ti_failinj_paused;

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
	fprintf(stderr, "failinj: %ld bpf calls, %ld failed\n", ti_failinj_calls, ti_failinj_failed);
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
