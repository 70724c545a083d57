# `moecap report` tests: unit tests of its pieces, CLI checks on synthetic traces, and the
# end-to-end comparisons with moe-ref's ground truth and a python3-torch MoE script.
$(OBJ)/tests/report/%.o: CFLAGS += -Ipostproc -Itests

$(TBIN)/test_report_unit: $(OBJ)/tests/report/test_report_unit.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)

TESTS += $(TBIN)/test_report_unit tests/report/test_report_cli.sh tests/report/test_report_engine.sh \
         tests/report/test_report_torch.sh tests/report/test_cost_report.py \
         tests/report/test_report_offload.sh tests/report/test_report_ep.sh \
         tests/report/test_report_serve_ep.py
TEST_DEPS += $(TBIN)/test_report_unit $(BIN)/moecap

# GPU attribution on synthetic moe-ref-CUDA-shaped traces (device naming, bf16 element size, top-k taps)
$(TBIN)/test_report_gpu: $(OBJ)/tests/report/test_report_gpu.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)
TESTS += $(TBIN)/test_report_gpu
TEST_DEPS += $(TBIN)/test_report_gpu
# the real chain on the CPU emulation of CUDA (skips where tests/cuda/emu is not built)
TESTS += tests/report/test_report_gpu_chain.sh

# cost, energy and what-if arithmetic (postproc/cost/) against hand-computed figures
$(TBIN)/test_cost_unit: $(OBJ)/tests/report/test_cost_unit.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)
TESTS += $(TBIN)/test_cost_unit
TEST_DEPS += $(TBIN)/test_cost_unit
