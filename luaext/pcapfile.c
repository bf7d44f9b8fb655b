// SPDX-License-Identifier: GPL-2.0-only
/* pcapfile.c: reading and writing pcap files with libpcap (no Lua).
 * See pcapfile.h for what is read and what is written.
 */
#define _GNU_SOURCE /* fopencookie */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pcap/pcap.h>
#include "pcapfile.h"

#ifndef DLT_LINUX_SLL2
#define DLT_LINUX_SLL2 276
#endif
#ifndef DLT_IPV4
#define DLT_IPV4 228
#endif
#ifndef DLT_IPV6
#define DLT_IPV6 229
#endif

#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define PACKET_HOST_ 0
#define ARPHRD_NONE_ 0xFFFE

static uint32_t be16(const uint8_t *p)
{
	return ((uint32_t)p[0] << 8) | p[1];
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

const char *ti_pcap_linktype_name(int linktype)
{
	const char *n = pcap_datalink_val_to_name(linktype);

	return n ? n : "unknown";
}

static bool supported(int lt)
{
	return lt == DLT_EN10MB || lt == DLT_LINUX_SLL || lt == DLT_LINUX_SLL2 || lt == DLT_RAW || lt == DLT_IPV4 ||
	       lt == DLT_IPV6 || lt == DLT_NULL || lt == DLT_LOOP;
}

int ti_pcap_reader_open(struct ti_pcap_reader *r, const char *path, char *why, size_t whylen)
{
	char err[PCAP_ERRBUF_SIZE] = "";
	pcap_t *p;

	memset(r, 0, sizeof(*r));
	errno = 0;
	p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, err);
	if (!p) {
		int e = errno ? errno : EINVAL;

		/* libpcap's message names the file for system errors only */
		if (strstr(err, path))
			snprintf(why, whylen, "%s", err);
		else
			snprintf(why, whylen, "%s: %s", path, err);
		return -e;
	}
	r->linktype = pcap_datalink(p);
	if (!supported(r->linktype)) {
		snprintf(
			why, whylen,
			"%s: link type %s (%d) is not one tcpinspect reads (EN10MB, LINUX_SLL, LINUX_SLL2, RAW, IPV4, IPV6, NULL, LOOP)",
			path, ti_pcap_linktype_name(r->linktype), r->linktype);
		pcap_close(p);
		return -EPROTONOSUPPORT;
	}
	r->p = p;
	return 0;
}

/* Where the IP header starts in a frame of link type lt, and its family:
 * 1, or 2 for a frame that is not a received IP packet. */
static int link_layer(int lt, const uint8_t *d, uint32_t n, struct ti_pcap_frame *f)
{
	uint32_t proto, off;

	switch (lt) {
	case DLT_EN10MB:
		if (n < 14)
			return 2;
		off = 12;
		proto = be16(d + off);
		/* 802.1Q / 802.1ad tags: the IP stack receives what is inside */
		for (int i = 0; i < 2 && (proto == 0x8100 || proto == 0x88a8); i++) {
			off += 4;
			if (n < off + 2)
				return 2;
			proto = be16(d + off);
		}
		off += 2;
		break;
	case DLT_LINUX_SLL:
		if (n < 16 || be16(d) != PACKET_HOST_)
			return 2;
		proto = be16(d + 14);
		off = 16;
		break;
	case DLT_LINUX_SLL2:
		if (n < TI_SLL2_HLEN || d[10] != PACKET_HOST_)
			return 2;
		proto = be16(d);
		f->ifindex = be32(d + 4);
		off = TI_SLL2_HLEN;
		break;
	case DLT_NULL:
	case DLT_LOOP: {
		uint32_t fam;

		if (n < 4)
			return 2;
		/* NULL: the writer's byte order; LOOP: network order */
		fam = be32(d);
		if (lt == DLT_NULL && (fam & 0xffff) == 0)
			fam = (uint32_t)d[0] | ((uint32_t)d[1] << 8) | ((uint32_t)d[2] << 16) | ((uint32_t)d[3] << 24);
		if (fam == 2)
			proto = ETH_P_IP_;
		else if (fam == 10 || fam == 24 || fam == 28 || fam == 30) /* AF_INET6: Linux, the BSDs, macOS */
			proto = ETH_P_IPV6_;
		else
			return 2;
		off = 4;
		break;
	}
	case DLT_IPV4:
		proto = ETH_P_IP_;
		off = 0;
		break;
	case DLT_IPV6:
		proto = ETH_P_IPV6_;
		off = 0;
		break;
	default: /* DLT_RAW: the IP version says */
		if (n < 1)
			return 2;
		proto = (d[0] >> 4) == 4 ? ETH_P_IP_ : (d[0] >> 4) == 6 ? ETH_P_IPV6_ : 0;
		off = 0;
		break;
	}
	if (proto != ETH_P_IP_ && proto != ETH_P_IPV6_)
		return 2;
	f->ip_off = off;
	f->v4 = proto == ETH_P_IP_;
	return 1;
}

