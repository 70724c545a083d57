# CPU emulation of the CUDA subset the reference engine uses (docs/gpu.md, "Running the CUDA
# engine without a GPU"): libcudart.so.13, libcublas.so.13, libcupti.so.13 and libcuda.so.1
# stand-ins (the last two: the CUPTI collector's real paths, found via LD_LIBRARY_PATH), and the CUDA engine's
# own source compiled by g++ with simt_emu.h into libmoeref-cuda-emu.so (picked by moe-ref
# through MOE_REF_CUDA_LIB).
ifeq ($(HAVE_CUDA),1)
EMU_DIR := $(TBIN)/cuda/emu
CXX ?= g++
EMU_CFLAGS := $(CFLAGS) $(CUDA_INC) -Itests/cuda/emu -fvisibility=hidden
EMU_CXXFLAGS := -std=c++17 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(OPT) $(SANFLAGS) -Iinclude $(CUDA_INC) \
    -Itests/cuda/emu -Ireference-engine -Ireference-engine/cuda

$(EMU_DIR)/libcudart.so.13: tests/cuda/emu/emu_cudart.c tests/cuda/emu/simt_emu_api.h
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -Wl,-soname,libcudart.so.13 -o $@ $< $(LDFLAGS) -lpthread

$(EMU_DIR)/libcublas.so.13: tests/cuda/emu/emu_cublas.c tests/cuda/emu/simt_emu_api.h $(EMU_DIR)/libcudart.so.13
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -Wl,-soname,libcublas.so.13 -o $@ $< $(LDFLAGS) \
	    -L$(EMU_DIR) -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN'

# The engine's kernels and host code, unchanged, as host C++.
$(OBJ)/tests/cuda/emu/cuda_engine_emu.o: reference-engine/cuda/cuda_engine.cu tests/cuda/emu/simt_emu.h \
        tests/cuda/emu/simt_emu_api.h reference-engine/cuda/cuda_engine.h reference-engine/internal.h \
        reference-engine/engine.h reference-engine/offload.h
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -include tests/cuda/emu/simt_emu.h -c $< -o $@

$(EMU_DIR)/libmoeref-cuda-emu.so: $(OBJ)/tests/cuda/emu/cuda_engine_emu.o $(OBJ)/reference-engine/routing.o \
        $(OBJ)/reference-engine/offload.o \
        $(EMU_DIR)/libcudart.so.13 $(EMU_DIR)/libcublas.so.13
	@mkdir -p $(dir $@)
	$(CXX) -shared -o $@ $(OBJ)/tests/cuda/emu/cuda_engine_emu.o $(OBJ)/reference-engine/routing.o \
	    $(OBJ)/reference-engine/offload.o $(LDFLAGS) \
	    -L$(EMU_DIR) -l:libcublas.so.13 -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN' -lm

TESTS += tests/cuda/emu/test_cuda_emu_engine.py tests/cuda/emu/test_cuda_emu_chain.py tests/cuda/emu/test_validate_emu.sh \
         tests/cuda/emu/test_cuda_emu_faults.py
# The emulation's own unit test, compiled the same way as the engine.
$(EMU_DIR)/test_simt_emu: tests/cuda/emu/test_simt_emu.cu tests/cuda/emu/simt_emu.h tests/cuda/emu/simt_emu_api.h \
        $(EMU_DIR)/libcudart.so.13 $(EMU_DIR)/libcublas.so.13
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Itests -x c++ -include tests/cuda/emu/simt_emu.h $< -x none -o $@ $(LDFLAGS) \
	    -L$(EMU_DIR) -l:libcublas.so.13 -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN'

TESTS += $(EMU_DIR)/test_simt_emu
EMU_LIBS := $(EMU_DIR)/test_simt_emu $(EMU_DIR)/libcudart.so.13 $(EMU_DIR)/libcublas.so.13 $(EMU_DIR)/libmoeref-cuda-emu.so
TEST_DEPS += $(EMU_LIBS) $(BIN)/moe-ref $(BIN)/moecap $(LIB)/libmoecap.so $(LIB)/libmoecap-cupti.so
.PHONY: emu
emu: $(EMU_LIBS)

# Emulated CUPTI + driver (docs/gpu.md): libcupti.so.13 with the real symbol version node,
# so libmoecap-cupti.so binds to it when LD_LIBRARY_PATH names $(EMU_DIR); it loads the
# emulated libcuda.so.1 the collector's taps dlopen with RTLD_NOLOAD. Both trace through
# the emulated runtime's hook (simt_emu_trace.h).
$(EMU_DIR)/libcuda.so.1: tests/cuda/emu/emu_cuda_driver.c tests/cuda/emu/simt_emu_trace.h tests/cuda/emu/simt_emu_api.h \
        $(EMU_DIR)/libcudart.so.13
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -Wl,-soname,libcuda.so.1 -o $@ $< $(LDFLAGS) \
	    -L$(EMU_DIR) -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN'

$(EMU_DIR)/libcupti.map:
	@mkdir -p $(dir $@)
	printf 'libcupti.so.13 { global: cupti*; local: *; };\n' >$@

$(EMU_DIR)/libcupti.so.13: tests/cuda/emu/emu_cupti.c tests/cuda/emu/simt_emu_trace.h $(EMU_DIR)/libcupti.map \
        $(EMU_DIR)/libcuda.so.1 $(EMU_DIR)/libcudart.so.13
	@mkdir -p $(dir $@)
	$(CC) $(EMU_CFLAGS) -shared -Wl,-soname,libcupti.so.13 -Wl,--version-script=$(EMU_DIR)/libcupti.map -o $@ $< \
	    $(LDFLAGS) -L$(EMU_DIR) -Wl,--no-as-needed -l:libcuda.so.1 -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN' -lpthread

EMU_CUPTI_LIBS := $(EMU_DIR)/libcupti.so.13 $(EMU_DIR)/libcuda.so.1
TEST_DEPS += $(EMU_CUPTI_LIBS)
TESTS += tests/cuda/emu/test_cupti_emu_chain.py
# The emulated CUPTI's own unit test: a CUPTI client compiled like the engine.
$(EMU_DIR)/test_cupti_emu: tests/cuda/emu/test_cupti_emu.cu tests/cuda/emu/simt_emu.h tests/cuda/emu/simt_emu_api.h \
        $(EMU_CUPTI_LIBS) $(EMU_DIR)/libcudart.so.13
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -Itests -x c++ -include tests/cuda/emu/simt_emu.h $< -x none -o $@ $(LDFLAGS) \
	    -L$(EMU_DIR) -l:libcupti.so.13 -l:libcuda.so.1 -l:libcudart.so.13 -Wl,-rpath,'$$ORIGIN'
TESTS += $(EMU_DIR)/test_cupti_emu
TEST_DEPS += $(EMU_DIR)/test_cupti_emu
emu: $(EMU_CUPTI_LIBS)
endif
