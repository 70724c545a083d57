/* `moecap`: the post-processor's command-line entry point. Each subcommand lives in its
 * own file (postproc/<area>/cmd_<name>.c) and exports `int mc_cmd_<name>(int argc, char **argv)`. */
#include <stdio.h>
#include <string.h>
#include "commands.h"

static const struct mc_command commands[] = {
    {"record",  mc_cmd_record,  "run a command under the capture shim into a fresh run directory"},
    {"dump",    mc_cmd_dump,    "print a trace (.mct) as JSON lines, or --summary"},
    {"report",  mc_cmd_report,  "CAP metrics from a run: JSON/Markdown/HTML, MoE-CAP cap_metrics, Perfetto timeline"},
    {"hwprobe", mc_cmd_hwprobe, "measure this machine's bandwidth and GEMM FLOPS into a profile"},
    {"bench",   mc_cmd_bench,   "drive an OpenAI-compatible server with a dataset and log latency/accuracy"},
    {"compare", mc_cmd_compare, "headline figures of several runs side by side, classes, CAP radar"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: moecap COMMAND [ARGS]   (moecap COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "moecap: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
