# Tests for hardware profiles, `moecap hwprobe` and the report renderers (postproc/render/).
TESTS += tests/render/test_hardware_profiles.py
TESTS += tests/render/test_hwprobe.py
