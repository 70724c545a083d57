# Trace reader library and `moecap dump` tests.
$(OBJ)/tests/trace/%.o: CFLAGS += -Ipostproc -Itests

$(TBIN)/test_trace_reader: $(OBJ)/tests/trace/test_trace_reader.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK)

TESTS += $(TBIN)/test_trace_reader tests/trace/test_dump.sh
TEST_DEPS += $(TBIN)/test_trace_reader $(BIN)/moecap
