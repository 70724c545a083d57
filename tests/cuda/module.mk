# Tests of the CUDA side that need no GPU (fake CUDA/NVML libraries, pure decoders).
ifeq ($(HAVE_CUDA),1)
CUDA_TEST_CFLAGS := $(CFLAGS) $(CUDA_INC) -Ishim -Ishim/cuda -Icupti -Itests -Itests/cuda

$(TBIN)/cuda/libfakecuda.so: tests/cuda/fake_cuda.c tests/cuda/fake_cuda.h
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -shared -o $@ $< -Wl,-soname,libfakecuda.so

$(TBIN)/cuda/libfakenvml.so: tests/cuda/fake_nvml.c
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -shared -o $@ $<

# The interposers are linked into the test executable (exported with -rdynamic) in front
# of libfakecuda.so, exactly as libmoecap.so sits in front of the real libraries.
$(TBIN)/cuda/test_cuda_interpose: tests/cuda/test_cuda_interpose.c tests/cuda/fake_core.c shim/real.c \
        $$(SHIM_CUDA_OBJS) $(TBIN)/cuda/libfakecuda.so \
        $(TBIN)/cuda/libfakenvml.so
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -rdynamic -o $@ tests/cuda/test_cuda_interpose.c tests/cuda/fake_core.c shim/real.c \
	    $(SHIM_CUDA_OBJS) \
	    -L$(TBIN)/cuda -Wl,--no-as-needed -lfakecuda -Wl,-rpath,'$$ORIGIN' -ldl -lpthread

$(TBIN)/cuda/test_taps: tests/cuda/test_taps.c cupti/taps.c cupti/taps.h
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -o $@ tests/cuda/test_taps.c cupti/taps.c -lcjson

# A program using the fake library normally (no interposers linked in), for the preload test.
$(TBIN)/cuda/cuda_prog: tests/cuda/cuda_prog.c $(TBIN)/cuda/libfakecuda.so
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -o $@ $< -L$(TBIN)/cuda -lfakecuda -Wl,-rpath,'$$ORIGIN'

# The CUPTI collector against a fake CUPTI (libfakecupti.so) and a fake libcuda.so.1.
$(TBIN)/cuda/libfakecupti.so: tests/cuda/fake_cupti.c tests/cuda/fake_cupti.h
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -shared -o $@ $< -Wl,-soname,libfakecupti.so

$(TBIN)/cuda/libcuda.so.1: tests/cuda/fake_cupti.c
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -DFAKE_DRIVER -shared -o $@ $< -Wl,-soname,libcuda.so.1

$(TBIN)/cuda/test_collector: tests/cuda/test_collector.c tests/cuda/fake_core.c cupti/collector.c cupti/taps.c \
        $(TBIN)/cuda/libfakecupti.so $(TBIN)/cuda/libcuda.so.1
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -rdynamic -o $@ tests/cuda/test_collector.c tests/cuda/fake_core.c cupti/collector.c \
	    cupti/taps.c -L$(TBIN)/cuda -Wl,--no-as-needed -lfakecupti -l:libcuda.so.1 -Wl,-rpath,'$$ORIGIN' \
	    -lcjson -ldl -lpthread

# CUDA engine host logic (routing, no-device failure), linked against libmoeref-cuda.so.
$(TBIN)/cuda/test_cuda_engine_host: tests/cuda/test_cuda_engine_host.c $(LIB)/libmoeref-cuda.so
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -Ireference-engine -o $@ $< -L$(LIB) -l:libmoeref-cuda.so \
	    -Wl,-rpath,'$$ORIGIN/../../lib' -Wl,-rpath,$(CUDA_HOME)/lib64 -lm

# Host-side cost per intercepted call (not a test; see bench/gpu/interpose_overhead.c).
$(TBIN)/cuda/interpose_overhead: bench/gpu/interpose_overhead.c $(TBIN)/cuda/libfakecuda.so
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -o $@ $< -L$(TBIN)/cuda -lfakecuda -Wl,-rpath,'$$ORIGIN'

TESTS += $(TBIN)/cuda/test_cuda_interpose $(TBIN)/cuda/test_taps $(TBIN)/cuda/test_collector \
         $(TBIN)/cuda/test_cuda_engine_host tests/cuda/test_moe_ref_cuda.py tests/cuda/test_cuda_preload.py
TEST_DEPS += $(TBIN)/cuda/test_cuda_interpose $(TBIN)/cuda/test_taps $(TBIN)/cuda/cuda_prog \
             $(TBIN)/cuda/test_collector $(TBIN)/cuda/test_cuda_engine_host $(BIN)/moe-ref $(LIB)/libmoeref-cuda.so \
             $(TBIN)/cuda/interpose_overhead \
             $(LIB)/libmoecap.so $(LIB)/libmoecap-cupti.so $(BIN)/moecap
endif

# The GPU validation helpers' own judgement (needs no CUDA).
TESTS += tests/cuda/test_gpu_helpers.py

# Weight-file ranges -> device FILE_MAP records through the real libmoecap.so
# (shim/filemap.c): a small loader mapping/reading a moe-ref safetensors file and copying
# it to libfakecuda.so's device.
ifeq ($(HAVE_CUDA),1)
$(TBIN)/cuda/filemap_prog: tests/cuda/filemap_prog.c $(TBIN)/cuda/libfakecuda.so
	@mkdir -p $(dir $@)
	$(CC) $(CUDA_TEST_CFLAGS) -o $@ $< -L$(TBIN)/cuda -lfakecuda -Wl,-rpath,'$$ORIGIN' -lpthread

TESTS += tests/cuda/test_filemap.py
TEST_DEPS += $(TBIN)/cuda/filemap_prog $(LIB)/libmoecap.so $(BIN)/moecap $(BIN)/moe-ref
endif
