# postproc/export/: views of the report document for other tools — the Perfetto / Trace
# Event Format timeline (perfetto.c) and MoE-CAP's cap_metrics result shape (moecap_compat.c);
# `moecap report` writes them. Everything here is $(LIB)/libmcexport.a (postproc_area).
$(eval $(call postproc_area,export))
