# postproc/render/: the report document -> Markdown / HTML / SVG (render.h).
# Everything but cmd_*.c is $(LIB)/libmcrender.a (postproc_area in the top-level Makefile).
$(eval $(call postproc_area,render))
