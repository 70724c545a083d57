/* Distribution summaries for report aggregates: mean, min, max and nearest-rank
 * percentiles (p-th percentile = the ceil(p/100 * n)-th smallest value). */
#ifndef MOECAP_REPORT_STATS_H
#define MOECAP_REPORT_STATS_H
#include <stddef.h>

struct mc_dist { double mean, min, p50, p90, p99, max; };

/* Sorts v in place. n >= 1. */
void mc_dist_compute(double *v, size_t n, struct mc_dist *d);
/* Nearest-rank percentile of sorted v[0..n-1]. */
double mc_rep_percentile(const double *v, size_t n, double p);
#endif
