# moe-ref tests: oracle comparison (logits, routing), ground-truth formulas, bad input,
# gen determinism (test_engine.py); the public engine API (test_engine_api.c); the helper
# thread pool (test_pool.c); no moe-ref thread burns CPU while it waits: OpenBLAS's workers
# after a threaded call, a task waiting for others' products (test_threads_cpu.py, with the
# preloaded probes blas_idle_probe.c and slow_product_probe.c).
$(OBJ)/tests/engine/%.o: CFLAGS += -Ireference-engine -Itests

$(TBIN)/test_engine_api: $(OBJ)/tests/engine/test_engine_api.o $(LIB)/libmoeref.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MOEREF_LIBS)

$(TBIN)/test_pool: $(OBJ)/tests/engine/test_pool.o $(LIB)/libmoeref.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MOEREF_LIBS)

$(TBIN)/libblas_idle_probe.so: $(OBJ)/tests/engine/blas_idle_probe.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^

$(TBIN)/libslow_product_probe.so: $(OBJ)/tests/engine/slow_product_probe.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ -ldl

TESTS     += tests/engine/test_engine.py tests/engine/test_threads_cpu.py $(TBIN)/test_engine_api $(TBIN)/test_pool tests/engine/test_offload.py tests/engine/test_offload_cuda_emu.py
TEST_DEPS += $(BIN)/moe-ref $(TBIN)/test_engine_api $(TBIN)/test_pool $(TBIN)/libblas_idle_probe.so \
             $(TBIN)/libslow_product_probe.so
