/* Host address ranges that hold weight-file bytes (shim/filemap.c): filled by the file
 * interposer (mmap / read / pread of a tracked *.safetensors or *.gguf descriptor),
 * trimmed by munmap, mremap and any new mapping over them, and looked up by the CUDA
 * interposers on every host->device copy so a copy of weight bytes can be named
 * (MC_REC_FILE_MAP, device >= 0, how = 3).
 *
 * Self-contained (no calls into the core, no malloc, no interposed function), so it can
 * be unit-tested alone and its mutex is a leaf lock: nothing else is locked under it. */
#ifndef MOECAP_SHIM_FILEMAP_H
#define MOECAP_SHIM_FILEMAP_H

#include <stddef.h>
#include <stdint.h>

/* One stretch of a looked-up host range that holds file bytes. */
struct mc_filemap_piece {
    uint64_t addr;          /* host address of the first byte of the piece */
    uint64_t length;        /* bytes */
    uint64_t file_offset;   /* file offset of the byte at `addr` */
    uint32_t path_str;      /* interned path of the file */
    uint32_t how;           /* how the bytes got there: 0 mmap, 1 read, 2 pread */
};

/* The pieces of [addr, addr + len) that hold weight-file bytes, in address order, at most
 * `max` (call again from the end of the last piece when it returns `max`). Bytes that
 * came from read/pread are named only while their content samples (taken at the read)
 * still match memory: a buffer that was freed, reused or overwritten is not named and is
 * forgotten. Returns the number of pieces (0 = none). */
int mc_filemap_lookup(uint64_t addr, uint64_t len, struct mc_filemap_piece *out, int max);

#define MC_FM_HIDDEN __attribute__((visibility("hidden")))

/* [addr, addr + len) now holds bytes [file_offset, file_offset + len) of `path_str`
 * (how: 0 mmap, 1 read, 2 pread); replaces whatever was recorded over those addresses.
 * For read/pread the buffer must be readable now (content samples are taken). Ranges
 * shorter than 8 bytes from read/pread are not kept. */
void mc_filemap_add(uint64_t addr, uint64_t len, uint64_t file_offset, uint32_t path_str,
                    uint32_t how) MC_FM_HIDDEN;
/* Forget whatever was recorded in [addr, addr + len) (munmap, a mapping placed there). */
void mc_filemap_remove(uint64_t addr, uint64_t len) MC_FM_HIDDEN;

/* Held across fork (taken last, after every other shim lock; shim_core.c). */
void mc_filemap_fork_lock(void) MC_FM_HIDDEN;
void mc_filemap_fork_unlock(void) MC_FM_HIDDEN;

/* Statistics (tests, notes): ranges kept now; ranges evicted because the set was full
 * (MC_FILEMAP_MAX); 1 once read ranges could not be verified (process_vm_readv refused,
 * e.g. by a seccomp filter): from then on they are never named. */
#define MC_FILEMAP_MAX 16384
size_t mc_filemap_count(void) MC_FM_HIDDEN;
uint64_t mc_filemap_evicted(void) MC_FM_HIDDEN;
int mc_filemap_unverifiable(void) MC_FM_HIDDEN;

#endif
