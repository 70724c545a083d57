/* A fake libnvidia-ml for tests: one device "Fake GPU H100" whose energy counter starts at
 * 1000 mJ and grows by 500 mJ per read; power 312 W; clocks 1980/2619 MHz; 80 GiB memory
 * with 1 GiB used; 5120-bit bus; 700 W limit. Signatures per NVML's public API. */
#include <stdio.h>
#include <string.h>

typedef struct { unsigned long long total, free, used; } fake_nvml_memory;
static unsigned long long energy = 500;
static int dev_token;

int nvmlInit_v2(void) { return 0; }
int nvmlShutdown(void) { return 0; }
int nvmlDeviceGetCount_v2(unsigned int *n) { *n = 1; return 0; }
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h) { if (i) return 2; *h = &dev_token; return 0; }
int nvmlDeviceGetName(void *h, char *name, unsigned int len) { (void)h; snprintf(name, len, "Fake GPU H100"); return 0; }
int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *mj) { (void)h; energy += 500; *mj = energy; return 0; }
int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) { (void)h; *mw = 312000; return 0; }
int nvmlDeviceGetClockInfo(void *h, int type, unsigned int *mhz) { (void)h; *mhz = type == 2 ? 2619 : 1980; return 0; }
int nvmlDeviceGetMaxClockInfo(void *h, int type, unsigned int *mhz) { (void)h; *mhz = type == 2 ? 2619 : 1980; return 0; }
int nvmlDeviceGetMemoryInfo(void *h, fake_nvml_memory *m) { (void)h; m->total = 80ull << 30; m->used = 1ull << 30; m->free = m->total - m->used; return 0; }
int nvmlDeviceGetMemoryBusWidth(void *h, unsigned int *w) { (void)h; *w = 5120; return 0; }
int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw) { (void)h; *mw = 700000; return 0; }
