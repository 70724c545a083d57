# postproc/bench/: `moecap bench` (cmd_bench.c) and its load generator, datasets, scoring, and the
# client-side view the report joins in (client_view.h).
# Everything but cmd_*.c is $(LIB)/libmcbench.a (see postproc/module.mk).
MCBENCH_SRCS := $(filter-out postproc/bench/cmd_%.c,$(wildcard postproc/bench/*.c))
MOECAP_CMD_OBJS += $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/bench/cmd_*.c))
MC_LIBS += $(LIB)/libmcbench.a

$(LIB)/libmcbench.a: $(MCBENCH_SRCS:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

ALL_TARGETS += $(LIB)/libmcbench.a
