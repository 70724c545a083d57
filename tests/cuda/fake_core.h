/* Inspection API of tests/cuda/fake_core.c (the in-memory shim core for CUDA tests). */
#ifndef MC_FAKE_CORE_H
#define MC_FAKE_CORE_H
#include <stdint.h>
#define FAKE_MAX_RECS 4096
#define FAKE_REC_BYTES 256
#define FAKE_MAX_STRINGS 256
#define FAKE_MAX_NOTES 64
extern int fake_nrecs, fake_nnotes;
extern int fake_resolve_calls;          /* calls to mc_resolve_next_except */
extern char fake_notes[FAKE_MAX_NOTES][256];
int fake_count(uint16_t type);          /* records of a type so far */
void *fake_find(uint16_t type, int nth); /* nth record of a type, NULL if none */
const char *fake_string(uint32_t id);   /* interned text, NULL if unknown */
void fake_reset(void);
void fake_flush_families(void);        /* each registered family's flush hook (once each) */
#endif
