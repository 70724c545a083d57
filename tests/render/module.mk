# Tests for hardware profiles, `moecap hwprobe` and the report renderers (postproc/render/).
RENDER_OBJS := $(patsubst %.c,$(OBJ)/%.o,$(wildcard postproc/render/*.c))
$(OBJ)/tests/render/%.o: CFLAGS += -Ipostproc

$(TBIN)/render_tool: $(OBJ)/tests/render/render_tool.o $(RENDER_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcjson -lm

TEST_DEPS += $(TBIN)/render_tool
TESTS += tests/render/test_hardware_profiles.py tests/render/test_hwprobe.py tests/render/test_render.py tests/render/test_render_screenshot.sh tests/render/test_render_pipeline.py
