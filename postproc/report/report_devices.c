/* Devices counted from the traces (see report_devices.h). */
#include "report/report_devices.h"

#include <stdio.h>
#include <string.h>

void report_devices_gemm(struct report_devices *d, const char *host, int32_t pid, int32_t device)
{
    if (!host) host = "";
    if (device >= 0) {
        for (int i = 0; i < d->n_gpu; i++)
            if (d->gpu[i].device == device && !strncmp(d->gpu[i].host, host, sizeof d->gpu[i].host - 1)) return;
        if (d->n_gpu == REPORT_DEVICES_MAX) { d->more = 1; return; }
        snprintf(d->gpu[d->n_gpu].host, sizeof d->gpu[d->n_gpu].host, "%s", host);
        d->gpu[d->n_gpu++].device = device;
        return;
    }
    int seen_pid = 0, seen_host = 0;
    for (int i = 0; i < d->n_cpu_pids; i++) seen_pid |= d->cpu_pid[i] == pid;
    for (int i = 0; i < d->n_cpu_hosts; i++) seen_host |= !strncmp(d->cpu_host[i], host, sizeof d->cpu_host[i] - 1);
    if (!seen_pid) {
        if (d->n_cpu_pids < REPORT_DEVICES_MAX) d->cpu_pid[d->n_cpu_pids++] = pid;
        else d->more = 1;
    }
    if (!seen_host) {
        if (d->n_cpu_hosts < REPORT_DEVICES_MAX) snprintf(d->cpu_host[d->n_cpu_hosts++], sizeof d->cpu_host[0], "%s", host);
        else d->more = 1;
    }
}

int report_devices_choose(struct report_devices *d, int user)
{
    if (user > 0) {
        d->devices = user;
        d->from = "--devices";
    } else {
        d->devices = d->n_gpu > 0 ? d->n_gpu : d->n_cpu_hosts;
        if (d->devices < 1) d->devices = 1;
        d->from = "trace";
    }
    return d->devices;
}

void report_devices_json(const struct report_devices *d, cJSON *h)
{
    cJSON_AddStringToObject(h, "devices_from", d->from ? d->from : "trace");
    cJSON *s = cJSON_AddObjectToObject(h, "devices_seen");
    cJSON_AddNumberToObject(s, "gpus", d->n_gpu);
    cJSON_AddNumberToObject(s, "cpu_hosts", d->n_cpu_hosts);
    cJSON_AddNumberToObject(s, "cpu_processes", d->n_cpu_pids);
    cJSON *g = cJSON_AddArrayToObject(s, "gpu_list");
    for (int i = 0; i < d->n_gpu; i++) {
        char b[96];
        snprintf(b, sizeof b, "%s:%d", d->gpu[i].host, (int)d->gpu[i].device);
        cJSON_AddItemToArray(g, cJSON_CreateString(b));
    }
    if (d->more) cJSON_AddBoolToObject(s, "truncated", 1);
}
