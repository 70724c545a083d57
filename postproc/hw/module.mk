# postproc/hw/: hardware profiles (hw_profile.h: data/hardware/*.json, used by the report), the
# bandwidth/FLOPS measurements (hwprobe.h), and `moecap hwprobe` (cmd_hwprobe.c).
# Everything but cmd_*.c is $(LIB)/libmchw.a (see postproc/module.mk).
MCHW_SRCS := $(filter-out postproc/hw/cmd_%.c,$(wildcard postproc/hw/*.c))
MOECAP_CMD_OBJS += $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/hw/cmd_*.c))
MC_LIBS += $(LIB)/libmchw.a

$(LIB)/libmchw.a: $(MCHW_SRCS:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

ALL_TARGETS += $(LIB)/libmchw.a
