/* Device memory ranges over time, for naming GPU weight operands (docs/attribution.md §3b):
 * allocations (MC_REC_ALLOC), frees, and the destinations of large host->device copies.
 * Each range is valid from the record that created it until its memory is freed or
 * overwritten: a free of its allocation, a later allocation overlapping it, or a later
 * host->device copy overlapping it that brings other bytes (address reuse). Built during the
 * report's first pass, frozen by mc_devmem_finish, then queried read-only. */
#ifndef MOECAP_REPORT_DEVMEM_H
#define MOECAP_REPORT_DEVMEM_H

#include <stddef.h>
#include <stdint.h>

enum mc_devmem_kind { MC_DEVMEM_ALLOC = 1, MC_DEVMEM_COPY = 2 };

struct mc_devmem_range {
    int32_t pid, device;
    uint64_t b, e;              /* [b, e) device addresses */
    uint64_t t_from, t_until;   /* valid at t_from <= t < t_until (UINT64_MAX: to the end) */
    uint8_t kind;               /* enum mc_devmem_kind */
    uint64_t tag;               /* copies: caller's identity of the bytes (0 = anonymous) */
};

struct mc_devmem;

struct mc_devmem *mc_devmem_new(void);
void mc_devmem_free(struct mc_devmem *d);

void mc_devmem_alloc(struct mc_devmem *d, int32_t pid, int32_t device, uint64_t ptr, uint64_t bytes, uint64_t t);
void mc_devmem_release(struct mc_devmem *d, int32_t pid, uint64_t ptr, uint64_t t);
/* A host->device copy into [dst, dst + bytes); `tag` identifies its bytes (e.g. file + offset)
 * so that a second record of the same copy does not end the first. */
void mc_devmem_copy(struct mc_devmem *d, int32_t pid, int32_t device, uint64_t dst, uint64_t bytes, uint64_t t,
                    uint64_t tag);

/* Computes every range's end (t_until). Call once, after the last record. */
void mc_devmem_finish(struct mc_devmem *d);

/* When the bytes of [b, e) of process pid, written at t with identity `tag`, stop being
 * there: the first free / overlapping allocation / overlapping copy of other bytes after t
 * (UINT64_MAX when never). Valid after mc_devmem_finish. */
uint64_t mc_devmem_end(const struct mc_devmem *d, int32_t pid, uint64_t b, uint64_t e, uint64_t t, uint64_t tag);

/* A range (allocation or copy destination) of exactly `size` bytes that holds addr at time
 * t, or NULL. */
const struct mc_devmem_range *mc_devmem_find(const struct mc_devmem *d, int32_t pid, uint64_t addr, uint64_t t,
                                             uint64_t size);

/* Whether process pid has any range of exactly `size` bytes (at any time). */
int mc_devmem_has_size(const struct mc_devmem *d, int32_t pid, uint64_t size);

size_t mc_devmem_count(const struct mc_devmem *d);

#endif
