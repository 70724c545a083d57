/* Fuzz target: `moecap report` end to end on one trace (the input bytes as RUN/fuzz.mct) for
 * a tiny Mixtral (d 8, 4 experts, V 16), writing report.json and report.md. Oracles: no crash
 * or sanitizer report, and when the report succeeds its report.json is valid UTF-8 JSON. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz/fuzz_common.h"

static struct fuzz_run r;
static char cfg[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_run_init(&r, "report");
    snprintf(cfg, sizeof cfg, "%s/config.json", r.dir);
    static const char config[] =
        "{\"model_type\":\"mixtral\",\"hidden_size\":8,\"intermediate_size\":4,\"num_local_experts\":4,"
        "\"num_experts_per_tok\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,"
        "\"num_hidden_layers\":2,\"torch_dtype\":\"float32\"}\n";
    if (fuzz_write_file(cfg, config, sizeof config - 1)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(r.out_json);
    if (fuzz_write_file(r.trace, data, size) != 0) abort();
    char *argv[] = {"report", r.run, "--model", cfg, "--hw", r.hw, "--format", "json,md", "--quiet", NULL};
    if (fuzz_report_quiet(9, argv) == 0) cJSON_Delete(fuzz_read_report(r.out_json));
    return 0;
}
