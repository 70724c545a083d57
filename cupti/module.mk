# CUDA side of moecap (issue 6), built only where the CUDA toolkit exists:
#   shim/cuda/*.c   CUDA runtime/driver, cuBLAS/cuBLASLt interposers and NVML, compiled into
#                   libmoecap.so through SHIM_EXTRA_OBJS (no CUDA library is linked: real
#                   functions are resolved at run time, so the shim loads without CUDA)
#   cupti/*.c       libmoecap-cupti.so: CUPTI activity/callback collector + kernel-parameter
#                   taps, dlopen'ed by the shim on first CUDA use or via CUDA_INJECTION64_PATH
# Included before shim/module.mk (alphabetical), which links $(SHIM_EXTRA_OBJS).
ifeq ($(HAVE_CUDA),1)
SHIM_CUDA_SRCS := $(wildcard shim/cuda/*.c)
SHIM_CUDA_OBJS := $(SHIM_CUDA_SRCS:%.c=$(OBJ)/%.o)
$(OBJ)/shim/cuda/%.o: CFLAGS += $(CUDA_INC) -Ishim -Ishim/cuda
SHIM_EXTRA_OBJS += $(SHIM_CUDA_OBJS)
SHIM_EXTRA_LIBS += -ldl -lpthread

CUPTI_SRCS := $(wildcard cupti/*.c)
CUPTI_OBJS := $(CUPTI_SRCS:%.c=$(OBJ)/%.o)
$(OBJ)/cupti/%.o: CFLAGS += $(CUDA_INC) -Ishim -Ishim/cuda -Icupti
CUPTI_LIBDIR := $(firstword $(wildcard $(CUDA_HOME)/lib64/libcupti.so $(CUDA_HOME)/extras/CUPTI/lib64/libcupti.so))

ifneq ($(CUPTI_SRCS),)
$(LIB)/libmoecap-cupti.so: $(CUPTI_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ -L$(dir $(CUPTI_LIBDIR)) -Wl,-rpath,$(dir $(CUPTI_LIBDIR)) \
	    -lcupti -lcjson -ldl -lpthread
ALL_TARGETS += $(LIB)/libmoecap-cupti.so
endif
endif

# CUDA reference engine: $(LIB)/libmoeref-cuda.so, dlopen'ed by `moe-ref run --device cuda`
# (so moe-ref itself never links a CUDA library). Kept here because the top-level
# */module.mk wildcard does not reach reference-engine/cuda/.
ifeq ($(HAVE_CUDA),1)
MOEREF_CUDA_SRCS := $(wildcard reference-engine/cuda/*.cu)
MOEREF_CUDA_OBJS := $(MOEREF_CUDA_SRCS:%.cu=$(OBJ)/%.o)
MOEREF_CUDA_ARCH ?= -gencode arch=compute_80,code=compute_80 -gencode arch=compute_90,code=sm_90

$(OBJ)/reference-engine/cuda/%.o: reference-engine/cuda/%.cu reference-engine/cuda/cuda_engine.h \
        reference-engine/internal.h reference-engine/engine.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $(MOEREF_CUDA_ARCH) -Ireference-engine -Ireference-engine/cuda -c $< -o $@

ifneq ($(MOEREF_CUDA_SRCS),)
# routing.o: the engines' one host routing rule (reference-engine/routing.c)
$(LIB)/libmoeref-cuda.so: $(MOEREF_CUDA_OBJS) $(OBJ)/reference-engine/routing.o
	@mkdir -p $(dir $@)
	$(NVCC) -shared $(MOEREF_CUDA_ARCH) -o $@ $^ -L$(CUDA_HOME)/lib64 -lcublas -lcudart -lm -Xlinker -rpath,$(CUDA_HOME)/lib64
ALL_TARGETS += $(LIB)/libmoeref-cuda.so
endif
endif
