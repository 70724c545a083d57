# reference-engine/cuda/: the CUDA engine, $(LIB)/libmoeref-cuda.so, dlopen'ed by
# `moe-ref run --device cuda` (so moe-ref itself never links a CUDA library). Built only
# where nvcc exists; tests/cuda/emu/ compiles the same source for the CPU emulation.
ifeq ($(HAVE_CUDA),1)
MOEREF_CUDA_SRCS := $(wildcard reference-engine/cuda/*.cu)
MOEREF_CUDA_OBJS := $(MOEREF_CUDA_SRCS:%.cu=$(OBJ)/%.o)
MOEREF_CUDA_ARCH ?= -gencode arch=compute_80,code=compute_80 -gencode arch=compute_90,code=sm_90

$(OBJ)/reference-engine/cuda/%.o: reference-engine/cuda/%.cu reference-engine/cuda/cuda_engine.h \
        reference-engine/internal.h reference-engine/engine.h reference-engine/offload.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(MOEREF_CUDA_ARCH) -Ireference-engine -Ireference-engine/cuda -c $< -o $@

ifneq ($(MOEREF_CUDA_SRCS),)
# routing.o: the engines' one host routing rule (reference-engine/routing.c); offload.o: the
# expert-offloading policies (reference-engine/offload.c)
$(LIB)/libmoeref-cuda.so: $(MOEREF_CUDA_OBJS) $(OBJ)/reference-engine/routing.o $(OBJ)/reference-engine/offload.o
	@mkdir -p $(dir $@)
	$(NVCC) -shared $(MOEREF_CUDA_ARCH) -o $@ $^ -L$(CUDA_HOME)/lib64 -lcublas -lcudart -lm -Xlinker -rpath,$(CUDA_HOME)/lib64
ALL_TARGETS += $(LIB)/libmoeref-cuda.so
endif
endif
