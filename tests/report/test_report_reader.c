/* export/report_reader.c: a view reads the report document's sections from its tree and
 * its full step objects from the step table's spool (one object per line, ",\n"-separated,
 * as report_json.h writes them), in order, once, however often it is opened. */
#include <stdio.h>
#include <string.h>

#include "export/report_reader.h"
#include "mc_test.h"

static void steps_in_order(void)
{
    struct report_steps st;
    memset(&st, 0, sizeof st);
    st.records = tmpfile();
    fputs("{\"step\": 0, \"kind\": \"prefill\", \"context\": [4, 5]},\n"
          "{\"step\": 1, \"kind\": \"decode\", \"context\": [5, 6]},\n"
          "{\"step\": 2, \"kind\": \"decode\", \"context\": [6, 7]}", st.records);
    struct report_doc doc = {.root = cJSON_Parse("{\"schema_version\": 1, \"client\": {\"n\": 3}, \"steps\": []}"),
                             .steps = &st};
    for (int pass = 0; pass < 2; pass++) {   /* a second view reads the same steps */
        struct report_reader r;
        report_reader_open(&r, &doc);
        MC_CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(r.root, "client"), "n")->valuedouble == 3, "head");
        int n = 0, ctx = 0;
        for (cJSON *s; (s = report_reader_next_step(&r)); cJSON_Delete(s)) {
            MC_CHECK(cJSON_GetObjectItem(s, "step")->valuedouble == n, "step %d out of order", n);
            ctx += cJSON_GetArrayItem(cJSON_GetObjectItem(s, "context"), 1)->valueint;
            n++;
        }
        MC_CHECK(n == 3 && ctx == 5 + 6 + 7, "pass %d: %d steps, context sum %d", pass, n, ctx);
        report_reader_close(&r);
    }
    cJSON_Delete(doc.root);
    fclose(st.records);
}

static void no_steps(void)
{
    struct report_doc doc = {.root = cJSON_Parse("{}"), .steps = NULL};
    struct report_reader r;
    report_reader_open(&r, &doc);
    MC_CHECK(report_reader_next_step(&r) == NULL, "no step table: no step");
    report_reader_close(&r);
    cJSON_Delete(doc.root);
}

int main(void)
{
    MC_RUN(steps_in_order);
    MC_RUN(no_steps);
    return MC_TEST_EXIT();
}
