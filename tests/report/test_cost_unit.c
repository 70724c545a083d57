/* Unit tests of the cost code (postproc/cost/): parameters from a profile and --cost, cost and
 * energy arithmetic against figures derived by hand in the comments, the estimate path and its
 * label, counters of several processes on one host counted once, and the roofline what-if on
 * steps of known bytes and FLOPs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mc_test.h"
#include "cost/cost.h"
#include "hw/hw_cost.h"
#include "cost/energy.h"
#include "cost/whatif.h"

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(b)); }

static const char *PROFILE =
    "{\"name\": \"p\", \"kind\": \"gpu\", \"memory_bandwidth_Bps\": 2e10, \"price_usd\": 1000, \"tdp_w\": 300,"
    " \"idle_w\": 60, \"lifetime_years\": 5, \"expected_utilisation\": 0.5,"
    " \"host_share\": {\"cpu_price_usd\": 100, \"dram_price_usd\": 50, \"power_w\": 40},"
    " \"cloud_usd_per_hour\": 3, \"peak_flops\": {\"f32\": 1e12}}";

static void params(struct mc_cost_params *p, int devices)
{
    cJSON *j = cJSON_Parse(PROFILE);
    mc_cost_params_from_profile(p, j, "p", devices);
    cJSON_Delete(j);
}

static void test_params(void)
{
    struct mc_cost_params p;
    char err[512];
    params(&p, 2);
    MC_CHECK(p.v[MC_CP_PRICE_USD] == 1000 && p.v[MC_CP_HOST_POWER_W] == 40 && p.v[MC_CP_DEVICES] == 2, "profile values");
    MC_CHECK(p.v[MC_CP_USD_PER_KWH] == 0.15 && strstr(p.source[MC_CP_USD_PER_KWH], "default"), "electricity default");
    MC_CHECK(strstr(p.source[MC_CP_PRICE_USD], "hardware profile p") != NULL, "source %s", p.source[MC_CP_PRICE_USD]);
    MC_CHECK(mc_cost_params_override(&p, "price_usd=2500,usd_per_kwh=0.2", err, sizeof err) == 0, "%s", err);
    MC_CHECK(p.v[MC_CP_PRICE_USD] == 2500 && !strcmp(p.source[MC_CP_PRICE_USD], "--cost"), "override");
    MC_CHECK(mc_cost_params_override(&p, "bogus=1", err, sizeof err) == -1 && strstr(err, "price_usd"), "unknown name: %s", err);
    MC_CHECK(mc_cost_params_override(&p, "tdp_w=abc", err, sizeof err) == -1, "not a number");
    MC_CHECK(mc_cost_params_override(&p, "devices=4", err, sizeof err) == -1, "devices comes from --devices");
    MC_CHECK(mc_cost_params_override(&p, "utilisation=1.5", err, sizeof err) == 0 && mc_cost_params_check(&p, err, sizeof err) == -1
             && strstr(err, "utilisation"), "range: %s", err);
    /* idle defaults to 30 % of TDP when the profile lacks it */
    cJSON *j = cJSON_Parse("{\"name\": \"q\", \"tdp_w\": 200}");
    mc_cost_params_from_profile(&p, j, "q", 1);
    MC_CHECK(p.v[MC_CP_IDLE_W] == 60 && strstr(p.source[MC_CP_IDLE_W], "30 %"), "idle default %g", p.v[MC_CP_IDLE_W]);
    MC_CHECK(isnan(p.v[MC_CP_PRICE_USD]) && isnan(p.v[MC_CP_CLOUD_USD_PER_HOUR]), "unknown stays unknown");
    cJSON_Delete(j);
    j = cJSON_Parse("{\"name\": \"r\", \"idle_w\": 500, \"tdp_w\": 100}");
    MC_CHECK(mc_hw_cost_fields_check(j, err, sizeof err) == -1 && strstr(err, "idle_w"), "idle > tdp: %s", err);
    cJSON_Delete(j);
    j = cJSON_Parse("{\"name\": \"s\", \"host_share\": {\"power_w\": \"lots\"}}");
    MC_CHECK(mc_hw_cost_fields_check(j, err, sizeof err) == -1 && strstr(err, "host_share.power_w"), "type: %s", err);
    cJSON_Delete(j);
}

