# libmoecap.so tests: test_shim.py drives small programs (and Debian numpy/torch scripts)
# under LD_PRELOAD and checks their traces; test_safetensors_hdr tests the header parser.
$(OBJ)/tests/shim/%.o: CFLAGS += -Ishim -Itests

$(TBIN)/shim_prog: $(OBJ)/tests/shim/shim_prog.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lopenblas -lpthread

$(TBIN)/libshim_dl_lib.so: $(OBJ)/tests/shim/dl_lib.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared -o $@ $^ -lopenblas

$(TBIN)/shim_dl_main: $(OBJ)/tests/shim/dl_main.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -ldl

$(TBIN)/test_shim_safetensors_hdr: $(OBJ)/tests/shim/test_safetensors_hdr.o $(OBJ)/shim/safetensors_hdr.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

TESTS += $(TBIN)/test_shim_safetensors_hdr tests/shim/test_shim.py
TEST_DEPS += $(LIB)/libmoecap.so $(BIN)/moecap $(TBIN)/shim_prog $(TBIN)/libshim_dl_lib.so \
             $(TBIN)/shim_dl_main $(TBIN)/test_shim_safetensors_hdr

# shim/filemap.c alone (weight-file host ranges behind device FILE_MAP records).
$(TBIN)/test_shim_filemap: $(OBJ)/tests/shim/test_filemap.o $(OBJ)/shim/filemap.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lpthread

TESTS += $(TBIN)/test_shim_filemap
TEST_DEPS += $(TBIN)/test_shim_filemap
# CPU BLAS records written without zeroing (shim/ring.h): every field on every call, across ring wraps.
TESTS += tests/shim/test_ring_reuse.py
# The null interposer family template (shim/interpose_null.c), built by the test itself.
TESTS += tests/shim/test_null_family.py
# SIGKILL, full disk, run-directory and file-permission faults of the capture.
$(TBIN)/shim_kill_prog: $(OBJ)/tests/shim/kill_prog.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lopenblas -lpthread
TESTS += tests/shim/test_capture_faults.py
TEST_DEPS += $(TBIN)/shim_kill_prog
