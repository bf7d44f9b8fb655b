/* SPDX-License-Identifier: GPL-2.0-only */
/* ti_cbpf.h: a small classic-BPF interpreter, plain C compiled for both
 * targets: the BPF program runs a filter expression's instructions with it
 * (one instruction per bpf_loop iteration, bpf/tcpinspect.bpf.c), and user
 * space (a replayed capture, the specs) runs the very same code.
 *
 * The program is what libpcap's pcap_compile() makes of a tcpdump
 * expression for LINKTYPE_RAW (luaext/expr.c): it reads a buffer that
 * starts at the IP header.  The semantics are those of libpcap's
 * bpf_filter(), which pcap_offline_filter() uses:
 *   - a load past the buffer (buflen bytes) ends the program with 0
 *     (reject), like the kernel's classic BPF;
 *   - BPF_LEN is the segment's wire length (from the IP header on);
 *   - division or modulo by a zero X ends it with 0;
 *   - a shift by 32 or more gives 0;
 *   - jumps go forward only, so a program of n instructions ends within n
 *     steps; a pc past the end (which luaext/expr.c never lets through)
 *     ends it with 0.
 * The verdict is the value returned: 0 rejects, anything else accepts.
 *
 * Bounded for the verifier: every instruction index is masked with
 * TI_CBPF_MAX_INSNS - 1 and every buffer index with TI_PKT_MAX - 1 after
 * the bounds check, so the buffer must hold TI_PKT_MAX + 4 bytes in BPF and
 * buflen must not exceed TI_PKT_MAX (ti_cbpf_run clamps it).  Values are
 * carried in 64-bit variables (bpf/ti_rules.h, "Stack slots") and
 * truncated to 32 bits where classic BPF does.
 */
#ifndef TI_CBPF_H
#define TI_CBPF_H

#include "tcpinspect.h"

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* keep v a value in a register: the compiler may not turn it back into a
 * load through a computed pointer */
#define TI_CBPF_OPAQUE(v) __asm__ volatile("" : "+r"(v))

/* Classic BPF's encoding (as in <linux/filter.h>, <pcap/bpf.h>) */
#define TI_BPF_CLASS(c) ((c)&0x07)
#define TI_BPF_LD 0x00
#define TI_BPF_LDX 0x01
#define TI_BPF_ST 0x02
#define TI_BPF_STX 0x03
#define TI_BPF_ALU 0x04
#define TI_BPF_JMP 0x05
#define TI_BPF_RET 0x06
#define TI_BPF_MISC 0x07
#define TI_BPF_SIZE(c) ((c)&0x18)
#define TI_BPF_W 0x00
#define TI_BPF_H 0x08
#define TI_BPF_B 0x10
#define TI_BPF_MODE(c) ((c)&0xe0)
#define TI_BPF_IMM 0x00
#define TI_BPF_ABS 0x20
#define TI_BPF_IND 0x40
#define TI_BPF_MEM 0x60
#define TI_BPF_LEN 0x80
#define TI_BPF_MSH 0xa0
#define TI_BPF_OP(c) ((c)&0xf0)
#define TI_BPF_ADD 0x00
#define TI_BPF_SUB 0x10
#define TI_BPF_MUL 0x20
#define TI_BPF_DIV 0x30
#define TI_BPF_OR 0x40
#define TI_BPF_AND 0x50
#define TI_BPF_LSH 0x60
#define TI_BPF_RSH 0x70
#define TI_BPF_NEG 0x80
#define TI_BPF_MOD 0x90
#define TI_BPF_XOR 0xa0
#define TI_BPF_JA 0x00
#define TI_BPF_JEQ 0x10
#define TI_BPF_JGT 0x20
#define TI_BPF_JGE 0x30
#define TI_BPF_JSET 0x40
#define TI_BPF_SRC(c) ((c)&0x08)
#define TI_BPF_K 0x00
#define TI_BPF_X 0x08
#define TI_BPF_RVAL(c) ((c)&0x18)
#define TI_BPF_A 0x10
#define TI_BPF_MISCOP(c) ((c)&0xf8)
#define TI_BPF_TAX 0x00
#define TI_BPF_TXA 0x80

/* The interpreter's registers and scratch memory, and where it is. */
struct ti_cbpf_state {
	__u32 a;
	__u32 x;
	__u32 pc;
	__u32 ret;   /* the verdict, once done */
	__u32 m[16]; /* BPF_MEMWORDS */
};

/* Load size bytes (1, 2 or 4, big-endian) at off: 0, or -1 when they are
 * not all in the buffer. */
static __always_inline int ti_cbpf_load(const __u8 *pkt, __u64 buflen, __u64 off, __u64 size, __u32 *out)
{
	__u64 i;

	if (off + size > buflen)
		return -1;
	i = off & (TI_PKT_MAX - 1);
	if (size == 1)
		*out = pkt[i];
	else if (size == 2)
		*out = ((__u32)pkt[i] << 8) | pkt[i + 1];
	else
		*out = ((__u32)pkt[i] << 24) | ((__u32)pkt[i + 1] << 16) | ((__u32)pkt[i + 2] << 8) | pkt[i + 3];
	return 0;
}

