// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * libFuzzer harness for kmod/include/multistack_classify.h, the frame
 * classifier shared by multistack.ko, the cffi extension and this test.
 *
 * Input: byte 0 = flags (bit 0 -> MS_CLS_F_VLAN), byte 1 = how many bytes
 * are "available" for ms_classify_partial (scaled), rest = the frame.
 * Besides the sanitizers, it aborts when an invariant breaks:
 *   - a verdict is one of the documented codes;
 *   - on MS_CLS_OK every offset/length lies inside the frame and the
 *     protocol/family are TCP/UDP over IPv4/IPv6;
 *   - the partial classifier agrees with the full one unless it says
 *     MS_CLS_HDR_BEYOND, and never says that when everything is available.
 * The same for the ICMP error classifier (ms_classify_icmp), and:
 *   - on MS_CLS_OK the ICMP header and the quoted IP header plus 8 bytes
 *     lie inside the frame, the reported tuple is the one at those offsets,
 *     the quoted source is the outer destination, and the type is an error;
 *   - no frame is MS_CLS_OK to both classifiers; a frame ms_classify calls
 *     anything but MS_CLS_NOT_TCPUDP keeps that verdict (MS_CLS_OK turns
 *     into MS_CLS_NOT_ICMP_ERR).
 * The frame is copied to a heap buffer of exactly its size so that ASan
 * catches any read past the end.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "multistack_classify.h"

/* A copy of the first `avail` bytes alone, so a partial view that reads
 * past them faults under the sanitizers; the caller frees it. */
static uint8_t *exact_view(const uint8_t *frame, size_t avail)
{
	uint8_t *head = malloc(avail ? avail : 1);

	if (!head)
		abort();
	memcpy(head, frame, avail);
	return head;
}

static int known_verdict(int v)
{
	return (v >= MS_CLS_OK && v <= MS_CLS_HDR_BEYOND) ||
	       (v >= MS_CLS_MALFORMED_MIN && v <= MS_CLS_LAST);
}

static int known_icmp_verdict(int v)
{
	return known_verdict(v) || v == MS_CLS_NOT_ICMP_ERR ||
	       v == MS_CLS_ICMP_NOT_OURS || v == MS_CLS_BAD_ICMP ||
	       v == MS_CLS_BAD_QUOTE;
}

static void check_icmp_ok(const struct ms_cls_icmp_result *r,
			  const uint8_t *f, uint32_t len)
{
	uint32_t q = r->quote_off, ihl, n = r->family == 2 ? 4 : 16;
	uint32_t outer_dst = r->l3_off + (r->family == 2 ? 16 : 24);

	if (r->family != 2 && r->family != 10)
		abort();
	if (r->proto != 6 && r->proto != 17)
		abort();
	if (r->l3_off != 14 && r->l3_off != 18)
		abort();
	if (r->icmp_off < r->l3_off + (r->family == 2 ? 20 : 40) ||
	    (uint64_t)r->icmp_off + r->icmp_len > len || q != r->icmp_off + 8)
		abort();
	if (r->family == 2 ? (f[r->icmp_off] != 3 && f[r->icmp_off] != 11 &&
			      f[r->icmp_off] != 12) :
			     (f[r->icmp_off] < 1 || f[r->icmp_off] > 4))
		abort();
	if (r->icmp_type != f[r->icmp_off] || r->icmp_code != f[r->icmp_off + 1])
		abort();
	ihl = r->family == 2 ? (uint32_t)(f[q] & 0xf) * 4 : 40;
	if (ihl < 20 || q + ihl + 8 > r->icmp_off + r->icmp_len)
		abort();
	if (memcmp(r->src_addr, f + q + (r->family == 2 ? 12 : 8), n) ||
	    memcmp(r->dst_addr, f + q + (r->family == 2 ? 16 : 24), n) ||
	    memcmp(r->src_addr, f + outer_dst, n))
		abort();
	if (r->src_port != ((f[q + ihl] << 8) | f[q + ihl + 1]) ||
	    r->dst_port != ((f[q + ihl + 2] << 8) | f[q + ihl + 3]))
		abort();
}

/* ms_classify_icmp on the same input as ms_classify (verdict v) */
static void fuzz_icmp(const uint8_t *frame, uint32_t len, uint32_t avail,
		      uint32_t flags, int v)
{
	struct ms_cls_icmp_result full, part;
	int iv, pv;

	iv = ms_classify_icmp(frame, len, flags, &full);
	if (!known_icmp_verdict(iv) || (uint32_t)iv != full.verdict)
		abort();
	if (iv == MS_CLS_HDR_BEYOND)
		abort();
	if (v == MS_CLS_OK && iv != MS_CLS_NOT_ICMP_ERR)
		abort();
	if (v != MS_CLS_OK && v != MS_CLS_NOT_TCPUDP && iv != v)
		abort();
	if (iv == MS_CLS_OK)
		check_icmp_ok(&full, frame, len);

	{
		uint8_t *head = exact_view(frame, avail);

		pv = ms_classify_icmp_partial(head, avail, len, flags, &part);
		free(head);
	}
	if (!known_icmp_verdict(pv))
		abort();
	if (pv != MS_CLS_HDR_BEYOND) {
		if (pv != iv)
			abort();
		if (pv == MS_CLS_OK && memcmp(&part, &full, sizeof(part)))
			abort();
	}
}

static void check_ok(const struct ms_cls_result *r, uint32_t len)
{
	uint32_t l4min = r->proto == 6 ? 20 : 8;

	if (r->family != 2 && r->family != 10)
		abort();
	if (r->proto != 6 && r->proto != 17)
		abort();
	if (r->l3_off != 14 && r->l3_off != 18)
		abort();
	if ((uint32_t)r->l3_off + r->l3_len > len)
		abort();
	if (r->l4_off < r->l3_off + (r->family == 2 ? 20 : 40))
		abort();
	if ((uint32_t)r->l4_off + r->l4_len != (uint32_t)r->l3_off + r->l3_len)
		abort();
	if (r->l4_len < l4min || (uint32_t)r->l4_off + l4min > len)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ms_cls_result full, part;
	uint32_t flags, len, avail;
	uint8_t *frame;
	int v, pv;

	if (size < 2 || size > 70000)
		return 0;
	flags = data[0] & 1;
	if (data[0] == 0xff)
		flags = 0x80;		/* exercise MS_CLS_BAD_FLAGS */
	len = (uint32_t)(size - 2);
	avail = (uint32_t)(((uint64_t)data[1] * (len + 1)) / 256);
	frame = malloc(len ? len : 1);
	if (!frame)
		return 0;
	memcpy(frame, data + 2, len);

	v = ms_classify(frame, len, flags, &full);
	if (!known_verdict(v) || (uint32_t)v != full.verdict)
		abort();
	if (v == MS_CLS_HDR_BEYOND)
		abort();
	if (v == MS_CLS_OK)
		check_ok(&full, len);

	/* the partial view reads only `avail` bytes: give it exactly those */
	{
		uint8_t *head = exact_view(frame, avail);

		pv = ms_classify_partial(head, avail, len, flags, &part);
		free(head);
	}
	if (!known_verdict(pv))
		abort();
	if (pv != MS_CLS_HDR_BEYOND) {
		if (pv != v)
			abort();
		if (pv == MS_CLS_OK && memcmp(&part, &full, sizeof(part)))
			abort();
	}
	fuzz_icmp(frame, len, avail, flags, v);
	free(frame);
	return 0;
}