/* The work of the hand-computed case: a prefill step (1000 tokens, 4 sequences, 1 s), ten
 * decode steps (4 tokens, 4 sequences, 0.2 s), a mixed step (12 tokens, 4 sequences, 0.3 s):
 * input tokens 1000 + (12 - 4) = 1008, output 4 + 40 + 4 = 48; input time 1 + 0.3 x 8/12 =
 * 1.2 s, output time 2 + 0.3 x 4/12 = 2.1 s. */
static void work(struct mc_cost_work *w)
{
    memset(w, 0, sizeof *w);
    mc_cost_work_add_step(w, 0, 1000, 4, 1.0);
    for (int i = 0; i < 10; i++) mc_cost_work_add_step(w, 1, 4, 4, 0.2);
    mc_cost_work_add_step(w, 2, 12, 4, 0.3);
    w->run_s = 3600;
}

static void test_cost_arithmetic(void)
{
    struct mc_cost_params p;
    struct mc_cost_work w;
    struct mc_cost_result r;
    char err[256];
    params(&p, 2);
    mc_cost_params_override(&p, "usd_per_kwh=0.2", err, sizeof err);
    work(&w);
    MC_CHECK(near(w.input_tokens, 1008) && near(w.output_tokens, 48), "tokens %g %g", w.input_tokens, w.output_tokens);
    MC_CHECK(near(w.input_time_s, 1.2) && near(w.output_time_s, 2.1), "times %g %g", w.input_time_s, w.output_time_s);
    /* 7.2e6 J = 2 kWh -> $0.40; capital 2 x (1000 + 100 + 50) = $2300; amortised over
     * 5 x 365.25 x 86400 = 157,788,000 s at utilisation 0.5: 2300 x 3600 / 0.5 / 157788000 */
    mc_cost_compute(&p, &w, 7.2e6, &r);
    double amort = 2300.0 * 7200.0 / 157788000.0, run = 0.40 + amort;
    MC_CHECK(near(r.energy_usd, 0.40), "energy %.12g", r.energy_usd);
    MC_CHECK(near(r.capital_usd, 2300), "capital %g", r.capital_usd);
    MC_CHECK(near(r.amortised_usd, amort), "amortised %.12g want %.12g", r.amortised_usd, amort);
    MC_CHECK(near(r.owned.run_usd, run), "run %.12g", r.owned.run_usd);
    MC_CHECK(near(r.owned.per_1m_input_usd, run * (1.2 / 3.3) / 1008 * 1e6), "per 1M input %.12g", r.owned.per_1m_input_usd);
    MC_CHECK(near(r.owned.per_1m_output_usd, run * (2.1 / 3.3) / 48 * 1e6), "per 1M output %.12g", r.owned.per_1m_output_usd);
    MC_CHECK(near(r.owned.per_1m_tokens_usd, run / 1056 * 1e6), "per 1M tokens %.12g", r.owned.per_1m_tokens_usd);
    /* cloud: $3 per device-hour x 2 devices x 1 h = $6, no utilisation factor */
    MC_CHECK(near(r.cloud.run_usd, 6) && near(r.cloud.per_1m_output_usd, 6 * (2.1 / 3.3) / 48 * 1e6), "cloud %g", r.cloud.run_usd);
    /* MoE-CAP: 1.25 x (1000 x 2 + 7214) = 11517.5; 1.2 x (300 x 2 + 350) W x 1 h = 1.14 kWh x $0.15 = $0.171 */
    MC_CHECK(near(r.moecap_capital_usd, 11517.5) && near(r.moecap_energy_usd, 0.171), "moecap %.12g %.12g",
             r.moecap_capital_usd, r.moecap_energy_usd);
    MC_CHECK(near(r.moecap_total_usd, 11517.671), "moecap total %.12g", r.moecap_total_usd);
    /* unknown energy: energy and run cost unknown, the amortised part still known */
    mc_cost_compute(&p, &w, NAN, &r);
    MC_CHECK(isnan(r.owned.run_usd) && isnan(r.owned.per_1m_tokens_usd) && near(r.amortised_usd, amort), "unknown energy");
    /* no cloud price: no cloud figures */
    p.v[MC_CP_CLOUD_USD_PER_HOUR] = NAN;
    mc_cost_compute(&p, &w, 7.2e6, &r);
    MC_CHECK(isnan(r.cloud.run_usd), "no cloud");
    cJSON *j = mc_cost_json(&p, &w, &r, 1);
    const cJSON *lab = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "owned"), "label");
    MC_CHECK(cJSON_IsString(lab) && strstr(lab->valuestring, "estimated"), "estimated label");
    MC_CHECK(!cJSON_GetObjectItem(j, "cloud") && cJSON_GetObjectItem(j, "moecap_compat_cost"), "sections");
    const cJSON *pp = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "parameters"), "usd_per_kwh");
    MC_CHECK(cJSON_GetObjectItem(pp, "value")->valuedouble == 0.2 && !strcmp(cJSON_GetObjectItem(pp, "source")->valuestring, "--cost"),
             "parameter printed with its source");
    cJSON_Delete(j);
}

