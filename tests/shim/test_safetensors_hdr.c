/* safetensors header parser: tensors, dtypes, shapes and offsets of hand-written headers;
 * metadata skipped; malformed and truncated JSON rejected without overreads. */
#include <stdlib.h>
#include <string.h>

#include "mc_test.h"
#include "safetensors_hdr.h"

struct got { int n; struct mc_st_tensor t[8]; };
static void cb(void *arg, const struct mc_st_tensor *t)
{
    struct got *g = arg;
    if (g->n < 8) g->t[g->n] = *t;
    g->n++;
}

static void test_basic(void)
{
    const char *j = "{\"__metadata__\":{\"format\":\"pt\",\"x\":[1,{\"y\":null}]},"
                    "\"model.layers.0.mlp.experts.3.up_proj.weight\":{\"dtype\":\"BF16\",\"shape\":[64,32],\"data_offsets\":[0,4096]},"
                    " \"b\" : { \"shape\" : [ ] , \"data_offsets\" : [ 4096 , 4100 ], \"dtype\" : \"F32\" },"
                    "\"q\\\"x\":{\"dtype\":\"I8\",\"shape\":[2,3,4],\"data_offsets\":[4100,4124]}}";
    struct got g = {0};
    int n = mc_st_parse(j, strlen(j), cb, &g);
    MC_CHECK(n == 3 && g.n == 3, "n=%d", n);
    MC_CHECK(!strcmp(g.t[0].name, "model.layers.0.mlp.experts.3.up_proj.weight"), "%s", g.t[0].name);
    MC_CHECK(g.t[0].dtype == MC_DT_BF16 && g.t[0].ndim == 2 && g.t[0].shape[0] == 64 && g.t[0].shape[1] == 32, "t0");
    MC_CHECK(g.t[0].begin == 0 && g.t[0].end == 4096, "t0 offsets");
    MC_CHECK(!strcmp(g.t[1].name, "b") && g.t[1].dtype == MC_DT_F32 && g.t[1].ndim == 0 && g.t[1].begin == 4096 && g.t[1].end == 4100, "t1");
    MC_CHECK(!strcmp(g.t[2].name, "q\"x") && g.t[2].dtype == MC_DT_I8 && g.t[2].ndim == 3 && g.t[2].shape[2] == 4, "t2");
}

static void test_bad(void)
{
    const char *bad[] = {"", "{", "[]", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}",
                         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}",
                         "{\"a\":1}", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct got g = {0};
        MC_CHECK(mc_st_parse(bad[i], strlen(bad[i]), cb, &g) < 0, "accepted #%zu: %s", i, bad[i]);
    }
    MC_CHECK(mc_st_parse("{}", 2, cb, NULL) == 0, "empty object");
    /* every prefix of a valid header: no crash (ASan), never more tensors than present */
    const char *j = "{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,8]},\"v\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[8,11]}}";
    size_t n = strlen(j);
    for (size_t cut = 0; cut < n; cut++) {
        char *p = malloc(cut + 1); /* exact size so ASan sees overreads */
        memcpy(p, j, cut);
        struct got g = {0};
        int r = mc_st_parse(p, cut, cb, &g);
        MC_CHECK(r < 0 && g.n <= 2, "prefix %zu gave %d", cut, r);
        free(p);
    }
}

int main(void)
{
    MC_RUN(test_basic);
    MC_RUN(test_bad);
    return MC_TEST_EXIT();
}
