/* llama.cpp runs in `moecap report`: the run.llama_cpp section and notes (report_ggml.c). */
#ifndef MOECAP_REPORT_GGML_H
#define MOECAP_REPORT_GGML_H

#include <cjson/cJSON.h>
#include "report/attrib_ggml.h"

void report_ggml_json(cJSON *run, cJSON *notes, const struct mc_ggml_attrib *ga);

#endif
