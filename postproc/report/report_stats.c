/* Distribution summaries (see report_stats.h). */
#include "report/report_stats.h"

#include <math.h>
#include <stdlib.h>

static int dcmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double mc_rep_percentile(const double *v, size_t n, double p)
{
    if (!n) return 0;
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);
    if (rank < 1) rank = 1;
    if (rank > n) rank = n;
    return v[rank - 1];
}

void mc_dist_compute(double *v, size_t n, struct mc_dist *d)
{
    qsort(v, n, sizeof *v, dcmp);
    double s = 0;
    for (size_t i = 0; i < n; i++) s += v[i];
    d->mean = s / (double)n;
    d->min = v[0];
    d->max = v[n - 1];
    d->p50 = mc_rep_percentile(v, n, 50);
    d->p90 = mc_rep_percentile(v, n, 90);
    d->p99 = mc_rep_percentile(v, n, 99);
}
