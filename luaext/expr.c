// SPDX-License-Identifier: GPL-2.0-only
/* expr.c: tcpdump filter expressions -> classic BPF for bpf/ti_cbpf.h.
 *
 * libpcap compiles (pcap_compile on a dead handle of LINKTYPE_RAW: the
 * program reads a buffer that starts at the IP header, as the kernel's
 * copy does); this file then checks that the program is one the BPF side
 * can run: at most TI_CBPF_MAX_INSNS instructions, known opcodes, jumps
 * inside the program, and no load that can reach past the first
 * TI_CBPF_WINDOW bytes of the segment (what a hook copies for a filter).
 * Indirect loads ([x + k]) are bounded through a forward pass that carries
 * the largest value A, X and each memory word can hold at each instruction
 * (X from 4*([k]&0xf) is at most 60, and so on): an indirect load whose
 * X has no bound is refused, so every load of an accepted program stays in
 * the window and its verdict is libpcap's on the same bytes, whatever the
 * snaplen and live or replayed.  The interpreter still checks every load at
 * run time (a load past the end of a shorter segment rejects, as libpcap's).
 *
 * Plain C, no Lua: options.c (filter.expr) and the replay session use it.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <pcap/pcap.h>
#include "expr.h"

#define UNBOUNDED 0xffffffffULL

struct absval { /* the largest value each register can hold, or UNBOUNDED */
	uint64_t a, x, m[16];
	bool reached;
};

static uint64_t sat(uint64_t v)
{
	return v > UNBOUNDED ? UNBOUNDED : v;
}

/* the smallest 2^n - 1 >= v: a bound for v | w and v ^ w */
static uint64_t ones(uint64_t v)
{
	uint64_t r = 0;

	while (r < v)
		r = (r << 1) | 1;
	return r;
}

static void merge(struct absval *to, const struct absval *from)
{
	if (!to->reached) {
		*to = *from;
		return;
	}
	if (from->a > to->a)
		to->a = from->a;
	if (from->x > to->x)
		to->x = from->x;
	for (int i = 0; i < 16; i++)
		if (from->m[i] > to->m[i])
			to->m[i] = from->m[i];
}

static uint64_t alu_bound(unsigned op, uint64_t a, uint64_t v, bool is_k)
{
	switch (op) {
	case TI_BPF_ADD: return sat(a + v);
	case TI_BPF_MUL: return (a && v > UNBOUNDED / a) ? UNBOUNDED : sat(a * v);
	case TI_BPF_DIV: return a;
	case TI_BPF_MOD: return is_k && v ? v - 1 : a;
	case TI_BPF_AND: return a < v ? a : v;
	case TI_BPF_OR:
	case TI_BPF_XOR: return ones(a > v ? a : v);
	case TI_BPF_LSH: return is_k && v < 32 ? sat(a << v) : UNBOUNDED;
	case TI_BPF_RSH: return is_k ? (v < 32 ? a >> v : 0) : a;
	default: return UNBOUNDED; /* SUB, NEG: may wrap around */
	}
}

/* The bytes a load of size at offset base + k reaches, checked against the
 * window.  0, or -1 with err filled.
 *
 * Every load must stay inside the window whatever the segment holds: the
 * interpreter has the first TI_CBPF_WINDOW bytes (fewer for a shorter
 * segment), libpcap the whole segment, so a load that could reach past the
 * window would give a verdict of its own (a reject where libpcap reads a
 * byte), and one that depended on how many bytes a hook happened to copy
 * (the snaplen, live or replay).  An indirect load whose X has no bound
 * (an offset read from the segment, `tcp[tcp[4:4]]`, or computed with a
 * subtraction) is therefore refused, not "checked at run time". */
static int check_load(const char *expr, uint64_t base, uint32_t k, unsigned size, int pc, char *err, size_t errlen)
{
	uint64_t end = base + k + size;

	if (base >= UNBOUNDED) {
		snprintf(err, errlen,
			 "'%s': reads at an offset known only at run time (instruction %d: "
			 "the index can be any 32-bit value); a filter expression sees only the "
			 "first %d bytes from the IP header on, so bound the index (e.g. "
			 "tcp[tcp[4] & 0x7f])",
			 expr, pc, TI_CBPF_WINDOW);
		return -1;
	}
	if (end <= TI_CBPF_WINDOW)
		return 0;
	snprintf(err, errlen,
		 "'%s': reads up to byte %llu of the segment (instruction %d); a filter "
		 "expression sees only the first %d bytes from the IP header on",
		 expr, (unsigned long long)end, pc, TI_CBPF_WINDOW);
	return -1;
}

/* Exactly classic BPF's instruction set (as the kernel's and libpcap's
 * interpreters know it): the interpreter dispatches on fields, so a code
 * with stray bits must not reach it. */
