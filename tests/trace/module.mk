# Trace reader library and `moecap dump` tests.
TRACE_READER_OBJS := $(OBJ)/postproc/trace/trace_reader.o $(OBJ)/postproc/trace/trace_synth.o

$(OBJ)/tests/trace/%.o: CFLAGS += -Ipostproc -Itests

$(TBIN)/test_trace_reader: $(OBJ)/tests/trace/test_trace_reader.o $(TRACE_READER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

TESTS += $(TBIN)/test_trace_reader tests/trace/test_dump.sh
TEST_DEPS += $(TBIN)/test_trace_reader $(BIN)/moecap
