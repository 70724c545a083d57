# `moecap record` tests: exit status, signal passing, LD_PRELOAD kept, usage errors, and
# the Perfetto / MoE-CAP exports of `moecap report` checked against report.json.
$(TBIN)/libpreload_marker.so: $(OBJ)/tests/record/preload_marker.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^

TESTS += tests/record/test_record.py
TEST_DEPS += $(BIN)/moecap $(LIB)/libmoecap.so $(TBIN)/shim_prog $(TBIN)/libpreload_marker.so

# the documented server workflow (record + bench + report) and the report's two views
TESTS += tests/report/test_report_perfetto.py
TEST_DEPS += $(BIN)/moe-ref

# the report document as the views read it (export/report_reader.c)
$(TBIN)/test_report_reader: $(OBJ)/tests/report/test_report_reader.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)
TESTS += $(TBIN)/test_report_reader
TEST_DEPS += $(TBIN)/test_report_reader
