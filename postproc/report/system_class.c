/* The MoE-CAP system class of a profiled run (see system_class.h). */
#include "report/system_class.h"

#include <inttypes.h>
#include <stdio.h>

cJSON *mc_system_class_json(const struct mc_offload_view *v, const struct mc_attrib_stats *ast,
                            const struct mc_model *m, int gemm_processes, int step_processes, int devices)
{
    cJSON *o = cJSON_CreateObject(), *cls = cJSON_AddArrayToObject(o, "classes");
    cJSON *ev = cJSON_AddObjectToObject(o, "evidence");
    char msg[512];
    uint64_t steps_loading, loaded, peak, all;
    mc_offload_summary(v, &steps_loading, &loaded, &peak, &all);
    if (steps_loading) {
        cJSON_AddItemToArray(cls, cJSON_CreateString("CA"));
        snprintf(msg, sizeof msg, "expert offloading: %" PRIu64 " step(s) after the first read routed-expert "
                 "weights from the weights file (%" PRIu64 " bytes in all); resident expert bytes peaked at %" PRIu64
                 " of the model's %" PRIu64, steps_loading, loaded, peak, all);
    } else {
        snprintf(msg, sizeof msg, "not seen: no routed-expert weights were read into memory after the first step%s",
                 loaded ? " (only before it: an initial load)" : "");
    }
    cJSON_AddStringToObject(ev, "CA", msg);
    int elt = ast->weight_elt > 0 ? ast->weight_elt : m->elt;
    if (elt == 1) {
        cJSON_AddItemToArray(cls, cJSON_CreateString("PC"));
        snprintf(msg, sizeof msg, "quantized weights: the GEMMs' weight operands have 1 byte per element");
    } else {
        snprintf(msg, sizeof msg, "not seen: weight operands have %d bytes per element%s", elt,
                 ast->weight_elt < 0 ? " (mixed)" : "");
    }
    cJSON_AddStringToObject(ev, "PC", msg);
    if (gemm_processes > step_processes || devices > 1) {
        cJSON_AddItemToArray(cls, cJSON_CreateString("PA"));
        snprintf(msg, sizeof msg, "parallel experts: %d process(es) issued GEMMs, %d ran whole steps, on %d GPU "
                 "device(s)", gemm_processes, step_processes, devices);
    } else {
        snprintf(msg, sizeof msg, "not seen: every process that issued GEMMs ran whole steps (%d), on %d GPU "
                 "device(s)", gemm_processes, devices);
    }
    cJSON_AddStringToObject(ev, "PA", msg);
    return o;
}
