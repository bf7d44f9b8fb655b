// SPDX-License-Identifier: GPL-2.0-only
/* spec/fuzz/fuzz_cbpf.c: libFuzzer target for the filter-expression checker
 * (ti_expr_check, luaext/expr.c) and interpreter (ti_cbpf_run,
 * bpf/ti_cbpf.h).  The input is a classic BPF program (its first byte: the
 * number of instructions, 8 bytes each) and then a packet.  Every program
 * the checker accepts runs on the packet without touching memory outside it
 * (ASan), and its verdict equals libpcap's own interpreter (bpf_filter) on
 * the same bytes, for programs libpcap's bpf_validate accepts too and that
 * read no memory word (libpcap leaves them uninitialised) and shift by
 * constants below 32 (C's shifts are undefined past that). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcap/pcap.h>
#include "expr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ti_cbpf_prog p;
	struct bpf_insn li[TI_CBPF_MAX_INSNS];
	char err[512];
	size_t n;
	bool comparable = true;

	if (size < 1)
		return 0;
	n = data[0] % 32 + 1;
	if (size < 1 + n * 8)
		return 0;
	memset(&p, 0, sizeof(p));
	p.len = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *d = data + 1 + i * 8;

		memcpy(&p.insns[i].code, d, 2);
		p.insns[i].jt = d[2];
		p.insns[i].jf = d[3];
		memcpy(&p.insns[i].k, d + 4, 4);
		li[i].code = p.insns[i].code;
		li[i].jt = p.insns[i].jt;
		li[i].jf = p.insns[i].jf;
		li[i].k = p.insns[i].k;
		if (TI_BPF_MODE(li[i].code) == TI_BPF_MEM &&
		    (TI_BPF_CLASS(li[i].code) == TI_BPF_LD || TI_BPF_CLASS(li[i].code) == TI_BPF_LDX))
			comparable = false;
		if (TI_BPF_CLASS(li[i].code) == TI_BPF_ALU &&
		    (TI_BPF_OP(li[i].code) == TI_BPF_LSH || TI_BPF_OP(li[i].code) == TI_BPF_RSH))
			comparable = false; /* shifts past 31: undefined in libpcap's C */
	}
	if (ti_expr_check("fuzz", &p, err, sizeof(err))) {
		if (!memchr(err, 0, sizeof(err)))
			abort();
		return 0;
	}
	{
		/* the packet in a buffer of its own size, for ASan */
		size_t plen = size - 1 - n * 8;
		uint8_t *pkt = malloc(plen ? plen : 1);
		uint32_t mine, theirs;

		if (!pkt)
			return 0;
		memcpy(pkt, data + 1 + n * 8, plen);
		if (plen > TI_CBPF_WINDOW)
			plen = TI_CBPF_WINDOW;
		mine = ti_cbpf_run(&p, pkt, plen, plen + 7);
		if (comparable && bpf_validate(li, (int)n)) {
			theirs = bpf_filter(li, pkt, (u_int)plen + 7, (u_int)plen);
			if (mine != theirs) {
				fprintf(stderr, "fuzz_cbpf: verdict differs: tcpinspect %u, libpcap %u\n", mine,
					theirs);
				abort();
			}
		}
		free(pkt);
	}
	return 0;
}
