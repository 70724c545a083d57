/* Subcommands of the `moecap` binary; one file each (postproc/<area>/cmd_<name>.c). */
#ifndef MOECAP_POSTPROC_COMMANDS_H
#define MOECAP_POSTPROC_COMMANDS_H
struct mc_command { const char *name; int (*run)(int argc, char **argv); const char *help; };
int mc_cmd_dump(int argc, char **argv);
int mc_cmd_report(int argc, char **argv);
int mc_cmd_hwprobe(int argc, char **argv);
int mc_cmd_bench(int argc, char **argv);
int mc_cmd_compare(int argc, char **argv);
int mc_cmd_record(int argc, char **argv);
#endif
