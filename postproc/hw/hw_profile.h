/* Hardware profile loading for `moecap report --hw NAME|FILE` (profiles: data/hardware/,
 * format: docs/hardware.md). */
#ifndef MOECAP_HW_PROFILE_H
#define MOECAP_HW_PROFILE_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct mc_hw {
    cJSON *json;            /* the whole profile (owned) */
    char path[1024];
    const char *name, *kind, *model;
    double bandwidth_Bps;   /* 0 = absent */
    int measured;
};

/* NAME → <dir>/NAME.json for dir in: $MOECAP_HW_DIR, $MOECAP_ROOT/data/hardware, the
 * executable's ../../data/hardware and ../share/moecap/hardware, ./data/hardware; a value
 * containing '/' or ending in .json is a file. Returns 0, or -1 with a message (listing the
 * available profiles when the name is unknown). */
int mc_hw_load(const char *spec, struct mc_hw *hw, char *err, size_t errlen);
void mc_hw_free(struct mc_hw *hw);
/* The first directory of the search list above that exists (for listing every profile).
 * 0, or -1 when none exists. */
int mc_hw_profile_dir(char *out, size_t len);
/* Dense peak FLOPS for a dtype key ("f32", "bf16", ...); 0 when the profile has none. */
double mc_hw_peak_flops(const struct mc_hw *hw, const char *dtype_key);

#endif
