/* moe-ref: the reference MoE engine's command dispatch (gen, run, serve, gguf). */
#include "internal.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: moe-ref <command> [options]\n"
               "  gen    write a synthetic HF-style MoE model (config.json + model.safetensors)\n"
               "  run    batched prefill + greedy decode, optional exact ground truth\n"
               "  serve  OpenAI-compatible server with continuous batching\n"
               "  gguf   write a model as one GGUF file for llama.cpp (f32, f16, q8_0, q4_0)\n"
               "`moe-ref <command> --help` lists a command's options; see docs/reference-engine.md\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) { usage(stderr); return 2; }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "gen")) return mr_cmd_gen(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return mr_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "gguf")) return mr_cmd_gguf(argc - 1, argv + 1);
    if (!strcmp(cmd, "serve")) return mr_cmd_serve(argc - 1, argv + 1);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) { usage(stdout); return 0; }
    fprintf(stderr, "moe-ref: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
