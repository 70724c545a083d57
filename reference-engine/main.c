/* moe-ref: the reference MoE engine's command dispatch (gen, run, serve, gguf). */
#include "internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS's worker threads spin for 2^28 cycles (~0.1 s) after each threaded call before
 * they sleep. moe-ref calls the library threaded only for lm_head, once per step, and runs
 * every other product on its own helper threads (pool.h): a worker still spinning from the
 * previous lm_head takes a core from them for the whole next step (measured: half the decode
 * steps of a 2-thread run took the 1-thread time). So the workers sleep at once
 * (OPENBLAS_THREAD_TIMEOUT=4) unless the user set the variable. OpenBLAS reads it in its
 * constructor, before main, and a setenv() from an ELF pre-initialiser does not reach it:
 * glibc's own initialiser, which runs after the executable's pre-initialisers, resets
 * `environ` to the process's initial array. So main sets it, has the library read its
 * environment again and stops the workers it started; the library starts them again, with
 * the new timeout, at its next threaded call (the path it takes in a child after fork). */
static void blas_threads_sleep_at_once(void)
{
    if (getenv("OPENBLAS_THREAD_TIMEOUT")) return;
    setenv("OPENBLAS_THREAD_TIMEOUT", "4", 0);
    /* only OpenBLAS's own thread server (openblas_get_parallel() == 1) has these workers */
    int (*parallel)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "openblas_get_parallel");
    void (*read_env)(void) = (void (*)(void))dlsym(RTLD_DEFAULT, "openblas_read_env");
    int (*stop_workers)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (parallel && parallel() == 1 && read_env && stop_workers) {
        read_env();
        stop_workers();
    }
}

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
    blas_threads_sleep_at_once();
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
