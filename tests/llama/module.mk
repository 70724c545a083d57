# llama.cpp tests (docs/llama.md): the npm-prebuilt libllama is installed once into build/llama
# (scripts/install-llama.sh; shared by build/ and build-san/), then tests/llama/llama_truth.c
# (the independent truth: its own eval callback) is built against it. Without npm, node or the
# registry the program is not built and tests/llama/test_llama.py reports its cases as skipped.
LLAMA_DIR := build/llama
LLAMA_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(OPT) $(SANFLAGS) -I$(LLAMA_DIR)/include

$(TBIN)/llama_truth: tests/llama/llama_truth.c scripts/install-llama.sh
	@mkdir -p $(dir $@)
	@if scripts/install-llama.sh $(LLAMA_DIR) >/dev/null; then \
	  lib=$$(cd $(LLAMA_DIR)/lib && ls libllama.v*.so | head -1); ggml=$$(cd $(LLAMA_DIR)/lib && ls libggml.v*.so | head -1); \
	  echo "$(CC) ... -o $@ tests/llama/llama_truth.c -l:$$lib"; \
	  $(CC) $(LLAMA_CFLAGS) -o $@ $< $(LDFLAGS) -L$(LLAMA_DIR)/lib -l:$$lib -l:$$ggml -l:libggml-base.so \
	      -Wl,-rpath,$(abspath $(LLAMA_DIR)/lib); \
	else echo "llama.cpp could not be installed: tests/llama skip"; fi

TESTS += tests/llama/test_llama.py
TEST_DEPS += $(TBIN)/llama_truth $(BIN)/moe-ref $(BIN)/moecap $(LIB)/libmoecap.so
