/* A stand-in for the shim core (shim/shim_core.h) used by the CUDA unit tests: records go
 * to an in-memory array the test inspects, strings to a small table, notes to a list.
 * Lets the CUDA interposers be tested without libmoecap.so's writer. */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include "shim_core.h"
#include "fake_core.h"

unsigned char fake_recs[FAKE_MAX_RECS][FAKE_REC_BYTES];
int fake_nrecs;
char fake_strings[FAKE_MAX_STRINGS][128];
int fake_nstrings;
char fake_notes[FAKE_MAX_NOTES][256];
int fake_nnotes;
const struct mc_family *fake_families[8];
int fake_nfamilies;

int mc_capture_enabled(void) { return 1; }

uint64_t mc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void *mc_rec_reserve(uint16_t type, uint32_t size)
{
    size = (size + 7u) & ~7u;
    if (size > FAKE_REC_BYTES || fake_nrecs >= FAKE_MAX_RECS) return NULL;
    unsigned char *r = fake_recs[fake_nrecs++];
    memset(r, 0, FAKE_REC_BYTES);
    struct mc_rec_header *h = (struct mc_rec_header *)r;
    h->type = type;
    h->size = size;
    return r;
}

void mc_rec_commit(void *rec) { (void)rec; }

uint32_t mc_intern(const char *text)
{
    for (int i = 0; i < fake_nstrings; i++)
        if (!strcmp(fake_strings[i], text)) return (uint32_t)i + 1;
    if (fake_nstrings >= FAKE_MAX_STRINGS) return 0;
    snprintf(fake_strings[fake_nstrings], sizeof fake_strings[0], "%s", text);
    return (uint32_t)++fake_nstrings;
}

const char *fake_string(uint32_t id)
{
    return id >= 1 && (int)id <= fake_nstrings ? fake_strings[id - 1] : NULL;
}

uint32_t mc_callsite_capture(void) { return 0; }

int32_t mc_tid(void) { return (int32_t)syscall(SYS_gettid); }

int fake_resolve_calls;
char fake_last_resolved[64];

void *mc_resolve_next_except(const char *symbol, const void *caller)
{
    (void)caller;
    fake_resolve_calls++;
    snprintf(fake_last_resolved, sizeof fake_last_resolved, "%s", symbol);
    return dlsym(RTLD_NEXT, symbol);
}

void mc_disable(const char *why) { fprintf(stderr, "fake core: disable: %s\n", why); }

void mc_log_info(const char *fmt, ...) { (void)fmt; }
void mc_log_debug(const char *fmt, ...) { (void)fmt; }

void mc_note(int level, const char *fmt, ...)
{
    (void)level;
    if (fake_nnotes >= FAKE_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake_notes[fake_nnotes++], sizeof fake_notes[0], fmt, ap);
    va_end(ap);
}

void mc_family_register(const struct mc_family *f)
{
    for (int i = 0; i < fake_nfamilies; i++) if (fake_families[i] == f) return;
    if (fake_nfamilies < 8) fake_families[fake_nfamilies++] = f;
}

void fake_flush_families(void)
{
    for (int i = 0; i < fake_nfamilies; i++)
        if (fake_families[i]->flush) fake_families[i]->flush();
}

int fake_count(uint16_t type)
{
    int n = 0;
    for (int i = 0; i < fake_nrecs; i++)
        if (((struct mc_rec_header *)fake_recs[i])->type == type) n++;
    return n;
}

void *fake_find(uint16_t type, int nth)
{
    for (int i = 0; i < fake_nrecs; i++)
        if (((struct mc_rec_header *)fake_recs[i])->type == type && nth-- == 0) return fake_recs[i];
    return NULL;
}

void fake_reset(void) { fake_nrecs = 0; fake_nnotes = 0; }
