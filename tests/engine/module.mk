# moe-ref tests: oracle comparison (logits, routing), ground-truth formulas, bad input, gen determinism.
TESTS     += tests/engine/test_engine.py
TEST_DEPS += $(BIN)/moe-ref
