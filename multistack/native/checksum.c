/* Internet checksum (RFC 1071) with pseudo-headers for TCP/UDP. */
#include "checksum.h"

#include <string.h>

static uint32_t fold32(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint32_t)sum;
}

uint32_t ms_csum_partial(const uint8_t *data, size_t len, uint32_t initial)
{
	uint64_t sum = initial;
	size_t i = 0;

	/* 32-bit big-endian words; the 64-bit accumulator cannot overflow
	 * before 2^32 words. */
	for (; i + 4 <= len; i += 4)
		sum += ((uint32_t)data[i] << 24) | ((uint32_t)data[i + 1] << 16) |
		       ((uint32_t)data[i + 2] << 8) | data[i + 3];
	for (; i + 2 <= len; i += 2)
		sum += ((uint32_t)data[i] << 8) | data[i + 1];
	if (i < len)
		sum += (uint32_t)data[i] << 8;
	return fold32(sum);
}

uint16_t ms_csum_fold(uint32_t sum)
{
	return (uint16_t)~fold32(sum);
}

uint32_t ms_csum_pseudo_v4(const uint8_t src[4], const uint8_t dst[4],
			   uint8_t proto, uint32_t length)
{
	uint32_t sum = ms_csum_partial(src, 4, 0);

	sum = ms_csum_partial(dst, 4, sum);
	return fold32((uint64_t)sum + proto + length);
}

uint32_t ms_csum_pseudo_v6(const uint8_t src[16], const uint8_t dst[16],
			   uint8_t next_header, uint32_t length)
{
	uint32_t sum = ms_csum_partial(src, 16, 0);

	sum = ms_csum_partial(dst, 16, sum);
	return fold32((uint64_t)sum + (length >> 16) + (length & 0xffff) + next_header);
}
