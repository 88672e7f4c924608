/* Uninitialised-memory detection for the ASan fuzz builds (ASan does not see reads of uninitialised
 * memory, and MemorySanitizer would need DCMTK and the image libraries rebuilt with it).
 *
 * A malloc hook fills every new heap block with a byte the harness chooses. The harness decodes the same
 * input twice, with fill bytes 0x00 and 0xFF, and compares the results: a decoder whose output depends
 * on memory nobody wrote (a frame buffer only partly filled, a row a truncated image never reached)
 * returns different pixels in the two runs, which is the leak of a previous upload's bytes in
 * production. The harness then aborts: libFuzzer reports a crash.
 *
 * Only blocks from ASan's primary allocator are filled (at most HEAP_FILL_MAX bytes): for those, calloc
 * zeroes after the hook runs, so calloc stays calloc. Larger blocks are fresh mmap pages (zero) under
 * ASan, so they cannot hold old data in this build anyway; fuzzed images are small. */
#ifndef MEDISCOPE_FUZZ_HEAP_FILL_H
#define MEDISCOPE_FUZZ_HEAP_FILL_H

#include <stddef.h>
#include <string.h>
#include <sanitizer/allocator_interface.h>

#define HEAP_FILL_MAX 65536

static volatile int heap_fill_byte = -1; /* -1: leave new blocks as the allocator gives them */

static void heap_fill_malloc_hook(const volatile void *ptr, size_t size) {
    const int fill = heap_fill_byte;
    if (fill >= 0 && ptr && size <= HEAP_FILL_MAX) memset((void *)ptr, fill, size);
}

static void heap_fill_free_hook(const volatile void *ptr) { (void)ptr; }

static inline void heap_fill_install(void) {
    static int installed = 0;
    if (!installed) {
        installed = 1;
        __sanitizer_install_malloc_and_free_hooks(heap_fill_malloc_hook, heap_fill_free_hook);
    }
}

#endif
