# postproc/render/: the report document -> Markdown / HTML / SVG (render.h).
# Everything but cmd_*.c is $(LIB)/libmcrender.a (see postproc/module.mk).
MCRENDER_SRCS := $(filter-out postproc/render/cmd_%.c,$(wildcard postproc/render/*.c))
MOECAP_CMD_OBJS += $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/render/cmd_*.c))
MC_LIBS += $(LIB)/libmcrender.a

$(LIB)/libmcrender.a: $(MCRENDER_SRCS:%.c=$(OBJ)/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && $(AR) rcs $@ $^

ALL_TARGETS += $(LIB)/libmcrender.a