static bool valid_code(unsigned c)
{
	switch (c) {
	case TI_BPF_LD | TI_BPF_W | TI_BPF_ABS:
	case TI_BPF_LD | TI_BPF_H | TI_BPF_ABS:
	case TI_BPF_LD | TI_BPF_B | TI_BPF_ABS:
	case TI_BPF_LD | TI_BPF_W | TI_BPF_IND:
	case TI_BPF_LD | TI_BPF_H | TI_BPF_IND:
	case TI_BPF_LD | TI_BPF_B | TI_BPF_IND:
	case TI_BPF_LD | TI_BPF_W | TI_BPF_LEN:
	case TI_BPF_LD | TI_BPF_IMM:
	case TI_BPF_LD | TI_BPF_MEM:
	case TI_BPF_LDX | TI_BPF_W | TI_BPF_IMM:
	case TI_BPF_LDX | TI_BPF_W | TI_BPF_MEM:
	case TI_BPF_LDX | TI_BPF_W | TI_BPF_LEN:
	case TI_BPF_LDX | TI_BPF_B | TI_BPF_MSH:
	case TI_BPF_ST:
	case TI_BPF_STX:
	case TI_BPF_ALU | TI_BPF_NEG:
	case TI_BPF_JMP | TI_BPF_JA:
	case TI_BPF_RET | TI_BPF_K:
	case TI_BPF_RET | TI_BPF_A:
	case TI_BPF_MISC | TI_BPF_TAX:
	case TI_BPF_MISC | TI_BPF_TXA: return true;
	}
	if (c > 0xff)
		return false;
	if (TI_BPF_CLASS(c) == TI_BPF_ALU)
		return (c & ~(0xf0u | TI_BPF_X)) == TI_BPF_ALU && TI_BPF_OP(c) <= TI_BPF_XOR &&
		       TI_BPF_OP(c) != TI_BPF_NEG;
	if (TI_BPF_CLASS(c) == TI_BPF_JMP)
		return (c & ~(0xf0u | TI_BPF_X)) == TI_BPF_JMP && TI_BPF_OP(c) >= TI_BPF_JEQ &&
		       TI_BPF_OP(c) <= TI_BPF_JSET;
	return false;
}

int ti_expr_check(const char *expr, const struct ti_cbpf_prog *p, char *err, size_t errlen)
{
	struct absval st[TI_CBPF_MAX_INSNS];
	uint32_t n = p->len;

	if (n == 0 || n > TI_CBPF_MAX_INSNS) {
		snprintf(err, errlen, "'%s': compiles to %u instructions; at most %d fit", expr, n, TI_CBPF_MAX_INSNS);
		return -1;
	}
	memset(st, 0, sizeof(st));
	st[0].reached = true;
	for (uint32_t pc = 0; pc < n; pc++) {
		const struct ti_cbpf_insn *in = &p->insns[pc];
		struct absval s = st[pc];
		unsigned c = in->code, size;

		if (!s.reached)
			continue;
		if (!valid_code(c))
			goto bad;
		switch (TI_BPF_CLASS(c)) {
		case TI_BPF_RET: continue;
		case TI_BPF_LD:
		case TI_BPF_LDX: {
			uint64_t v;

			size = TI_BPF_SIZE(c) == TI_BPF_B ? 1 : TI_BPF_SIZE(c) == TI_BPF_H ? 2 : 4;
			if (TI_BPF_SIZE(c) == 0x18)
				goto bad;
			switch (TI_BPF_MODE(c)) {
			case TI_BPF_IMM: v = in->k; break;
			case TI_BPF_LEN: v = UNBOUNDED; break; /* a length: 32 bits (BIG TCP, jumbograms) */
			case TI_BPF_MEM:
				if (in->k >= 16)
					goto bad;
				v = s.m[in->k];
				break;
			case TI_BPF_ABS:
			case TI_BPF_IND:
				if (TI_BPF_CLASS(c) == TI_BPF_LDX)
					goto bad;
				if (check_load(expr, TI_BPF_MODE(c) == TI_BPF_IND ? s.x : 0, in->k, size, (int)pc, err,
					       errlen))
					return -1;
				v = size == 1 ? 0xff : size == 2 ? 0xffff : UNBOUNDED;
				break;
			case TI_BPF_MSH:
				if (TI_BPF_CLASS(c) != TI_BPF_LDX)
					goto bad;
				if (check_load(expr, 0, in->k, 1, (int)pc, err, errlen))
					return -1;
				v = 60;
				break;
			default: goto bad;
			}
			if (TI_BPF_CLASS(c) == TI_BPF_LD)
				s.a = v;
			else
				s.x = v;
			break;
		}
		case TI_BPF_ST:
		case TI_BPF_STX:
			if (in->k >= 16)
				goto bad;
			s.m[in->k] = TI_BPF_CLASS(c) == TI_BPF_ST ? s.a : s.x;
			break;
		case TI_BPF_ALU: {
			bool is_k = TI_BPF_SRC(c) == TI_BPF_K;

			if (TI_BPF_OP(c) > TI_BPF_XOR)
				goto bad;
			s.a = TI_BPF_OP(c) == TI_BPF_NEG ? UNBOUNDED
							 : alu_bound(TI_BPF_OP(c), s.a, is_k ? in->k : s.x, is_k);
			break;
		}
		case TI_BPF_JMP:
			if (TI_BPF_OP(c) == TI_BPF_JA) {
				if ((uint64_t)pc + 1 + in->k >= n)
					goto bad;
				merge(&st[pc + 1 + in->k], &s);
				continue;
			}
			if (TI_BPF_OP(c) > TI_BPF_JSET || pc + 1 + in->jt >= n || pc + 1 + in->jf >= n)
				goto bad;
			merge(&st[pc + 1 + in->jt], &s);
			merge(&st[pc + 1 + in->jf], &s);
			continue;
		case TI_BPF_MISC:
			if (TI_BPF_MISCOP(c) == TI_BPF_TAX)
				s.x = s.a;
			else if (TI_BPF_MISCOP(c) == TI_BPF_TXA)
				s.a = s.x;
			else
				goto bad;
			break;
		}
		if (pc + 1 >= n)
			goto bad; /* falls off the end */
		merge(&st[pc + 1], &s);
		continue;
bad:
		snprintf(err, errlen, "'%s': instruction %u (code 0x%02x) is not one tcpinspect can run", expr, pc, c);
		return -1;
	}
	return 0;
}

