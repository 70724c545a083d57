# Fuzz targets (convention: tests/fuzz/README.md). Each tests/fuzz/fuzz_<name>.c is one target;
# FUZZ_SRCS_<name> lists the project sources it links, FUZZ_LIBS_<name> its libraries.
#   make check   replays tests/fuzz/corpus/<name>/ and tests/fuzz/crashes/<name>/ through
#                $(TBIN)/fuzz/replay_<name> (project compiler + sanitizers, no clang needed)
#   make fuzz    builds build-fuzz/fuzz_<name> with clang -fsanitize=fuzzer,address,undefined and
#                runs each for FUZZ_SECONDS (tests/fuzz/run-fuzz.sh)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

# ---- per target: sources outside postproc/ and libraries (add a block for a new target) ----
# Every target links the postproc libraries (libmctrace, libmchw, libmcreport, libmcrender,
# libmcbench, with their subcommand objects) and MOECAP_LIBS; list here only what else it needs.
FUZZ_SRCS_trace_reader :=
FUZZ_SRCS_report :=
FUZZ_SRCS_ggml :=
FUZZ_SRCS_model_config :=
FUZZ_SRCS_hw_profile :=
FUZZ_SRCS_safetensors := shim/safetensors_hdr.c
FUZZ_SRCS_gguf := shim/gguf_hdr.c shim/safetensors_hdr.c
FUZZ_SRCS_taps := cupti/taps.c
# `moe-ref serve`: HTTP head parser and the JSON shape scan of the request memory budget
FUZZ_SRCS_serve_http := reference-engine/serve/http.c reference-engine/serve/budget.c
FUZZ_LIBS_serve_http := -lcjson -lpthread
FUZZ_CFLAGS_serve_http := -Ireference-engine
$(OBJ)/tests/fuzz/fuzz_serve_http.o: CFLAGS += -Ireference-engine
# `moecap bench`: SSE parser and the UTF-8 repair of server text (both in the postproc libraries)
FUZZ_SRCS_bench_sse :=

# ---- rules ----
$(OBJ)/tests/fuzz/%.o: CFLAGS += -Ipostproc -Ishim -Icupti -Itests

# replay binaries: the project compiler and sanitizers, postproc from its libraries
define FUZZ_REPLAY_RULE
$(TBIN)/fuzz/replay_$(1): $(OBJ)/tests/fuzz/fuzz_$(1).o $(OBJ)/tests/fuzz/replay_main.o $(patsubst %.c,$(OBJ)/%.o,$(FUZZ_SRCS_$(1))) $$$$(MC_LIBS) $$$$(MOECAP_CMD_OBJS)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $(OBJ)/tests/fuzz/fuzz_$(1).o $(OBJ)/tests/fuzz/replay_main.o $(patsubst %.c,$(OBJ)/%.o,$(FUZZ_SRCS_$(1))) \
	    -Wl,--start-group $$(filter-out $(OBJ)/postproc/main.o,$$(MOECAP_CMD_OBJS)) $$(MC_LIBS) -Wl,--end-group $$(MOECAP_LIBS) $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_REPLAY_RULE,$(n))))

FUZZ_REPLAYS := $(FUZZ_NAMES:%=$(TBIN)/fuzz/replay_%)
TESTS += tests/fuzz/test_fuzz_replay.sh tests/fuzz/test_hostile_report.py tests/fuzz/test_hostile_gguf.py
TEST_DEPS += $(FUZZ_REPLAYS) $(BIN)/moecap

# libFuzzer builds (not part of `all` or `check`): every postproc source but main.c compiled
# once with clang into one archive, each target linked against it
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined \
                -Iinclude -Ipostproc -Ishim -Icupti -Itests
FUZZ_POSTPROC_OBJS = $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(filter-out postproc/main.c,$(wildcard postproc/*/*.c)))

$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -c $< -o $@
$(FUZZ_BUILD)/libmcfuzz.a: $(FUZZ_POSTPROC_OBJS)
	rm -f $@ && $(AR) rcs $@ $^

define FUZZ_BIN_RULE
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) $(FUZZ_BUILD)/libmcfuzz.a
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_FLAGS) -fsanitize=fuzzer $(FUZZ_CFLAGS_$(1)) -o $$@ tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1)) \
	    $(FUZZ_BUILD)/libmcfuzz.a $$(MOECAP_LIBS) $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_BIN_RULE,$(n))))

.PHONY: fuzz fuzz-build fuzz-deps
fuzz-deps:
	@tests/fuzz/install-clang.sh
fuzz-build: fuzz-deps
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-fuzz.sh $(FUZZ_TARGETS)
