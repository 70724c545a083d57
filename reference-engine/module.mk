# moe-ref, the reference MoE engine (docs/reference-engine.md).
#   reference-engine/*.c        engine library (model loader, forward pass, tokenizer) + gen/run/main
#   reference-engine/serve/*.c  `moe-ref serve` (links the same engine objects)
#   reference-engine/cuda/      CUDA engine (its own fragment, reference-engine/cuda/module.mk)
# The engine's computational code is also archived as $(LIB)/libmoeref.a for other users.
MOEREF_MAIN_SRCS := reference-engine/main.c reference-engine/gen.c reference-engine/run.c reference-engine/gguf.c
MOEREF_LIB_SRCS  := $(filter-out $(MOEREF_MAIN_SRCS),$(wildcard reference-engine/*.c))
MOEREF_SERVE_SRCS := $(wildcard reference-engine/serve/*.c)
MOEREF_LIB_OBJS  := $(MOEREF_LIB_SRCS:%.c=$(OBJ)/%.o)
MOEREF_OBJS      := $(MOEREF_MAIN_SRCS:%.c=$(OBJ)/%.o) $(MOEREF_SERVE_SRCS:%.c=$(OBJ)/%.o)
# BLAS is linked dynamically on purpose: a preloaded profiler must see every sgemm.
MOEREF_LIBS      := -lopenblas -lcjson -lm -lpthread -ldl -fopenmp

$(OBJ)/reference-engine/%.o: CFLAGS += -fopenmp -Ireference-engine

$(LIB)/libmoeref.a: $(MOEREF_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

$(BIN)/moe-ref: $(MOEREF_OBJS) $(LIB)/libmoeref.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(MOEREF_OBJS) $(LIB)/libmoeref.a $(MOEREF_LIBS)

ALL_TARGETS += $(BIN)/moe-ref $(LIB)/libmoeref.a
