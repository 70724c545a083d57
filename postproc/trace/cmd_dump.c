/* Placeholder until the dump command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int mc_cmd_dump(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moecap dump: not available in this build yet\n");
    return 2;
}
