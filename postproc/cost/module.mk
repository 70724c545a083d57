# postproc/cost/: the cost model's parameters (from hardware profiles and --cost), energy from
# the recorded counters or an estimate, cost per token, the roofline hardware what-if, and the
# hooks that add them to the report document (cost_report.h). docs/cost.md.
# Everything but cmd_*.c is $(LIB)/libmccost.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,cost))
