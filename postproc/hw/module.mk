# postproc/hw/: hardware profiles (hw_profile.h: data/hardware/*.json, used by the report), the
# bandwidth/FLOPS measurements (hwprobe.h), and `moecap hwprobe` (cmd_hwprobe.c).
# Everything but cmd_*.c is $(LIB)/libmchw.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,hw))
