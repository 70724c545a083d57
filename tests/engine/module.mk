# moe-ref tests: oracle comparison (logits, routing), ground-truth formulas, bad input,
# gen determinism (test_engine.py); the public engine API (test_engine_api.c); the helper
# thread pool (test_pool.c).
$(OBJ)/tests/engine/%.o: CFLAGS += -Ireference-engine -Itests

$(TBIN)/test_engine_api: $(OBJ)/tests/engine/test_engine_api.o $(LIB)/libmoeref.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MOEREF_LIBS)

$(TBIN)/test_pool: $(OBJ)/tests/engine/test_pool.o $(LIB)/libmoeref.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MOEREF_LIBS)

TESTS     += tests/engine/test_engine.py $(TBIN)/test_engine_api $(TBIN)/test_pool tests/engine/test_offload.py tests/engine/test_offload_cuda_emu.py
TEST_DEPS += $(BIN)/moe-ref $(TBIN)/test_engine_api $(TBIN)/test_pool
