#define _GNU_SOURCE
#include "file_support.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

int ms_rename_exchange(const char *a, const char *b) {
    return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

int ms_syncfs(int fd) {
    return syncfs(fd);
}
