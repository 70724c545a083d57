# postproc/compare/: `moecap compare` (cmd_compare.c): reports side by side (compare_run.h reads
# report.json, skipping the per-step array, and classes each run), the CAP radar (radar.h). docs/cost.md.
# Everything but cmd_*.c is $(LIB)/libmccompare.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,compare))
