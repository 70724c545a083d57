# The `moecap` command: postproc/main.c dispatches to one cmd_<name>.c per subcommand.
# Each area folder has its own fragment and is a static library of everything but its
# cmd_*.c files, which tests and benchmarks link as well:
#   postproc/trace/   libmctrace.a   trace reader, symboliser, synthetic writer (tests/benches) + `moecap dump`
#   postproc/hw/      libmchw.a      hardware profiles and their cost parameters, bandwidth/FLOPS probes + `moecap hwprobe`
#   postproc/report/  libmcreport.a  model geometry, attribution, metrics, the report document + `moecap report`
#   postproc/render/  libmcrender.a  report document -> Markdown / HTML / SVG
#   postproc/export/  libmcexport.a  report document -> Perfetto timeline, MoE-CAP cap_metrics
#   postproc/record/  libmcrecord.a  run directory + `moecap record` (a command under the shim)
#   postproc/bench/   libmcbench.a   load generator, datasets, scoring, client view + `moecap bench`
#   postproc/cost/    libmccost.a    energy, cost per token, hardware what-if (report/report_cost.c adds them)
#   postproc/compare/ libmccompare.a reports side by side, classes, CAP radar + `moecap compare`
# An area's fragment calls postproc_area (top-level Makefile), which appends its library to
# MC_LIBS and its subcommand objects to MOECAP_CMD_OBJS.
# Links use MC_LINK (one archive group, so the libraries' order does not matter) and name
# MC_LIBS in prerequisites as $$(MC_LIBS) (second expansion: fragments may be read in any order).
MOECAP_CMD_OBJS += $(OBJ)/postproc/main.o
MC_LINK = -Wl,--start-group $(MC_LIBS) -Wl,--end-group
MOECAP_LIBS := -lcjson -lcurl -lopenblas -lm -lpthread -ldl

$(OBJ)/postproc/%.o: CFLAGS += -Ipostproc

$(BIN)/moecap: $$(MOECAP_CMD_OBJS) $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(MOECAP_CMD_OBJS) $(MC_LINK) $(MOECAP_LIBS)

ALL_TARGETS += $(BIN)/moecap
