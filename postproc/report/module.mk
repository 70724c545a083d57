# postproc/report/: model geometry, attribution (attrib*.c), per-step metrics and aggregates, the
# report document and its JSON writer, and `moecap report` (cmd_report.c).
# Everything but cmd_*.c is $(LIB)/libmcreport.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,report))
