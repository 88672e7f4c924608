#include "process.h"

#include <malloc.h>

#include <sys/wait.h>

ms_exit_status ms_exit_status_decode(int status) {
    ms_exit_status decoded = {0, 0, 0, 0, 0};
    if (WIFEXITED(status)) {
        decoded.exited = 1;
        decoded.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        decoded.signaled = 1;
        decoded.signal = WTERMSIG(status);
#ifdef WCOREDUMP
        decoded.core_dumped = WCOREDUMP(status) ? 1 : 0;
#endif
    }
    return decoded;
}

int ms_malloc_trim(void) { return malloc_trim(0); }
