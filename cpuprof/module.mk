# cpuprof/: CPU counters (PAPI per thread, RAPL/powercap, /proc samples) linked into
# libmoecap.so as a shim module (docs/counters.md). Read before shim/module.mk.
CPUPROF_SRCS := $(wildcard cpuprof/*.c)
CPUPROF_OBJS := $(CPUPROF_SRCS:%.c=$(OBJ)/%.o)
# Hidden visibility: nothing of cpuprof is exported from the preloaded library.
$(OBJ)/cpuprof/%.o: CFLAGS += -Ishim -fvisibility=hidden
SHIM_EXTRA_OBJS += $(CPUPROF_OBJS)
SHIM_EXTRA_LIBS += -lpapi
