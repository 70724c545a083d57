/* Placeholder until `moe-ref serve` lands; replaced by its owner. */
#include <stdio.h>
int mr_cmd_serve(int argc, char **argv);
int mr_cmd_serve(int argc, char **argv)
{
    (void)argc; (void)argv;
    fprintf(stderr, "moe-ref serve: not available in this build yet\n");
    return 2;
}
