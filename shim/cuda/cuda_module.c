/* Registers the CUDA side of libmoecap.so with the shim core (family "cuda") and loads the CUPTI collector
 * (libmoecap-cupti.so, next to libmoecap.so, or MOECAP_CUPTI_LIB) with dlopen when the
 * process first uses CUDA, or at start with MOECAP_CUPTI=1. libmoecap.so itself never
 * links libcupti, so it loads in programs without CUDA. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "shim_core.h"
#include "mc_cuda.h"

void mc_nvml_after_fork_child(void);

const struct mc_cuda_host mc_cuda_host = {
    .launch_count = mc_cuda_launch_count,
    .nvml_start = mc_nvml_start,
};

void mc_cupti_load(void)
{
    static int once;
    if (__atomic_exchange_n(&once, 1, __ATOMIC_ACQ_REL)) return;
    char path[PATH_MAX];
    const char *env = getenv("MOECAP_CUPTI_LIB");
    if (env && *env) {
        snprintf(path, sizeof path, "%s", env);
    } else {
        Dl_info info;
        if (!dladdr((void *)&mc_cupti_load, &info) || !info.dli_fname) return;
        snprintf(path, sizeof path, "%s", info.dli_fname);
        char *slash = strrchr(path, '/');
        size_t dir = slash ? (size_t)(slash - path + 1) : 0;
        snprintf(path + dir, sizeof path - dir, "libmoecap-cupti.so");
    }
    void *h = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
    if (!h) {
        mc_note(MC_NOTE_WARNING, "CUPTI collector not loaded (%s): no kernel times; "
                "API interposition only", dlerror());
        return;
    }
    int (*start)(const struct mc_cuda_host *) = (int (*)(const struct mc_cuda_host *))dlsym(h, "mc_cupti_start");
    if (!start) {
        mc_note(MC_NOTE_WARNING, "CUPTI collector %s has no mc_cupti_start: not used", path);
        return;
    }
    start(&mc_cuda_host);   /* the collector registers its own flush and fork hooks */
}

static void cuda_module_start(void)
{
    const char *v = getenv("MOECAP_CUPTI");
    if (v && (!strcmp(v, "1") || !strcmp(v, "on"))) mc_cupti_load();
    v = getenv("MOECAP_NVML");
    if (v && (!strcmp(v, "1") || !strcmp(v, "on"))) mc_nvml_start();
}

static void cuda_module_flush(void)
{
    static uint64_t reported;
    mc_nvml_sample();
    uint64_t d = mc_router_tap_dropped();
    if (d != reported) {
        mc_note(MC_NOTE_WARNING, "router-logit tap: %llu router outputs not tapped (see earlier notes)",
                (unsigned long long)(d - reported));
        reported = d;
    }
}

static const struct mc_family cuda_family = {
    .name = "cuda",
    .init = cuda_module_start,
    .flush = cuda_module_flush,
    .fork_child = mc_nvml_after_fork_child,
};

__attribute__((constructor(200))) static void cuda_module_register(void)
{
    mc_family_register(&cuda_family);
}
