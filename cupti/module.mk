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
