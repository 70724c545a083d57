# postproc/trace/: trace reader library (trace_reader.h), offline symboliser (trace_symbols.h), the synthetic
# .mct writer used by tests and benchmarks (trace_synth.h), and `moecap dump` (cmd_dump.c).
# Everything but cmd_*.c is $(LIB)/libmctrace.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,trace))