/* A frame's timestamp in ns since the epoch, saturating: nanosecond
 * precision (tv_usec holds nanoseconds), a time before the epoch reads 0
 * and one past 2^64 - 1 ns (a pcapng's 64-bit count in a finer unit, say)
 * reads UINT64_MAX, never a wrapped value. */
uint64_t ti_pcap_ts_ns(int64_t sec, int64_t nsec)
{
	uint64_t s, ns;

	if (sec < 0 || (sec == 0 && nsec < 0))
		return 0;
	if ((uint64_t)sec > UINT64_MAX / 1000000000u)
		return UINT64_MAX;
	s = (uint64_t)sec * 1000000000u;
	if (nsec < 0) {
		uint64_t borrow = (uint64_t) - (nsec + 1) + 1;

		return borrow > s ? 0 : s - borrow;
	}
	ns = (uint64_t)nsec;
	return ns > UINT64_MAX - s ? UINT64_MAX : s + ns;
}

int ti_pcap_reader_next(struct ti_pcap_reader *r, struct ti_pcap_frame *f, char *why, size_t whylen)
{
	struct pcap_pkthdr *h;
	const u_char *d;
	int rc;

	if (!r->p)
		return 0;
	rc = pcap_next_ex(r->p, &h, &d);
	if (rc == PCAP_ERROR_BREAK) /* the end of the file */
		return 0;
	if (rc != 1) {
		snprintf(why, whylen, "reading frame %llu: %s", (unsigned long long)r->frames + 1, pcap_geterr(r->p));
		return -EIO;
	}
	r->frames++;
	memset(f, 0, sizeof(*f));
	/* a classic pcap's seconds are an unsigned 32-bit field (to 2106, as
	 * the format and tshark read it) that libpcap reads as signed; a
	 * pcapng's 64-bit count never comes out negative */
	f->ts_ns = ti_pcap_ts_ns(h->ts.tv_sec < 0 && h->ts.tv_sec >= INT32_MIN ? (int64_t)h->ts.tv_sec + 0x100000000LL
									       : (int64_t)h->ts.tv_sec,
				 h->ts.tv_usec);
	f->data = d;
	f->caplen = h->caplen;
	f->wirelen = h->len < h->caplen ? h->caplen : h->len;
	return link_layer(r->linktype, d, h->caplen, f);
}

void ti_pcap_reader_close(struct ti_pcap_reader *r)
{
	if (r->p)
		pcap_close(r->p);
	r->p = NULL;
}

/* ---- writing ---------------------------------------------------------------------- */

/* A record's header in the file: 32-bit seconds and fraction, caplen, len. */
struct pcap_sf_pkthdr_ {
	uint32_t sec, frac, caplen, len;
};

/* Records whose last byte is in the file leave the pending ring. */
static void writer_confirm(struct ti_pcap_writer *w)
{
	if (w->good_end < 24 && w->disk >= 24)
		w->good_end = 24; /* the file's header */
	while (w->npending && w->ends[w->head] <= w->disk) {
		w->good_end = w->ends[w->head];
		w->head = (w->head + 1) % TI_PCAP_PENDING;
		w->npending--;
		w->in_file++;
	}
}

/* stdio's write: all of it, or the first error kept in w->err. */
static ssize_t writer_cookie_write(void *cookie, const char *buf, size_t n)
{
	struct ti_pcap_writer *w = cookie;
	size_t done = 0;

	if (w->err) {
		errno = w->err;
		return -1;
	}
	while (done < n) {
		ssize_t r = write(w->fd, buf + done, n - done);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			w->err = r < 0 ? errno : EIO;
			break;
		}
		done += (size_t)r;
		w->disk += (uint64_t)r;
	}
	writer_confirm(w);
	if (w->err) {
		errno = w->err;
		return done ? (ssize_t)done : -1;
	}
	return (ssize_t)done;
}

static int writer_cookie_close(void *cookie)
{
	struct ti_pcap_writer *w = cookie;

	if (w->own_fd && close(w->fd) && !w->err) {
		w->err = errno;
		return -1;
	}
	return 0;
}

static const cookie_io_functions_t writer_cookie = {
	.write = writer_cookie_write,
	.close = writer_cookie_close,
};

