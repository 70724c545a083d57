# Fuzz targets (convention: one tests/fuzz/fuzz_<name>.c per target, defining
# LLVMFuzzerTestOneInput; seed corpus tests/fuzz/corpus/<name>/, kept crashes
# tests/fuzz/crashes/<name>/). FUZZ_SRCS_<name> lists the project sources a target links,
# FUZZ_LIBS_<name> its libraries.
#   make check   replays tests/fuzz/corpus/<name>/ and tests/fuzz/crashes/<name>/ through
#                $(TBIN)/fuzz/replay_<name> (project compiler + sanitizers, no clang needed)
#   make fuzz    builds build-fuzz/fuzz_<name> with clang -fsanitize=fuzzer,address,undefined and
#                runs each for FUZZ_SECONDS (tests/fuzz/run-fuzz.sh)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

# ---- per target: sources and libraries (add a block for a new target) ----
# `moe-ref serve`: HTTP head parser and the JSON shape scan of the request memory budget
FUZZ_SRCS_serve_http := reference-engine/serve/http.c reference-engine/serve/budget.c
FUZZ_LIBS_serve_http := -lcjson -lpthread
FUZZ_CFLAGS_serve_http := -Ireference-engine
$(OBJ)/tests/fuzz/fuzz_serve_http.o: CFLAGS += -Ireference-engine
# `moecap bench`: SSE parser and the UTF-8 repair of server text
FUZZ_SRCS_bench_sse := postproc/bench/sse.c postproc/bench/utf8.c
FUZZ_LIBS_bench_sse :=

# ---- rules ----
$(OBJ)/tests/fuzz/%.o: CFLAGS += -Ipostproc -Itests

define FUZZ_REPLAY_RULE
$(TBIN)/fuzz/replay_$(1): $(OBJ)/tests/fuzz/fuzz_$(1).o $(OBJ)/tests/fuzz/replay_main.o $(patsubst %.c,$(OBJ)/%.o,$(FUZZ_SRCS_$(1)))
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_REPLAY_RULE,$(n))))

FUZZ_REPLAYS := $(FUZZ_NAMES:%=$(TBIN)/fuzz/replay_%)
TESTS += tests/fuzz/test_fuzz_replay.sh
TEST_DEPS += $(FUZZ_REPLAYS)

# libFuzzer builds (not part of `all` or `check`)
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(FUZZ_NAMES)
FUZZ_FLAGS   := -std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -Iinclude -Ipostproc -Itests

define FUZZ_BIN_RULE
$(FUZZ_BUILD)/fuzz_$(1): tests/fuzz/fuzz_$(1).c $(FUZZ_SRCS_$(1))
	@mkdir -p $$(dir $$@)
	$$(FUZZ_CC) $$(FUZZ_FLAGS) $(FUZZ_CFLAGS_$(1)) -o $$@ $$^ $(FUZZ_LIBS_$(1))
endef
$(foreach n,$(FUZZ_NAMES),$(eval $(call FUZZ_BIN_RULE,$(n))))

.PHONY: fuzz fuzz-build
fuzz-build:
	@command -v $(FUZZ_CC) >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 2; }
	@$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
fuzz: fuzz-build
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-fuzz.sh $(FUZZ_TARGETS)
