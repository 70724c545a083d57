/* Placeholder until the bench command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int mc_cmd_bench(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moecap bench: not available in this build yet\n");
    return 2;
}
