/* moe-ref: the reference MoE engine's command dispatch (gen, run, serve, gguf). */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) after each threaded call before
 * they sleep. moe-ref calls the library threaded only for lm_head, once per step, and runs
 * every other product on its own helper threads (pool.h): a worker still spinning from the
 * previous lm_head takes a core from them for the whole next step (measured: half the decode
 * steps of a 2-thread run took the 1-thread time). So the workers sleep at once unless the
 * user says otherwise. The library reads the variable in its constructor, which runs after
 * the executable's pre-initialisers and before main. */
static void blas_threads_sleep_at_once(void)
{
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
}
__attribute__((section(".preinit_array"), used))
static void (*const mr_preinit)(void) = blas_threads_sleep_at_once;

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
