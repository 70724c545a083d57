/* Temporary: minimal renderers so callers link while the full ones are written. */
#include "render/render.h"
int mc_render_markdown(const cJSON *report, FILE *out)
{
    if (!cJSON_IsObject(report)) return -1;
    return fprintf(out, "# moecap report\n\n(renderer in progress)\n") < 0 ? -1 : 0;
}
int mc_render_html(const cJSON *report, FILE *out)
{
    if (!cJSON_IsObject(report)) return -1;
    return fprintf(out, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>moecap report</title></head><body><p>renderer in progress</p></body></html>\n") < 0 ? -1 : 0;
}
