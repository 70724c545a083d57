/* Replay driver for the fuzz targets (tests/fuzz/README.md): a main() that feeds each file
 * named on the command line, or each regular file of each directory named, to the target's
 * LLVMFuzzerTestOneInput. Built with the project's compiler and sanitizers, so `make check`
 * replays the kept corpus and crash inputs without clang. Prints one TAP line per argument. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "replay: cannot open %s\n", path); return -1; }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0, n;
    uint8_t tmp[65536];
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) {
        if (len + n > cap) {
            cap = (len + n) * 2;
            uint8_t *p = realloc(buf, cap);
            if (!p) { free(buf); fclose(f); return -1; }
            buf = p;
        }
        memcpy(buf + len, tmp, n);
        len += n;
    }
    fclose(f);
    /* an exact-size copy, so that ASan sees a read one past the input */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) { free(buf); return -1; }
    if (len) memcpy(exact, buf, len);
    free(buf);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    return 0;
}

static int name_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) { printf("skip - %s (absent)\n", argv[i]); continue; }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0) bad++;
            printf("%s - %s\n", bad ? "not ok" : "ok", argv[i]);
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) { printf("not ok - %s (cannot list)\n", argv[i]); bad++; continue; }
        char **names = NULL;
        size_t nn = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.') continue;
            char **p = realloc(names, (nn + 1) * sizeof *names);
            if (!p) break;
            names = p;
            names[nn++] = strdup(e->d_name);
        }
        closedir(d);
        if (nn) qsort(names, nn, sizeof *names, name_cmp);
        int n_run = 0, n_bad = 0;
        for (size_t k = 0; k < nn; k++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], names[k]);
            if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
                if (run_file(p) != 0) n_bad++;
                n_run++;
            }
            free(names[k]);
        }
        free(names);
        bad += n_bad;
        printf("%s - %s: %d inputs replayed\n", n_bad ? "not ok" : "ok", argv[i], n_run);
    }
    return bad ? 1 : 0;
}
