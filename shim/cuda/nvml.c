/* NVML counters for libmoecap.so, loaded with dlopen (no build-time dependency, no
 * nvml.h needed): per GPU, once at start the name (MC_REC_NOTE "nvml.device_name <i>
 * <name>", for hardware auto-detection) and static facts (memory size, max clocks, memory
 * bus width, power limit: peaks can be derived), then at every sample the total energy
 * (mJ, cumulative), power (mW), SM/memory clocks (MHz) and used memory (bytes) as
 * MC_REC_COUNTER (source MC_CTR_NVML). Samples come from a low-rate thread
 * (MOECAP_NVML_INTERVAL_MS, default 100; 0 = only at flush points) and at flushes.
 * MOECAP_NVML_LIB overrides the library path (tests use a fake). Missing NVML = one note. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "shim_core.h"
#include "mc_cuda.h"

/* The few NVML types used, per NVML's public API (all enums are ints). */
typedef int nvml_ret;
typedef void *nvml_dev;
struct nvml_memory { unsigned long long total, free, used; };
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };

static struct {
    void *lib;
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*count)(unsigned int *);
    nvml_ret (*handle)(unsigned int, nvml_dev *);
    nvml_ret (*name)(nvml_dev, char *, unsigned int);
    nvml_ret (*energy)(nvml_dev, unsigned long long *);
    nvml_ret (*power)(nvml_dev, unsigned int *);
    nvml_ret (*clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*max_clock)(nvml_dev, int, unsigned int *);
    nvml_ret (*memory)(nvml_dev, struct nvml_memory *);
    nvml_ret (*bus_width)(nvml_dev, unsigned int *);
    nvml_ret (*power_limit)(nvml_dev, unsigned int *);
} nv;

#define MAX_DEV 64
static unsigned int ndev;
static nvml_dev devs[MAX_DEV];
static int started;            /* 1 = running, -1 = unavailable */
static pthread_mutex_t sample_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t sampler;
static int sampler_running;
static volatile int sampler_stop;
static long interval_ms = 100;

/* Interned names/units, resolved once at start. */
enum { S_ENERGY, S_POWER, S_CLK_SM, S_CLK_MEM, S_MEM_USED, S_MEM_TOTAL, S_MAX_CLK_SM,
       S_MAX_CLK_MEM, S_BUS_WIDTH, S_POWER_LIMIT, S_N };
static const char *const s_names[S_N] = {
    "nvml.energy", "nvml.power", "nvml.clock_sm", "nvml.clock_mem", "nvml.mem_used",
    "nvml.mem_total", "nvml.max_clock_sm", "nvml.max_clock_mem", "nvml.mem_bus_width",
    "nvml.power_limit" };
static const char *const s_units[S_N] = {
    "mJ", "mW", "MHz", "MHz", "bytes", "bytes", "MHz", "MHz", "bit", "mW" };
static uint32_t s_name_id[S_N], s_unit_id[S_N];

static void counter(int which, int device, double value, int cumulative, uint64_t t)
{
    struct mc_rec_counter *r = mc_rec_reserve(MC_REC_COUNTER, sizeof *r);
    if (!r) return;
    r->t_ns = t;
    r->value = value;
    r->name_str = s_name_id[which];
    r->unit_str = s_unit_id[which];
    r->tid = -1;
    r->device = device;
    r->source = MC_CTR_NVML;
    r->cumulative = (uint16_t)cumulative;
    mc_rec_commit(r);
}

#define SYM(field, name) (*(void **)&nv.field = dlsym(nv.lib, name))

static int load(void)
{
    const char *path = getenv("MOECAP_NVML_LIB");
    if (!path || !*path) path = "libnvidia-ml.so.1";
    nv.lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!nv.lib) {
        mc_note(MC_NOTE_INFO, "NVML not available (%s): no GPU energy/power counters; "
                "cost falls back to TDP estimates", path);
        return -1;
    }
    if (!SYM(init, "nvmlInit_v2")) SYM(init, "nvmlInit");
    SYM(shutdown, "nvmlShutdown");
    if (!SYM(count, "nvmlDeviceGetCount_v2")) SYM(count, "nvmlDeviceGetCount");
    if (!SYM(handle, "nvmlDeviceGetHandleByIndex_v2")) SYM(handle, "nvmlDeviceGetHandleByIndex");
    SYM(name, "nvmlDeviceGetName");
    SYM(energy, "nvmlDeviceGetTotalEnergyConsumption");
    SYM(power, "nvmlDeviceGetPowerUsage");
    SYM(clock, "nvmlDeviceGetClockInfo");
    SYM(max_clock, "nvmlDeviceGetMaxClockInfo");
    SYM(memory, "nvmlDeviceGetMemoryInfo");
    SYM(bus_width, "nvmlDeviceGetMemoryBusWidth");
    SYM(power_limit, "nvmlDeviceGetEnforcedPowerLimit");
    if (!nv.init || !nv.count || !nv.handle) {
        mc_note(MC_NOTE_WARNING, "NVML library %s lacks nvmlInit/nvmlDeviceGetCount: not used", path);
        return -1;
    }
    int rc = nv.init();
    if (rc != 0) {
        mc_note(MC_NOTE_WARNING, "NVML: nvmlInit failed (%d): no GPU energy/power counters", rc);
        return -1;
    }
    if (nv.count(&ndev) != 0) ndev = 0;
    if (ndev > MAX_DEV) ndev = MAX_DEV;
    for (unsigned int i = 0; i < ndev; i++)
        if (nv.handle(i, &devs[i]) != 0) devs[i] = NULL;
    return 0;
}

