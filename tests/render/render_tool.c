/* Test driver: renders a report.json file with mc_render_markdown / mc_render_html.
 * usage: render_tool md|html FILE   (output on stdout; exit 2 on unreadable JSON) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "render/render.h"

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "md") && strcmp(argv[1], "html"))) {
        fprintf(stderr, "usage: render_tool md|html REPORT.json\n");
        return 2;
    }
    FILE *f = fopen(argv[2], "rb");
    if (!f) { perror(argv[2]); return 2; }
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap + 1);
    while (buf && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) { cap *= 2; buf = realloc(buf, cap + 1); }
    }
    fclose(f);
    if (!buf) return 2;
    buf[len] = 0;
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    if (!j) { fprintf(stderr, "render_tool: %s is not JSON\n", argv[2]); return 2; }
    int rc = !strcmp(argv[1], "md") ? mc_render_markdown(j, stdout) : mc_render_html(j, stdout);
    cJSON_Delete(j);
    return rc ? 1 : 0;
}
