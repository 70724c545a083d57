# postproc/cost/: energy from the recorded counters or an estimate, cost per run and per token,
# and the roofline hardware what-if (docs/cost.md). Uses postproc/hw/ only (profiles and their
# cost parameters, hw_cost.h); report/report_cost.c adds the results to the report document.
# Everything but cmd_*.c is $(LIB)/libmccost.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,cost))
