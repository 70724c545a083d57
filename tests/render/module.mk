# Tests for hardware profiles, `moecap hwprobe` and the report renderers (postproc/render/).
$(OBJ)/tests/render/%.o: CFLAGS += -Ipostproc

$(TBIN)/render_tool: $(OBJ)/tests/render/render_tool.o $$(MC_LIBS)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(MC_LINK) $(MOECAP_LIBS)

TEST_DEPS += $(TBIN)/render_tool
TESTS += tests/render/test_hardware_profiles.py tests/render/test_hwprobe.py tests/render/test_render.py tests/render/test_render_screenshot.sh tests/render/test_render_pipeline.py
