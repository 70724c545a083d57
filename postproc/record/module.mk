# postproc/record/: `moecap record` (cmd_record.c) — a command run under the capture shim —
# and its run directory (run_dir.c, in $(LIB)/libmcrecord.a through postproc_area).
$(eval $(call postproc_area,record))
