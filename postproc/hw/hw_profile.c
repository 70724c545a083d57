/* Hardware profile lookup and parsing (see hw_profile.h). */
#include "hw/hw_profile.h"
#include "trace/data_dir.h"
#include "trace/safe_file.h"

#include "hw/hw_cost.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mc_hw_load(const char *spec, struct mc_hw *hw, char *err, size_t errlen)
{
    memset(hw, 0, sizeof *hw);
    char dirs[MC_DATA_DIRS_MAX][PATH_MAX];
    int nd = mc_data_dirs("hardware", "MOECAP_HW_DIR", dirs);
    size_t sl = strlen(spec);
    if (strchr(spec, '/') || (sl > 5 && !strcmp(spec + sl - 5, ".json"))) {
        snprintf(hw->path, sizeof hw->path, "%s", spec);
    } else {
        for (int i = 0; i < nd && !hw->path[0]; i++) {
            char p[PATH_MAX + 300];
            snprintf(p, sizeof p, "%.900s/%.100s.json", dirs[i], spec);
            if (access(p, R_OK) == 0) snprintf(hw->path, sizeof hw->path, "%.1000s", p);
        }
        if (!hw->path[0]) {
            char list[2048] = "";
            for (int i = 0; i < nd; i++) {
                DIR *d = opendir(dirs[i]);
                if (!d) continue;
                struct dirent *e;
                while ((e = readdir(d))) {
                    size_t n = strlen(e->d_name);
                    if (n > 5 && !strcmp(e->d_name + n - 5, ".json")) {
                        size_t L = strlen(list);
                        snprintf(list + L, sizeof list - L, "%s%.*s", L ? ", " : "", (int)(n - 5), e->d_name);
                    }
                }
                closedir(d);
                if (list[0]) break;
            }
            snprintf(err, errlen, "unknown hardware profile '%s'; available: %s (or give a profile "
                     "file path; `moecap hwprobe` measures this machine)", spec,
                     list[0] ? list : "none found (set MOECAP_ROOT or MOECAP_HW_DIR)");
            return -1;
        }
    }
    char *text = mc_read_file(hw->path, 16u << 20, NULL);
    if (!text) {
        snprintf(err, errlen, "cannot read hardware profile %s: %s", hw->path,
                 errno == EINVAL ? "not a regular file" : strerror(errno));
        return -1;
    }
    hw->json = cJSON_Parse(text);
    free(text);
    if (!cJSON_IsObject(hw->json)) {
        snprintf(err, errlen, "hardware profile %s is not a JSON object", hw->path);
        mc_hw_free(hw);
        return -1;
    }
    const cJSON *x;
    x = cJSON_GetObjectItemCaseSensitive(hw->json, "name");
    hw->name = cJSON_IsString(x) ? x->valuestring : spec;
    x = cJSON_GetObjectItemCaseSensitive(hw->json, "kind");
    hw->kind = cJSON_IsString(x) ? x->valuestring : NULL;
    x = cJSON_GetObjectItemCaseSensitive(hw->json, "model");
    hw->model = cJSON_IsString(x) ? x->valuestring : NULL;
    x = cJSON_GetObjectItemCaseSensitive(hw->json, "memory_bandwidth_Bps");
    hw->bandwidth_Bps = cJSON_IsNumber(x) ? x->valuedouble : 0;
    hw->measured = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(hw->json, "measured"));
    if (hw->bandwidth_Bps <= 0) {
        snprintf(err, errlen, "hardware profile %s has no positive memory_bandwidth_Bps", hw->path);
        mc_hw_free(hw);
        return -1;
    }
    if (mc_hw_cost_fields_check(hw->json, err, errlen) != 0) {
        mc_hw_free(hw);
        return -1;
    }
    return 0;
}

int mc_hw_profile_dir(char *out, size_t len)
{
    return mc_data_dir("hardware", "MOECAP_HW_DIR", out, len);
}

void mc_hw_free(struct mc_hw *hw)
{
    cJSON_Delete(hw->json);
    hw->json = NULL;
}

double mc_hw_peak_flops(const struct mc_hw *hw, const char *key)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(hw->json, "peak_flops");
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(p, key);
    return cJSON_IsNumber(x) && x->valuedouble > 0 ? x->valuedouble : 0;
}
