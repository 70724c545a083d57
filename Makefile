# moecap — one build, one test command.
#   make            build everything (CUDA parts only where nvcc exists)
#   make demo       build, generate a tiny model, profile it, write a report (scripts/demo.sh)
#   make check      install missing Debian packages, build, run every test
#   make check-san  the same with AddressSanitizer + UndefinedBehaviorSanitizer (build-san/)
# Each folder contributes a module.mk fragment; see docs/build.md.

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

CC      ?= cc
OPT     ?= -O2 -g
CFLAGS  := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC $(OPT) $(SANFLAGS) -Iinclude -MMD -MP
LDFLAGS := $(SANFLAGS)

# CUDA: detected, never required.
CUDA_HOME ?= /usr/local/cuda
NVCC      ?= $(wildcard $(CUDA_HOME)/bin/nvcc)
HAVE_CUDA := $(if $(NVCC),1,0)
CUDA_INC  := -I$(CUDA_HOME)/include
CUDA_LIB  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64
NVCCFLAGS ?= -O2 -g -std=c++17 -Xcompiler -fPIC,-Wall,-Wextra,-Werror -Iinclude

BIN  := $(BUILD)/bin
LIB  := $(BUILD)/lib
OBJ  := $(BUILD)/obj
TBIN := $(BUILD)/tests

# Filled by module.mk fragments.
ALL_TARGETS :=
TESTS       :=
TEST_DEPS   :=
CHECK_PKGS  :=

# A fragment names another fragment's list in a prerequisite as $$(VAR): expanded again when
# make builds, after every fragment was read, so the fragments' include order does not matter.
.SECONDEXPANSION:

.PHONY: all deps demo check check-deps check-san clean
all: deps-quiet build-all

$(OBJ)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@


# A post-processor area (postproc/AREA/, called from that folder's module.mk): every .c but
# the subcommands is $(LIB)/libmcAREA.a, appended to MC_LIBS; the subcommands (cmd_*.c) go
# into `moecap` through MOECAP_CMD_OBJS (postproc/module.mk, docs/build.md).
define postproc_area
MOECAP_CMD_OBJS += $$(patsubst %.c,$$(OBJ)/%.o,$$(wildcard postproc/$(1)/cmd_*.c))
MC_LIBS += $$(LIB)/libmc$(1).a
ALL_TARGETS += $$(LIB)/libmc$(1).a
$$(LIB)/libmc$(1).a: $$(patsubst %.c,$$(OBJ)/%.o,$$(filter-out postproc/$(1)/cmd_%.c,$$(wildcard postproc/$(1)/*.c)))
	@mkdir -p $$(dir $$@)
	rm -f $$@ && $$(AR) rcs $$@ $$^
endef

# Every folder's own fragment, up to three levels deep (e.g. tests/cuda/emu/module.mk).
include $(sort $(wildcard */module.mk */*/module.mk */*/*/module.mk))

build-all: $(ALL_TARGETS)

deps:
	scripts/install-deps.sh
deps-quiet:
	@scripts/install-deps.sh

demo: all
	scripts/demo.sh

# Packages only some tests need (CHECK_PKGS, from the module.mk fragments, e.g. chromium for
# HTML screenshots): a failed install does not stop `make check`; those tests then skip.
check-deps:
	@scripts/install-deps.sh $(CHECK_PKGS) || echo "install-deps: could not install $(CHECK_PKGS): the tests needing them will skip" >&2

check: deps-quiet check-deps build-all $(TEST_DEPS)
	@BUILD=$(BUILD) SAN=$(SAN) HAVE_CUDA=$(HAVE_CUDA) tests/run-tests.sh $(TESTS)

check-san:
	$(MAKE) SAN=1 check

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
