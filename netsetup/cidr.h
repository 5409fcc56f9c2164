/* cidr: IPv4 addresses with a prefix length ("192.168.83.1/24"), parsed and printed. Pure: the
 * bridge address, the guest subnet for the firewall and the DNS snippet all come from here, so
 * the three agree on what "the VM subnet" is. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct cidr {
    uint32_t addr;   /* host byte order */
    unsigned prefix; /* 0..32 */
};

/* Longest text cidr_format() writes: "255.255.255.255/32" plus NUL. */
#define CIDR_STRLEN 19

/* Parses "A.B.C.D/N" (N from 1 to 32), or "A.B.C.D" as /32 when ALLOW_BARE. -EINVAL otherwise. */
int cidr_parse(const char *s, bool allow_bare, struct cidr *ret);
/* The subnet of C: its address with the host bits cleared, same prefix. */
struct cidr cidr_network(struct cidr c);
/* True when ADDR (host byte order) lies in C's subnet. */
bool cidr_contains(struct cidr c, uint32_t addr);
/* Writes "A.B.C.D" (ADDR in host byte order) into BUF (at least CIDR_STRLEN bytes). */
const char *cidr_format_addr(uint32_t addr, char *buf);
/* Writes "A.B.C.D/N" into BUF (at least CIDR_STRLEN bytes). */
const char *cidr_format(struct cidr c, char *buf);
