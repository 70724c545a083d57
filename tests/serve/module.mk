# Tests of `moe-ref serve` (reference-engine/serve/): load sweep, abuse, shutdown.
TESTS += tests/serve/test_serve.py
TEST_DEPS += $(BIN)/moe-ref