/* Execute the instruction in at st->pc.  Returns 0 to go on, 1 when the
 * program has ended (st->ret holds its verdict). */
static __always_inline int ti_cbpf_step(struct ti_cbpf_state *st, const struct ti_cbpf_insn *in, const __u8 *pkt,
					__u64 buflen, __u64 wirelen)
{
	__u64 code = in->code, k = in->k, jt = in->jt, jf = in->jf, a = st->a, x = st->x, v, size;
	__u32 w = 0;

	/* the jump offsets are read here, both of them, as values: a
	 * `v ? in->jt : in->jf` late in the switch becomes a pointer chosen
	 * between two paths, which the verifier refuses without CAP_PERFMON
	 * ("pointer arithmetic with it prohibited for !root") */
	TI_CBPF_OPAQUE(jt);
	TI_CBPF_OPAQUE(jf);

	st->pc++;
	switch (TI_BPF_CLASS(code)) {
	case TI_BPF_RET: st->ret = TI_BPF_RVAL(code) == TI_BPF_A ? (__u32)a : (__u32)k; return 1;
	case TI_BPF_LD:
	case TI_BPF_LDX:
		size = TI_BPF_SIZE(code) == TI_BPF_B ? 1 : TI_BPF_SIZE(code) == TI_BPF_H ? 2 : 4;
		switch (TI_BPF_MODE(code)) {
		case TI_BPF_IMM: v = k; break;
		case TI_BPF_LEN: v = wirelen; break;
		case TI_BPF_MEM: v = st->m[k & 15]; break;
		case TI_BPF_ABS:
			if (ti_cbpf_load(pkt, buflen, k, size, &w))
				goto reject;
			v = w;
			break;
		case TI_BPF_IND:
			if (ti_cbpf_load(pkt, buflen, x + k, size, &w))
				goto reject;
			v = w;
			break;
		case TI_BPF_MSH:
			if (ti_cbpf_load(pkt, buflen, k, 1, &w))
				goto reject;
			v = (w & 0xf) << 2;
			break;
		default: goto reject;
		}
		if (TI_BPF_CLASS(code) == TI_BPF_LD)
			st->a = (__u32)v;
		else
			st->x = (__u32)v;
		return 0;
	case TI_BPF_ST: st->m[k & 15] = (__u32)a; return 0;
	case TI_BPF_STX: st->m[k & 15] = (__u32)x; return 0;
	case TI_BPF_ALU:
		v = TI_BPF_SRC(code) == TI_BPF_X ? x : k;
		switch (TI_BPF_OP(code)) {
		case TI_BPF_ADD: a += v; break;
		case TI_BPF_SUB: a -= v; break;
		case TI_BPF_MUL: a *= v; break;
		case TI_BPF_DIV:
			if (!v)
				goto reject;
			a /= v;
			break;
		case TI_BPF_MOD:
			if (!v)
				goto reject;
			a %= v;
			break;
		case TI_BPF_AND: a &= v; break;
		case TI_BPF_OR: a |= v; break;
		case TI_BPF_XOR: a ^= v; break;
		case TI_BPF_LSH: a = v < 32 ? a << v : 0; break;
		case TI_BPF_RSH: a = v < 32 ? a >> v : 0; break;
		case TI_BPF_NEG: a = 0 - a; break;
		default: goto reject;
		}
		st->a = (__u32)a;
		return 0;
	case TI_BPF_JMP:
		if (TI_BPF_OP(code) == TI_BPF_JA) {
			st->pc += (__u32)k;
			return 0;
		}
		v = TI_BPF_SRC(code) == TI_BPF_X ? x : k;
		v = (__u32)v;
		switch (TI_BPF_OP(code)) {
		case TI_BPF_JEQ: v = a == v; break;
		case TI_BPF_JGT: v = a > v; break;
		case TI_BPF_JGE: v = a >= v; break;
		case TI_BPF_JSET: v = (a & v) != 0; break;
		default: goto reject;
		}
		st->pc += v ? jt : jf;
		return 0;
	case TI_BPF_MISC:
		if (TI_BPF_MISCOP(code) == TI_BPF_TAX)
			st->x = (__u32)a;
		else
			st->a = (__u32)x;
		return 0;
	}
reject:
	st->ret = 0;
	return 1;
}

/* Run a whole program on buf (buflen bytes from the IP header on; wirelen:
 * the segment's length).  The verdict: 0 rejects.  User space only; the
 * BPF program steps through it with bpf_loop. */
#ifndef __VMLINUX_H__
static inline __u32 ti_cbpf_run(const struct ti_cbpf_prog *p, const __u8 *buf, __u64 buflen, __u64 wirelen)
{
	struct ti_cbpf_state st = { 0 };

	if (buflen > TI_PKT_MAX)
		buflen = TI_PKT_MAX;
	for (__u32 n = 0; n < p->len && n < TI_CBPF_MAX_INSNS; n++) {
		if (st.pc >= p->len)
			return 0;
		if (ti_cbpf_step(&st, &p->insns[st.pc & (TI_CBPF_MAX_INSNS - 1)], buf, buflen, wirelen))
			return st.ret;
	}
	return 0;
}
#endif

#endif /* TI_CBPF_H */
