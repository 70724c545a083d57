# cupti/: libmoecap-cupti.so, the CUPTI activity/callback collector and kernel-parameter
# taps, dlopen'ed by the shim on first CUDA use or loaded via CUDA_INJECTION64_PATH
# (docs/gpu.md). Built only where the CUDA toolkit exists.
ifeq ($(HAVE_CUDA),1)
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
