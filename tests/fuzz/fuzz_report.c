/* Fuzz target: `moecap report` end to end on one trace (the input bytes as RUN/fuzz.mct) for
 * a tiny Mixtral (d 8, 4 experts, V 16), writing report.json and report.md. Oracles: no crash
 * or sanitizer report, and when the report succeeds its report.json is valid UTF-8 JSON. */
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "fuzz/fuzz_common.h"

static char dir[512], run[600], cfg[600], hw[600], trace[700], out_json[700];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    fuzz_tmpdir(dir, sizeof dir, "report");
    snprintf(run, sizeof run, "%s/run", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(hw, sizeof hw, "%s/hw.json", dir);
    snprintf(trace, sizeof trace, "%s/fuzz.mct", run);
    snprintf(out_json, sizeof out_json, "%s/report.json", run);
    static const char config[] =
        "{\"model_type\":\"mixtral\",\"hidden_size\":8,\"intermediate_size\":4,\"num_local_experts\":4,"
        "\"num_experts_per_tok\":2,\"num_attention_heads\":2,\"num_key_value_heads\":1,\"vocab_size\":16,"
        "\"num_hidden_layers\":2,\"torch_dtype\":\"float32\"}\n";
    static const char hwj[] = "{\"name\":\"fuzz\",\"memory_bandwidth_Bps\":1e10,\"peak_flops\":{\"f32\":1e11}}\n";
    if (mkdir(run, 0700) != 0 || fuzz_write_file(cfg, config, sizeof config - 1) || fuzz_write_file(hw, hwj, sizeof hwj - 1)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(out_json);
    if (fuzz_write_file(trace, data, size) != 0) abort();
    char *argv[] = {"report", run, "--model", cfg, "--hw", hw, "--format", "json,md", "--quiet", NULL};
    if (fuzz_report_quiet(9, argv) == 0) cJSON_Delete(fuzz_read_report(out_json));
    return 0;
}
