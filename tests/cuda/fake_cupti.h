/* Test-side API of tests/cuda/fake_cupti.c (the fake CUPTI library). */
#ifndef MC_FAKE_CUPTI_H
#define MC_FAKE_CUPTI_H
#include <stddef.h>
#include <cupti.h>
#define FAKE_CUPTI_BEHIND_NS 5000000000ull   /* cuptiGetTimestamp = CLOCK_MONOTONIC - 5 s */
void fake_cupti_add(const void *rec, size_t size);   /* delivered at the next FlushAll */
extern CUpti_CallbackFunc fake_cupti_callback;       /* what cuptiSubscribe registered */
extern size_t fake_cupti_dropped;                    /* next GetNumDroppedRecords answer */
#endif
