/* The report document read by a view (see report_reader.h). */
#include "export/report_reader.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

void report_reader_open(struct report_reader *r, const struct report_doc *doc)
{
    memset(r, 0, sizeof *r);
    r->root = doc->root;
    r->spool = doc->steps ? doc->steps->records : NULL;
    if (r->spool) rewind(r->spool);
}

/* The spool holds one step object per line, ",\n"-separated (report_json.h). */
cJSON *report_reader_next_step(struct report_reader *r)
{
    ssize_t l;
    while (r->spool && (l = getline(&r->line, &r->cap, r->spool)) > 0) {
        while (l && (r->line[l - 1] == '\n' || r->line[l - 1] == ',' || r->line[l - 1] == ' ')) r->line[--l] = 0;
        if (!l) continue;
        cJSON *s = cJSON_Parse(r->line);
        if (s) return s;
    }
    return NULL;
}

void report_reader_close(struct report_reader *r)
{
    free(r->line);
    memset(r, 0, sizeof *r);
}
