#ifndef MULTISTACK_NATIVE_CHECKSUM_H
#define MULTISTACK_NATIVE_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

/* One's-complement sum of a buffer folded to 16 bits, not inverted, so that
 * partial sums (pseudo-header + payload) can be chained through `initial`. */
uint32_t ms_csum_partial(const uint8_t *data, size_t len, uint32_t initial);
/* Final Internet checksum (RFC 1071) of a buffer, chained from `initial`. */
uint16_t ms_csum_fold(uint32_t sum);
/* Sum of the IPv4 / IPv6 pseudo-header for TCP/UDP (addresses in network order). */
uint32_t ms_csum_pseudo_v4(const uint8_t src[4], const uint8_t dst[4],
                           uint8_t proto, uint32_t length);
uint32_t ms_csum_pseudo_v6(const uint8_t src[16], const uint8_t dst[16],
                           uint8_t next_header, uint32_t length);

#endif
