# Tests for cpuprof/ (CPU counters inside libmoecap.so).
$(OBJ)/tests/cpuprof/%.o: CFLAGS += -Icpuprof

$(TBIN)/test_cpuprof_unit: $(OBJ)/tests/cpuprof/test_cpuprof_unit.o $(OBJ)/cpuprof/cpuprof_rapl.o $(OBJ)/cpuprof/cpuprof_proc.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

$(TBIN)/cpuprof_busy: $(OBJ)/tests/cpuprof/busy.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lopenblas

TEST_DEPS += $(TBIN)/test_cpuprof_unit $(TBIN)/cpuprof_busy
TESTS += $(TBIN)/test_cpuprof_unit
TESTS += tests/cpuprof/test_cpuprof_shim.py
TESTS += tests/cpuprof/test_cpuprof_torch.py
