# postproc/bench/: `moecap bench` (cmd_bench.c) and its load generator, datasets, scoring, and the
# client-side view the report joins in (client_view.h).
# Everything but cmd_*.c is $(LIB)/libmcbench.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,bench))
