# libmoecap.so: the preloadable capture library (docs/shim.md).
#   shim/*.c         core + CPU interposers (BLAS, weight files, signals)
#   shim/cuda/       CUDA interposers (own fragment, appends to SHIM_EXTRA_OBJS)
# cupti/ and cpuprof/ fragments are read before this one (alphabetical include order) and
# append their objects/libraries to SHIM_EXTRA_OBJS / SHIM_EXTRA_LIBS; shim/cuda/module.mk
# (not matched by the top-level */module.mk wildcard) is included here, before the rule.
SHIM_SRCS := $(wildcard shim/*.c)
SHIM_OBJS := $(SHIM_SRCS:%.c=$(OBJ)/%.o)
SHIM_EXTRA_OBJS ?=
SHIM_EXTRA_LIBS ?=
include $(wildcard shim/cuda/module.mk)

$(OBJ)/shim/%.o: CFLAGS += -Ishim -fvisibility=default

# The shim must not pull a BLAS in: it interposes the program's own.
$(LIB)/libmoecap.so: $(SHIM_OBJS) $(SHIM_EXTRA_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libmoecap.so -Wl,-z,nodelete -o $@ $(SHIM_OBJS) $(SHIM_EXTRA_OBJS) \
	    $(SHIM_EXTRA_LIBS) -lunwind -ldl -lpthread

ALL_TARGETS += $(LIB)/libmoecap.so