static void test_window(void)
{
    /* cumulative 0, 10, 30 J at 0, 1, 2 s: [0.5, 1.5] s holds 20 - 5 = 15 J (interpolated); [1.5, 3] s holds
     * 30 - 20 inside plus 1 s at the mean rate 15 J/s outside = 25 J, covered 0.5 / 1.5 */
    uint64_t t[3] = {0, 1000000000ull, 2000000000ull};
    double v[3] = {0, 10, 30}, a, cov;
    MC_CHECK(mc_cumulative_window(t, v, 3, 500000000ull, 1500000000ull, &a, &cov) == 0 && near(a, 15) && near(cov, 1), "%g %g", a, cov);
    MC_CHECK(mc_cumulative_window(t, v, 3, 1500000000ull, 3000000000ull, &a, &cov) == 0 && near(a, 25) && near(cov, 1.0 / 3), "%g %g", a, cov);
    MC_CHECK(mc_cumulative_window(t, v, 1, 0, 1, &a, &cov) == -1, "one sample");
}

static void test_energy_measured(void)
{
    struct mc_energy *e = mc_energy_new();
    /* two processes on host h read the same package counter (each from its own baseline) at
     * 10 W, the longer series must be taken once; DRAM 2 W; a core subzone is ignored */
    mc_energy_set_host(e, 1, "h");
    mc_energy_set_host(e, 2, "h");
    for (int i = 0; i <= 10; i++) {
        uint64_t t = (uint64_t)i * 100000000ull;   /* 0 .. 1 s */
        mc_energy_add(e, 1, "rapl.package-0", "uJ", -1, 1, t, 1e6 * i);          /* 1 J per 0.1 s */
        mc_energy_add(e, 1, "rapl.package-0.dram", "uJ", -1, 1, t, 2e5 * i);
        mc_energy_add(e, 1, "rapl.package-0.core", "uJ", -1, 1, t, 9e6 * i);
        mc_energy_add(e, 1, "proc.cpu_user", "s", -1, 1, t, 0.06 * i);
        mc_energy_add(e, 1, "proc.cpu_system", "s", -1, 1, t, 0.02 * i);
        if (i >= 5) mc_energy_add(e, 2, "rapl.package-0", "uJ", -1, 1, t, 5e6 + 1e6 * (i - 5));
        mc_energy_add(e, 1, "proc.rss", "bytes", -1, 0, t, 1000.0 * (i == 3 ? 9 : 1));
    }
    struct mc_energy_measured m;
    mc_energy_measure(e, 200000000ull, 800000000ull, &m);
    MC_CHECK(m.have_rapl_package && near(m.rapl_package_J, 6), "package %g", m.rapl_package_J);
    MC_CHECK(m.have_rapl_dram && near(m.rapl_dram_J, 1.2), "dram %g", m.rapl_dram_J);
    MC_CHECK(m.have_cpu && near(m.cpu_s, 0.48), "cpu %g", m.cpu_s);
    MC_CHECK(m.hosts == 1 && near(m.coverage, 1), "hosts %d coverage %g", m.hosts, m.coverage);
    double rss, dev;
    mc_energy_memory(e, &rss, &dev);
    MC_CHECK(rss == 9000 && isnan(dev), "memory %g %g", rss, dev);
    /* a CPU device: package measured, host (DRAM) measured */
    struct mc_cost_params p;
    params(&p, 1);
    struct mc_energy_inputs in = {0, 0.6, NAN, "x", 2};
    struct mc_energy_result r;
    mc_energy_decide(&m, &in, &p, &r);
    MC_CHECK(!r.estimated && near(r.total_J, 7.2) && !strncmp(r.device.method, "measured", 8), "measured %g %s", r.total_J, r.device.method);
    cJSON *j = mc_energy_json(&r, &m, 0.6);
    MC_CHECK(!strcmp(cJSON_GetObjectItem(j, "method")->valuestring, "measured") && cJSON_IsFalse(cJSON_GetObjectItem(j, "estimated")), "label");
    cJSON_Delete(j);
    /* a GPU run on that host without NVML: devices estimated from the kernel busy fraction,
     * host measured (package + DRAM = 7.2 J): 1 x (60 + (300 - 60) x 0.25) W x 0.6 s = 72 J */
    struct mc_energy_inputs g = {1, 0.6, 0.25, "kernels", 0};
    mc_energy_decide(&m, &g, &p, &r);
    MC_CHECK(r.estimated && r.device.estimated && !r.host.estimated && near(r.device.joules, 72) && near(r.total_J, 79.2),
             "gpu estimate %g %g", r.device.joules, r.total_J);
    j = mc_energy_json(&r, &m, 0.6);
    MC_CHECK(!strcmp(cJSON_GetObjectItem(j, "method")->valuestring, "partly estimated"), "partly label");
    MC_CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "devices"), "method")->valuestring, "estimated"), "device label");
    cJSON_Delete(j);
    mc_energy_free(e);
}

