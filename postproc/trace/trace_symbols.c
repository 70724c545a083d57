/* Offline symbolisation of return addresses (see trace_symbols.h): mapping -> file offset
 * -> ELF virtual address (through the PT_LOAD that holds it) -> function symbol. Only
 * 64-bit little-endian ELF; every offset read from a file is bounds-checked. */
#include "trace_symbols.h"

#include <elf.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct sym { uint64_t addr, size; uint32_t name; };
struct load { uint64_t off, vaddr, filesz; };

struct file {
    char *path;
    int loaded;
    struct sym *syms;
    size_t nsyms;
    char *strtab;
    size_t strsz;
    struct load *loads;
    size_t nloads;
};

struct map { uint64_t start, end, off; size_t file; };

struct mc_symtab {
    struct map *maps;
    size_t nmaps, capmaps;
    struct file *files;
    size_t nfiles, capfiles;
};

struct mc_symtab *mc_symtab_new(void) { return calloc(1, sizeof(struct mc_symtab)); }

void mc_symtab_free(struct mc_symtab *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].syms);
        free(s->files[i].strtab);
        free(s->files[i].loads);
    }
    free(s->files);
    free(s->maps);
    free(s);
}

int mc_symtab_add_mapping(struct mc_symtab *s, uint64_t start, uint64_t end, uint64_t file_offset, const char *path)
{
    if (!path || end <= start) return -1;
    size_t f = 0;
    while (f < s->nfiles && strcmp(s->files[f].path, path)) f++;
    if (f == s->nfiles) {
        if (s->nfiles == s->capfiles) {
            size_t cap = s->capfiles ? s->capfiles * 2 : 32;
            struct file *n = realloc(s->files, cap * sizeof *n);
            if (!n) return -1;
            s->files = n;
            s->capfiles = cap;
        }
        memset(&s->files[f], 0, sizeof s->files[f]);
        if (!(s->files[f].path = strdup(path))) return -1;
        s->nfiles++;
    }
    if (s->nmaps == s->capmaps) {
        size_t cap = s->capmaps ? s->capmaps * 2 : 64;
        struct map *n = realloc(s->maps, cap * sizeof *n);
        if (!n) return -1;
        s->maps = n;
        s->capmaps = cap;
    }
    s->maps[s->nmaps++] = (struct map){start, end, file_offset, f};
    return 0;
}

static int cmp_sym(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

#define IN(off, n, size) ((off) <= (size) && (n) <= (size) - (off))

static void load_file(struct file *f)
{
    f->loaded = 1;
    /* the path comes from the trace: never block on a FIFO, map only regular files */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t)sizeof(Elf64_Ehdr)) { close(fd); return; }
    size_t size = (size_t)st.st_size;
    unsigned char *m = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_ident[EI_DATA] != ELFDATA2LSB)
        goto out;
    /* program headers: file offset -> virtual address */
    if (eh->e_phentsize >= sizeof(Elf64_Phdr) && IN(eh->e_phoff, (uint64_t)eh->e_phnum * eh->e_phentsize, size)) {
        f->loads = calloc(eh->e_phnum ? eh->e_phnum : 1, sizeof *f->loads);
        for (unsigned i = 0; f->loads && i < eh->e_phnum; i++) {
            const Elf64_Phdr *ph = (const Elf64_Phdr *)(m + eh->e_phoff + (uint64_t)i * eh->e_phentsize);
            if (ph->p_type == PT_LOAD) f->loads[f->nloads++] = (struct load){ph->p_offset, ph->p_vaddr, ph->p_filesz};
        }
    }
    /* symbols: .symtab when present (unstripped), else .dynsym */
    if (eh->e_shentsize < sizeof(Elf64_Shdr) || !IN(eh->e_shoff, (uint64_t)eh->e_shnum * eh->e_shentsize, size)) goto out;
    const Elf64_Shdr *symsec = NULL;
    for (int want = SHT_SYMTAB; want && !symsec; want = want == SHT_SYMTAB ? SHT_DYNSYM : 0)
        for (unsigned i = 0; i < eh->e_shnum; i++) {
            const Elf64_Shdr *sh = (const Elf64_Shdr *)(m + eh->e_shoff + (uint64_t)i * eh->e_shentsize);
            if (sh->sh_type == (uint32_t)want && sh->sh_entsize >= sizeof(Elf64_Sym)) { symsec = sh; break; }
        }
    if (!symsec || symsec->sh_link >= eh->e_shnum || !IN(symsec->sh_offset, symsec->sh_size, size)) goto out;
    const Elf64_Shdr *strsec = (const Elf64_Shdr *)(m + eh->e_shoff + (uint64_t)symsec->sh_link * eh->e_shentsize);
    if (!IN(strsec->sh_offset, strsec->sh_size, size) || strsec->sh_size == 0) goto out;
    f->strtab = malloc(strsec->sh_size + 1);
    if (!f->strtab) goto out;
    memcpy(f->strtab, m + strsec->sh_offset, strsec->sh_size);
    f->strtab[strsec->sh_size] = 0;
    f->strsz = strsec->sh_size;
    size_t n = symsec->sh_size / symsec->sh_entsize;
    f->syms = calloc(n ? n : 1, sizeof *f->syms);
    for (size_t i = 0; f->syms && i < n; i++) {
        const Elf64_Sym *sy = (const Elf64_Sym *)(m + symsec->sh_offset + i * symsec->sh_entsize);
        int type = ELF64_ST_TYPE(sy->st_info);
        if ((type != STT_FUNC && type != STT_GNU_IFUNC) || !sy->st_value || sy->st_name >= f->strsz) continue;
        f->syms[f->nsyms++] = (struct sym){sy->st_value, sy->st_size, sy->st_name};
    }
    if (f->nsyms) qsort(f->syms, f->nsyms, sizeof *f->syms, cmp_sym);
out:
    munmap(m, size);
}

static const char *base(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int mc_symtab_lookup(struct mc_symtab *s, uint64_t pc, char *buf, size_t len)
{
    uint64_t q = pc ? pc - 1 : 0; /* inside the call instruction, not after it */
    const struct map *mp = NULL;
    for (size_t i = 0; i < s->nmaps; i++)
        if (s->maps[i].start <= q && q < s->maps[i].end) { mp = &s->maps[i]; break; }
    if (!mp) { snprintf(buf, len, "0x%" PRIx64, pc); return 0; }
    struct file *f = &s->files[mp->file];
    if (!f->loaded) load_file(f);
    uint64_t fo = q - mp->start + mp->off;
    int have_va = 0;
    uint64_t va = 0;
    for (size_t i = 0; i < f->nloads; i++)
        if (f->loads[i].off <= fo && fo < f->loads[i].off + f->loads[i].filesz) {
            va = fo - f->loads[i].off + f->loads[i].vaddr;
            have_va = 1;
            break;
        }
    if (have_va && f->nsyms) {
        size_t lo = 0, hi = f->nsyms; /* last symbol with addr <= va */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (f->syms[mid].addr <= va) lo = mid; else hi = mid;
        }
        const struct sym *sy = &f->syms[lo];
        if (sy->addr <= va && (sy->size == 0 || va < sy->addr + sy->size)) {
            snprintf(buf, len, "%s+0x%" PRIx64 " (%s)", f->strtab + sy->name, va + 1 - sy->addr, base(f->path));
            return 2;
        }
    }
    snprintf(buf, len, "%s+0x%" PRIx64, base(f->path), fo + 1);
    return 1;
}
