/* Minimal test helpers printing the lines tests/run-tests.sh counts. */
#ifndef MC_TEST_H
#define MC_TEST_H
#include <stdio.h>
#include <string.h>

static int mc_test_failures;

#define MC_CHECK(cond, ...) do { if (!(cond)) { \
    printf("# %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
    printf(__VA_ARGS__); printf("\n"); mc_test_failures++; } } while (0)

/* Runs fn() as one named case; the case fails if any MC_CHECK inside failed. */
#define MC_RUN(fn) do { int before_ = mc_test_failures; fn(); \
    printf("%s - %s\n", mc_test_failures == before_ ? "ok" : "not ok", #fn); fflush(stdout); } while (0)

#define MC_TEST_EXIT() (mc_test_failures ? 1 : 0)
#endif
