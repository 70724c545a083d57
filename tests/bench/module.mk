# Tests of `moecap bench` (postproc/bench/): unit tests and a misbehaving-server run.
BENCH_LIB_OBJS := $(OBJ)/postproc/bench/score.o $(OBJ)/postproc/bench/sse.o \
                  $(OBJ)/postproc/bench/dataset.o $(OBJ)/postproc/bench/request_log.o \
                  $(OBJ)/postproc/bench/lmeval.o $(OBJ)/postproc/bench/client_view.o

$(OBJ)/tests/bench/%.o: CFLAGS += -Ipostproc -Itests

$(TBIN)/test_bench_unit: $(OBJ)/tests/bench/test_bench_unit.o $(BENCH_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcjson -lm

TESTS += $(TBIN)/test_bench_unit tests/bench/test_bench_misbehave.sh
TEST_DEPS += $(TBIN)/test_bench_unit $(BIN)/moecap