/* "ether[...]" or "link[...]": libpcap compiles them for LINKTYPE_RAW as
 * bytes of the IP header (there is no link-layer header), which is never
 * what was meant.  The start of such a word, or NULL. */
static const char *link_bytes(const char *expr)
{
	static const char *const words[] = { "ether", "link" };

	for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++) {
		size_t n = strlen(words[w]);

		for (const char *s = strstr(expr, words[w]); s; s = strstr(s + 1, words[w])) {
			const char *t = s + n;

			if (s > expr && (isalnum((unsigned char)s[-1]) || s[-1] == '_' || s[-1] == '\\'))
				continue;
			while (*t == ' ' || *t == '\t')
				t++;
			if (*t == '[')
				return s;
		}
	}
	return NULL;
}

int ti_expr_compile(const char *expr, struct ti_cbpf_prog *out, char *err, size_t errlen)
{
	const char *lb;

	struct bpf_program fp;
	pcap_t *p;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (strspn(expr, " \t\r\n") == strlen(expr))
		return 0; /* empty: no expression, everything matches */
	if ((lb = link_bytes(expr))) {
		snprintf(err, errlen,
			 "'%s': %.*s[...] reads a link-layer header, and tcpinspect sees "
			 "segments from their IP header on (no link layer); use ip[...], ip6[...] or tcp[...]",
			 expr, strncmp(lb, "ether", 5) ? 4 : 5, lb);
		return -1;
	}
	p = pcap_open_dead(DLT_RAW, TI_PKT_MAX);
	if (!p) {
		snprintf(err, errlen, "'%s': libpcap could not open a dead handle", expr);
		return -1;
	}
	if (pcap_compile(p, &fp, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
		snprintf(err, errlen, "'%s': %s", expr, pcap_geterr(p));
		pcap_close(p);
		return -1;
	}
	if (fp.bf_len > TI_CBPF_MAX_INSNS) {
		snprintf(err, errlen, "'%s': compiles to %u instructions; at most %d fit", expr, fp.bf_len,
			 TI_CBPF_MAX_INSNS);
		goto out;
	}
	out->len = fp.bf_len;
	for (unsigned i = 0; i < fp.bf_len; i++) {
		out->insns[i].code = fp.bf_insns[i].code;
		out->insns[i].jt = fp.bf_insns[i].jt;
		out->insns[i].jf = fp.bf_insns[i].jf;
		out->insns[i].k = fp.bf_insns[i].k;
	}
	rc = ti_expr_check(expr, out, err, errlen);
	if (rc)
		memset(out, 0, sizeof(*out));
out:
	pcap_freecode(&fp);
	pcap_close(p);
	return rc ? -1 : 0;
}

/* The last expression compiled for ti_expr_offline: the specs ask for one
 * expression on thousands of segments in a row.  Not thread-safe: test use. */
static struct {
	char expr[1024];
	struct bpf_program fp;
	bool valid;
} offline;

int ti_expr_offline(const char *expr, const uint8_t *buf, uint32_t caplen, uint32_t wirelen, char *err, size_t errlen)
{
	struct pcap_pkthdr h = { .caplen = caplen, .len = wirelen };
	pcap_t *p;

	if (!offline.valid || strcmp(offline.expr, expr)) {
		if (offline.valid)
			pcap_freecode(&offline.fp);
		offline.valid = false;
		if (!(p = pcap_open_dead(DLT_RAW, 262144))) {
			snprintf(err, errlen, "'%s': libpcap could not open a dead handle", expr);
			return -1;
		}
		if (pcap_compile(p, &offline.fp, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
			snprintf(err, errlen, "'%s': %s", expr, pcap_geterr(p));
			pcap_close(p);
			return -1;
		}
		pcap_close(p);
		snprintf(offline.expr, sizeof(offline.expr), "%s", expr);
		offline.valid = strlen(expr) < sizeof(offline.expr);
		if (!offline.valid) {
			int v = pcap_offline_filter(&offline.fp, &h, buf) != 0;

			pcap_freecode(&offline.fp);
			return v;
		}
	}
	return pcap_offline_filter(&offline.fp, &h, buf) != 0;
}
