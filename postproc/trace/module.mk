# postproc/trace/: trace reader library (trace_reader.h), offline symboliser (trace_symbols.h), the synthetic
# .mct writer used by tests and benchmarks (trace_synth.h), and `moecap dump` (cmd_dump.c).
# Everything but cmd_*.c is $(LIB)/libmctrace.a (see postproc/module.mk).
MCTRACE_SRCS := $(filter-out postproc/trace/cmd_%.c,$(wildcard postproc/trace/*.c))
MOECAP_CMD_OBJS += $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/trace/cmd_*.c))
MC_LIBS += $(LIB)/libmctrace.a

$(LIB)/libmctrace.a: $(MCTRACE_SRCS:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

ALL_TARGETS += $(LIB)/libmctrace.a
