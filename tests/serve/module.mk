# Tests of `moe-ref serve` (reference-engine/serve/): load sweep, abuse, shutdown.
TESTS += tests/serve/test_serve.py tests/serve/test_serve_e2e.py tests/serve/test_serve_hostile.py
TEST_DEPS += $(BIN)/moe-ref $(BIN)/moecap $(LIB)/libmoecap.so
