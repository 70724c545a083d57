/* Fuzz target: `moecap report` end to end on one trace (the input bytes as RUN/fuzz.mct) for
 * a tiny Mixtral (d 8, 4 experts, V 16), writing report.json and report.md. Oracles: no crash
 * or sanitizer report, and when the report succeeds its report.json is valid UTF-8 JSON. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "commands.h"
#include "trace/utf8.h"

static char dir[512], run[600], cfg[600], hw[600], trace[700], out_json[700];

static int write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = n && fwrite(data, 1, n, f) != n;
    return fclose(f) != 0 || bad ? -1 : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/fuzz-report-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
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
    if (mkdir(run, 0700) != 0 || write_file(cfg, config, sizeof config - 1) || write_file(hw, hwj, sizeof hwj - 1)) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unlink(out_json);
    if (write_file(trace, data, size) != 0) abort();
    char *argv[] = {"report", run, "--model", cfg, "--hw", hw, "--format", "json,md", "--quiet", NULL};
    /* the report's error messages are expected on bad input: silenced for the call only, so
     * libFuzzer's own output (on the same descriptor) stays */
    int quiet = !getenv("FUZZ_VERBOSE"), saved = -1;
    if (quiet) {
        fflush(stderr);
        saved = dup(2);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) { dup2(null, 2); close(null); }
    }
    int rc = mc_cmd_report(9, argv);
    if (saved >= 0) { fflush(stderr); dup2(saved, 2); close(saved); }
    if (rc == 0) {
        FILE *f = fopen(out_json, "rb");
        if (!f) abort();
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        rewind(f);
        char *buf = malloc((size_t)n + 1);
        if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) abort();
        buf[n] = 0;
        fclose(f);
        if (!mc_utf8_valid(buf, (size_t)n)) abort();   /* JSON readers refuse invalid UTF-8 */
        cJSON *j = cJSON_Parse(buf);
        if (!cJSON_IsObject(j)) abort();
        cJSON_Delete(j);
        free(buf);
    }
    return 0;
}
