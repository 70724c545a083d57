/* Fuzz target: hardware profile parsing (`moecap report --hw FILE`, mc_hw_load) on any bytes
 * written to a file. Oracle: an accepted profile has a positive finite memory bandwidth and
 * peak FLOPS that are 0 or positive. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <unistd.h>

#include "hw/hw_profile.h"

static char path[600];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc; (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/fuzz-hw-%ld.json", tmp && *tmp ? tmp : "/tmp", (long)getpid());
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    struct mc_hw hw;
    char err[512];
    if (mc_hw_load(path, &hw, err, sizeof err) == 0) {
        if (!(hw.bandwidth_Bps > 0) || !isfinite(hw.bandwidth_Bps) || !hw.name) abort();
        static const char *keys[] = {"f32", "bf16", "f16", "fp8", "int8", "f64"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            if (!(mc_hw_peak_flops(&hw, keys[i]) >= 0)) abort();
        mc_hw_free(&hw);
    }
    remove(path);
    return 0;
}
