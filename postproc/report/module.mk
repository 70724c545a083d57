# postproc/report/: model geometry, attribution (attrib*.c), per-step metrics and aggregates, the
# report document and its JSON writer, and `moecap report` (cmd_report.c).
# Everything but cmd_*.c is $(LIB)/libmcreport.a (see postproc/module.mk).
MCREPORT_SRCS := $(filter-out postproc/report/cmd_%.c,$(wildcard postproc/report/*.c))
MOECAP_CMD_OBJS += $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/report/cmd_*.c))
MC_LIBS += $(LIB)/libmcreport.a

$(LIB)/libmcreport.a: $(MCREPORT_SRCS:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

ALL_TARGETS += $(LIB)/libmcreport.a