static void test_energy_estimated(void)
{
    /* nothing but CPU time: 0.48 s of CPU in 0.6 s on 2 threads = utilisation 0.4; a CPU
     * device 2 x (60 + 240 x 0.4) W x 0.6 s = 187.2 J; host 2 x 40 W x 0.6 s = 48 J */
    struct mc_energy *e = mc_energy_new();
    for (int i = 0; i <= 10; i++) {
        uint64_t t = (uint64_t)i * 100000000ull;
        mc_energy_add(e, 7, "proc.cpu_user", "s", -1, 1, t, 0.08 * i);
    }
    struct mc_energy_measured m;
    mc_energy_measure(e, 200000000ull, 800000000ull, &m);
    struct mc_cost_params p;
    params(&p, 2);
    struct mc_energy_inputs in = {0, 0.6, 0.9, "steps", 2};
    struct mc_energy_result r;
    mc_energy_decide(&m, &in, &p, &r);
    MC_CHECK(near(r.utilisation, 0.4) && near(r.device.joules, 187.2) && near(r.host.joules, 48), "estimate %g %g %g",
             r.utilisation, r.device.joules, r.host.joules);
    cJSON *j = mc_energy_json(&r, &m, 0.6);
    MC_CHECK(!strcmp(cJSON_GetObjectItem(j, "method")->valuestring, "estimated") && cJSON_IsTrue(cJSON_GetObjectItem(j, "estimated")),
             "estimated label");
    MC_CHECK(strstr(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "devices"), "how")->valuestring, "estimated: 2 device(s)") != NULL, "how");
    cJSON_Delete(j);
    /* without TDP nothing can be estimated: unknown, not zero */
    p.v[MC_CP_TDP_W] = p.v[MC_CP_IDLE_W] = NAN;
    mc_energy_decide(&m, &in, &p, &r);
    MC_CHECK(isnan(r.device.joules) && isnan(r.total_J), "no tdp -> unknown");
    mc_energy_free(e);
}

/* Steps of known bytes and FLOPs on a run at 1e10 B/s, 1e11 FLOP/s, one device:
 *   prefill: 1e8 B, 1e11 FLOP, measured 2 s: roof max(0.01, 1) = 1 s, efficiency 0.5
 *   decode x2: 1e9 B, 1e9 FLOP, measured 0.4 s each: roof max(0.1, 0.01) = 0.1 s, efficiency 0.25
 * target at 2e10 B/s, 1e12 FLOP/s: prefill roof max(0.005, 0.1) = 0.1 s -> 0.2 s at the run's
 * efficiency; decode roof max(0.05, 0.001) = 0.05 s -> 0.2 s per step (TPOT), 0.1 s total at 100 %. */
