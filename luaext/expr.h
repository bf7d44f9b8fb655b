/* SPDX-License-Identifier: GPL-2.0-only */
/* expr.h: tcpdump filter expressions compiled by libpcap into the classic
 * BPF programs bpf/ti_cbpf.h runs (expr.c).  No Lua. */
#ifndef TI_EXPR_H
#define TI_EXPR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <linux/types.h>
#include "tcpinspect.h"
#include "ti_cbpf.h"

/* Compile expr (tcpdump's syntax) for LINKTYPE_RAW into out.  0: done (an
 * empty or blank expr gives out->len == 0: no expression); -1: err holds
 * the message, naming the expression: libpcap's error, or why the program
 * cannot run in tcpinspect (too long, reads past the first TI_CBPF_WINDOW
 * bytes). */
int ti_expr_compile(const char *expr, struct ti_cbpf_prog *out, char *err, size_t errlen);

/* The checks ti_expr_compile makes of a compiled program: 0 or -1. */
int ti_expr_check(const char *expr, const struct ti_cbpf_prog *p, char *err, size_t errlen);

/* libpcap's own verdict (pcap_offline_filter) on a segment of wirelen
 * bytes whose first caplen are in buf: 1 match, 0 not, -1 (err filled)
 * when expr does not compile.  For the differential specs. */
int ti_expr_offline(const char *expr, const uint8_t *buf, uint32_t caplen, uint32_t wirelen, char *err, size_t errlen);

#endif /* TI_EXPR_H */
