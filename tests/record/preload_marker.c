/* A library a user might already have in LD_PRELOAD: its constructor appends "loaded" to
 * the file named by $RECORD_MARKER, so tests/record/test_record.py can see that it was
 * still loaded when `moecap record` added the shim. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((constructor)) static void marker_loaded(void)
{
    const char *p = getenv("RECORD_MARKER");
    if (!p) return;
    FILE *f = fopen(p, "a");
    if (!f) return;
    fputs("loaded\n", f);
    fclose(f);
}
