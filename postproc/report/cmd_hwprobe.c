/* Placeholder until the hwprobe command lands; replaced by its owner. */
#include <stdio.h>
#include "commands.h"
int mc_cmd_hwprobe(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moecap hwprobe: not available in this build yet\n");
    return 2;
}
