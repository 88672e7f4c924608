// Opens libMediscopeTorch.so in the processes that run models; nothing here links libtorch.
#define _GNU_SOURCE
#include "ctorch.h"

#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

const ctorch_api *ctorch_open(const char *path, ctorch_error *err) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        const char *why = dlerror();
        snprintf(err->message, sizeof err->message, "cannot open %s: %s", path, why ? why : "unknown error");
        return NULL;
    }
    const ctorch_api *(*get)(void) = (const ctorch_api *(*)(void))dlsym(handle, "ctorch_api_get");
    if (get == NULL) {
        snprintf(err->message, sizeof err->message, "%s has no ctorch_api_get: not Mediscope's libtorch shim", path);
        dlclose(handle);
        return NULL;
    }
    const ctorch_api *api = get();
    if (api == NULL || api->version != CTORCH_API_VERSION) {
        snprintf(err->message, sizeof err->message, "%s has API version %d; this build needs %d", path,
                 api ? api->version : -1, CTORCH_API_VERSION);
        // Its libtorch is initialised by now; unloading it again is not safe, so it stays mapped.
        return NULL;
    }
    return api;
}

int32_t ctorch_libtorch_mapped(void) {
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) return 0;
    char line[4096];
    int32_t found = 0;
    while (!found && fgets(line, sizeof line, maps) != NULL) {
        if (strstr(line, "libtorch_cpu.so") != NULL) found = 1;
    }
    fclose(maps);
    return found;
}

int32_t ctorch_malloc_thresholds(int32_t mmap_threshold, int32_t trim_threshold) {
    return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
}
