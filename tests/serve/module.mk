# Tests of `moe-ref serve` (reference-engine/serve/): load sweep, abuse, shutdown, hostile
# clients, and the official `openai` npm client (installed here into $(BUILD)/npm with npm;
# the test skips when npm or node is absent).
TESTS += tests/serve/test_serve.py tests/serve/test_serve_e2e.py tests/serve/test_serve_hostile.py \
         tests/serve/test_serve_openai.sh
TEST_DEPS += $(BIN)/moe-ref $(BIN)/moecap $(LIB)/libmoecap.so serve-npm-client

OPENAI_NPM_VERSION ?= 6
.PHONY: serve-npm-client
serve-npm-client:
	@if command -v npm >/dev/null 2>&1; then \
	  [ -f $(BUILD)/npm/node_modules/openai/package.json ] || { mkdir -p $(BUILD)/npm && \
	  npm install --prefix $(BUILD)/npm --no-audit --no-fund --loglevel=error openai@$(OPENAI_NPM_VERSION); }; \
	else echo "npm not installed: tests/serve/test_serve_openai.sh will skip"; fi