static void test_whatif(void)
{
    struct mc_whatif *w = calloc(1, sizeof *w);
    mc_whatif_init(w, 1);
    cJSON *own = cJSON_Parse("{\"name\": \"own\", \"kind\": \"cpu\", \"memory_bandwidth_Bps\": 1e10, \"peak_flops\": {\"f32\": 1e11},"
                             " \"price_usd\": 100, \"tdp_w\": 10}");
    cJSON *tgt = cJSON_Parse("{\"name\": \"tgt\", \"kind\": \"gpu\", \"memory_bandwidth_Bps\": 2e10, \"peak_flops\": {\"f32\": 1e12},"
                             " \"price_usd\": 1000, \"tdp_w\": 300, \"memory_bytes\": 1e9}");
    cJSON *nof = cJSON_Parse("{\"name\": \"nof\", \"kind\": \"gpu\", \"memory_bandwidth_Bps\": 2e10, \"peak_flops\": {\"bf16\": 1e12}}");
    struct mc_hw h = {0};
    h.json = own; h.name = "own"; h.kind = "cpu"; h.bandwidth_Bps = 1e10; mc_whatif_add_target(w, &h);
    h.json = tgt; h.name = "tgt"; h.kind = "gpu"; h.bandwidth_Bps = 2e10; mc_whatif_add_target(w, &h);
    h.json = nof; h.name = "nof"; mc_whatif_add_target(w, &h);
    mc_whatif_set_run(w, "f32", 1e10, 1e11, 2e9);
    mc_whatif_add_step(w, 0, 1e8, 1e11, 2.0, 100, 1);
    mc_whatif_add_step(w, 1, 1e9, 1e9, 0.4, 1, 1);
    mc_whatif_add_step(w, 1, 1e9, 1e9, 0.4, 1, 1);
    MC_CHECK(near(mc_whatif_efficiency(w, 0), 0.5) && near(mc_whatif_efficiency(w, 1), 0.25), "efficiency");
    struct mc_whatif_pred p;
    MC_CHECK(mc_whatif_predict(w, 0, 0, &p) == 0 && near(p.time_s[0], 2.0) && near(p.time_s[1], 0.8), "own hardware gives the run back");
    MC_CHECK(mc_whatif_predict(w, 1, 0, &p) == 0 && near(p.time_s[0], 0.2) && near(p.time_s[1], 0.4) && near(p.tpot_s, 0.2),
             "at efficiency %g %g %g", p.time_s[0], p.time_s[1], p.tpot_s);
    /* cost on the target: energy 300 W x 0.6 s = 180 J; amortised 1000 / (5 y) x 0.6 s / 0.5 */
    double run = 180 / 3.6e6 * 0.15 + 1000.0 / (5 * 365.25 * 86400) * 0.6 / 0.5;
    MC_CHECK(near(p.energy_J, 180) && near(p.run_usd, run) && near(p.per_1m_tokens_usd, run / 103 * 1e6), "target cost %.12g", p.run_usd);
    MC_CHECK(mc_whatif_predict(w, 1, 1, &p) == 0 && near(p.time_s[0], 0.1) && near(p.time_s[1], 0.1), "at roofline");
    MC_CHECK(mc_whatif_predict(w, 2, 0, &p) == -1 && strstr(w->t[2].skip, "f32"), "no f32 peak: skipped");
    cJSON *j = mc_whatif_json(w);
    const cJSON *rk = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "ranking"), "by_tpot");
    MC_CHECK(cJSON_GetArraySize(rk) == 2 && !strcmp(cJSON_GetArrayItem(rk, 0)->valuestring, "tgt"), "ranking by TPOT");
    MC_CHECK(!strcmp(cJSON_GetObjectItem(j, "label")->valuestring, "prediction"), "labelled a prediction");
    const cJSON *t1 = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "targets"), 1);
    MC_CHECK(cJSON_IsFalse(cJSON_GetObjectItem(t1, "weights_fit")), "2 GB of weights do not fit in 1 GB");
    cJSON_Delete(j);
    cJSON_Delete(own); cJSON_Delete(tgt); cJSON_Delete(nof);
    free(w);
}

int main(void)
{
    MC_RUN(test_params);
    MC_RUN(test_cost_arithmetic);
    MC_RUN(test_window);
    MC_RUN(test_energy_measured);
    MC_RUN(test_energy_estimated);
    MC_RUN(test_whatif);
    return MC_TEST_EXIT();
}