int ti_pcap_writer_open(struct ti_pcap_writer *w, const char *path, uint32_t snaplen, int64_t rt_offset_ns, char *why,
			size_t whylen)
{
	pcap_t *p;
	pcap_dumper_t *d;
	struct stat st;
	FILE *f;
	int e;

	memset(w, 0, sizeof(*w));
	snprintf(w->path, sizeof(w->path), "%s", path);
	if (!strcmp(path, "-")) {
		w->fd = 1;
	} else {
		/* never through a symbolic link (root writing into a directory
		 * others can write: /tmp), new files for the owner only */
		w->fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
		if (w->fd < 0) {
			e = errno;
			/* ELOOP; EACCES where the kernel refuses first (a link of
			 * another user's in a sticky directory, as /tmp) */
			if ((e == ELOOP || e == EACCES) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
				snprintf(why, whylen,
					 "%s: a symbolic link: tcpinspect does not write through one "
					 "(a link planted in a directory others can write would redirect the capture); "
					 "give the path of the file itself",
					 path);
			else
				snprintf(why, whylen, "%s: %s", path, strerror(e));
			return -e;
		}
		w->own_fd = true;
		if (fstat(w->fd, &st) == 0 && S_ISREG(st.st_mode)) {
			w->regular = true;
			if (ftruncate(w->fd, 0)) {
				e = errno;
				snprintf(why, whylen, "%s: truncating it failed: %s", path, strerror(e));
				close(w->fd);
				return -e;
			}
		}
	}
	p = pcap_open_dead_with_tstamp_precision(DLT_LINUX_SLL2, (int)(snaplen + TI_SLL2_HLEN),
						 PCAP_TSTAMP_PRECISION_NANO);
	f = p ? fopencookie(w, "w", writer_cookie) : NULL;
	if (!f) {
		snprintf(why, whylen, "%s: out of memory", path);
		if (p)
			pcap_close(p);
		if (w->own_fd)
			close(w->fd);
		return -ENOMEM;
	}
	d = pcap_dump_fopen(p, f);
	if (!d) {
		snprintf(why, whylen, "%s: %s", path, pcap_geterr(p));
		fclose(f);
		pcap_close(p);
		return -EIO;
	}
	w->p = p;
	w->d = d;
	w->f = f;
	w->bytes = 24; /* the file's header, in f's buffer */
	w->rt_offset_ns = rt_offset_ns;
	return 0;
}

void ti_pcap_writer_write(struct ti_pcap_writer *w, const struct ti_event *e, const uint8_t *bytes, uint32_t caplen,
			  uint32_t wirelen)
{
	uint8_t buf[TI_SLL2_HLEN + 65536];
	uint16_t proto = e->family == 4 ? ETH_P_IP_ : ETH_P_IPV6_;
	struct pcap_pkthdr h;
	int64_t ts = (int64_t)e->ts + w->rt_offset_ns;

	if (!w->d || w->err)
		return;
	if (w->npending == TI_PCAP_PENDING && fflush(w->f))
		return; /* the ring is full: learn what reached the file first */
	if (caplen > sizeof(buf) - TI_SLL2_HLEN)
		caplen = sizeof(buf) - TI_SLL2_HLEN;
	memset(buf, 0, TI_SLL2_HLEN);
	buf[0] = proto >> 8, buf[1] = proto & 0xff;
	buf[4] = e->ifindex >> 24, buf[5] = (e->ifindex >> 16) & 0xff;
	buf[6] = (e->ifindex >> 8) & 0xff, buf[7] = e->ifindex & 0xff;
	buf[8] = ARPHRD_NONE_ >> 8, buf[9] = ARPHRD_NONE_ & 0xff;
	buf[10] = PACKET_HOST_;
	memcpy(buf + TI_SLL2_HLEN, bytes, caplen);
	if (ts < 0)
		ts = 0;
	h.ts.tv_sec = ts / 1000000000;
	h.ts.tv_usec = ts % 1000000000; /* nanoseconds: the file's precision */
	h.caplen = TI_SLL2_HLEN + caplen;
	/* the original length is 32-bit (BIG TCP, jumbograms): saturate */
	if (wirelen < caplen)
		wirelen = caplen;
	h.len = wirelen > UINT32_MAX - TI_SLL2_HLEN ? UINT32_MAX : TI_SLL2_HLEN + wirelen;
	pcap_dump((u_char *)w->d, &h, buf);
	w->written++;
	w->unflushed++;
	w->bytes += sizeof(struct pcap_sf_pkthdr_) + h.caplen;
	w->ends[(w->head + w->npending++) % TI_PCAP_PENDING] = w->bytes;
	writer_confirm(w);
}

int ti_pcap_writer_flush(struct ti_pcap_writer *w)
{
	if (!w->d)
		return 0;
	if (!w->err && w->unflushed) {
		w->unflushed = 0;
		if (fflush(w->f) && !w->err)
			w->err = errno ? errno : EIO;
	}
	return -w->err;
}

int ti_pcap_writer_close(struct ti_pcap_writer *w)
{
	int err;

	if (w->d) {
		if (!w->err && fflush(w->f) && !w->err)
			w->err = errno ? errno : EIO;
		/* after an error: the file ends with its last whole record */
		if (w->err && w->regular && w->disk > w->good_end)
			(void)!ftruncate(w->fd, (off_t)w->good_end);
		pcap_dump_close(w->d); /* fclose: the cookie's close(2) */
	}
	if (w->p)
		pcap_close(w->p);
	w->d = w->p = w->f = NULL;
	err = -w->err;
	return err;
}

void ti_pcap_writer_why(const struct ti_pcap_writer *w, int err, char *why, size_t whylen)
{
	snprintf(why, whylen, "writing %s failed: %s; %llu packets written to it", w->path, strerror(-err),
		 (unsigned long long)w->in_file);
}
