/* Placeholder until the report command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int mc_cmd_report(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moecap report: not available in this build yet\n");
    return 2;
}
