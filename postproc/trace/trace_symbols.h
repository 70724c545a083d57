/* Offline symbolisation of call-site return addresses (MC_REC_CALLSITE pcs) from a
 * trace's MC_REC_MAPPING records and the mapped files' ELF symbol tables (.symtab, else
 * .dynsym). Works after the process is gone, on the machine that has the same files.
 *
 *     struct mc_symtab *s = mc_symtab_new();
 *     ... for each MC_REC_MAPPING r: mc_symtab_add_mapping(s, r.start, r.end, r.file_offset, path);
 *     char buf[512];
 *     mc_symtab_lookup(s, pc, buf, sizeof buf);   // "mr_gemm+0x2a (moe-ref)" or "0x7f... (libx.so)"
 *     mc_symtab_free(s);
 *
 * Files are opened and parsed lazily, once each; missing or stripped files degrade to
 * "file+0xoffset". Not thread-safe. */
#ifndef MOECAP_TRACE_SYMBOLS_H
#define MOECAP_TRACE_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

struct mc_symtab;

struct mc_symtab *mc_symtab_new(void);
void mc_symtab_free(struct mc_symtab *s);

/* Records one executable mapping [start, end) of `path` at `file_offset`. */
int mc_symtab_add_mapping(struct mc_symtab *s, uint64_t start, uint64_t end, uint64_t file_offset,
                          const char *path);

/* Writes "symbol+0xOFF (basename)" for pc into buf. Returns 2 when a symbol was found,
 * 1 when only the mapping is known ("basename+0xFILEOFF"), 0 when pc is in no mapping
 * ("0xPC"). For return addresses, pass pc as recorded: the lookup uses pc - 1 so a call
 * at the very end of a function is attributed to that function. */
int mc_symtab_lookup(struct mc_symtab *s, uint64_t pc, char *buf, size_t len);

#endif