static void static_facts(void)
{
    uint64_t t = mc_now_ns();
    for (unsigned int i = 0; i < ndev; i++) {
        if (!devs[i]) continue;
        char name[96] = "";
        if (nv.name && nv.name(devs[i], name, sizeof name) == 0) {
            name[sizeof name - 1] = 0;
            mc_note(MC_NOTE_INFO, "nvml.device_name %u %s", i, name);
        }
        struct nvml_memory m;
        unsigned int v;
        if (nv.memory && nv.memory(devs[i], &m) == 0) counter(S_MEM_TOTAL, (int)i, (double)m.total, 0, t);
        if (nv.max_clock && nv.max_clock(devs[i], NVML_CLOCK_SM, &v) == 0) counter(S_MAX_CLK_SM, (int)i, v, 0, t);
        if (nv.max_clock && nv.max_clock(devs[i], NVML_CLOCK_MEM, &v) == 0) counter(S_MAX_CLK_MEM, (int)i, v, 0, t);
        if (nv.bus_width && nv.bus_width(devs[i], &v) == 0) counter(S_BUS_WIDTH, (int)i, v, 0, t);
        if (nv.power_limit && nv.power_limit(devs[i], &v) == 0) counter(S_POWER_LIMIT, (int)i, v, 0, t);
    }
}

void mc_nvml_sample(void)
{
    if (__atomic_load_n(&started, __ATOMIC_ACQUIRE) != 1) return;
    pthread_mutex_lock(&sample_lock);
    for (unsigned int i = 0; i < ndev; i++) {
        if (!devs[i]) continue;
        uint64_t t = mc_now_ns();
        unsigned long long e;
        unsigned int v;
        struct nvml_memory m;
        if (nv.energy && nv.energy(devs[i], &e) == 0) counter(S_ENERGY, (int)i, (double)e, 1, t);
        if (nv.power && nv.power(devs[i], &v) == 0) counter(S_POWER, (int)i, v, 0, t);
        if (nv.clock && nv.clock(devs[i], NVML_CLOCK_SM, &v) == 0) counter(S_CLK_SM, (int)i, v, 0, t);
        if (nv.clock && nv.clock(devs[i], NVML_CLOCK_MEM, &v) == 0) counter(S_CLK_MEM, (int)i, v, 0, t);
        if (nv.memory && nv.memory(devs[i], &m) == 0) counter(S_MEM_USED, (int)i, (double)m.used, 0, t);
    }
    pthread_mutex_unlock(&sample_lock);
}

static void *sampler_main(void *arg)
{
    (void)arg;
    struct timespec ts = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
    while (!sampler_stop) {
        nanosleep(&ts, NULL);
        if (sampler_stop) break;
        mc_nvml_sample();
    }
    return NULL;
}

static void start_sampler(void)
{
    sampler_stop = 0;
    if (interval_ms <= 0) return;
    if (pthread_create(&sampler, NULL, sampler_main, NULL) == 0) sampler_running = 1;
}

void mc_nvml_start(void)
{
    int expect = 0;
    if (!__atomic_compare_exchange_n(&started, &expect, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return;
    const char *iv = getenv("MOECAP_NVML_INTERVAL_MS");
    if (iv && *iv) interval_ms = strtol(iv, NULL, 10);
    if (load() != 0) { __atomic_store_n(&started, -1, __ATOMIC_RELEASE); return; }
    for (int i = 0; i < S_N; i++) {
        s_name_id[i] = mc_intern(s_names[i]);
        s_unit_id[i] = mc_intern(s_units[i]);
    }
    static_facts();
    __atomic_store_n(&started, 1, __ATOMIC_RELEASE);
    mc_nvml_sample();
    start_sampler();
}

void mc_nvml_stop(void)
{
    if (sampler_running) {
        sampler_stop = 1;
        pthread_join(sampler, NULL);
        sampler_running = 0;
    }
    if (__atomic_load_n(&started, __ATOMIC_ACQUIRE) == 1) mc_nvml_sample();
}

/* The sampler thread does not survive fork: restart it in the child. */
void mc_nvml_after_fork_child(void)
{
    pthread_mutex_init(&sample_lock, NULL);
    if (sampler_running) { sampler_running = 0; start_sampler(); }
}
