# libmoecap.so: the preloadable capture library (docs/shim.md).
#   shim/*.c         core + CPU interposers (BLAS, weight files, signals)
# Other folders' fragments put their capture modules into the library by appending to
# SHIM_EXTRA_OBJS / SHIM_EXTRA_LIBS (shim/cuda/, cpuprof/); the link rule reads those lists
# by second expansion, so fragment order does not matter.
# interpose_null.c is the template of an interposer family, built by its test only.
SHIM_SRCS := $(filter-out shim/interpose_null.c,$(wildcard shim/*.c))
SHIM_OBJS := $(SHIM_SRCS:%.c=$(OBJ)/%.o)

$(OBJ)/shim/%.o: CFLAGS += -Ishim -fvisibility=default

# The shim must not pull a BLAS in: it interposes the program's own.
$(LIB)/libmoecap.so: $(SHIM_OBJS) $$(SHIM_EXTRA_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libmoecap.so -Wl,-z,nodelete -o $@ $(SHIM_OBJS) $(SHIM_EXTRA_OBJS) \
	    $(SHIM_EXTRA_LIBS) -lunwind -ldl -lpthread

ALL_TARGETS += $(LIB)/libmoecap.so
