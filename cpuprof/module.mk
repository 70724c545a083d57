# cpuprof/: CPU counters (PAPI per thread, RAPL/powercap, /proc samples) linked into
# libmoecap.so as a shim module (docs/counters.md), through SHIM_EXTRA_OBJS.
CPUPROF_SRCS := $(wildcard cpuprof/*.c)
CPUPROF_OBJS := $(CPUPROF_SRCS:%.c=$(OBJ)/%.o)
# libpapi is NOT linked: cpuprof dlopens it only where the kernel can count hardware
# events (docs/counters.md); <papi.h> is a build-time dependency only. The soname to load
# is the one the build machine's libpapi.so points at (e.g. libpapi.so.7.0), so a
# different PAPI major version at run time is not picked up silently.
CPUPROF_PAPI_SONAME := $(shell readelf -d "$$(readlink -f "$$($(CC) -print-file-name=libpapi.so)")" 2>/dev/null | \
    sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
CPUPROF_PAPI_SONAME := $(or $(CPUPROF_PAPI_SONAME),libpapi.so)
# Hidden visibility: nothing of cpuprof is exported from the preloaded library.
$(OBJ)/cpuprof/%.o: CFLAGS += -Ishim -fvisibility=hidden
$(OBJ)/cpuprof/cpuprof_papi.o: CFLAGS += -DMC_PAPI_SONAME='"$(CPUPROF_PAPI_SONAME)"'
SHIM_EXTRA_OBJS += $(CPUPROF_OBJS)
