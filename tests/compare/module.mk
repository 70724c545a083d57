# `moecap compare`: figures, radar geometry, classes and bad inputs on hand-written reports;
# the HTML page in headless Chromium (installed for `make check` through CHECK_PKGS).
TESTS += tests/compare/test_compare.py tests/compare/test_compare_screenshot.sh
TEST_DEPS += $(BIN)/moecap $(TBIN)/test_report_unit
CHECK_PKGS += chromium
