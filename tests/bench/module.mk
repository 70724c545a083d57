# Tests of `moecap bench` (postproc/bench/): unit tests, a misbehaving-server run, hostile servers and run directories.
$(OBJ)/tests/bench/%.o: CFLAGS += -Ipostproc -Itests

$(TBIN)/test_bench_unit: $(OBJ)/tests/bench/test_bench_unit.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)

TESTS += $(TBIN)/test_bench_unit tests/bench/test_bench_misbehave.sh tests/bench/test_bench_hostile.py
TEST_DEPS += $(TBIN)/test_bench_unit $(BIN)/moecap
