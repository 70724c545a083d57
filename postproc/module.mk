# The `moecap` command. Sources by folder (each owned by one area; add files freely):
#   postproc/            main.c (dispatch), commands.h
#   postproc/trace/      trace reader library + `moecap dump`
#   postproc/report/     model geometry, segmentation, attribution, metrics, `moecap report`, hwprobe
#   postproc/render/     report.json -> Markdown / HTML / SVG
#   postproc/bench/      `moecap bench` load generator, datasets, scoring
MOECAP_SRCS := $(wildcard postproc/*.c postproc/*/*.c)
MOECAP_OBJS := $(MOECAP_SRCS:%.c=$(OBJ)/%.o)
MOECAP_LIBS := -lcjson -lcurl -lopenblas -lm -lpthread -ldl

$(OBJ)/postproc/%.o: CFLAGS += -Ipostproc

$(BIN)/moecap: $(MOECAP_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(MOECAP_LIBS)

ALL_TARGETS += $(BIN)/moecap
