# shim/cuda/: CUDA runtime/driver, cuBLAS/cuBLASLt interposers and NVML, compiled into
# libmoecap.so through SHIM_EXTRA_OBJS (shim/module.mk). No CUDA library is linked: real
# functions are resolved at run time, so the shim loads without CUDA. Built only where the
# CUDA toolkit's headers exist.
ifeq ($(HAVE_CUDA),1)
SHIM_CUDA_SRCS := $(wildcard shim/cuda/*.c)
SHIM_CUDA_OBJS := $(SHIM_CUDA_SRCS:%.c=$(OBJ)/%.o)
$(OBJ)/shim/cuda/%.o: CFLAGS += $(CUDA_INC) -Ishim -Ishim/cuda
SHIM_EXTRA_OBJS += $(SHIM_CUDA_OBJS)
SHIM_EXTRA_LIBS += -ldl -lpthread
endif
