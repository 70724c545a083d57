/* dlopen()s a library that uses the BLAS with RTLD_LOCAL and calls it (see dl_lib.c). */
#include <dlfcn.h>
#include <stdio.h>
int main(int argc, char **argv)
{
    if (argc < 2) return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    int (*run)(int) = (int (*)(int))dlsym(h, "dl_lib_run");
    if (!run) return 1;
    int r = run(6);
    printf("result %d\n", r);
    return r == 16 ? 0 : 1;
}
