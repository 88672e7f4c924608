/* How a worker process ended, decoded from a waitpid() status with the POSIX macros (WIFEXITED,
 * WEXITSTATUS, WIFSIGNALED, WTERMSIG, WCOREDUMP), which Swift cannot call directly. */
#ifndef MS_PROCESS_H
#define MS_PROCESS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ms_exit_status {
    int exited;       /* 1: the process called exit() or returned from main; `code` is its status */
    int code;
    int signaled;     /* 1: a signal killed the process; `signal` is its number */
    int signal;
    int core_dumped;  /* 1: the kill left a core dump */
} ms_exit_status;

/* Decodes `status` as waitpid() returned it. Neither flag is set for a stopped or continued child. */
ms_exit_status ms_exit_status_decode(int status);

/* Returns the heap's free memory to the system (glibc's malloc_trim(0)); 1 when some was returned. */
int ms_malloc_trim(void);

#ifdef __cplusplus
}
#endif

#endif
